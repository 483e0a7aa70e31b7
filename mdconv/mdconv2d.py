"""MD-Conv: a depthwise convolution whose channels are split between several kernel sizes.

Paper (PAPER.md): the channels of one depthwise convolution are split in groups, group ``i`` is
convolved with ``k_i x k_i`` depthwise kernels, and the outputs are concatenated in input channel
order. Same padding, stride and dilation for every group. This is MixConv (timm's
``timm.layers.MixedConv2d``) generalised to any integer channel split, not only equal parts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from mdsearch.space import split_channels

from .errors import BuildError

__all__ = ["MDConv2d"]


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
    ) -> None:
        super().__init__()
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
        parts = torch.split(x, self.group_channels, dim=1)
        return torch.cat([conv(p) for conv, p in zip(self.convs, parts)], dim=1)

    def extra_repr(self) -> str:
        ks = "+".join(f"{k}x{k}" for k in self.kernels)
        split = ":".join(str(p) for p in self.split)
        return (
            f"{self.channels}, kernels={ks}, split={split}, group_channels={self.group_channels}, "
            f"stride={self.stride}, dilation={self.dilation}"
        )
