"""Reports of a run: ``report.html`` (self-contained), ``report.md``, plots and ``pareto.csv``.

:func:`write_report` is what ``mdsearch report RUN`` and the end of ``mdsearch run`` call;
:func:`format_pareto_table` is ``mdsearch pareto RUN``. Both read only the run folder (through
:func:`mdsearch.results.analysis.analyse_run`). The plots (:mod:`mdsearch.results.figures`) are
embedded in the HTML as base64 PNG, so the page opens offline. Every file is written atomically.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mdsearch.space.files import atomic_write_bytes, atomic_write_text

from .analysis import NO_SEED_NOISE, RunAnalysis, analyse_run
from .confirmation import CONFIRMED_SEEDS, evidence
from .fidelity import format_fidelity_html, format_fidelity_markdown
from .figures import (
    figure_names,
    figure_pngs,
    projection_key,
    projections,
    short_name,
    supernet_figure,
)
from .pareto import resolve_objectives
from .report_markup import (
    SYNTHETIC_NOTICE,
    html_head,
    html_table,
    markdown_head,
    markdown_table,
    png_img,
    settings_table,
)
from .supernet_report import (
    SupernetSection,
    no_front_reason,
    supernet_html,
    supernet_markdown,
    supernet_only_html,
    supernet_only_markdown,
    supernet_section,
)
from .trials import load_run

__all__ = [
    "write_report",
    "format_pareto_table",
    "pareto_table",
    "pareto_csv_table",
]


# -- tables ---------------------------------------------------------------------------------
def _flops_header(analysis: RunAnalysis) -> str:
    size = analysis.run.input_size
    return f"FLOPs M @{size}x{size}" if size else "FLOPs M"


def _latency_header(analysis: RunAnalysis) -> str:
    size = analysis.latency_info.get("input_size")
    return f"latency ms @{size}x{size}" if size else "latency ms"


def _has_latency(analysis: RunAnalysis) -> bool:
    """Whether the front has latency values (an objective, or a table that holds them)."""
    front = analysis.front
    return "latency_ms" in front and bool(pd.to_numeric(front["latency_ms"]).notna().any())


def _tags(analysis: RunAnalysis, arch: str) -> str:
    tags = [
        tag
        for tag, hit in (
            ("knee", arch == analysis.knee),
            ("baseline", arch == analysis.baseline),
            ("paper", arch == analysis.paper),
        )
        if hit
    ]
    return ", ".join(tags)


def _stages_text(stages: tuple[int, ...]) -> str:
    return ", ".join(str(i) for i in stages) if stages else "none"


def _auc_text(row: pd.Series) -> str:
    """The raw mean over seeds with its interval (the interval is of that mean)."""
    mean = row.get("auc_mean", row["auc"])
    low, high = row.get("auc_ci_low", np.nan), row.get("auc_ci_high", np.nan)
    if pd.isna(low) or pd.isna(high):
        return f"{mean:.3f}"
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def _difference_text(diff: Any) -> str:
    if diff is None or pd.isna(diff.low):
        return "-"
    if not diff.judged:
        return f"{diff} not judged"
    return f"{diff} {'distinct' if diff.distinguishable else 'n.s.'}"


def pareto_table(analysis: RunAnalysis, *, full_arch: bool = True) -> pd.DataFrame:
    """The front as a display table (strings), cheapest first.

    Columns: tag (knee/baseline/paper), arch id, MD-Conv stages, FLOPs at the input size,
    predicted latency (ms per image at the latency input size; when the run has it), params,
    AUC with its interval, seeds, train seconds (mean per seed), the AUC difference to the cheaper
    front neighbour and to the baseline with their intervals ("distinct": the interval excludes 0),
    any further objective, and the canonical arch string.
    """
    pct = f"{analysis.level:.0%}"
    latency = _has_latency(analysis)
    extra = [o for o in analysis.objectives if o.column not in ("auc", "flops_m", "latency_ms")]
    rows = []
    for arch, row in analysis.front.iterrows():
        out = {
            "": _tags(analysis, arch),
            "arch id": row["arch_id"],
            "MD-Conv stages": _stages_text(row["mdconv_stages"]),
            _flops_header(analysis): f"{row['flops_m']:.1f}",
        }
        if latency:
            value = row.get("latency_ms")
            out[_latency_header(analysis)] = f"{value:.2f}" if pd.notna(value) else "-"
        out |= {
            "params M": f"{row['params_m']:.2f}" if pd.notna(row.get("params_m")) else "-",
            f"AUC [{pct} CI]": _auc_text(row),
            **({"AUC shrunk": f"{row['auc']:.3f}"} if "auc_mean" in row.index else {}),
            "seeds": int(row["seeds"]),
            "evidence": evidence(int(row["seeds"])),
            "train s": f"{row['train_seconds']:.0f}" if pd.notna(row.get("train_seconds")) else "-",
            "vs cheaper": _difference_text(row.get("vs_cheaper")),
            "vs baseline": _difference_text(row.get("vs_baseline")),
        }
        for obj in extra:
            out[obj.label or obj.column] = f"{row[obj.column]:.4g}"
        if full_arch:
            out["arch"] = arch
        rows.append(out)
    return pd.DataFrame(rows)


def _arch_table(analysis: RunAnalysis) -> pd.DataFrame:
    """Arch id -> canonical string of each front member (the wide column of the front table,
    kept apart so the front table fits a browser window)."""
    front = analysis.front
    return pd.DataFrame(
        {
            "arch id": front["arch_id"].to_numpy(),
            "": [_tags(analysis, a) for a in front.index],
            "architecture (canonical string, `mdsearch.mdconv.build` takes it)": front.index,
        }
    )


def _reference_table(analysis: RunAnalysis) -> pd.DataFrame | None:
    """The paper's architecture and the baseline, as evaluated in this run (None when the
    paper's architecture was not evaluated)."""
    if not analysis.paper or analysis.paper not in analysis.archs.index:
        return None
    pct = f"{analysis.level:.0%}"
    rows = []
    for arch, what in (
        (analysis.paper, "paper: stage5 3x3+5x5 1:1 (Table 4)"),
        (analysis.baseline, "baseline: no MD-Conv"),
    ):
        if not arch or arch not in analysis.archs.index:
            continue
        row = analysis.archs.loc[arch]
        out = {
            "": what,
            "arch id": row["arch_id"],
            _flops_header(analysis): f"{row['flops_m']:.1f}",
            f"AUC [{pct} CI]": _auc_text(row),
            **({"AUC shrunk": f"{row['auc']:.3f}"} if "auc_mean" in row.index else {}),
            "seeds": int(row["seeds"]),
            "on the front": "yes" if row["on_front"] else "no (dominated)",
        }
        if arch == analysis.paper:
            out["vs baseline"] = _difference_text(analysis.paper_vs_baseline)
        else:
            out["vs baseline"] = "-"
        rows.append(out)
    return pd.DataFrame(rows)


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


