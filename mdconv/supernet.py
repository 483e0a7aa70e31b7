"""A weight-sharing supernet: every architecture of a search space inside one network.

For MD-Conv the nesting is exact. A stage choice (kernel set + channel split) only decides which
kernel each depthwise channel uses, so one depthwise layer that holds the stage's largest kernel
for every channel contains them all: the channels a choice gives a smaller kernel use the centre
crop of their large kernel (Single-Path NAS's "superkernel", Once-for-All's elastic kernel),
optionally passed through Once-for-All's learned kernel transformation (``kernel_transform``:
per layer and per smaller kernel size, one ``k^2 x k^2`` matrix shared by the channels,
starting as the identity; the 3x3 kernel of a 7x7 layer is the 5x5 one's transformed crop), so
a channel's small kernel need not be the exact centre of its large one. With a choice fixed,
:class:`SuperDepthwiseConv2d` computes exactly what a stand-alone
:class:`~mdsearch.mdconv.MDConv2d` holding the cropped weights computes, through the same fast
path (:func:`~mdsearch.mdconv.mdconv_forward`), and its gradient is that layer's gradient placed
in the crop (zero on the ring a 3x3 channel does not use). With ``per_choice_depthwise`` the
kernels are not nested at all: each choice of a stage owns its depthwise conv and the BatchNorm
after it (:mod:`mdsearch.mdconv.choice_layers`), and only the rest of the network is shared.

:func:`build_supernet` puts one such layer in every block of every searched stage of the space's
timm backbone (the blocks, norms, activations and head are timm's, as :func:`build` makes them);
:meth:`Supernet.set_active` (or the :meth:`Supernet.active` context manager) chooses the
sub-network the next forward passes run, and :func:`extract` returns the stand-alone network
``build(spec)`` with the inherited weights, whose outputs equal the supernet's with that
architecture active (BatchNorm statistics included: recalibrate them for the architecture first,
see :func:`mdsearch.search.recalibrate_batchnorm`).

    net = build_supernet(load_space("paper"), num_classes=5)
    with net.active(spec):
        logits = net(images)
    standalone = extract(net, spec)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mdsearch.space import ArchSpec, StageSpec

from .builder import build
from .choice_layers import (
    ChoiceBatchNorm,
    ChoiceDepthwiseConv2d,
    channel_groups,
    norm_after_depthwise,
)
from .errors import BuildError
from .mdconv2d import IMPLS, MDConv2d, mdconv_forward

if TYPE_CHECKING:
    from mdsearch.space import SearchSpace

__all__ = ["SuperDepthwiseConv2d", "Supernet", "build_supernet", "extract"]


class SuperDepthwiseConv2d(nn.Module):
    """Depthwise conv holding a ``kernel x kernel`` weight per channel; runs any stage choice.

    The active :class:`~mdsearch.space.StageSpec` (attribute :attr:`choice`, or the ``choice``
    argument of :meth:`forward`) splits the channels as :class:`MDConv2d` does
    (:func:`~mdsearch.space.split_channels`: group ``i`` is the next ``c_i`` channels, kernel
    ``k_i``) and each group convolves with the centre ``k_i x k_i`` crop of its channels' weights.

    Args:
        channels: depthwise channels (input = output).
        kernel: the largest kernel of the stage's choices (odd); every choice's kernels must be
            at most this.
        stride: stride.
        dilation: dilation.
        bias: whether the layer carries a per-channel bias.
        impl: the MD-Conv implementation (:data:`~mdsearch.mdconv.IMPLS`; ``auto`` chooses per
            device, see :mod:`mdsearch.mdconv.mdconv2d`).
        transform: learn Once-for-All's kernel transformation (module docstring).

    Attributes:
        weight: ``(channels, 1, kernel, kernel)`` shared kernels.
        bias: ``(channels,)`` or None.
        transforms: ``{"k": (k*k, k*k) matrix}`` per smaller kernel size k, or None.
        choice: the active stage choice (starts as the full kernel on every channel).

    Example:
        >>> layer = SuperDepthwiseConv2d(30, kernel=5)
        >>> layer.choice = StageSpec((3, 5), (1, 3))
        >>> [tuple(w.shape) for w in layer.crops()]
        [(8, 1, 3, 3), (22, 1, 5, 5)]
    """

    def __init__(
        self,
        channels: int,
        kernel: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        bias: bool = False,
        impl: str = "auto",
        transform: bool = False,
    ) -> None:
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise BuildError(f"SuperDepthwiseConv2d kernel {kernel} must be odd")
        if impl not in IMPLS:
            raise BuildError(f"impl {impl!r} is unknown: use one of {', '.join(IMPLS)}")
        self.channels = channels
        self.kernel = kernel
        self.stride = stride
        self.dilation = dilation
        self.impl = impl
        self.weight = nn.Parameter(torch.empty(channels, 1, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None
        self.transforms = (
            nn.ParameterDict(
                {str(k): nn.Parameter(torch.eye(k * k)) for k in range(kernel - 2, 0, -2)}
            )
            if transform
            else None
        )
        self.choice = StageSpec((kernel,))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """timm's depthwise init for the largest kernel: N(0, sqrt(2 / k^2)), bias 0."""
        nn.init.normal_(self.weight, 0.0, math.sqrt(2.0 / (self.kernel * self.kernel)))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def groups(self, choice: StageSpec | None = None) -> list[tuple[int, int, int]]:
        """``(kernel, first channel, end channel)`` per kernel group of ``choice`` (default:
        the active one).

        Raises:
            BuildError: a kernel larger than the layer's, or a split leaving a group empty.
        """
        return channel_groups(self.channels, self.choice if choice is None else choice, self.kernel)

    def crops(self, choice: StageSpec | None = None) -> list[torch.Tensor]:
        """Per group, the centre ``k x k`` crop of its channels' kernels, each smaller size
        through its transform when the layer has them (without: views of :attr:`weight`;
        gradients flow back into it, and into the transforms)."""
        crops = []
        for k, lo, hi in self.groups(choice):
            if self.transforms is None:
                c = (self.kernel - k) // 2
                crops.append(self.weight[lo:hi, :, c : c + k, c : c + k])
                continue
            w, size = self.weight[lo:hi], self.kernel
            while size > k:  # Once-for-All: 7x7 -> 5x5 -> 3x3, a transform at each step
                size -= 2
                w = w[:, :, 1:-1, 1:-1].reshape(-1, size * size) @ self.transforms[str(size)].T
                w = w.reshape(-1, 1, size, size)
            crops.append(w)
        return crops

    def forward(self, x: torch.Tensor, choice: StageSpec | None = None) -> torch.Tensor:
        groups = self.groups(choice)
        weights = self.crops(choice)
        biases = [] if self.bias is None else [self.bias[lo:hi] for _, lo, hi in groups]
        if len(groups) == 1:
            k = groups[0][0]
            return torch.nn.functional.conv2d(
                x, weights[0], self.bias, self.stride, k // 2 * self.dilation, self.dilation,
                self.channels,
            )  # fmt: skip
        kernels = [k for k, _, _ in groups]
        counts = [hi - lo for _, lo, hi in groups]
        return mdconv_forward(
            x, weights, biases, kernels, counts, self.stride, self.dilation, self.impl
        )

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, kernel={self.kernel}x{self.kernel}, stride={self.stride}, "
            f"dilation={self.dilation}, choice={self.choice.token}"
            + (", kernel_transform" if self.transforms is not None else "")
        )


