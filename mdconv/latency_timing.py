"""Inference latency of a whole network, measured until it is known to a relative error.

Convention (everywhere in mdsearch): **latency = median milliseconds per image of an inference
forward pass** (``eval()``, no autograd) at a named input size (square, 3 channels) and batch
size, on a named device, thread count and runtime (PyTorch eager or ONNX Runtime). At batch 1 this
is the delay a user feels; at larger batches it is the inverse of throughput.

Why not FLOPs: MD-Conv in all stride-2 stages of MobileNet-v2 adds 4% FLOPs but trained at
0.72-0.79x the baseline's images/s on a 2-core CPU (``benchmarks/bench_mdconv.py``). Depthwise
convs are memory-bound, so time follows the memory traffic and the kernel library's code paths,
not the multiply-adds.

How a call is timed on a device is a :class:`~mdsearch.mdconv.LatencyRunner`
(:mod:`mdsearch.mdconv.latency_runners`); the per-stage lookup table that predicts latency inside
a search is :mod:`mdsearch.mdconv.stage_table`.

Example:
    >>> from mdsearch.space import ArchSpec
    >>> spec = ArchSpec.parse("mobilenetv2_100:c14:k3,k3,k3,k3,k3,k3.5s1:1,k3")
    >>> lat = measure_latency(spec, input_size=224, max_seconds=2.0)   # doctest: +SKIP
    >>> lat.median_ms_per_image, lat.rel_error                          # doctest: +SKIP
    (12.7, 0.021)
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mdsearch.space import ArchSpec

from .builder import build
from .errors import LatencyError
from .latency_runners import inference_call, median_ci, runner_for

__all__ = [
    "RUNTIMES",
    "Latency",
    "StageTimer",
    "measure_latency",
    "settle_allocator",
    "time_module",
    "torch_threads",
]

RUNTIMES = ("torch", "onnxruntime")

#: A timing function for :func:`~mdsearch.mdconv.build_latency_table`: milliseconds for one
#: forward pass of ``module`` on ``x`` (the whole batch). Tests inject a stub; the default is
#: :func:`time_module`.
StageTimer = Callable[[nn.Module, torch.Tensor], float]


@dataclass(frozen=True)
class Latency:
    """One latency measurement of a network.

    Args:
        median_ms_per_image: median over repeats of (ms per forward pass / batch size).
        ci_low_ms: lower end of a distribution-free 95% confidence interval of that median
            (order statistics of the repeats), ms per image.
        ci_high_ms: upper end of that interval, ms per image.
        iqr_ms: interquartile range of the repeats, ms per image (spread, not uncertainty).
        rel_error: half the confidence interval's width divided by the median.
        repeats: timed forward passes.
        warmup: untimed forward passes before them.
        batch_size: images per forward pass.
        input_size: side of the square 3-channel input, pixels.
        threads: CPU threads of the runtime (torch intra-op threads, or ONNX Runtime
            ``intra_op_num_threads``).
        device: ``"cpu"`` or ``"cuda"`` (``"cuda:1"``, ...).
        device_name: the processor's or GPU's model name.
        runtime: ``"torch"`` (eager) or ``"onnxruntime"``.
        torch_version: ``torch.__version__``.
        arch: canonical architecture string when measured from a spec, else ``None``.
    """

    median_ms_per_image: float
    ci_low_ms: float
    ci_high_ms: float
    iqr_ms: float
    rel_error: float
    repeats: int
    warmup: int
    batch_size: int
    input_size: int
    threads: int
    device: str
    device_name: str
    runtime: str
    torch_version: str
    arch: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for JSON / a trial table row)."""
        return asdict(self)

    @property
    def median_ms_per_batch(self) -> float:
        """Median milliseconds per forward pass of the whole batch."""
        return self.median_ms_per_image * self.batch_size

    def describe(self) -> str:
        """One line, e.g. ``12.70 ms/image (95% CI 12.41-12.95, 41 repeats; torch, cpu, ...)``."""
        return (
            f"{self.median_ms_per_image:.2f} ms/image (95% CI {self.ci_low_ms:.2f}-"
            f"{self.ci_high_ms:.2f}, {self.repeats} repeats; {self.runtime}, {self.device} "
            f"[{self.device_name}], {self.threads} threads, batch {self.batch_size}, "
            f"{self.input_size}x{self.input_size})"
        )


