"""How forward passes are timed on one kind of device: the latency runners.

A :class:`LatencyRunner` knows its device, the device's model name, and how to wait for work
queued on it (nothing on a CPU; ``torch.cuda.synchronize`` on a GPU, whose kernels run
asynchronously). Every runner shares one stop rule (:meth:`LatencyRunner.time_calls`): untimed
warm-up calls, then timed calls until the median's 95% confidence interval is narrow enough or
the budget is spent. :func:`runner_for` picks the runner for a device string; whole-network
measurement (:func:`~mdsearch.mdconv.measure_latency`) and the per-stage table
(:func:`~mdsearch.mdconv.build_latency_table`) time through it.

Example:
    >>> runner = runner_for("cpu")
    >>> runner.device.type, isinstance(runner, CpuRunner)
    ('cpu', True)
    >>> len(runner.time_calls(lambda: None, warmup=0, min_repeats=3, max_repeats=3))
    3
"""

from __future__ import annotations

import contextlib
import math
import platform
import statistics
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from .errors import LatencyError

__all__ = [
    "RUNNERS",
    "CpuRunner",
    "CudaRunner",
    "LatencyRunner",
    "device_name",
    "inference_call",
    "median_ci",
    "runner_for",
]


class LatencyRunner(ABC):
    """Times calls on one device. Subclasses say which device and how to wait for it.

    Args:
        device: the torch device to time on (its type must be :attr:`device_type`).

    Raises:
        LatencyError: the device is of another type or not available on this machine.
    """

    #: The torch device type (``"cpu"``, ``"cuda"``) this runner times on.
    device_type: ClassVar[str]

    def __init__(self, device: str | torch.device | None = None) -> None:
        dev = torch.device(device if device is not None else self.device_type)
        if dev.type != self.device_type:
            raise LatencyError(f"{type(self).__name__} times on {self.device_type}, not {dev}")
        self.device = dev

    @abstractmethod
    def device_name(self) -> str:
        """The model name of the processor or GPU the runner times on."""

    @abstractmethod
    def synchronize(self) -> None:
        """Wait until every call queued on the device has finished (so a clock read after it
        includes them)."""

    def time_calls(
        self,
        run: Callable[[], Any],
        *,
        warmup: int = 3,
        min_repeats: int = 15,
        max_repeats: int = 10_000,
        max_seconds: float = 1.0,
        target_rel_error: float = 0.03,
        clock: Callable[[], float] = time.perf_counter,
    ) -> list[float]:
        """Seconds of each timed call of ``run``.

        ``warmup`` untimed calls first, then timed calls one at a time until at least
        ``min_repeats`` are done and the median's 95% CI half-width is within
        ``target_rel_error`` of the median, or ``max_seconds`` of timed calls or ``max_repeats``
        calls are spent.

        Args:
            run: one forward pass (or whatever is timed).
            warmup: untimed calls first (allocator, oneDNN/cuDNN kernel choice, ORT graph prep).
            min_repeats: fewest timed calls.
            max_repeats: most timed calls.
            max_seconds: time budget of the timed calls, seconds.
            target_rel_error: stop once the median's 95% CI half-width / median is at most this.
            clock: seconds counter (tests inject a stub; default ``time.perf_counter``).

        Returns:
            Seconds per timed call, in call order.
        """
        for _ in range(warmup):
            run()
        self.synchronize()
        times: list[float] = []
        start = clock()
        while True:
            t0 = clock()
            run()
            self.synchronize()
            t1 = clock()
            times.append(t1 - t0)
            n = len(times)
            if n >= max(max_repeats, min_repeats):
                break
            if n >= min_repeats:
                if t1 - start >= max_seconds:
                    break
                ordered = sorted(times)
                median = statistics.median(ordered)
                lo, hi = median_ci(ordered)
                if median > 0 and (hi - lo) / 2 / median <= target_rel_error:
                    break
        return times


class CpuRunner(LatencyRunner):
    """Times on the CPU: calls return when the work is done, so there is nothing to wait for."""

    device_type = "cpu"

    def device_name(self) -> str:
        """The CPU's model name (from /proc/cpuinfo, else ``platform``)."""
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
        return platform.processor() or platform.machine() or "cpu"

    def synchronize(self) -> None:
        """Nothing to wait for on a CPU."""


class CudaRunner(LatencyRunner):
    """Times on a CUDA GPU: kernels run asynchronously, so every timed call is synchronised."""

    device_type = "cuda"

    def __init__(self, device: str | torch.device | None = None) -> None:
        super().__init__(device)
        if not torch.cuda.is_available():
            raise LatencyError(
                f"device {str(self.device)!r} asked for but CUDA is not available: use 'cpu'"
            )

    def device_name(self) -> str:
        """The GPU's model name (``torch.cuda.get_device_name``)."""
        return torch.cuda.get_device_name(self.device)

    def synchronize(self) -> None:
        """``torch.cuda.synchronize`` on the runner's device."""
        torch.cuda.synchronize(self.device)


#: Device type -> runner class. A new device kind (e.g. ``"mps"``) adds a subclass here.
RUNNERS: dict[str, type[LatencyRunner]] = {"cpu": CpuRunner, "cuda": CudaRunner}


def runner_for(device: str | torch.device) -> LatencyRunner:
    """The runner that times on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).

    Raises:
        LatencyError: not a torch device, a device type without a runner, or CUDA asked for on
            a machine without it.
    """
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise LatencyError(f"device {device!r} is not a torch device: use 'cpu' or 'cuda'") from exc
    if dev.type not in RUNNERS:
        raise LatencyError(f"device {device!r} is not supported: use 'cpu' or 'cuda'")
    return RUNNERS[dev.type](dev)


def inference_call(module: nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    """A function of no arguments that runs one inference forward pass (no autograd) of
    ``module`` on ``x``: what the runners time."""

    def run() -> Any:
        with torch.inference_mode():
            return module(x)

    return run


def device_name(device: str | torch.device = "cpu") -> str:
    """The model name of the CPU (from /proc/cpuinfo, else ``platform``) or of the CUDA GPU."""
    return runner_for(device).device_name()


def median_ci(ordered: Sequence[float]) -> tuple[float, float]:
    """Distribution-free 95% confidence interval of the median of sorted samples.

    Binomial order statistics, normal approximation: ranks n/2 -+ 1.96 sqrt(n)/2.

    Example:
        >>> median_ci([1.0, 2.0, 3.0, 4.0, 5.0])
        (1.0, 5.0)
    """
    n = len(ordered)
    half = 1.96 * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half))
    hi = min(n - 1, math.ceil(n / 2 + half) - 1)
    return ordered[lo], ordered[hi]
