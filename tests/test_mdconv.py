"""MDConv2d exactness, the builder on timm backbones, head init and weight inheritance."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.layers import MixedConv2d, create_conv2d
from torch import nn

from mdsearch.mdconv import BuildError, MDConv2d, build, inherit_weights
from mdsearch.space import BACKBONES, ArchSpec, get_backbone, split_channels


def _reference(conv: MDConv2d, x: torch.Tensor) -> torch.Tensor:
    """Split the channels, convolve each group with its own kernel, concatenate."""
    outs, lo = [], 0
    for c, ch in zip(conv.convs, conv.group_channels):
        k = c.kernel_size[0]
        outs.append(
            F.conv2d(
                x[:, lo : lo + ch],
                c.weight,
                c.bias,
                stride=conv.stride,
                padding=k // 2 * conv.dilation,
                dilation=conv.dilation,
                groups=ch,
            )
        )
        lo += ch
    return torch.cat(outs, 1)


@pytest.mark.parametrize(
    "channels,kernels,split,stride,dilation",
    [
        (7, (3, 5), (1, 1), 1, 1),
        (13, (3, 5), (1, 3), 2, 1),
        (30, (3, 5), (3, 1), 2, 1),
        (11, (3, 5, 7), (2, 1, 1), 1, 1),
        (9, (5, 3), (1, 2), 2, 1),
        (12, (3, 5), (1, 1), 1, 2),
        (16, (3,), (), 2, 1),
    ],
)
def test_mdconv_equals_split_convolve_concatenate(channels, kernels, split, stride, dilation):
    torch.manual_seed(0)
    conv = MDConv2d(
        channels, kernels, split, stride=stride, dilation=dilation, bias=True, impl="split"
    )
    for c in conv.convs:
        nn.init.normal_(c.bias)
    x = torch.randn(2, channels, 15, 15)
    out = conv(x)
    assert torch.equal(out, _reference(conv, x))
    assert out.shape == (2, channels, -(-15 // stride), -(-15 // stride))
    assert conv.group_channels == split_channels(channels, split or (1,) * len(kernels))


@pytest.mark.parametrize("channels", [7, 16, 33])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernels", [(3, 5), (3, 5, 7)])
def test_mdconv_equals_timm_mixedconv_for_equal_split(channels, stride, kernels):
    torch.manual_seed(1)
    ours = MDConv2d(channels, kernels, stride=stride, impl="split")
    theirs = create_conv2d(channels, channels, list(kernels), stride=stride, depthwise=True)
    assert isinstance(theirs, MixedConv2d)
    assert ours.group_channels == list(theirs.splits)
    for ours_conv, their_conv in zip(ours.convs, theirs.values()):
        their_conv.weight.data.copy_(ours_conv.weight.data)
    x1 = torch.randn(2, channels, 17, 17, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    out1, out2 = ours(x1), theirs(x2)
    assert torch.equal(out1, out2)
    grad = torch.randn_like(out1)
    out1.backward(grad)
    out2.backward(grad)
    assert torch.equal(x1.grad, x2.grad)
    for ours_conv, their_conv in zip(ours.convs, theirs.values()):
        assert torch.equal(ours_conv.weight.grad, their_conv.weight.grad)


@pytest.mark.parametrize(
    "channels,kernels,split,stride,dilation,bias,channels_last,size",
    [
        (13, (3, 5), (1, 3), 1, 1, True, True, (14, 15)),
        (13, (3, 5), (1, 1), 2, 1, False, True, (14, 15)),
        (11, (3, 5, 7), (2, 1, 1), 1, 2, True, False, (14, 15)),
        (9, (5, 3), (1, 2), 1, 1, False, False, (14, 15)),
        (8, (3, 7), (), 1, 1, False, True, (14, 15)),
        (10, (3, 5, 7), (), 2, 1, True, False, (17, 16)),
        (12, (3, 5), (1, 1), 1, 1, False, True, (5, 4)),  # small maps: 3x3 blocks
        (10, (3, 5, 7), (2, 1, 1), 2, 1, False, True, (7, 6)),
        (6, (3, 5), (1, 1), 1, 1, True, True, (2, 1)),  # maps smaller than the kernels
    ],
)
@pytest.mark.parametrize("impl", ["fused", "padded"])
def test_fused_mdconv_equals_split_reference_with_gradients(
    channels, kernels, split, stride, dilation, bias, channels_last, size, impl
):
    """The fast CPU path (one padded conv forward and input gradient, weight gradients of large
    kernels from k x 3 column blocks), and the padded conv through autograd, compute the
    reference's outputs and gradients (up to float summation order)."""
    torch.manual_seed(0)
    fused = MDConv2d(channels, kernels, split, stride, dilation, bias, impl=impl)
    ref = MDConv2d(channels, kernels, split, stride, dilation, bias, impl="split")
    for c in fused.convs:
        if c.bias is not None:
            nn.init.normal_(c.bias)
    ref.load_state_dict(fused.state_dict())  # same layout whatever the impl
    x = torch.randn(3, channels, *size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out1, out2 = fused(x1), ref(x2)
    torch.testing.assert_close(out1, out2, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out1)
    out1.backward(grad)
    out2.backward(grad)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-5, atol=1e-5)
    for (name, p1), p2 in zip(fused.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-5, atol=1e-4, msg=name)
    with torch.no_grad():  # inference takes the padded conv without autograd.Function
        torch.testing.assert_close(fused(x), ref(x), rtol=1e-5, atol=1e-5)
    # Weights only (frozen input), and input only (frozen weights), as in fine-tuning.
    fused.zero_grad()
    fused(x).sum().backward()
    assert all(p.grad is not None for p in fused.parameters())
    for p in fused.parameters():
        p.requires_grad_(False)
    x3 = x.clone().requires_grad_(True)
    fused(x3).backward(grad)
    torch.testing.assert_close(x3.grad, x2.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", ["auto", "padded"])
def test_mdconv_trains_under_cpu_autocast(impl):
    """Mixed precision (bf16 autocast on CPU): auto/fused takes the reference path, padded its
    own (plain autograd); both train."""
    conv = MDConv2d(16, (3, 5), (1, 1), impl=impl)
    x = torch.randn(2, 16, 12, 12, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(x)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert x.grad is not None and all(c.weight.grad is not None for c in conv.convs)


def test_mdconv_impl_is_checked_and_auto_is_default():
    conv = MDConv2d(8, (3, 5))
    assert conv.impl == "auto"
    x = torch.randn(2, 8, 10, 10, requires_grad=True)
    # auto takes the fast fused path on CPU (the benchmarked one); FLOP counts trace the split
    # path (tests/test_cost.py checks that padded taps are not counted).
    assert type(conv(x).grad_fn).__name__ == "_FusedMDConvBackward"
    assert type(MDConv2d(8, (3, 5), impl="split")(x).grad_fn).__name__ == "CatBackward0"
    padded = MDConv2d(8, (3, 5), impl="padded")(x).grad_fn
    assert type(padded).__name__ == "ConvolutionBackward0"
    # On a device nobody measured (here: meta), auto takes the reference path.
    meta = conv.to("meta")(torch.empty(2, 8, 10, 10, device="meta", requires_grad=True))
    assert type(meta.grad_fn).__name__ == "CatBackward0"
    with pytest.raises(BuildError, match="impl"):
        MDConv2d(8, (3, 5), impl="winograd")


def test_mdconv_channel_rounding_and_errors():
    assert MDConv2d(7, (3, 5)).group_channels == [4, 3]
    assert MDConv2d(30, (3, 5), (1, 3)).group_channels == [8, 22]
    conv = MDConv2d(10, (3, 5, 7), (1, 1, 1))
    assert conv.group_channels == [4, 3, 3]
    assert conv.kernels == (3, 5, 7) and conv.split == (1, 1, 1)
    with pytest.raises(BuildError, match="empty"):
        MDConv2d(2, (3, 5, 7))
    with pytest.raises(BuildError, match="odd"):
        MDConv2d(8, (3, 4))
    with pytest.raises(BuildError, match="one split part per kernel"):
        MDConv2d(8, (3, 5), (1, 1, 1))


REQUIRED = ["mobilenetv2_100", "mobilenetv2_050", "mobilenetv2_035", "mobilenetv3_large_100"]


def _mixed_spec(backbone: str) -> ArchSpec:
    """MD-Conv 1:1 in stage5, 1:3 in stage1, and stage3 changed to a single other kernel."""
    base = ArchSpec.default(backbone, num_classes=3)
    k3 = base.stages[3].kernels[0]
    return (
        base.with_stage(5, (3, 5), (1, 1))
        .with_stage(1, (3, 5), (1, 3))
        .with_stage(3, (5 if k3 == 3 else 3,))
    )


@pytest.mark.parametrize("backbone", REQUIRED)
def test_build_places_the_spec_kernels_in_every_block(backbone):
    torch.manual_seed(0)
    spec = _mixed_spec(backbone)
    model = build(spec).eval()
    layout = get_backbone(backbone)
    for i, (stage, lay) in enumerate(zip(spec.stages, layout.stages)):
        assert len(model.blocks[i]) == lay.repeats
        for j, block in enumerate(model.blocks[i]):
            dw = getattr(block, "conv_dw", None)
            if not stage.kernels:
                assert dw is None
            elif stage.is_mdconv:
                assert isinstance(dw, MDConv2d)
                assert dw.kernels == stage.kernels
                assert dw.group_channels == split_channels(lay.dw_channels[j], stage.split)
                assert dw.stride == (lay.stride if j == 0 else 1)
            else:
                assert type(dw) is nn.Conv2d and dw.kernel_size == (stage.kernels[0],) * 2
                assert dw.groups == dw.in_channels == lay.dw_channels[j]
                assert dw.stride[0] == (lay.stride if j == 0 else 1)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 3)
    assert torch.isfinite(out).all()
    # Squeeze-excitation and norms are timm's own and survive the replacement.
    if layout.stages[5].se:
        assert type(model.blocks[5][0].se).__name__ == "SqueezeExcite"


@pytest.mark.parametrize("backbone", ["mobilenetv2_050", "mobilenetv3_large_100"])
def test_build_default_spec_is_timm_model(backbone):
    torch.manual_seed(123)
    ours = build(ArchSpec.default(backbone, num_classes=5)).eval()
    torch.manual_seed(123)
    theirs = timm.create_model(backbone, pretrained=False, num_classes=5).eval()
    ours_state, their_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(their_state)
    for key, value in ours_state.items():
        assert torch.equal(value, their_state[key]), key
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


def test_build_passes_timm_kwargs_and_refuses_pretrained():
    model = build(ArchSpec.default("mobilenetv2_035", 2), in_chans=1, drop_rate=0.2)
    assert model.conv_stem.in_channels == 1 and model.drop_rate == 0.2
    with pytest.raises(BuildError, match="never downloads"):
        build(ArchSpec.default("mobilenetv2_035", 2), pretrained=True)
    with pytest.raises(BuildError, match="head_init"):
        build(ArchSpec.default("mobilenetv2_035", 2), head_init="zeros")


@pytest.mark.parametrize("backbone", ["mobilenetv2_050", "mobilenetv3_large_100"])
def test_head_init_small(backbone):
    torch.manual_seed(0)
    timm_head = build(ArchSpec.default(backbone, 3)).get_classifier()
    torch.manual_seed(0)
    model = build(ArchSpec.default(backbone, 3), head_init="small")
    head = model.get_classifier()
    bound = head.in_features**-0.5
    assert head.weight.abs().max() <= bound
    assert head.weight.abs().max() > 0.5 * bound  # uniform over the range, not collapsed
    assert torch.equal(head.bias, torch.zeros_like(head.bias))
    # timm's own init is much wider for few classes (the reason for "small").
    assert timm_head.weight.std() > 3 * head.weight.std()


def test_inherit_weights_keeps_the_source_function():
    torch.manual_seed(0)
    source = build(ArchSpec.default("mobilenetv2_035", 4)).eval()
    # Make BN statistics non-trivial so a copy mistake shows in the outputs.
    for m in source.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    spec = (
        ArchSpec.default("mobilenetv2_035", 4)
        .with_stage(5, (3, 5), (1, 1))
        .with_stage(2, (3, 5, 7), (1, 2, 1))
        .with_stage(3, (5,))
    )
    torch.manual_seed(1)
    target = inherit_weights(build(spec).eval(), source)
    dw = target.blocks[5][1].conv_dw
    src_w = source.blocks[5][1].conv_dw.weight
    g3, g5 = dw.group_channels
    assert torch.equal(dw.convs[0].weight, src_w[:g3])
    assert torch.equal(dw.convs[1].weight[:, :, 1:4, 1:4], src_w[g3:])
    assert dw.convs[1].weight[:, :, 0].abs().sum() == 0  # zero ring around the 3x3
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x), rtol=1e-5, atol=1e-5)
    # And back: a plain network inherits the MD-Conv network's 3x3 group exactly.
    plain = inherit_weights(build(ArchSpec.default("mobilenetv2_035", 4)), target)
    assert torch.equal(plain.blocks[5][1].conv_dw.weight[:g3], src_w[:g3])


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_every_backbone_builds_with_mdconv_everywhere(backbone):
    spec = ArchSpec.default(backbone, num_classes=2)
    for i, stage in enumerate(spec.stages):
        if stage.kernels:
            spec = spec.with_stage(i, (3, 5), (1, 1))
    model = build(spec).eval()
    n_md = sum(isinstance(m, MDConv2d) for m in model.modules())
    assert n_md == sum(len(s.dw_channels) for s in get_backbone(backbone).stages)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 2)
