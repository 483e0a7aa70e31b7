"""The weight-sharing supernet: its layer and extract() are exact against MDConv2d / build(spec);
BatchNorm recalibration touches only running statistics; supernet training resumes from its
checkpoint; a scored sub-network is shaped like a proxy trial."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mdsearch.mdconv import (
    BuildError,
    MDConv2d,
    SuperDepthwiseConv2d,
    build_supernet,
    extract,
    single_kernel_depthwise,
)
from mdsearch.space import SearchSpace, StageSpec, load_space

DEFAULT_CHOICES = load_space("default").choices[1]  # k3 and the three (3,5) splits


def _standalone(layer: SuperDepthwiseConv2d, choice: StageSpec) -> nn.Module:
    """The stand-alone conv of ``choice`` holding the super layer's cropped weights."""
    crops = [c.detach().clone() for c in layer.crops(choice)]
    if len(choice.kernels) == 1:
        conv = single_kernel_depthwise(layer.channels, choice.kernels[0], stride=layer.stride)
        convs = [conv]
    else:
        conv = MDConv2d(
            layer.channels, choice.kernels, choice.split, stride=layer.stride, impl=layer.impl
        )
        convs = list(conv.convs)
    with torch.no_grad():
        for c, w in zip(convs, crops):
            c.weight.copy_(w)
    return conv


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("choice", DEFAULT_CHOICES, ids=lambda c: c.token)
@pytest.mark.parametrize("impl", ["auto", "split"])
def test_super_layer_equals_mdconv_with_cropped_weights(choice, stride, impl):
    torch.manual_seed(0)
    layer = SuperDepthwiseConv2d(24, 5, stride=stride, impl=impl)
    ref = _standalone(layer, choice)
    x = torch.randn(2, 24, 9, 9).to(memory_format=torch.channels_last).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    out = layer(x, choice)
    out_ref = ref(x_ref)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-6)
    grad = torch.randn_like(out)
    out.backward(grad)
    out_ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=0, atol=1e-6)
    # The shared kernel's gradient is the stand-alone groups' gradients placed in their crops,
    # zero on the ring a smaller kernel does not use.
    ref_grads = [c.weight.grad for c in (ref.convs if isinstance(ref, MDConv2d) else [ref])]
    expected = torch.zeros_like(layer.weight)
    for (k, lo, hi), g in zip(layer.groups(choice), ref_grads):
        c = (5 - k) // 2
        expected[lo:hi, :, c : c + k, c : c + k] = g
    torch.testing.assert_close(layer.weight.grad, expected, rtol=0, atol=1e-5)


def test_super_layer_refuses_choices_that_do_not_fit():
    layer = SuperDepthwiseConv2d(4, 5)
    with pytest.raises(BuildError, match="does not fit"):
        layer(torch.zeros(1, 4, 5, 5), StageSpec((3, 7)))
    with pytest.raises(BuildError, match="empty"):
        layer.groups(StageSpec((3, 5), (9, 1)))


def _random_bn_stats(net: nn.Module) -> None:
    """Non-trivial running statistics, so eval-mode equality covers the BatchNorm copies."""
    gen = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def test_extract_equals_supernet_with_spec_active():
    torch.manual_seed(0)
    space = load_space("paper", backbone="mobilenetv2_050")  # the paper's stages, a small net
    net = build_supernet(space, num_classes=3, head_init="small").eval()
    assert sorted(net.super_layers) == [1, 2, 3, 5]
    assert all(layer.kernel == 5 for ls in net.super_layers.values() for layer in ls)
    _random_bn_stats(net)
    x = torch.randn(2, 3, 32, 32)
    archs = list(space.enumerate(num_classes=3))
    # largest, smallest and two mixed ones (stage5 maps are 1x1 at 32 px: vary stages 1-3)
    specs = [net.largest(), net.smallest(), archs[2], archs[12]]
    outputs = set()
    for spec in specs:
        standalone = extract(net, spec)
        with torch.no_grad(), net.active(spec):
            expected = net(x)
            assert net.active_spec == spec
        with torch.no_grad():
            got = standalone(x)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        outputs.add(round(float(expected.sum()), 4))
    assert len(outputs) == len(specs)  # the sub-networks compute different things
    assert net.active_spec == net.largest()  # the context manager restored it


def test_supernet_on_mobilenetv3_with_a_7x7_choice():
    space = SearchSpace.from_dict(
        {"backbone": "mobilenetv3_small_050", "stages": {2: ["base", "k3", "k3.5.7s1:1:1"]}},
        "test",
    )
    torch.manual_seed(0)
    net = build_supernet(space, num_classes=2).eval()
    assert [layer.kernel for layer in net.super_layers[2]] == [7] * len(net.super_layers[2])
    assert net.largest().stages[2].token == "k3.5.7s1:1:1"
    assert net.smallest().stages[2].token == "k3"
    _random_bn_stats(net)
    x = torch.randn(1, 3, 64, 64)
    for spec in space.enumerate(num_classes=2):
        with torch.no_grad(), net.active(spec):
            torch.testing.assert_close(extract(net, spec)(x), net(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(BuildError, match="not in space"):
        net.set_active(load_space("paper").reference_points(2)[1])
