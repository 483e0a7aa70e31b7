"""Every architecture of a space scored from one training: the weight-sharing supernet's training
(the scoring of its sub-networks is :mod:`mdsearch.search.subnet_scoring`).

Training (:func:`train_supernet`) runs the search's recipe (:class:`TrainRecipe`: batch size,
images per epoch, optimizer, cosine schedule, augmentation) over the proxy data with the
*sandwich rule* (BigNAS): every step trains, on the same batch, the space's largest
sub-network, its smallest and ``random_subnets`` sub-networks drawn uniformly, accumulates their
gradients (each loss divided by their number) and takes one optimizer step. After every epoch the
whole state (network, optimizer, schedule, every random generator) is written atomically to the
checkpoint, and a training that finds its checkpoint continues from it, so a killed training
loses at most one epoch and ends with exactly the weights an uninterrupted one would have.

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

import io
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mdsearch.space import ArchSpec, SearchSpace, StageSpec, atomic_write_bytes

from .settings import PROXY_RECIPE, SettingsError, TrainRecipe, known_fields
from .training import Diverged, EpochStats

if TYPE_CHECKING:
    import torch

    from mdsearch.mdconv import Supernet

    from .datasets import Dataset

__all__ = [
    "SUPERNET_RECIPE",
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
_CHECKPOINT_FORMAT = "mdsearch.supernet/1"


@dataclass(frozen=True)
class SupernetSettings:
    """What the supernet adds to a :class:`TrainRecipe`.

    Args:
        random_subnets: sub-networks drawn uniformly per step besides the largest and the
            smallest (the sandwich rule's N).
        distill: in-place distillation (BigNAS): the largest learns from the labels, every other
            sub-network from the largest's (detached) sigmoid outputs.
        recalibration_images: training images over which each scored sub-network's BatchNorm
            statistics are recomputed (a fixed sample, the same for every sub-network).
        recalibration_batch: images per forward pass of the recalibration.
        kernel_transform: learn Once-for-All's kernel transformation (a smaller kernel is a
            learned linear map of the larger one's centre, not the bare centre;
            :class:`~mdsearch.mdconv.SuperDepthwiseConv2d`).
    """

    random_subnets: int = 2
    distill: bool = False
    recalibration_images: int = 512
    recalibration_batch: int = 64
    kernel_transform: bool = False

    def check(self) -> None:
        """Raise :class:`SettingsError` for values no training can use."""
        if self.random_subnets < 0:
            raise SettingsError(f"random_subnets {self.random_subnets}: must be 0 or more")
        if self.recalibration_images < 2 or self.recalibration_batch < 2:
            raise SettingsError(
                "recalibration needs at least 2 images per batch (BatchNorm statistics)"
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
    import torch

    from mdsearch.mdconv import build_supernet

    from .datasets import batches
    from .training import start_run

    recipe.check()
    settings.check()
    n_train = len(dataset.splits["train"])
    recipe.check_train_split(n_train)
    steps_per_epoch = recipe.steps_per_epoch(n_train)
    meta = _meta(space, dataset, recipe, settings, seed, proxy)
    if device == "cpu" and threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    supernet = build_supernet(
        space,
        len(dataset.label_names),
        head_init=recipe.head_init,
        kernel_transform=settings.kernel_transform,
    )
    run = start_run(supernet, recipe, seed, steps_per_epoch, device)
    supernet, optimizer, scheduler = run.model, run.optimizer, run.scheduler
    arch_rng = torch.Generator().manual_seed(seed + 1)
    training = SupernetTraining(
        supernet,
        0,
        proxy_equivalents=meta["proxy_equivalents"],
        meta=meta,
    )
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists():
        state = _read_checkpoint(path)
        _check_same_training(state["meta"], meta, path)
        run.restore(state["run"])
        arch_rng.set_state(state["arch_rng"])
        training.epochs = [EpochStats(**e) for e in state["epochs"]]
        training.epochs_done = training.resumed_from = run.epochs_done

    largest, smallest = supernet.largest(), supernet.smallest()
    for _epoch in range(run.epochs_done + 1, recipe.epochs + 1):
        train_batches = batches(
            dataset,
            "train",
            batch_size=recipe.batch_size,
            shuffle=True,
            augment=recipe.augment,
            generator=run.generator,
            subset=recipe.train_subset,
        )
        stats = _sandwich_epoch(
            supernet,
            train_batches,
            optimizer,
            scheduler,
            [largest, smallest],
            lambda: random_subnet(supernet, arch_rng),
            settings,
            device=device,
            channels_last=recipe.channels_last,
            on_step=on_step,
        )
        run.epochs_done += 1
        training.epochs_done = run.epochs_done
        training.epochs.append(stats)
        if path is not None:
            _write_checkpoint(path, run, arch_rng, training, meta)
        if on_epoch is not None:
            on_epoch(training, stats)
    supernet.set_active(largest)
    return training


def load_supernet(checkpoint: str | Path, device: str = "cpu") -> SupernetTraining:
    """The supernet (and its training's record) from a :func:`train_supernet` checkpoint, for
    scoring in another process (e.g. a Ray Tune trial per sub-network).

    Raises:
        SettingsError: the file is missing or not a supernet checkpoint.
    """
    import torch

    from mdsearch.mdconv import build_supernet

    path = Path(checkpoint)
    if not path.exists():
        raise SettingsError(f"supernet checkpoint {path} does not exist: train the supernet first")
    state = _read_checkpoint(path)
    meta = state["meta"]
    space = _space_from_meta(meta["space"])
    recipe = TrainRecipe.from_dict(meta["recipe"])
    supernet = build_supernet(
        space,
        int(meta["num_classes"]),
        head_init=recipe.head_init,
        kernel_transform=SupernetSettings.from_dict(meta["settings"]).kernel_transform,
    )
    supernet.load_state_dict(state["run"]["model"])
    supernet = supernet.to(device)
    if recipe.channels_last:
        supernet = supernet.to(memory_format=torch.channels_last)
    epochs = [EpochStats(**e) for e in state["epochs"]]
    return SupernetTraining(
        supernet,
        int(state["run"]["epoch"]),
        epochs,
        proxy_equivalents=float(meta["proxy_equivalents"]),
        resumed_from=int(state["run"]["epoch"]),
        meta=meta,
    )


# -- internals ------------------------------------------------------------------------------
def _sandwich_epoch(
    supernet: Supernet,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    fixed: list[ArchSpec],
    draw: Callable[[], ArchSpec],
    settings: SupernetSettings,
    *,
    device: str,
    channels_last: bool,
    on_step: Callable[[int], None] | None,
) -> EpochStats:
    """One epoch of sandwich steps (module docstring); images count every sub-network."""
    import torch

    supernet.train()
    criterion = torch.nn.BCEWithLogitsLoss()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    total, images, start = 0.0, 0, time.perf_counter()
    for step, (x, y) in enumerate(batches):
        x = x.to(device, memory_format=memory_format, non_blocking=True)
        y = y.to(device, non_blocking=True)
        specs = fixed + [draw() for _ in range(settings.random_subnets)]
        optimizer.zero_grad(set_to_none=True)
        teacher = None
        for i, spec in enumerate(specs):
            supernet.set_active(spec)
            logits = supernet(x)
            target = y if teacher is None else teacher
            loss = criterion(logits, target) / len(specs)
            if not math.isfinite(loss.item()):
                raise Diverged(f"supernet loss became {loss.item()} at step {step}: lower --lr")
            loss.backward()
            if settings.distill and i == 0:  # specs[0] is the largest
                teacher = torch.sigmoid(logits.detach())
            total += loss.item() * len(specs) * len(x)
            images += len(x)
        optimizer.step()
        scheduler.step()
        if on_step is not None:
            on_step(len(x) * len(specs))
    supernet.set_active(fixed[0])
    return EpochStats(total / max(1, images), images, time.perf_counter() - start)


def _meta(
    space: SearchSpace,
    dataset: Dataset,
    recipe: TrainRecipe,
    settings: SupernetSettings,
    seed: int,
    proxy: TrainRecipe,
) -> dict[str, Any]:
    n_train = len(dataset.splits["train"])
    return {
        "format": _CHECKPOINT_FORMAT,
        "space": {
            "name": space.name,
            "backbone": space.backbone,
            "choices": [[c.token for c in options] for options in space.choices],
            "description": space.description,
        },
        "num_classes": len(dataset.label_names),
        "recipe": recipe.to_dict(),
        "settings": settings.to_dict(),
        "seed": seed,
        "data": {
            "source": dataset.source,
            "fingerprint": dataset.fingerprint,
            "resolution": dataset.resolution,
        },  # fmt: skip
        "proxy_equivalents": proxy_equivalents(recipe, settings, n_train, proxy),
    }


def _space_from_meta(data: Mapping[str, Any]) -> SearchSpace:
    choices = tuple(tuple(StageSpec.parse(t) for t in options) for options in data["choices"])
    return SearchSpace(data["name"], data["backbone"], choices, data.get("description", ""))


def _check_same_training(saved: Mapping[str, Any], now: Mapping[str, Any], path: Path) -> None:
    keys = ("format", "space", "num_classes", "recipe", "settings", "seed", "data")
    # Settings added since a checkpoint was written take their defaults (what it trained with).
    saved = {**saved, "settings": SupernetSettings.from_dict(saved.get("settings", {})).to_dict()}
    differ = [k for k in keys if saved.get(k) != now.get(k)]
    if differ:
        raise SettingsError(
            f"supernet checkpoint {path} was written by another training (its "
            f"{', '.join(differ)} differ): delete it or give another checkpoint path"
        )


def _write_checkpoint(
    path: Path,
    run: Any,
    arch_rng: torch.Generator,
    training: SupernetTraining,
    meta: Mapping[str, Any],
) -> None:
    import torch

    state = {
        "meta": dict(meta),
        "run": run.state(),
        "arch_rng": arch_rng.get_state(),
        "epochs": [asdict(e) for e in training.epochs],
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


def _read_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file: one line, not a traceback
        raise SettingsError(f"supernet checkpoint {path} cannot be read: {exc}") from None
    if not isinstance(state, dict) or state.get("meta", {}).get("format") != _CHECKPOINT_FORMAT:
        raise SettingsError(f"{path} is not a supernet checkpoint ({_CHECKPOINT_FORMAT})")
    return state
