"""Scores of a classifier's predictions: AUC per label, and for one label a threshold chosen on
validation with accuracy, sensitivity and specificity at it; all with bootstrap intervals.

Decision threshold (two-class only): chosen on the **validation** split, never on test, by
Youden's J: the threshold on the validation ROC that maximises sensitivity + specificity - 1
(ties: the highest such threshold, i.e. the fewest false positives). An image is called positive
when its score (sigmoid output) is >= the threshold. Test labels are used only to score.

Intervals: 95% percentile bootstrap over the evaluated images (1000 resamples, seed 0; the
threshold is held fixed), from :mod:`mdsearch.results.uncertainty`. They cover the finite test
set, not seed-to-seed training spread.

Mean AUC: over the labels with enough positives and negatives in the scored split, the rule the
search's objective uses (:mod:`mdsearch.search.scored_labels`), applied to the test and the
validation split each on its own targets; a left-out label keeps its own AUC, and a warning
names it.

Inference (predictions from a network and a dataset) is :mod:`mdsearch.results.evaluate`; the
written report is :mod:`mdsearch.results.evaluation_report`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ResultsError
from .paper_tables import paper_reference
from .uncertainty import DEFAULT_RESAMPLES

__all__ = [
    "Evaluation",
    "binary_metrics",
    "evaluate_predictions",
    "json_ready",
    "youden_threshold",
]


def youden_threshold(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Decision threshold maximising Youden's J (sensitivity + specificity - 1) on a ROC.

    Call it with **validation** targets and scores. Candidates are the ROC's finite thresholds
    (scikit-learn ``roc_curve``, every distinct score); ties go to the highest threshold.
    An image is positive when ``score >= threshold``.

    Args:
        y_true: (N,) 0/1 targets with both classes.
        y_score: (N,) scores (higher = more likely positive).

    Returns:
        The threshold (one of the scores).

    Raises:
        ResultsError: the targets hold only one class (no ROC).

    Example:
        >>> youden_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))  # J ties
        0.8
    """
    from sklearn.metrics import roc_curve

    y = np.asarray(y_true).ravel()
    if y.min() == y.max():
        raise ResultsError(
            "the validation split holds one class only: no ROC to choose a threshold on; use "
            "more data or a larger --val-fraction"
        )
    fpr, tpr, thresholds = roc_curve(y, np.asarray(y_score).ravel(), drop_intermediate=False)
    # thresholds[0] is +inf (nothing positive, J = 0): never a useful operating point.
    j = (tpr - fpr)[1:]
    return float(thresholds[1:][int(np.argmax(j))])


