"""Reports of a run: ``report.html`` (self-contained), ``report.md``, plots and ``pareto.csv``.

:func:`write_report` is what ``mdsearch report RUN`` and the end of ``mdsearch run`` call;
:func:`format_pareto_table` is ``mdsearch pareto RUN``. Both read only the run folder (through
:func:`mdsearch.results.analysis.analyse_run`). Plots are drawn with matplotlib's Agg canvas (no
display, no pyplot state) and embedded in the HTML as base64 PNG, so the page opens offline.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .analysis import RunAnalysis, analyse_run
from .fidelity import format_fidelity_html, format_fidelity_markdown

__all__ = [
    "write_report",
    "format_pareto_table",
    "pareto_table",
    "pareto_csv_table",
    "pareto_figure",
    "projections",
]

_SYNTHETIC_NOTICE = (
    "Synthetic data: this run searched on generated phantom images, not chest X-rays. Its AUCs "
    "check that the pipeline works; they say nothing about how the architectures read real images."
)


# -- tables ---------------------------------------------------------------------------------
def _flops_header(analysis: RunAnalysis) -> str:
    size = analysis.run.input_size
    return f"FLOPs M @{size}x{size}" if size else "FLOPs M"


def _latency_info(analysis: RunAnalysis) -> dict[str, Any]:
    """config.json's ``latency`` block (input size, batch, threads, device) or {}."""
    return analysis.run.config.get("latency") or {}


def _latency_header(analysis: RunAnalysis) -> str:
    size = _latency_info(analysis).get("input_size")
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
    low, high = row.get("auc_ci_low", np.nan), row.get("auc_ci_high", np.nan)
    if pd.isna(low) or pd.isna(high):
        return f"{row['auc']:.3f}"
    return f"{row['auc']:.3f} [{low:.3f}, {high:.3f}]"


def _difference_text(diff: Any) -> str:
    if diff is None or pd.isna(diff.low):
        return "-"
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
            "seeds": int(row["seeds"]),
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
    out["input_size"] = analysis.run.input_size
    out["trials"] = [";".join(str(t) for t in ts) for ts in front["trials"]]
    return out


def _label_table(analysis: RunAnalysis) -> pd.DataFrame:
    columns = [c for c in analysis.front.columns if c.startswith("auc__")]
    table = analysis.front[columns].rename(columns=lambda c: c[5:])
    table.insert(0, "arch id", analysis.front["arch_id"])
    table.insert(1, "", [_tags(analysis, a) for a in analysis.front.index])
    return table.reset_index(drop=True)


def _stage_table(analysis: RunAnalysis) -> pd.DataFrame:
    share = analysis.stage_share
    n_front, n_all = len(analysis.front), len(analysis.archs)
    return pd.DataFrame(
        {
            "stage": share.index,
            f"on the front (of {n_front})": [
                f"{n} ({s:.0%})" for n, s in zip(share["front_n"], share["front_share"])
            ],
            f"all evaluated (of {n_all})": [
                f"{n} ({s:.0%})" for n, s in zip(share["all_n"], share["all_share"])
            ],
        }
    )


def _markdown_table(table: pd.DataFrame) -> str:
    def cell(value: Any) -> str:
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


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
        lines.append("!! " + _SYNTHETIC_NOTICE)
    lines.append(_summary_line(analysis))
    lines.append(pareto_table(analysis).to_string(index=False))
    lines.append(_hypervolume_line(analysis))
    return "\n".join(lines)


def _summary_line(analysis: RunAnalysis) -> str:
    c = analysis.counts
    return (
        f"run {analysis.run.name}: {c['total']} trials ({c['complete']} complete, "
        f"{c['failed']} failed, {c['stopped']} stopped early); {c['eligible']} finished the proxy "
        f"= {c['archs']} architectures; {len(analysis.front)} on the Pareto front"
    )


def _reference_text(analysis: RunAnalysis) -> str:
    return ", ".join(f"{col} = {value:.4g}" for col, value in analysis.reference.items())