class Supernet(nn.Module):
    """Every architecture of a search space in one timm network (made by :func:`build_supernet`).

    The forward pass runs the active architecture (:meth:`set_active`); it starts as
    :meth:`largest`.

    Attributes:
        space: the search space.
        num_classes: outputs of the classifier.
        head_init: the classifier init :func:`build` was given (``extract`` repeats it).
        model: the timm network whose searched stages hold :class:`SuperDepthwiseConv2d` layers
            (or, per choice, :class:`~mdsearch.mdconv.ChoiceDepthwiseConv2d` layers).
        super_layers: ``{stage: [layer per block]}`` for every searched stage.
        choice_norms: ``{stage: [ChoiceBatchNorm per block]}`` when each choice owns the
            BatchNorm after its depthwise conv (empty otherwise).
    """

    def __init__(
        self,
        space: SearchSpace,
        num_classes: int,
        model: nn.Module,
        super_layers: dict[int, list[SuperDepthwiseConv2d | ChoiceDepthwiseConv2d]],
        head_init: str,
        choice_norms: dict[int, list[ChoiceBatchNorm]] | None = None,
    ) -> None:
        super().__init__()
        self.space = space
        self.num_classes = num_classes
        self.head_init = head_init
        self.model = model
        self.super_layers = super_layers
        self.choice_norms = choice_norms or {}
        self._active = self.largest()
        self.set_active(self._active)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    # -- which sub-network runs ----------------------------------------------------------------
    def spec(self, stages: Sequence[StageSpec]) -> ArchSpec:
        """The :class:`ArchSpec` with these stages and the supernet's classes."""
        return ArchSpec(self.space.backbone, self.num_classes, tuple(stages))

    @property
    def active_spec(self) -> ArchSpec:
        """The architecture the next forward pass runs."""
        return self._active

    def set_active(self, spec: ArchSpec) -> None:
        """Run ``spec`` (an architecture of the space; its ``num_classes`` is ignored) from now on.

        Raises:
            BuildError: ``spec`` is not an architecture of the supernet's space.
        """
        if not self.space.contains(spec):
            raise BuildError(f"{spec.canonical} is not in space {self.space.name}")
        for stage, layers in self.super_layers.items():
            for layer in [*layers, *self.choice_norms.get(stage, [])]:
                layer.choice = spec.stages[stage]
        self._active = self.spec(spec.stages)

    @contextlib.contextmanager
    def active(self, spec: ArchSpec) -> Iterator[Supernet]:
        """Run ``spec`` inside the ``with`` block, the previous architecture after it."""
        before = self._active
        self.set_active(spec)
        try:
            yield self
        finally:
            self.set_active(before)

    def stage_macs(self, stage: int, choice: StageSpec) -> int:
        """Multiply-adds per output pixel of ``choice`` summed over the stage's depthwise layers
        (``sum(k_i^2 * c_i)`` per layer; how :meth:`largest` and :meth:`smallest` rank choices)."""
        return sum(
            k * k * (hi - lo)
            for layer in self.super_layers[stage]
            for k, lo, hi in layer.groups(choice)
        )

    def largest(self) -> ArchSpec:
        """The architecture of the space with the most depthwise multiply-adds in every searched
        stage (the sandwich rule's largest)."""
        return self._extreme(max)

    def smallest(self) -> ArchSpec:
        """The architecture with the fewest depthwise multiply-adds in every searched stage."""
        return self._extreme(min)

    def _extreme(self, pick: Any) -> ArchSpec:
        stages = []
        for i, options in enumerate(self.space.choices):
            if i in self.super_layers:
                stages.append(pick(options, key=lambda c, i=i: self.stage_macs(i, c)))
            else:
                stages.append(options[0])
        return self.spec(stages)


