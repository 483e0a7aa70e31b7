"""The report's Supernet section: what a supernet run's weight-sharing supernet cost and how its
ranking compares with stand-alone training inside the same run.

A supernet run (``mdsearch run --strategy supernet``) trains one supernet (``supernet.json``),
scores sub-networks with it (rows of ``trials.csv`` whose ``proxy`` is ``supernet``: BatchNorm
recalibrated, then validation AUC) and trains some architectures stand-alone; only the
stand-alone rows make the front (:func:`mdsearch.results.load_run` keeps the two apart).
:func:`supernet_section` gathers, for the report:

- the training: epochs, sandwich size (largest + smallest + N random sub-networks per step),
  seconds, images/s, cost in stand-alone proxy trials, device;
- the scoring: sub-networks scored, median seconds per sub-network;
- the agreement inside the run: Kendall's tau-b between the supernet score and the stand-alone
  mean AUC over the architectures trained both ways, with a percentile bootstrap over those
  architectures (:func:`~mdsearch.results.proxy_fidelity.kendall_tau_ci`, ``over="archs"``),
  judged only from :data:`MIN_SHARED_ARCHS` architectures on;
- the supernet's own Pareto front (score against the run's cost objectives), each score with an
  interval over the validation images of its saved predictions
  (:class:`~mdsearch.results.uncertainty.PredictionBootstrap`, seed noise unknown: images only).

:func:`supernet_markdown` and :func:`supernet_html` render it; the scatter plot is
:func:`mdsearch.results.figures.supernet_figure`. While the run has no stand-alone trial that
finished the proxy (:func:`no_front_reason`), the report is this section alone
(:func:`supernet_only_markdown`, :func:`supernet_only_html`).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .fidelity import format_fidelity_html, format_fidelity_markdown
from .pareto import OBJECTIVES, Objective, minimisation_matrix, non_dominated, resolve_objectives
from .proxy_fidelity import kendall_tau_ci
from .report_markup import (
    html_head,
    html_table,
    markdown_head,
    markdown_table,
    png_img,
    settings_table,
)
from .trials import LoadedRun, eligible_mask, ineligible_reason
from .uncertainty import DEFAULT_RESAMPLES, PredictionBootstrap

__all__ = [
    "MIN_SHARED_ARCHS",
    "STANDALONE_FRONT_NOTE",
    "SupernetAgreement",
    "SupernetSection",
    "no_front_reason",
    "supernet_html",
    "supernet_markdown",
    "supernet_only_html",
    "supernet_only_markdown",
    "supernet_section",
]

#: Architectures trained both ways below which the report does not judge the supernet's ranking
#: (tau-b over 4 architectures takes only 7 values, and its bootstrap is mostly ties).
MIN_SHARED_ARCHS = 5

#: What the report says about the front of a supernet run.
STANDALONE_FRONT_NOTE = (
    "The Pareto front elsewhere in this report (and pareto.csv, `mdsearch pareto`, `mdsearch "
    "export --pick`) is built on stand-alone trials only: a supernet score ranks sub-networks, it "
    "never enters the front."
)

_TOO_FEW = "too few architectures trained stand-alone to judge the supernet's ranking"


@dataclass(frozen=True)
class SupernetAgreement:
    """Kendall's tau-b between the supernet score and the stand-alone mean AUC, over the
    architectures of the run that have both.

    Attributes:
        n: architectures with a supernet score and at least one stand-alone trial that
            finished the proxy.
        tau: tau-b (NaN when ``n`` < :data:`MIN_SHARED_ARCHS`: not judged).
        low, high: percentile bootstrap interval over the architectures (NaN: not computed).
        p_value: scipy's two-sided p-value for tau = 0 (NaN when not judged).
        level: the interval's coverage.
        n_resamples: bootstrap resamples (0: no interval).
    """

    n: int
    tau: float = math.nan
    low: float = math.nan
    high: float = math.nan
    p_value: float = math.nan
    level: float = 0.95
    n_resamples: int = 0

    @property
    def judged(self) -> bool:
        """Whether enough architectures were trained both ways to state a tau."""
        return self.n >= MIN_SHARED_ARCHS and math.isfinite(self.tau)

    def text(self) -> str:
        """``tau +0.47 [-0.05, +0.86] over 9 architectures`` or the too-few sentence."""
        if not self.judged:
            return f"{_TOO_FEW} ({self.n} trained both ways; at least {MIN_SHARED_ARCHS} needed)"
        ci = (
            f" [{self.low:+.2f}, {self.high:+.2f}]"
            if math.isfinite(self.low) and math.isfinite(self.high)
            else ""
        )
        return f"Kendall tau-b {self.tau:+.2f}{ci} over {self.n} architectures"


@dataclass
class SupernetSection:
    """What the report's Supernet section shows (see the module docstring).

    Attributes:
        run: the run folder as read.
        training: ``supernet.json`` (None: absent).
        archs: one row per architecture the supernet scored (index ``arch``): ``arch_id``,
            ``mdconv_stages``, ``score`` (mean supernet AUC over its scores), ``scores``
            (how many), ``score_low``/``score_high`` (interval over the validation images),
            the objective columns (``flops_m``...), ``standalone_auc`` (mean over its
            stand-alone trials that finished the proxy; NaN: none) and ``standalone_seeds``,
            and ``on_front`` (on the supernet's own front); sorted cheapest first.
        objectives: the objectives of the supernet's front (the run's, score in place of AUC).
        agreement: tau between the score and the stand-alone mean AUC.
        sub_networks: supernet rows with a score; ``failed``: supernet rows without one.
        median_seconds: median seconds (BatchNorm recalibration + validation) per scored row.
        level, n_resamples: of the intervals.
        notes: remarks (predictions missing and the like).
    """

    run: LoadedRun
    training: dict[str, Any] | None
    archs: pd.DataFrame
    objectives: tuple[Objective, ...]
    agreement: SupernetAgreement
    sub_networks: int = 0
    failed: int = 0
    median_seconds: float = math.nan
    level: float = 0.95
    n_resamples: int = DEFAULT_RESAMPLES
    notes: list[str] = field(default_factory=list)

    @property
    def front(self) -> pd.DataFrame:
        """The supernet's own Pareto front (rows of :attr:`archs`), cheapest first."""
        return self.archs[self.archs["on_front"]]

    @property
    def both(self) -> pd.DataFrame:
        """The architectures with a supernet score and a stand-alone mean AUC."""
        return self.archs[self.archs["standalone_seeds"] > 0]

    @property
    def epochs(self) -> float | None:
        """The supernet's training epochs (supernet.json, else the rows' fidelity)."""
        if self.training and self.training.get("epochs") is not None:
            return float(self.training["epochs"])
        scores = self.run.supernet_scores
        if "fidelity" not in scores:
            return None
        fidelity = pd.to_numeric(scores["fidelity"], errors="coerce").dropna()
        return float(fidelity.iloc[0]) if len(fidelity) else None

    def trials_note(self) -> str:
        """The line the report's Trials section adds for a supernet run."""
        return (
            f"These counts are of stand-alone trials; the supernet scored {self.sub_networks} "
            "sub-network" + "s" * (self.sub_networks != 1) + " besides (section Supernet), "
            "which never enter the front."
        )