def pareto_csv_table(analysis: RunAnalysis) -> pd.DataFrame:
    """The front as numbers, one row per architecture (what ``pareto.csv`` holds)."""
    front = analysis.front
    out = pd.DataFrame(
        {
            "arch": front.index,
            "arch_id": front["arch_id"].to_numpy(),
            "mdconv_stages": [";".join(str(i) for i in s) for s in front["mdconv_stages"]],
            "knee": front.index == analysis.knee,
            "baseline": front.index == analysis.baseline,
            "paper": front.index == analysis.paper,
        }
    )
    numeric = [
        "flops_m",
        "latency_ms",
        "params_m",
        "auc",
        "auc_mean",
        "auc_ci_low",
        "auc_ci_high",
        "auc_seed_sd",
        "seeds",
    ]
    numeric += [o.column for o in analysis.objectives]
    numeric += ["train_seconds", "images_per_s"]
    numeric += [c for c in front.columns if c.startswith("auc__")]
    for col in dict.fromkeys(numeric):
        if col in front:
            out[col] = front[col].to_numpy()
    for name in ("vs_cheaper", "vs_baseline"):
        diffs = list(front[name])
        for part in ("mean", "low", "high"):
            out[f"{name}_{part}"] = [getattr(d, part) if d is not None else np.nan for d in diffs]
        out[f"{name}_distinct"] = [d.distinguishable if d is not None else None for d in diffs]
    out["evidence"] = [evidence(int(n)) for n in front["seeds"]]
    out["input_size"] = analysis.run.input_size
    out["trials"] = [";".join(str(t) for t in ts) for ts in front["trials"]]
    return out


