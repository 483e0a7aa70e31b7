"""An evaluation written down: ``eval.md`` in the paper's table layout, ``eval.json``, and the
predictions (``predictions.npz``).

Two layouts, chosen by the number of labels:

- **multi-label** (several labels, e.g. the 14 ChestX-ray14 findings): ROC AUC per label and their
  mean, as in the paper's Table 6; the paper's per-finding AUCs of MD-Conv MobileNet-v2 are
  printed next to ours when the labels are the ChestX-ray14 findings.
- **two-class** (one label, e.g. Kermany pneumonia vs normal): accuracy, sensitivity, specificity
  and AUC, as in Table 8 (the paper's rows next to ours for Kermany data).

Files are written atomically (:func:`mdsearch.space.files.atomic_write_bytes`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdsearch.space import ArchSpec
from mdsearch.space.files import atomic_write_bytes

from .metrics import Evaluation, json_ready
from .paper_tables import (
    PAPER_TABLE6_MEAN,
    PAPER_TABLE8,
    TABLE6_SETTINGS,
    TABLE8_SETTINGS,
    paper_table6,
    paper_table8,
)

__all__ = ["EVALUATION_FILES", "format_evaluation", "write_evaluation"]

#: What :func:`write_evaluation` writes: key -> file name in the output folder.
EVALUATION_FILES = {"json": "eval.json", "md": "eval.md", "predictions": "predictions.npz"}


def _f3(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _f3_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}"


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
        ev: from :func:`~mdsearch.results.metrics.evaluate_predictions` (or
            :func:`~mdsearch.results.evaluate.evaluate_model`).
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
                f"{n} (not in mean)" if n in ev.excluded else n,
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
            lines += [f"Reference column: {TABLE6_SETTINGS} (the paper's numbers, not ours).", ""]
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
            lines += [f"Reference rows: {TABLE8_SETTINGS} (the paper's numbers, not ours).", ""]
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

    from .explain import with_explain_section

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = ev.to_dict()
    if arch is not None:
        payload["arch"] = arch.canonical
    payload["settings"] = json_ready(dict(settings or {}))
    files = {key: out / name for key, name in EVALUATION_FILES.items()}
    atomic_write_bytes(files["json"], (json.dumps(payload, indent=2) + "\n").encode())
    text = format_evaluation(ev, arch=arch.canonical if arch else None, settings=settings)
    text = with_explain_section(text, out)  # links explain.md when mdsearch explain ran here
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
