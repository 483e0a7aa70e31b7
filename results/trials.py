"""Reading a run folder: its config, its trial table, and the per-architecture pooled table.

A run folder (written by ``mdsearch.search``) holds ``config.json``, ``trials.csv`` (one row per
finished trial, appended as trials end) and ``predictions/<trial>.npz`` (validation labels and
sigmoid scores). Only trials that finished the proxy (status ``COMPLETE`` and fidelity at least the
proxy's epochs) are eligible for the front; repeated seeds of one architecture are pooled into
one row whose metrics are the means over its seeds.

A supernet run (``mdsearch run --strategy supernet``) also holds rows whose ``proxy`` is
``supernet`` (sub-networks scored by the run's weight-sharing supernet) and ``supernet.json`` (its
training). :func:`load_run` keeps them apart: :attr:`LoadedRun.trials` holds the stand-alone rows
only, so the front and every analysis built on it never see a supernet score;
:attr:`LoadedRun.supernet_scores` and :attr:`LoadedRun.supernet` hold the rest
(:mod:`mdsearch.results.supernet_report` shows them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mdsearch.search.runfolder import CONFIG_FILE, PREDICTIONS_DIR, SUPERNET_RECORD, TABLE_FILE
from mdsearch.search.trial_table import (
    LABEL_PREFIX,
    REQUIRED_COLUMNS,
    empty_table,
    proxy_kind,
    read_trial_table,
    stage_list,
)
from mdsearch.search.trial_table import label_columns as _label_columns
from mdsearch.space import ArchSpec, ArchSpecError

from .errors import ResultsError

__all__ = [
    "LoadedRun",
    "load_run",
    "eligible_mask",
    "pool_by_arch",
    "label_columns",
    "ineligible_reason",
    "proxy_kind",
    "reference_archs",
]


@dataclass
class LoadedRun:
    """A run folder as read from disk: a snapshot for analysis (the search writes the folder
    through :class:`mdsearch.search.runfolder.RunFolder`).

    Attributes:
        path: the run folder.
        config: ``config.json`` as a dict (empty when the file is absent).
        trials: the stand-alone rows of ``trials.csv`` (every row of a run without a supernet),
            one per finished trial, sorted by trial number: what the front is built on
            (``mdconv_stages`` as tuples of ints).
        supernet_scores: the rows whose ``proxy`` is ``supernet`` (sub-networks scored by the
            run's weight-sharing supernet), in table order; empty when there are none.
        supernet: ``supernet.json`` as a dict (the supernet's training), or None when absent.
    """

    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    trials: pd.DataFrame = field(default_factory=pd.DataFrame)
    supernet_scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    supernet: dict[str, Any] | None = None

    @property
    def has_supernet(self) -> bool:
        """Whether the run trained a supernet or scored sub-networks with one."""
        return self.supernet is not None or not self.supernet_scores.empty

    @property
    def name(self) -> str:
        """The run's name (config ``name``, else the folder name)."""
        return str(self.config.get("name") or self.path.name)

    @property
    def label_names(self) -> list[str]:
        """Finding names, from the config or the ``auc__<label>`` columns."""
        names = (self.config.get("data") or {}).get("label_names")
        return (
            list(names) if names else [c[len(LABEL_PREFIX) :] for c in label_columns(self.trials)]
        )

    @property
    def input_size(self) -> int | None:
        """Input side (pixels) the FLOPs are counted at."""
        size = self.config.get("input_size")
        if size is None and "input_size" in self.trials and self.trials["input_size"].notna().any():
            size = self.trials["input_size"].dropna().iloc[0]
        return int(size) if size is not None else None

    @property
    def synthetic(self) -> bool:
        """Whether the run searched on generated (not real) images."""
        return bool((self.config.get("data") or {}).get("synthetic", False))

    def predictions_path(self, trial: int) -> Path | None:
        """The trial's saved validation predictions, or ``None`` when it has none on disk."""
        row = self.trials.loc[self.trials["trial"] == trial]
        rel = str(row["predictions"].iloc[0]) if len(row) and "predictions" in row else ""
        path = self.path / (rel or f"{PREDICTIONS_DIR}/{int(trial):05d}.npz")
        return path if path.is_file() else None


def load_run(run_dir: str | Path) -> LoadedRun:
    """Read a run folder's ``config.json``, ``trials.csv`` and, for a supernet run,
    ``supernet.json``.

    Stand-alone rows (``proxy`` empty, absent or ``standalone``) go to :attr:`LoadedRun.trials`,
    supernet rows to :attr:`LoadedRun.supernet_scores`; rows of any other kind are left out of
    both. A supernet run whose stand-alone phase has no row yet loads with an empty
    :attr:`LoadedRun.trials` (its columns kept), so its report can show the supernet.

    Args:
        run_dir: the run folder (``runs/<name>``).

    Raises:
        ResultsError: the folder does not exist, ``config.json`` or ``supernet.json`` is not
            valid JSON, or (for a run without a supernet) it has no ``trials.csv``, the table
            is empty or unreadable, or lacks a required column.

    Example:
        >>> run = load_run("runs/demo")  # doctest: +SKIP
        >>> run.trials[["trial", "arch", "auc", "flops_m"]].head()  # doctest: +SKIP
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise ResultsError(
            f"run folder {path} does not exist: give a folder made by `mdsearch run`"
        )
    config = _read_json(path / CONFIG_FILE) or {}
    supernet = _read_json(path / SUPERNET_RECORD)
    table_path = path / TABLE_FILE
    if not table_path.is_file():
        if supernet is not None:  # trained, no sub-network scored yet
            return LoadedRun(path, config, empty_table(), empty_table(), supernet)
        raise ResultsError(
            f"{path} has no {TABLE_FILE}: no trial has finished yet (or this is not a run folder)"
        )
    try:
        table = read_trial_table(table_path)
    except pd.errors.EmptyDataError:
        table = pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{table_path} cannot be read as CSV: {exc}") from None
    if table.empty and table.columns.empty:
        table = empty_table()
    if table.empty and supernet is None:
        raise ResultsError(f"{table_path} has no trials yet: wait for one to finish")
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ResultsError(f"{table_path} lacks column(s) {', '.join(missing)}")
    table["status"] = table["status"].astype(str).str.upper().str.strip()
    if "mdconv_stages" in table:  # "1 5" on disk (other writers: "1;5", "1, 5"), a tuple here
        table["mdconv_stages"] = [stage_list(v) for v in table["mdconv_stages"]]
    # A row without a trial number, architecture or status (e.g. cut off by a crash) is unusable.
    number = pd.to_numeric(table["trial"], errors="coerce")
    table = table[number.notna() & (table["arch"] != "") & (table["status"] != "")].copy()
    table["trial"] = number[table.index].astype(int)
    kind = proxy_kind(table)
    trials = table[kind == "standalone"]
    scores = table[kind == "supernet"].reset_index(drop=True)
    if trials.empty and scores.empty and supernet is None:
        raise ResultsError(f"{table_path} has no complete row (trial, arch and status)")
    trials = trials.sort_values("trial", kind="stable").reset_index(drop=True)
    return LoadedRun(path, config, trials, scores, supernet)


def _read_json(path: Path) -> dict[str, Any] | None:
    """A run folder's JSON file as a dict; None when absent."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path} is not a JSON object")
    return data


def label_columns(trials: pd.DataFrame) -> list[str]:
    """The per-label AUC columns (``auc__<label>``) in table order."""
    return _label_columns(trials.columns)


def eligible_mask(trials: pd.DataFrame, objectives: list[str] | tuple[str, ...] = ()) -> pd.Series:
    """Trials that may enter the front: COMPLETE, at the proxy's fidelity, objectives present.

    Args:
        trials: the trial table.
        objectives: objective columns that must be non-missing (e.g. ``("auc", "flops_m")``).
    """
    fidelity = pd.to_numeric(trials["fidelity"], errors="coerce")
    target = pd.to_numeric(trials["target_fidelity"], errors="coerce")
    ok = (trials["status"] == "COMPLETE") & (fidelity >= target - 1e-9)
    for col in objectives or ("auc", "flops_m"):
        ok &= pd.to_numeric(trials[col], errors="coerce").notna() if col in trials else False
    return ok.fillna(False).astype(bool)


def ineligible_reason(trials: pd.DataFrame, eligible: pd.Series) -> str:
    """One line saying why no trial is eligible, e.g. ``all 5 trials failed``."""
    n = len(trials)
    status = trials["status"]
    failed = int((status == "FAILED").sum())
    stopped = int((status == "STOPPED").sum())
    complete = int((status == "COMPLETE").sum())
    if failed == n:
        first = next((e for e in trials.get("error", pd.Series(dtype=str)) if e), "")
        return f"all {n} trials failed" + (f" (first error: {first})" if first else "")
    if stopped == n:
        return f"all {n} trials were stopped early by the scheduler before the proxy's epochs"
    parts = [f"{failed} failed"] if failed else []
    if stopped:
        parts.append(f"{stopped} stopped early")
    short = complete - int(eligible.sum())
    if short:
        parts.append(f"{short} complete but below the proxy's fidelity or without objectives")
    other = n - failed - stopped - complete
    if other:
        parts.append(f"{other} with another status")
    return f"of {n} trials " + ", ".join(parts)


def pool_by_arch(trials: pd.DataFrame, metric_columns: list[str]) -> pd.DataFrame:
    """One row per architecture, metrics averaged over its (eligible) seeds.

    Args:
        trials: eligible trials.
        metric_columns: numeric columns to average (objectives, per-label AUCs, train seconds).

    Returns:
        DataFrame indexed by ``arch`` with the means, ``arch_id``, ``seeds`` (number of trials),
        ``auc_seed_sd`` (SD over seeds, NaN for one seed), ``trials`` (tuple of trial numbers),
        ``first_trial``, and ``mdconv_stages`` (tuple of stage indices).
    """
    columns = [c for c in dict.fromkeys(metric_columns) if c in trials.columns]
    numeric = trials[columns].apply(pd.to_numeric, errors="coerce")
    grouped = numeric.groupby(trials["arch"], sort=False)
    pooled = grouped.mean()
    pooled["seeds"] = grouped.size()
    pooled["auc_seed_sd"] = grouped["auc"].std() if "auc" in columns else np.nan
    by_arch = trials.groupby("arch", sort=False)
    pooled["trials"] = by_arch["trial"].agg(lambda s: tuple(int(t) for t in s))
    pooled["first_trial"] = by_arch["trial"].min().astype(int)
    ids = by_arch["arch_id"].first() if "arch_id" in trials else None
    specs = {a: _spec(a) for a in pooled.index}  # each architecture parsed once
    pooled["arch_id"] = [
        ids[a] if ids is not None and ids[a] else (specs[a].arch_id if specs[a] else "")
        for a in pooled.index
    ]
    pooled["mdconv_stages"] = [specs[a].mdconv_stages if specs[a] else () for a in pooled.index]
    pooled.index.name = "arch"
    return pooled


def _spec(arch: str) -> ArchSpec | None:
    try:
        return ArchSpec.parse(arch)
    except ArchSpecError:
        return None


def reference_archs(run: LoadedRun) -> dict[str, str]:
    """Canonical strings of the baseline (no MD-Conv) and the paper's architecture for this run.

    The backbone and number of classes come from the table's architectures (else the config);
    the paper's architecture is the baseline with stage5 = (3, 5) 1:1 and is left out when the
    backbone cannot take it.

    Returns:
        ``{"baseline": ..., "paper": ...}`` (keys absent when unknown).
    """
    spec = None
    for arch in run.trials["arch"]:
        try:
            spec = ArchSpec.parse(arch)
            break
        except ArchSpecError:
            continue
    backbone = spec.backbone if spec else (run.config.get("space") or {}).get("backbone")
    classes = spec.num_classes if spec else len(run.label_names) or 14
    out: dict[str, str] = {}
    if not backbone:
        return out
    try:
        base = ArchSpec.default(backbone, classes)
    except ArchSpecError:
        return out
    out["baseline"] = base.canonical
    try:
        out["paper"] = ArchSpec.paper(backbone, classes).canonical
    except ArchSpecError:
        pass
    return out
