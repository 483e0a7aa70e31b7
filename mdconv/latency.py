"""The former home of latency timing and the per-stage table, kept only so that imports of
``mdsearch.mdconv.latency`` keep working while callers move to ``from mdsearch.mdconv import ...``.

The code now lives in :mod:`~mdsearch.mdconv.latency_runners` (how calls are timed on a device),
:mod:`~mdsearch.mdconv.latency_timing` (whole-network measurement) and
:mod:`~mdsearch.mdconv.stage_table` (the per-stage lookup table); the ``mdsearch show`` lines are
:func:`mdsearch.mdconv.format_latency`. Replacing a name here (e.g. monkeypatching
``time_module``) changes nothing: patch :mod:`mdsearch.mdconv.stage_table` instead. Delete this
module once nothing imports it.
"""

from .describe import format_latency
from .latency_runners import device_name
from .latency_timing import (
    RUNTIMES,
    Latency,
    StageTimer,
    measure_latency,
    settle_allocator,
    time_module,
)
from .stage_table import LatencyTable, build_latency_table, latency_table, predict_latency

__all__ = [
    "RUNTIMES",
    "Latency",
    "LatencyTable",
    "StageTimer",
    "build_latency_table",
    "device_name",
    "format_latency",
    "latency_table",
    "measure_latency",
    "predict_latency",
    "settle_allocator",
    "time_module",
]