def build_supernet(
    space: SearchSpace,
    num_classes: int = 14,
    *,
    head_init: str = "timm",
    impl: str = "auto",
    kernel_transform: bool = False,
    per_choice_depthwise: bool = False,
) -> Supernet:
    """The supernet of ``space`` on its timm backbone, randomly initialised.

    The network is :func:`build` of the space's first architecture (fixed stages as the space
    fixes them), then every block of every searched stage gets a :class:`SuperDepthwiseConv2d`
    holding the largest kernel of that stage's choices (5x5 for (3, 5) choices, 7x7 when a choice
    has a 7) in place of its depthwise conv, with the same stride, dilation and bias. With
    ``per_choice_depthwise`` it gets a :class:`~mdsearch.mdconv.ChoiceDepthwiseConv2d` instead
    (one depthwise conv per choice) and the BatchNorm after it a
    :class:`~mdsearch.mdconv.ChoiceBatchNorm` (one copy per choice).

    Args:
        space: the search space.
        num_classes: outputs of the classifier.
        head_init: the classifier init (``timm`` or ``small``; see :func:`build`).
        impl: the MD-Conv implementation of the super layers (``auto``: per device).
        kernel_transform: give every super layer Once-for-All's learned kernel transformation
            (module docstring).
        per_choice_depthwise: each choice of a stage owns its depthwise weights and the
            BatchNorm after them (module docstring); excludes ``kernel_transform``.

    Raises:
        BuildError: a backbone block without a depthwise conv (or without a BatchNorm after it,
            per choice) where the space searches; both options at once.

    Example:
        >>> from mdsearch.space import load_space
        >>> net = build_supernet(load_space("paper"), num_classes=5)
        >>> sorted(net.super_layers), net.largest().canonical
        ([1, 2, 3, 5], 'mobilenetv2_100:c5:k3,k3.5s1:1,k3.5s1:1,k3.5s1:1,k3,k3.5s1:1,k3')
    """
    if per_choice_depthwise and kernel_transform:
        raise BuildError(
            "per_choice_depthwise and kernel_transform exclude each other (per-choice kernels "
            "are not crops of a larger one to transform)"
        )
    first = ArchSpec(space.backbone, num_classes, tuple(c[0] for c in space.choices))
    model = build(first, head_init=head_init)
    super_layers: dict[int, list[SuperDepthwiseConv2d | ChoiceDepthwiseConv2d]] = {}
    choice_norms: dict[int, list[ChoiceBatchNorm]] = {}
    for i in space.searched_stages:
        kernel = max(k for choice in space.choices[i] for k in choice.kernels)
        layers = []
        for j, block in enumerate(model.blocks[i]):
            old = getattr(block, "conv_dw", None)
            if isinstance(old, MDConv2d):
                channels, stride, dilation = old.channels, old.stride, old.dilation
                has_bias = old.convs[0].bias is not None
            elif isinstance(old, nn.Conv2d) and old.groups == old.in_channels > 1:
                channels, stride, dilation = old.in_channels, old.stride[0], old.dilation[0]
                has_bias = old.bias is not None
            else:
                raise BuildError(f"{space.backbone} blocks[{i}][{j}] has no depthwise conv_dw")
            if per_choice_depthwise:
                block.conv_dw = ChoiceDepthwiseConv2d(
                    channels, space.choices[i], stride=stride, dilation=dilation, bias=has_bias,
                    impl=impl,
                )  # fmt: skip
                layers.append(block.conv_dw)
                name = norm_after_depthwise(block)
                norm = ChoiceBatchNorm(getattr(block, name), space.choices[i])
                setattr(block, name, norm)
                choice_norms.setdefault(i, []).append(norm)
                continue
            layer = SuperDepthwiseConv2d(
                channels,
                kernel,
                stride=stride,
                dilation=dilation,
                bias=has_bias,
                impl=impl,
                transform=kernel_transform,
            )
            block.conv_dw = layer
            layers.append(layer)
        super_layers[i] = layers
    return Supernet(space, num_classes, model, super_layers, head_init, choice_norms)


