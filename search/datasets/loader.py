"""Batches for proxy training and evaluation, served from the memory-mapped cache.

Normalisation: ``x = (pixel / 255 - MEAN) / STD`` with the ImageNet statistics averaged over the
three channels (``MEAN`` 0.449, ``STD`` 0.226): one gray value per pixel, so the 3-channel input
the timm models take is the gray image expanded (a view, no copy). Export and full training must
use the same constants.

Augmentation (training only, cheap, on tensors, one batched affine warp): a random shift of up
to 6% of the side (4 px at 64 px), a random scale of 0.9-1.1 and a rotation of up to 5 degrees;
the border fills with black, like a radiograph's collimated edge. No horizontal flips: in a
frontal chest X-ray the heart lies on the image's right (the patient's left); a flipped image
shows dextrocardia, which the test data does not contain, and it would teach the model to
ignore the side the heart shadow (cardiomegaly) and the aortic knob are on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from .dataset import Dataset
from .errors import DataError

if TYPE_CHECKING:
    import torch

__all__ = ["MEAN", "STD", "augment_batch", "batches", "evaluation_index", "normalize"]

MEAN = 0.449
STD = 0.226
_SHIFT = 0.06  # of the image side
_SCALE = 0.10
_ROTATE_DEG = 5.0
_SUBSET_SEED = 0


def batches(
    dataset: Dataset,
    split: str,
    *,
    batch_size: int,
    shuffle: bool,
    augment: bool,
    generator: torch.Generator | None = None,
    subset: int | None = None,
    drop_last: bool | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Iterate once over a split in batches (one epoch).

    Args:
        dataset: from :func:`load_dataset`.
        split: ``train``, ``val`` or ``test``.
        batch_size: images per batch.
        shuffle: random order (from ``generator``); otherwise the split's order.
        augment: random shift/scale/rotation (see the module docstring); for training only.
        generator: CPU ``torch.Generator`` for the order, the subset and the augmentation (the
            global torch RNG when None).
        subset: use only ``subset`` images: with ``shuffle``, the first ``subset`` of this
            epoch's random permutation (a fresh subset each epoch as the generator advances);
            without, the first ``subset`` of a fixed seeded permutation (seed 0), the same on
            every call (so every trial is scored on the same validation images).
        drop_last: drop a final batch smaller than ``batch_size``; default: when ``shuffle``
            (training: BatchNorm cannot train on a batch of one), never for evaluation.

    Yields:
        ``(x, y)``: x float32 (B, 3, R, R) normalised, a gray image expanded to 3 channels (a
        view: ``x[:, 0]`` is the data); y float32 (B, L) targets.

    Example:
        >>> ds = load_dataset("phantom,n=200", resolution=32, progress=False)  # doctest: +SKIP
        >>> x, y = next(batches(ds, "train", batch_size=8, shuffle=True, augment=True))  # doctest: +SKIP
        >>> tuple(x.shape), tuple(y.shape)  # doctest: +SKIP
        ((8, 3, 32, 32), (8, 5))
    """

    if split not in dataset.splits:
        raise DataError(
            f"{dataset.name} has no {split!r} split (splits: {', '.join(dataset.splits)})"
        )
    if batch_size < 1:
        raise DataError(f"batch size {batch_size}: use 1 or more")
    return _iterate(dataset, split, batch_size, shuffle, augment, generator, subset, drop_last)


def _iterate(dataset, split, batch_size, shuffle, augment, generator, subset, drop_last):
    import torch

    index = np.asarray(dataset.splits[split], dtype=np.int64)
    if shuffle:
        order = torch.randperm(len(index), generator=generator).numpy()
        index = index[order[: subset or None]]
    else:
        index = evaluation_index(dataset, split, subset)
    if drop_last is None:
        drop_last = shuffle
    stop = len(index) - (len(index) % batch_size if drop_last else 0)
    for start in range(0, stop, batch_size):
        chunk = index[start : start + batch_size]
        if shuffle:
            chunk = np.sort(chunk)  # sequential reads from the memory map; order within is moot
        pixels = torch.from_numpy(np.ascontiguousarray(dataset.images[chunk]))
        x = pixels.unsqueeze(1).to(torch.float32).div_(255.0)
        if augment:
            x = augment_batch(x, generator=generator)
        x = normalize(x)
        y = torch.from_numpy(dataset.labels[chunk].astype(np.float32))
        yield x.expand(-1, 3, -1, -1), y


def evaluation_index(dataset: Dataset, split: str, subset: int | None = None) -> np.ndarray:
    """The images :func:`batches` serves without shuffling, in order: the whole split, or its
    first ``subset`` of a fixed seeded permutation (the same on every call), sorted.

    Example:
        >>> ds = load_dataset("phantom,n=200", resolution=32, progress=False)  # doctest: +SKIP
        >>> len(evaluation_index(ds, "val", subset=10))  # doctest: +SKIP
        10
    """
    index = np.asarray(dataset.splits[split], dtype=np.int64)
    if subset is not None and subset < len(index):
        pick = np.random.default_rng(_SUBSET_SEED).permutation(len(index))[:subset]
        index = np.sort(index[pick])
    return index


def normalize(x: torch.Tensor) -> torch.Tensor:
    """``(x - MEAN) / STD`` in place, for x in [0, 1]."""
    return x.sub_(MEAN).div_(STD)


def augment_batch(x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random shift, scale and rotation of a batch (B, C, R, R) in one affine warp.

    Args:
        x: float images in [0, 1].
        generator: CPU generator for the random draws.

    Returns:
        Warped images, same shape; the border fills with 0 (black).
    """
    import torch
    import torch.nn.functional as F

    b = x.shape[0]
    scale = 1 + (torch.rand(b, generator=generator) * 2 - 1) * _SCALE
    angle = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(_ROTATE_DEG)
    shift = (torch.rand(b, 2, generator=generator) * 2 - 1) * (2 * _SHIFT)  # grid units: side = 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
