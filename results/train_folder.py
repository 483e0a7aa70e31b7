"""The folder of one full training: its files, their layout, and the checks before a resume.

Files (written atomically with :func:`mdsearch.space.atomic_write_bytes`)::

    checkpoint.pt        after every epoch: the training state (model, optimizer, scheduler,
                         epoch, RNG states), the best weights so far, the history, the settings
    history.csv          per epoch: training loss, mean validation AUC (and per label), learning
                         rate, seconds, images/s, best
    train.json           settings, data, device, status, best epoch (rewritten every epoch)
    weights.safetensors  the best-on-validation weights (:mod:`mdsearch.results.weights`)
    arch.json            the architecture

The settings are stored under ``config`` in both ``checkpoint.pt`` and ``train.json`` in the
layout every version has written: the :class:`~mdsearch.search.settings.TrainRecipe` fields plus
``resolution`` (the data's) and ``seed`` (init, data order and validation split); ``train.json``
also holds ``data_settings`` (``data``, ``val_fraction``, ``seed``, ``cache_dir``, the data
settings the command line reloads on ``--resume`` and ``mdsearch eval`` reuses). Folders written
before the recipe was shared (``TrainConfig``) therefore still resume.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mdsearch.search.settings import FULL_DATA, FULL_RECIPE, DataSettings, TrainRecipe, known_fields
from mdsearch.space import ArchSpec, atomic_write_bytes, atomic_write_text, removed_on_failure

from .errors import ResultsError

if TYPE_CHECKING:
    from mdsearch.search.datasets import Dataset

__all__ = [
    "ARCH_JSON",
    "CHECKPOINT",
    "HISTORY_CSV",
    "TRAIN_JSON",
    "WEIGHTS",
    "check_out_dir",
    "check_resumable",
    "data_key",
    "load_checkpoint",
    "read_train_json",
    "recipe_from_record",
    "removed_unless_checkpointed",
    "saved_settings",
    "save_checkpoint",
    "settings_record",
    "write_history",
    "write_train_json",
]

CHECKPOINT = "checkpoint.pt"
HISTORY_CSV = "history.csv"
TRAIN_JSON = "train.json"
WEIGHTS = "weights.safetensors"
ARCH_JSON = "arch.json"
#: Checkpoint layout version (unchanged since the first: old checkpoints resume).
_FORMAT = 1
#: Recipe fields a folder may lack, with the value the version that wrote it used: full
#: training scored the whole validation split before ``val_subset`` was a shared setting.
_MISSING_MEANS = {"val_subset": None}


def settings_record(recipe: TrainRecipe, *, resolution: int, seed: int) -> dict[str, Any]:
    """The ``config`` entry of ``checkpoint.pt`` and ``train.json``: everything that changes the
    weights (the recipe, the input resolution in pixels, the seed)."""
    return {**recipe.to_dict(), "resolution": int(resolution), "seed": int(seed)}


def recipe_from_record(config: Mapping[str, Any]) -> TrainRecipe:
    """The :class:`TrainRecipe` of a saved ``config`` entry (any version's); fields the entry
    lacks take the value the writing version used, else :data:`FULL_RECIPE`'s."""
    return replace(FULL_RECIPE, **{**_MISSING_MEANS, **known_fields(TrainRecipe, config)})


def data_key(dataset: Dataset) -> dict[str, Any]:
    """What must not change between a checkpoint and its resume: the data's content, size,
    labels and splits."""
    return {
        "fingerprint": dataset.fingerprint,
        "resolution": int(dataset.resolution),
        "label_names": list(dataset.label_names),
        "splits": {k: int(len(v)) for k, v in dataset.splits.items()},
    }


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read ``checkpoint.pt`` (on the CPU).

    Raises:
        ResultsError: unreadable, or not an mdsearch training checkpoint.
    """
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which and what to do
        raise ResultsError(
            f"{path} is not a readable mdsearch checkpoint ({type(exc).__name__}): delete it to "
            "start over, or choose another --out"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != _FORMAT:
        raise ResultsError(f"{path} is not an mdsearch training checkpoint (format {_FORMAT})")
    return ckpt


def save_checkpoint(path: Path, payload: Mapping[str, Any]) -> None:
    """Write ``checkpoint.pt`` atomically; ``payload`` gets the format number added."""
    import torch

    buf = io.BytesIO()
    torch.save({"format": _FORMAT, **payload}, buf)
    atomic_write_bytes(path, buf.getvalue())


def check_out_dir(
    out: Path, resume: bool, spec: ArchSpec, config: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The checkpoint to resume (architecture and settings checked), None for a fresh run.

    Args:
        out: the output folder.
        resume: ``--resume`` was given.
        spec: the architecture to train.
        config: the :func:`settings_record` of this call.

    Raises:
        ResultsError: ``--resume`` without a checkpoint, a checkpoint without ``--resume``, or
            a checkpoint of another architecture or other settings.
    """
    path = out / CHECKPOINT
    if resume:
        if not path.is_file():
            raise ResultsError(
                f"--resume: no {CHECKPOINT} in {out}; start without --resume (or give the --out "
                "of the run to continue)"
            )
        ckpt = load_checkpoint(path)
        check_resumable(ckpt, spec, config)
        return ckpt
    if path.is_file():
        ckpt = load_checkpoint(path)
        raise ResultsError(
            f"{out} already holds a training checkpoint (epoch {ckpt['epoch']} of "
            f"{ckpt['config']['epochs']}): pass --resume to continue it, or another --out for a "
            "fresh run"
        )
    return None


def check_resumable(
    ckpt: Mapping[str, Any],
    spec: ArchSpec,
    config: Mapping[str, Any],
    data: Mapping[str, Any] | None = None,
) -> None:
    """Refuse to continue ``ckpt`` with another architecture, other settings or other data.

    Args:
        ckpt: from :func:`load_checkpoint`.
        spec: the architecture to train.
        config: the :func:`settings_record` of this call.
        data: the :func:`data_key` of the loaded data (None: not loaded yet, not checked).

    Raises:
        ResultsError: naming the first difference.
    """
    if ckpt["arch"] != spec.canonical:
        raise ResultsError(
            f"--resume: the checkpoint trains {ckpt['arch']}, not {spec.canonical}: pass the same "
            "arch, or another --out for a fresh run"
        )
    saved = ckpt["config"]
    for key, value in config.items():
        was = saved.get(key, _MISSING_MEANS.get(key))
        if was != value:
            raise ResultsError(
                f"--resume: the checkpoint was started with {key}={was!r}, now "
                f"{value!r}: resume with the same settings, or another --out for a fresh run"
            )
    for key, value in (data or {}).items():
        if ckpt["data"].get(key) != value:
            raise ResultsError(
                f"--resume: the data differ from the checkpoint's ({key}): pass the same --data, "
                "--seed and --val-fraction, or another --out for a fresh run"
            )


@contextmanager
def removed_unless_checkpointed(out: str | os.PathLike) -> Iterator[None]:
    """Undo what a training into ``out`` wrote if it fails before its first checkpoint.

    A failure before any epoch was saved (a bad device, data found unusable while loading, a
    loss that diverges in the first epoch, Ctrl-C) leaves nothing to resume, so the files the
    block added go again, and ``out`` itself (with any parents) when the block created it.
    Files that were there before are kept, and once ``checkpoint.pt`` exists everything is
    kept: ``--resume`` continues from it.

    Example:
        >>> with removed_unless_checkpointed("runs/x/train"):  # doctest: +SKIP
        ...     train_and_evaluate(spec, data, recipe, 0, "runs/x/train")
    """
    out = Path(out)
    with removed_on_failure(out, keep=lambda: (out / CHECKPOINT).exists()):
        yield


def write_history(path: Path, history: list[dict[str, Any]]) -> None:
    """``history.csv``: one row per epoch, the columns in order of first appearance."""
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buf.getvalue())


