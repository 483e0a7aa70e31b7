"""The files of ``mdsearch explain``: ``explain.md``, ``explain.json``, ``explain.png`` and, with
ground truth, ``localisation.csv``, each written atomically
(:func:`mdsearch.space.atomic_write_bytes`).
"""

from __future__ import annotations

import json
from pathlib import Path

from mdsearch.space import atomic_write_bytes

from .explain_document import EXPLAIN_FILES, Explanation, format_explanation

__all__ = ["write_explanation"]


def write_explanation(e: Explanation, out_dir: str | Path, figure: bytes) -> dict[str, Path]:
    """Write ``explain.md``, ``explain.json``, ``explain.png`` (and ``localisation.csv`` with
    ground truth) atomically into ``out_dir`` (made if missing). An ``eval.md`` there links them
    through :func:`~mdsearch.results.explain.with_explain_section`.

    Returns:
        key -> path of each file written.
    """
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {key: out / name for key, name in EXPLAIN_FILES.items()}
    atomic_write_bytes(files["png"], figure)
    atomic_write_bytes(files["json"], (json.dumps(e.to_dict(), indent=2) + "\n").encode())
    atomic_write_bytes(files["md"], format_explanation(e).encode())
    if e.scores:
        atomic_write_bytes(files["cases"], pd.DataFrame(e.cases).to_csv(index=False).encode())
    else:
        del files["cases"]
    return files
