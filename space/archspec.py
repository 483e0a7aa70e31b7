"""One architecture as plain data.

An :class:`ArchSpec` names a timm backbone, its number of classes and, for every stage of the
backbone (Table 1 of the paper: stage0 .. stage6 = timm ``blocks[0..6]``), the depthwise kernel
sizes and how the depthwise channels are split between them. Everything downstream speaks it.

Canonical string (one per network; printable, hashable, diffable)::

    mobilenetv2_100:c14:k3,k3,k3,k3,k3,k3.5s1:1,k3
    |backbone      |classes |stage0 .. stage6, comma separated

Stage tokens:

    k3          plain depthwise conv, 3x3
    k5          plain depthwise conv, 5x5 (also what a 0:1 split of (3, 5) normalises to)
    k3.5s1:1    MD-Conv: kernels 3 and 5, channels split i3:i5 = 1:1
    k3.5.7s2:1:1  any odd kernel set > 1, any integer split
    -           the stage has no depthwise conv (e.g. MobileNet-v3's last 1x1 conv stage)

Normalisation (two specs that build the same network have the same string): kernels are sorted
ascending (split reordered with them), zero parts are dropped, the split is divided by its
greatest common divisor, and a single remaining kernel has no split.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backbones import BackboneLayout, get_backbone
from .errors import ArchSpecError

__all__ = ["ArchSpec", "StageSpec", "ArchSpecError", "split_channels", "SCHEMA"]

SCHEMA = "mdsearch.ArchSpec/1"
_TOKEN = re.compile(r"^k(?P<kernels>\d+(?:\.\d+)*)(?:s(?P<split>\d+(?::\d+)*))?$")


def split_channels(channels: int, split: Sequence[int]) -> list[int]:
    """Channels per kernel group for a split given as integer parts.

    Rounding rule: each group gets ``floor(channels * part / sum(parts))`` and the remainder goes
    to the first group. For equal parts this is exactly ``timm.layers.MixedConv2d``'s rule.

    Args:
        channels: depthwise channels of the convolution.
        split: integer parts, one per kernel group (e.g. ``(1, 1)``).

    Returns:
        Channel counts per group, summing to ``channels``; a count may be 0 (callers validate).

    Example:
        >>> split_channels(30, (1, 1)), split_channels(30, (1, 3)), split_channels(7, (1, 1))
        ([15, 15], [8, 22], [4, 3])
    """
    total = sum(split)
    groups = [channels * part // total for part in split]
    groups[0] += channels - sum(groups)
    return groups


@dataclass(frozen=True)
class StageSpec:
    """Depthwise kernels of one stage and the channel split between them.

    Args:
        kernels: odd kernel sizes > 1, e.g. ``(3,)`` or ``(3, 5)``; ``()`` for a stage without a
            depthwise conv.
        split: integer parts per kernel (i3:i5 in the paper's notation); defaults to equal parts.
    """

    kernels: tuple[int, ...]
    split: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        kernels = tuple(int(k) for k in self.kernels)
        split = tuple(int(p) for p in self.split) if self.split else (1,) * len(kernels)
        if len(split) != len(kernels):
            raise ArchSpecError(
                f"split {_fmt_split(split)} has {len(split)} parts for kernels {kernels}: "
                "give one part per kernel"
            )
        for k in kernels:
            if k == 1:
                raise ArchSpecError(
                    "kernel size 1 is not a depthwise kernel (the paper rules it out)"
                )
            if k < 1 or k % 2 == 0:
                raise ArchSpecError(f"kernel size {k} is not allowed: use odd sizes 3, 5, 7, ...")
        if len(set(kernels)) != len(kernels):
            raise ArchSpecError(f"kernels {kernels} repeat a size: list each size once")
        if any(p < 0 for p in split) or (kernels and not any(split)):
            raise ArchSpecError(f"split {_fmt_split(split)} needs non-negative parts, not all 0")
        # Normalise: ascending kernels, no zero parts, parts divided by their gcd.
        pairs = sorted((k, p) for k, p in zip(kernels, split) if p > 0)
        kernels = tuple(k for k, _ in pairs)
        parts = [p for _, p in pairs]
        g = math.gcd(*parts) if parts else 1
        split = tuple(p // g for p in parts) if len(parts) > 1 else ((1,) if parts else ())
        object.__setattr__(self, "kernels", kernels)
        object.__setattr__(self, "split", split)

    @property
    def is_mdconv(self) -> bool:
        """True when the stage mixes two or more kernel sizes."""
        return len(self.kernels) > 1

    @property
    def token(self) -> str:
        """Canonical token, e.g. ``k3`` or ``k3.5s1:1`` (``-`` for no depthwise conv)."""
        if not self.kernels:
            return "-"
        head = "k" + ".".join(str(k) for k in self.kernels)
        return head + ("s" + _fmt_split(self.split) if self.is_mdconv else "")

    @classmethod
    def parse(cls, token: str) -> StageSpec:
        """Parse a stage token (see the module docstring)."""
        token = token.strip()
        if token == "-":
            return cls(())
        m = _TOKEN.match(token)
        if not m:
            raise ArchSpecError(
                f"stage token {token!r} is not of the form k3, k5 or k3.5s1:1 "
                "(kernels joined by '.', split parts by ':')"
            )
        kernels = tuple(int(k) for k in m["kernels"].split("."))
        split = tuple(int(p) for p in m["split"].split(":")) if m["split"] else ()
        if split and len(kernels) == 1 and split != (1,):
            raise ArchSpecError(f"stage token {token!r}: a single kernel takes no split")
        return cls(kernels, split)


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: a timm backbone with per-stage depthwise kernels and channel splits.

    Args:
        backbone: timm model name with a known stage layout (see ``mdsearch.space.BACKBONES``).
        num_classes: number of outputs (14 for ChestX-ray14).
        stages: one :class:`StageSpec` per backbone stage (Table 1 numbering).

    Example:
        >>> spec = ArchSpec.default("mobilenetv2_100").with_stage(5, (3, 5), (1, 1))
        >>> spec.canonical
        'mobilenetv2_100:c14:k3,k3,k3,k3,k3,k3.5s1:1,k3'
        >>> ArchSpec.parse(spec.canonical) == spec
        True
    """

    backbone: str
    num_classes: int
    stages: tuple[StageSpec, ...]

    def __post_init__(self) -> None:
        stages = tuple(s if isinstance(s, StageSpec) else StageSpec(*s) for s in self.stages)
        object.__setattr__(self, "stages", stages)
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ArchSpecError(f"num_classes must be a positive integer, got {self.num_classes!r}")
        self._validate(get_backbone(self.backbone))

    def _validate(self, layout: BackboneLayout) -> None:
        if len(self.stages) != len(layout.stages):
            raise ArchSpecError(
                f"{self.backbone} has {len(layout.stages)} stages, the spec gives "
                f"{len(self.stages)}: give one token per stage"
            )
        for i, (stage, lay) in enumerate(zip(self.stages, layout.stages)):
            if not lay.dw_channels and stage.kernels:
                raise ArchSpecError(
                    f"stage{i} of {self.backbone} has no depthwise conv: its token must be '-'"
                )
            if lay.dw_channels and not stage.kernels:
                raise ArchSpecError(
                    f"stage{i} of {self.backbone} has a depthwise conv: give its kernels, e.g. k3"
                )
            for ch in set(lay.dw_channels):
                if min(split_channels(ch, stage.split), default=1) < 1:
                    raise ArchSpecError(
                        f"stage{i} ({stage.token}) leaves a kernel group with 0 of its {ch} "
                        f"channels at this width: use a more even split or fewer kernels"
                    )

    # -- constructors -----------------------------------------------------------------------
    @classmethod
    def default(cls, backbone: str = "mobilenetv2_100", num_classes: int = 14) -> ArchSpec:
        """The backbone as timm defines it (no MD-Conv anywhere)."""
        layout = get_backbone(backbone)
        stages = tuple(StageSpec((s.kernel,) if s.kernel else ()) for s in layout.stages)
        return cls(backbone, num_classes, stages)

    @classmethod
    def paper(cls, backbone: str = "mobilenetv2_100", num_classes: int = 14) -> ArchSpec:
        """The paper's network: the backbone with MD-Conv (3,5) 1:1 in stage5 (Hu et al. 2020,
        Table 1), the reference every report compares against.

        Raises:
            ArchSpecError: the backbone has no stage5 with a depthwise conv.
        """
        base = cls.default(backbone, num_classes)
        if len(base.stages) <= 5 or not base.stages[5].kernels:
            raise ArchSpecError(f"{backbone} has no stage5 depthwise conv for the paper's MD-Conv")
        return base.with_stage(5, (3, 5), (1, 1))

    def with_stage(self, index: int, kernels: Sequence[int], split: Sequence[int] = ()) -> ArchSpec:
        """A copy with stage ``index`` set to ``kernels`` split as ``split``."""
        if not 0 <= index < len(self.stages):
            raise ArchSpecError(f"stage{index} does not exist in {self.backbone}")
        stages = list(self.stages)
        stages[index] = StageSpec(tuple(kernels), tuple(split))
        return ArchSpec(self.backbone, self.num_classes, tuple(stages))

    @classmethod
    def parse(cls, text: str) -> ArchSpec:
        """Parse the canonical string form (see the module docstring)."""
        parts = text.strip().split(":", 2)
        if len(parts) != 3 or not parts[1].startswith("c") or not parts[1][1:].isdigit():
            raise ArchSpecError(
                f"{text!r} is not an architecture string: expected "
                "'BACKBONE:cNUM_CLASSES:TOKEN,TOKEN,...', e.g. "
                "'mobilenetv2_100:c14:k3,k3,k3,k3,k3,k3.5s1:1,k3'"
            )
        stages = tuple(StageSpec.parse(tok) for tok in parts[2].split(","))
        return cls(parts[0], int(parts[1][1:]), stages)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchSpec:
        """Build from the JSON form (:meth:`to_dict`)."""
        try:
            spec = cls(
                str(data["backbone"]),
                int(data["num_classes"]),
                tuple(
                    StageSpec(tuple(s["kernels"]), tuple(s.get("split", ())))
                    for s in data["stages"]
                ),
            )
        except (KeyError, TypeError) as exc:
            raise ArchSpecError(
                f"architecture JSON lacks or mistypes {exc}: it needs 'backbone', 'num_classes' "
                "and 'stages' (a list of {'kernels': [...], 'split': [...]})"
            ) from None
        if "arch" in data and ArchSpec.parse(str(data["arch"])) != spec:
            raise ArchSpecError(
                f"architecture JSON is inconsistent: 'arch' says {data['arch']} but its stages "
                f"say {spec.canonical}"
            )
        return spec

    @classmethod
    def from_json(cls, source: str | Path) -> ArchSpec:
        """Load from a JSON string or an ``arch.json`` path."""
        text = str(source)
        if not text.lstrip().startswith("{"):
            path = Path(source)
            try:
                text = path.read_text()
            except OSError as exc:
                raise ArchSpecError(f"cannot read {path}: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ArchSpecError(f"not valid JSON ({exc.msg}, line {exc.lineno})") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, text_or_path: str | Path) -> ArchSpec:
        """Accept whatever a user types: a canonical string, a JSON string or an arch.json path."""
        text = str(text_or_path).strip()
        if text.startswith("{") or text.endswith(".json") or Path(text).is_file():
            return cls.from_json(text)
        return cls.parse(text)

    # -- forms ------------------------------------------------------------------------------
    @property
    def canonical(self) -> str:
        """The one string form of this network (stable; the arch id hashes it)."""
        tokens = ",".join(s.token for s in self.stages)
        return f"{self.backbone}:c{self.num_classes}:{tokens}"

    @property
    def arch_id(self) -> str:
        """Short stable id: the first 10 hex digits of SHA-1 of the canonical string."""
        return hashlib.sha1(self.canonical.encode()).hexdigest()[:10]

    @property
    def mdconv_stages(self) -> tuple[int, ...]:
        """Indices of the stages that carry MD-Conv (two or more kernel sizes)."""
        return tuple(i for i, s in enumerate(self.stages) if s.is_mdconv)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; :meth:`from_dict` reverses it exactly."""
        return {
            "schema": SCHEMA,
            "id": self.arch_id,
            "arch": self.canonical,
            "backbone": self.backbone,
            "num_classes": self.num_classes,
            "stages": [{"kernels": list(s.kernels), "split": list(s.split)} for s in self.stages],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The JSON text written as ``arch.json``."""
        return json.dumps(self.to_dict(), indent=indent)

    def __str__(self) -> str:
        return self.canonical


def _fmt_split(split: Sequence[int]) -> str:
    return ":".join(str(p) for p in split)