def _effects_table(analysis: RunAnalysis) -> pd.DataFrame | None:
    """The stage-effect model as a display table, or None when it was not fitted."""
    model = analysis.stage_model
    if model is None:
        return None
    table = model.table()
    pct = f"{model.level:.0%}"
    return pd.DataFrame(
        {
            "stage": [
                f"{k} (!)" if int(k) in analysis.resolution_warnings else k for k in table["stage"]
            ],
            "choice": table["choice"],
            f"AUC effect [{pct} CI]": [
                f"{e:+.4f} [{lo:+.4f}, {hi:+.4f}]"
                for e, lo, hi in zip(table["effect"], table["low"], table["high"])
            ],
            "excludes 0": [
                ("yes" if lo > 0 or hi < 0 else "no") for lo, hi in zip(table["low"], table["high"])
            ],  # fmt: skip
            "architectures": table["archs"],
        }
    )


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


def _label_table(analysis: RunAnalysis) -> pd.DataFrame:
    """Per-label validation AUC of the front: one row per label (14 findings stay readable),
    one column per front member; with the label's validation counts and whether it is in the
    mean AUC when the predictions tell."""
    front = analysis.front
    scored = analysis.scored_labels
    labels = [c[len("auc__") :] for c in front.columns if c.startswith("auc__")]
    table = pd.DataFrame({"label": labels})
    if scored is not None and set(labels) <= set(scored.label_names):
        table["validation positives / negatives"] = [
            f"{scored.positives[scored.label_names.index(n)]} / "
            f"{scored.negatives[scored.label_names.index(n)]}"
            for n in labels
        ]
        table["in the mean AUC"] = ["no" if n in scored.excluded else "yes" for n in labels]
    for arch, row in front.iterrows():
        tags = _tags(analysis, arch)
        header = f"{row['arch_id']} ({tags})" if tags else row["arch_id"]
        table[header] = [
            f"{row['auc__' + n]:.3f}" if pd.notna(row["auc__" + n]) else "-" for n in labels
        ]
    return table


def _label_rule_text(analysis: RunAnalysis) -> str | None:
    """What the report says about labels left out of the mean AUC (None: none was)."""
    scored = analysis.scored_labels
    if scored is None:
        return None
    return scored.warning("validation")


def _proxy_map_sizes(analysis: RunAnalysis) -> tuple[int, list[int]] | None:
    """(proxy resolution in px, each stage's output map side at it), or None when unknown."""
    from mdsearch.space import ArchSpec, ArchSpecError, get_backbone

    resolution = (analysis.run.config.get("proxy") or {}).get("resolution")
    if resolution is None or analysis.archs.empty:
        return None
    try:
        backbone = get_backbone(ArchSpec.parse(analysis.archs.index[0]).backbone)
    except ArchSpecError:
        return None
    return int(resolution), backbone.map_sizes(int(resolution))


def _stage_name(analysis: RunAnalysis, stage: int) -> str:
    """``stage5``, marked ``stage5 (!)`` when the proxy resolution cannot rank its choices."""
    return f"stage{stage} (!)" if stage in analysis.resolution_warnings else f"stage{stage}"


def _stage_table(analysis: RunAnalysis) -> pd.DataFrame:
    share = analysis.stage_share
    n_front, n_all = len(analysis.front), len(analysis.archs)
    sizes = _proxy_map_sizes(analysis)
    maps = {}
    if sizes is not None:
        resolution, sides = sizes
        maps[f"maps at the proxy's {resolution} px"] = [
            f"{sides[i]}x{sides[i]}" + (": too small" if i in analysis.resolution_warnings else "")
            for i in range(len(share))
        ]
    return pd.DataFrame(
        {
            "stage": [_stage_name(analysis, i) for i in range(len(share))],
            **maps,
            f"on the front (of {n_front})": [
                f"{n} ({s:.0%})" for n, s in zip(share["front_n"], share["front_share"])
            ],
            f"all evaluated (of {n_all})": [
                f"{n} ({s:.0%})" for n, s in zip(share["all_n"], share["all_share"])
            ],
        }
    )


def format_pareto_table(run_dir: str | Path, **kwargs: Any) -> str:
    """The Pareto front as a plain-text table for the terminal (``mdsearch pareto RUN``).

    Args:
        run_dir: the run folder.
        **kwargs: passed to :func:`~mdsearch.results.analysis.analyse_run` (``n_resamples=0``
            skips the intervals, ``objectives=``, ``reference=``).

    Raises:
        ResultsError: see :func:`~mdsearch.results.analysis.analyse_run`.

    Example:
        >>> print(format_pareto_table("runs/demo"))  # doctest: +SKIP
    """
    analysis = analyse_run(run_dir, **kwargs)
    lines = []
    if analysis.run.synthetic:
        lines.append("!! " + SYNTHETIC_NOTICE)
    lines.append(_summary_line(analysis))
    lines.append(pareto_table(analysis).to_string(index=False))
    lines.append(_seed_noise_line(analysis))
    lines.append(_hypervolume_line(analysis))
    return "\n".join(lines)


