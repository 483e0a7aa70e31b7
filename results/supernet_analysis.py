"""A supernet run's supernet: what it cost and how its ranking compares with stand-alone
training inside the same run (the statistics; :mod:`.supernet_report` presents them).

A supernet run (``mdsearch run --strategy supernet``) trains one supernet (``supernet.json``),
scores sub-networks with it (rows of ``trials.csv`` whose ``proxy`` is ``supernet``: BatchNorm
recalibrated, then validation AUC) and trains some architectures stand-alone; only the
stand-alone rows make the front (:func:`mdsearch.results.load_run` keeps the two apart).
:func:`analyse_supernet` gathers:

- the training: ``supernet.json`` as recorded (epochs, sandwich size, seconds, images/s, cost in
  stand-alone proxy trials, device);
- the scoring: sub-networks scored, median seconds per sub-network;
- the agreement inside the run: Kendall's tau-b between the supernet score and the stand-alone
  mean AUC over the architectures trained both ways, with a percentile bootstrap over those
  architectures (:func:`~mdsearch.results.proxy_fidelity.kendall_tau_ci`, ``over="archs"``),
  judged only from :data:`MIN_SHARED_ARCHS` architectures on;
- the supernet's own Pareto front (score against the run's cost objectives), each score with an
  interval over the validation images of its saved predictions
  (:class:`~mdsearch.results.uncertainty.PredictionBootstrap`, seed noise unknown: images only).

While the run has no stand-alone trial that finished the proxy, :func:`no_front_reason` says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .pareto import OBJECTIVES, Objective, minimisation_matrix, non_dominated, resolve_objectives
from .proxy_fidelity import kendall_tau_ci
from .trials import LoadedRun, eligible_mask, ineligible_reason, pool_by_arch
from .uncertainty import DEFAULT_RESAMPLES, PredictionBootstrap

__all__ = [
    "MIN_SHARED_ARCHS",
    "SupernetAgreement",
    "SupernetAnalysis",
    "analyse_supernet",
    "no_front_reason",
]

#: Architectures trained both ways below which the report does not judge the supernet's ranking
#: (tau-b over 4 architectures takes only 7 values, and its bootstrap is mostly ties).
MIN_SHARED_ARCHS = 5

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
class SupernetAnalysis:
    """What a supernet run's supernet cost and how its ranking compares with stand-alone training
    (see the module docstring).

    Attributes:
        run: the run folder as read.
        training: ``supernet.json`` (None: absent).
        archs: one row per architecture the supernet scored (index ``arch``): ``arch_id``,
            ``mdconv_stages``, ``score`` (mean supernet AUC over its scores), ``scores``
            (how many), ``score_sd`` (SD over them), ``trials`` (their trial numbers),
            ``score_low``/``score_high`` (interval over the validation images),
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


def _standalone_means(run: LoadedRun) -> pd.DataFrame:
    """Per architecture: mean AUC over its stand-alone trials that finished the proxy, seeds."""
    trials = run.trials
    if trials.empty:
        return pd.DataFrame({"auc": [], "seeds": []}, index=pd.Index([], name="arch"))
    return pool_by_arch(trials[eligible_mask(trials, ("auc",))], ["auc"])[["auc", "seeds"]]


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


def analyse_supernet(
    run: LoadedRun,
    *,
    objectives: Sequence[Any] | None = None,
    level: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> SupernetAnalysis | None:
    """The statistics of a run's supernet for its report; None when the run has no supernet.

    Args:
        run: the run folder as read (:func:`~mdsearch.results.load_run`).
        objectives: objective names (default: the run's, else AUC and FLOPs); the supernet's
            front uses those its rows fill.
        level: coverage of the intervals.
        n_resamples: bootstrap resamples of the score intervals and of tau's (0: none).
        seed: bootstrap seed.

    Example:
        >>> supernet = analyse_supernet(load_run("runs/sn"))  # doctest: +SKIP
        >>> supernet.agreement.text()  # doctest: +SKIP
        'Kendall tau-b +0.47 [-0.05, +0.86] over 9 architectures'
    """
    if not run.has_supernet:
        return None
    scores = run.supernet_scores
    objs = _front_objectives(scores, objectives or run.config.get("objectives") or ("auc", "flops"))
    columns = [o.column for o in objs]
    good = scores[eligible_mask(scores, columns)].reset_index(drop=True) if len(scores) else scores
    notes: list[str] = []
    # One row per scored architecture: mean score over its rows and their number (the pooling of
    # stand-alone seeds, with the score in place of the AUC).
    pooled = pool_by_arch(good, [*columns, "flops_m", "latency_ms"]).drop(columns="first_trial")
    archs = pooled.rename(columns={"auc": "score", "seeds": "scores", "auc_seed_sd": "score_sd"})
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
    return SupernetAnalysis(
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