def _hypervolume_line(analysis: RunAnalysis) -> str:
    units = " x ".join(o.column for o in analysis.objectives)
    k = len(analysis.objectives)
    return (
        f"hypervolume ({k}-D) {analysis.hypervolume:.4g} ({units}) against the reference point "
        f"({_reference_text(analysis)})"
    )


# -- plots ----------------------------------------------------------------------------------
def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def _axis_labels(analysis: RunAnalysis, x: str = "flops_m") -> tuple[str, str]:
    """(x label, y label) of a projection onto AUC and the column ``x``."""
    size = analysis.run.input_size
    if x == "flops_m":
        xlabel = f"FLOPs (M multiply-adds at {size}x{size})" if size else "FLOPs (M multiply-adds)"
    elif x == "latency_ms":
        info = _latency_info(analysis)
        detail = []
        if info.get("input_size"):
            detail.append(f"{info['input_size']}x{info['input_size']}")
        if info.get("batch_size"):
            detail.append(f"batch {info['batch_size']}")
        if info.get("threads"):
            detail.append(f"{info['threads']} thread" + ("s" if info["threads"] != 1 else ""))
        if info.get("device"):
            detail.append(str(info["device"]))
        xlabel = "predicted latency (ms per image" + (f", {', '.join(detail)})" if detail else ")")
    else:
        obj = next((o for o in analysis.objectives if o.column == x), None)
        xlabel = obj.label if obj and obj.label else x
    proxy = analysis.run.config.get("proxy") or {}
    detail = []
    if proxy.get("epochs") is not None:
        epochs = float(proxy["epochs"])
        detail.append(f"{epochs:g} epoch" + ("" if epochs == 1 else "s"))
    if proxy.get("resolution"):
        detail.append(f"at {proxy['resolution']}x{proxy['resolution']}")
    auc = "mean validation AUC" + (f" (proxy: {' '.join(detail)})" if detail else "")
    return xlabel, auc


_SHORT = {"flops_m": "FLOPs", "latency_ms": "latency", "params_m": "params", "auc": "AUC"}


def projections(analysis: RunAnalysis) -> list[str]:
    """The x columns of the report's scatter plots: every objective other than AUC, in order
    (one plot for 2 objectives; for 3, e.g. AUC vs FLOPs and AUC vs latency)."""
    xs = [o.column for o in analysis.objectives if o.column != "auc"]
    return xs or ["flops_m"]


def _projection_key(analysis: RunAnalysis, x: str) -> str:
    """Report file key of the plot against ``x``: ``pareto_png`` for the first projection,
    ``pareto_<name>_png`` (``pareto_latency_png``) for the others."""
    if x == projections(analysis)[0]:
        return "pareto_png"
    return f"pareto_{_SHORT.get(x, x).lower()}_png"


