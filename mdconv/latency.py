"""Inference latency of an architecture: measured on the whole network, or predicted from a
per-stage lookup table (as Once-for-All does) cheaply enough to be an objective inside a search.

Convention (everywhere in mdsearch): **latency = median milliseconds per image of an inference
forward pass** (``eval()``, no autograd) at a named input size (square, 3 channels) and batch
size, on a named device, thread count and runtime (PyTorch eager or ONNX Runtime). At batch 1 this
is the delay a user feels; at larger batches it is the inverse of throughput.

Why not FLOPs: MD-Conv in all stride-2 stages of MobileNet-v2 adds 4% FLOPs but trained at
0.72-0.79x the baseline's images/s on a 2-core CPU (DESIGN.md). Depthwise convs are memory-bound,
so time follows the memory traffic and the kernel library's code paths, not the multiply-adds.

The table (:class:`LatencyTable`) holds one time per stem, head (everything after the last stage,
classifier included) and stage variant (a stage with one :class:`~mdsearch.space.StageSpec`), each
timed once on its own input shape. A whole network is predicted as their sum. Tables are cached
as JSON files in the user cache dir, one per backbone, input size, batch size, device, thread
count and torch version, and grow as the search asks for new stage variants.

Example:
    >>> from mdsearch.space import ArchSpec
    >>> spec = ArchSpec.parse("mobilenetv2_100:c14:k3,k3,k3,k3,k3,k3.5s1:1,k3")
    >>> lat = measure_latency(spec, input_size=224, max_seconds=2.0)   # doctest: +SKIP
    >>> lat.median_ms_per_image, lat.rel_error                          # doctest: +SKIP
    (12.7, 0.021)
    >>> predict_latency(spec, input_size=224)                           # doctest: +SKIP
    12.3
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mdsearch.space import ArchSpec, StageSpec

from .builder import build
from .errors import LatencyError

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

RUNTIMES = ("torch", "onnxruntime")

#: A timing function for :func:`build_latency_table`: milliseconds for one forward pass of
#: ``module`` on ``x`` (the whole batch). Tests inject a stub; the default is :func:`time_module`.
StageTimer = Callable[[nn.Module, torch.Tensor], float]

_TABLE_VERSION = 2  # 2: the whole-network overhead term


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
    dev = _device(device)
    arch = model_or_spec.canonical if isinstance(model_or_spec, ArchSpec) else None
    settle_allocator()
    with _num_threads(threads):
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
                run = _torch_runner(model, x)
            else:
                folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="mdsearch-onnx-"))
                run = _onnxruntime_runner(model, x, Path(folder) / "model.onnx", dev, used_threads)
            sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else None
            seconds = _time_calls(
                run,
                sync=sync,
                warmup=warmup,
                min_repeats=min_repeats,
                max_repeats=max_repeats,
                max_seconds=max_seconds,
                target_rel_error=target_rel_error,
                clock=clock,
            )
    per_image = sorted(s * 1e3 / batch_size for s in seconds)
    median = statistics.median(per_image)
    lo, hi = _median_ci(per_image)
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
        device_name=device_name(dev),
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

    The default :data:`StageTimer` of :func:`build_latency_table`: a short measurement (at most
    about ``max_seconds``) of one part of a network, on ``x``'s device, with the current thread
    count.
    """
    module = module.eval()
    sync = (lambda: torch.cuda.synchronize(x.device)) if x.device.type == "cuda" else None
    seconds = _time_calls(
        _torch_runner(module, x),
        sync=sync,
        warmup=warmup,
        min_repeats=min_repeats,
        max_repeats=10_000,
        max_seconds=max_seconds,
        target_rel_error=target_rel_error,
        clock=time.perf_counter,
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


# -- the per-stage table --------------------------------------------------------------------
@dataclass
class LatencyTable:
    """Per-part inference latencies of one backbone on one device: the lookup table.

    Args:
        key: what the times are valid for: ``backbone``, ``input_size``, ``batch_size``,
            ``device``, ``device_name``, ``threads``, ``torch_version``, ``runtime``.
        stem_ms: stem (first conv + norm), ms per image.
        head_ms: everything after the last stage (last 1x1 conv, pooling, classifier), ms per
            image. (Class count changes it negligibly: one small linear layer.)
        stages: ``"stage{i}:{token}"`` (e.g. ``"stage5:k3.5s1:1"``) -> ms per image of stage
            ``i`` (all its blocks) built with that :class:`~mdsearch.space.StageSpec`.
        overhead_ms: the default network timed whole minus the sum of its parts (stem, default
            stages, head), ms per image, added to every prediction: what running the parts as
            one network costs beyond timing them one by one (interpreter, allocation and cache
            effects between parts). Without it the sum of parts came out 13-16% below the
            measured networks, with it within 3% (benchmarks/bench_latency.py).
        path: the JSON file it was loaded from / is saved to, if any.
    """

    key: dict[str, Any]
    stem_ms: float | None = None
    head_ms: float | None = None
    stages: dict[str, float] = field(default_factory=dict)
    overhead_ms: float | None = None
    path: Path | None = None

    @property
    def backbone(self) -> str:
        """The backbone the table times."""
        return self.key["backbone"]

    @staticmethod
    def entry(index: int, stage: StageSpec) -> str:
        """The table key of stage ``index`` built as ``stage``."""
        return f"stage{index}:{stage.token}"

    def missing(self, spec: ArchSpec) -> list[str]:
        """Table keys ``spec`` needs that are not timed yet (``"stem"``, stages, ``"head"``,
        ``"overhead"``)."""
        self._check_backbone(spec)
        need = [] if self.stem_ms is not None else ["stem"]
        need += [
            self.entry(i, s)
            for i, s in enumerate(spec.stages)
            if self.entry(i, s) not in self.stages
        ]
        need += [] if self.head_ms is not None else ["head"]
        return need + ([] if self.overhead_ms is not None else ["overhead"])

    def parts(self, spec: ArchSpec) -> list[tuple[str, float]]:
        """``(row, ms per image)`` for stem, ``stage0`` .. ``stageN`` and head of ``spec``.

        Raises:
            LatencyError: another backbone, or parts not in the table yet.
        """
        missing = [m for m in self.missing(spec) if m != "overhead"]
        if missing:
            raise LatencyError(
                f"latency table has no time for {', '.join(missing)}: fill it with "
                "build_latency_table(..., table=table) or call predict_latency without a table"
            )
        rows = [("stem", self.stem_ms)]
        rows += [(f"stage{i}", self.stages[self.entry(i, s)]) for i, s in enumerate(spec.stages)]
        return rows + [("head", self.head_ms)]

    def predict(self, spec: ArchSpec) -> float:
        """Predicted ms per image of ``spec``: stem + each stage's variant + head + overhead."""
        if self.overhead_ms is None:
            self.parts(spec)  # names missing parts first, if any
            raise LatencyError(
                "latency table has no whole-network overhead yet: fill it with "
                "build_latency_table(..., table=table) or call predict_latency without a table"
            )
        return sum(ms for _, ms in self.parts(spec)) + self.overhead_ms

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "version": _TABLE_VERSION,
            "key": self.key,
            "stem_ms": self.stem_ms,
            "head_ms": self.head_ms,
            "stages": dict(sorted(self.stages.items())),
            "overhead_ms": self.overhead_ms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: Path | None = None) -> LatencyTable:
        """Inverse of :meth:`to_dict`. A version-1 table (no overhead term, predictions were
        the plain sum of parts, e.g. in an older run's config.json) loads with overhead 0, so a
        resumed run keeps predicting what it predicted before."""
        version = data.get("version")
        if version not in (1, _TABLE_VERSION):
            raise LatencyError(
                f"latency table {path or ''} has version {version!r}, expected "
                f"{_TABLE_VERSION}: delete the file to re-time"
            )
        overhead = data.get("overhead_ms") if version == _TABLE_VERSION else 0.0
        return cls(
            key=dict(data["key"]),
            stem_ms=data.get("stem_ms"),
            head_ms=data.get("head_ms"),
            stages={str(k): float(v) for k, v in data.get("stages", {}).items()},
            overhead_ms=overhead,
            path=path,
        )

    def save(self, path: str | Path | None = None) -> Path:
        """Write the table as JSON (atomically, merged with entries another process saved).

        Search trials run in parallel and may time different stage variants; the file is locked,
        re-read and merged so no process's entries are lost.
        """
        from filelock import FileLock

        target = Path(path or self.path or "")
        if not str(target):
            raise LatencyError("latency table has no path: pass save(path)")
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock"):
            if target.exists():
                other = LatencyTable.from_dict(json.loads(target.read_text()), target)
                if other.key == self.key:
                    merged = {**other.stages, **self.stages}
                    self.stages = merged
                    self.stem_ms = self.stem_ms if self.stem_ms is not None else other.stem_ms
                    self.head_ms = self.head_ms if self.head_ms is not None else other.head_ms
                    if self.overhead_ms is None:
                        self.overhead_ms = other.overhead_ms
            tmp = target.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
            os.replace(tmp, target)
        self.path = target
        return target

    def _check_backbone(self, spec: ArchSpec) -> None:
        if spec.backbone != self.backbone:
            raise LatencyError(
                f"latency table times {self.backbone}, not {spec.backbone}: use "
                f"latency_table({spec.backbone!r}, ...)"
            )


