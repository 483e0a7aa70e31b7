"""The training and evaluation loop shared by proxies (one search trial) and full training.

Kept free of Ray and Optuna so ``mdsearch train`` and the trials run exactly the same code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["Diverged", "EpochStats", "train_one_epoch", "predict", "label_aucs", "make_optimizer"]


class Diverged(RuntimeError):
    """The training loss became NaN or infinite (the trial is recorded as failed)."""


@dataclass(frozen=True)
class EpochStats:
    """What one epoch of training did.

    Args:
        loss: mean training loss (binary cross-entropy with logits).
        images: number of images trained on.
        seconds: wall-clock seconds of the epoch.
    """

    loss: float
    images: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        """Training throughput of the epoch."""
        return self.images / self.seconds if self.seconds > 0 else float("nan")


def make_optimizer(
    model: nn.Module, *, name: str, lr: float, weight_decay: float, total_steps: int, schedule: str
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """Optimizer and per-step LR schedule.

    Args:
        name: ``adamw`` or ``sgd`` (momentum 0.9, Nesterov).
        lr: peak learning rate.
        weight_decay: decoupled (AdamW) or L2 (SGD) weight decay, not applied to norms and biases.
        total_steps: optimizer steps in the whole run (the schedule's length).
        schedule: ``cosine`` (to 0 over total_steps) or ``constant``.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if name == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=lr)
    elif name == "sgd":
        opt = torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    else:
        raise ValueError(f"unknown optimizer {name!r}: use adamw or sgd")
    if schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total_steps))
    elif schedule == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    else:
        raise ValueError(f"unknown schedule {schedule!r}: use cosine or constant")
    return opt, sched


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    *,
    device: torch.device | str = "cpu",
    channels_last: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> EpochStats:
    """Train ``model`` for one pass over ``batches`` with BCE-with-logits (multi-label).

    Raises:
        Diverged: the loss became NaN or infinite.
    """
    model.train()
    criterion = nn.BCEWithLogitsLoss()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    total, images, start = 0.0, 0, time.perf_counter()
    for step, (x, y) in enumerate(batches):
        x = x.to(device, memory_format=memory_format, non_blocking=True)
        y = y.to(device, non_blocking=True)
        loss = criterion(model(x), y)
        if not math.isfinite(loss.item()):
            raise Diverged(f"training loss became {loss.item()} at step {step}: lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.item() * len(x)
        images += len(x)
        if on_step is not None:
            on_step(len(x))
    seconds = time.perf_counter() - start
    return EpochStats(total / max(1, images), images, seconds)


@torch.no_grad()
def predict(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    device: torch.device | str = "cpu",
    channels_last: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Sigmoid scores of ``model`` on ``batches``.

    Returns:
        ``(y_true, y_score)``: uint8 (N, L) targets and float32 (N, L) probabilities.
    """
    model.eval()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    ys, ps = [], []
    for x, y in batches:
        logits = model(x.to(device, memory_format=memory_format))
        ps.append(torch.sigmoid(logits.float()).cpu().numpy())
        ys.append(y.numpy())
    return np.concatenate(ys).astype(np.uint8), np.concatenate(ps).astype(np.float32)


def label_aucs(
    y_true: np.ndarray, y_score: np.ndarray, label_names: Sequence[str]
) -> tuple[float, dict[str, float]]:
    """ROC AUC per label (scikit-learn) and their mean.

    A label whose validation targets hold a single class has no AUC: it is NaN in the per-label
    dict and left out of the mean.

    Returns:
        ``(mean_auc, {label: auc})``; mean is NaN when no label has both classes.
    """
    from sklearn.metrics import roc_auc_score

    per_label: dict[str, float] = {}
    for j, name in enumerate(label_names):
        col = y_true[:, j]
        if col.min() == col.max():
            per_label[name] = float("nan")
        else:
            per_label[name] = float(roc_auc_score(col, y_score[:, j]))
    defined = [v for v in per_label.values() if not math.isnan(v)]
    return (float(np.mean(defined)) if defined else float("nan")), per_label