def _seed_noise_line(analysis: RunAnalysis) -> str:
    noise = analysis.seed_noise
    if not noise.known:
        return NO_SEED_NOISE
    return f"intervals include {noise.describe()} and the validation images"


def _summary_line(analysis: RunAnalysis) -> str:
    c = analysis.counts
    return (
        f"run {analysis.run.name}: {c['total']} trials ({c['complete']} complete, "
        f"{c['failed']} failed, {c['stopped']} stopped early); {c['eligible']} finished the proxy "
        f"= {c['archs']} architectures; {len(analysis.front)} on the Pareto front"
    )


def _hypervolume_line(analysis: RunAnalysis) -> str:
    units = " x ".join(o.column for o in analysis.objectives)
    k = len(analysis.objectives)
    return (
        f"hypervolume ({k}-D) {analysis.hypervolume:.4g} ({units}) against the reference point "
        f"({analysis.reference_text})"
    )


# -- documents ------------------------------------------------------------------------------
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
            "from its sampling distribution (few repeats: wider intervals). Differences ('vs "
            "cheaper': the next cheaper front member; 'vs baseline') are paired on the same "
            "images and include the seed noise of both; 'distinct' = the interval excludes 0, "
            "'not judged' = no estimate of seed noise. Calibrated on synthetic searches with "
            "known truth (tests/test_seed_noise.py: false 'distinct' <= 5% with 1, 2, 3 seeds). "
            f"Seed noise here: {analysis.seed_noise.describe()}. Evidence: 'confirmed' = at "
            f"least {CONFIRMED_SEEDS} seeds (the interval is settled), 'candidate' = fewer; "
            "`mdsearch run --confirm` spends part of the budget on further seeds of the "
            "candidates and the baseline."
        )
    else:
        lines.append("AUC intervals were not computed (n_resamples=0).")
    return lines


def _counts_table(analysis: RunAnalysis) -> pd.DataFrame:
    c = analysis.counts
    return pd.DataFrame(
        {
            "trials": [c["total"]],
            "complete": [c["complete"]],
            "failed": [c["failed"]],
            "stopped early": [c["stopped"]],
            "finished the proxy": [c["eligible"]],
            "architectures": [c["archs"]],
            "on the front": [len(analysis.front)],
        }
    )


def _wall_time_line(analysis: RunAnalysis) -> str:
    wall = analysis.wall_time
    return f"Wall time: {wall.text()}." if wall else "Wall time: unknown (no timestamps)."


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


def _errors_table(analysis: RunAnalysis) -> pd.DataFrame | None:
    trials = analysis.run.trials
    failed = trials[trials["status"] == "FAILED"]
    if failed.empty or "error" not in failed:
        return None
    errors = failed["error"].replace("", "(no message)").str.slice(0, 160)
    counts = errors.value_counts()
    return pd.DataFrame({"error": counts.index, "trials": counts.to_numpy()})


def _resolution_lines(analysis: RunAnalysis) -> list[str]:
    """The resolution warnings, for the stage sections (empty when there is none)."""
    if not analysis.resolution_warnings:
        return []
    return [
        "Stages marked (!): the proxy resolution cannot rank their choices. "
        + "; ".join(analysis.resolution_warnings.values())
        + "."
    ]


