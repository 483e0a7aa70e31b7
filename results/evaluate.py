"""Test evaluation of a trained architecture, in the paper's table layouts.

Two layouts, chosen by the number of labels:

- **multi-label** (several labels, e.g. the 14 ChestX-ray14 findings): ROC AUC per label and their
  mean on the test split, as in the paper's Table 6; the paper's per-finding AUCs of MD-Conv
  MobileNet-v2 are printed next to ours when the labels are the ChestX-ray14 findings.
- **two-class** (one label, e.g. Kermany pneumonia vs normal): accuracy, sensitivity, specificity
  and AUC on the test split, as in Table 8 (the paper's rows next to ours for Kermany data).
  The positive class is the label (``Pneumonia``; ``Viral`` for ``task=subtype``).

Decision threshold (two-class only): chosen on the **validation** split, never on test, by
Youden's J: the threshold on the validation ROC that maximises sensitivity + specificity - 1
(ties: the highest such threshold, i.e. the fewest false positives). An image is called positive
when its score (sigmoid output) is >= the threshold. Test labels are used only to score.

Intervals: 95% percentile bootstrap over the test images (1000 resamples, seed 0; the threshold
is held fixed), from :mod:`mdsearch.results.uncertainty`. They cover the finite test set, not
seed-to-seed training spread.

A source without a test split (the Kermany copy with only ``train/``) has no test metrics:
:func:`evaluate_model` refuses, unless asked for ``split="val"``, and then every table says
"validation" and warns that the threshold was chosen on the same images.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mdsearch.space import ArchSpec

from .errors import ResultsError
from .weights import atomic_write_bytes

__all__ = [
    "PAPER_TABLE6",
    "PAPER_TABLE6_MEAN",
    "PAPER_TABLE8",
    "Evaluation",
    "evaluate_model",
    "evaluate_weights",
    "evaluate_predictions",
    "evaluate_saved",
    "format_evaluation",
    "paper_table6",
    "paper_table8",
    "write_evaluation",
    "youden_threshold",
]

#: Table 6: per-finding test AUC of MD-Conv MobileNet-v2 on ChestX-ray14 (official split, 448 px).
PAPER_TABLE6: dict[str, float] = {
    "Atelectasis": 0.767,
    "Cardiomegaly": 0.896,
    "Effusion": 0.828,
    "Infiltration": 0.696,
    "Mass": 0.752,
    "Nodule": 0.733,
    "Pneumonia": 0.725,
    "Pneumothorax": 0.815,
    "Consolidation": 0.742,
    "Edema": 0.857,
    "Emphysema": 0.829,
    "Fibrosis": 0.816,
    "Pleural_Thickening": 0.749,
    "Hernia": 0.735,
}
PAPER_TABLE6_MEAN = 0.782
_TABLE6_SETTINGS = "paper, Table 6: MD-Conv MobileNet-v2, ChestX-ray14 official test split, 448 px"

#: Table 8 (Kermany ChestX-ray2017, official test split): per task, rows of
#: (method, accuracy %, sensitivity %, specificity %, AUC % or None).
PAPER_TABLE8: dict[str, tuple[tuple[str, float, float, float, float | None], ...]] = {
    "pneumonia vs normal": (
        ("Inception-v3 (Kermany et al.; paper, Table 8)", 92.8, 93.2, 90.1, 96.8),
        ("MD-Conv MobileNet-v2 (paper, Table 8)", 93.4, 97.4, 86.8, 98.3),
    ),
    "bacterial vs viral": (
        ("Inception-v3 (Kermany et al.; paper, Table 8)", 90.7, 88.6, 90.9, None),
        ("MD-Conv MobileNet-v2 (paper, Table 8)", 91.0, 88.5, 92.6, None),
    ),
}
_TABLE8_SETTINGS = (
    "paper, Table 8: Kermany ChestX-ray2017 official test split (234 normal, 390 pneumonia)"
)
_TASK_OF_LABEL = {"Pneumonia": "pneumonia vs normal", "Viral": "bacterial vs viral"}
_N_RESAMPLES = 1000


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
        >>> youden_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
        0.35
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
    """What :func:`evaluate_model` measured (JSON-ready through :meth:`to_dict`).

    Attributes:
        layout: ``multilabel`` (Table 6 layout) or ``binary`` (Table 8 layout).
        split: ``test``, or ``val`` when the data has no test split and the user asked for it.
        label_names: output names.
        n_images: images scored in ``split``.
        positives: positives per label in ``split``.
        auc: mean AUC over labels with both classes; ``auc_ci`` its 95% bootstrap interval.
        label_auc, label_auc_ci: per label.
        val_auc, val_label_auc: the same on the validation split (for reference).
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
        out = {k: _json_ready(v) for k, v in self.__dict__.items() if k not in skip}
        out["paper"] = _json_ready(_paper_reference(self))
        return out


