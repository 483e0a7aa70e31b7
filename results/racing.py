"""Confirmation that decides: which architecture gets the next seed, so that the run's verdict
(:mod:`mdsearch.results.verdict`) can settle the comparisons it reports without the bias of
having picked them.

The design is sample splitting (Cox, "A note on data-splitting for the evaluation of significance
levels", Biometrika 1975) run as a race against the baseline:

1. The candidates are fixed on the *exploration* trials only: the front of their raw means (AUC
   up, cost down), its knee first, then every other member that could still beat the baseline
   (its lead plus two paired-seed standard errors is above 0). Confirmation seeds never move an
   architecture into or out of the race, so they stay an independent sample of every candidate.
2. Seeds are common random numbers (repeat k of every architecture trains with the same seed):
   the baseline is kept one seed ahead of the candidate served next, so every candidate's seed
   has a baseline partner.
3. The next seed goes to the candidate with the fewest seeds, the knee first among equals
   (round-robin: each comparison reaches the seeds a claim needs before any gets more), until
   every candidate has ``max_seeds``; then the sampler explores again. The knee on all seeds so
   far joins the race when confirmation moves it to a member that was not a candidate (its own
   new seeds are still independent of why it was picked), so the report's knee is compared on
   seeds of its own.

The race does not stop a comparison when its interval excludes 0: stopping on the estimate would
make the confirmation seeds a biased sample (optional stopping), and ``benchmarks/bench_power.py``
measured that rule calling null effects real twice as often as stated. On the default run the
knee and the baseline reach 4 seeds each within the first 7 confirmation trials. Only
stand-alone rows count (a supernet run's scored sub-networks are neither seeds nor estimates).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .pareto import knee_index, non_dominated
from .verdict import pooled_paired_sd

__all__ = ["MAX_SEEDS", "race_candidates", "race_next"]

#: Seeds after which a candidate gets no more from the race.
MAX_SEEDS = 6


def race_next(
    table: pd.DataFrame,
    proposed: Mapping[str, int],
    *,
    baseline: str,
    cost: str = "flops_m",
    max_seeds: int = MAX_SEEDS,
) -> str | None:
    """The architecture that should get the next seed (see the module docstring).

    Args:
        table: finished stand-alone trials so far: ``arch``, ``seed``, ``auc``, the ``cost``
            column and ``phase`` (``explore`` / ``confirm``).
        proposed: canonical string -> trials proposed so far (running ones included).
        baseline: the baseline's canonical string.
        cost: the cost objective's column.
        max_seeds: seeds after which a candidate gets no more.

    Returns:
        A canonical string, or None when nothing is left to decide (the sampler explores).

    Example:
        >>> t = pd.DataFrame({"arch": ["base", "a"], "seed": [0, 0], "auc": [0.70, 0.74],
        ...                   "flops_m": [1.0, 2.0], "phase": "explore"})
        >>> race_next(t, {"base": 1, "a": 1}, baseline="base")  # the baseline first: a partner
        'base'
    """
    if table.empty:
        return None
    seeds = {
        a: max(int(proposed.get(a, 0)), int(n)) for a, n in table.groupby("arch").size().items()
    }
    explored = table[table["phase"] == "explore"] if "phase" in table else table
    candidates = race_candidates(explored, baseline=baseline, cost=cost)
    knee = _knee(table, cost)  # the knee as the report will show it, once all seeds are in
    if knee is not None and knee != baseline:
        candidates = [knee, *(a for a in candidates if a != knee)]
    if baseline not in seeds or not candidates:
        return None
    open_ = [a for a in candidates if seeds.get(a, 0) < max_seeds]
    if not open_:
        return None
    rank = {a: i for i, a in enumerate(candidates)}
    nxt = min(open_, key=lambda a: (seeds.get(a, 0), rank[a]))
    if seeds.get(baseline, 0) <= seeds.get(nxt, 0):
        return baseline
    return nxt


def _knee(table: pd.DataFrame, cost: str) -> str | None:
    archs = table.groupby("arch").agg(auc=("auc", "mean"), cost=(cost, "first"))
    points = np.column_stack([-archs["auc"].to_numpy(float), archs["cost"].to_numpy(float)])
    on_front = non_dominated(points)
    return str(archs.index[on_front][knee_index(points[on_front])]) if on_front.any() else None


def race_candidates(explored: pd.DataFrame, *, baseline: str, cost: str = "flops_m") -> list[str]:
    """The comparisons the confirmation phase races, from exploration trials only: the knee of
    the exploration front first, then the other members that could still beat the baseline."""
    if explored.empty or baseline not in set(explored["arch"]):
        return []
    archs = explored.groupby("arch").agg(
        auc=("auc", "mean"), cost=(cost, "first"), n=("auc", "size")
    )
    points = np.column_stack([-archs["auc"].to_numpy(float), archs["cost"].to_numpy(float)])
    on_front = non_dominated(points)
    front = archs[on_front]
    knee = front.index[knee_index(points[on_front])]
    sd = pooled_paired_sd(explored, baseline)
    sd = sd if np.isfinite(sd) else 0.0
    lead = front["auc"] - archs.at[baseline, "auc"] + 2 * sd / np.sqrt(front["n"])
    others = [a for a in front.sort_values("cost").index if a != knee and lead[a] > 0]
    return [a for a in [knee, *others] if a != baseline]
