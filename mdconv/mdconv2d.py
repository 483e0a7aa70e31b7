"""MD-Conv: a depthwise convolution whose channels are split between several kernel sizes.

Paper (PAPER.md): the channels of one depthwise convolution are split in groups, group ``i`` is
convolved with ``k_i x k_i`` depthwise kernels, and the outputs are concatenated in input channel
order. Same padding, stride and dilation for every group. This is MixConv (timm's
``timm.layers.MixedConv2d``) generalised to any integer channel split, not only equal parts.

Speed on CPU (oneDNN, torch 2.x; benchmarks/bench_mdconv.py): a 5x5 depthwise conv's forward and
input gradient cost about what a 3x3's do, but oneDNN's depthwise *weight* gradient is fast only
for 3x3 kernels (for 5x5 it is 8-30x slower), and that one call dominates MD-Conv training. Two
implementations compute the same numbers (up to float summation order):

* ``impl="split"`` (the default, ``"auto"``): split the channels, one conv per group, concatenate;
  autograd does the backward. This is what timm's MixedConv2d does.
* ``impl="fused"`` (opt-in, experimental): forward as one depthwise conv over all channels with
  every kernel zero-padded to the largest; backward per group, the weight gradient of a kernel
  larger than 3 at stride 1 as several 3x3 weight gradients over shifted windows of the padded
  input. Its forward alone is faster, but in fwd+bwd on this 2-core CPU it measured 1.0-1.4x
  *slower* than ``split`` (window copies and separate input/weight-gradient calls cost more
  than the slow 5x5 weight gradient saves), so it is not the default.

``split`` is always used while tracing (fvcore FLOP counts: the padded taps must not count) and
during ONNX export.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mdsearch.space import split_channels

from .errors import BuildError

__all__ = ["IMPLS", "MDConv2d"]

#: ``auto`` is ``split`` (the fastest measured here); see the module docstring.
IMPLS = ("auto", "fused", "split")


class MDConv2d(nn.Module):
    """Depthwise convolution over a kernel set with an integer channel split.

    Channels per group follow :func:`mdsearch.space.split_channels` (floor of each part, the
    remainder to the first group; for equal parts exactly ``timm.layers.MixedConv2d``'s rule). The
    first ``group_channels[0]`` channels go through ``kernels[0]``, the next through
    ``kernels[1]``, and so on; output channel ``c`` comes from input channel ``c``. Padding is
    symmetric, ``k // 2 * dilation`` per group, so every group keeps the same output size (as
    timm's default padding does for odd kernels at stride 1 or 2).

    Cost on an ``H x W`` output: ``sum(k_i**2 * c_i) * H * W`` multiply-adds, ``sum(k_i**2 * c_i)``
    weights (+ ``channels`` biases when ``bias``).

    Args:
        channels: depthwise channels (input = output).
        kernels: odd kernel sizes, one per group, e.g. ``(3, 5)``.
        split: integer parts per group, e.g. ``(1, 1)`` (i3:i5 in the paper); default equal parts.
        stride: stride of every group.
        dilation: dilation of every group.
        bias: whether each group carries a bias.
        impl: ``"auto"``, ``"fused"`` or ``"split"`` (same numbers up to float rounding; see
            the module docstring). Settable later as the attribute ``impl``; not in the
            state dict, whose layout (``convs.{i}.weight``) is the same for all.

    Attributes:
        kernels: the kernel sizes, as given.
        split: the integer parts, as given.
        group_channels: channels per group, summing to ``channels``.
        convs: one depthwise ``nn.Conv2d`` per group (weights ``(c_i, 1, k_i, k_i)``).

    Example:
        >>> conv = MDConv2d(30, kernels=(3, 5), split=(1, 3))
        >>> conv.group_channels, tuple(conv(torch.zeros(1, 30, 8, 8)).shape)
        ([8, 22], (1, 30, 8, 8))
    """

    def __init__(
        self,
        channels: int,
        kernels: Sequence[int] = (3, 5),
        split: Sequence[int] = (),
        stride: int = 1,
        dilation: int = 1,
        bias: bool = False,
        impl: str = "auto",
    ) -> None:
        super().__init__()
        if impl not in IMPLS:
            raise BuildError(f"MDConv2d impl {impl!r} is unknown: use one of {', '.join(IMPLS)}")
        kernels = tuple(int(k) for k in kernels)
        split = tuple(int(p) for p in split) if split else (1,) * len(kernels)
        if not kernels or len(split) != len(kernels):
            raise BuildError(f"MDConv2d needs one split part per kernel, got {kernels} / {split}")
        if any(k < 1 or k % 2 == 0 for k in kernels):
            raise BuildError(f"MDConv2d kernels {kernels} must be odd (same padding needs it)")
        if any(p < 1 for p in split):
            raise BuildError(f"MDConv2d split {split} must have positive parts")
        group_channels = split_channels(channels, split)
        if min(group_channels) < 1:
            raise BuildError(
                f"MDConv2d split {split} of {channels} channels leaves a group empty "
                f"({group_channels}): use a more even split or fewer kernels"
            )
        self.channels = channels
        self.kernels = kernels
        self.split = split
        self.group_channels = group_channels
        self.stride = stride
        self.dilation = dilation
        self.impl = impl
        self.convs = nn.ModuleList(
            nn.Conv2d(
                ch,
                ch,
                k,
                stride=stride,
                padding=k // 2 * dilation,
                dilation=dilation,
                groups=ch,
                bias=bias,
            )
            for k, ch in zip(kernels, group_channels)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """timm's EfficientNet/MobileNet init for a depthwise conv: N(0, sqrt(2 / k^2)), bias 0.

        (``_init_weight_goog`` with fan-out ``k * k * out / groups = k * k``.) Used for groups
        that :func:`~mdsearch.mdconv.inherit_weights` does not fill.
        """
        for conv in self.convs:
            k = conv.kernel_size[0]
            nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / (k * k)))
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.convs) == 1:
            return self.convs[0](x)
        if self.impl != "fused" or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            parts = torch.split(x, self.group_channels, dim=1)
            return torch.cat([conv(p) for conv, p in zip(self.convs, parts)], dim=1)
        weights = [c.weight for c in self.convs]
        biases = [c.bias for c in self.convs] if self.convs[0].bias is not None else []
        meta = (self.kernels, tuple(self.group_channels), self.stride, self.dilation)
        if not torch.is_grad_enabled() or not (
            x.requires_grad or any(w.requires_grad for w in weights + biases)
        ):
            return _fused_forward(x, meta, weights, biases)
        return _FusedMDConv.apply(x, meta, len(biases) > 0, *weights, *biases)

    def extra_repr(self) -> str:
        ks = "+".join(f"{k}x{k}" for k in self.kernels)
        split = ":".join(str(p) for p in self.split)
        return (
            f"{self.channels}, kernels={ks}, split={split}, group_channels={self.group_channels}, "
            f"stride={self.stride}, dilation={self.dilation}"
        )


# -- the fused implementation -----------------------------------------------------------------
_conv_backward = torch.ops.aten.convolution_backward


def _fused_forward(x, meta, weights, biases):
    """One depthwise conv, every group's kernel zero-padded to the largest."""
    kernels, groups, stride, dilation = meta
    kmax = max(kernels)
    weight = torch.cat(
        [F.pad(w, ((kmax - k) // 2,) * 4) if k < kmax else w for w, k in zip(weights, kernels)]
    )
    bias = torch.cat(biases) if biases else None
    return F.conv2d(x, weight, bias, stride, kmax // 2 * dilation, dilation, sum(groups))


def _group_backward(grad, x, weight, k, channels, stride, dilation, *, want_input):
    """One kernel group's input gradient (``want_input``) or weight gradient, as a depthwise conv
    with same padding."""
    mask = [want_input, not want_input, False]
    out = _conv_backward(
        grad, x, weight, None, [stride] * 2, [k // 2 * dilation] * 2, [dilation] * 2, False,
        [0, 0], channels, mask,
    )  # fmt: skip
    return out[0] if want_input else out[1]


class _FusedMDConv(torch.autograd.Function):
    """Fused forward; per-group backward with fast weight gradients (see module docstring)."""

    @staticmethod
    def forward(ctx, x, meta, has_bias, *params):
        n = len(meta[0])
        weights, biases = list(params[:n]), list(params[n:]) if has_bias else []
        ctx.meta, ctx.has_bias = meta, has_bias
        ctx.save_for_backward(x, *weights)
        return _fused_forward(x, meta, weights, biases)

    @staticmethod
    def backward(ctx, grad):
        x, *weights = ctx.saved_tensors
        kernels, groups, stride, dilation = ctx.meta
        # oneDNN's fast depthwise kernels want dense inputs in one memory format; a channel slice
        # of a channels_last tensor is neither format, and left alone it is converted to NCHW.
        memory_format = _memory_format(grad)
        xs = [t.contiguous(memory_format=memory_format) for t in x.split(groups, 1)]
        gs = [t.contiguous(memory_format=memory_format) for t in grad.split(groups, 1)]
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.cat(
                [
                    _group_backward(g, xi, w, k, c, stride, dilation, want_input=True)
                    for g, xi, w, k, c in zip(gs, xs, weights, kernels, groups)
                ],
                1,
            )
        grad_w = []
        for i, (g, xi, w, k, c) in enumerate(zip(gs, xs, weights, kernels, groups)):
            if not ctx.needs_input_grad[3 + i]:
                grad_w.append(None)
            elif k > 3 and stride == 1:
                grad_w.append(_weight_grad_by_3x3(g, xi, k, dilation))
            else:
                grad_w.append(_group_backward(g, xi, w, k, c, stride, dilation, want_input=False))
        grad_b = [g.sum((0, 2, 3)) for g in gs] if ctx.has_bias else []
        return (grad_x, None, None, *grad_w, *grad_b)


def _memory_format(t: torch.Tensor) -> torch.memory_format:
    """channels_last when ``t`` is laid out NHWC (as a channels_last network's tensors are)."""
    if t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def _weight_grad_by_3x3(grad, x, k, dilation):
    """Weight gradient of a stride-1 ``k x k`` depthwise conv (padding ``k // 2 * dilation``)
    from 3x3 weight gradients; ``grad`` and ``x`` dense in the same memory format.

    Tap ``d`` (offset from the centre) of the large kernel gets ``sum_p grad(p) x(p + d)``. The
    3x3 conv without padding over the window of the padded input that starts at offset
    ``(r + a - 1) * dilation`` sees taps ``a - 1 .. a + 1``, so windows centred at
    ``a in {-r+1, ..., r-1}`` (every third, plus the last) cover all taps; overlaps agree.
    """
    r = k // 2
    n, c, h, w = grad.shape
    memory_format = _memory_format(grad)
    padded = F.pad(x, (r * dilation,) * 4)
    centres = list(range(-r + 1, r, 3))
    if centres[-1] != r - 1:
        centres.append(r - 1)
    win_h, win_w = h + 2 * dilation, w + 2 * dilation
    out = grad.new_zeros(c, 1, k, k)
    kernel3 = grad.new_empty(c, 1, 3, 3)
    for a in centres:
        for b in centres:
            top, left = (r + a - 1) * dilation, (r + b - 1) * dilation
            window = padded[:, :, top : top + win_h, left : left + win_w]
            window = window.contiguous(memory_format=memory_format)
            block = _conv_backward(
                grad,
                window,
                kernel3,
                None,
                [1, 1],
                [0, 0],
                [dilation] * 2,
                False,
                [0, 0],
                c,
                [False, True, False],
            )[1]
            out[:, :, r + a - 1 : r + a + 2, r + b - 1 : r + b + 2] = block
    return out