def _json_ready(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


def _binary_metrics(
    y: np.ndarray, positive: np.ndarray, counts: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Accuracy, sensitivity, specificity for weights ``counts`` (B, N) (ones when None)."""
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
    n_resamples: int = _N_RESAMPLES,
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
    from mdsearch.search.training import label_aucs

    from .uncertainty import auc_from_counts, bootstrap_counts, percentile_interval

    names = tuple(label_names)
    y_true, val_true = np.asarray(y_true), np.asarray(val_true)
    y_score, val_score = np.asarray(y_score), np.asarray(val_score)
    auc, label_auc = label_aucs(y_true, y_score, names)
    val_auc, val_label_auc = label_aucs(val_true, val_score, names)
    counts = bootstrap_counts(len(y_true), n_resamples, seed)
    boot = auc_from_counts(y_true, y_score, counts)  # (B, L)
    low, high = percentile_interval(boot, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # resamples with no defined AUC stay NaN
        mean_boot = np.nanmean(boot, axis=1)
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
        y_true=y_true,
        y_score=y_score,
        val_true=val_true,
        val_score=val_score,
    )
    if ev.layout == "binary":
        threshold = youden_threshold(val_true[:, 0], val_score[:, 0])
        positive = y_score[:, 0] >= threshold
        y = y_true[:, 0].astype(bool)
        point = _binary_metrics(y, positive)
        boots = _binary_metrics(y, positive, counts)
        ev.threshold = threshold
        ev.threshold_rule = (
            "Youden's J (sensitivity + specificity - 1) maximised on the validation ROC; "
            "positive when score >= threshold"
        )
        ev.metrics = {k: float(v[0]) for k, v in point.items()}
        ev.metrics_ci = {k: percentile_interval(v) for k, v in boots.items()}
        ev.val_metrics = {
            k: float(v[0])
            for k, v in _binary_metrics(
                val_true[:, 0].astype(bool), val_score[:, 0] >= threshold
            ).items()
        }
        ev.confusion = {
            "tp": int(np.sum(positive & y)),
            "fp": int(np.sum(positive & ~y)),
            "tn": int(np.sum(~positive & ~y)),
            "fn": int(np.sum(~positive & y)),
        }
    if split != "test":
        ev.warnings.append(
            f"NOT a test result: the data has no test split, so these numbers are on the {split} "
            "split, which also chose the weights"
            + (" and the threshold" if ev.layout == "binary" else "")
            + ": they are optimistic"
        )
    return ev


def evaluate_model(
    model: Any,
    dataset: Any,
    *,
    split: str = "test",
    device: str = "cpu",
    batch_size: int = 128,
    channels_last: bool = True,
    n_resamples: int = _N_RESAMPLES,
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
    dataset: Any,
    *,
    split: str = "test",
    device: str = "cpu",
    batch_size: int = 128,
    n_resamples: int = _N_RESAMPLES,
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

    n_labels = len(dataset.label_names)
    if spec.num_classes != n_labels:
        raise ResultsError(
            f"{spec.canonical} has {spec.num_classes} outputs, --data {dataset.source!r} has "
            f"{n_labels} label(s) ({', '.join(dataset.label_names)}): pass the arch and data "
            "the weights were trained for"
        )
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


# -- the paper's reference numbers -----------------------------------------------------------


def _finding_key(name: str) -> str:
    return name.replace(" ", "_").lower()


def paper_table6(label_names: Sequence[str]) -> dict[str, float] | None:
    """The paper's Table 6 AUC per label when the labels are the ChestX-ray14 findings, else None."""
    table = {_finding_key(k): v for k, v in PAPER_TABLE6.items()}
    keys = [_finding_key(n) for n in label_names]
    if len(keys) < 2 or not all(k in table for k in keys):
        return None
    return {n: table[k] for n, k in zip(label_names, keys)}


def paper_table8(label_names: Sequence[str], data_name: str | None) -> str | None:
    """The Table 8 task (a key of :data:`PAPER_TABLE8`) matching Kermany data's label, else None."""
    if data_name != "kermany" or len(label_names) != 1:
        return None
    return _TASK_OF_LABEL.get(label_names[0])


def _paper_reference(ev: Evaluation) -> dict[str, Any] | None:
    if ev.layout == "multilabel":
        per = paper_table6(ev.label_names)
        if per is None:
            return None
        return {"table": 6, "settings": _TABLE6_SETTINGS, "label_auc": per}
    task = paper_table8(ev.label_names, ev.data.get("name"))
    if task is None:
        return None
    rows = [
        dict(zip(("method", "accuracy_pct", "sensitivity_pct", "specificity_pct", "auc_pct"), r))
        for r in PAPER_TABLE8[task]
    ]
    return {"table": 8, "task": task, "settings": _TABLE8_SETTINGS, "rows": rows}


# -- formatting ------------------------------------------------------------------------------


def _f3(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _ci(ci: tuple[float, float] | None, fmt=_f3) -> str:
    if ci is None or any(v is None or math.isnan(v) for v in ci):
        return ""
    return f" [{fmt(ci[0])}, {fmt(ci[1])}]"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def format_evaluation(
    ev: Evaluation, *, arch: str | None = None, settings: Mapping[str, Any] | None = None
) -> str:
    """The evaluation as Markdown: the table in the paper's layout, data, threshold, settings.

    Args:
        ev: from :func:`evaluate_model`.
        arch: the architecture's canonical string, for the title.
        settings: training/evaluation settings to list (``key: value``).
    """
    split_name = "test" if ev.split == "test" else "VALIDATION (no test split)"
    data = ev.data
    synthetic = " — SYNTHETIC data (phantom), not chest X-rays" if data.get("synthetic") else ""
    lines = [f"# Evaluation of {arch}" if arch else "# Evaluation", ""]
    for w in ev.warnings:
        lines += [f"> **Warning:** {w}", ""]
    lines += [
        f"Data: `{data.get('source')}` ({data.get('name')}){synthetic}; {split_name} split: "
        f"{ev.n_images:,} images at {data.get('resolution')} px "
        f"(splits: {', '.join(f'{k} {v:,}' for k, v in data.get('splits', {}).items())}).",
        "",
    ]
    ours = "ours, test split" if ev.split == "test" else f"ours, {ev.split.upper()} split"
    if ev.layout == "multilabel":
        paper = paper_table6(ev.label_names)
        header = ["finding", "positives", f"AUC ({ours}) [95% CI]", "val AUC"]
        if paper:
            header.append("paper (Table 6)")
        rows = []
        for n in ev.label_names:
            row = [
                n,
                f"{ev.positives[n]:,}",
                _f3(ev.label_auc[n]) + _ci(ev.label_auc_ci[n]),
                _f3(ev.val_label_auc.get(n)),
            ]
            if paper:
                row.append(_f3(paper[n]))
            rows.append(row)
        mean_row = ["**mean**", "", f"**{_f3(ev.auc)}**" + _ci(ev.auc_ci), _f3(ev.val_auc)]
        if paper:
            mean_row.append(_f3(PAPER_TABLE6_MEAN))
        rows.append(mean_row)
        lines += ["## Per-label AUC (the paper's Table 6 layout)", ""]
        lines += _md_table(header, rows)
        lines.append("")
        undefined = [n for n in ev.label_names if math.isnan(ev.label_auc[n])]
        if undefined:
            lines += [
                f"No AUC for {', '.join(undefined)}: one class only in the {ev.split} split; "
                "left out of the mean.",
                "",
            ]
        if paper:
            lines += [f"Reference column: {_TABLE6_SETTINGS} (the paper's numbers, not ours).", ""]
    else:
        label = ev.label_names[0]
        task = paper_table8(ev.label_names, data.get("name")) or f"{label} vs not {label}"
        m, ci = ev.metrics or {}, ev.metrics_ci or {}
        header = ["task", "method", "accuracy %", "sensitivity %", "specificity %", "AUC %"]
        rows = [
            [
                task,
                f"this architecture ({ours})",
                _pct(m.get("accuracy")) + _ci(ci.get("accuracy"), _pct),
                _pct(m.get("sensitivity")) + _ci(ci.get("sensitivity"), _pct),
                _pct(m.get("specificity")) + _ci(ci.get("specificity"), _pct),
                _pct(ev.auc) + _ci(ev.auc_ci, _pct),
            ]
        ]
        ptask = paper_table8(ev.label_names, data.get("name"))
        if ptask:
            for method, acc, sens, spec, auc in PAPER_TABLE8[ptask]:
                rows.append(
                    [ptask, method, f"{acc:.1f}", f"{sens:.1f}", f"{spec:.1f}", _f3_pct(auc)]
                )
        lines += ["## Two-class result (the paper's Table 8 layout)", ""]
        lines += _md_table(header, rows)
        c = ev.confusion or {}
        lines += [
            "",
            f"Positive class: {label} ({ev.positives[label]:,} of {ev.n_images:,} images). "
            f"Confusion on {ev.split}: TP {c.get('tp')}, FP {c.get('fp')}, TN {c.get('tn')}, "
            f"FN {c.get('fn')}.",
            "",
            f"Decision threshold: **{ev.threshold:.4f}** on the sigmoid score, chosen on the "
            f"validation split by {ev.threshold_rule}. Test labels were not used to choose it. "
            f"On validation at this threshold: accuracy {_pct((ev.val_metrics or {}).get('accuracy'))}%, "
            f"sensitivity {_pct((ev.val_metrics or {}).get('sensitivity'))}%, "
            f"specificity {_pct((ev.val_metrics or {}).get('specificity'))}%; val AUC "
            f"{_f3(ev.val_auc)}.",
            "",
        ]
        if ptask:
            lines += [f"Reference rows: {_TABLE8_SETTINGS} (the paper's numbers, not ours).", ""]
    fixed = "; the threshold held fixed" if ev.layout == "binary" else ""
    lines += [
        f"Intervals: 95% percentile bootstrap over the evaluated images (1000 resamples{fixed}); "
        "they do not include seed-to-seed training spread.",
        "",
    ]
    if settings:
        lines += ["## Settings", ""]
        lines += [f"- {k}: {v}" for k, v in settings.items()]
        lines.append("")
    if data.get("notes"):
        lines += ["## Data notes", ""]
        lines += [f"- {n}" for n in data["notes"]]
        lines.append("")
    return "\n".join(lines)


def _f3_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def write_evaluation(
    ev: Evaluation,
    out_dir: str | Path,
    *,
    arch: ArchSpec | None = None,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``eval.json``, ``eval.md`` and ``predictions.npz`` (validation and evaluated split).

    Returns:
        ``{"json": .., "md": .., "predictions": ..}`` paths.
    """
    import io
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = ev.to_dict()
    if arch is not None:
        payload["arch"] = arch.canonical
    payload["settings"] = _json_ready(dict(settings or {}))
    files = {
        "json": out / "eval.json",
        "md": out / "eval.md",
        "predictions": out / "predictions.npz",
    }
    atomic_write_bytes(files["json"], (json.dumps(payload, indent=2) + "\n").encode())
    text = format_evaluation(ev, arch=arch.canonical if arch else None, settings=settings)
    atomic_write_bytes(files["md"], text.encode())
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        label_names=np.array(ev.label_names),
        y_true=ev.y_true,
        y_score=ev.y_score,
        val_true=ev.val_true,
        val_score=ev.val_score,
        split=np.array(ev.split),
    )
    atomic_write_bytes(files["predictions"], buf.getvalue())
    return files


def evaluate_saved(
    spec: ArchSpec,
    weights: str | Path,
    data: str | None = None,
    *,
    out_dir: str | Path | None = None,
    resolution: int | None = None,
    seed: int | None = None,
    val_fraction: float | None = None,
    cache_dir: str | Path | None = None,
    eval_on_val: bool = False,
    device: str = "cpu",
    batch_size: int = 128,
    progress: bool = True,
    say: Any = print,
) -> tuple[Evaluation, dict[str, Path]]:
    """``mdsearch eval``: evaluate saved weights on ``data`` and write the report.

    Defaults come from the weights and the training folder they sit in: ``resolution`` from the
    weights' header; ``data``, ``seed`` and ``val_fraction`` (the last two fix the validation
    split the threshold is chosen on) from ``train.json`` next to them, else ``phantom``, 0, 0.2.

    Args:
        spec: the architecture the weights were trained for.
        weights: the ``.safetensors`` file.
        data: a ``--data`` value (default: the training run's).
        out_dir: where eval.json/eval.md/predictions.npz go (default: the weights' folder;
            earlier evaluation files there are replaced).
        resolution, seed, val_fraction: override the defaults above.
        cache_dir: image cache folder.
        eval_on_val: without a test split, report the validation split (labelled as such).
        device, batch_size: inference settings.
        progress: progress bar while an image cache is built.
        say: where one-line messages go.

    Returns:
        ``(evaluation, files)``.

    Raises:
        ResultsError: missing/mismatched weights, label mismatch, no test split, no resolution.
    """
    import json

    from mdsearch.search.datasets import load_dataset, parse_data_spec

    from .weights import check_weights_arch

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
    if data is None:
        data = str(trained.get("data", "phantom"))
    parse_data_spec(data)
    if seed is None:
        seed = int(trained.get("seed", 0))
    if val_fraction is None:
        val_fraction = float(trained.get("val_fraction", 0.2))
    dataset = load_dataset(
        data,
        resolution=resolution,
        cache_dir=cache_dir,
        seed=seed,
        val_fraction=val_fraction,
        progress=progress,
    )
    say(f"data: {dataset.summary()}")
    for note in dataset.notes:
        say(f"  note: {note}")
    split = "val" if eval_on_val and "test" not in dataset.splits else "test"
    ev = evaluate_weights(spec, weights, dataset, split=split, device=device, batch_size=batch_size)
    if trained.get("data") not in (None, data):
        ev.warnings.append(f"the weights were trained on --data {trained['data']!r}, not {data!r}")
    settings = {
        "weights": str(weights),
        "weights epoch": meta.get("epoch"),
        "resolution": resolution,
        "validation split": f"seed {seed}, val_fraction {val_fraction} (unless the source has its own)",
        "device": device,
    }
    files = write_evaluation(ev, out_dir or weights.parent, arch=spec, settings=settings)
    say("")
    say(format_evaluation(ev, arch=spec.canonical))
    return ev, files
