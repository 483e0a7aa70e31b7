"""Turning an :class:`~mdsearch.space.ArchSpec` into a network on a timm backbone.

``build(spec)`` creates the timm backbone (never pretrained) and, in every stage whose
:class:`~mdsearch.space.StageSpec` differs from the backbone's own kernel, replaces the depthwise
conv (``block.conv_dw``) of every block of ``model.blocks[i]`` by an :class:`MDConv2d` (several
kernels) or a plain depthwise ``nn.Conv2d`` (one kernel, e.g. k5 -> k3). Norm, activation,
squeeze-excitation, stride and residuals stay timm's. Stages the spec leaves at the backbone's
kernel keep timm's own modules, so ``build(ArchSpec.default(name))`` is ``timm.create_model(name)``
parameter for parameter under the same torch seed.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mdsearch.space import ArchSpec, StageSpec, get_backbone

from .errors import BuildError
from .mdconv2d import MDConv2d, single_kernel_depthwise

__all__ = ["HEAD_INITS", "build", "inherit_weights", "depthwise_conv"]

HEAD_INITS = ("timm", "small")


def build(spec: ArchSpec, *, head_init: str = "timm", **timm_kwargs: Any) -> nn.Module:
    """The network an :class:`~mdsearch.space.ArchSpec` describes, randomly initialised.

    Args:
        spec: the architecture (backbone, classes, per-stage kernels and splits).
        head_init: ``"timm"`` keeps timm's classifier init; ``"small"`` re-initialises the
            classifier weights uniformly within +-1/sqrt(in_features) and its bias to 0. timm's
            init (fan-out based) starts few-class heads with logits of +-15..39 on real X-rays;
            the small init cut seed-to-seed validation-AUC std from 0.011 to 0.003.
        **timm_kwargs: passed to ``timm.create_model`` (e.g. ``drop_rate``, ``drop_path_rate``,
            ``in_chans``). ``pretrained`` is always False: nothing is downloaded.

    Returns:
        A timm model (``EfficientNet`` / ``MobileNetV3``) with MD-Conv where the spec says.

    Raises:
        BuildError: unknown ``head_init``, or a backbone whose modules do not match its layout.

    Example:
        >>> spec = ArchSpec.parse("mobilenetv2_100:c14:k3,k3,k3,k3,k3,k3.5s1:1,k3")
        >>> type(build(spec).blocks[5][0].conv_dw).__name__
        'MDConv2d'
    """
    import timm

    if head_init not in HEAD_INITS:
        raise BuildError(f"head_init {head_init!r} is unknown: use one of {', '.join(HEAD_INITS)}")
    if timm_kwargs.pop("pretrained", False):
        raise BuildError(
            "build() never downloads weights: build the network, then load trained weights "
            "with load_state_dict or inherit_weights"
        )
    model = timm.create_model(
        spec.backbone, pretrained=False, num_classes=spec.num_classes, **timm_kwargs
    )
    # The head is re-initialised before any depthwise conv is replaced, so that under one torch
    # seed every layer the architectures share starts from the same weights (common random
    # numbers: the replaced convs draw last, so they alone differ).
    if head_init == "small":
        _init_head_small(model)
    layout = get_backbone(spec.backbone)
    base = ArchSpec.default(spec.backbone, spec.num_classes)
    blocks = getattr(model, "blocks", None)
    if blocks is None or len(blocks) != len(layout.stages):
        raise BuildError(
            f"{spec.backbone}: timm model has no {len(layout.stages)}-stage 'blocks'; "
            "its layout in mdsearch.space.BACKBONES does not match timm"
        )
    for i, (stage, default) in enumerate(zip(spec.stages, base.stages)):
        if stage == default:
            continue
        for j, block in enumerate(blocks[i]):
            old = getattr(block, "conv_dw", None)
            where = f"{spec.backbone} blocks[{i}][{j}]"
            if not _is_depthwise(old):
                raise BuildError(f"{where} has no depthwise conv_dw to replace")
            k_old, pad_old = old.kernel_size[0], old.padding
            dil = old.dilation[0]
            if not isinstance(pad_old, tuple) or pad_old[0] != k_old // 2 * dil:
                raise BuildError(
                    f"{where} uses asymmetric ('same') padding; only symmetric-padding "
                    "backbones (timm's default, not tf_*) are supported"
                )
            block.conv_dw = depthwise_conv(
                old.in_channels,
                stage,
                stride=old.stride[0],
                dilation=dil,
                bias=old.bias is not None,
            ).to(device=old.weight.device, dtype=old.weight.dtype)
    return model


def depthwise_conv(
    channels: int, stage: StageSpec, *, stride: int = 1, dilation: int = 1, bias: bool = False
) -> nn.Module:
    """The depthwise conv for one block: MDConv2d for several kernels, nn.Conv2d for one.

    Args:
        channels: depthwise channels of the block.
        stage: the stage's kernels and split.
        stride: stride of this block (the first block of a stage carries the stage's stride).
        dilation: dilation of this block.
        bias: whether the conv has a bias (timm's blocks have none; a BatchNorm follows).

    Returns:
        :class:`MDConv2d` when ``stage`` has two or more kernels, else a plain depthwise
        ``nn.Conv2d`` initialised as timm initialises its depthwise convs.
    """
    if not stage.kernels:
        raise BuildError("a stage without kernels ('-') has no depthwise conv to build")
    if stage.is_mdconv:
        return MDConv2d(channels, stage.kernels, stage.split, stride, dilation, bias)
    return single_kernel_depthwise(
        channels, stage.kernels[0], stride=stride, dilation=dilation, bias=bias
    )


def inherit_weights(target: nn.Module, source: nn.Module) -> nn.Module:
    """Copy every matching weight of a trained network into another spec's network, in place.

    Parameters and buffers with the same name and shape are copied as they are. A depthwise conv
    whose kernels differ (MDConv2d in the target where the source has a plain conv, or the other
    way round, or another split) is filled group by group from the source's kernel for the same
    channels: a larger kernel gets the source kernel zero-padded around its centre, so the block
    computes exactly what the source computed (then training can use the outer ring); a smaller
    kernel gets the centre crop (an approximation). Everything else keeps its initialisation.

    Args:
        target: network to fill (e.g. ``build(spec)``).
        source: trained network of the same backbone (plain, MD-Conv or a supernet).

    Returns:
        ``target``, for chaining.
    """
    src_modules = dict(source.named_modules())
    handled: set[str] = set()
    with torch.no_grad():
        for name, mod in target.named_modules():
            src = src_modules.get(name)
            if src is None or not (_is_dw_like(mod) and _is_dw_like(src)):
                continue
            if _same_structure(mod, src):
                continue  # the by-name copy below handles it
            weight, bias = _full_kernel(src)
            if weight.shape[0] != _channels(mod):
                continue
            prefix = f"{name}." if name else ""
            for conv, lo, hi, pname in _groups(mod, prefix):
                conv.weight.copy_(_resize_kernel(weight[lo:hi], conv.kernel_size[0]))
                handled.add(pname + "weight")
                if conv.bias is not None:
                    if bias is not None:
                        conv.bias.copy_(bias[lo:hi])
                    handled.add(pname + "bias")
        src_state = source.state_dict()
        for key, value in target.state_dict().items():
            if key in handled or key not in src_state:
                continue
            if src_state[key].shape == value.shape:
                value.copy_(src_state[key])
    return target


# -- internals ------------------------------------------------------------------------------
def _is_depthwise(m: Any) -> bool:
    return (
        isinstance(m, nn.Conv2d)
        and m.groups == m.in_channels == m.out_channels
        and m.groups > 1
        and m.kernel_size[0] == m.kernel_size[1]
    )


def _is_dw_like(m: nn.Module) -> bool:
    return isinstance(m, MDConv2d) or _is_depthwise(m)


def _channels(m: nn.Module) -> int:
    return m.channels if isinstance(m, MDConv2d) else m.in_channels


def _same_structure(a: nn.Module, b: nn.Module) -> bool:
    if isinstance(a, MDConv2d) and isinstance(b, MDConv2d):
        return a.kernels == b.kernels and a.group_channels == b.group_channels
    if isinstance(a, MDConv2d) or isinstance(b, MDConv2d):
        return False
    return a.weight.shape == b.weight.shape


def _groups(m: nn.Module, prefix: str):
    """(conv, first channel, end channel, state-dict prefix) per kernel group."""
    if not isinstance(m, MDConv2d):
        yield m, 0, m.in_channels, prefix
        return
    lo = 0
    for g, (conv, ch) in enumerate(zip(m.convs, m.group_channels)):
        yield conv, lo, lo + ch, f"{prefix}convs.{g}."
        lo += ch


def _full_kernel(m: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A (C, 1, K, K) weight (K = largest kernel) equivalent to the depthwise conv ``m``."""
    if not isinstance(m, MDConv2d):
        return m.weight.detach(), None if m.bias is None else m.bias.detach()
    kmax = max(m.kernels)
    weight = torch.cat([_resize_kernel(c.weight.detach(), kmax) for c in m.convs])
    has_bias = m.convs[0].bias is not None
    bias = torch.cat([c.bias.detach() for c in m.convs]) if has_bias else None
    return weight, bias


def _resize_kernel(weight: torch.Tensor, k: int) -> torch.Tensor:
    """Zero-pad (larger k) or centre-crop (smaller k) a (C, 1, k0, k0) kernel to (C, 1, k, k)."""
    k0 = weight.shape[-1]
    if k == k0:
        return weight
    if k > k0:
        p = (k - k0) // 2
        return torch.nn.functional.pad(weight, (p, p, p, p))
    c = (k0 - k) // 2
    return weight[..., c : c + k, c : c + k]


def _init_head_small(model: nn.Module) -> None:
    head = model.get_classifier()
    if not isinstance(head, nn.Linear):
        return  # num_classes=0: no classifier to re-initialise
    bound = 1.0 / math.sqrt(head.in_features)
    with torch.no_grad():
        nn.init.uniform_(head.weight, -bound, bound)
        if head.bias is not None:
            nn.init.zeros_(head.bias)
