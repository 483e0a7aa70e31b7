"""The report's tables of a run's analysis, as display tables (strings, cheapest first).

Each takes a :class:`~mdsearch.results.analysis.RunAnalysis` (or the run's config) and returns a
pandas DataFrame whose columns are the headers a reader sees; the report's sections
(:mod:`mdsearch.results.report_sections`) place them, the renderers
(:mod:`mdsearch.results.report_markup`) draw them. :func:`pareto_csv_table` is the front as
numbers (``pareto.csv``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .analysis import RunAnalysis
from .confirmation import evidence

__all__ = [
    "arch_table",
    "counts_table",
    "effects_table",
    "errors_table",
    "label_table",
    "pareto_csv_table",
    "pareto_table",
    "reference_table",
    "settings_table",
    "stage_table",
]


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


def _arch_tags(analysis: RunAnalysis, arch: str) -> str:
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
            "": _arch_tags(analysis, arch),
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


def arch_table(analysis: RunAnalysis) -> pd.DataFrame:
    """Arch id -> canonical string of each front member (the wide column of the front table,
    kept apart so the front table fits a browser window)."""
    front = analysis.front
    return pd.DataFrame(
        {
            "arch id": front["arch_id"].to_numpy(),
            "": [_arch_tags(analysis, a) for a in front.index],
            "architecture (canonical string, `mdsearch.mdconv.build` takes it)": front.index,
        }
    )


def reference_table(analysis: RunAnalysis) -> pd.DataFrame | None:
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


def effects_table(analysis: RunAnalysis) -> pd.DataFrame | None:
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


def label_table(analysis: RunAnalysis) -> pd.DataFrame:
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
        tags = _arch_tags(analysis, arch)
        header = f"{row['arch_id']} ({tags})" if tags else row["arch_id"]
        table[header] = [
            f"{row['auc__' + n]:.3f}" if pd.notna(row["auc__" + n]) else "-" for n in labels
        ]
    return table


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


def stage_table(analysis: RunAnalysis) -> pd.DataFrame:
    """Per stage: how many front members and how many evaluated architectures carry MD-Conv
    there (count and share), with the stage's map side at the proxy resolution when known."""
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


def counts_table(analysis: RunAnalysis) -> pd.DataFrame:
    """The run's trials by outcome, its architectures and the front's size, as one row."""
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


def errors_table(analysis: RunAnalysis) -> pd.DataFrame | None:
    """The failed trials' errors (first 160 characters) with how many trials each ended; None
    when no trial failed."""
    trials = analysis.run.trials
    failed = trials[trials["status"] == "FAILED"]
    if failed.empty or "error" not in failed:
        return None
    errors = failed["error"].replace("", "(no message)").str.slice(0, 160)
    counts = errors.value_counts()
    return pd.DataFrame({"error": counts.index, "trials": counts.to_numpy()})


def settings_table(config: Mapping[str, Any]) -> pd.DataFrame:
    """A run's config.json as a two-column table (``setting``, ``value``), nested keys joined
    with dots, a typed setting equal to its resolved value listed once, the latency table's
    entries counted rather than listed."""

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
    # config.json keeps the settings as typed (``settings.*``) and the resolved blocks the run
    # used (``proxy.*``, ``objectives``, ``seed``...): a setting equal to its resolved value is
    # listed once.
    resolved = {key: value for key, value in rows if not key.startswith("settings.")}
    rows = [
        (key, value)
        for key, value in rows
        if not (key.startswith("settings.") and resolved.get(key[len("settings.") :]) == value)
    ]
    entries = [r for r in rows if r[0].startswith("latency.table.")]
    if entries:  # the table's times are in config.json; one line here is enough
        rows = [r for r in rows if not r[0].startswith("latency.table.")]
        rows.append(("latency.table", f"{len(entries)} entries (times in config.json)"))
    return pd.DataFrame(rows, columns=["setting", "value"])
