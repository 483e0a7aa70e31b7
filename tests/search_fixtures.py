"""Shared pieces of the tests that run `mdsearch run` end to end (search, faults, cluster,
objectives): a tiny proxy, a two-stage space, and a tolerant trial-table reader."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: A proxy that trains in about a second: 64 synthetic images at 32 px, one epoch.
TINY_PROXY = [
    "--data", "phantom,n=300", "--resolution", "32", "--epochs", "1", "--train-subset", "64",
    "--batch-size", "32",
]  # fmt: skip

#: Four architectures: stage1 and stage5 each plain or MD-Conv (3,5) 1:1.
TWO_STAGE_SPACE = """
backbone: mobilenetv2_100
stages:
  1: [base, k3.5s1:1]
  5: [base, k3.5s1:1]
"""


def table_rows(path: Path) -> int:
    """Rows in a trials.csv that may not exist yet (0 then)."""
    try:
        return len(pd.read_csv(path))
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0
