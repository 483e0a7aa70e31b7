"""The one training loop of mdsearch: a search trial's proxy, full training and the supernet's
training all run it.

:func:`train` builds the network (seeded, with the recipe's head init and memory format), the
optimizer and its per-step schedule, then runs the recipe's epochs over
:func:`~mdsearch.search.datasets.batches`, scores the validation split after the epochs its
caller asks for, and hands every epoch to a callback (the proxy reports it to the scheduler, full
training and the supernet write their checkpoints). The schedule's length is computed in one
place, :meth:`~mdsearch.search.settings.TrainRecipe.steps_per_epoch`, from what the loader yields
(it drops the last partial batch), so a cosine schedule reaches 0 exactly at the last step.

What one step does with a batch is a :class:`~mdsearch.search.train_step.TrainStep`: one network
and one loss for an :class:`~mdsearch.space.ArchSpec`, the supernet's sandwich
(:class:`~mdsearch.search.supernet.SandwichStep`) for a space. The loop does the rest alike: the
optimizer and schedule step, the loss summed on the device (read once per epoch, not per step or
sub-network), the checkpointable state (:meth:`TrainingRun.state`, the step's own included).

Kept free of Ray and Optuna so ``mdsearch train`` and the trials run exactly the same code.

    run = train(spec, dataset, recipe, seed, validate=lambda epoch: epoch == recipe.epochs)
    run.epochs[-1].validation.auc
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mdsearch.space import ArchSpec

from .scored_labels import LABEL_RULE, LabelRule
from .settings import TrainRecipe
from .train_step import StandaloneStep, StepFn, TrainStep, one_loss

if TYPE_CHECKING:  # torch is imported where it runs, so importing the loop's names is cheap
    import torch
    from torch import nn

    from .datasets import Dataset

__all__ = [
    "Diverged",
    "EpochResult",
    "EpochStats",
    "TrainingRun",
    "TrialTimeout",
    "Validation",
    "label_aucs",
    "make_optimizer",
    "predict",
    "start_run",
    "train",
    "train_one_epoch",
    "validation_scores",
]

#: Validation batches hold at least this many images (no gradients: larger is faster).
_MIN_EVAL_BATCH = 128


class TrialTimeout(RuntimeError):
    """The training ran past its deadline (``--trial-timeout``); checked between batches."""


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
        model: the network whose parameters are optimised.
        name: ``adamw`` or ``sgd`` (momentum 0.9, Nesterov).
        lr: peak learning rate.
        weight_decay: decoupled (AdamW) or L2 (SGD) weight decay, not applied to norms and biases.
        total_steps: optimizer steps in the whole run (the schedule's length).
        schedule: ``cosine`` (to 0 over total_steps) or ``constant``.
    """
    import torch

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
    step: StepFn = one_loss,
    device: torch.device | str = "cpu",
    channels_last: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> EpochStats:
    """Train ``model`` for one pass over ``batches``, one optimizer step per batch.

    Args:
        step: the forward and backward passes of a step (:data:`StepFn`; default
            :func:`one_loss`, the stand-alone network's BCE-with-logits).
        on_step: called after every optimizer step with the images the step processed.

    The losses are summed on ``device`` and read once, at the end of the epoch (no host sync
    per step or per sub-network).

    Returns:
        The epoch's mean loss per image processed, the images processed and the seconds.

    Raises:
        Diverged: a loss of the epoch was NaN or infinite (the epoch's sum is then not finite).
    """
    import torch

    model.train()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    total = torch.zeros((), device=device)
    images, start = 0, time.perf_counter()
    for x, y in batches:
        x = x.to(device, memory_format=memory_format, non_blocking=True)
        y = y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        loss, n = step(model, x, y)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += loss
        images += n
        if on_step is not None:
            on_step(n)
    mean = float(total) / max(1, images)  # the epoch's one host sync
    if not math.isfinite(mean):
        raise Diverged(f"training loss became {mean} (the epoch's mean): lower --lr")
    return EpochStats(mean, images, time.perf_counter() - start)


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
    import torch

    model.eval()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    ys, ps = [], []
    with torch.no_grad():
        for x, y in batches:
            logits = model(x.to(device, memory_format=memory_format))
            ps.append(torch.sigmoid(logits.float()).cpu().numpy())
            ys.append(y.numpy())
    return np.concatenate(ys).astype(np.uint8), np.concatenate(ps).astype(np.float32)


