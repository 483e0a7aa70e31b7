"""One search trial: train a short proxy of an architecture and score it on the validation split.

No Ray and no Optuna here: :func:`proxy_train` is a plain function, so it can be called directly
(tests, benchmarks, ``mdsearch proxy-check``) and Ray Tune only wraps it.

The default proxy (:data:`~mdsearch.search.settings.PROXY_RECIPE` at
:data:`~mdsearch.search.settings.PROXY_DATA`'s resolution; CPU-sane; why):
    resolution 64      an X-ray at 64 px still shows the large findings and trains at ~150 img/s
                       on 2 CPU threads; at 64 px MobileNet-v2's stage5 maps are 4x4 -> 2x2, so the
                       search warns that a 5x5 kernel there cannot show its reach (use 160+ on GPUs)
    epochs 2           with the small head init, 2-epoch rankings were consistent across seeds on
                       real X-rays (DESIGN.md); longer proxies are better, at linear cost
    train_subset 1024  caps the images per epoch, so a trial costs the same on any dataset size
                       (~15 s of training on one CPU thread at 64 px: 100 trials fit in 20 minutes
                       on 2 cores)
    batch_size 32      twice the optimizer steps of 64 for the same images: short proxies learn
                       more per second (phantom, 2 epochs x 1024 images: mean AUC 0.64 vs 0.59)
    AdamW lr 3e-3, weight decay 1e-4, cosine schedule: a stable from-scratch recipe for MobileNets
    head_init small    timm's default classifier init starts with logits of +-15..39 for few
                       classes; re-initialising it cut seed-to-seed AUC std from 0.011 to 0.003
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mdsearch.space import ArchSpec

from .scored_labels import LABEL_RULE, LabelRule
from .settings import TrainRecipe
from .training import TrialTimeout

if TYPE_CHECKING:
    from .datasets import Dataset

__all__ = ["ProxyResult", "TrialTimeout", "proxy_train"]


@dataclass
class ProxyResult:
    """What a proxy run measured.

    Attributes:
        auc: mean validation ROC AUC over the labels with enough positives and negatives
            (:mod:`mdsearch.search.scored_labels`).
        label_auc: per-label validation AUC (NaN where a label has one class).
        y_true, y_score: validation targets (uint8) and sigmoid scores (float32), (N, L).
        fidelity: epochs completed.
        train_seconds: seconds spent in training steps (not evaluation).
        images_per_s: training throughput.
        history: per-epoch dicts (epoch, loss, auc when evaluated).
    """

    auc: float
    label_auc: dict[str, float]
    y_true: np.ndarray
    y_score: np.ndarray
    fidelity: float
    train_seconds: float
    images_per_s: float
    history: list[dict[str, float]] = field(default_factory=list)


def proxy_train(
    spec: ArchSpec,
    dataset: Dataset,
    recipe: TrainRecipe,
    seed: int,
    *,
    device: str = "cpu",
    threads: int | None = 1,
    report: Callable[[dict[str, float]], None] | None = None,
    eval_every_epoch: bool = False,
    deadline: float | None = None,
    label_rule: LabelRule = LABEL_RULE,
) -> ProxyResult:
    """Train ``spec`` from scratch on ``dataset``'s train split, score its validation split.

    The test split is never touched.

    Args:
        spec: the architecture (its num_classes must match the dataset's labels).
        dataset: a :class:`mdsearch.search.datasets.Dataset` at the proxy resolution (see
            :class:`~mdsearch.search.settings.DataSettings`).
        recipe: how the proxy trains (:data:`~mdsearch.search.settings.PROXY_RECIPE` for the
            search's default).
        seed: seeds the initialisation, the data order and the augmentation.
        device: ``cpu`` or ``cuda``.
        threads: torch intra-op threads on CPU (None: leave torch's setting alone).
        report: called after each epoch with ``{"epoch", "loss", "auc"?}`` (for schedulers).
        eval_every_epoch: score the validation split after every epoch (needed by early stopping),
            not only after the last.
        deadline: ``time.monotonic()`` value after which the next batch raises (None: no limit).
        label_rule: which labels the mean AUC is over (default: the current rule).

    Raises:
        ValueError: the architecture's outputs do not match the data's labels.
        SettingsError: the train split yields no full batch (see
            :meth:`~mdsearch.search.settings.TrainRecipe.steps_per_epoch`).
        mdsearch.search.training.Diverged: the loss became NaN or infinite.
        TrialTimeout: ``deadline`` passed (checked before every training and validation batch).
    """
    from .training import EpochResult, TrainingRun, train

    if spec.num_classes != len(dataset.label_names):
        raise ValueError(
            f"{spec.canonical} has {spec.num_classes} outputs, the data has "
            f"{len(dataset.label_names)} labels"
        )
    history: list[dict[str, float]] = []

    def record(_run: TrainingRun, epoch: EpochResult) -> None:
        row: dict[str, float] = {"epoch": epoch.epoch, "loss": epoch.stats.loss}
        if epoch.validation is not None:
            row["auc"] = epoch.validation.auc
        history.append(row)
        if report is not None:
            report(dict(row))

    run = train(
        spec,
        dataset,
        recipe,
        seed,
        device=device,
        threads=threads,
        validate=lambda epoch: eval_every_epoch or epoch == recipe.epochs,
        on_epoch=record,
        deadline=deadline,
        label_rule=label_rule,
    )
    final = run.epochs[-1].validation
    train_seconds = sum(epoch.stats.seconds for epoch in run.epochs)
    images = sum(epoch.stats.images for epoch in run.epochs)
    return ProxyResult(
        auc=final.auc,
        label_auc=final.label_auc,
        y_true=final.y_true,
        y_score=final.y_score,
        fidelity=float(recipe.epochs),
        train_seconds=train_seconds,
        images_per_s=images / train_seconds if train_seconds > 0 else float("nan"),
        history=history,
    )
