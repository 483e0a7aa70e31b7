"""Grad-CAM maps of a trained network: which layer they are read at, the maps, the scores.

**Target layer** (why): the last feature map that still has a spatial layout, where Grad-CAM is
usually taken (its gradients are the closest to the output and its channels the most semantic).
In timm's MobileNet-v2 (``EfficientNet`` class) that is ``bn2``: the 1x1 ``conv_head`` to 1280
channels with its batch norm and ReLU6 (``BatchNormAct2d``), stride 32. MobileNet-v3 pools before
its head convolution, so there it is the last block, ``blocks.6`` (also stride 32). At stride 32
a 64 px input gives 2x2 cells and 224 px 7x7: the map cannot be finer than that (``--layer
blocks.5`` takes a stride-16 map instead).

Inputs are normalised as in training (:mod:`mdsearch.search.datasets.loader`); torch and the
``grad-cam`` package are imported inside the functions that use them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ResultsError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["cam_target_layer", "class_activation_maps", "sigmoid_scores"]


def cam_target_layer(model: nn.Module, name: str | None = None) -> tuple[str, nn.Module]:
    """The layer Grad-CAM reads: ``name`` (a module name such as ``blocks.5``) or, by default,
    the last spatial feature map (``bn2`` of MobileNet-v2, the last block of MobileNet-v3; see
    the module docstring).

    Raises:
        ResultsError: ``name`` is not a module of the network.
    """
    modules = dict(model.named_modules())
    if name is None:
        name = "bn2" if "bn2" in modules and "conv_head" in modules else None
        if name is None:
            blocks = [n for n in modules if re.fullmatch(r"blocks\.\d+", n)]
            if not blocks:
                raise ResultsError("the network has no blocks to take Grad-CAM from: pass --layer")
            name = max(blocks, key=lambda n: int(n.split(".")[1]))
    if name not in modules or not name:
        top = ", ".join(n for n in modules if n and "." not in n)
        raise ResultsError(
            f"--layer {name!r} is not a module of the network; use e.g. bn2, blocks.5 (top level: "
            f"{top})"
        )
    return name, modules[name]


def class_activation_maps(
    model: nn.Module,
    images: np.ndarray,
    classes: Sequence[int],
    *,
    layer: str | None = None,
    batch_size: int = 32,
    progress: Callable[[int], Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Grad-CAM maps of ``model`` for one output per image (``pytorch_grad_cam.GradCAM``).

    The images are normalised as in training (:mod:`mdsearch.search.datasets.loader`: gray
    ``pixel / 255`` minus ``MEAN`` over ``STD``, repeated over 3 channels). The map of output
    ``c`` is the ReLU of the target layer's channels weighted by the mean gradient of the logit
    ``c``, upsampled bilinearly to the input and scaled to 0-1 per image (0 everywhere when no
    location has positive evidence).

    Args:
        model: the network (eval mode), on the device it should run on.
        images: uint8 (N, R, R) grayscale.
        classes: N output indices, the output each map explains.
        layer: target module name (default: :func:`cam_target_layer`'s choice).
        batch_size: images per forward/backward pass (memory only).
        progress: called with the number of images done after each batch.

    Returns:
        ``(maps, probabilities, feature_side)``: float32 (N, R, R) maps in [0, 1], float32 (N, L)
        sigmoid outputs, and the target layer's map side in cells.
    """
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    _, target = cam_target_layer(model, layer)
    model.eval()
    # Not ``with GradCAM(...)``: its __exit__ swallows IndexError.
    cam = GradCAM(model=model, target_layers=[target])
    maps, probs, side = [], [], 0
    try:
        for start in range(0, len(images), batch_size):
            x = _inputs(model, images[start : start + batch_size])
            targets = [ClassifierOutputTarget(int(c)) for c in classes[start : start + batch_size]]
            maps.append(np.asarray(cam(input_tensor=x, targets=targets), dtype=np.float32))
            probs.append(torch.sigmoid(cam.outputs.detach().float()).cpu().numpy())
            side = int(cam.activations_and_grads.activations[0].shape[-1])
            if progress is not None:
                progress(min(start + batch_size, len(images)))
    finally:
        cam.activations_and_grads.release()
    if not maps:
        return np.zeros((0, *images.shape[1:]), np.float32), np.zeros((0, 0), np.float32), side
    return np.concatenate(maps), np.concatenate(probs).astype(np.float32), side


def _inputs(model: nn.Module, images: np.ndarray):
    """uint8 (B, R, R) images as the network's normalised (B, 3, R, R) input, on its device."""
    import torch

    from mdsearch.search.datasets.loader import normalize

    pixels = torch.from_numpy(np.ascontiguousarray(images))
    x = normalize(pixels.unsqueeze(1).to(torch.float32).div_(255.0))
    return x.expand(-1, 3, -1, -1).contiguous().to(next(model.parameters()).device)


def sigmoid_scores(model: nn.Module, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """float32 (N, L) sigmoid outputs (0-1) of ``model`` on uint8 (N, R, R) grayscale images,
    normalised as :func:`class_activation_maps` does; no gradients."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = model(_inputs(model, images[start : start + batch_size]))
            out.append(torch.sigmoid(logits.float()).cpu().numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)
