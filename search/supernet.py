"""Every architecture of a space scored from one training: the weight-sharing supernet's training
(the scoring of its sub-networks is :mod:`mdsearch.search.subnet_scoring`).

Training (:func:`train_supernet`) is the one training loop (:func:`mdsearch.search.training.train`)
with the supernet's step, :class:`SandwichStep`, over the proxy data and the search's recipe
(:class:`TrainRecipe`: batch size, images per epoch, optimizer, cosine schedule, augmentation).
The step is the *sandwich rule* (BigNAS): it trains, on the same batch, the space's largest
sub-network, its smallest and ``random_subnets`` sub-networks drawn uniformly, accumulates their
gradients (each loss divided by their number), and the loop takes one optimizer step. After every
epoch the whole state (network, optimizer, schedule, every random generator: the loop's
:meth:`~mdsearch.search.training.TrainingRun.state`, the layout of ``mdsearch train``'s checkpoints
too, with the supernet's record beside it) is written atomically to the checkpoint, and a training
that finds its checkpoint continues from it, so a killed training loses at most one epoch and
ends with exactly the weights an uninterrupted one would have. Checkpoints written before the
loop was shared (``mdsearch.supernet/1``) load and resume the same way.

Cost is counted in images: one step processes ``batch x (2 + random_subnets)`` images (forward
and backward), a stand-alone proxy trial ``PROXY_RECIPE.epochs x images per epoch``; their ratio
is the cost in stand-alone-proxy equivalents (:func:`proxy_equivalents`). The default
(:data:`SUPERNET_RECIPE`, 8 epochs of 1,024 images, 2 random sub-networks) costs 16 of them:
the budget of 16 stand-alone trials, the size of the ``paper`` space.

Scoring (:func:`~mdsearch.search.subnet_scoring.score_subnet`) recalibrates each sub-network's
BatchNorm statistics, then scores the validation split as a proxy trial does.

    training = train_supernet(space, dataset, SUPERNET_RECIPE, seed=0, checkpoint="sn.pt")
    result = score_subnet(training.supernet, spec, dataset, training.recipe,
                          settings=training.settings)
    result.auc, result.y_score          # like proxy_train's

    # elsewhere (another process, e.g. one Ray Tune trial per sub-network):
    training = load_supernet("sn.pt")
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mdsearch.space import ArchSpec, SearchSpace, StageSpec

from .settings import PROXY_RECIPE, SettingsError, TrainRecipe, known_fields
from .supernet_checkpoint import (
    check_same_training,
    checkpoint_meta,
    read_checkpoint,
    space_from_meta,
    write_checkpoint,
)
from .training import EpochStats

if TYPE_CHECKING:
    import torch

    from mdsearch.mdconv import Supernet

    from .datasets import Dataset
    from .training import EpochResult, TrainingRun

__all__ = [
    "SUPERNET_RECIPE",
    "SandwichStep",
    "SupernetSettings",
    "SupernetTraining",
    "load_supernet",
    "proxy_equivalents",
    "random_subnet",
    "train_supernet",
]

#: The supernet's default training: the proxy recipe for 8 epochs. With the default
#: :class:`SupernetSettings` (largest + smallest + 2 random per step) it processes 16 x the
#: images of one stand-alone proxy trial.
SUPERNET_RECIPE = replace(PROXY_RECIPE, epochs=8)


@dataclass(frozen=True)
class SupernetSettings:
    """What the supernet adds to a :class:`TrainRecipe`.

    Args:
        random_subnets: sub-networks drawn uniformly per step besides the largest and the
            smallest (the sandwich rule's N).
        distill: in-place distillation (BigNAS): the largest learns from the labels, every other
            sub-network from the largest's (detached) sigmoid outputs.
        recalibration_images: training images over which each scored sub-network's BatchNorm
            statistics are recomputed: a shuffled sample drawn with a fixed seed, the same for
            every sub-network (a further score of a sub-network draws another with its seed;
            :func:`~mdsearch.search.subnet_scoring.recalibration_batches`).
        recalibration_batch: images per forward pass of the recalibration.
        kernel_transform: learn Once-for-All's kernel transformation (a smaller kernel is a
            learned linear map of the larger one's centre, not the bare centre;
            :class:`~mdsearch.mdconv.SuperDepthwiseConv2d`).
        per_choice_depthwise: each choice of a stage owns its depthwise weights and the
            BatchNorm after them; the pointwise layers stay shared
            (:mod:`mdsearch.mdconv.choice_layers`). Excludes ``kernel_transform``.
    """

    random_subnets: int = 2
    distill: bool = False
    recalibration_images: int = 512
    recalibration_batch: int = 64
    kernel_transform: bool = False
    per_choice_depthwise: bool = False

    def check(self) -> None:
        """Raise :class:`SettingsError` for values no training can use."""
        if self.random_subnets < 0:
            raise SettingsError(f"random_subnets {self.random_subnets}: must be 0 or more")
        if self.recalibration_batch < 2:
            raise SettingsError(
                "recalibration needs at least 2 images per batch (BatchNorm statistics)"
            )
        if self.recalibration_images < self.recalibration_batch:
            raise SettingsError(
                f"recalibration_images {self.recalibration_images}: give at least one "
                f"recalibration batch ({self.recalibration_batch} images)"
            )
        if self.kernel_transform and self.per_choice_depthwise:
            raise SettingsError(
                "kernel_transform and per_choice_depthwise exclude each other (per-choice "
                "kernels are not crops of a larger one to transform)"
            )

    @property
    def subnets_per_step(self) -> int:
        """Sub-networks trained per optimizer step (largest + smallest + random)."""
        return 2 + self.random_subnets

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SupernetSettings:
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        return cls(**known_fields(cls, data))


def proxy_equivalents(
    recipe: TrainRecipe,
    settings: SupernetSettings,
    n_train: int,
    proxy: TrainRecipe = PROXY_RECIPE,
) -> float:
    """The supernet training's cost in stand-alone proxy trials: images it processes (forward
    and backward, every sub-network of every step) over the images one ``proxy`` trial trains on.

    Example:
        >>> proxy_equivalents(SUPERNET_RECIPE, SupernetSettings(), n_train=5000)
        16.0
    """
    steps = recipe.epochs * recipe.steps_per_epoch(n_train)
    images = steps * recipe.batch_size * settings.subnets_per_step
    return images / (proxy.epochs * proxy.steps_per_epoch(n_train) * proxy.batch_size)


def random_subnet(supernet: Supernet, generator: torch.Generator) -> ArchSpec:
    """One architecture of the supernet's space, every searched stage's choice drawn uniformly."""
    import torch

    stages: list[StageSpec] = []
    for options in supernet.space.choices:
        pick = (
            int(torch.randint(len(options), (1,), generator=generator)) if len(options) > 1 else 0
        )
        stages.append(options[pick])
    return supernet.spec(stages)


class SandwichStep:
    """The supernet's :class:`~mdsearch.search.train_step.TrainStep` (BigNAS's sandwich rule).

    Builds the supernet of ``space`` (:func:`~mdsearch.mdconv.build_supernet` with the
    settings' kernel options). Each step runs, on the same batch, the largest sub-network, the
    smallest and ``settings.random_subnets`` drawn uniformly (from its own generator, seeded with
    ``seed + 1`` and checkpointed with the run), each loss divided by their number, and
    accumulates their gradients; with ``settings.distill`` every sub-network after the largest
    learns from the largest's detached sigmoid outputs instead of the labels. The losses stay on
    the device (no host sync per sub-network). The largest is active after every step.

    Args:
        space: the search space.
        num_classes: outputs of the classifier (the data's labels).
        settings: sandwich size, distillation, kernel options.
        seed: the training's seed.
    """

    def __init__(
        self, space: SearchSpace, num_classes: int, settings: SupernetSettings, seed: int
    ) -> None:
        import torch

        self.space = space
        self.num_classes = num_classes
        self.settings = settings
        self.arch_rng = torch.Generator().manual_seed(seed + 1)
        self._fixed: list[ArchSpec] = []

    def build(self, recipe: TrainRecipe) -> Supernet:
        """The randomly initialised supernet (head init from ``recipe``)."""
        from mdsearch.mdconv import build_supernet

        supernet = build_supernet(
            self.space,
            self.num_classes,
            head_init=recipe.head_init,
            kernel_transform=self.settings.kernel_transform,
            per_choice_depthwise=self.settings.per_choice_depthwise,
        )
        self._fixed = [supernet.largest(), supernet.smallest()]
        return supernet

    def __call__(
        self, model: Supernet, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, int]:
        """One sandwich: every sub-network's forward and backward on ``(x, y)``.

        Returns:
            ``(sum of the sub-networks' mean losses x batch size, batch size x sub-networks)``:
            the loop's mean is the mean over sub-networks and images.
        """
        import torch

        fixed = self._fixed or [model.largest(), model.smallest()]
        drawn = [random_subnet(model, self.arch_rng) for _ in range(self.settings.random_subnets)]
        specs = fixed + drawn
        teacher = None
        total = torch.zeros((), device=x.device)
        for i, spec in enumerate(specs):
            model.set_active(spec)
            logits = model(x)
            target = y if teacher is None else teacher
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
            (loss / len(specs)).backward()
            if self.settings.distill and i == 0:  # specs[0] is the largest
                teacher = torch.sigmoid(logits.detach())
            total += loss.detach()
        model.set_active(specs[0])
        return total * len(x), len(x) * len(specs)

    def state(self) -> dict[str, Any]:
        """The sub-network sampler's generator state (``arch``)."""
        return {"arch": self.arch_rng.get_state()}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue the sub-network sampler from a :meth:`state`."""
        if "arch" in state:
            self.arch_rng.set_state(state["arch"])


@dataclass
class SupernetTraining:
    """A supernet training's state and what it measured.

    Attributes:
        supernet: the network (its active architecture is the largest).
        epochs_done: epochs completed (restored ones included).
        epochs: per epoch: images processed (every sub-network counted), seconds, mean loss.
        proxy_equivalents: the whole training's cost in stand-alone proxy trials
            (:func:`proxy_equivalents`).
        resumed_from: epochs read from the checkpoint when this call started (0: from scratch).
        meta: what the training was (space, recipe, settings, seed, data fingerprint).
    """

    supernet: Supernet
    epochs_done: int
    epochs: list[EpochStats] = field(default_factory=list)
    proxy_equivalents: float = math.nan
    resumed_from: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def recipe(self) -> TrainRecipe:
        """The recipe the supernet trained with (what :func:`score_subnet` takes)."""
        return TrainRecipe.from_dict(self.meta["recipe"])

    @property
    def settings(self) -> SupernetSettings:
        """The supernet settings it trained with (what :func:`score_subnet` takes)."""
        return SupernetSettings.from_dict(self.meta["settings"])

    @property
    def images(self) -> int:
        """Images processed in all epochs (forward + backward; every sub-network counted)."""
        return sum(e.images for e in self.epochs)

    @property
    def seconds(self) -> float:
        """Training seconds of all epochs (those of an earlier, resumed call included)."""
        return sum(e.seconds for e in self.epochs)

    @property
    def images_per_s(self) -> float:
        """Images processed per second of training (every sub-network counted)."""
        return self.images / self.seconds if self.seconds > 0 else math.nan


def train_supernet(
    space: SearchSpace,
    dataset: Dataset,
    recipe: TrainRecipe = SUPERNET_RECIPE,
    seed: int = 0,
    *,
    settings: SupernetSettings = SupernetSettings(),
    checkpoint: str | Path | None = None,
    proxy: TrainRecipe = PROXY_RECIPE,
    device: str = "cpu",
    threads: int | None = None,
    on_epoch: Callable[[SupernetTraining, EpochStats], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> SupernetTraining:
    """Train the supernet of ``space`` with the sandwich rule; resume from ``checkpoint``.

    Args:
        space: the search space.
        dataset: the proxy data (its train split only is used).
        recipe: batch size, images per epoch, epochs, optimizer, schedule, augmentation, head
            init, memory format (:data:`SUPERNET_RECIPE` by default).
        seed: seeds the initialisation, the data order, the augmentation and the sampled
            sub-networks.
        settings: sandwich size, distillation, recalibration (:class:`SupernetSettings`).
        checkpoint: file written after every epoch; when it exists, the training continues from
            it (when it holds all epochs, nothing is trained).
        proxy: the stand-alone proxy recipe the cost is counted in (the search's).
        device: ``cpu`` or ``cuda``.
        threads: torch intra-op threads on CPU (None: leave torch's setting alone).
        on_epoch: called after every epoch (after the checkpoint is written) with the training
            and the epoch's stats (progress display).
        on_step: called after every optimizer step with the images it processed.

    Returns:
        The :class:`SupernetTraining` after ``recipe.epochs`` epochs.

    Raises:
        SettingsError: bad settings, a train split without a full batch, or a checkpoint written
            by another training (other space, recipe, settings, seed or data).
        Diverged: the loss became NaN or infinite.
    """
    from .training import train

    recipe.check()
    settings.check()
    n_train = len(dataset.splits["train"])
    recipe.check_train_split(n_train)
    cost = proxy_equivalents(recipe, settings, n_train, proxy)
    meta = checkpoint_meta(space, dataset, recipe, settings.to_dict(), seed, cost)
    path = Path(checkpoint) if checkpoint is not None else None
    resume: dict[str, Any] | None = None
    history: list[EpochStats] = []
    if path is not None and path.exists():
        resume = read_checkpoint(path)
        # Settings added since the checkpoint was written take their defaults (what it used).
        saved = SupernetSettings.from_dict(resume["meta"].get("settings", {})).to_dict()
        check_same_training({**resume["meta"], "settings": saved}, meta, path)
        history = [EpochStats(**e) for e in resume["history"]]
    resumed_from = int(resume["epoch"]) if resume is not None else 0

    def record(run: TrainingRun) -> SupernetTraining:
        return SupernetTraining(
            run.model,  # type: ignore[arg-type]  # SandwichStep builds a Supernet
            run.epochs_done,
            list(history),
            proxy_equivalents=meta["proxy_equivalents"],
            resumed_from=resumed_from,
            meta=meta,
        )

    def after_epoch(run: TrainingRun, epoch: EpochResult) -> None:
        history.append(epoch.stats)
        if path is not None:
            write_checkpoint(path, run, meta, history)
        if on_epoch is not None:
            on_epoch(record(run), epoch.stats)

    run = train(
        SandwichStep(space, len(dataset.label_names), settings, seed),
        dataset,
        recipe,
        seed,
        device=device,
        threads=threads,
        validate=lambda epoch: False,
        on_epoch=after_epoch,
        on_step=on_step,
        resume=resume,
    )
    training = record(run)
    training.supernet.set_active(training.supernet.largest())
    return training


def load_supernet(checkpoint: str | Path, device: str = "cpu") -> SupernetTraining:
    """The supernet (and its training's record) from a :func:`train_supernet` checkpoint, for
    scoring in another process (e.g. a Ray Tune trial per sub-network).

    Raises:
        SettingsError: the file is missing or not a supernet checkpoint.
    """
    import torch

    path = Path(checkpoint)
    if not path.exists():
        raise SettingsError(f"supernet checkpoint {path} does not exist: train the supernet first")
    state = read_checkpoint(path)
    meta = state["meta"]
    recipe = TrainRecipe.from_dict(meta["recipe"])
    step = SandwichStep(
        space_from_meta(meta["space"]),
        int(meta["num_classes"]),
        SupernetSettings.from_dict(meta["settings"]),
        int(meta["seed"]),
    )
    supernet = step.build(recipe)
    supernet.load_state_dict(state["model"])
    supernet = supernet.to(device)
    if recipe.channels_last:
        supernet = supernet.to(memory_format=torch.channels_last)
    return SupernetTraining(
        supernet,
        int(state["epoch"]),
        [EpochStats(**e) for e in state["history"]],
        proxy_equivalents=float(meta["proxy_equivalents"]),
        resumed_from=int(state["epoch"]),
        meta=meta,
    )
