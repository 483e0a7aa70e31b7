"""Per-choice layers of the supernet: each stage choice owns its depthwise weights and the
BatchNorm after them (``build_supernet(..., per_choice_depthwise=True)``).

In the shared supernet (:class:`~mdsearch.mdconv.SuperDepthwiseConv2d`) a 3x3 kernel is the
centre of the 5x5 one, so training one choice moves the other's weights, and one BatchNorm sees
the outputs of every choice. Here a searched block holds, per choice of its stage, the depthwise
conv that :func:`~mdsearch.mdconv.build` makes for that choice (its own weights, initialised as
``build`` initialises them) and a copy of the block's BatchNorm; the pointwise convolutions, the
other norms and the head stay shared. Depthwise weights are 1-2% of a MobileNet's parameters, so
this costs little memory; what it removes is the coupling of the kernel sizes.

    layer = ChoiceDepthwiseConv2d(24, [StageSpec((3,)), StageSpec((3, 5), (1, 1))])
    layer.choice = StageSpec((3, 5), (1, 1))
    layer(x)                      # runs layer.convs[1], an MDConv2d
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from mdsearch.space import StageSpec, split_channels

from .builder import depthwise_conv
from .errors import BuildError
from .mdconv2d import IMPLS, MDConv2d

__all__ = ["ChoiceBatchNorm", "ChoiceDepthwiseConv2d", "channel_groups", "norm_after_depthwise"]


def channel_groups(channels: int, choice: StageSpec, kernel: int) -> list[tuple[int, int, int]]:
    """``(kernel, first channel, end channel)`` per kernel group of ``choice`` on ``channels``
    depthwise channels (:func:`~mdsearch.space.split_channels`: group ``i`` is the next ``c_i``
    channels).

    Args:
        channels: depthwise channels.
        choice: the stage choice (kernels and split).
        kernel: the largest kernel the layer can run.

    Raises:
        BuildError: a kernel larger than ``kernel``, or a split leaving a group empty.

    Example:
        >>> channel_groups(30, StageSpec((3, 5), (1, 3)), 5)
        [(3, 0, 8), (5, 8, 30)]
    """
    if not choice.kernels or max(choice.kernels) > kernel:
        raise BuildError(f"choice {choice.token} does not fit a {kernel}x{kernel} super kernel")
    counts = split_channels(channels, choice.split)
    if min(counts) < 1:
        raise BuildError(f"choice {choice.token} leaves a group of {channels} channels empty")
    out, lo = [], 0
    for k, c in zip(choice.kernels, counts):
        out.append((k, lo, lo + c))
        lo += c
    return out


class _PerChoice(nn.Module):
    """The active choice and its index among the stage's choices."""

    choices: tuple[StageSpec, ...]
    choice: StageSpec

    def index(self, choice: StageSpec | None = None) -> int:
        """Position of ``choice`` (default: the active one) among :attr:`choices`.

        Raises:
            BuildError: ``choice`` is not one of the layer's.
        """
        choice = self.choice if choice is None else choice
        try:
            return self.choices.index(choice)
        except ValueError:
            tokens = ", ".join(c.token for c in self.choices)
            raise BuildError(
                f"choice {choice.token} is not one of this layer's ({tokens})"
            ) from None


