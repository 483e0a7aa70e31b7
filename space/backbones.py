"""Stage layouts of the supported timm backbones, as plain data.

``space/`` must not import torch models, yet validating an :class:`~mdsearch.space.ArchSpec` needs
each stage's depthwise channel counts. This table holds them; it was generated from timm 1.0 and
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


BACKBONES: dict[str, BackboneLayout] = {
    "mobilenetv2_035": BackboneLayout(
        "mobilenetv2_035",
        16,
        (
            StageLayout("ds", 1, 1, 8, (16,), 3, False),
            StageLayout("ir", 2, 2, 8, (48, 48), 3, False),
            StageLayout("ir", 3, 2, 16, (48, 96, 96), 3, False),
            StageLayout("ir", 4, 2, 24, (96, 144, 144, 144), 3, False),
            StageLayout("ir", 3, 1, 32, (144, 192, 192), 3, False),
            StageLayout("ir", 3, 2, 56, (192, 336, 336), 3, False),
            StageLayout("ir", 1, 1, 112, (336,), 3, False),
        ),
    ),
    "mobilenetv2_050": BackboneLayout(
        "mobilenetv2_050",
        16,
        (
            StageLayout("ds", 1, 1, 8, (16,), 3, False),
            StageLayout("ir", 2, 2, 16, (48, 96), 3, False),
            StageLayout("ir", 3, 2, 16, (96, 96, 96), 3, False),
            StageLayout("ir", 4, 2, 32, (96, 192, 192, 192), 3, False),
            StageLayout("ir", 3, 1, 48, (192, 288, 288), 3, False),
            StageLayout("ir", 3, 2, 80, (288, 480, 480), 3, False),
            StageLayout("ir", 1, 1, 160, (480,), 3, False),
        ),
    ),
    "mobilenetv2_075": BackboneLayout(
        "mobilenetv2_075",
        24,
        (
            StageLayout("ds", 1, 1, 16, (24,), 3, False),
            StageLayout("ir", 2, 2, 24, (96, 144), 3, False),
            StageLayout("ir", 3, 2, 24, (144, 144, 144), 3, False),
            StageLayout("ir", 4, 2, 48, (144, 288, 288, 288), 3, False),
            StageLayout("ir", 3, 1, 72, (288, 432, 432), 3, False),
            StageLayout("ir", 3, 2, 120, (432, 720, 720), 3, False),
            StageLayout("ir", 1, 1, 240, (720,), 3, False),
        ),
    ),
    "mobilenetv2_100": BackboneLayout(
        "mobilenetv2_100",
        32,
        (
            StageLayout("ds", 1, 1, 16, (32,), 3, False),
            StageLayout("ir", 2, 2, 24, (96, 144), 3, False),
            StageLayout("ir", 3, 2, 32, (144, 192, 192), 3, False),
            StageLayout("ir", 4, 2, 64, (192, 384, 384, 384), 3, False),
            StageLayout("ir", 3, 1, 96, (384, 576, 576), 3, False),
            StageLayout("ir", 3, 2, 160, (576, 960, 960), 3, False),
            StageLayout("ir", 1, 1, 320, (960,), 3, False),
        ),
    ),
    "mobilenetv2_140": BackboneLayout(
        "mobilenetv2_140",
        48,
        (
            StageLayout("ds", 1, 1, 24, (48,), 3, False),
            StageLayout("ir", 2, 2, 32, (144, 192), 3, False),
            StageLayout("ir", 3, 2, 48, (192, 288, 288), 3, False),
            StageLayout("ir", 4, 2, 88, (288, 528, 528, 528), 3, False),
            StageLayout("ir", 3, 1, 136, (528, 816, 816), 3, False),
            StageLayout("ir", 3, 2, 224, (816, 1344, 1344), 3, False),
            StageLayout("ir", 1, 1, 448, (1344,), 3, False),
        ),
    ),
    "mobilenetv3_large_075": BackboneLayout(
        "mobilenetv3_large_075",
        16,
        (
            StageLayout("ds", 1, 1, 16, (16,), 3, False),
            StageLayout("ir", 2, 2, 24, (64, 72), 3, False),
            StageLayout("ir", 3, 2, 32, (72, 96, 96), 5, True),
            StageLayout("ir", 4, 2, 64, (192, 160, 144, 144), 3, False),
            StageLayout("ir", 2, 1, 88, (384, 528), 3, True),
            StageLayout("ir", 3, 2, 120, (528, 720, 720), 5, True),
            StageLayout("cn", 1, 1, 720, (), None, False),
        ),
    ),
    "mobilenetv3_large_100": BackboneLayout(
        "mobilenetv3_large_100",
        16,
        (
            StageLayout("ds", 1, 1, 16, (16,), 3, False),
            StageLayout("ir", 2, 2, 24, (64, 72), 3, False),
            StageLayout("ir", 3, 2, 40, (72, 120, 120), 5, True),
            StageLayout("ir", 4, 2, 80, (240, 200, 184, 184), 3, False),
            StageLayout("ir", 2, 1, 112, (480, 672), 3, True),
            StageLayout("ir", 3, 2, 160, (672, 960, 960), 5, True),
            StageLayout("cn", 1, 1, 960, (), None, False),
        ),
    ),
    "mobilenetv3_small_050": BackboneLayout(
        "mobilenetv3_small_050",
        16,
        (
            StageLayout("ds", 1, 2, 8, (16,), 3, True),
            StageLayout("ir", 2, 2, 16, (40, 56), 3, False),
            StageLayout("ir", 3, 2, 24, (64, 144, 144), 5, True),
            StageLayout("ir", 2, 1, 24, (72, 72), 5, True),
            StageLayout("ir", 3, 2, 48, (144, 288, 288), 5, True),
            StageLayout("cn", 1, 1, 288, (), None, False),
        ),
    ),
    "mobilenetv3_small_075": BackboneLayout(
        "mobilenetv3_small_075",
        16,
        (
            StageLayout("ds", 1, 2, 16, (16,), 3, True),
            StageLayout("ir", 2, 2, 24, (72, 88), 3, False),
            StageLayout("ir", 3, 2, 32, (96, 192, 192), 5, True),
            StageLayout("ir", 2, 1, 40, (96, 120), 5, True),
            StageLayout("ir", 3, 2, 72, (240, 432, 432), 5, True),
            StageLayout("cn", 1, 1, 432, (), None, False),
        ),
    ),
    "mobilenetv3_small_100": BackboneLayout(
        "mobilenetv3_small_100",
        16,
        (
            StageLayout("ds", 1, 2, 16, (16,), 3, True),
            StageLayout("ir", 2, 2, 24, (72, 88), 3, False),
            StageLayout("ir", 3, 2, 40, (96, 240, 240), 5, True),
            StageLayout("ir", 2, 1, 48, (120, 144), 5, True),
            StageLayout("ir", 3, 2, 96, (288, 576, 576), 5, True),
            StageLayout("cn", 1, 1, 576, (), None, False),
        ),
    ),
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
