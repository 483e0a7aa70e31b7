"""What ``mdsearch train`` shows while it trains.

On a terminal, one tqdm bar (stderr) over all optimizer steps with the epoch, the loss and the
validation AUC; anywhere else (a log file, a pipe, CI) one plain line per epoch with the same, the
throughput and an ETA, because carriage-return redraws make log files unreadable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["TrainingProgress", "format_duration"]


def format_duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _postfix(row: Mapping[str, Any], epochs: int) -> dict[str, str]:
    return {
        "epoch": f"{row['epoch']}/{epochs}",
        "loss": f"{row['loss']:.4f}",
        "val_auc": f"{row['val_auc']:.4f}",
    }


class TrainingProgress:
    """The progress display of one full training.

    Args:
        name: what trains (the arch id), the first word of every line.
        epochs: epochs of the whole training.
        steps_per_epoch: optimizer steps per epoch.
        history: the epochs already done (a resume starts the bar there).
        enabled: show anything at all (``--quiet`` turns it off).
    """

    def __init__(
        self,
        name: str,
        *,
        epochs: int,
        steps_per_epoch: int,
        history: list[Mapping[str, Any]],
        enabled: bool = True,
    ) -> None:
        from tqdm.auto import tqdm

        self.name = name
        self.epochs = epochs
        self.interactive = enabled and sys.stderr.isatty()
        self.lines = enabled and not self.interactive
        self._started = time.monotonic()
        self._epochs_this_run = 0
        self._bar = tqdm(
            total=epochs * steps_per_epoch,
            initial=len(history) * steps_per_epoch,
            desc=f"train {name}",
            unit="step",
            file=sys.stderr,
            disable=not self.interactive,
            dynamic_ncols=True,
        )
        if history:
            self._bar.set_postfix(_postfix(history[-1], epochs), refresh=False)

    def step(self, _images: int) -> None:
        """One optimizer step done."""
        self._bar.update(1)

    def epoch(self, row: Mapping[str, Any]) -> None:
        """One epoch done: ``row`` is its history row (``epoch``, ``loss``, ``val_auc``,
        ``images_per_s``, ``best``)."""
        self._bar.set_postfix(_postfix(row, self.epochs))
        self._epochs_this_run += 1
        if not self.lines:
            return
        per_epoch = (time.monotonic() - self._started) / self._epochs_this_run
        print(
            f"train {self.name}: "
            + ", ".join(f"{k} {v}" for k, v in _postfix(row, self.epochs).items())
            + (" (best)" if row["best"] else "")
            + f", {row['images_per_s']:.0f} img/s, ETA "
            + format_duration(per_epoch * (self.epochs - row["epoch"])),
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        """Close the bar."""
        self._bar.close()
