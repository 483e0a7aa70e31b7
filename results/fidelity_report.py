"""Proxy fidelity presented: the report's section and the terminal's tables of what ``mdsearch
proxy-check`` measured (:func:`~mdsearch.results.fidelity.load_proxy_check` reads it).

:func:`fidelity_section` is the report's ``Proxy fidelity`` section (and, rendered by
:func:`format_fidelity_markdown`, ``proxy_check.md``); :func:`format_fidelity_table` is the
terminal's. A check made with ``--supernet`` adds the supernet's scores (a column of the
architecture table), its tau beside the short proxies' and one line with its cost
(:func:`supernet_line`). Everything here takes the check's data, none reads a file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .document import Bullets, Paragraph, Section, Table
from .report_markup import markdown_section

__all__ = [
    "fidelity_section",
    "format_fidelity_markdown",
    "format_fidelity_table",
    "supernet_line",
]


def _f(x: Any, digits: int = 3) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _arch_name(arch: Mapping[str, Any]) -> str:
    stages = arch.get("mdconv_stages") or []
    where = f"MD-Conv in stage {','.join(map(str, stages))}" if stages else "no MD-Conv"
    return f"{arch['label']} ({arch['id']}, {where})"


def _setting_name(row: Mapping[str, Any]) -> str:
    return f"{row['epochs']} ep" + (" (long)" if row["long"] else "")


def _tau_text(tau: Mapping[str, Any] | None, level: float) -> str:
    if not tau:
        return "-"
    ci = (
        f" [{_f(tau['low'], 2)}, {_f(tau['high'], 2)}]"
        if tau.get("low") is not None and math.isfinite(tau["low"])
        else " [CI n/a]"
    )
    return f"{_f(tau['tau'], 2)}{ci}"


def _supernet(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(the supernet block, its tau) of a check made with ``--supernet``; None otherwise."""
    info, tau = data.get("supernet"), data.get("supernet_tau")
    if not isinstance(info, Mapping) or not isinstance(tau, Mapping):
        return None
    return dict(info), dict(tau)


def _g(x: Any) -> str:
    return "?" if x is None or not math.isfinite(x) else f"{x:g}"


def _supernet_name(info: Mapping[str, Any]) -> str:
    cost = info.get("proxy_equivalents")
    trials = f", {_g(cost)} trials" if cost is not None else ""
    return f"supernet ({info.get('epochs', '?')} ep{trials})"


def supernet_line(data: Mapping[str, Any]) -> str | None:
    """One line on the supernet of a check made with ``--supernet`` (None: no supernet):
    ``supernet (8 epochs, cost 16 stand-alone proxy trials of 2 epochs): tau +0.33 [-0.33,
    +1.00] vs the 8-epoch ranking; trained in 412 s, 1.3 s per architecture scored``.

    Args:
        data: the proxy-check result (:func:`~mdsearch.results.fidelity.load_proxy_check`).
    """
    found = _supernet(data)
    if found is None:
        return None
    info, tau = found

    def signed(x: Any) -> str:
        return "n/a" if x is None or not math.isfinite(x) else f"{x:+.2f}"

    long = max(int(k) for k in data["settings"])
    ci = (
        f" [{signed(tau.get('low'))}, {signed(tau.get('high'))}]"
        if tau.get("low") is not None and math.isfinite(tau["low"])
        else " [CI n/a]"
    )
    per = f" of {info['proxy_epochs']} epochs" if info.get("proxy_epochs") is not None else ""
    return (
        f"supernet ({info.get('epochs', '?')} epochs, cost {_g(info.get('proxy_equivalents'))} "
        f"stand-alone proxy trials{per}): tau {signed(tau.get('tau'))}{ci} vs the {long}-epoch "
        f"ranking; trained in {_f(info.get('train_seconds'), 0)} s, "
        f"{_f(info.get('score_seconds'), 1)} s per architecture scored (BatchNorm "
        "recalibration + validation). Reported, not recommended from: its score ranks "
        "sub-networks of one shared training."
    )


