"""The confirmation phase: which architecture deserves another seed next.

After exploration, ``mdsearch run --confirm FRACTION`` spends the rest of the budget on further
seeds of the architectures the decision hangs on. Each time the searcher asks, the policy reads
the table so far and answers:

1. Estimates: each architecture's AUC on the stage model's empirical-Bayes estimates when it can
   be fitted (:mod:`mdsearch.results.stage_effects`), else its mean over seeds; its standard
   error ``sigma / sqrt(seeds)``, sigma the run's pooled seed noise (or, before any repeat, the
   spread of the architectures' means: a deliberately wide stand-in).
2. Candidates: the architectures whose interval (estimate +- 2 SE) touches the front: every one
   not clearly dominated by a front member that costs no more and whose lower bound lies above
   its upper bound. The baseline always stays a candidate (every claim is made against it).
3. The next seed goes to the candidate with the fewest seeds so far (proposed ones included),
   the better estimate first among equals; none once every candidate has ``max_seeds``.

A front member with at least :data:`CONFIRMED_SEEDS` seeds is reported "confirmed", one with
fewer "candidate". Only stand-alone rows count: a supernet run's scored sub-networks (``proxy``
``supernet``) are neither seeds nor estimates.

While a search runs, the searcher asks :class:`FrontConfirmation` (the search's
:class:`~mdsearch.search.study.ConfirmPolicy`), which reads the run's trial table in memory;
:func:`next_to_confirm` is the decision itself, over any table (a replayed search's too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mdsearch.search.trial_table import TrialTable
from mdsearch.space import ArchSpec

from .pareto import non_dominated
from .seed_noise import pooled_seed_noise
from .stage_effects import fit_stage_effects
from .trials import proxy_kind

__all__ = ["CONFIRMED_SEEDS", "MAX_SEEDS", "FrontConfirmation", "evidence", "next_to_confirm"]

#: Seeds after which a front member's interval counts as settled ("confirmed").
CONFIRMED_SEEDS = 3
#: Seeds after which an architecture gets no more from the confirmation phase.
MAX_SEEDS = 5


def evidence(seeds: int) -> str:
    """``confirmed`` with at least :data:`CONFIRMED_SEEDS` seeds, else ``candidate``."""
    return "confirmed" if seeds >= CONFIRMED_SEEDS else "candidate"


def next_to_confirm(
    table: pd.DataFrame,
    proposed: Mapping[str, int],
    *,
    baseline: str | None = None,
    cost: str = "flops_m",
    max_seeds: int = MAX_SEEDS,
) -> str | None:
    """The architecture that should get the next seed (see the module docstring).

    Args:
        table: the trial table so far (``arch``, ``status``, ``fidelity``,
            ``target_fidelity``, ``auc`` and the ``cost`` column); supernet rows are ignored.
        proposed: canonical string -> trials proposed so far (running ones included).
        baseline: the baseline's canonical string, kept a candidate while it is evaluated
            (default: the backbone's own network, read off the table's architectures).
        cost: the cost objective's column (``flops_m`` or ``latency_ms``).
        max_seeds: seeds after which an architecture gets no more.

    Returns:
        A canonical architecture string, or None (no finished trial yet, or every candidate has
        ``max_seeds``): the sampler then proposes as in exploration.

    Example:
        >>> t = pd.DataFrame({"arch": ["a", "b"], "status": "COMPLETE", "fidelity": 2,
        ...                   "target_fidelity": 2, "auc": [0.70, 0.72], "flops_m": [1.0, 2.0]})
        >>> next_to_confirm(t, {"a": 1, "b": 1}, baseline="a")
        'b'
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
    archs = done.groupby("arch").agg(
        auc=("auc", "mean"), cost=(cost, "first"), rows=("auc", "size")
    )
    archs["seeds"] = [
        max(int(proposed.get(a, 0)), int(r)) for a, r in zip(archs.index, archs["rows"])
    ]
    estimate = archs["auc"]
    if len(archs) > 2:
        try:
            model = fit_stage_effects(done)
            if model.shrinks:
                estimate = model.estimates["shrunk"].reindex(archs.index)
        except ValueError:
            pass
    noise = pooled_seed_noise(done["auc"].to_numpy(), done["arch"].to_numpy())
    sigma = (
        noise.sd if noise.known else float(np.std(archs["auc"], ddof=1) if len(archs) > 1 else 0.05)
    )
    se = sigma / np.sqrt(archs["seeds"].to_numpy(dtype=float))
    value = estimate.to_numpy(dtype=float)
    costs = archs["cost"].to_numpy(dtype=float)
    low, high = value - 2 * se, value + 2 * se
    front = np.flatnonzero(non_dominated(np.column_stack([-value, costs])))
    candidate = np.array(
        [not any(costs[f] <= costs[i] and low[f] > high[i] for f in front if f != i)
         for i in range(len(archs))]
    )  # fmt: skip
    if baseline is None:
        first = ArchSpec.parse(str(archs.index[0]))
        baseline = ArchSpec.default(first.backbone, first.num_classes).canonical
    if baseline in archs.index:
        candidate[archs.index.get_loc(baseline)] = True
    room = candidate & (archs["seeds"].to_numpy() < max_seeds)
    if not room.any():
        return None
    order = np.lexsort((costs, -value, archs["seeds"].to_numpy()))
    return str(next(archs.index[i] for i in order if room[i]))


@dataclass(frozen=True)
class FrontConfirmation:
    """The confirmation policy of ``mdsearch run --confirm`` (a
    :class:`~mdsearch.search.study.ConfirmPolicy`): :func:`next_to_confirm` over the run's
    stand-alone rows.

    Args:
        cost: the cost objective's column (``flops_m`` or ``latency_ms``).
        baseline: as :func:`next_to_confirm` (default: the backbone's own network).
        max_seeds: seeds after which an architecture gets no more.

    Example:
        >>> from mdsearch.search.trial_table import TrialTable
        >>> table = TrialTable.new([])
        >>> for arch, auc, flops in (("a", 0.70, 1.0), ("b", 0.72, 2.0)):
        ...     table.append({"arch": arch, "status": "COMPLETE", "fidelity": 2,
        ...                   "target_fidelity": 2, "auc": auc, "flops_m": flops})
        >>> FrontConfirmation(baseline="a").choose(table, {"a": 1, "b": 1})
        'b'
    """

    cost: str = "flops_m"
    baseline: str | None = None
    max_seeds: int = MAX_SEEDS

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