def _markdown(
    analysis: RunAnalysis, files: Mapping[str, Path], supernet: SupernetSection | None = None
) -> str:
    run = analysis.run
    out = markdown_head(run.name, run.synthetic)
    out += ["## Trials", "", markdown_table(_counts_table(analysis)), ""]
    out += [_wall_time_line(analysis), ""]
    if supernet is not None:
        out += [supernet.trials_note(), ""]
    errors = _errors_table(analysis)
    if errors is not None:
        out += ["Failures:", "", markdown_table(errors), ""]
    out += ["## Pareto front", "", markdown_table(pareto_table(analysis, full_arch=False)), ""]
    out += [markdown_table(_arch_table(analysis)), ""]
    for x in projections(analysis):
        out += [f"![AUC vs {short_name(x)}]({files[projection_key(analysis, x)].name})", ""]
    out += [f"- {line}" for line in _methods_text(analysis)] + [""]
    out += ["## The paper's architecture", "", _reference_text(analysis), ""]
    reference = _reference_table(analysis)
    if reference is not None:
        out += [markdown_table(reference), ""]
    out += [
        "## Hypervolume over trials",
        "",
        f"![hypervolume]({files['hypervolume_png'].name})",
        "",
        _hypervolume_caption(analysis),
        "",
    ]
    out += [
        "## Where MD-Conv sits: front vs all evaluated",
        "",
        markdown_table(_stage_table(analysis)),
        "",
    ]
    out += [f"> **Warning:** {line}" for line in _resolution_lines(analysis)]
    out += ["", f"![MD-Conv stages]({files['stages_png'].name})", ""]
    out += ["## Stage effects: every trial at once", ""]
    effects = _effects_table(analysis)
    if effects is not None:
        out += [markdown_table(effects), ""]
        out += [f"![stage effects]({files['effects_png'].name})", ""]
    out += [f"- {line}" for line in _effects_text(analysis)] + [""]
    out += [
        "## Per-label validation AUC of the front (mean over seeds)",
        "",
        markdown_table(_label_table(analysis)),
        "",
    ]
    rule = _label_rule_text(analysis)
    if rule:
        out += [f"> **Note:** {rule}", ""]
    if supernet is not None:
        out += [supernet_markdown(supernet, files["supernet_png"].name), ""]
    fidelity = format_fidelity_markdown(run.path)
    if fidelity:
        out += [fidelity, ""]
    if analysis.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in analysis.notes] + [""]
    settings = settings_table(run.config)
    out += ["## Settings and data", "", markdown_table(settings), ""]
    return "\n".join(out)


