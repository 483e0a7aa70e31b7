"""The data saved weights are used with, loaded once for ``mdsearch eval`` and ``mdsearch explain``.

Defaults come from the weights and the training folder they sit in: the resolution from the
weights' header; ``data``, ``seed`` and ``val_fraction`` (the last two fix the validation split a
threshold is chosen on) from ``train.json`` next to them, else
:class:`~mdsearch.search.settings.DataSettings`' defaults (``phantom``, seed 0,
:data:`~mdsearch.search.settings.DEFAULT_VAL_FRACTION`). A flag the user typed replaces them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from mdsearch.search.settings import DEFAULT_VAL_FRACTION, DataSettings
from mdsearch.space import ArchSpec

from .errors import ResultsError
from .weights import check_weights_arch

if TYPE_CHECKING:
    from mdsearch.search.datasets import Dataset

__all__ = [
    "SavedData",
    "SavedDataFlags",
    "check_label_count",
    "load_saved_data",
    "saved_data_settings",
]


class SavedDataFlags(TypedDict, total=False):
    """The data flags of a command that reads saved weights, besides ``--data``; each one absent
    or None takes the training run's value (see the module docstring).

    Attributes:
        resolution: square input side in px (default: the weights' training resolution).
        seed, val_fraction: the validation split's seed and patient share.
        cache_dir: the decoded-image cache folder (default: the user cache).
    """

    resolution: int | None
    seed: int | None
    val_fraction: float | None
    cache_dir: str | Path | None


@dataclass(frozen=True)
class SavedData:
    """Saved weights' data, loaded.

    Attributes:
        settings: the data settings used (the training run's, with the flags typed).
        dataset: the data, at the weights' resolution unless ``--resolution`` said otherwise.
        metadata: the weights' header (:func:`~mdsearch.results.weights.check_weights_arch`).
        trained: ``train.json``'s ``data_settings`` (empty without one).
    """

    settings: DataSettings
    dataset: Dataset
    metadata: dict[str, Any]
    trained: dict[str, Any]


def saved_data_settings(
    spec: ArchSpec,
    weights: str | Path,
    data: str | None = None,
    **flags: Unpack[SavedDataFlags],
) -> tuple[DataSettings, dict[str, Any], dict[str, Any]]:
    """The data settings saved weights are used with: ``data`` and ``flags`` where given, else
    the training run's (see the module docstring).

    Cheap: reads the weights' header and ``train.json`` next to them, loads no data.

    Returns:
        ``(data_settings, weights_metadata, trained)``; ``trained`` is ``train.json``'s
        ``data_settings`` (empty without one).

    Raises:
        ResultsError: missing or mismatched weights, or no resolution known.
    """
    unknown = set(flags) - set(SavedDataFlags.__annotations__)
    if unknown:
        raise TypeError(f"saved_data_settings: unknown data flag(s) {', '.join(sorted(unknown))}")
    resolution, seed = flags.get("resolution"), flags.get("seed")
    val_fraction, cache_dir = flags.get("val_fraction"), flags.get("cache_dir")
    weights = Path(weights)
    meta = check_weights_arch(spec, weights)
    if resolution is None:
        if meta.get("resolution") is None:
            raise ResultsError(
                f"--weights {weights} do not say their training resolution: pass --resolution"
            )
        resolution = int(meta["resolution"])
    trained: dict[str, Any] = {}
    train_json = weights.parent / "train.json"
    if train_json.is_file():
        try:
            trained = json.loads(train_json.read_text()).get("data_settings", {}) or {}
        except (OSError, json.JSONDecodeError):
            trained = {}
    data_settings = DataSettings(
        data=str(data if data is not None else trained.get("data", DataSettings.data)),
        resolution=resolution,
        cache_dir=None if cache_dir is None else str(cache_dir),
        seed=int(seed if seed is not None else trained.get("seed", DataSettings.seed)),
        val_fraction=float(
            val_fraction
            if val_fraction is not None
            else trained.get("val_fraction", DEFAULT_VAL_FRACTION)
        ),
    )
    return data_settings, meta, trained


def check_label_count(
    spec: ArchSpec,
    dataset: Dataset,
    remedy: str = "pass the arch and data the weights were trained for",
) -> None:
    """Raise :class:`ResultsError` (ending in ``remedy``) when ``spec``'s outputs are not one
    per label of ``dataset``."""
    n_labels = len(dataset.label_names)
    if spec.num_classes != n_labels:
        raise ResultsError(
            f"{spec.canonical} has {spec.num_classes} outputs, --data {dataset.source!r} has "
            f"{n_labels} label(s) ({', '.join(dataset.label_names)}): {remedy}"
        )


def load_saved_data(
    spec: ArchSpec,
    weights: str | Path,
    data: str | None = None,
    *,
    progress: bool = True,
    say: Callable[[str], Any] = print,
    **flags: Unpack[SavedDataFlags],
) -> SavedData:
    """Load the data ``weights`` are used with (:func:`saved_data_settings`), say what it is,
    and check it has one label per output of ``spec``.

    Args:
        spec: the architecture the weights were trained for.
        weights: the ``.safetensors`` file.
        data: a ``--data`` value (None: the training run's).
        progress: progress bar while an image cache is built.
        say: where one-line messages go (the data's summary and notes).
        flags: the other data flags the user typed (:class:`SavedDataFlags`).

    Raises:
        ResultsError: missing or mismatched weights, no resolution known, or a label count
            other than the architecture's outputs.
        DataError, SettingsError: unusable data or settings.
    """
    settings, metadata, trained = saved_data_settings(spec, weights, data, **flags)
    dataset = settings.load(progress=progress)
    say(f"data: {dataset.summary()}")
    for note in dataset.notes:
        say(f"  note: {note}")
    check_label_count(spec, dataset)
    return SavedData(settings, dataset, metadata, trained)
