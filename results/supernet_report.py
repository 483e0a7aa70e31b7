"""The report's Supernet section: what a supernet run's weight-sharing supernet cost and how its
ranking compares with stand-alone training inside the same run, presented from the statistics
:func:`~mdsearch.results.supernet_analysis.analyse_supernet` gathered.

:func:`supernet_section` builds the section (training and scoring figures, the agreement, the
supernet's own front with its score intervals, the scatter plot of
:func:`mdsearch.results.figures.supernet_figure`); :func:`supernet_trials_note` is the line the
report's Trials section adds for a supernet run.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from .document import Bullets, Figure, Paragraph, Section, Table
from .supernet_analysis import SupernetAnalysis

__all__ = ["STANDALONE_FRONT_NOTE", "supernet_section", "supernet_trials_note"]

#: What the report says about the front of a supernet run.
STANDALONE_FRONT_NOTE = (
    "The Pareto front elsewhere in this report (and pareto.csv, `mdsearch pareto`, `mdsearch "
    "export --pick`) is built on stand-alone trials only: a supernet score ranks sub-networks, it "
    "never enters the front."
)


def _num(value: Any, fmt: str = ".0f") -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return "?"
    return format(x, fmt) if math.isfinite(x) else "?"


def _training_lines(supernet: SupernetAnalysis) -> list[str]:
    t = supernet.training
    if t is None:
        return [
            "Training: supernet.json is absent, so the training's figures are unknown (a run "
            "killed before the supernet finished training, or a folder copied without it)."
        ]
    epochs, done = t.get("epochs"), t.get("epochs_done", t.get("epochs"))
    random = int(t.get("random_subnets", 0) or 0)
    length = f"{_num(epochs, 'g')} epochs"
    if done is not None and epochs is not None and float(done) < float(epochs):
        length = f"{_num(done, 'g')} of {_num(epochs, 'g')} epochs (training not finished)"
    seconds = t.get("train_seconds")
    lines = [
        f"Training: {length}, sandwich rule: every step trains the largest, the smallest and "
        f"{random} random sub-network{'s' * (random != 1)} on the same batch ({2 + random} per "
        "step)"
        + ("; in-place distillation from the largest" if t.get("distill") else "")
        + f". {_num(seconds)} s of training ({_num(float(seconds or 0) / 60, '.1f')} min) on "
        f"{t.get('device', '?')}, {_num(t.get('images_per_s'))} images/s (every sub-network "
        f"counted; {_num(t.get('images'))} images in all).",
        f"Cost: {_num(t.get('proxy_equivalents'), 'g')} stand-alone proxy trials (the images "
        "its training processed, over those one stand-alone trial trains on).",
    ]
    return lines


def _scoring_line(supernet: SupernetAnalysis) -> str:
    if not supernet.sub_networks:
        text = "Scoring: no sub-network scored yet."
    else:
        n, k = supernet.sub_networks, len(supernet.archs)
        calib = (supernet.training or {}).get("recalibration_images")
        how = (
            f"BatchNorm recalibrated on {calib} training images"
            if calib
            else "BatchNorm recalibrated"
        )
        text = (
            f"Scoring: {n} sub-network score{'s' * (n != 1)} of {k} architecture"
            f"{'s' * (k != 1)} ({how}, then the validation split); median "
            f"{_num(supernet.median_seconds, '.1f')} s per sub-network."
        )
    if supernet.failed:
        text += f" {supernet.failed} supernet row{'s' * (supernet.failed != 1)} without a score."
    return text


def _agreement_line(supernet: SupernetAnalysis) -> str:
    a = supernet.agreement
    head = "Agreement with stand-alone training in this run: "
    if not a.judged:
        return head + a.text() + "."
    how = (
        f"{a.level:.0%} percentile bootstrap over the architectures, {a.n_resamples} resamples"
        if a.n_resamples
        else "no interval (n_resamples=0)"
    )
    return (
        head + f"{a.text()} trained both ways, between the supernet score and the mean AUC of "
        f"their stand-alone trials (p = {a.p_value:.2g}; {how}). These are the architectures "
        "the stand-alone phase chose to train, not a random sample of the space: tau over them "
        "says how well the supernet orders those, not the whole space."
    )


def _interval_note(supernet: SupernetAnalysis) -> str:
    return (
        f"Score intervals ({supernet.level:.0%}): a percentile bootstrap over the validation "
        f"images of each sub-network's saved predictions ({supernet.n_resamples} resamples; "
        "several scores of one sub-network, with other recalibration samples, are averaged). "
        "They cover the validation images only: one supernet was trained, so the noise of "
        "supernet training (its seed) is not in them. The score ranks sub-networks; it is not an "
        "estimate of the AUC the architecture reaches trained on its own (the last column)."
    )


def _front_table(supernet: SupernetAnalysis) -> pd.DataFrame:
    size = supernet.run.input_size
    flops = f"FLOPs M @{size}x{size}" if size else "FLOPs M"
    pct = f"{supernet.level:.0%}"
    extra = [o for o in supernet.objectives if o.column not in ("auc", "flops_m")]
    rows = []
    for _, row in supernet.front.iterrows():
        low, high = row["score_low"], row["score_high"]
        score = f"{row['score']:.3f}"
        if pd.notna(low) and pd.notna(high):
            score += f" [{low:.3f}, {high:.3f}]"
        seeds = int(row["standalone_seeds"])
        out = {
            "arch id": row["arch_id"],
            "MD-Conv stages": ", ".join(map(str, row["mdconv_stages"])) or "none",
            flops: f"{row['flops_m']:.1f}" if pd.notna(row.get("flops_m")) else "-",
        }
        for obj in extra:
            value = row.get(obj.column)
            header = "latency ms" if obj.column == "latency_ms" else (obj.label or obj.column)
            out[header] = f"{value:.4g}" if pd.notna(value) else "-"
        out[f"supernet score [{pct} CI]"] = score
        out["stand-alone AUC (seeds)"] = (
            f"{row['standalone_auc']:.3f} ({seeds} seed{'s' * (seeds != 1)})" if seeds else "-"
        )
        rows.append(out)
    return pd.DataFrame(rows)


def _front_caption(supernet: SupernetAnalysis) -> str:
    size = supernet.run.input_size
    costs = ", ".join(
        f"{o.label or o.column} at {size}x{size}"
        if o.column == "flops_m" and size
        else o.label or o.column
        for o in supernet.objectives
        if o.column != "auc"
    )
    return (
        f"The supernet's own Pareto front: supernet score (maximised) against {costs}, "
        f"{len(supernet.front)} of {len(supernet.archs)} scored architectures, cheapest first. "
        "'stand-alone AUC': mean validation AUC over the architecture's stand-alone trials that "
        "finished the proxy, with their number; '-': not trained stand-alone."
    )


def _figure_caption(supernet: SupernetAnalysis) -> str:
    n = len(supernet.both)
    if not n:
        return "No architecture was trained both ways yet: nothing to plot."
    return (
        f"Supernet score against stand-alone mean AUC for the {n} architecture"
        f"{'s' * (n != 1)} trained both ways; {supernet.agreement.text()}."
    )


def supernet_trials_note(supernet: SupernetAnalysis) -> str:
    """The line the report's Trials section adds for a supernet run."""
    scored = f"{supernet.sub_networks} sub-network" + "s" * (supernet.sub_networks != 1)
    return (
        f"These counts are of stand-alone trials; the supernet scored {scored} besides (section "
        "Supernet), which never enter the front."
    )


def supernet_section(supernet: SupernetAnalysis, figure: Figure | None = None) -> Section:
    """The report's ``Supernet`` section.

    Args:
        supernet: what :func:`~mdsearch.results.supernet_analysis.analyse_supernet` gathered.
        figure: the scatter plot of the supernet score against stand-alone AUC (None: no plot);
            its caption is set here.
    """
    lines = [*_training_lines(supernet), _scoring_line(supernet), _agreement_line(supernet)]
    blocks: list[Any] = [Paragraph(STANDALONE_FRONT_NOTE, "note"), Bullets(lines)]
    if len(supernet.archs):
        blocks.append(Table(_front_table(supernet), caption=_front_caption(supernet)))
        blocks.append(Paragraph(_interval_note(supernet), "caption"))
    if figure is not None:
        blocks.append(Figure(figure.file, figure.png, figure.alt, _figure_caption(supernet)))
    if supernet.notes:
        blocks.append(Bullets(supernet.notes))
    return Section("Supernet", blocks)
