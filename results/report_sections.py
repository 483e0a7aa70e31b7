"""The report of a run as sections of a :class:`~mdsearch.results.document.Document`, built once
from what was gathered (:class:`ReportData`) and rendered to Markdown, HTML and text alike.

:func:`build_report` lists the sections of ``report.md``/``report.html`` in reading order:
Trials, Pareto front, the paper's architecture, hypervolume over trials, where MD-Conv sits,
stage effects, per-label AUC, Supernet (supernet runs), Proxy fidelity (with a proxy-check),
Notes, Settings and data; a supernet run without a front yet gets Trials (why there is none),
Supernet, Proxy fidelity and Settings. :func:`build_pareto_summary` is the terminal's document
(``mdsearch pareto``). Each ``*_section`` function builds one section; none reads a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .analysis import NO_SEED_NOISE, RunAnalysis
from .confirmation import CONFIRMED_SEEDS
from .document import Bullets, Document, Figure, Paragraph, Section, Table
from .fidelity_report import fidelity_section
from .figures import projection_key, projections
from .report_markup import SYNTHETIC_NOTICE
from .report_tables import (
    arch_table,
    counts_table,
    effects_table,
    errors_table,
    label_table,
    pareto_table,
    reference_table,
    settings_table,
    stage_table,
)
from .supernet_analysis import SupernetAnalysis
from .supernet_report import supernet_section, supernet_trials_note
from .trials import LoadedRun
from .verdict_text import verdict_lines

__all__ = [
    "ReportData",
    "build_pareto_summary",
    "build_report",
    "effects_section",
    "front_section",
    "hypervolume_section",
    "labels_section",
    "notes_section",
    "paper_section",
    "settings_section",
    "stage_share_section",
    "trials_section",
    "verdict_section",
]


@dataclass(frozen=True)
class ReportData:
    """Everything a run's report shows, gathered from the run folder before any section is
    built (:func:`mdsearch.results.report.gather_report`).

    Attributes:
        run: the run folder as read.
        analysis: the front and what it means (None: no stand-alone trial finished the proxy
            yet, in a supernet run).
        no_front: why there is no front ("" when there is one).
        supernet: the supernet's statistics (None: not a supernet run).
        proxy_check: the run's ``proxy_check.json`` (None: none).
        figures: the plots by file key (``pareto_png``, ``supernet_png``...).
    """

    run: LoadedRun
    analysis: RunAnalysis | None = None
    no_front: str = ""
    supernet: SupernetAnalysis | None = None
    proxy_check: Mapping[str, Any] | None = None
    figures: Mapping[str, Figure] = field(default_factory=dict)


def build_report(data: ReportData) -> Document:
    """The run's report as a document, its sections in reading order (see the module docstring).

    Example:
        >>> doc = build_report(gather_report("runs/demo"))  # doctest: +SKIP
        >>> [s.title for s in doc.sections][:2]  # doctest: +SKIP
        ['Trials', 'Pareto front']
    """
    run, a, figures = data.run, data.analysis, data.figures
    supernet = data.supernet
    if a is None:
        sections = [Section("Trials", (Paragraph(data.no_front, "warning"),))]
    else:
        sections = [
            verdict_section(a),
            trials_section(a, supernet),
            front_section(a, figures),
            paper_section(a),
            hypervolume_section(a, figures["hypervolume_png"]),
            stage_share_section(a, figures["stages_png"]),
            effects_section(a, figures["effects_png"]),
            labels_section(a),
        ]
    sections += [
        supernet_section(supernet, figures.get("supernet_png")) if supernet else None,
        fidelity_section(data.proxy_check) if data.proxy_check else None,
        notes_section(a) if a is not None else None,
        settings_section(run.config),
    ]
    notice = SYNTHETIC_NOTICE if run.synthetic else ""
    kept = tuple(s for s in sections if s is not None)
    return Document(f"mdsearch report: {run.name}", kept, notice)


def build_pareto_summary(analysis: RunAnalysis) -> Document:
    """What ``mdsearch pareto`` prints: the counts, the front with full architecture strings,
    the seed noise the intervals include and the hypervolume, as one untitled section."""
    verdict = verdict_section(analysis)
    blocks = (
        *verdict.blocks,
        Paragraph(_summary_line(analysis)),
        Table(pareto_table(analysis)),
        Paragraph(_seed_noise_line(analysis)),
        Paragraph(_hypervolume_line(analysis)),
    )
    notice = SYNTHETIC_NOTICE if analysis.run.synthetic else ""
    return Document("", (Section("", blocks),), notice)


def verdict_section(analysis: RunAnalysis) -> Section:
    """``What this run found``: the verdict in plain words, headline first (each front member,
    the knee and the paper's network against the baseline; the stage choices; the power)."""
    if analysis.verdict is None:
        return Section("What this run found", (Paragraph("No verdict: nothing to compare."),))
    lines = verdict_lines(
        analysis.verdict,
        unit=f"M FLOPs at {analysis.run.input_size} px",
        resolution=_proxy_px(analysis),
    )
    held = _held_line(analysis.run.config)
    if held:
        lines.insert(len(lines) - 1, held)
    return Section(
        "What this run found", (Paragraph(lines[0]), Bullets(lines[1:])), anchor="verdict"
    )


def _held_line(config: Mapping[str, Any]) -> str:
    """Which stages the run searched and which it held at the backbone's kernel, and why."""
    space = config.get("space") or {}
    held = space.get("held") or {}
    if not held:
        return ""
    searched = [k for k, v in (space.get("choices") or {}).items() if len(v) > 1]
    why = "; ".join(f"{k} ({v})" for k, v in held.items())
    return (
        f"Searched: {', '.join(searched)}. Held at the backbone's own kernel, not searched: {why}: "
        "the proxy cannot tell kernel choices apart there (`mdsearch space --resolution R`)."
    )


def _proxy_px(analysis: RunAnalysis) -> int | None:
    resolution = (analysis.run.config.get("proxy") or {}).get("resolution")
    return int(resolution) if resolution else None


def trials_section(analysis: RunAnalysis, supernet: SupernetAnalysis | None = None) -> Section:
    """``Trials``: counts by outcome, wall time, the supernet's scores (besides the counts) and
    the failed trials' errors."""
    blocks: list[Any] = [Table(counts_table(analysis)), Paragraph(_wall_time_line(analysis))]
    if supernet is not None:
        blocks.append(Paragraph(supernet_trials_note(supernet)))
    errors = errors_table(analysis)
    if errors is not None:
        blocks.append(Table(errors, "Failures:", text_columns=("error",)))
    return Section("Trials", blocks)


def front_section(analysis: RunAnalysis, figures: Mapping[str, Figure]) -> Section:
    """``Pareto front``: the front table, each member's architecture string, the plots of AUC
    against each cost objective and how the front, knee and intervals were computed."""
    archs = arch_table(analysis)
    blocks = [
        Table(
            pareto_table(analysis, full_arch=False),
            wrap_columns=("", "vs cheaper", "vs baseline", "evidence"),
        ),
        Table(archs, arch_columns=(archs.columns[-1],)),
        *(figures[projection_key(analysis, x)] for x in projections(analysis)),
        Bullets(_methods_text(analysis)),
    ]
    return Section("Pareto front", blocks, anchor="front")


def paper_section(analysis: RunAnalysis) -> Section:
    """``The paper's architecture``: where it stands beside the baseline, or why it is absent."""
    blocks: list[Any] = [Paragraph(_reference_text(analysis))]
    reference = reference_table(analysis)
    if reference is not None:
        blocks.append(Table(reference, wrap_columns=("", "vs baseline")))
    return Section("The paper's architecture", blocks, anchor="paper")


def hypervolume_section(analysis: RunAnalysis, figure: Figure) -> Section:
    """``Hypervolume over trials``: the curve and what it shows."""
    return Section(
        "Hypervolume over trials",
        (replace(figure, caption=_hypervolume_caption(analysis)),),
        anchor="hypervolume",
    )


def stage_share_section(analysis: RunAnalysis, figure: Figure) -> Section:
    """``Where MD-Conv sits``: per stage, front members and all evaluated with MD-Conv there,
    warned where the proxy resolution cannot rank a stage's choices."""
    warnings = [Paragraph(line, "warning") for line in _resolution_lines(analysis)]
    return Section(
        "Where MD-Conv sits: front vs all evaluated",
        (Table(stage_table(analysis)), *warnings, figure),
        anchor="stages",
    )


def effects_section(analysis: RunAnalysis, figure: Figure) -> Section:
    """``Stage effects``: the additive model's effects with intervals and its plot (when it was
    fitted) and how to read them."""
    effects = effects_table(analysis)
    shown = [] if effects is None else [Table(effects), figure]
    return Section(
        "Stage effects: every explored architecture at once",
        (*shown, Bullets(_effects_text(analysis))),
        anchor="effects",
    )


def labels_section(analysis: RunAnalysis) -> Section:
    """``Per-label validation AUC of the front``, with the labels left out of the mean AUC."""
    rule = _label_rule_text(analysis)
    return Section(
        "Per-label validation AUC of the front (mean over seeds)",
        (Table(label_table(analysis)), *([Paragraph(rule, "note")] if rule else [])),
        anchor="labels",
    )


def notes_section(analysis: RunAnalysis) -> Section | None:
    """``Notes``: the analysis's remarks (None when it has none)."""
    return Section("Notes", (Bullets(analysis.notes),)) if analysis.notes else None


def settings_section(config: Mapping[str, Any]) -> Section:
    """``Settings and data``: the run's config.json, one setting per row."""
    table = Table(settings_table(config), text_columns=("value",))
    return Section("Settings and data", (table,), anchor="settings")


# -- prose ------------------------------------------------------------------------------------
def _wall_time_line(analysis: RunAnalysis) -> str:
    wall = analysis.wall_time
    return f"Wall time: {wall.text()}." if wall else "Wall time: unknown (no timestamps)."


def _methods_text(analysis: RunAnalysis) -> list[str]:
    objectives = ", ".join(f"{o.column} ({o.direction})" for o in analysis.objectives)
    k = len(analysis.objectives)
    scored = analysis.scored_labels
    if scored is None or scored.rule.min_positives <= 1:
        labels = "every label with both classes in the validation split"
    else:
        labels = f"the labels with {scored.rule} in the validation split"
    lines = [
        f"Objectives: {objectives}; the front is computed in all {k} at once. Eligible for the "
        "front: trials with status COMPLETE that reached the proxy's epochs; repeated seeds of "
        f"one architecture are pooled (mean). AUC: mean validation ROC AUC over {labels}.",
        f"{_hypervolume_line(analysis)}. Default reference: AUC 0.5 (chance) and 1.1 x the "
        "largest eligible value of each minimised objective.",
        "Knee: on axes normalised over the front, the member farthest from the "
        + ("line through the two extremes" if k == 2 else f"plane through the {k} extremes")
        + " (towards the ideal point); the member nearest the ideal when none lies beyond it.",
    ]
    if k > 2:
        lines.append(
            "Plots: each shows AUC against one cost; the highlighted members are the front over "
            f"all {k} objectives, so a member that looks dominated in one plot is better in a "
            "cost that plot does not show."
        )
    info = analysis.latency_info
    if info:
        lines.append(
            f"Latency: {info.get('unit', 'ms per image')}; {info.get('input_size')}x"
            f"{info.get('input_size')}, batch {info.get('batch_size')}, {info.get('threads')} "
            f"thread(s), {info.get('device')} [{info.get('device_name', '')}]; table "
            f"{info.get('path') or '(in config.json)'}."
        )
    if analysis.n_resamples:
        lines.append(
            "AUC intervals: the model is AUC(arch, seed) = architecture effect + seed noise + "
            "image-sampling noise. An architecture's AUC is its mean over its seeds; its "
            f"{analysis.level:.0%} interval is a percentile bootstrap of {analysis.n_resamples} "
            "resamples of the validation images (labels with one class in a resample skipped), "
            "each with an independent draw of seed noise of variance sigma^2 / seeds, sigma^2 "
            "pooled over the run's repeated architectures and its proxy-check and itself drawn "
            "from its sampling distribution (few repeats: wider intervals). 'vs cheaper' is the "
            "difference to the next cheaper front member, paired on the same images, with the "
            "seed noise of both: a measurement per comparison, not a claim. 'vs baseline' is the "
            "verdict's (the first section): the member's held-out seeds paired with the "
            "baseline's, simultaneous over the members compared; 'better'/'worse' = that "
            "interval excludes 0, 'no diff.' = it does not, 'untested' = no seed after the "
            "member was selected. "
            f"Seed noise here: {analysis.seed_noise.describe()}. Evidence: 'confirmed' = at "
            f"least {CONFIRMED_SEEDS} seeds, 'candidate' = fewer; `mdsearch run --confirm` races "
            "the candidates against the baseline on further seeds."
        )
    else:
        lines.append("AUC intervals were not computed (n_resamples=0).")
    return lines


def _hypervolume_line(analysis: RunAnalysis) -> str:
    units = " x ".join(o.column for o in analysis.objectives)
    k = len(analysis.objectives)
    return (
        f"hypervolume ({k}-D) {analysis.hypervolume:.4g} ({units}) against the reference point "
        f"({analysis.reference_text})"
    )


def _reference_text(analysis: RunAnalysis) -> str:
    """One line on the paper's architecture: where it stands, or that it was not evaluated."""
    if not analysis.paper:
        return "The paper's architecture does not exist on this backbone."
    if analysis.paper not in analysis.archs.index:
        return (
            "The paper's architecture (MD-Conv 3x3+5x5 1:1 in stage5 only) was not evaluated in "
            "this run."
        )
    return (
        "The paper's architecture (MD-Conv 3x3+5x5 1:1 in stage5 only, PAPER.md Table 4) as "
        "this run evaluated it, beside the baseline; 'vs baseline' is the paired AUC "
        "difference with its interval."
    )


def _hypervolume_caption(analysis: RunAnalysis) -> str:
    """What the hypervolume curve shows, and why it can fall."""
    hist = analysis.history
    falls = int(hist["fell"].sum())
    text = (
        "Hypervolume of the front after each trial, computed on the estimates as of that trial: "
        "each architecture's mean AUC over the seeds it had so far. It rises when a new "
        "architecture joins the front and falls when a further seed lowers a front member's "
        "mean (its first seed was lucky): "
    )
    if falls:
        text += f"{falls} such fall{'s' * (falls != 1)} here, marked with red triangles."
    else:
        text += "no such fall in this run."
    if "auc_mean" in analysis.archs:
        text += (
            f" The front above ranks on shrunk estimates, so its hypervolume "
            f"({analysis.hypervolume:.4g}, dashed line) differs from the curve's last value "
            f"({hist['hypervolume'].iloc[-1]:.4g}, raw means)."
        )
    return text


def _resolution_lines(analysis: RunAnalysis) -> list[str]:
    """The resolution warnings, for the stage sections (empty when there is none)."""
    if not analysis.resolution_warnings:
        return []
    return [
        "Stages marked (!): the proxy resolution cannot rank their choices. "
        + "; ".join(analysis.resolution_warnings.values())
        + "."
    ]


def _effects_text(analysis: RunAnalysis) -> list[str]:
    """What the stage-effect section says besides its table."""
    model = analysis.stage_model
    if model is None:
        return ["Stage effects were not fitted (fewer than two architectures, or no stage varies)."]
    lines = [
        "Additive model over every trial that finished the proxy: AUC = baseline + one effect "
        "per stage choice (against the backbone's own kernel in that stage) + what the sum "
        "misses for each architecture (interactions) + seed noise (statsmodels MixedLM, REML; "
        f"Wald intervals). Baseline predicted at {model.intercept:.4f}; seed SD "
        f"{model.seed_sd:.4f}; architectures scatter around the sum by SD {model.arch_sd:.4f}.",
        model.fit_text(),
    ]
    n = len(model.effects)
    if n > 1:
        lines.append(
            f"Each interval is at {model.level:.0%} on its own: of {n} effects about "
            f"{(1 - model.level) * n:.1f} would exclude 0 by chance alone even if none were real."
        )
    if model.notes:
        lines += list(model.notes)
    elif "auc_mean" in analysis.archs:
        lines.append(
            "The front ranks architectures on empirical-Bayes estimates ('AUC shrunk': each "
            "architecture's mean pulled toward what its stages predict, the more so the fewer its "
            "seeds), so one lucky run does not put an architecture on the front; the raw mean "
            "over seeds and its interval stand beside it."
        )
    return lines


def _label_rule_text(analysis: RunAnalysis) -> str | None:
    """What the report says about labels left out of the mean AUC (None: none was)."""
    scored = analysis.scored_labels
    if scored is None:
        return None
    return scored.warning("validation")


def _seed_noise_line(analysis: RunAnalysis) -> str:
    noise = analysis.seed_noise
    if not noise.known:
        return NO_SEED_NOISE
    return f"intervals include {noise.describe()} and the validation images"


def _summary_line(analysis: RunAnalysis) -> str:
    """The terminal's first line: the trials by outcome, the architectures, the front's size."""
    c, on_front = analysis.counts, len(analysis.front)
    return (
        f"run {analysis.run.name}: {c['total']} trials ({c['complete']} complete, "
        f"{c['failed']} failed, {c['stopped']} stopped early); {c['eligible']} finished the proxy "
        f"= {c['archs']} architectures; {on_front} on the Pareto front"
    )
