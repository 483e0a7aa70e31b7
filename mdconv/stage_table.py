"""The per-stage latency lookup table: build it, save and load it, predict from it.

A whole network's latency is predicted (as Once-for-All does) cheaply enough to be an objective
inside a search: the table (:class:`LatencyTable`) holds one time per stem, head (everything
after the last stage, classifier included) and stage variant (a stage with one
:class:`~mdsearch.space.StageSpec`), each timed once on its own input shape, plus one
whole-network overhead term. A network is predicted as their sum. Latency follows the convention
of :mod:`mdsearch.mdconv.latency_timing` (median ms per image, inference).

Tables are cached as JSON files in the user cache dir, one per backbone, input size, batch size,
device, thread count and torch version, and grow as the search asks for new stage variants.

Example:
    >>> from mdsearch.space import ArchSpec
    >>> spec = ArchSpec.parse("mobilenetv2_100:c14:k3,k3,k3,k3,k3,k3.5s1:1,k3")
    >>> predict_latency(spec, input_size=224)                           # doctest: +SKIP
    12.3
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mdsearch.space import ArchSpec, StageSpec, atomic_write_text

from .builder import build
from .errors import LatencyError
from .latency_runners import device_name, runner_for
from .latency_timing import StageTimer, settle_allocator, time_module, torch_threads

__all__ = [
    "LatencyTable",
    "build_latency_table",
    "head_module",
    "latency_table",
    "predict_latency",
    "stem_module",
    "table_key",
]

_TABLE_VERSION = 2  # 2: the whole-network overhead term


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
            atomic_write_text(target, json.dumps(self.to_dict(), indent=1) + "\n")
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
    dev = runner_for(device).device
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
    dev = runner_for(device).device
    settle_allocator()
    with torch_threads(threads), torch.no_grad(), torch.random.fork_rng(devices=[]):
        model = build(base).eval().to(dev)
        inputs = _stage_inputs(model, input_size, batch_size, dev)
        if table.stem_ms is None:
            table.stem_ms = timer(stem_module(model), inputs["stem"]) / batch_size
        if table.head_ms is None:
            table.head_ms = timer(head_module(model), inputs["head"]) / batch_size
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


class _Stem(nn.Module):
    """The network up to the first stage (timm EfficientNet / MobileNetV3: conv_stem, bn1)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.conv_stem, self.bn1 = model.conv_stem, model.bn1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn1(self.conv_stem(x))


def stem_module(model: nn.Module) -> nn.Module:
    """The part of a timm EfficientNet / MobileNetV3 before its first stage (``conv_stem``,
    ``bn1``), sharing the network's weights: the table's ``stem`` row.

    ``head_module(model)(model.blocks(stem_module(model)(x)))`` is ``model(x)`` in eval mode.
    """
    return _Stem(model)


def head_module(model: nn.Module) -> nn.Module:
    """The network after the last stage: its children after ``blocks``, in order, sharing the
    network's weights: the table's ``head`` row (EfficientNet: conv_head, bn2, global_pool,
    classifier; MobileNetV3: global_pool, conv_head, norm_head, act2, flatten, classifier).
    Dropout is inactive in eval mode, so this is ``forward`` exactly.
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


def _cache_folder(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("MDSEARCH_CACHE_DIR")
    if env:
        return Path(env) / "latency"
    import platformdirs

    return Path(platformdirs.user_cache_dir("mdsearch")) / "latency"


def _table_file_name(key: Mapping[str, Any]) -> str:
    digest = hashlib.sha1(json.dumps(dict(key), sort_keys=True).encode()).hexdigest()[:10]
    return (
        f"{key['backbone']}-{key['input_size']}px-b{key['batch_size']}-{key['device']}-"
        f"t{key['threads']}-{digest}.json"
    )
