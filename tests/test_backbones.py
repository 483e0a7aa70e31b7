"""Every row of mdsearch.space.BACKBONES matches the timm model it describes."""

from __future__ import annotations

import pytest
import timm
from timm.models._efficientnet_blocks import ConvBnAct, DepthwiseSeparableConv, InvertedResidual
from torch import nn

from mdsearch.space import BACKBONES

BLOCK_TYPES = {"ds": DepthwiseSeparableConv, "ir": InvertedResidual, "cn": ConvBnAct}


def _out_channels(block: nn.Module) -> int:
    for name in ("conv_pwl", "conv_pw", "conv"):  # conv_pwl first: ir blocks also have conv_pw
        conv = getattr(block, name, None)
        if isinstance(conv, nn.Conv2d):
            return conv.out_channels
    raise AssertionError(f"no output conv in {type(block).__name__}")


def _stride(block: nn.Module) -> int:
    conv = getattr(block, "conv_dw", None) or block.conv
    return conv.stride[0]


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_layout_matches_timm(name):
    layout = BACKBONES[name]
    model = timm.create_model(name, pretrained=False, num_classes=2)
    assert model.conv_stem.out_channels == layout.stem_channels
    assert model.conv_stem.stride == (2, 2)
    assert len(model.blocks) == len(layout.stages)
    for i, (stage, lay) in enumerate(zip(model.blocks, layout.stages)):
        where = f"{name} stage{i}"
        assert len(stage) == lay.repeats, where
        assert _stride(stage[0]) == lay.stride, where
        assert all(_stride(b) == 1 for b in stage[1:]), where
        assert _out_channels(stage[-1]) == lay.out_channels, where
        assert all(isinstance(b, BLOCK_TYPES[lay.block]) for b in stage), where
        dws = [getattr(b, "conv_dw", None) for b in stage]
        if lay.kernel is None:
            assert all(dw is None for dw in dws) and lay.dw_channels == (), where
        else:
            assert tuple(dw.in_channels for dw in dws) == lay.dw_channels, where
            assert all(dw.groups == dw.in_channels for dw in dws), where
            assert all(dw.kernel_size == (lay.kernel, lay.kernel) for dw in dws), where
        has_se = [not isinstance(getattr(b, "se", nn.Identity()), nn.Identity) for b in stage]
        assert all(se == lay.se for se in has_se), where
