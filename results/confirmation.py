"""The confirmation phase: which architecture gets the next seed, so that the run's verdict
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
   (round-robin: each comparison reaches the seeds a claim needs before any gets more), to the
   end of the confirmation budget: a larger budget narrows every claim's interval (before,
   candidates stopped at 6 seeds and the sampler took the rest; in replays at budget 400 it gave
   them to the baseline, 62 seeds against the knee's 10). The knee on all seeds so
   far joins the race when confirmation moves it to a member that was not a candidate (its own
   new seeds are still independent of why it was picked), so the report's knee is compared on
   seeds of its own.

The race does not stop a comparison when its interval excludes 0: stopping on the estimate would
make the confirmation seeds a biased sample (optional stopping), and ``benchmarks/bench_power.py``
measured that rule calling null effects real twice as often as stated. On the default run the
knee and the baseline reach 4 seeds each within the first 7 confirmation trials. Only
stand-alone rows count (a supernet run's scored sub-networks are neither seeds nor estimates).

While a search runs, the searcher asks :class:`FrontConfirmation` (the search's
:class:`~mdsearch.search.study.ConfirmPolicy`), which reads the run's trial table in memory;
:func:`next_to_confirm` is the decision itself, over any table (a replayed search's too). A front
member with at least :data:`CONFIRMED_SEEDS` seeds is reported "confirmed", one with fewer
"candidate".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mdsearch.search.trial_table import TrialTable
from mdsearch.space import ArchSpec

from .pareto import knee_index, non_dominated
from .trials import proxy_kind
from .verdict import MIN_PAIRED, pooled_paired_sd

__all__ = [
    "CONFIRMED_SEEDS",
    "FrontConfirmation",
    "evidence",
    "next_to_confirm",
    "race_candidates",
]

#: Seeds after which a front member counts as settled ("confirmed"): an exploration seed and
#: the held-out seeds a claim needs.
CONFIRMED_SEEDS = 1 + MIN_PAIRED


def evidence(seeds: int) -> str:
    """``confirmed`` with at least :data:`CONFIRMED_SEEDS` seeds, else ``candidate``."""
    return "confirmed" if seeds >= CONFIRMED_SEEDS else "candidate"


def next_to_confirm(
    table: pd.DataFrame,
    proposed: Mapping[str, int],
    *,
    baseline: str | None = None,
    cost: str = "flops_m",
    max_seeds: int | None = None,
) -> str | None:
    """The architecture that should get the next seed (see the module docstring).

    Args:
        table: the trial table so far (``arch``, ``status``, ``fidelity``, ``target_fidelity``,
            ``auc``, the ``cost`` column and ``phase``); supernet rows and unfinished trials are
            ignored. Without ``phase`` (a table from before the column) every row counts as
            exploration.
        proposed: canonical string -> trials proposed so far (running ones included).
        baseline: the baseline's canonical string (default: the backbone's own network, read
            off the table's architectures).
        cost: the cost objective's column (``flops_m`` or ``latency_ms``).
        max_seeds: seeds after which a candidate gets no more (None: no limit, the race runs
            to the end of the confirmation budget).

    Returns:
        A canonical architecture string, or None (nothing finished yet, no candidate, or every
        candidate has ``max_seeds``): the sampler then proposes as in exploration.

    Example:
        >>> t = pd.DataFrame({"arch": ["base", "a"], "status": "COMPLETE", "fidelity": 2,
        ...                   "target_fidelity": 2, "auc": [0.70, 0.74], "flops_m": [1.0, 2.0],
        ...                   "seed": [0, 0], "phase": "explore"})
        >>> next_to_confirm(t, {"base": 1, "a": 1}, baseline="base")  # first a baseline partner
        'base'
        >>> next_to_confirm(t, {"base": 2, "a": 1}, baseline="base")
        'a'
    """
    ok = (
        (proxy_kind(table) == "standalone")
        & (table["status"] == "COMPLETE")
        & (table["fidelity"] >= table["target_fidelity"])
        & np.isfinite(pd.to_numeric(table["auc"], errors="coerce"))
        & np.isfinite(pd.to_numeric(table[cost], errors="coerce"))
    )
    done = table[ok]
    if done.empty:
        return None
    if baseline is None:
        first = ArchSpec.parse(str(done["arch"].iloc[0]))
        baseline = ArchSpec.default(first.backbone, first.num_classes).canonical
    seeds = {a: int(n) for a, n in done.groupby("arch").size().items()}
    for arch, n in proposed.items():
        seeds[arch] = max(seeds.get(arch, 0), int(n))
    explored = done[done["phase"] != "confirm"] if "phase" in done else done
    candidates = race_candidates(explored, baseline=baseline, cost=cost)
    knee = _knee(done, cost)  # the knee as the report will show it, with every seed so far
    if knee is not None and knee != baseline:
        candidates = [knee, *(a for a in candidates if a != knee)]
    if baseline not in seeds or not candidates:
        return None
    open_ = [a for a in candidates if max_seeds is None or seeds.get(a, 0) < max_seeds]
    if not open_:
        return None
    rank = {a: i for i, a in enumerate(candidates)}
    nxt = min(open_, key=lambda a: (seeds.get(a, 0), rank[a]))
    if seeds[baseline] <= seeds.get(nxt, 0):
        return baseline  # every candidate's seed gets a baseline partner first
    return nxt


def _front(table: pd.DataFrame, cost: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Raw means per architecture and the mask of the front over them."""
    archs = table.groupby("arch").agg(auc=("auc", "mean"), cost=(cost, "first"), n=("auc", "size"))
    points = np.column_stack([-archs["auc"].to_numpy(float), archs["cost"].to_numpy(float)])
    return archs, non_dominated(points)


