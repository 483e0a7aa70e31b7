"""MD-Conv: a depthwise convolution whose channels are split between several kernel sizes.

Paper (PAPER.md): the channels of one depthwise convolution are split in groups, group ``i`` is
convolved with ``k_i x k_i`` depthwise kernels, and the outputs are concatenated in input channel
order. Same padding, stride and dilation for every group. This is MixConv (timm's
``timm.layers.MixedConv2d``) generalised to any integer channel split, not only equal parts.

Speed on CPU (oneDNN, torch 2.14, 2 threads; benchmarks/bench_mdconv.py). Splitting a
channels_last tensor along channels hands oneDNN strided slices, and a depthwise conv on them
took 6x as long as on the whole tensor (35 ms vs 6 ms forward at 8x192x56x56); and oneDNN's
depthwise *weight* gradient is fast only while the kernel is at most 3 wide (5x5: 8-20x a 3x3's
time; 5x3: as fast as 3x3 on maps of 8x8 and more). Three implementations compute the same
numbers (up to float summation order), and ``auto`` chooses between them per device:

* ``impl="fused"``: forward as one depthwise conv over all channels, every group's kernel
  zero-padded (centred) to the largest; the input gradient likewise in one call (at stride 1 as
  the forward conv of the gradient with the kernels rotated by 180 degrees); each group's
  weight gradient from its own channels, a larger-than-3 kernel's (no dilation) assembled from
  ``k x 3`` blocks (``3 x 3`` on maps under 8x8) over shifted windows of the input. fwd+bwd
  1.6-1.8x a 3x3 depthwise conv at 8x192x56x56 (the FLOPs ratio is 1.89x), where ``split`` and
  timm's MixedConv2d take 2.4-3.4x.
* ``impl="padded"``: the same one-conv forward, and autograd does the backward (one depthwise
  weight gradient of the largest kernel over all channels, cut back to each group's size). On
  CPU oneDNN's slow 5x5 weight gradient makes this as slow as ``split``; on CUDA (H100, cuDNN,
  torch 2.11, benchmarks/device_check.py) it is the fastest: fwd+bwd 1.77x a 3x3 depthwise conv
  at 64x192x56x56 (``split`` 2.79x, ``fused`` 2.55x: its many small weight-gradient calls cost
  more than they save there).
* ``impl="split"``: split the channels, one conv per group, concatenate; autograd does the
  backward. This is what timm's MixedConv2d does.
* ``impl="auto"`` (default): ``fused`` on CPU tensors, ``padded`` on CUDA, ``split`` on any other
  device (unmeasured there).

``split`` is always used while tracing (fvcore FLOP counts: the padded taps must not count) and
during ONNX export; under autocast ``fused`` falls back to ``split`` (its custom backward would
see mixed dtypes), ``padded`` does not need to. ``torch.compile`` (inductor, CPU) was tried and
made both a plain depthwise conv and ``split`` slower (16 s first-call compile), so nothing here
relies on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mdsearch.space import split_channels

from .errors import BuildError

__all__ = ["IMPLS", "MDConv2d", "init_depthwise_", "mdconv_forward", "single_kernel_depthwise"]

#: ``auto`` is ``fused`` on CPU, ``padded`` on CUDA and ``split`` elsewhere; see the module docstring.
IMPLS = ("auto", "fused", "padded", "split")
_AUTO = {"cpu": "fused", "cuda": "padded"}


def single_kernel_depthwise(
    channels: int,
    kernel: int,
    *,
    stride: int = 1,
    dilation: int = 1,
    bias: bool = False,
    init: bool = True,
) -> nn.Conv2d:
    """A depthwise ``nn.Conv2d`` with one ``kernel x kernel`` kernel and same padding.

    Args:
        channels: input = output channels (one group per channel).
        kernel: kernel side (odd).
        stride: stride.
        dilation: dilation (the padding grows with it, so the output size follows the stride).
        bias: whether the conv has a bias (timm's blocks have none; a BatchNorm follows).
        init: initialise as timm does (:func:`init_depthwise_`); ``False`` leaves torch's
            default init, for callers that initialise several convs afterwards.
    """
    conv = nn.Conv2d(
        channels,
        channels,
        kernel,
        stride=stride,
        padding=kernel // 2 * dilation,
        dilation=dilation,
        groups=channels,
        bias=bias,
    )
    if init:
        init_depthwise_(conv)
    return conv


def init_depthwise_(conv: nn.Conv2d) -> nn.Conv2d:
    """timm's EfficientNet/MobileNet init for a depthwise conv, in place: weights
    N(0, sqrt(2 / k^2)), bias 0 (``_init_weight_goog`` with fan-out ``k * k * out / groups``)."""
    k = conv.kernel_size[0]
    nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / (k * k)))
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


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
        impl: ``"auto"``, ``"fused"``, ``"padded"`` or ``"split"`` (same numbers up to float
            rounding; see the module docstring). Settable later as the attribute ``impl``; not in
            the state dict, whose layout (``convs.{i}.weight``) is the same for all.

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
        # All groups are created before any is initialised: the order of random draws (and so
        # the weights under a seed) stays what it was when this was written out here.
        self.convs = nn.ModuleList(
            single_kernel_depthwise(ch, k, stride=stride, dilation=dilation, bias=bias, init=False)
            for k, ch in zip(kernels, group_channels)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """timm's EfficientNet/MobileNet init for a depthwise conv: N(0, sqrt(2 / k^2)), bias 0.

        (``_init_weight_goog`` with fan-out ``k * k * out / groups = k * k``.) Used for groups
        that :func:`~mdsearch.mdconv.inherit_weights` does not fill.
        """
        for conv in self.convs:
            init_depthwise_(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.convs) == 1:
            return self.convs[0](x)
        weights = [c.weight for c in self.convs]
        biases = [c.bias for c in self.convs] if self.convs[0].bias is not None else []
        return mdconv_forward(
            x, weights, biases, self.kernels, self.group_channels, self.stride, self.dilation,
            self.impl,
        )  # fmt: skip

    def extra_repr(self) -> str:
        ks = "+".join(f"{k}x{k}" for k in self.kernels)
        split = ":".join(str(p) for p in self.split)
        return (
            f"{self.channels}, kernels={ks}, split={split}, group_channels={self.group_channels}, "
            f"stride={self.stride}, dilation={self.dilation}"
        )


def mdconv_forward(
    x: torch.Tensor,
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    kernels: Sequence[int],
    group_channels: Sequence[int],
    stride: int = 1,
    dilation: int = 1,
    impl: str = "auto",
) -> torch.Tensor:
    """The MD-Conv of ``x`` with the given per-group depthwise kernels, by ``impl``.

    What :class:`MDConv2d` computes, for callers that hold the weights elsewhere (the supernet's
    layer passes centre crops of one shared kernel; gradients flow back through them).

    Args:
        x: ``(N, C, H, W)`` input, ``C = sum(group_channels)``.
        weights: per group a ``(c_i, 1, k_i, k_i)`` kernel.
        biases: per group a ``(c_i,)`` bias, or empty for none.
        kernels: the kernel sizes ``k_i``.
        group_channels: the channels ``c_i`` per group.
        stride: stride of every group.
        dilation: dilation of every group.
        impl: as :class:`MDConv2d`'s (``auto`` chooses per device).
    """
    if impl == "auto":
        impl = _AUTO.get(x.device.type, "split")
    # Autocast hands the fused backward mixed dtypes (a bf16 gradient, the fp32 input it
    # saved), which aten's convolution_backward rejects: under autocast, the reference path.
    if (
        impl == "split"
        or torch.jit.is_tracing()
        or torch.onnx.is_in_onnx_export()
        or (impl == "fused" and torch.is_autocast_enabled(x.device.type))
    ):
        parts = torch.split(x, list(group_channels), dim=1)
        return torch.cat(
            [
                F.conv2d(p, w, b, stride, k // 2 * dilation, dilation, ch)
                for p, w, b, k, ch in zip(
                    parts, weights, biases or [None] * len(weights), kernels, group_channels
                )
            ],
            dim=1,
        )
    weights, biases = list(weights), list(biases)
    meta = (tuple(kernels), tuple(group_channels), stride, dilation)
    if (
        impl == "padded"
        or not torch.is_grad_enabled()
        or not (x.requires_grad or any(w.requires_grad for w in weights + biases))
    ):
        return _fused_forward(x, meta, weights, biases)
    return _FusedMDConv.apply(x, meta, len(biases) > 0, *weights, *biases)


# -- the fused implementation -----------------------------------------------------------------
_conv_backward = torch.ops.aten.convolution_backward


def _fused_forward(x, meta, weights, biases):
    """One depthwise conv, every group's kernel zero-padded to the largest."""
    kernels, groups, stride, dilation = meta
    kmax = max(kernels)
    weight = _padded_weight(weights, kernels)
    bias = torch.cat(biases) if biases else None
    return F.conv2d(x, weight, bias, stride, kmax // 2 * dilation, dilation, sum(groups))


def _padded_weight(weights, kernels):
    """All groups' depthwise kernels, each zero-padded (centred) to the largest size."""
    kmax = max(kernels)
    return torch.cat(
        [F.pad(w, ((kmax - k) // 2,) * 4) if k < kmax else w for w, k in zip(weights, kernels)]
    )


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
    """Fused forward; backward with fast weight gradients (see module docstring)."""

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
        grad = grad.contiguous(memory_format=memory_format)
        grad_x = None
        if ctx.needs_input_grad[0]:
            # One depthwise input gradient over all channels, every kernel zero-padded to the
            # largest (as in the forward); the padded taps add exact zeros.
            kmax = max(kernels)
            weight = _padded_weight(weights, kernels)
            if stride == 1:
                # At stride 1 the input gradient of a same-padded conv is the forward conv of the
                # gradient with the kernels rotated by 180 degrees; oneDNN's 5x5 forward takes
                # 0.5-0.75x the time of its 5x5 input-gradient kernel (maps 4x4 to 32x32).
                grad_x = F.conv2d(
                    grad, weight.flip(-2, -1), None, 1, kmax // 2 * dilation, dilation,
                    sum(groups),
                )  # fmt: skip
            else:
                grad_x = _conv_backward(
                    grad, x, weight, None, [stride] * 2, [kmax // 2 * dilation] * 2,
                    [dilation] * 2, False, [0, 0], sum(groups), [True, False, False],
                )[0]  # fmt: skip
        grad_w = []
        starts = [sum(groups[:i]) for i in range(len(groups))]
        for i, (w, k, c, c0) in enumerate(zip(weights, kernels, groups, starts)):
            if not ctx.needs_input_grad[3 + i]:
                grad_w.append(None)
                continue
            gi = grad[:, c0 : c0 + c].contiguous(memory_format=memory_format)
            if k > 3 and dilation == 1:
                grad_w.append(_weight_grad_by_blocks(gi, x[:, c0 : c0 + c], k, stride))
            else:
                xi = x[:, c0 : c0 + c].contiguous(memory_format=memory_format)
                grad_w.append(_group_backward(gi, xi, w, k, c, stride, dilation, want_input=False))
        grad_b = [g.sum((0, 2, 3)) for g in grad.split(groups, 1)] if ctx.has_bias else []
        return (grad_x, None, None, *grad_w, *grad_b)


#: Output maps at least this large (both sides) take ``k x 3`` blocks, smaller ones ``3 x 3``
#: blocks: oneDNN's ``5 x 3`` weight gradient is fast on 8x8 maps and larger but as slow as its
#: ``5 x 5`` on 4x4 and 2x2 maps, where ``3 x 3`` blocks stay fast (2 CPU threads, batch 32).
_TALL_BLOCKS_MIN_SIZE = 8


def _memory_format(t: torch.Tensor) -> torch.memory_format:
    """channels_last when ``t`` is laid out NHWC (as a channels_last network's tensors are)."""
    if t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def _weight_grad_by_blocks(grad, x, k, stride):
    """Weight gradient of a ``k x k`` depthwise conv (padding ``k // 2``, dilation 1) from
    weight gradients of kernels at most 3 wide; ``grad`` dense, ``x`` any view (e.g. a channel
    slice).

    oneDNN's depthwise weight gradient is fast only for kernels at most 3 wide (``5 x 3`` and
    ``3 x 3`` as fast as each other; ``5 x 5`` 8-20x slower). Tap ``(d, e)`` (offsets from the
    centre) gets ``sum_p grad(p) x(stride * p + (d, e))``. A ``k x 3`` gradient with row padding
    ``k // 2`` and no column padding, over a window of ``x`` that starts at column ``b - 1``
    (zeros outside ``x``), computes kernel columns ``b - 1 .. b + 1``; windows centred at
    ``b in {-r+1, ..., r-1}`` (every third, plus the last) cover all ``k`` columns. On small maps
    (see ``_TALL_BLOCKS_MIN_SIZE``) the blocks are ``3 x 3`` without padding, over windows
    shifted in rows too. Where two blocks overlap they compute the same numbers.
    """
    r = k // 2
    n, c, h_out, w_out = grad.shape
    tall = min(h_out, w_out) >= _TALL_BLOCKS_MIN_SIZE
    centres = list(range(-r + 1, r, 3))
    if centres[-1] != r - 1:
        centres.append(r - 1)
    height = x.shape[-2] if tall else stride * (h_out - 1) + 3
    # One buffer, refilled per window; only its border strips are zeroed (F.pad would write the
    # whole window twice, and a fresh tensor per window costs page faults on large maps).
    window = torch.empty(
        (n, c, height, stride * (w_out - 1) + 3), dtype=x.dtype, device=x.device,
        memory_format=_memory_format(grad),
    )  # fmt: skip
    kernel = grad.new_empty(c, 1, k if tall else 3, 3)
    out = grad.new_empty(c, 1, k, k)
    for a in [0] if tall else centres:
        for b in centres:
            _cut(window, x, 0 if tall else a - 1, b - 1)
            block = _conv_backward(
                grad, window, kernel, None, [stride] * 2, [r if tall else 0, 0], [1, 1], False,
                [0, 0], c, [False, True, False],
            )[1]  # fmt: skip
            rows = slice(0, k) if tall else slice(r + a - 1, r + a + 2)
            out[..., rows, r + b - 1 : r + b + 2] = block
    return out


def _cut(window, x, top, left):
    """Fill ``window`` with ``x[..., top + i, left + j]``, zeros where that is outside ``x``
    (only the border strips are zeroed: F.pad would zero the whole window first)."""
    height, width = window.shape[-2:]
    r0, r1 = max(top, 0), min(top + height, x.shape[-2])
    c0, c1 = max(left, 0), min(left + width, x.shape[-1])
    i0, i1, j0, j1 = r0 - top, r1 - top, c0 - left, c1 - left
    window[..., i0:i1, j0:j1].copy_(x[..., r0:r1, c0:c1])
    for strip in (
        window[..., :i0, :],
        window[..., i1:, :],
        window[..., i0:i1, :j0],
        window[..., i0:i1, j1:],
    ):
        if strip.numel():
            strip.zero_()
