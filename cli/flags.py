"""Flags shared by several commands, defined once, with ``--help`` defaults read from the
settings classes (:class:`~mdsearch.search.settings.DataSettings`,
:class:`~mdsearch.search.settings.TrainRecipe`).

    p = sub.add_parser("train")
    add_data_flags(p, FULL_DATA)
    add_recipe_flags(p.add_argument_group("training"), FULL_RECIPE)
    ...
    data = data_settings(args, FULL_DATA)     # the defaults, with what the user typed
    recipe = train_recipe(args, FULL_RECIPE)

With ``keep=True`` a flag the user did not type is absent from ``args`` (argparse.SUPPRESS), so
a command can take the value from a saved run or checkpoint instead (``--resume``, ``--run``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import fields, replace
from typing import Any, TypeVar

from mdsearch.search.settings import OPTIMIZERS, SCHEDULES, DataSettings, TrainRecipe

from .common import optional_int

__all__ = [
    "DATA_HELP",
    "add_data_flags",
    "add_device_flag",
    "add_quiet_flag",
    "add_recipe_flags",
    "add_weights_data_flags",
    "data_settings",
    "given",
    "saved_data_flags",
    "train_recipe",
]

#: ``--data``'s grammar, as the parser takes it.
DATA_HELP = (
    "phantom (synthetic, generated here) | chestxray14=PATH | chestmnist[:SIZE][=FILE.npz] | "
    "kermany=PATH[,task=subtype]"
)

# field -> (flag, argparse keywords without default, help without the default)
_DATA_FLAGS: dict[str, tuple[str, dict[str, Any], str]] = {
    "data": ("--data", {}, DATA_HELP),
    "resolution": ("--resolution", {"type": int}, "square input size in px"),
    "seed": ("--seed", {"type": int}, "seeds the validation split (and, where said, more)"),
    "val_fraction": (
        "--val-fraction",
        {"type": float},
        "share of patients held out for validation when the data has no validation split",
    ),
    "cache_dir": (
        "--cache-dir",
        {},
        "decoded-image cache folder (default $MDSEARCH_CACHE_DIR or the user cache dir)",
    ),
}
_RECIPE_FLAGS: dict[str, tuple[str, dict[str, Any], str]] = {
    "epochs": ("--epochs", {"type": int}, "training epochs"),
    "train_subset": (
        "--train-subset",
        {"type": optional_int},
        "training images per epoch ('all' for the whole split)",
    ),
    "val_subset": (
        "--val-subset",
        {"type": optional_int},
        "validation images scored ('all' for the whole split)",
    ),
    "batch_size": ("--batch-size", {"type": int}, "images per optimizer step"),
    "lr": ("--lr", {"type": float}, "peak learning rate"),
    "weight_decay": ("--weight-decay", {"type": float}, "weight decay on conv/linear weights"),
    "optimizer": ("--optimizer", {"choices": OPTIMIZERS}, "optimizer"),
    "schedule": ("--schedule", {"choices": SCHEDULES}, "learning-rate schedule, per step"),
    "augment": (
        "--no-augment",
        {"action": "store_const", "const": False, "dest": "augment"},
        "no random shift/scale/rotation of training images",
    ),
}

S = TypeVar("S", DataSettings, TrainRecipe)


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _add(
    group: Any,
    table: dict[str, tuple[str, dict[str, Any], str]],
    defaults: DataSettings | TrainRecipe,
    names: Iterable[str] | None,
    keep: bool,
    helps: dict[str, str] | None,
) -> None:
    for name in names if names is not None else table:
        flag, kwargs, text = table[name]
        text = (helps or {}).get(name, text)
        value = getattr(defaults, name)
        if name == "augment":
            shown = " (default: augmented)" if value else " (default: not augmented)"
        elif name in ("train_subset", "val_subset") and value is None:
            shown = " (default all)"
        elif name == "cache_dir" and value is None:
            shown = ""
        else:
            shown = f" (default {_show(value)})"
        suffix = ", or the saved run's" if keep and shown.startswith(" (default") else ""
        if suffix:
            shown = shown[:-1] + suffix + ")"
        default = argparse.SUPPRESS if keep else value
        group.add_argument(flag, default=default, help=text + shown, **kwargs)


def add_data_flags(
    group: Any,
    defaults: DataSettings,
    *,
    names: Iterable[str] | None = None,
    keep: bool = False,
    helps: dict[str, str] | None = None,
) -> None:
    """Add ``--data --resolution --seed --val-fraction --cache-dir`` (or ``names``, fields of
    :class:`DataSettings`) with ``defaults``' values; ``helps`` replaces a flag's text."""
    _add(group, _DATA_FLAGS, defaults, names, keep, helps)


def add_recipe_flags(
    group: Any,
    defaults: TrainRecipe,
    *,
    names: Iterable[str] | None = None,
    keep: bool = False,
    helps: dict[str, str] | None = None,
) -> None:
    """Add the :class:`TrainRecipe` flags (``--epochs --batch-size --lr ...``, or ``names``)
    with ``defaults``' values; ``helps`` replaces a flag's text."""
    _add(group, _RECIPE_FLAGS, defaults, names, keep, helps)


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of settings class ``cls`` present in ``args`` (typed, or defaulted without
    ``keep``)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}


def data_settings(args: argparse.Namespace, base: DataSettings) -> DataSettings:
    """``base`` with the data flags found in ``args``."""
    return replace(base, **given(args, DataSettings))


def train_recipe(args: argparse.Namespace, base: TrainRecipe) -> TrainRecipe:
    """``base`` with the recipe flags found in ``args``."""
    return replace(base, **given(args, TrainRecipe))


def add_weights_data_flags(parser: Any) -> Any:
    """The data flags of a command that reads trained weights (``eval``, ``explain``): each
    unset one takes the training run's value (train.json beside the weights; the resolution from
    the weights' header). Returns the group."""
    base = DataSettings()
    g = parser.add_argument_group("data (unset: the training run's)")
    add_data_flags(g, base, names=["data"], keep=True, helps={"data": "as for run"})
    # Not a DataSettings default: the weights' header says what resolution they were trained at.
    g.add_argument(
        "--resolution",
        type=int,
        default=None,
        help="square input size in px (default: the weights' training resolution)",
    )
    add_data_flags(
        g,
        base,
        names=["seed", "val_fraction", "cache_dir"],
        keep=True,
        helps={"seed": "validation split seed"},
    )
    return g


def saved_data_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The flags of :func:`add_weights_data_flags` as keywords of ``evaluate_saved`` and
    ``explain_saved``: ``data`` and :class:`~mdsearch.results.SavedDataFlags`, None for each one
    the user did not type (the training run's value then)."""
    names = ("data", "resolution", "seed", "val_fraction", "cache_dir")
    return {name: getattr(args, name, None) for name in names}


def add_device_flag(group: Any, *, default: str = "auto", what: str = "") -> None:
    """``--device cpu|cuda|auto``."""
    choices = "cpu, cuda or auto" if default == "auto" else "cpu or cuda"
    group.add_argument("--device", default=default, help=f"{choices}{what} (default {default})")


def add_quiet_flag(parser: Any, what: str = "no progress display") -> None:
    """``--quiet``."""
    parser.add_argument("--quiet", action="store_true", help=what)
