"""Stage layouts of the supported timm backbones, as plain data.

``space/`` must not import torch models, yet validating an :class:`~mdsearch.space.ArchSpec` needs
each stage's depthwise channel counts. This table holds them, computed from timm 1.0's
architecture definitions and width multipliers the way timm computes them;
``tests/test_backbones.py`` checks every row against ``timm.create_model`` so it cannot drift.
Stages are timm's ``model.blocks[i]`` (the paper's Table 1 numbering for MobileNet-v2).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ArchSpecError

__all__ = ["StageLayout", "BackboneLayout", "BACKBONES", "get_backbone", "register_backbone"]


@dataclass(frozen=True)
class StageLayout:
    """One stage of a backbone.

    Args:
        block: timm block type: ``ds`` depthwise-separable, ``ir`` inverted residual, ``cn`` conv.
        repeats: number of blocks.
        stride: stride of the first block.
        out_channels: output channels of the stage.
        dw_channels: depthwise channels of each block (empty: the stage has no depthwise conv).
        kernel: timm's depthwise kernel size in this stage (``None``: no depthwise conv).
        se: whether the blocks carry squeeze-excitation.
    """

    block: str
    repeats: int
    stride: int
    out_channels: int
    dw_channels: tuple[int, ...]
    kernel: int | None
    se: bool


@dataclass(frozen=True)
class BackboneLayout:
    """A timm backbone's stem width and stages (stem stride is 2 for every supported backbone)."""

    name: str
    stem_channels: int
    stages: tuple[StageLayout, ...]

    def output_strides(self) -> list[int]:
        """Cumulative stride at the output of each stage (input size / this = map size)."""
        total, out = 2, []
        for s in self.stages:
            total *= s.stride
            out.append(total)
        return out

    def map_sizes(self, resolution: int) -> list[int]:
        """Side of each stage's output feature map at a square ``resolution`` input."""
        return [-(-resolution // s) for s in self.output_strides()]


# timm's architecture definitions at width 1.0 (``timm/models/_efficientnet_builder.py`` block
# strings): stem channels, then per stage ``(block, kernel, stride, se, blocks)`` where ``blocks``
# is ``(repeats, expansion, out_channels)`` runs. A width multiplier scales every channel count
# the way timm does (:func:`_round_channels`), so one definition gives the whole family.
_MOBILENETV2 = (
    32,
    (
        ("ds", 3, 1, False, ((1, 1, 16),)),
        ("ir", 3, 2, False, ((2, 6, 24),)),
        ("ir", 3, 2, False, ((3, 6, 32),)),
        ("ir", 3, 2, False, ((4, 6, 64),)),
        ("ir", 3, 1, False, ((3, 6, 96),)),
        ("ir", 3, 2, False, ((3, 6, 160),)),
        ("ir", 3, 1, False, ((1, 6, 320),)),
    ),
)
_MOBILENETV3_LARGE = (
    16,
    (
        ("ds", 3, 1, False, ((1, 1, 16),)),
        ("ir", 3, 2, False, ((1, 4, 24), (1, 3, 24))),
        ("ir", 5, 2, True, ((3, 3, 40),)),
        ("ir", 3, 2, False, ((1, 6, 80), (1, 2.5, 80), (2, 2.3, 80))),
        ("ir", 3, 1, True, ((2, 6, 112),)),
        ("ir", 5, 2, True, ((3, 6, 160),)),
        ("cn", None, 1, False, ((1, 1, 960),)),
    ),
)
_MOBILENETV3_SMALL = (
    16,
    (
        ("ds", 3, 2, True, ((1, 1, 16),)),
        ("ir", 3, 2, False, ((1, 4.5, 24), (1, 3.67, 24))),
        ("ir", 5, 2, True, ((1, 4, 40), (2, 6, 40))),
        ("ir", 5, 1, True, ((2, 3, 48),)),
        ("ir", 5, 2, True, ((3, 6, 96),)),
        ("cn", None, 1, False, ((1, 1, 576),)),
    ),
)


def _round_channels(channels: float, multiplier: float = 1.0) -> int:
    """timm's ``round_channels`` / ``make_divisible``: the nearest multiple of 8 (at least 8),
    one step up if rounding lost more than 10%."""
    v = channels * multiplier
    rounded = max(8, int(v + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * v else rounded


def _scaled_layout(
    name: str, definition: tuple, multiplier: float, fix_stem: bool
) -> BackboneLayout:
    """The layout of ``definition`` at width ``multiplier`` (timm's ``channel_multiplier``)."""
    stem_def, stage_defs = definition
    stem = stem_def if fix_stem else _round_channels(stem_def, multiplier)
    in_channels, stages = stem, []
    for block, kernel, stride, se, runs in stage_defs:
        dw: list[int] = []
        repeats = 0
        for count, expansion, out in runs:
            for _ in range(count):
                if kernel is not None:  # a depthwise block expands its input first ("ds": x1)
                    dw.append(
                        _round_channels(in_channels * expansion) if block == "ir" else in_channels
                    )
                in_channels = _round_channels(out, multiplier)
                repeats += 1
        stages.append(StageLayout(block, repeats, stride, in_channels, tuple(dw), kernel, se))
    return BackboneLayout(name, stem, tuple(stages))


# (timm model family, definition, widths in percent, width below which timm keeps the stem at
# its width-1.0 channels: ``fix_stem`` in ``timm.models.mobilenetv3``).
_FAMILIES = (
    ("mobilenetv2", _MOBILENETV2, ("035", "050", "075", "100", "140"), 0.0),
    ("mobilenetv3_large", _MOBILENETV3_LARGE, ("075", "100"), 0.75),
    ("mobilenetv3_small", _MOBILENETV3_SMALL, ("050", "075", "100"), 0.75),
)

BACKBONES: dict[str, BackboneLayout] = {
    f"{family}_{w}": _scaled_layout(
        f"{family}_{w}", definition, int(w) / 100, fix_stem=int(w) / 100 < fix_stem_below
    )
    for family, definition, widths, fix_stem_below in _FAMILIES
    for w in widths
}


def get_backbone(name: str) -> BackboneLayout:
    """Layout of a supported backbone; ArchSpecError names the supported ones otherwise."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ArchSpecError(
            f"unknown backbone {name!r}: supported are {', '.join(sorted(BACKBONES))} "
            "(others can be added with mdsearch.space.register_backbone)"
        ) from None


def register_backbone(layout: BackboneLayout) -> None:
    """Make another timm backbone with depthwise-conv blocks searchable (tests check the layout)."""
    BACKBONES[layout.name] = layout