def label_aucs(
    y_true: np.ndarray,
    y_score: np.ndarray,
    label_names: Sequence[str],
    rule: LabelRule = LABEL_RULE,
) -> tuple[float, dict[str, float]]:
    """ROC AUC per label (scikit-learn) and their mean over the labels ``rule`` keeps.

    A label whose targets hold a single class has no AUC (NaN in the per-label dict). A label
    with fewer positives or negatives than ``rule`` asks for keeps its AUC in the dict but is
    left out of the mean (:mod:`mdsearch.search.scored_labels`).

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
    scored = rule.apply(y_true, label_names)
    return scored.mean(np.array(list(per_label.values()))), per_label


def _until(items: Iterable, deadline: float | None) -> Iterator:
    """``items``, raising :class:`TrialTimeout` before any item past ``deadline``."""
    for item in items:
        if deadline is not None and time.monotonic() > deadline:
            raise TrialTimeout("the training passed its deadline")
        yield item


@dataclass(frozen=True)
class Validation:
    """One scoring of the validation split.

    Attributes:
        auc: mean ROC AUC over the labels :func:`label_aucs` keeps (NaN if none has both
            classes).
        label_auc: per-label AUC (NaN where a label has one class).
        y_true: uint8 (N, L) targets.
        y_score: float32 (N, L) sigmoid scores.
    """

    auc: float
    label_auc: dict[str, float]
    y_true: np.ndarray
    y_score: np.ndarray


@dataclass(frozen=True)
class EpochResult:
    """What one epoch of :func:`train` did.

    Attributes:
        epoch: 1-based epoch number.
        lr: learning rate of the epoch's first step (of the first parameter group).
        stats: training loss, images and seconds.
        validation: the validation scores after the epoch (None: not scored this epoch).
    """

    epoch: int
    lr: float
    stats: EpochStats
    validation: Validation | None = None


@dataclass
class TrainingRun:
    """The state of one training: what :func:`train` returns and hands to its callback.

    Attributes:
        model: the network (train or eval mode as the last pass left it).
        optimizer: its optimizer.
        scheduler: its per-step learning-rate schedule.
        generator: the CPU generator of the data order, subsets and augmentation.
        steps_per_epoch: optimizer steps per epoch (what the loader yields).
        step: what one step does (:class:`TrainStep`; None: :func:`one_loss`, no state).
        epochs_done: epochs completed, including those restored by ``resume``.
        epochs: the epochs run by this call, in order.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    steps_per_epoch: int
    step: TrainStep | None = None
    epochs_done: int = 0
    epochs: list[EpochResult] = field(default_factory=list)

    def state(self) -> dict[str, Any]:
        """Everything a later :func:`train` call needs to continue exactly here: ``epoch``,
        ``model``, ``optimizer``, ``scheduler``, ``rng`` (``torch``, ``data``, ``cuda``) and
        ``step`` (the step's own random state, :meth:`TrainStep.state`). This is the layout of
        every mdsearch training checkpoint (``mdsearch train``'s checkpoint.pt, the supernet's
        supernet.pt), each with its own record beside these keys."""
        import torch

        return {
            "epoch": self.epochs_done,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "data": self.generator.get_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
            "step": self.step.state() if self.step is not None else {},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load a :meth:`state` (the network, optimizer, schedule, RNGs, the step's state and
        the epoch count; a state written before steps had one has no ``step``)."""
        import torch

        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["data"])
        if state["rng"].get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        if self.step is not None:
            self.step.restore(state.get("step") or {})
        self.epochs_done = int(state["epoch"])


def start_run(
    model: nn.Module,
    recipe: TrainRecipe,
    seed: int,
    steps_per_epoch: int,
    device: str,
    step: TrainStep | None = None,
) -> TrainingRun:
    """A fresh :class:`TrainingRun` of ``model`` (a stand-alone network or a supernet): moved to
    ``device`` (channels_last when the recipe says so), with the recipe's optimizer and schedule
    over all its steps, a data-order generator seeded with ``seed`` and ``step``."""
    import torch

    model = model.to(device)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer, scheduler = make_optimizer(
        model,
        name=recipe.optimizer,
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        total_steps=recipe.epochs * steps_per_epoch,
        schedule=recipe.schedule,
    )
    return TrainingRun(
        model, optimizer, scheduler, torch.Generator().manual_seed(seed), steps_per_epoch, step
    )


def train(
    network: ArchSpec | TrainStep,
    dataset: Dataset,
    recipe: TrainRecipe,
    seed: int,
    *,
    device: str = "cpu",
    threads: int | None = None,
    validate: Callable[[int], bool] = lambda epoch: True,
    on_epoch: Callable[[TrainingRun, EpochResult], None] | None = None,
    on_step: Callable[[int], None] | None = None,
    resume: Mapping[str, Any] | None = None,
    deadline: float | None = None,
    label_rule: LabelRule = LABEL_RULE,
) -> TrainingRun:
    """Train ``network`` from scratch (or from ``resume``) on ``dataset``'s train split.

    The test split is never touched. Each epoch draws a fresh ``recipe.train_subset`` of the
    train split (the generator advances); the validation split (``recipe.val_subset`` of it, the
    same images every time) is scored after each epoch ``validate`` accepts.

    Args:
        network: the architecture (trained by :class:`StandaloneStep`; its ``num_classes`` must
            equal the dataset's label count: callers check, to word the error for their
            command), or a :class:`TrainStep` that builds its own network (the supernet's
            :class:`~mdsearch.search.supernet.SandwichStep`).
        dataset: the data, at the resolution the caller chose.
        recipe: how to train (epochs, batch size, optimizer, schedule, ...).
        seed: seeds the initialisation, the data order and the augmentation.
        device: ``cpu`` or ``cuda``.
        threads: torch intra-op threads on CPU (None: leave torch's setting alone).
        validate: ``validate(epoch)`` says whether to score the validation split after that
            1-based epoch.
        on_epoch: called after every epoch with the run (e.g. to save :meth:`TrainingRun.state`)
            and the epoch's result.
        on_step: called after every optimizer step with the images it processed.
        resume: a :meth:`TrainingRun.state` to continue from (its next epoch comes next).
        deadline: ``time.monotonic()`` value after which the next batch raises (None: no limit).
        label_rule: which labels the validation mean AUC is over (a resumed run keeps the rule
            its config.json records, so old and new rows of its table mean the same).

    Returns:
        The :class:`TrainingRun` after ``recipe.epochs`` epochs.

    Raises:
        SettingsError: the train split yields no full batch per epoch.
        Diverged: an epoch's loss or the validation scores became NaN or infinite.
        TrialTimeout: ``deadline`` passed (checked before every training and validation batch).
    """
    import torch

    from .datasets import batches

    step = StandaloneStep(network) if isinstance(network, ArchSpec) else network
    n_train = len(dataset.splits["train"])
    recipe.check_train_split(n_train)
    steps_per_epoch = recipe.steps_per_epoch(n_train)
    if device == "cpu" and threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    run = start_run(step.build(recipe), recipe, seed, steps_per_epoch, device, step)
    model, optimizer, scheduler = run.model, run.optimizer, run.scheduler
    if resume is not None:
        run.restore(resume)
    for epoch in range(run.epochs_done + 1, recipe.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        train_batches = batches(
            dataset,
            "train",
            batch_size=recipe.batch_size,
            shuffle=True,
            augment=recipe.augment,
            generator=run.generator,
            subset=recipe.train_subset,
        )
        stats = train_one_epoch(
            model,
            _until(train_batches, deadline),
            optimizer,
            scheduler,
            step=step,
            device=device,
            channels_last=recipe.channels_last,
            on_step=on_step,
        )
        scores = None
        if validate(epoch):
            scores = validation_scores(
                model, dataset, recipe, device=device, deadline=deadline, label_rule=label_rule
            )
            if not np.isfinite(scores.y_score).all():
                raise Diverged(f"validation scores became NaN after epoch {epoch}: lower --lr")
        result = EpochResult(epoch=epoch, lr=lr, stats=stats, validation=scores)
        run.epochs_done = epoch
        run.epochs.append(result)
        if on_epoch is not None:
            on_epoch(run, result)
    return run


def validation_scores(
    model: nn.Module,
    dataset: Dataset,
    recipe: TrainRecipe,
    *,
    device: str,
    deadline: float | None,
    label_rule: LabelRule = LABEL_RULE,
) -> Validation:
    """Score the validation split (``recipe.val_subset`` of it, eval batches of at least
    ``_MIN_EVAL_BATCH``) as every training and every scored sub-network does; NaN scores give
    an AUC of NaN (the caller raises :class:`Diverged`)."""
    from .datasets import batches

    val_batches = batches(
        dataset,
        "val",
        batch_size=max(recipe.batch_size, _MIN_EVAL_BATCH),
        shuffle=False,
        augment=False,
        subset=recipe.val_subset,
    )
    y_true, y_score = predict(
        model, _until(val_batches, deadline), device=device, channels_last=recipe.channels_last
    )
    if not np.isfinite(y_score).all():  # no AUC of NaN scores; the caller raises Diverged
        return Validation(float("nan"), {}, y_true, y_score)
    auc, per_label = label_aucs(y_true, y_score, dataset.label_names, rule=label_rule)
    return Validation(auc, per_label, y_true, y_score)
