"""Proxy fidelity: what ``mdsearch proxy-check`` measured, for the report and the terminal.

``mdsearch proxy-check`` writes ``proxy_check.json`` (:data:`PROXY_CHECK_FILE`: the trainings of
:mod:`mdsearch.search.proxy_check`, the figures of :mod:`.proxy_fidelity`) into a run folder
(``--run``) or its own folder. This module reads it (plain JSON; no torch, no Ray) and
renders it: :func:`format_fidelity_markdown`, :func:`format_fidelity_html` and the terminal's
:func:`format_fidelity_table`; a check made with ``--supernet`` adds the supernet's scores (a
column of the architecture table), its tau beside the short proxies' and one line with its cost
(:func:`supernet_line`). :func:`proxy_seed_std` and :func:`lead_within_seed_noise` give the
report a second noise figure next to the paired bootstrap: the seed-to-seed std of the proxy's
AUC, which one run's validation bootstrap cannot see.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdsearch.search.proxy_check import PROXY_CHECK_FILE, PROXY_CHECK_SCHEMA

from .errors import ResultsError
from .seed_noise import SeedNoise, pooled_seed_noise

__all__ = [
    "PROXY_CHECK_FILE",
    "format_fidelity_html",
    "format_fidelity_markdown",
    "format_fidelity_table",
    "lead_within_seed_noise",
    "load_proxy_check",
    "proxy_check_seed_noise",
    "proxy_seed_std",
    "supernet_line",
]

# Any version of the proxy-check schema (the part before the version number).
_SCHEMA_PREFIX = PROXY_CHECK_SCHEMA.rsplit("/", 1)[0] + "/"

Source = str | Path | Mapping[str, Any]


def load_proxy_check(source: Source) -> dict[str, Any] | None:
    """A proxy-check result from a run folder, a ``proxy_check.json`` path, or the dict itself.

    Returns:
        The result dict; None when ``source`` is a folder without ``proxy_check.json``.

    Raises:
        ResultsError: the file is not a proxy-check result (unreadable, not JSON, other schema).
    """
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    if path.is_dir():
        path = path / PROXY_CHECK_FILE
        if not path.is_file():
            return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: not a readable proxy-check result ({exc})") from None
    if not str(data.get("schema", "")).startswith(_SCHEMA_PREFIX):
        raise ResultsError(f"{path}: not a proxy-check result; rerun mdsearch proxy-check")
    return data


def proxy_seed_std(source: Source, epochs: int | None = None) -> float | None:
    """Seed-to-seed std of one run's validation AUC at a proxy length, as proxy-check measured.

    Args:
        source: run folder, ``proxy_check.json`` path or result dict.
        epochs: proxy length (default: the run's proxy epochs when the check was made with
            ``--run``, else its shortest setting).

    Returns:
        The pooled std (AUC units); None when there is no check, the check did not measure that
        length, or it had one seed.
    """
    data = load_proxy_check(source)
    if data is None:
        return None
    key = _run_setting(data, epochs)
    if key is None:
        return None
    value = data["settings"][key].get("seed_std")
    return float(value) if value is not None and math.isfinite(value) else None


def proxy_check_seed_noise(source: Source, epochs: int | None = None) -> SeedNoise:
    """The seed noise a proxy-check measured at a proxy length, with its degrees of freedom
    (K architectures x S seeds: K (S - 1)), to pool with a run's own repeats.

    Args:
        source: run folder, ``proxy_check.json`` path or result dict.
        epochs: proxy length (default as :func:`proxy_seed_std`).

    Returns:
        The estimate; unknown when there is no check, it did not measure that length, or it
        had one seed.
    """
    data = load_proxy_check(source)
    key = None if data is None else _run_setting(data, epochs)
    if key is None or key not in data.get("auc", {}):
        return SeedNoise()
    auc = np.array(
        [[np.nan if v is None else v for v in row] for row in data["auc"][key]], dtype=float
    )
    noise = pooled_seed_noise(auc.ravel(), np.repeat(np.arange(auc.shape[0]), auc.shape[1]))
    if not noise.known:
        return noise
    where = f"proxy-check, {auc.shape[0]} archs x {auc.shape[1]} seeds at {key} epochs"
    return SeedNoise(noise.sum_squares, noise.df, (where,))


def _run_setting(data: Mapping[str, Any], epochs: int | None) -> str | None:
    rows = data["settings"]
    if epochs is None:
        epochs = data.get("parameters", {}).get("run_proxy_epochs")
    if epochs is not None:
        return str(epochs) if str(epochs) in rows else None
    return min(rows, key=int)


def lead_within_seed_noise(
    lead: float,
    source: Source,
    *,
    n_seeds: int = 1,
    n_baseline_seeds: int = 1,
    z: float = 1.96,
    epochs: int | None = None,
) -> bool | None:
    """Whether an AUC lead over the baseline is within the proxy's seed noise.

    The lead of one architecture's mean over ``n_seeds`` runs against the baseline's mean over
    ``n_baseline_seeds`` runs has a seed std of ``sd * sqrt(1/n_seeds + 1/n_baseline_seeds)``;
    the lead is within noise when ``|lead|`` is less than ``z`` times that (1.96: two-sided 95%
    under a normal approximation).

    Args:
        lead: mean AUC of the architecture minus the baseline's.
        source: run folder, ``proxy_check.json`` path or result dict.
        n_seeds, n_baseline_seeds: runs behind each mean.
        z: multiple of the std that counts as noise.
        epochs: proxy length (see :func:`proxy_seed_std`).

    Returns:
        True/False; None when there is no seed-noise figure.

    Example:
        >>> check = {"schema": "mdsearch.proxy_check/1", "settings": {"2": {"seed_std": 0.01}}}
        >>> lead_within_seed_noise(0.02, check), lead_within_seed_noise(0.04, check)
        (True, False)
    """
    sd = proxy_seed_std(source, epochs)
    if sd is None:
        return None
    return bool(abs(lead) < z * sd * math.sqrt(1 / n_seeds + 1 / n_baseline_seeds))


# -- rendering ------------------------------------------------------------------------------


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


def supernet_line(source: Source) -> str | None:
    """One line on the supernet of a check made with ``--supernet`` (None: no supernet):
    ``supernet (8 epochs, cost 16 stand-alone proxy trials of 2 epochs): tau +0.33 [-0.33,
    +1.00] vs the 8-epoch ranking; trained in 412 s, 1.3 s per architecture scored``.

    Args:
        source: run folder, ``proxy_check.json`` path or result dict.
    """
    data = load_proxy_check(source)
    found = None if data is None else _supernet(data)
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


def _markdown(table: Sequence[Sequence[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    head, *body = table
    lines = ["| " + " | ".join(cell(c) for c in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in body]
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


def format_fidelity_table(source: Source) -> str:
    """The proxy-check as plain text for the terminal: archs x settings (mean AUC ± seed std),
    the per-setting figures, and the recommendation or warnings."""
    data = _require(source)
    arch_table, summary = _tables(data)
    return "\n\n".join([_plain(arch_table), _plain(summary), "\n".join(_conclusion(data) or ["-"])])


def format_fidelity_markdown(source: Source) -> str | None:
    """A ``## Proxy fidelity`` Markdown section; None when a run folder has no proxy-check.

    Args:
        source: run folder, ``proxy_check.json`` path or result dict.
    """
    data = load_proxy_check(source)
    if data is None:
        return None
    arch_table, summary = _tables(data)
    return "\n\n".join(
        [
            "## Proxy fidelity (mdsearch proxy-check)",
            _setup_line(data),
            "Validation AUC, mean ± seed std:",
            _markdown(arch_table),
            _markdown(summary),
            "\n".join(f"- {line}" for line in _conclusion(data)) or "- no conclusion",
            _method_line(data),
        ]
    )


def format_fidelity_html(source: Source) -> str | None:
    """The same section as HTML (a ``<section>`` fragment); None when there is no check."""
    data = load_proxy_check(source)
    if data is None:
        return None

    def table(rows: Sequence[Sequence[str]]) -> str:
        head, *body = rows
        th = "".join(f"<th>{html.escape(c)}</th>" for c in head)
        trs = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body
        )
        return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"

    arch_table, summary = _tables(data)
    items = "".join(f"<li>{html.escape(line)}</li>" for line in _conclusion(data))
    return (
        '<section id="proxy-fidelity"><h2>Proxy fidelity (mdsearch proxy-check)</h2>'
        f"<p>{html.escape(_setup_line(data))}</p><p>Validation AUC, mean ± seed std:</p>"
        f"{table(arch_table)}{table(summary)}<ul>{items}</ul>"
        f"<p>{html.escape(_method_line(data))}</p></section>"
    )


def _require(source: Source) -> dict[str, Any]:
    data = load_proxy_check(source)
    if data is None:
        raise ResultsError(f"{source}: no {PROXY_CHECK_FILE}; run mdsearch proxy-check --run")
    return data