def _knee(table: pd.DataFrame, cost: str) -> str | None:
    archs, on_front = _front(table, cost)
    if not on_front.any():
        return None
    points = np.column_stack([-archs["auc"].to_numpy(float), archs["cost"].to_numpy(float)])
    return str(archs.index[on_front][knee_index(points[on_front])])


def race_candidates(explored: pd.DataFrame, *, baseline: str, cost: str = "flops_m") -> list[str]:
    """The comparisons the confirmation phase races, from exploration trials only: the knee of
    the exploration front first, then the other members that could still beat the baseline
    (cheapest first); when the baseline alone is the front, its two best challengers that could
    still beat it (else the best one), so that the baseline's lead is confirmed too.

    Example:
        >>> t = pd.DataFrame({"arch": ["base", "a", "b"], "auc": [0.70, 0.74, 0.75],
        ...                   "flops_m": [1.0, 2.0, 3.0], "seed": 0})
        >>> race_candidates(t, baseline="base")
        ['a', 'b']
    """
    if explored.empty or baseline not in set(explored["arch"]):
        return []
    archs, on_front = _front(explored, cost)
    knee = _knee(explored, cost)
    front = archs[on_front]
    sd = pooled_paired_sd(explored, baseline) if "seed" in explored else float("nan")
    sd = sd if np.isfinite(sd) else 0.0
    reach = archs["auc"] - archs.at[baseline, "auc"] + 2 * sd / np.sqrt(archs["n"])
    others = [a for a in front.sort_values("cost").index if a != knee and reach[a] > 0]
    chosen = [a for a in [knee, *others] if a is not None and a != baseline]
    if not chosen:  # the baseline alone is the front: race its closest challengers instead
        best = archs.drop(index=baseline).sort_values("auc", ascending=False)
        chosen = [a for a in best.index if reach[a] > 0][:2] or list(best.index[:1])
    return chosen


@dataclass(frozen=True)
class FrontConfirmation:
    """The confirmation policy of ``mdsearch run --confirm`` (a
    :class:`~mdsearch.search.study.ConfirmPolicy`): :func:`next_to_confirm` over the run's
    stand-alone rows.

    Args:
        cost: the cost objective's column (``flops_m`` or ``latency_ms``).
        baseline: as :func:`next_to_confirm` (default: the backbone's own network).
        max_seeds: as :func:`next_to_confirm` (None: no limit).

    Example:
        >>> from mdsearch.search.trial_table import TrialTable
        >>> table = TrialTable.new([])
        >>> for arch, auc, flops in (("a", 0.70, 1.0), ("b", 0.72, 2.0)):
        ...     table.append({"arch": arch, "status": "COMPLETE", "fidelity": 2, "seed": 0,
        ...                   "target_fidelity": 2, "auc": auc, "flops_m": flops,
        ...                   "phase": "explore"})
        >>> FrontConfirmation(baseline="a").choose(table, {"a": 2, "b": 1})
        'b'
    """

    cost: str = "flops_m"
    baseline: str | None = None
    max_seeds: int | None = None

    def choose(self, trials: TrialTable, proposed: Mapping[str, int]) -> str | None:
        """The architecture to give the next seed (None: let the sampler explore)."""
        if not trials.count("standalone"):
            return None
        return next_to_confirm(
            trials.frame("standalone"),
            proposed,
            baseline=self.baseline,
            cost=self.cost,
            max_seeds=self.max_seeds,
        )
