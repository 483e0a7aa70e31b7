"""The supernet training's checkpoint file (``supernet.pt``): its layout, the layout before the
training loop was shared, and the check before a resume.

Layout (``format`` ``mdsearch.supernet/2``): the training loop's state at the top level
(:meth:`~mdsearch.search.training.TrainingRun.state`: ``epoch``, ``model``, ``optimizer``,
``scheduler``, ``rng``, ``step``: the layout of ``mdsearch train``'s checkpoint.pt too), and
beside it ``format``, ``meta`` (what the training is: space, classes, recipe, supernet settings,
seed, data, cost; :func:`checkpoint_meta`) and ``history`` (per epoch: loss, images, seconds).

Files written before the loop was shared (``mdsearch.supernet/1``: ``{"meta": {"format": ...},
"run": state, "arch_rng": generator state, "epochs": [...]}``) are converted on reading, so they
load and resume exactly as before.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mdsearch.space import SearchSpace, StageSpec, atomic_write_bytes

from .settings import SettingsError, TrainRecipe

if TYPE_CHECKING:
    from .datasets import Dataset
    from .training import EpochStats, TrainingRun

__all__ = [
    "CHECKPOINT_FORMAT",
    "check_same_training",
    "checkpoint_meta",
    "read_checkpoint",
    "space_from_meta",
    "write_checkpoint",
]

CHECKPOINT_FORMAT = "mdsearch.supernet/2"
_OLD_FORMAT = "mdsearch.supernet/1"
#: What must be equal for a checkpoint to be continued.
_SAME = ("space", "num_classes", "recipe", "settings", "seed", "data")


def checkpoint_meta(
    space: SearchSpace,
    dataset: Dataset,
    recipe: TrainRecipe,
    settings: Mapping[str, Any],
    seed: int,
    proxy_equivalents: float,
) -> dict[str, Any]:
    """The checkpoint's ``meta``: what the training is, and its cost in stand-alone proxy
    trials."""
    return {
        "space": {
            "name": space.name,
            "backbone": space.backbone,
            "choices": [[c.token for c in options] for options in space.choices],
            "description": space.description,
        },
        "num_classes": len(dataset.label_names),
        "recipe": recipe.to_dict(),
        "settings": dict(settings),
        "seed": seed,
        "data": {
            "source": dataset.source,
            "fingerprint": dataset.fingerprint,
            "resolution": dataset.resolution,
        },  # fmt: skip
        "proxy_equivalents": proxy_equivalents,
    }


def space_from_meta(data: Mapping[str, Any]) -> SearchSpace:
    """The :class:`SearchSpace` a ``meta["space"]`` describes."""
    choices = tuple(tuple(StageSpec.parse(t) for t in options) for options in data["choices"])
    return SearchSpace(data["name"], data["backbone"], choices, data.get("description", ""))


def check_same_training(saved: Mapping[str, Any], now: Mapping[str, Any], path: Path) -> None:
    """Refuse to continue a checkpoint of another training.

    Args:
        saved: the checkpoint's ``meta`` (its ``settings`` completed with today's defaults for
            fields added since it was written: what it trained with).
        now: this training's :func:`checkpoint_meta`.
        path: the checkpoint (named in the error).

    Raises:
        SettingsError: naming what differs.
    """
    differ = [k for k in _SAME if saved.get(k) != now.get(k)]
    if differ:
        raise SettingsError(
            f"supernet checkpoint {path} was written by another training (its "
            f"{', '.join(differ)} differ): delete it or give another checkpoint path"
        )


def write_checkpoint(
    path: Path, run: TrainingRun, meta: Mapping[str, Any], history: list[EpochStats]
) -> None:
    """Write the checkpoint atomically (:func:`mdsearch.space.atomic_write_bytes`)."""
    import torch

    state = {
        **run.state(),
        "format": CHECKPOINT_FORMAT,
        "meta": dict(meta),
        "history": [asdict(e) for e in history],
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint in the current layout (a ``mdsearch.supernet/1`` file converted).

    Raises:
        SettingsError: unreadable, or not a supernet checkpoint (one line).
    """
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: one line, not a traceback
        raise SettingsError(f"supernet checkpoint {path} cannot be read: {exc}") from None
    if not isinstance(state, dict):
        state = {}
    if state.get("format") == CHECKPOINT_FORMAT:
        return state
    meta = state.get("meta")
    if isinstance(meta, dict) and meta.get("format") == _OLD_FORMAT:
        return {
            **state["run"],
            "step": {"arch": state["arch_rng"]},
            "format": CHECKPOINT_FORMAT,
            "meta": {k: v for k, v in meta.items() if k != "format"},
            "history": state["epochs"],
        }
    raise SettingsError(
        f"{path} is not a supernet checkpoint ({CHECKPOINT_FORMAT} or {_OLD_FORMAT}): delete "
        "it or give another checkpoint path"
    )