class ChoiceDepthwiseConv2d(_PerChoice):
    """One depthwise conv per stage choice, each with its own weights; runs the active choice's.

    Args:
        channels: depthwise channels (input = output).
        choices: the stage's choices (kernel set + split), in the space's order.
        stride: stride.
        dilation: dilation.
        bias: whether the convs carry a bias.
        impl: the MD-Conv implementation of the multi-kernel choices
            (:data:`~mdsearch.mdconv.IMPLS`).

    Attributes:
        convs: per choice, what :func:`~mdsearch.mdconv.depthwise_conv` builds for it (an
            :class:`~mdsearch.mdconv.MDConv2d` or a depthwise ``nn.Conv2d``): the stand-alone
            network's layer, with the same state-dict layout.
        kernel: the largest kernel of the choices.
        choice: the active choice (starts as the first).

    Example:
        >>> layer = ChoiceDepthwiseConv2d(30, [StageSpec((3,)), StageSpec((3, 5), (1, 3))])
        >>> [type(c).__name__ for c in layer.convs], layer.groups(layer.choices[1])
        (['Conv2d', 'MDConv2d'], [(3, 0, 8), (5, 8, 30)])
    """

    def __init__(
        self,
        channels: int,
        choices: Sequence[StageSpec],
        *,
        stride: int = 1,
        dilation: int = 1,
        bias: bool = False,
        impl: str = "auto",
    ) -> None:
        super().__init__()
        if impl not in IMPLS:
            raise BuildError(f"impl {impl!r} is unknown: use one of {', '.join(IMPLS)}")
        if not choices:
            raise BuildError("ChoiceDepthwiseConv2d needs at least one choice")
        self.channels = channels
        self.stride = stride
        self.dilation = dilation
        self.choices = tuple(choices)
        self.kernel = max(k for c in self.choices for k in c.kernels)
        for c in self.choices:
            channel_groups(channels, c, self.kernel)  # a split that leaves a group empty
        self.convs = nn.ModuleList(
            depthwise_conv(channels, c, stride=stride, dilation=dilation, bias=bias)
            for c in self.choices
        )
        for conv in self.convs:
            if isinstance(conv, MDConv2d):
                conv.impl = impl
        self.choice = self.choices[0]

    def groups(self, choice: StageSpec | None = None) -> list[tuple[int, int, int]]:
        """``(kernel, first channel, end channel)`` per kernel group of ``choice`` (default:
        the active one)."""
        choice = self.choice if choice is None else choice
        self.index(choice)
        return channel_groups(self.channels, choice, self.kernel)

    def active_conv(self, choice: StageSpec | None = None) -> nn.Module:
        """The conv of ``choice`` (default: the active one)."""
        return self.convs[self.index(choice)]

    def forward(self, x: torch.Tensor, choice: StageSpec | None = None) -> torch.Tensor:
        return self.active_conv(choice)(x)

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, choices={' '.join(c.token for c in self.choices)}, "
            f"stride={self.stride}, dilation={self.dilation}, choice={self.choice.token}"
        )


class ChoiceBatchNorm(_PerChoice):
    """One copy of a block's BatchNorm (timm's ``BatchNormAct2d``: norm + activation) per stage
    choice; runs the active choice's.

    Args:
        norm: the block's norm after its depthwise conv (copied, never used itself).
        choices: the stage's choices, in the space's order.

    Attributes:
        norms: one copy of ``norm`` per choice (the stand-alone network's layer, same layout).
        choice: the active choice (starts as the first).
    """

    def __init__(self, norm: nn.Module, choices: Sequence[StageSpec]) -> None:
        super().__init__()
        self.choices = tuple(choices)
        self.norms = nn.ModuleList(copy.deepcopy(norm) for _ in self.choices)
        self.choice = self.choices[0]

    def active_norm(self, choice: StageSpec | None = None) -> nn.Module:
        """The norm of ``choice`` (default: the active one)."""
        return self.norms[self.index(choice)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.active_norm()(x)


def norm_after_depthwise(block: nn.Module) -> str:
    """The attribute name of the BatchNorm that follows ``block.conv_dw`` (timm registers a
    block's layers in the order they run: ``bn2`` in an inverted residual, ``bn1`` in a
    depthwise-separable block).

    Raises:
        BuildError: the block has no BatchNorm after its depthwise conv.
    """
    seen = False
    for name, child in block.named_children():
        if name == "conv_dw":
            seen = True
        elif seen and isinstance(child, nn.modules.batchnorm._BatchNorm | ChoiceBatchNorm):
            return name
    raise BuildError(f"{type(block).__name__} has no BatchNorm after its conv_dw")
