"""The report's plots, drawn with matplotlib's Agg canvas (no display, no pyplot state) and
returned as PNG bytes: AUC against each cost objective with the Pareto front, the hypervolume
after each trial, and where MD-Conv sits on the front; for a supernet run, the supernet's score
against stand-alone AUC (:func:`supernet_figure`, ``supernet.png``).

:func:`report_figures` draws the report's plots as :class:`~mdsearch.results.document.Figure`
blocks (PNG bytes, file name, alt text), keyed like the files :func:`~mdsearch.results.report.
write_report` writes (``pareto_png``, ``pareto_latency_png``, ``hypervolume_png``,
``stages_png``, ``effects_png``).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .analysis import RunAnalysis
from .document import Figure as FigureBlock  # matplotlib's Figure draws, this one is shown

if TYPE_CHECKING:
    from .supernet_analysis import SupernetAnalysis

__all__ = [
    "effects_figure",
    "hypervolume_figure",
    "pareto_figure",
    "projection_key",
    "projections",
    "report_figures",
    "short_name",
    "stage_figure",
    "supernet_figure",
]


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
        info = analysis.latency_info
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


def short_name(column: str) -> str:
    """How plot titles and legends name an objective column (``latency_ms`` -> ``latency``).

    Example:
        >>> short_name("flops_m"), short_name("energy_mj")
        ('FLOPs', 'energy_mj')
    """
    return _SHORT.get(column, column)


def projections(analysis: RunAnalysis) -> list[str]:
    """The x columns of the report's scatter plots: every objective other than AUC, in order
    (one plot for 2 objectives; for 3, e.g. AUC vs FLOPs and AUC vs latency)."""
    xs = [o.column for o in analysis.objectives if o.column != "auc"]
    return xs or ["flops_m"]


def projection_key(analysis: RunAnalysis, x: str) -> str:
    """Report file key of the plot against ``x``: ``pareto_png`` for the first projection,
    ``pareto_<name>_png`` (``pareto_latency_png``) for the others."""
    if x == projections(analysis)[0]:
        return "pareto_png"
    return f"pareto_{short_name(x).lower()}_png"


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
    names = ", ".join(short_name(o.column) for o in analysis.objectives)
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
    title = f"Run {analysis.run.name}: AUC vs {short_name(x)}"
    if full:
        title += f" (projection of the {len(analysis.objectives)}-D front)"
    ax.set_title(title + (" [SYNTHETIC DATA]" if analysis.run.synthetic else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def hypervolume_figure(analysis: RunAnalysis) -> bytes:
    """Hypervolume of the front after each trial, on the estimates as of that trial (each
    architecture's mean over its seeds so far), as PNG bytes. Trials where it fell (a further
    seed lowered a front member's mean) are marked; when the report's front ranks on shrunk
    estimates, its hypervolume is drawn as a dashed line."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.5))
    ax = fig.add_subplot()
    hist = analysis.history
    ax.step(
        hist["trial"],
        hist["hypervolume"],
        where="post",
        color="tab:green",
        label="front after each trial (mean over the seeds so far)",
    )
    fell = hist[hist["fell"]]
    if len(fell):
        ax.scatter(
            fell["trial"],
            fell["hypervolume"],
            marker="v",
            color="tab:red",
            zorder=5,
            label="fell: a further seed lowered a front member's mean",
        )
    if "auc_mean" in analysis.archs:
        ax.axhline(
            analysis.hypervolume,
            color="0.4",
            ls="--",
            lw=1,
            label="the report's front (shrunk estimates)",
        )
    ax.set_xlabel("trial number")
    units = " x ".join(o.column for o in analysis.objectives)
    ax.set_ylabel(f"hypervolume ({units})")
    ax.set_title(f"Hypervolume vs reference ({analysis.reference_text})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
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
    warned = analysis.resolution_warnings
    ax.set_xticks(x, [f"stage{i} (!)" if i in warned else f"stage{i}" for i in range(len(share))])
    if warned:
        ax.set_xlabel("(!): the proxy resolution cannot rank this stage's choices", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share with MD-Conv in the stage")
    ax.set_title("Where MD-Conv pays off", fontsize=9)
    ax.legend(fontsize=8)
    return _png(fig)


def effects_figure(analysis: RunAnalysis) -> bytes:
    """Stage effects with their intervals (a forest plot), as PNG bytes; an empty note when
    the model was not fitted."""
    from matplotlib.figure import Figure

    model = analysis.stage_model
    table = model.table() if model is not None else pd.DataFrame()
    fig = Figure(figsize=(7, 0.9 + 0.28 * max(len(table), 1)))
    ax = fig.add_subplot()
    if table.empty:
        ax.text(0.5, 0.5, "stage effects not fitted", ha="center", va="center")
        ax.set_axis_off()
        return _png(fig)
    y = np.arange(len(table))[::-1]
    err = [table["effect"] - table["low"], table["high"] - table["effect"]]
    ax.errorbar(table["effect"], y, xerr=err, fmt="o", color="C0", capsize=3)
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_yticks(y, [f"stage {k}: {c}" for k, c in zip(table["stage"], table["choice"])])
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel(f"AUC difference to the backbone's own kernel ({model.level:.0%} interval)")
    ax.set_title("Where MD-Conv pays off: additive effects over every trial", fontsize=9)
    fig.tight_layout()
    return _png(fig)


def report_figures(analysis: RunAnalysis) -> dict[str, FigureBlock]:
    """Every plot of the report, by file key: ``pareto_png`` (``pareto.png``, AUC against the
    first cost objective), ``pareto_<name>_png`` (``pareto_latency.png``...) for each further
    one, ``hypervolume_png``, ``stages_png`` (``mdconv_stages.png``) and ``effects_png``
    (``stage_effects.png``)."""
    figures = {}
    for x in projections(analysis):
        key = projection_key(analysis, x)
        name = "pareto.png" if key == "pareto_png" else f"{key[: -len('_png')]}.png"
        figures[key] = FigureBlock(name, pareto_figure(analysis, x), f"AUC vs {short_name(x)}")
    return figures | {
        "hypervolume_png": FigureBlock(
            "hypervolume.png", hypervolume_figure(analysis), "hypervolume"
        ),
        "stages_png": FigureBlock("mdconv_stages.png", stage_figure(analysis), "MD-Conv stages"),
        "effects_png": FigureBlock("stage_effects.png", effects_figure(analysis), "stage effects"),
    }


def supernet_figure(supernet: SupernetAnalysis) -> FigureBlock:
    """Supernet score (x) against stand-alone mean AUC (y) for the architectures a supernet run
    trained both ways (``supernet.png``); the title gives Kendall's tau (or says there are too
    few)."""
    from matplotlib.figure import Figure

    run = supernet.run
    both = supernet.both
    fig = Figure(figsize=(6.5, 5))
    ax = fig.add_subplot()
    epochs = supernet.epochs
    trained = f"{epochs:g}-epoch supernet, " if epochs is not None else ""
    ax.set_xlabel(
        f"supernet score (validation AUC of the sub-network; {trained}BatchNorm recalibrated)",
        fontsize=9,
    )
    proxy = run.config.get("proxy") or {}
    detail = []
    if proxy.get("epochs") is not None:
        detail.append(f"{float(proxy['epochs']):g} epoch" + "s" * (float(proxy["epochs"]) != 1))
    if proxy.get("resolution"):
        detail.append(f"at {proxy['resolution']}x{proxy['resolution']}")
    ax.set_ylabel(
        "stand-alone validation AUC, mean over seeds"
        + (f" (proxy: {' '.join(detail)})" if detail else ""),
        fontsize=9,
    )
    if both.empty:
        ax.text(
            0.5, 0.5, "no architecture trained both ways yet", ha="center", va="center",
            transform=ax.transAxes,
        )  # fmt: skip
    else:
        seeds = both["standalone_seeds"].to_numpy()
        ax.scatter(both["score"], both["standalone_auc"], s=18 + 12 * seeds, color="tab:blue",
                   alpha=0.8, label="architecture (marker size: stand-alone seeds)")  # fmt: skip
        if len(both) <= 20:
            for _, row in both.iterrows():
                ax.annotate(row["arch_id"][:8], (row["score"], row["standalone_auc"]),
                            xytext=(4, 3), textcoords="offset points", fontsize=7)  # fmt: skip
        ax.legend(fontsize=8, loc="best")
    title = f"Run {run.name}: supernet vs stand-alone ({supernet.agreement.text()})"
    if run.synthetic:
        title += " [SYNTHETIC DATA]"
    ax.set_title(title, fontsize=8, wrap=True)
    ax.grid(alpha=0.3)
    return FigureBlock("supernet.png", _png(fig), "supernet score vs stand-alone AUC")
