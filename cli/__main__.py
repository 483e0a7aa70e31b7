"""``python -m mdsearch.cli``: the same as the ``mdsearch`` console script."""

import sys

from .main import main

sys.exit(main())