def pareto_figure(analysis: RunAnalysis, x: str | None = None) -> bytes:
    """AUC-vs-``x`` scatter with the front, as PNG bytes.

    Args:
        analysis: the run's analysis.
        x: the column on the x-axis (default the first non-AUC objective, FLOPs in a default
            run). With more than two objectives the plot is a 2-D projection: the highlighted
            members are the front over all objectives, so some look dominated here (they are
            better in an objective not shown).
    """
    from matplotlib.figure import Figure

    x = x or projections(analysis)[0]
    full = len(analysis.objectives) > 2 or x not in {o.column for o in analysis.objectives}
    trials = analysis.run.trials
    fig = Figure(figsize=(8, 5.5))
    ax = fig.add_subplot()
    good = trials[analysis.eligible]
    ax.scatter(good[x], good["auc"], s=14, color="0.65", label="trials (each seed)")
    stopped = trials[(trials["status"] == "STOPPED") & trials["auc"].notna()]
    if len(stopped) and x in stopped:
        ax.scatter(
            stopped[x],
            stopped["auc"],
            s=18,
            marker="x",
            color="0.75",
            label="stopped early (not eligible)",
        )
    front = analysis.front.sort_values(x)
    low = (front["auc"] - front["auc_ci_low"]).clip(lower=0).fillna(0)
    high = (front["auc_ci_high"] - front["auc"]).clip(lower=0).fillna(0)
    names = ", ".join(_SHORT.get(o.column, o.column) for o in analysis.objectives)
    if full:
        label = f"Pareto front over {names} ({len(analysis.objectives)}-D; mean over seeds, "
    else:
        ax.step(front[x], front["auc"], where="post", color="tab:blue", lw=1, alpha=0.6)
        label = "Pareto front (mean over seeds, "
    ax.errorbar(
        front[x],
        front["auc"],
        yerr=[low, high],
        fmt="o",
        color="tab:blue",
        ms=6,
        capsize=3,
        label=label + f"{analysis.level:.0%} CI)",
    )
    marks = (
        (analysis.baseline, "s", "black", "baseline (no MD-Conv)"),
        (analysis.paper, "D", "tab:red", "paper (stage5 3x3+5x5 1:1)"),
    )
    for arch, marker, color, label in marks:
        if arch and arch in analysis.archs.index:
            row = analysis.archs.loc[arch]
            ax.scatter(
                [row[x]],
                [row["auc"]],
                s=110,
                marker=marker,
                facecolors="none",
                edgecolors=color,
                linewidths=1.8,
                label=label,
                zorder=5,
            )
        elif arch:
            ax.scatter(
                [],
                [],
                marker=marker,
                facecolors="none",
                edgecolors=color,
                label=label + ": not evaluated",
            )
    knee = analysis.front.loc[analysis.knee]
    ax.annotate(
        f"knee {knee['arch_id']}",
        (knee[x], knee["auc"]),
        xytext=(12, -18),
        textcoords="offset points",
        arrowprops={"arrowstyle": "->", "color": "0.3"},
        fontsize=8,
    )
    xlabel, ylabel = _axis_labels(analysis, x)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    title = f"Run {analysis.run.name}: AUC vs {_SHORT.get(x, x)}"
    if full:
        title += f" (projection of the {len(analysis.objectives)}-D front)"
    ax.set_title(title + (" [SYNTHETIC DATA]" if analysis.run.synthetic else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def hypervolume_figure(analysis: RunAnalysis) -> bytes:
    """Hypervolume of the front after each trial, as PNG bytes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.5))
    ax = fig.add_subplot()
    hist = analysis.history
    ax.step(hist["trial"], hist["hypervolume"], where="post", color="tab:green")
    ax.set_xlabel("trial number")
    units = " x ".join(o.column for o in analysis.objectives)
    ax.set_ylabel(f"hypervolume ({units})")
    ax.set_title(f"Hypervolume vs reference ({_reference_text(analysis)})", fontsize=9)
    ax.grid(alpha=0.3)
    return _png(fig)


def stage_figure(analysis: RunAnalysis) -> bytes:
    """Share of front / all evaluated architectures with MD-Conv per stage, as PNG bytes."""
    from matplotlib.figure import Figure

    share = analysis.stage_share
    fig = Figure(figsize=(7, 3.5))
    ax = fig.add_subplot()
    x = np.arange(len(share))
    ax.bar(x - 0.2, share["front_share"], 0.4, label=f"on the front ({len(analysis.front)})")
    ax.bar(
        x + 0.2,
        share["all_share"],
        0.4,
        color="0.6",
        label=f"all evaluated ({len(analysis.archs)})",
    )
    ax.set_xticks(x, list(share.index))
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share with MD-Conv in the stage")
    ax.set_title("Where MD-Conv pays off", fontsize=9)
    ax.legend(fontsize=8)
    return _png(fig)


# -- documents ------------------------------------------------------------------------------
def _settings(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    def walk(prefix: str, value: Any) -> list[tuple[str, str]]:
        if isinstance(value, Mapping):
            out = []
            for key, sub in value.items():
                out.extend(walk(f"{prefix}.{key}" if prefix else str(key), sub))
            return out
        if isinstance(value, (list, tuple)):
            return [(prefix, ", ".join(str(v) for v in value))]
        return [(prefix, str(value))]

    rows = walk("", dict(config))
    entries = [r for r in rows if r[0].startswith("latency.table.")]
    if entries:  # the table's times are in config.json; one line here is enough
        rows = [r for r in rows if not r[0].startswith("latency.table.")]
        rows.append(("latency.table", f"{len(entries)} entries (times in config.json)"))
    return rows


def _methods_text(analysis: RunAnalysis) -> list[str]:
    objectives = ", ".join(f"{o.column} ({o.direction})" for o in analysis.objectives)
    k = len(analysis.objectives)
    lines = [
        f"Objectives: {objectives}; the front is computed in all {k} at once. Eligible for the "
        "front: trials with status COMPLETE that reached the proxy's epochs; repeated seeds of "
        "one architecture are pooled (mean).",
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
    info = _latency_info(analysis)
    if info:
        lines.append(
            f"Latency: {info.get('unit', 'ms per image')}; {info.get('input_size')}x"
            f"{info.get('input_size')}, batch {info.get('batch_size')}, {info.get('threads')} "
            f"thread(s), {info.get('device')} [{info.get('device_name', '')}]; table "
            f"{info.get('path') or '(in config.json)'}."
        )
    if analysis.n_resamples:
        lines.append(
            f"AUC intervals: {analysis.level:.0%} percentile bootstrap, {analysis.n_resamples} "
            "resamples of the validation images (labels with one class in a resample skipped), "
            "seeds resampled too when an architecture has several. Differences ('vs cheaper': "
            "the next cheaper front member; 'vs baseline') are paired on the same images when "
            "the predictions share a split; 'distinct' = the interval excludes 0."
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


def _errors_table(analysis: RunAnalysis) -> pd.DataFrame | None:
    trials = analysis.run.trials
    failed = trials[trials["status"] == "FAILED"]
    if failed.empty or "error" not in failed:
        return None
    errors = failed["error"].replace("", "(no message)").str.slice(0, 160)
    counts = errors.value_counts()
    return pd.DataFrame({"error": counts.index, "trials": counts.to_numpy()})


def _markdown(analysis: RunAnalysis, files: Mapping[str, Path]) -> str:
    run = analysis.run
    out = [f"# mdsearch report: {run.name}", ""]
    if run.synthetic:
        out += [f"> **{_SYNTHETIC_NOTICE}**", ""]
    out += ["## Trials", "", _markdown_table(_counts_table(analysis)), ""]
    errors = _errors_table(analysis)
    if errors is not None:
        out += ["Failures:", "", _markdown_table(errors), ""]
    out += ["## Pareto front", "", _markdown_table(pareto_table(analysis)), ""]
    for x in projections(analysis):
        out += [f"![AUC vs {_SHORT.get(x, x)}]({files[_projection_key(analysis, x)].name})", ""]
    out += [f"- {line}" for line in _methods_text(analysis)] + [""]
    out += [
        "## Hypervolume over trials",
        "",
        f"![hypervolume]({files['hypervolume_png'].name})",
        "",
    ]
    out += [
        "## Where MD-Conv sits: front vs all evaluated",
        "",
        _markdown_table(_stage_table(analysis)),
        "",
        f"![MD-Conv stages]({files['stages_png'].name})",
        "",
    ]
    out += [
        "## Per-label validation AUC of the front (mean over seeds)",
        "",
        _markdown_table(_label_table(analysis)),
        "",
    ]
    fidelity = format_fidelity_markdown(run.path)
    if fidelity:
        out += [fidelity, ""]
    if analysis.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in analysis.notes] + [""]
    settings = pd.DataFrame(_settings(run.config), columns=["setting", "value"])
    out += ["## Settings and data", "", _markdown_table(settings), ""]
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.2em;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left}
th{background:#f3f3f3} td{font-variant-numeric:tabular-nums}
.synthetic{border:3px solid #c00;background:#fee;padding:.8em 1em;font-weight:bold;color:#900}
img{max-width:100%} code{font-size:.9em} .methods li{margin:.2em 0}
"""


def _html_table(table: pd.DataFrame) -> str:
    return table.to_html(index=False, escape=True, border=0, na_rep="-")


def _img(data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _html(analysis: RunAnalysis, pngs: Mapping[str, bytes]) -> str:
    run = analysis.run
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>mdsearch report: {esc(run.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>mdsearch report: {esc(run.name)}</h1>",
    ]
    if run.synthetic:
        parts.append(f'<p class="synthetic">{esc(_SYNTHETIC_NOTICE)}</p>')
    parts += ["<h2>Trials</h2>", _html_table(_counts_table(analysis))]
    errors = _errors_table(analysis)
    if errors is not None:
        parts += ["<p>Failures:</p>", _html_table(errors)]
    parts += ["<h2>Pareto front</h2>", _html_table(pareto_table(analysis))]
    for x in projections(analysis):
        alt = f"AUC vs {_SHORT.get(x, x)} with the Pareto front"
        parts.append(_img(pngs[_projection_key(analysis, x)], alt))
    parts.append('<ul class="methods">')
    parts += [f"<li>{esc(line)}</li>" for line in _methods_text(analysis)]
    parts.append("</ul>")
    parts += ["<h2>Hypervolume over trials</h2>", _img(pngs["hypervolume_png"], "hypervolume")]
    parts += [
        "<h2>Where MD-Conv sits: front vs all evaluated</h2>",
        _html_table(_stage_table(analysis)),
        _img(pngs["stages_png"], "MD-Conv stages"),
    ]
    parts += [
        "<h2>Per-label validation AUC of the front (mean over seeds)</h2>",
        _html_table(_label_table(analysis).round(3)),
    ]
    fidelity = format_fidelity_html(run.path)
    if fidelity:
        parts.append(fidelity)
    if analysis.notes:
        parts += ["<h2>Notes</h2>", "<ul>"] + [f"<li>{esc(n)}</li>" for n in analysis.notes]
        parts.append("</ul>")
    settings = pd.DataFrame(_settings(run.config), columns=["setting", "value"])
    parts += ["<h2>Settings and data</h2>", _html_table(settings), "</body></html>"]
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
        ``hypervolume_png``, ``stages_png``, and for each further cost objective
        ``pareto_<name>_png`` (``pareto_latency_png``: pareto_latency.png).

    Raises:
        ResultsError: the run folder or trial table is missing or empty, or no trial finished
            the proxy (the message says why).

    Example:
        >>> paths = write_report("runs/demo")  # doctest: +SKIP
        >>> paths["html"].name  # doctest: +SKIP
        'report.html'
    """
    analysis = analyse_run(run_dir, **kwargs)
    out = Path(out_dir) if out_dir is not None else analysis.run.path
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "html": out / "report.html",
        "markdown": out / "report.md",
        "pareto_png": out / "pareto.png",
        "pareto_csv": out / "pareto.csv",
        "hypervolume_png": out / "hypervolume.png",
        "stages_png": out / "mdconv_stages.png",
    }
    for x in projections(analysis)[1:]:
        key = _projection_key(analysis, x)
        files[key] = out / f"{key[: -len('_png')]}.png"
    pngs = {
        **{_projection_key(analysis, x): pareto_figure(analysis, x) for x in projections(analysis)},
        "hypervolume_png": hypervolume_figure(analysis),
        "stages_png": stage_figure(analysis),
    }
    for key, data in pngs.items():
        files[key].write_bytes(data)
    pareto_csv_table(analysis).to_csv(files["pareto_csv"], index=False)
    files["markdown"].write_text(_markdown(analysis, files), encoding="utf-8")
    files["html"].write_text(_html(analysis, pngs), encoding="utf-8")
    return files