@dataclass
class Evaluation:
    """What :func:`evaluate_predictions` measured (JSON-ready through :meth:`to_dict`).

    Attributes:
        layout: ``multilabel`` (Table 6 layout) or ``binary`` (Table 8 layout).
        split: ``test``, or ``val`` when the data has no test split and the user asked for it.
        label_names: output names.
        n_images: images scored in ``split``.
        positives: positives per label in ``split``.
        auc: mean AUC over the labels not in ``excluded``; ``auc_ci`` its 95% bootstrap interval.
        label_auc, label_auc_ci: per label.
        val_auc, val_label_auc: the same on the validation split (for reference).
        excluded: labels left out of ``auc`` (too few positives or negatives in ``split``);
            ``val_excluded`` those left out of ``val_auc``.
        threshold: two-class only: the decision threshold chosen on validation (Youden's J).
        val_metrics: two-class only: accuracy/sensitivity/specificity at the threshold on val.
        metrics: two-class only: ``accuracy``, ``sensitivity``, ``specificity`` (fractions) on
            ``split``; ``metrics_ci`` their 95% intervals; ``confusion``: tp, fp, tn, fn.
        data: what data was used (name, source, synthetic, resolution, split sizes, notes).
        warnings: what the reader must know (validation used as test, mismatched labels, ...).
        y_true, y_score: predictions on ``split`` (not in the JSON; saved as npz).
        val_true, val_score: predictions on the validation split.
    """

    layout: str
    split: str
    label_names: tuple[str, ...]
    n_images: int
    positives: dict[str, int]
    auc: float
    auc_ci: tuple[float, float]
    label_auc: dict[str, float]
    label_auc_ci: dict[str, tuple[float, float]]
    val_auc: float
    val_label_auc: dict[str, float]
    data: dict[str, Any]
    excluded: tuple[str, ...] = ()
    val_excluded: tuple[str, ...] = ()
    threshold: float | None = None
    threshold_rule: str | None = None
    val_metrics: dict[str, float] | None = None
    metrics: dict[str, float] | None = None
    metrics_ci: dict[str, tuple[float, float]] | None = None
    confusion: dict[str, int] | None = None
    warnings: list[str] = field(default_factory=list)
    y_true: np.ndarray | None = field(default=None, repr=False)
    y_score: np.ndarray | None = field(default=None, repr=False)
    val_true: np.ndarray | None = field(default=None, repr=False)
    val_score: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (NaN as None; arrays left out)."""
        skip = {"y_true", "y_score", "val_true", "val_score"}
        out = {k: json_ready(v) for k, v in self.__dict__.items() if k not in skip}
        out["paper"] = json_ready(paper_reference(self.layout, self.label_names, self.data))
        return out


def json_ready(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers, NaN as None, tuples as lists, keys as str
    (what ``json.dumps`` takes).

    Example:
        >>> json_ready({"auc": np.float32(0.5), "ci": (float("nan"), 1.0)})
        {'auc': 0.5, 'ci': [None, 1.0]}
    """
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def binary_metrics(
    y: np.ndarray, positive: np.ndarray, counts: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Accuracy, sensitivity and specificity (fractions) of calls ``positive`` against targets ``y``.

    Args:
        y: (N,) bool targets.
        positive: (N,) bool calls (score >= threshold).
        counts: (B, N) bootstrap counts per image (:func:`~mdsearch.results.uncertainty.
            bootstrap_counts`): one value per resample; None: the images once each.

    Returns:
        ``{"accuracy", "sensitivity", "specificity"}`` -> (B,) arrays ((1,) without ``counts``);
        NaN where a class is absent.

    Example:
        >>> m = binary_metrics(np.array([1, 1, 0, 0], bool), np.array([1, 0, 0, 0], bool))
        >>> [float(m[k][0]) for k in ("accuracy", "sensitivity", "specificity")]
        [0.75, 0.5, 1.0]
    """
    w = np.ones((1, len(y))) if counts is None else counts.astype(np.float64)
    y = y.astype(bool)
    tp = (w * (positive & y)).sum(1)
    tn = (w * (~positive & ~y)).sum(1)
    pos, neg = (w * y).sum(1), (w * ~y).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "accuracy": (tp + tn) / w.sum(1),
            "sensitivity": np.where(pos > 0, tp / pos, np.nan),
            "specificity": np.where(neg > 0, tn / neg, np.nan),
        }


def evaluate_predictions(
    y_true: np.ndarray,
    y_score: np.ndarray,
    val_true: np.ndarray,
    val_score: np.ndarray,
    label_names: Sequence[str],
    *,
    split: str = "test",
    data: Mapping[str, Any] | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Evaluation:
    """Score predictions on ``split``, with the two-class threshold chosen on the validation ones.

    Args:
        y_true, y_score: (N, L) targets and scores on the evaluated split.
        val_true, val_score: (M, L) targets and scores on the validation split (the threshold is
            chosen on these alone).
        label_names: L names.
        split: name of the evaluated split (``test`` or ``val``), for the report.
        data: description of the data (goes into the report as is).
        n_resamples: bootstrap resamples for the intervals.
        seed: bootstrap seed.

    Returns:
        The :class:`Evaluation` (layout ``binary`` when L == 1, else ``multilabel``).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = rng.integers(0, 2, (300, 1)); s = y + rng.normal(0, 0.8, y.shape)
        >>> ev = evaluate_predictions(y[:200], s[:200], y[200:], s[200:], ["Pneumonia"])
        >>> ev.layout, 0.5 < ev.metrics["accuracy"] < 1
        ('binary', True)
    """
    from mdsearch.search.scored_labels import LABEL_RULE
    from mdsearch.search.training import label_aucs

    from .uncertainty import auc_from_counts, bootstrap_counts, percentile_interval

    names = tuple(label_names)
    y_true, val_true = np.asarray(y_true), np.asarray(val_true)
    y_score, val_score = np.asarray(y_score), np.asarray(val_score)
    auc, label_auc = label_aucs(y_true, y_score, names)
    val_auc, val_label_auc = label_aucs(val_true, val_score, names)
    scored, val_scored = LABEL_RULE.apply(y_true, names), LABEL_RULE.apply(val_true, names)
    counts = bootstrap_counts(len(y_true), n_resamples, seed)
    boot = auc_from_counts(y_true, y_score, counts)  # (B, L)
    low, high = percentile_interval(boot, axis=0)
    mean_boot = scored.mean(boot)
    ev = Evaluation(
        layout="binary" if len(names) == 1 else "multilabel",
        split=split,
        label_names=names,
        n_images=len(y_true),
        positives={n: int(y_true[:, j].sum()) for j, n in enumerate(names)},
        auc=auc,
        auc_ci=percentile_interval(mean_boot),
        label_auc=label_auc,
        label_auc_ci={n: (float(low[j]), float(high[j])) for j, n in enumerate(names)},
        val_auc=val_auc,
        val_label_auc=val_label_auc,
        data=dict(data or {}),
        excluded=scored.excluded,
        val_excluded=val_scored.excluded,
        y_true=y_true,
        y_score=y_score,
        val_true=val_true,
        val_score=val_score,
    )
    if ev.layout == "binary":
        threshold = youden_threshold(val_true[:, 0], val_score[:, 0])
        positive = y_score[:, 0] >= threshold
        y = y_true[:, 0].astype(bool)
        point = binary_metrics(y, positive)
        boots = binary_metrics(y, positive, counts)
        ev.threshold = threshold
        ev.threshold_rule = (
            "Youden's J (sensitivity + specificity - 1) maximised on the validation ROC; "
            "positive when score >= threshold"
        )
        ev.metrics = {k: float(v[0]) for k, v in point.items()}
        ev.metrics_ci = {k: percentile_interval(v) for k, v in boots.items()}
        ev.val_metrics = {
            k: float(v[0])
            for k, v in binary_metrics(
                val_true[:, 0].astype(bool), val_score[:, 0] >= threshold
            ).items()
        }
        ev.confusion = {
            "tp": int(np.sum(positive & y)),
            "fp": int(np.sum(positive & ~y)),
            "tn": int(np.sum(~positive & ~y)),
            "fn": int(np.sum(~positive & y)),
        }
    for split_name, labels in ((split, scored), ("validation", val_scored)):
        line = labels.warning(split_name)
        if line:
            ev.warnings.append(line)
    if split != "test":
        ev.warnings.append(
            f"NOT a test result: the data has no test split, so these numbers are on the {split} "
            "split, which also chose the weights"
            + (" and the threshold" if ev.layout == "binary" else "")
            + ": they are optimistic"
        )
    return ev
