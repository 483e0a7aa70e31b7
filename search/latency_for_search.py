"""Latency as a search objective: the per-stage table a search predicts ``latency_ms`` from.

With ``--objectives auc,latency`` (or ``auc,flops,latency``) the driver loads the latency table
(:class:`mdsearch.mdconv.LatencyTable`) for the space from the user cache dir before Ray starts, times
the block variants it lacks (once per device and thread count), writes the table into
config.json and ships it to the trials, which add its prediction (``latency_ms``, ms per image
at ``--latency-size``, batch 1, ``--cpus-per-trial`` threads, on the driver's CPU, or its GPU
with ``--latency-device cuda``) to their result. No trial times anything, so latency is cheap
and the same number for the same architecture in every trial; a resume reuses the table
config.json holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .runfolder import RunError, RunFolder

if TYPE_CHECKING:
    import torch
    from torch import nn

    from mdsearch.mdconv import LatencyTable
    from mdsearch.space import SearchSpace

    from .run_settings import SearchSettings

__all__ = [
    "check_latency_device",
    "latency_config",
    "run_latency_table",
    "search_latency_table",
]


def check_latency_device(device: str, *, needed: bool, flag: str = "--latency-device") -> None:
    """``device`` is cpu or cuda; and when latency will be timed (``needed``), a CUDA device is
    visible if it is cuda. Raises :class:`RunError` naming ``flag``."""
    if device not in ("cpu", "cuda"):
        raise RunError(f"{flag} {device!r} is unknown: use cpu or cuda")
    if device == "cuda" and needed:
        import torch

        if not torch.cuda.is_available():
            raise RunError(
                f"{flag} cuda: torch sees no CUDA device on this machine; use {flag} cpu"
            )


def search_latency_table(
    settings: SearchSettings,
    space: SearchSpace,
    *,
    timer: Callable[[nn.Module, torch.Tensor], float] | None = None,
    say: Callable[[str], None] = lambda message: None,
) -> LatencyTable:
    """The latency table a search predicts ``latency_ms`` from, covering every stage variant of
    ``space``: the cached one (user cache dir, or ``$MDSEARCH_CACHE_DIR/latency``, one file per
    backbone, input size, device, thread count and torch version), with the variants it lacks
    timed now on this machine's CPU or GPU (``settings.latency_device``) and saved.

    Args:
        settings: the search (``latency_size``, batch 1, ``latency_threads`` threads,
            ``latency_device``).
        space: the search space whose stage choices must all be in the table.
        timer: ms of one forward pass of a module on an input (default
            :func:`mdsearch.mdconv.time_module`).
        say: receives one progress line before timing starts.

    Returns:
        A :class:`mdsearch.mdconv.LatencyTable` with every variant of ``space``.
    """
    from mdsearch.mdconv import (
        LatencyTable,
        build_latency_table,
        device_name,
        latency_table,
    )

    size, threads, device = settings.latency_size, settings.latency_threads, settings.latency_device
    table = latency_table(space.backbone, size, threads=threads, device=device)
    todo = {LatencyTable.entry(i, s) for i, options in enumerate(space.choices) for s in options}
    todo -= set(table.stages)
    whole = {"stem", "head", "overhead"}
    todo |= {part for part in whole if getattr(table, f"{part}_ms") is None}
    if todo:
        stages = len(todo - whole)
        say(
            f"latency: timing {stages} block variants"
            + (" (and stem, head, whole network)" if stages < len(todo) else "")
            + f" of {space.backbone} at {size}x{size}, batch 1, {threads} thread(s) on "
            f"{device} [{device_name(device)}] (once; cached in {table.path})"
        )
        build_latency_table(
            space.backbone,
            size,
            variants=dict(enumerate(space.choices)),
            threads=threads,
            device=device,
            timer=timer,
            table=table,
        )
        table.save()
    return table


def run_latency_table(
    settings: SearchSettings,
    space: SearchSpace,
    folder: RunFolder,
    *,
    resume: bool,
    say: Callable[[str], None],
) -> LatencyTable:
    """The table of a new search, or on resume the one its config.json recorded (so every trial
    of a run is predicted from the same times, wherever it is resumed)."""
    from mdsearch.mdconv import LatencyTable

    if resume:
        saved = (folder.read_config().get("latency") or {}).get("table")
        if saved:
            return LatencyTable.from_dict(saved)
    return search_latency_table(settings, space, say=say)


def latency_config(settings: SearchSettings, table: LatencyTable | None) -> dict[str, Any] | None:
    """config.json's ``latency`` block: what ``latency_ms`` means, and the table itself (None
    when latency is not an objective)."""
    if table is None:
        return None
    return {
        "unit": "ms per image, median, inference (eval, no autograd), predicted as the sum of "
        "the per-stage table's stem, stage variants and head plus its whole-network overhead",
        "input_size": settings.latency_size,
        "batch_size": 1,
        "threads": settings.latency_threads,
        "device": table.key["device"],
        "device_name": table.key["device_name"],
        "path": str(table.path) if table.path else None,
        "table": table.to_dict(),
    }
