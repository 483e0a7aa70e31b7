"""Evaluation of a trained network on a dataset's test split, in the paper's table layouts.

:func:`evaluate_model` predicts the validation and test images and scores them with
:func:`~mdsearch.results.metrics.evaluate_predictions` (AUC per label; for one label a threshold
chosen on validation by Youden's J, and accuracy, sensitivity, specificity at it);
:func:`evaluate_weights` does it for a saved ``weights.safetensors``, and :func:`evaluate_saved`
is ``mdsearch eval`` (the data settings of the training run, the report written next to the
weights by :mod:`mdsearch.results.evaluation_report`).

A source without a test split (the Kermany copy with only ``train/``) has no test metrics:
:func:`evaluate_model` refuses, unless asked for ``split="val"``, and then every table says
"validation" and warns that the threshold was chosen on the same images.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

import numpy as np

from mdsearch.space import ArchSpec

from .errors import ResultsError
from .evaluation_report import format_evaluation, write_evaluation
from .metrics import Evaluation, evaluate_predictions
from .saved_data import SavedDataFlags, check_label_count, load_saved_data
from .uncertainty import DEFAULT_RESAMPLES

if TYPE_CHECKING:
    from torch import nn

    from mdsearch.search.datasets import Dataset

__all__ = [
    "EVAL_BATCH_SIZE",
    "evaluate_model",
    "evaluate_saved",
    "evaluate_weights",
]

#: Images per forward pass at evaluation (memory only: the scores do not depend on it).
EVAL_BATCH_SIZE = 128


def evaluate_model(
    model: nn.Module,
    dataset: Dataset,
    *,
    split: str = "test",
    device: str = "cpu",
    batch_size: int = EVAL_BATCH_SIZE,
    channels_last: bool = True,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Evaluation:
    """Predict ``dataset``'s validation and ``split`` images with ``model`` and score them.

    Args:
        model: a network built from an architecture whose outputs match the dataset's labels.
        dataset: a :class:`mdsearch.search.datasets.Dataset` at the model's resolution.
        split: ``test`` (default); ``val`` only when the data has no test split and the user asked
            for validation metrics (they are labelled as such).
        device: ``cpu`` or ``cuda``.
        batch_size: images per forward pass.
        channels_last: NHWC input (faster depthwise convs on CPU).
        n_resamples, seed: bootstrap settings of the intervals.

    Returns:
        The :class:`Evaluation`.

    Raises:
        ResultsError: ``split="test"`` on data without a test split, or outputs that do not
            match the labels.
    """
    from mdsearch.search.datasets import batches
    from mdsearch.search.training import predict

    if split not in ("test", "val"):
        raise ResultsError(f"split {split!r}: evaluate on test (or val, labelled as such)")
    if split not in dataset.splits:
        raise ResultsError(
            f"--data {dataset.source!r} has no test split (splits: {', '.join(dataset.splits)}), "
            "so there are no test metrics to report: add the test images (e.g. a test/ folder "
            "next to train/ for kermany), or pass --eval-on-val for validation metrics labelled "
            "as such"
        )

    def run(name: str) -> tuple[np.ndarray, np.ndarray]:
        return predict(
            model,
            batches(dataset, name, batch_size=batch_size, shuffle=False, augment=False),
            device=device,
            channels_last=channels_last,
        )

    val_true, val_score = run("val")
    y_true, y_score = (val_true, val_score) if split == "val" else run(split)
    if y_score.shape[1] != len(dataset.label_names):
        raise ResultsError(
            f"the network has {y_score.shape[1]} outputs, --data {dataset.source!r} has "
            f"{len(dataset.label_names)} labels: pass a matching architecture or data"
        )
    return evaluate_predictions(
        y_true,
        y_score,
        val_true,
        val_score,
        dataset.label_names,
        split=split,
        data=dataset.describe(),
        n_resamples=n_resamples,
        seed=seed,
    )


def evaluate_weights(
    spec: ArchSpec,
    weights: str | Path,
    dataset: Dataset,
    *,
    split: str = "test",
    device: str = "cpu",
    batch_size: int = EVAL_BATCH_SIZE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Evaluation:
    """Load saved weights into ``build(spec)`` and evaluate them like :func:`evaluate_model`.

    Args:
        spec: the architecture the weights were trained for.
        weights: a ``weights.safetensors`` written by ``mdsearch train``.
        dataset: the data, at the weights' training resolution (its header says which).
        split, device, batch_size, n_resamples, seed: as in :func:`evaluate_model`.

    Raises:
        ResultsError: missing or mismatched weights, label count != the arch's outputs, or no
            test split (see :func:`evaluate_model`).

    Example:
        >>> ev = evaluate_weights(spec, "train/weights.safetensors", ds)  # doctest: +SKIP
    """
    from .weights import load_weights, read_weights_metadata

    check_label_count(spec, dataset)
    meta = read_weights_metadata(weights)
    model = load_weights(spec, weights, device=device)
    ev = evaluate_model(
        model,
        dataset,
        split=split,
        device=device,
        batch_size=batch_size,
        n_resamples=n_resamples,
        seed=seed,
    )
    trained_on = meta.get("label_names")
    if trained_on is not None and list(trained_on) != list(dataset.label_names):
        ev.warnings.append(
            f"the weights were trained on label(s) {', '.join(trained_on)}, the data has "
            f"{', '.join(dataset.label_names)}"
        )
    res = meta.get("resolution")
    if res is not None and int(res) != int(dataset.resolution):
        ev.warnings.append(
            f"the weights were trained at {res} px, evaluated at {dataset.resolution} px"
        )
    return ev


def evaluate_saved(
    spec: ArchSpec,
    weights: str | Path,
    data: str | None = None,
    *,
    out_dir: str | Path | None = None,
    eval_on_val: bool = False,
    device: str = "cpu",
    batch_size: int = EVAL_BATCH_SIZE,
    progress: bool = True,
    say: Callable[[str], Any] = print,
    **flags: Unpack[SavedDataFlags],
) -> tuple[Evaluation, dict[str, Path]]:
    """``mdsearch eval``: evaluate saved weights on ``data`` and write the report.

    The data is loaded by :func:`~mdsearch.results.saved_data.load_saved_data`: unset flags take
    the training run's values (``train.json`` next to the weights; the resolution from the
    weights' header).

    Args:
        spec: the architecture the weights were trained for.
        weights: the ``.safetensors`` file.
        data: a ``--data`` value (default: the training run's).
        out_dir: where eval.json/eval.md/predictions.npz go (default: the weights' folder;
            earlier evaluation files there are replaced).
        eval_on_val: without a test split, report the validation split (labelled as such).
        device, batch_size: inference settings.
        progress: progress bar while an image cache is built.
        say: where one-line messages go.
        flags: ``resolution``, ``seed``, ``val_fraction``, ``cache_dir``
            (:class:`~mdsearch.results.saved_data.SavedDataFlags`; unset: the training run's).

    Returns:
        ``(evaluation, files)``.

    Raises:
        ResultsError: missing/mismatched weights, label mismatch, no test split, no resolution.
    """
    weights = Path(weights)
    saved = load_saved_data(spec, weights, data, progress=progress, say=say, **flags)
    dataset, used = saved.dataset, saved.settings
    split = "val" if eval_on_val and "test" not in dataset.splits else "test"
    ev = evaluate_weights(spec, weights, dataset, split=split, device=device, batch_size=batch_size)
    trained = saved.trained.get("data")
    if trained not in (None, used.data):
        ev.warnings.append(f"the weights were trained on --data {trained!r}, not {used.data!r}")
    settings = {
        "weights": str(weights),
        "weights epoch": saved.metadata.get("epoch"),
        "resolution": used.resolution,
        "validation split": f"seed {used.seed}, val_fraction {used.val_fraction} (unless the "
        "source has its own)",
        "device": device,
    }
    files = write_evaluation(ev, out_dir or weights.parent, arch=spec, settings=settings)
    say("")
    say(format_evaluation(ev, arch=spec.canonical))
    return ev, files
