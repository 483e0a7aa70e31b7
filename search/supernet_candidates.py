"""Which architectures a supernet run trains on their own, in which order.

The supernet's scores rank sub-networks; they are not stand-alone AUCs (weights shared with
every other sub-network, one training, no seed noise across architectures). What the
stand-alone phase needs from them is an order: the supernet's own Pareto front of score against
cost first (the architectures that would be on the front if the ranking held), then the front
of what is left, and so on (non-dominated sorting, as NSGA-II ranks a population:
:func:`~mdsearch.search.front.pareto_layers`), each layer from cheap to costly. Trained in that
order, one seed each, the budget goes to the architectures the supernet says could be on the
front, and the confirmation phase then gives further seeds to those whose stand-alone intervals
touch it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .front import pareto_layers

if TYPE_CHECKING:  # pandas is imported when candidates are ranked, not with the package
    import pandas as pd

__all__ = ["rank_candidates"]


def rank_candidates(scores: pd.DataFrame, cost: str = "flops_m") -> list[str]:
    """The scored architectures in the order the stand-alone phase trains them.

    Args:
        scores: the supernet rows of trials.csv (``arch``, ``status``, ``auc`` and ``cost``);
            repeated scores of an architecture (other recalibration samples) are averaged.
        cost: the cost objective's column (``flops_m`` or ``latency_ms``).

    Returns:
        Canonical architecture strings: Pareto layers of (score up, cost down) in order, each
        sorted by cost, then score. Failed or unscored rows are left out.

    Example:
        >>> import pandas as pd
        >>> t = pd.DataFrame({"arch": list("abcd"), "status": "COMPLETE",
        ...                   "auc": [0.80, 0.85, 0.82, 0.70], "flops_m": [1.0, 3.0, 2.0, 2.5]})
        >>> rank_candidates(t)
        ['a', 'c', 'b', 'd']
    """
    import pandas as pd

    auc = pd.to_numeric(scores["auc"], errors="coerce")
    costs = pd.to_numeric(scores[cost], errors="coerce")
    ok = (scores["status"] == "COMPLETE") & np.isfinite(auc) & np.isfinite(costs)
    if not ok.any():
        return []
    per_arch = (
        pd.DataFrame({"arch": scores["arch"][ok], "auc": auc[ok], "cost": costs[ok]})
        .groupby("arch")
        .agg(auc=("auc", "mean"), cost=("cost", "first"))
    )
    per_arch["layer"] = pareto_layers(np.c_[-per_arch["auc"].to_numpy(), per_arch["cost"]])
    order = per_arch.sort_values(["layer", "cost", "auc"], ascending=[True, True, False])
    return list(order.index)
