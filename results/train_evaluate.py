"""``mdsearch train`` from start to end: load the data, train (or resume), evaluate once on the
test split, write the report next to the weights."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mdsearch.search.settings import DataSettings, TrainRecipe
from mdsearch.space import ArchSpec

from .train import TrainResult, train_architecture
from .train_folder import check_out_dir, settings_record

__all__ = ["train_and_evaluate"]


def train_and_evaluate(
    spec: ArchSpec,
    data: DataSettings,
    recipe: TrainRecipe,
    seed: int,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    device: str = "cpu",
    threads: int | None = None,
    eval_on_val: bool = False,
    progress: bool = True,
    say: Callable[[str], None] = print,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[TrainResult, Any, dict[str, Path]]:
    """Load the data, train (or resume), then evaluate once on the test split.

    The evaluation (see :mod:`mdsearch.results.evaluate`) runs on the test split; data without
    one get no test metrics (``say`` tells why) unless ``eval_on_val``, which reports the
    validation split under that name, with a warning.

    Args:
        spec: the architecture.
        data: the data settings (:data:`~mdsearch.search.settings.FULL_DATA` by default in
            ``mdsearch train``); their resolution is the training's.
        recipe: how to train.
        seed: seeds the initialisation, the data order and the augmentation (``mdsearch train``
            passes ``data.seed``: one seed for everything).
        out_dir: output folder (see :mod:`mdsearch.results.train_folder`); eval.json, eval.md
            and predictions.npz are added to it.
        resume, device, threads, progress, on_epoch: as in :func:`train_architecture`.
        eval_on_val: without a test split, report validation metrics (labelled as such).
        say: where one-line messages go.

    Returns:
        ``(train_result, evaluation or None, files)``.

    Raises:
        SettingsError, DataError, ResultsError: bad settings, data or output folder (before
            anything trains).
    """
    from .evaluate import EVAL_BATCH_SIZE, evaluate_model
    from .evaluation_report import format_evaluation, write_evaluation

    data.check()  # a bad --data fails before anything is built or loaded
    recipe.check()
    config = settings_record(recipe, resolution=data.resolution, seed=seed)
    check_out_dir(Path(out_dir), resume, spec, config)
    dataset = data.load(progress=progress)
    say(f"data: {dataset.summary()}")
    for note in dataset.notes:
        say(f"  note: {note}")
    split = _evaluation_split(dataset.splits, eval_on_val, say)
    result = train_architecture(
        spec,
        dataset,
        recipe,
        seed,
        out_dir,
        resume=resume,
        device=device,
        threads=threads,
        progress=progress,
        on_epoch=on_epoch,
        record={"data_settings": _data_record(data)},
    )
    files = dict(result.files)
    say(
        f"weights: {files['weights']} (best on validation: epoch {result.best_epoch}, "
        f"val AUC {result.best_val_auc:.4f})"
    )
    if split not in dataset.splits:
        say("no test metrics: the data has no test split (see above)")
        return result, None, files
    ev = evaluate_model(
        result.model,
        dataset,
        split=split,
        device=device,
        batch_size=max(recipe.batch_size, EVAL_BATCH_SIZE),
        channels_last=recipe.channels_last,
    )
    settings = {
        "weights": f"{files['weights'].name}, best on validation (epoch {result.best_epoch} of "
        f"{recipe.epochs})",
        **config,
        "val_fraction": data.val_fraction,
        "device": device,
    }
    files.update(write_evaluation(ev, out_dir, arch=spec, settings=settings))
    say("")
    say(format_evaluation(ev, arch=spec.canonical))
    return result, ev, files


def _data_record(data: DataSettings) -> dict[str, Any]:
    """train.json's ``data_settings``: what ``--resume`` and ``mdsearch eval`` reload."""
    return {
        "data": data.data,
        "val_fraction": data.val_fraction,
        "seed": data.seed,
        "cache_dir": None if data.cache_dir is None else str(data.cache_dir),
    }


def _evaluation_split(splits: Any, eval_on_val: bool, say: Callable[[str], None]) -> str:
    """``test``, or ``val`` when there is no test split and ``eval_on_val``; says which."""
    if "test" in splits:
        return "test"
    if eval_on_val:
        say(
            "  no test split: --eval-on-val given, so the evaluation reports the VALIDATION "
            "split, labelled as such (optimistic: it also chose the weights)"
        )
        return "val"
    say(
        "  no test split: training only; no test metrics will be reported (add the test "
        "images, or pass --eval-on-val for validation metrics labelled as such)"
    )
    return "test"