def _standalone_means(run: LoadedRun) -> pd.DataFrame:
    """Per architecture: mean AUC over its stand-alone trials that finished the proxy, seeds."""
    trials = run.trials
    if trials.empty:
        return pd.DataFrame({"auc": [], "seeds": []}, index=pd.Index([], name="arch"))
    good = trials[eligible_mask(trials, ("auc",))]
    auc = pd.to_numeric(good["auc"], errors="coerce")
    grouped = auc.groupby(good["arch"])
    return pd.DataFrame({"auc": grouped.mean(), "seeds": grouped.size()})


def _front_objectives(scores: pd.DataFrame, given: Sequence[Any]) -> tuple[Objective, ...]:
    """The run's objectives whose columns the supernet rows fill (AUC always; FLOPs when no
    cost objective is left)."""
    objs = resolve_objectives(given)
    kept = [
        o
        for o in objs
        if o.column == "auc"
        or (o.column in scores and pd.to_numeric(scores[o.column], errors="coerce").notna().any())
    ]
    if not any(o.column == "auc" for o in kept):
        kept.insert(0, OBJECTIVES["auc"])
    if len(kept) < 2:
        kept.append(OBJECTIVES["flops"])
    return tuple(kept)


def supernet_section(
    run: LoadedRun,
    *,
    objectives: Sequence[Any] | None = None,
    level: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> SupernetSection | None:
    """The Supernet section of a run's report; None when the run has no supernet.

    Args:
        run: the run folder as read (:func:`~mdsearch.results.load_run`).
        objectives: objective names (default: the run's, else AUC and FLOPs); the supernet's
            front uses those its rows fill.
        level: coverage of the intervals.
        n_resamples: bootstrap resamples of the score intervals and of tau's (0: none).
        seed: bootstrap seed.

    Example:
        >>> section = supernet_section(load_run("runs/sn"))  # doctest: +SKIP
        >>> section.agreement.text()  # doctest: +SKIP
        'Kendall tau-b +0.47 [-0.05, +0.86] over 9 architectures'
    """
    if not run.has_supernet:
        return None
    scores = run.supernet_scores
    objs = _front_objectives(scores, objectives or run.config.get("objectives") or ("auc", "flops"))
    columns = [o.column for o in objs]
    good = scores[eligible_mask(scores, columns)].reset_index(drop=True) if len(scores) else scores
    notes: list[str] = []
    archs = _pool_scores(good, columns)
    # The bootstrap reads predictions by row number in a view of the scored rows, so neither
    # the supernet rows' trial numbers nor those of stand-alone trials can be confused.
    archs["score_low"] = np.nan
    archs["score_high"] = np.nan
    if n_resamples > 0 and len(good):
        files = good["predictions"] if "predictions" in good else pd.Series("", index=good.index)
        has_file = files.astype(str).str.strip() != ""
        view = good[has_file].copy()
        view["trial"] = np.arange(len(view))
        boot = PredictionBootstrap(
            LoadedRun(run.path, run.config, view.reset_index(drop=True)),
            n_resamples=n_resamples,
            level=level,
            seed=seed,
        )
        rows = view.reset_index(drop=True).groupby("arch")["trial"].agg(tuple)
        for arch in archs.index:
            if arch in rows.index:
                archs.loc[arch, ["score_low", "score_high"]] = boot.interval(rows[arch])
        missing = int((~has_file).sum())
        if missing:
            notes.append(
                f"{missing} supernet score{'s' * (missing != 1)} without saved predictions: "
                "no interval"
            )
        notes.extend(boot.notes)
    standalone = _standalone_means(run)
    archs["standalone_auc"] = standalone["auc"].reindex(archs.index)
    archs["standalone_seeds"] = standalone["seeds"].reindex(archs.index).fillna(0).astype(int)
    ranked = archs.rename(columns={"score": "auc"})
    archs["on_front"] = (
        non_dominated(minimisation_matrix(ranked, objs)) if len(archs) else np.zeros(0, bool)
    )
    cost = next((o for o in objs if o.column == "flops_m"), objs[-1])
    archs = archs.sort_values([cost.column, "score"], ascending=[cost.direction == "min", False])
    seconds = pd.to_numeric(good.get("train_seconds"), errors="coerce") if len(good) else None
    median = float(seconds.median()) if seconds is not None and seconds.notna().any() else math.nan
    return SupernetSection(
        run=run,
        training=run.supernet,
        archs=archs,
        objectives=objs,
        agreement=_agreement(archs, level=level, n_resamples=n_resamples, seed=seed),
        sub_networks=int(len(good)),
        failed=int(len(scores) - len(good)),
        median_seconds=median,
        level=level,
        n_resamples=n_resamples,
        notes=notes,
    )


def _pool_scores(good: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """One row per scored architecture: mean score over its rows, their number, objectives."""
    from mdsearch.space import ArchSpec, ArchSpecError

    metrics = [c for c in dict.fromkeys([*columns, "flops_m", "latency_ms"]) if c in good]
    numeric = good[metrics].apply(pd.to_numeric, errors="coerce")
    grouped = numeric.groupby(good["arch"], sort=False)
    archs = grouped.mean().rename(columns={"auc": "score"})
    archs["scores"] = grouped.size()

    def described(arch: str) -> tuple[str, tuple[int, ...]]:
        try:
            spec = ArchSpec.parse(arch)
        except ArchSpecError:
            return "", ()
        return spec.arch_id, spec.mdconv_stages

    info = [described(a) for a in archs.index]
    archs["arch_id"] = [i for i, _ in info]
    archs["mdconv_stages"] = [s for _, s in info]
    archs.index.name = "arch"
    return archs


def _agreement(
    archs: pd.DataFrame, *, level: float, n_resamples: int, seed: int
) -> SupernetAgreement:
    both = archs[archs["standalone_seeds"] > 0]
    n = len(both)
    if n < MIN_SHARED_ARCHS:
        return SupernetAgreement(n, level=level, n_resamples=n_resamples)
    score = both["score"].to_numpy(dtype=float)[:, None]
    alone = both["standalone_auc"].to_numpy(dtype=float)[:, None]
    est = kendall_tau_ci(
        score, alone, over="archs", n_resamples=n_resamples, level=level, seed=seed
    )
    return SupernetAgreement(n, est.tau, est.low, est.high, est.p_value, level, n_resamples)


# -- text -------------------------------------------------------------------------------------


def _num(value: Any, fmt: str = ".0f") -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return "?"
    return format(x, fmt) if math.isfinite(x) else "?"


def _training_lines(section: SupernetSection) -> list[str]:
    t = section.training
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


def _scoring_line(section: SupernetSection) -> str:
    if not section.sub_networks:
        text = "Scoring: no sub-network scored yet."
    else:
        n, k = section.sub_networks, len(section.archs)
        calib = (section.training or {}).get("recalibration_images")
        how = (
            f"BatchNorm recalibrated on {calib} training images"
            if calib
            else "BatchNorm recalibrated"
        )
        text = (
            f"Scoring: {n} sub-network score{'s' * (n != 1)} of {k} architecture"
            f"{'s' * (k != 1)} ({how}, then the validation split); median "
            f"{_num(section.median_seconds, '.1f')} s per sub-network."
        )
    if section.failed:
        text += f" {section.failed} supernet row{'s' * (section.failed != 1)} without a score."
    return text


def _agreement_line(section: SupernetSection) -> str:
    a = section.agreement
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


def _interval_note(section: SupernetSection) -> str:
    return (
        f"Score intervals ({section.level:.0%}): a percentile bootstrap over the validation "
        f"images of each sub-network's saved predictions ({section.n_resamples} resamples; "
        "several scores of one sub-network, with other recalibration samples, are averaged). "
        "They cover the validation images only: one supernet was trained, so the noise of "
        "supernet training (its seed) is not in them. The score ranks sub-networks; it is not an "
        "estimate of the AUC the architecture reaches trained on its own (the last column)."
    )


def _front_table(section: SupernetSection) -> pd.DataFrame:
    size = section.run.input_size
    flops = f"FLOPs M @{size}x{size}" if size else "FLOPs M"
    pct = f"{section.level:.0%}"
    extra = [o for o in section.objectives if o.column not in ("auc", "flops_m")]
    rows = []
    for _, row in section.front.iterrows():
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


def _front_caption(section: SupernetSection) -> str:
    size = section.run.input_size
    costs = ", ".join(
        f"{o.label or o.column} at {size}x{size}"
        if o.column == "flops_m" and size
        else o.label or o.column
        for o in section.objectives
        if o.column != "auc"
    )
    return (
        f"The supernet's own Pareto front: supernet score (maximised) against {costs}, "
        f"{len(section.front)} of {len(section.archs)} scored architectures, cheapest first. "
        "'stand-alone AUC': mean validation AUC over the architecture's stand-alone trials that "
        "finished the proxy, with their number; '-': not trained stand-alone."
    )


def _figure_caption(section: SupernetSection) -> str:
    n = len(section.both)
    if not n:
        return "No architecture was trained both ways yet: nothing to plot."
    return (
        f"Supernet score against stand-alone mean AUC for the {n} architecture"
        f"{'s' * (n != 1)} trained both ways; {section.agreement.text()}."
    )


def supernet_markdown(section: SupernetSection, figure: str | None = "supernet.png") -> str:
    """The ``## Supernet`` Markdown section.

    Args:
        section: what :func:`supernet_section` gathered.
        figure: file name of the scatter plot beside report.md (None: no plot).
    """
    out = ["## Supernet", "", STANDALONE_FRONT_NOTE, ""]
    out += [f"- {line}" for line in _training_lines(section)]
    out += [f"- {_scoring_line(section)}", f"- {_agreement_line(section)}", ""]
    if len(section.archs):
        out += [_front_caption(section), "", markdown_table(_front_table(section)), ""]
        out += [f"- {_interval_note(section)}", ""]
    if figure:
        out += [f"![supernet score vs stand-alone AUC]({figure})", "", _figure_caption(section), ""]
    out += [f"- {note}" for note in section.notes]
    return "\n".join(out).rstrip() + "\n"


def supernet_html(section: SupernetSection, png: bytes | None = None) -> str:
    """The same section as an HTML fragment (``<section id="supernet">``).

    Args:
        section: what :func:`supernet_section` gathered.
        png: the scatter plot (None: no plot).
    """
    esc = html.escape
    parts = [
        '<section id="supernet"><h2>Supernet</h2>',
        f'<p class="note">{esc(STANDALONE_FRONT_NOTE)}</p>',
    ]
    lines = [*_training_lines(section), _scoring_line(section), _agreement_line(section)]
    parts += ['<ul class="methods">', *(f"<li>{esc(line)}</li>" for line in lines), "</ul>"]
    if len(section.archs):
        table = _front_table(section)
        parts += [f'<p class="caption">{esc(_front_caption(section))}</p>', html_table(table)]
        parts.append(f'<p class="caption">{esc(_interval_note(section))}</p>')
    if png is not None:
        parts.append(png_img(png, "supernet score vs stand-alone mean AUC"))
        parts.append(f'<p class="caption">{esc(_figure_caption(section))}</p>')
    if section.notes:
        parts += ["<ul>", *(f"<li>{esc(n)}</li>" for n in section.notes), "</ul>"]
    parts.append("</section>")
    return "\n".join(parts)


# -- a report without a front -------------------------------------------------------------------


def no_front_reason(run: LoadedRun, columns: Sequence[str]) -> str | None:
    """Why a run has no Pareto front yet, for a report that shows its supernet alone; None when
    a stand-alone trial finished the proxy with the objective ``columns`` present.

    Example:
        >>> no_front_reason(load_run("runs/sn-just-started"), ["auc", "flops_m"])  # doctest: +SKIP
        'No Pareto front: the stand-alone phase has no finished trial yet. ...'
    """
    trials = run.trials
    if len(trials):
        eligible = eligible_mask(trials, columns)
        if eligible.any():
            return None
        why = f"no stand-alone trial finished the proxy yet ({ineligible_reason(trials, eligible)})"
    else:
        why = "the stand-alone phase has no finished trial yet"
    return (
        f"No Pareto front: {why}. The front is built on stand-alone trials only; it appears "
        "once one finishes the proxy (run `mdsearch report` again)."
    )


def supernet_only_markdown(section: SupernetSection, reason: str, figure: str) -> str:
    """report.md of a supernet run without a front: ``reason``, the Supernet section, the
    proxy-check when there is one, the settings."""
    run = section.run
    out = markdown_head(run.name, run.synthetic)
    out += ["## Trials", "", reason, "", supernet_markdown(section, figure), ""]
    fidelity = format_fidelity_markdown(run.path)
    if fidelity:
        out += [fidelity, ""]
    out += ["## Settings and data", "", markdown_table(settings_table(run.config)), ""]
    return "\n".join(out)


def supernet_only_html(section: SupernetSection, reason: str, png: bytes) -> str:
    """report.html of a supernet run without a front (see :func:`supernet_only_markdown`)."""
    run = section.run
    parts = html_head(run.name, run.synthetic)
    parts += ["<h2>Trials</h2>", f'<p class="warning">{html.escape(reason)}</p>']
    parts.append(supernet_html(section, png))
    fidelity = format_fidelity_html(run.path)
    if fidelity:
        parts.append(fidelity)
    parts += ["<h2>Settings and data</h2>", html_table(settings_table(run.config), text=["value"])]
    parts.append("</body></html>")
    return "\n".join(parts)
