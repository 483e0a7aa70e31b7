"""The ``mdsearch`` command line: the one layer that composes space, mdconv, search and results.

One module per command group; flags shared by several commands are defined once in
:mod:`mdsearch.cli.flags`, their defaults read from the settings classes.
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