def _html(
    analysis: RunAnalysis, pngs: Mapping[str, bytes], supernet: SupernetSection | None = None
) -> str:
    run = analysis.run
    esc = html.escape
    parts = html_head(run.name, run.synthetic)
    parts += ["<h2>Trials</h2>", html_table(_counts_table(analysis))]
    parts.append(f"<p>{esc(_wall_time_line(analysis))}</p>")
    if supernet is not None:
        parts.append(f"<p>{esc(supernet.trials_note())}</p>")
    errors = _errors_table(analysis)
    if errors is not None:
        parts += ["<p>Failures:</p>", html_table(errors, text=["error"])]
    front = pareto_table(analysis, full_arch=False)
    parts.append("<h2>Pareto front</h2>")
    parts.append(html_table(front, wrap=["", "vs cheaper", "vs baseline", "evidence"]))
    arch_table = _arch_table(analysis)
    parts.append(html_table(arch_table, arch=[arch_table.columns[-1]]))
    for x in projections(analysis):
        alt = f"AUC vs {short_name(x)} with the Pareto front"
        parts.append(png_img(pngs[projection_key(analysis, x)], alt))
    parts.append('<ul class="methods">')
    parts += [f"<li>{esc(line)}</li>" for line in _methods_text(analysis)]
    parts.append("</ul>")
    parts += ["<h2>The paper's architecture</h2>", f"<p>{esc(_reference_text(analysis))}</p>"]
    reference = _reference_table(analysis)
    if reference is not None:
        parts.append(html_table(reference, wrap=["", "vs baseline"]))
    parts += [
        "<h2>Hypervolume over trials</h2>",
        png_img(pngs["hypervolume_png"], "hypervolume"),
        f'<p class="caption">{esc(_hypervolume_caption(analysis))}</p>',
    ]
    parts += [
        "<h2>Where MD-Conv sits: front vs all evaluated</h2>",
        html_table(_stage_table(analysis)),
    ]
    parts += [f'<p class="warning">{esc(line)}</p>' for line in _resolution_lines(analysis)]
    parts.append(png_img(pngs["stages_png"], "MD-Conv stages"))
    parts.append("<h2>Stage effects: every trial at once</h2>")
    effects = _effects_table(analysis)
    if effects is not None:
        parts += [html_table(effects), png_img(pngs["effects_png"], "stage effects")]
    parts += ['<ul class="methods">'] + [f"<li>{esc(t)}</li>" for t in _effects_text(analysis)]
    parts.append("</ul>")
    parts += [
        "<h2>Per-label validation AUC of the front (mean over seeds)</h2>",
        html_table(_label_table(analysis)),
    ]
    rule = _label_rule_text(analysis)
    if rule:
        parts.append(f'<p class="note">{esc(rule)}</p>')
    if supernet is not None:
        parts.append(supernet_html(supernet, pngs["supernet_png"]))
    fidelity = format_fidelity_html(run.path)
    if fidelity:
        parts.append(fidelity)
    if analysis.notes:
        parts += ["<h2>Notes</h2>", "<ul>"] + [f"<li>{esc(n)}</li>" for n in analysis.notes]
        parts.append("</ul>")
    settings = settings_table(run.config)
    parts += ["<h2>Settings and data</h2>", html_table(settings, text=["value"])]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, **kwargs: Any):
    """Write the run's report files.

    Args:
        run_dir: the run folder.
        out_dir: where to write (default: the run folder itself).
        **kwargs: passed to :func:`~mdsearch.results.analysis.analyse_run` (``objectives=``,
            ``reference=``, ``level=``, ``n_resamples=``, ``seed=``).

    Returns:
        ``dict[str, Path]`` with keys ``html`` (report.html, self-contained), ``markdown``
        (report.md), ``pareto_png`` (AUC vs the first cost objective), ``pareto_csv``,
        ``hypervolume_png``, ``stages_png``, ``effects_png`` (stage_effects.png) and
        ``effects_csv`` (stage_effects.csv, when the stage model could be fitted), and for each
        further cost objective ``pareto_<name>_png`` (``pareto_latency_png``:
        pareto_latency.png).

        A supernet run's report adds its Supernet section and ``supernet_png`` (supernet.png:
        supernet score against stand-alone AUC). While such a run has no stand-alone trial
        that finished the proxy, the report says so and shows the supernet alone: then only
        ``html``, ``markdown`` and ``supernet_png``.

    Raises:
        ResultsError: the run folder or trial table is missing or empty, or no trial finished
            the proxy (the message says why; a supernet run gets its report without a front).

    Example:
        >>> paths = write_report("runs/demo")  # doctest: +SKIP
        >>> paths["html"].name  # doctest: +SKIP
        'report.html'
    """
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.path
    keys = ("objectives", "level", "n_resamples", "seed")
    supernet = supernet_section(run, **{k: v for k, v in kwargs.items() if k in keys})
    supernet_png = supernet_figure(supernet) if supernet is not None else None
    if supernet is not None:
        wanted = kwargs.get("objectives") or run.config.get("objectives") or ("auc", "flops")
        reason = no_front_reason(run, [o.column for o in resolve_objectives(wanted)])
        if reason is not None:
            out.mkdir(parents=True, exist_ok=True)
            files = {
                "html": out / "report.html",
                "markdown": out / "report.md",
                "supernet_png": out / "supernet.png",
            }
            atomic_write_bytes(files["supernet_png"], supernet_png)
            markdown = supernet_only_markdown(supernet, reason, files["supernet_png"].name)
            atomic_write_text(files["markdown"], markdown)
            atomic_write_text(files["html"], supernet_only_html(supernet, reason, supernet_png))
            return files
    analysis = analyse_run(run, **kwargs)
    out.mkdir(parents=True, exist_ok=True)
    names = figure_names(analysis)
    files = {
        "html": out / "report.html",
        "markdown": out / "report.md",
        "pareto_png": out / names["pareto_png"],
        "pareto_csv": out / "pareto.csv",
        "hypervolume_png": out / names["hypervolume_png"],
        "stages_png": out / names["stages_png"],
    }
    files |= {key: out / name for key, name in names.items() if key not in files}
    pngs = figure_pngs(analysis)
    if supernet_png is not None:
        files["supernet_png"] = out / "supernet.png"
        pngs["supernet_png"] = supernet_png
    for key, data in pngs.items():
        atomic_write_bytes(files[key], data)
    atomic_write_text(files["pareto_csv"], pareto_csv_table(analysis).to_csv(index=False))
    if analysis.stage_model is not None:
        files["effects_csv"] = out / "stage_effects.csv"
        table = analysis.stage_model.table()
        atomic_write_text(files["effects_csv"], table.to_csv(index=False))
    atomic_write_text(files["markdown"], _markdown(analysis, files, supernet))
    atomic_write_text(files["html"], _html(analysis, pngs, supernet))
    return files