def measure_latency(
    model_or_spec: nn.Module | ArchSpec,
    *,
    input_size: int = 224,
    batch_size: int = 1,
    threads: int | None = None,
    device: str = "cpu",
    warmup: int = 5,
    min_repeats: int = 10,
    max_repeats: int = 1000,
    max_seconds: float = 10.0,
    target_rel_error: float = 0.05,
    runtime: str = "torch",
    channels_last: bool = False,
    clock: Callable[[], float] = time.perf_counter,
) -> Latency:
    """Median inference latency of a network, repeated until it is known to a relative error.

    The network runs ``warmup`` untimed passes, then timed passes one at a time until at least
    ``min_repeats`` are done and the median's 95% confidence interval is within
    ``target_rel_error`` of it, or ``max_seconds`` of timed passes or ``max_repeats`` are spent
    (then ``rel_error`` says what was reached). Random weights time like trained ones.

    Args:
        model_or_spec: a network (a copy is not made: it is put in ``eval()`` mode and moved to
            ``device``) or an :class:`~mdsearch.space.ArchSpec` to build.
        input_size: side of the square 3-channel input, pixels.
        batch_size: images per forward pass.
        threads: CPU threads for the duration of the measurement (``None``: the current torch
            setting); restored afterwards.
        device: ``"cpu"`` or a CUDA device (``"cuda"``); CUDA passes are synchronised.
        warmup: untimed passes first (allocator, oneDNN/cuDNN kernel choice, ORT graph prep).
        min_repeats: fewest timed passes.
        max_repeats: most timed passes.
        max_seconds: time budget of the timed passes, seconds.
        target_rel_error: stop once the median's 95% CI half-width / median is at most this.
        runtime: ``"torch"`` (eager PyTorch) or ``"onnxruntime"`` (the network is exported to
            ONNX in a temporary folder first; needs the ``onnx``/``onnxruntime`` packages).
        channels_last: run PyTorch in channels_last memory format (often faster on CPU).
        clock: seconds counter (tests inject a stub; default ``time.perf_counter``).

    Returns:
        A :class:`Latency`.

    Raises:
        LatencyError: unknown runtime or device, or non-positive sizes/counts.
    """
    if runtime not in RUNTIMES:
        raise LatencyError(f"runtime {runtime!r} is unknown: use one of {', '.join(RUNTIMES)}")
    if batch_size < 1 or input_size < 8 or min_repeats < 1 or warmup < 0:
        raise LatencyError(
            f"measure_latency needs batch_size >= 1, input_size >= 8, min_repeats >= 1 and "
            f"warmup >= 0 (got {batch_size}, {input_size}, {min_repeats}, {warmup})"
        )
    runner = runner_for(device)
    dev = runner.device
    arch = model_or_spec.canonical if isinstance(model_or_spec, ArchSpec) else None
    settle_allocator()
    with torch_threads(threads):
        used_threads = torch.get_num_threads()
        if isinstance(model_or_spec, ArchSpec):
            with torch.random.fork_rng(devices=[]):  # keep the caller's RNG stream (trial seeds)
                model = build(model_or_spec)
        else:
            model = model_or_spec
        model = model.eval().to(dev)
        gen = torch.Generator().manual_seed(0)  # not the global RNG: trial seeds stay intact
        x = torch.randn(batch_size, 3, input_size, input_size, generator=gen).to(dev)
        if channels_last and runtime == "torch":
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        with contextlib.ExitStack() as stack:
            if runtime == "torch":
                run = inference_call(model, x)
            else:
                folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="mdsearch-onnx-"))
                run = _onnxruntime_call(model, x, Path(folder) / "model.onnx", dev, used_threads)
            seconds = runner.time_calls(
                run,
                warmup=warmup,
                min_repeats=min_repeats,
                max_repeats=max_repeats,
                max_seconds=max_seconds,
                target_rel_error=target_rel_error,
                clock=clock,
            )
    per_image = sorted(s * 1e3 / batch_size for s in seconds)
    median = statistics.median(per_image)
    lo, hi = median_ci(per_image)
    q1, _, q3 = statistics.quantiles(per_image, n=4) if len(per_image) > 1 else (median,) * 3
    return Latency(
        median_ms_per_image=median,
        ci_low_ms=lo,
        ci_high_ms=hi,
        iqr_ms=q3 - q1,
        rel_error=(hi - lo) / 2 / median if median > 0 else 0.0,
        repeats=len(per_image),
        warmup=warmup,
        batch_size=batch_size,
        input_size=input_size,
        threads=used_threads,
        device=str(dev),
        device_name=runner.device_name(),
        runtime=runtime,
        torch_version=torch.__version__,
        arch=arch,
    )


