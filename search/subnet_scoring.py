"""Scoring one sub-network of a trained supernet: its own BatchNorm statistics, then its
validation AUC, shaped like a stand-alone proxy trial's result.

BatchNorm statistics gathered over the mix of sub-networks are wrong for any single one
(Once-for-All), so each sub-network first gets its own: the running statistics are recomputed over
a fixed sample of training images (the same images in the same batches for every sub-network, no
augmentation; :func:`recalibrate_batchnorm` changes nothing else), then the validation split is
scored as a proxy trial scores it.

The sample is shuffled (:func:`recalibration_batches`): a split stored in class order (Kermany
lists NORMAL before PNEUMONIA, and its patients in order) served in that order gives batches of
one class, whose variances miss the variance between the classes; a random sample mixes them in
every batch. A further score of a sub-network draws another sample the same way with its own
seed, so the default score and its repeats are calibrated alike.

:func:`score_subnet` returns a :class:`~mdsearch.search.ProxyResult` whose predictions a trial
saves with :meth:`RunFolder.save_predictions`, so the report's intervals apply unchanged. The
supernet's training is :mod:`mdsearch.search.supernet`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from mdsearch.space import ArchSpec

from .proxy import ProxyResult
from .scored_labels import LABEL_RULE, LabelRule
from .supernet import SUPERNET_RECIPE, SupernetSettings
from .training import Diverged

if TYPE_CHECKING:
    import torch
    from torch import nn

    from mdsearch.mdconv import Supernet

    from .datasets import Dataset
    from .settings import TrainRecipe

__all__ = ["RECALIBRATION_SEED", "recalibrate_batchnorm", "recalibration_batches", "score_subnet"]

_SETTINGS = SupernetSettings()
#: Seed of the fixed recalibration sample every sub-network gets (far from the small seeds a
#: further score draws its sample with: the run's seed + its repeat number).
RECALIBRATION_SEED = 104_729


def recalibration_batches(
    dataset: Dataset, settings: SupernetSettings = _SETTINGS, sample_seed: int | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches a sub-network's BatchNorm statistics are recomputed over: the first
    ``settings.recalibration_images`` of a random permutation of the train split (seeded with
    :data:`RECALIBRATION_SEED`, or ``sample_seed`` for another sample), in batches of
    ``settings.recalibration_batch`` in that random order (a partial last batch dropped), no
    augmentation.

    Example:
        >>> x, y = next(recalibration_batches(dataset))  # doctest: +SKIP
        >>> len(x) == SupernetSettings().recalibration_batch  # doctest: +SKIP
        True
    """
    import torch

    from .datasets import batches

    seed = RECALIBRATION_SEED if sample_seed is None else sample_seed
    return batches(
        dataset,
        "train",
        batch_size=settings.recalibration_batch,
        shuffle=True,
        augment=False,
        generator=torch.Generator().manual_seed(seed),
        subset=settings.recalibration_images,
        drop_last=True,
    )


def recalibrate_batchnorm(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    device: str = "cpu",
    channels_last: bool = True,
) -> int:
    """Recompute every BatchNorm layer's running mean and variance over ``batches``, in place.

    The statistics are reset, then averaged over all batches with equal weight per batch (a
    cumulative average: PyTorch's ``momentum=None``), in training mode without gradients.
    Nothing else changes: parameters, other buffers, the BatchNorm counters, the momentum, every
    module's train/eval mode, and the statistics of norms the forward passes did not run (the
    other choices' own norms of a per-choice supernet) are as before.

    Returns:
        The number of images passed.
    """
    import torch
    from torch import nn

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    stats = [(m.running_mean.clone(), m.running_var.clone()) for m in norms]
    modes = {m: m.training for m in model.modules()}
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    images = 0
    try:
        model.eval()
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        with torch.no_grad():
            for x, _ in batches:
                model(x.to(device, memory_format=memory_format))
                images += len(x)
    finally:
        for m, (momentum, count), (mean, var) in zip(norms, saved, stats):
            if not int(m.num_batches_tracked):  # not run: not this sub-network's
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
            m.momentum = momentum
            m.num_batches_tracked.copy_(count)
        for m, mode in modes.items():
            m.training = mode
    return images


def score_subnet(
    supernet: Supernet,
    spec: ArchSpec,
    dataset: Dataset,
    recipe: TrainRecipe = SUPERNET_RECIPE,
    *,
    settings: SupernetSettings = _SETTINGS,
    fidelity: float | None = None,
    sample_seed: int | None = None,
    label_rule: LabelRule = LABEL_RULE,
    device: str = "cpu",
) -> ProxyResult:
    """Score one sub-network: recalibrate its BatchNorm statistics, then its validation AUC.

    Leaves ``spec`` active in the supernet with its recalibrated statistics (so
    :func:`mdsearch.mdconv.extract` right after returns that exact network).

    Args:
        supernet: the trained supernet.
        spec: an architecture of its space.
        dataset: the data the supernet trained on (train split: recalibration; validation split:
            scoring, ``recipe.val_subset`` of it, the images a stand-alone trial scores).
        recipe: the recipe of the training (batch size, ``val_subset``, memory format).
        settings: the recalibration sample's size and batch (:class:`SupernetSettings`).
        fidelity: what the result's ``fidelity`` says (default: ``recipe.epochs``, the
            supernet's epochs).
        sample_seed: None: the recalibration sample is the fixed one every sub-network gets;
            a number: another sample of as many training images, drawn the same way with that
            seed (a further score of the same sub-network, as a further seed is for a trial;
            :func:`recalibration_batches`).
        label_rule: which labels the mean AUC is over (a run's own rule).
        device: where the supernet is.

    Returns:
        A :class:`ProxyResult` like a stand-alone trial's: ``auc``, ``label_auc``, ``y_true``,
        ``y_score`` (save with :meth:`~mdsearch.search.RunFolder.save_predictions`),
        ``fidelity``; ``train_seconds`` is this sub-network's own cost (recalibration +
        validation, seconds; its share of the supernet training is not in it) and
        ``images_per_s`` the recalibration's images per second.

    Raises:
        BuildError: ``spec`` is not in the supernet's space.
        ValueError: ``spec`` has another number of classes than the data.
    """
    import numpy as np

    from .training import validation_scores

    if spec.num_classes != len(dataset.label_names):
        raise ValueError(
            f"{spec.canonical} has {spec.num_classes} outputs, the data has "
            f"{len(dataset.label_names)} labels"
        )
    start = time.perf_counter()
    supernet.set_active(spec)
    images = recalibrate_batchnorm(
        supernet,
        recalibration_batches(dataset, settings, sample_seed),
        device=device,
        channels_last=recipe.channels_last,
    )
    calibrated = time.perf_counter()
    scores = validation_scores(
        supernet, dataset, recipe, device=device, deadline=None, label_rule=label_rule
    )
    if not np.isfinite(scores.y_score).all():
        raise Diverged(f"{spec.canonical}: validation scores are NaN in the supernet")
    seconds = time.perf_counter() - start
    epochs = float(recipe.epochs if fidelity is None else fidelity)
    return ProxyResult(
        auc=scores.auc,
        label_auc=scores.label_auc,
        y_true=scores.y_true,
        y_score=scores.y_score,
        fidelity=epochs,
        train_seconds=seconds,
        images_per_s=images / (calibrated - start) if calibrated > start else math.nan,
        history=[{"epoch": epochs, "auc": scores.auc, "seconds": seconds}],
    )