def table_key(
    backbone: str,
    input_size: int = 224,
    *,
    batch_size: int = 1,
    threads: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """What a table's times are valid for (its cache file name is derived from this)."""
    dev = _device(device)
    return {
        "backbone": backbone,
        "input_size": int(input_size),
        "batch_size": int(batch_size),
        "device": dev.type,
        "device_name": device_name(dev),
        "threads": int(threads or torch.get_num_threads()),
        "torch_version": torch.__version__,
        "runtime": "torch",
        "table_version": _TABLE_VERSION,  # in the file name's digest: old tables are re-timed
    }


def latency_table(
    backbone: str,
    input_size: int = 224,
    *,
    batch_size: int = 1,
    threads: int | None = None,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
) -> LatencyTable:
    """The cached table for this backbone, input size, batch, device, threads and torch version.

    Empty (nothing timed) when no cache file exists yet. Cache folder: ``cache_dir``, else
    ``$MDSEARCH_CACHE_DIR/latency``, else the user cache dir (``~/.cache/mdsearch/latency`` on
    Linux).
    """
    key = table_key(backbone, input_size, batch_size=batch_size, threads=threads, device=device)
    path = _cache_folder(cache_dir) / _table_file_name(key)
    if path.exists():
        try:
            table = LatencyTable.from_dict(json.loads(path.read_text()), path)
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise LatencyError(
                f"latency table {path} is unreadable ({exc}): delete it to re-time"
            ) from exc
        if table.key == key:
            return table
    return LatencyTable(key=key, path=path)


def build_latency_table(
    backbone: str,
    input_size: int = 224,
    *,
    variants: Iterable[ArchSpec] | Mapping[int, Sequence[StageSpec]] | None = None,
    batch_size: int = 1,
    threads: int | None = None,
    device: str = "cpu",
    timer: StageTimer | None = None,
    table: LatencyTable | None = None,
) -> LatencyTable:
    """Time the stem, head and every stage variant not yet in ``table``.

    Each part runs on its own input shape (captured from the backbone's default network), in
    ``eval()`` mode, one after another; times are stored per image.

    Args:
        backbone: timm backbone name.
        input_size: side of the square 3-channel input, pixels.
        variants: the stage variants to time: architectures (each of their stages), a mapping
            ``stage index -> StageSpecs`` (e.g. a ``SearchSpace``'s ``choices`` as
            ``dict(enumerate(space.choices))``), or ``None`` for only the default network's
            stages.
        batch_size: images per timed forward pass.
        threads: CPU threads while timing (``None``: current torch setting).
        device: ``"cpu"`` or ``"cuda"``.
        timer: ms of one forward pass of a module on an input (default :func:`time_module`;
            tests inject a stub).
        table: a table to extend in place (its key must match); default a new empty one.

    Returns:
        The table (not saved: call :meth:`LatencyTable.save`).
    """
    key = table_key(backbone, input_size, batch_size=batch_size, threads=threads, device=device)
    if table is None:
        table = LatencyTable(key=key)
    elif {k: table.key.get(k) for k in ("backbone", "input_size", "batch_size")} != {
        k: key[k] for k in ("backbone", "input_size", "batch_size")
    }:
        raise LatencyError(
            f"latency table {table.path or ''} is for {table.key}, not {backbone} at "
            f"{input_size} px batch {batch_size}"
        )
    timer = timer or time_module
    base = ArchSpec.default(backbone)
    # The default network's own stages always: the overhead term is measured on it.
    wanted = list(_stage_variants(base, [base])) + list(_stage_variants(base, variants))
    todo = [(i, s) for i, s in dict.fromkeys(wanted) if table.entry(i, s) not in table.stages]
    if not todo and not table.missing(base):
        return table
    dev = _device(device)
    settle_allocator()
    with _num_threads(threads), torch.no_grad(), torch.random.fork_rng(devices=[]):
        model = build(base).eval().to(dev)
        inputs = _stage_inputs(model, input_size, batch_size, dev)
        if table.stem_ms is None:
            table.stem_ms = timer(_Stem(model), inputs["stem"]) / batch_size
        if table.head_ms is None:
            table.head_ms = timer(_head(model), inputs["head"]) / batch_size
        for i, stage in todo:
            variant = (
                model
                if stage == base.stages[i]
                else build(base.with_stage(i, stage.kernels, stage.split))
            )
            block = variant.blocks[i].eval().to(dev)
            table.stages[table.entry(i, stage)] = timer(block, inputs[i]) / batch_size
        if table.overhead_ms is None:
            whole = timer(model, inputs["stem"]) / batch_size
            table.overhead_ms = whole - sum(ms for _, ms in table.parts(base))
    return table


def predict_latency(
    spec: ArchSpec,
    input_size: int = 224,
    table: LatencyTable | None = None,
    *,
    batch_size: int = 1,
    threads: int | None = None,
    device: str = "cpu",
    timer: StageTimer | None = None,
) -> float:
    """Predicted inference latency of ``spec``, ms per image: the sum of its table entries.

    Cheap once the table holds the spec's stage variants (a dict look-up per stage); a variant
    not timed yet is timed now (about a second each) and, for the cached table, saved. Inside a
    search, build the table for the whole space once before the trials start (see
    :func:`build_latency_table`), so no trial times anything.

    Args:
        spec: the architecture.
        input_size: side of the square input, pixels (ignored when ``table`` is given).
        table: the table to use; default the cached one for this backbone/device/threads
            (:func:`latency_table`), created on first use.
        batch_size: images per forward pass (ignored when ``table`` is given).
        threads: CPU threads (ignored when ``table`` is given).
        device: ``"cpu"`` or ``"cuda"`` (ignored when ``table`` is given).
        timer: timing function for missing entries (default :func:`time_module`).

    Returns:
        Milliseconds per image (stem + each stage's variant + head).
    """
    if table is None:
        table = latency_table(
            spec.backbone, input_size, batch_size=batch_size, threads=threads, device=device
        )
    if table.missing(spec):
        build_latency_table(
            table.backbone,
            table.key["input_size"],
            variants=[spec],
            batch_size=table.key["batch_size"],
            threads=table.key["threads"],
            device=table.key["device"],
            timer=timer,
            table=table,
        )
        if table.path is not None:
            table.save()
    return table.predict(spec)


def format_latency(
    spec: ArchSpec,
    input_size: int = 224,
    *,
    batch_size: int = 1,
    threads: int | None = None,
    device: str = "cpu",
    runtime: str = "torch",
    measure: bool = True,
    max_seconds: float = 5.0,
) -> str:
    """Latency lines for ``mdsearch show``: measured whole-network latency and the table's
    prediction, with device, threads, batch and input size.

    Args:
        spec: the architecture.
        input_size: side of the square input, pixels.
        batch_size: images per forward pass.
        threads: CPU threads (``None``: current torch setting).
        device: ``"cpu"`` or ``"cuda"``.
        runtime: ``"torch"`` or ``"onnxruntime"`` for the measured line (the table is torch).
        measure: also measure the whole network (a few seconds); else only the prediction.
        max_seconds: time budget of the measurement, seconds.

    Returns:
        Multi-line text (no trailing newline).
    """
    predicted = predict_latency(
        spec, input_size, batch_size=batch_size, threads=threads, device=device
    )
    with _num_threads(threads):
        n = torch.get_num_threads()
    dev = _device(device)
    lines = [
        f"latency = median ms per image, inference, {input_size}x{input_size}, batch "
        f"{batch_size}, {dev} [{device_name(dev)}], {n} threads, torch {torch.__version__}"
    ]
    lines.append(
        f"  per-stage table predicts (torch): {predicted:.2f} ms/image (stem + stages + head + "
        "whole-network overhead)"
    )
    if measure:
        lat = measure_latency(
            spec,
            input_size=input_size,
            batch_size=batch_size,
            threads=threads,
            device=device,
            runtime=runtime,
            max_seconds=max_seconds,
        )
        lines.append(
            f"  measured ({runtime}): {lat.median_ms_per_image:.2f} ms/image (95% CI "
            f"{lat.ci_low_ms:.2f}-{lat.ci_high_ms:.2f}, {lat.repeats} repeats)"
        )
    return "\n".join(lines)


# -- internals ------------------------------------------------------------------------------
class _Stem(nn.Module):
    """The network up to the first stage (timm EfficientNet / MobileNetV3: conv_stem, bn1)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.conv_stem, self.bn1 = model.conv_stem, model.bn1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn1(self.conv_stem(x))


def _head(model: nn.Module) -> nn.Module:
    """The network after the last stage: its children after ``blocks``, in order (EfficientNet:
    conv_head, bn2, global_pool, classifier; MobileNetV3: global_pool, conv_head, norm_head,
    act2, flatten, classifier). Dropout is inactive in eval mode, so this is ``forward`` exactly.
    """
    names = [name for name, _ in model.named_children()]
    return nn.Sequential(*[getattr(model, n) for n in names[names.index("blocks") + 1 :]])


def _stage_inputs(
    model: nn.Module, input_size: int, batch_size: int, dev: torch.device
) -> dict[Any, torch.Tensor]:
    """Random inputs shaped like what the stem, each stage and the head receive."""
    if not all(hasattr(model, a) for a in ("conv_stem", "bn1", "blocks")):
        raise LatencyError(
            f"{type(model).__name__} is not a timm EfficientNet/MobileNetV3: the latency table "
            "needs conv_stem, bn1 and blocks"
        )
    shapes: dict[Any, torch.Size] = {}
    hooks = [
        stage.register_forward_pre_hook(lambda _m, a, i=i: shapes.__setitem__(i, a[0].shape))
        for i, stage in enumerate(model.blocks)
    ]
    hooks.append(
        model.blocks.register_forward_hook(
            lambda _m, _a, out: shapes.__setitem__("head", out.shape)
        )
    )
    x = torch.zeros(1, 3, input_size, input_size, device=dev)
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    shapes["stem"] = x.shape
    gen = torch.Generator(device="cpu").manual_seed(0)
    return {k: torch.randn((batch_size, *s[1:]), generator=gen).to(dev) for k, s in shapes.items()}


def _stage_variants(
    base: ArchSpec, variants: Iterable[ArchSpec] | Mapping[int, Sequence[StageSpec]] | None
) -> Iterator[tuple[int, StageSpec]]:
    seen: set[tuple[int, StageSpec]] = set()
    if variants is None:
        pairs: Iterable[tuple[int, StageSpec]] = enumerate(base.stages)
    elif isinstance(variants, Mapping):
        pairs = ((int(i), s) for i, ss in variants.items() for s in ss)
    else:
        pairs = []
        for spec in variants:
            if spec.backbone != base.backbone:
                raise LatencyError(
                    f"variant {spec.canonical} is not a {base.backbone} architecture"
                )
            pairs.extend(enumerate(spec.stages))
    for i, stage in pairs:
        if isinstance(stage, str):
            stage = StageSpec.parse(stage)
        if (i, stage) not in seen:
            seen.add((i, stage))
            yield i, stage


def _time_calls(
    run: Callable[[], Any],
    *,
    sync: Callable[[], None] | None,
    warmup: int,
    min_repeats: int,
    max_repeats: int,
    max_seconds: float,
    target_rel_error: float,
    clock: Callable[[], float],
) -> list[float]:
    """Seconds of each timed call of ``run`` (see :func:`measure_latency` for the stop rule)."""
    for _ in range(warmup):
        run()
    if sync:
        sync()
    times: list[float] = []
    start = clock()
    while True:
        t0 = clock()
        run()
        if sync:
            sync()
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
            lo, hi = _median_ci(ordered)
            if median > 0 and (hi - lo) / 2 / median <= target_rel_error:
                break
    return times


def _median_ci(ordered: Sequence[float]) -> tuple[float, float]:
    """Distribution-free 95% CI of the median from sorted samples (binomial order statistics,
    normal approximation: ranks n/2 -+ 1.96 sqrt(n)/2)."""
    n = len(ordered)
    half = 1.96 * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half))
    hi = min(n - 1, math.ceil(n / 2 + half) - 1)
    return ordered[lo], ordered[hi]


def _torch_runner(model: nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    def run() -> Any:
        with torch.inference_mode():
            return model(x)

    return run


def _onnxruntime_runner(
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


def _device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise LatencyError(f"device {device!r} is not a torch device: use 'cpu' or 'cuda'") from exc
    if dev.type not in ("cpu", "cuda"):
        raise LatencyError(f"device {device!r} is not supported: use 'cpu' or 'cuda'")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LatencyError(f"device {device!r} asked for but CUDA is not available: use 'cpu'")
    return dev


def device_name(device: str | torch.device = "cpu") -> str:
    """The model name of the CPU (from /proc/cpuinfo, else ``platform``) or of the CUDA GPU."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "cpu"


@contextlib.contextmanager
def _num_threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    if threads < 1:
        raise LatencyError(f"threads={threads} must be at least 1 (or None for torch's setting)")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cache_folder(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("MDSEARCH_CACHE_DIR")
    if env:
        return Path(env) / "latency"
    import platformdirs

    return Path(platformdirs.user_cache_dir("mdsearch")) / "latency"


def _table_file_name(key: Mapping[str, Any]) -> str:
    import hashlib

    digest = hashlib.sha1(json.dumps(dict(key), sort_keys=True).encode()).hexdigest()[:10]
    return (
        f"{key['backbone']}-{key['input_size']}px-b{key['batch_size']}-{key['device']}-"
        f"t{key['threads']}-{digest}.json"
    )