def write_train_json(path: Path, payload: Mapping[str, Any]) -> None:
    """``train.json``, indented."""
    atomic_write_text(path, json.dumps(dict(payload), indent=2) + "\n")


def read_train_json(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``train.json`` of a training folder.

    Raises:
        ResultsError: missing or unreadable.
    """
    path = Path(out_dir) / TRAIN_JSON
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        raise ResultsError(
            f"--resume: no readable {TRAIN_JSON} in {out_dir}; give the --out of the training run "
            "to continue, or start without --resume"
        ) from None
    if not isinstance(payload, dict):
        raise ResultsError(f"{path} is not an mdsearch train.json: start without --resume")
    return payload


def saved_settings(out_dir: str | os.PathLike) -> tuple[DataSettings, TrainRecipe]:
    """The settings a training folder was started with, for ``--resume`` (flags the user types
    replace them).

    Returns:
        ``(data, recipe)``: :data:`FULL_DATA` with the saved ``data``, ``val_fraction``,
        ``resolution`` and ``seed`` (the one seed of ``mdsearch train``: init, data order and
        validation split; ``cache_dir`` is not restored), and the saved recipe.

    Raises:
        ResultsError: no readable train.json in ``out_dir``.
    """
    payload = read_train_json(out_dir)
    config = payload.get("config") or {}
    split = payload.get("data_settings") or {}
    data = replace(
        FULL_DATA,
        **{k: split[k] for k in ("data", "val_fraction") if k in split},
        **{k: config[k] for k in ("resolution", "seed") if k in config},
    )
    return data, recipe_from_record(config)