def extract(supernet: Supernet, spec: ArchSpec) -> nn.Module:
    """The stand-alone network of ``spec`` with the supernet's weights.

    ``build(spec)`` (the same timm network any trial trains), then every depthwise conv of a
    searched stage gets its group's centre crops of the super layer's kernels (transformed, when
    the layers learn Once-for-All's kernel transformation; per choice: the chosen choice's own
    conv and the BatchNorm after it), and every other parameter and buffer (BatchNorm running
    statistics included) is copied by name. With the supernet in eval mode and ``spec`` active,
    the two compute the same outputs.

    Args:
        supernet: the trained supernet.
        spec: an architecture of its space, with the supernet's ``num_classes``.

    Returns:
        The network, on the supernet's device, in eval mode.

    Raises:
        BuildError: ``spec`` is outside the space or has another number of classes.
    """
    if spec.num_classes != supernet.num_classes:
        raise BuildError(
            f"{spec.canonical} has {spec.num_classes} classes, the supernet {supernet.num_classes}"
        )
    if not supernet.space.contains(spec):
        raise BuildError(f"{spec.canonical} is not in space {supernet.space.name}")
    param = next(supernet.parameters())
    net = build(spec, head_init=supernet.head_init).to(device=param.device, dtype=param.dtype)
    filled: set[str] = set()
    with torch.no_grad():
        net_state = net.state_dict()
        for name, layer in supernet.model.named_modules():
            if isinstance(layer, ChoiceDepthwiseConv2d | ChoiceBatchNorm):
                stage = int(name.split(".")[1])  # "blocks.{stage}.{block}.conv_dw" / ".bn2"
                own = (
                    layer.active_conv(spec.stages[stage])
                    if isinstance(layer, ChoiceDepthwiseConv2d)
                    else layer.active_norm(spec.stages[stage])
                )
                for key, value in own.state_dict().items():
                    target_key = f"{name}.{key}"
                    if target_key not in net_state or net_state[target_key].shape != value.shape:
                        raise BuildError(f"extract: {target_key} of {spec.canonical} has no match")
                    net_state[target_key].copy_(value)
                    filled.add(target_key)
                continue
            if not isinstance(layer, SuperDepthwiseConv2d):
                continue
            stage = int(name.split(".")[1])  # "blocks.{stage}.{block}.conv_dw"
            target = net.get_submodule(name)
            convs = list(target.convs) if isinstance(target, MDConv2d) else [target]
            prefixes = (
                [f"{name}.convs.{g}." for g in range(len(convs))]
                if isinstance(target, MDConv2d)
                else [f"{name}."]
            )
            groups = layer.groups(spec.stages[stage])
            for conv, prefix, crop, (_, lo, hi) in zip(
                convs, prefixes, layer.crops(spec.stages[stage]), groups
            ):
                conv.weight.copy_(crop)
                filled.add(prefix + "weight")
                if conv.bias is not None:
                    conv.bias.copy_(layer.bias[lo:hi])
                    filled.add(prefix + "bias")
        source = supernet.model.state_dict()
        for key, value in net_state.items():
            if key in filled:
                continue
            if key not in source or source[key].shape != value.shape:
                raise BuildError(f"extract: {key} of {spec.canonical} has no supernet weight")
            value.copy_(source[key])
    return net.eval()
