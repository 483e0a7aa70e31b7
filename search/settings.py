"""The two settings every training shares: where the images come from (:class:`DataSettings`)
and how a network is trained on them (:class:`TrainRecipe`).

A search trial's proxy, ``mdsearch train``, ``mdsearch eval`` and ``mdsearch proxy-check`` all
take these two objects; each checks itself in one place (:meth:`check`), with the same limits
everywhere, and the command line builds its flags and ``--help`` defaults from their fields.

    data = DataSettings("kermany=/data/chest_xray", resolution=64)
    recipe = TrainRecipe(epochs=2)          # the proxy's defaults
    data.check(); recipe.check()
    dataset = data.load()
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the data package imports numpy only; keep this module light
    from .datasets import Dataset

__all__ = [
    "DEFAULT_VAL_FRACTION",
    "FULL_DATA",
    "FULL_RECIPE",
    "PROXY_DATA",
    "PROXY_RECIPE",
    "OPTIMIZERS",
    "SCHEDULES",
    "HEAD_INITS",
    "DataSettings",
    "SettingsError",
    "TrainRecipe",
    "known_fields",
]

#: Share of the train patients held out for validation when a source has no validation split.
DEFAULT_VAL_FRACTION = 0.2
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "constant")
HEAD_INITS = ("small", "timm")


class SettingsError(ValueError):
    """A setting the user gave cannot work (one line naming the flag; the CLI exits 2)."""


def known_fields(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The items of ``data`` that are fields of the dataclass ``cls`` (unknown keys dropped, so
    files written by a newer version still load)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _at_least(flag: str, value: Any, low: float) -> None:
    if value is None or value < low:
        raise SettingsError(f"{flag} {value}: must be at least {low:g}")


@dataclass(frozen=True)
class DataSettings:
    """Which images a training sees, at what size, and how validation patients are chosen.

    Args:
        data: a ``--data`` value (``phantom``, ``kermany=PATH``, ``chestxray14=PATH``,
            ``chestmnist[:SIZE][=FILE]``; see :func:`mdsearch.search.datasets.parse_data_spec`).
        resolution: square input side in pixels (images are decoded and cached at this size).
        cache_dir: decoded-image cache folder (None: ``$MDSEARCH_CACHE_DIR`` or the user cache).
        seed: seed of the patient-wise validation split (the test split never depends on it).
        val_fraction: share of the train patients held out for validation, when the source has
            no official validation split.

    Example:
        >>> DataSettings("phantom,n=200", resolution=32).check()
    """

    data: str = "phantom"
    resolution: int = 64
    cache_dir: str | None = None
    seed: int = 0
    val_fraction: float = DEFAULT_VAL_FRACTION

    def check(self) -> None:
        """Raise :class:`SettingsError` (or the data package's ``DataError`` for a malformed
        ``--data``) for a value no training can use. Reads no image."""
        from .datasets import parse_data_spec

        if not isinstance(self.resolution, int) or not 16 <= self.resolution <= 4096:
            raise SettingsError(
                f"--resolution {self.resolution!r}: use a whole number of pixels, 16 to 4096"
            )
        if not 0 < self.val_fraction < 1:
            raise SettingsError(
                f"--val-fraction {self.val_fraction}: must be between 0 and 1, e.g. 0.2"
            )
        parse_data_spec(self.data)

    def absolute(self) -> DataSettings:
        """These settings with the data's path and the cache folder made absolute: what a
        search ships to its trials (Ray Tune runs each in its own working directory) and keeps
        in config.json (so ``--resume`` works from any directory)."""
        import os

        from .datasets import parse_data_spec

        cache = self.cache_dir
        return replace(
            self,
            data=parse_data_spec(self.data).absolute(),
            cache_dir=None if cache is None else os.path.abspath(os.path.expanduser(cache)),
        )

    def load(self, *, progress: bool = True) -> Dataset:
        """The dataset, through the image cache (decoded on first use only).

        Args:
            progress: show the cache-building progress on stderr.

        Raises:
            DataError: missing or malformed files, nothing decodable.
        """
        from .datasets import load_dataset

        self.check()
        return load_dataset(
            self.data,
            resolution=self.resolution,
            cache_dir=self.cache_dir,
            seed=self.seed,
            val_fraction=self.val_fraction,
            progress=progress,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (config.json, checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataSettings:
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        return cls(**known_fields(cls, data))


@dataclass(frozen=True)
class TrainRecipe:
    """How a network is trained: the one recipe of a search trial's proxy and of full training.

    The defaults are the proxy's (:data:`PROXY_RECIPE`); full training starts from
    :data:`FULL_RECIPE`.

    Args:
        epochs: passes over ``train_subset`` images (the proxy's fidelity).
        batch_size: images per optimizer step (at least 2: BatchNorm trains on batches).
        train_subset: images per epoch drawn from the train split (None: all of it).
        val_subset: validation images scored (None: the whole validation split).
        lr: peak learning rate.
        weight_decay: weight decay on conv/linear weights (not on norms and biases).
        optimizer: ``adamw`` or ``sgd`` (momentum 0.9, Nesterov).
        schedule: ``cosine`` (per step, to 0 at the last step) or ``constant``.
        augment: random shift/scale/rotation of training images.
        head_init: ``small`` (re-initialised classifier; what makes short proxies usable) or
            ``timm`` (timm's default, large initial logits).
        channels_last: NHWC memory format (faster depthwise convs on CPU).
    """

    epochs: int = 2
    batch_size: int = 32
    train_subset: int | None = 1024
    val_subset: int | None = None
    lr: float = 3e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    schedule: str = "cosine"
    augment: bool = True
    head_init: str = "small"
    channels_last: bool = True

    def check(self) -> None:
        """Raise :class:`SettingsError` naming the flag for a value no training can use."""
        _at_least("--epochs", self.epochs, 1)
        _at_least("--batch-size", self.batch_size, 2)
        if self.train_subset is not None:
            _at_least("--train-subset", self.train_subset, 1)
            if self.train_subset < self.batch_size:
                raise SettingsError(
                    f"--train-subset {self.train_subset} is smaller than --batch-size "
                    f"{self.batch_size}"
                )
        if self.val_subset is not None:
            _at_least("--val-subset", self.val_subset, 1)
        if not self.lr > 0:
            raise SettingsError(f"--lr {self.lr}: must be positive")
        if not self.weight_decay >= 0:
            raise SettingsError(f"--weight-decay {self.weight_decay}: must be 0 or more")
        for flag, value, allowed in (
            ("--optimizer", self.optimizer, OPTIMIZERS),
            ("--schedule", self.schedule, SCHEDULES),
            ("head_init", self.head_init, HEAD_INITS),
        ):
            if value not in allowed:
                raise SettingsError(f"{flag} {value!r}: use one of {', '.join(allowed)}")

    def images_per_epoch(self, n_train: int) -> int:
        """Training images one epoch draws from a train split of ``n_train`` images."""
        return min(n_train, self.train_subset or n_train)

    def steps_per_epoch(self, n_train: int) -> int:
        """Optimizer steps in one epoch: the loader drops the last partial batch, so this is
        what it yields (the cosine schedule's length is ``epochs`` times this)."""
        return self.images_per_epoch(n_train) // self.batch_size

    def check_train_split(self, n_train: int) -> None:
        """Raise :class:`SettingsError` when a train split of ``n_train`` images yields no full
        batch per epoch (nothing would train)."""
        if self.steps_per_epoch(n_train) < 1:
            raise SettingsError(
                f"the train split has {self.images_per_epoch(n_train)} images per epoch, fewer "
                f"than --batch-size {self.batch_size}: lower --batch-size"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (config.json, checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainRecipe:
        """Inverse of :meth:`to_dict` (unknown keys ignored, e.g. an old file's ``resolution``)."""
        return cls(**known_fields(cls, data))


#: The proxy of one search trial: 2 epochs of 1,024 images at batch 32, at 64 px.
PROXY_RECIPE = TrainRecipe()
PROXY_DATA = DataSettings()
#: Full training of a chosen architecture (``mdsearch train``): 30 epochs of the whole split,
#: at 224 px.
FULL_RECIPE = TrainRecipe(epochs=30, batch_size=64, train_subset=None)
FULL_DATA = DataSettings(resolution=224)