def time_module(
    module: nn.Module,
    x: torch.Tensor,
    *,
    warmup: int = 3,
    min_repeats: int = 15,
    max_seconds: float = 1.0,
    target_rel_error: float = 0.03,
) -> float:
    """Median milliseconds of one inference forward pass of ``module`` on ``x`` (whole batch).

    The default :data:`StageTimer` of :func:`~mdsearch.mdconv.build_latency_table`: a short
    measurement (at most about ``max_seconds``) of one part of a network, on ``x``'s device
    (through that device's :class:`~mdsearch.mdconv.LatencyRunner`), with the current thread
    count.
    """
    seconds = runner_for(x.device).time_calls(
        inference_call(module.eval(), x),
        warmup=warmup,
        min_repeats=min_repeats,
        max_seconds=max_seconds,
        target_rel_error=target_rel_error,
    )
    return statistics.median(seconds) * 1e3


def settle_allocator() -> None:
    """Put the C allocator in the state a long-running process reaches, before timing.

    glibc's malloc adapts its mmap and trim thresholds to the largest block freed so far (up to
    32 MiB). Until a large block has been freed, a forward pass can hand its multi-megabyte
    activations back to the OS and page-fault them in again on every call: measured here, one
    MobileNet-v2 stage at 224 px took 11 ms instead of 4 ms depending only on what the process
    had run before (the same stage, in the same process, after a larger block was freed: 4 ms).
    Allocating and freeing one block just under 32 MiB raises both thresholds for good; with
    other allocators this is one harmless allocation.
    """
    block = torch.empty(32 * 2**20 - 2 * 4096, dtype=torch.uint8)  # malloc'd with mmap
    del block  # freed: glibc raises its thresholds to this size


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Torch intra-op threads set to ``threads`` inside the block, restored after it.

    Args:
        threads: CPU threads (``None``: leave torch's setting as it is).

    Yields:
        The thread count in effect inside the block.

    Raises:
        LatencyError: ``threads`` below 1.
    """
    if threads is None:
        yield torch.get_num_threads()
        return
    if threads < 1:
        raise LatencyError(f"threads={threads} must be at least 1 (or None for torch's setting)")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


def _onnxruntime_call(
    model: nn.Module, x: torch.Tensor, path: Path, dev: torch.device, threads: int
) -> Callable[[], Any]:
    import onnxruntime as ort

    cpu_model, cpu_x = model.to("cpu"), x.to("cpu")
    with torch.no_grad():
        # The TorchScript exporter: a fixed-shape graph in a second, no dynamo tracing needed.
        torch.onnx.export(
            cpu_model, (cpu_x,), str(path), input_names=["x"], output_names=["y"], dynamo=False
        )
    model.to(dev)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if dev.type == "cuda":
        providers.insert(0, "CUDAExecutionProvider")
    session = ort.InferenceSession(str(path), options, providers=providers)
    feed = {"x": cpu_x.numpy()}

    def run() -> Any:
        return session.run(None, feed)

    return run