def _tables(data: Mapping[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    """(archs x settings table, per-setting summary table) as rows of cells, header first;
    with a supernet, a column of its scores and a row of its figures."""
    rows = [data["settings"][k] for k in sorted(data["settings"], key=int)]
    archs = data["archs"]
    supernet = _supernet(data)
    scores = list((supernet[0].get("auc") or []) if supernet else [])
    arch_table = [
        [
            "architecture",
            "MFLOPs@448",
            *(_setting_name(r) for r in rows),
            *(["supernet score"] if supernet else []),
        ]
    ]
    for i, arch in enumerate(archs):
        cells = [_arch_name(arch), f"{arch['flops_m']:.0f}"]
        for r in rows:
            mean, std = r["mean"][i], r["std"][i]
            cells.append(f"{_f(mean)} ± {_f(std)}" if std is not None else _f(mean))
        if supernet:
            cells.append(_f(scores[i]) if i < len(scores) and scores[i] is not None else "-")
        arch_table.append(cells)
    level = data.get("parameters", {}).get("level", 0.95)
    summary = [
        [
            "setting",
            "seed std",
            "spread of arch means",
            f"Kendall tau vs long [{level:.0%} CI]",
            "tau per seed",
            "s per training",
        ]
    ]
    for r in rows:
        tau = r.get("tau")
        per_seed = ", ".join(_f(t, 2) for t in tau["per_seed"]) if tau else "-"
        summary.append(
            [
                _setting_name(r),
                _f(r["seed_std"], 4),
                _f(r["spread"], 4),
                _tau_text(tau, level) if tau else "(reference)",
                per_seed,
                _f(r.get("seconds"), 1),
            ]
        )
    if supernet:
        info, tau = supernet
        finite = np.array([x for x in scores if x is not None and math.isfinite(x)], dtype=float)
        spread = float(np.std(finite, ddof=1)) if len(finite) >= 2 else math.nan
        summary.append(
            [
                _supernet_name(info),
                "-",  # one training: no seed noise across its scores
                _f(spread, 4),
                _tau_text(tau, level),
                ", ".join(_f(t, 2) for t in tau.get("per_seed", [])) or "-",
                _f(info.get("train_seconds"), 1),
            ]
        )
    return arch_table, summary


def _plain(table: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[c]) for row in table) for c in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _conclusion(data: Mapping[str, Any]) -> list[str]:
    rec = data.get("recommended")
    threshold = data.get("threshold", 0.6)
    long = max(int(k) for k in data["settings"])
    if rec is not None:
        tau = data["settings"][str(rec)]["tau"]
        lines = [
            f"Recommended proxy: {rec} epochs (the cheapest whose ranking agrees with {long} "
            f"epochs: tau {_f(tau['tau'], 2)} >= {threshold:g})."
        ]
    else:
        lines = []
    supernet = supernet_line(data)
    if supernet:
        lines.append(supernet[0].upper() + supernet[1:])
    return lines + [f"Warning: {w}" for w in data.get("warnings", [])]


def _setup_line(data: Mapping[str, Any]) -> str:
    p = data.get("parameters", {})
    proxy = p.get("proxy", {})
    d = data.get("data", {})
    kind = " (synthetic)" if d.get("synthetic") else ""
    subset = proxy.get("train_subset") or "all"
    how = (
        "short AUCs read from the long runs' epochs (constant schedule)"
        if data.get("reused_long_runs")
        else "every setting trained separately (the schedule depends on the run's length)"
    )
    return (
        f"{len(data['archs'])} architectures x {len(data.get('seeds', []))} seeds on "
        f"{d.get('name', '?')}{kind}, space {data.get('space', {}).get('name', '?')}: "
        f"{proxy.get('resolution')} px, {subset} images per epoch, batch {proxy.get('batch_size')}, "
        f"lr {proxy.get('lr')}, {proxy.get('schedule')} schedule; {how}; "
        f"{data.get('trainings')} trainings in {_f(data.get('wall_seconds'), 0)} s."
    )


def _method_line(data: Mapping[str, Any]) -> str:
    p = data.get("parameters", {})
    over = {
        "seeds": "the seeds (the same draw for every architecture and setting)",
        "archs": "the architectures",
        "both": "the seeds and the architectures",
    }.get(p.get("ci_over", "seeds"), "the seeds")
    return (
        "Seed std: std of validation AUC over seeds (ddof=1), pooled over architectures as the "
        "root mean variance. Spread: std of the architectures' seed-mean AUCs. Kendall tau-b of "
        "the short vs the long ranking of seed-mean AUCs; its interval is a percentile bootstrap "
        f"over {over}, {p.get('n_resamples', 1000)} resamples."
    )


def format_fidelity_table(data: Mapping[str, Any]) -> str:
    """The proxy-check as plain text for the terminal: archs x settings (mean AUC ± seed std),
    the per-setting figures, and the recommendation or warnings.

    Args:
        data: the proxy-check result (:func:`~mdsearch.results.fidelity.load_proxy_check`).
    """
    arch_table, summary = _tables(data)
    return "\n\n".join([_plain(arch_table), _plain(summary), "\n".join(_conclusion(data) or ["-"])])


def fidelity_section(data: Mapping[str, Any]) -> Section:
    """The report's ``Proxy fidelity`` section of a proxy-check result: the setup, validation
    AUC per architecture and setting, the per-setting figures (seed std, spread, tau against the
    longest setting), the recommendation or warnings, and how the figures were computed.

    Args:
        data: the proxy-check result (:func:`~mdsearch.results.fidelity.load_proxy_check`).
    """
    arch_table, summary = _tables(data)
    return Section(
        "Proxy fidelity (mdsearch proxy-check)",
        (
            Paragraph(_setup_line(data)),
            Table(_frame(arch_table), "Validation AUC, mean ± seed std:", ("architecture",)),
            Table(_frame(summary)),
            Bullets(_conclusion(data) or ["no conclusion"]),
            Paragraph(_method_line(data)),
        ),
        anchor="proxy-fidelity",
    )


def format_fidelity_markdown(data: Mapping[str, Any]) -> str:
    """:func:`fidelity_section` as Markdown (what ``proxy_check.md`` holds).

    Args:
        data: the proxy-check result (:func:`~mdsearch.results.fidelity.load_proxy_check`).
    """
    return markdown_section(fidelity_section(data))


def _frame(rows: Sequence[Sequence[str]]) -> pd.DataFrame:
    """Rows of cells, header first, as a DataFrame."""
    head, *body = rows
    return pd.DataFrame(body, columns=head)
