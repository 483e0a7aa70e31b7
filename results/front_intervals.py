"""The intervals the front's AUCs carry: the run's seed noise, and each front member's interval
and paired differences (two steps of :func:`~mdsearch.results.analysis.analyse_run`).

:func:`run_seed_noise` pools the seed-to-seed noise of one proxy run's AUC over the run's
repeated architectures and its proxy-check (:mod:`.seed_noise`, :mod:`.fidelity`);
:func:`attach_intervals` gives every front member, the baseline and the paper's architecture an
interval that includes it beside the validation images, and pairs each member with its cheaper
neighbour and with the baseline (:class:`~mdsearch.results.uncertainty.PredictionBootstrap`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .fidelity import proxy_check_seed_noise
from .seed_noise import SeedNoise, pooled_seed_noise
from .trials import LoadedRun
from .uncertainty import AUCDifference, PredictionBootstrap

__all__ = ["attach_intervals", "run_seed_noise"]


def run_seed_noise(run: LoadedRun, trials: pd.DataFrame) -> SeedNoise:
    """Seed noise of one proxy run's AUC in ``run``: pooled over the architectures among
    ``trials`` (those that finished the proxy) with several seeds, plus the run's proxy-check at
    the run's proxy length when there is one."""
    own = pooled_seed_noise(trials["auc"].to_numpy(), trials["arch"].to_numpy())
    epochs = (run.config.get("proxy") or {}).get("epochs")
    return own + proxy_check_seed_noise(run.path, epochs)


def attach_intervals(
    archs: pd.DataFrame,
    front: pd.DataFrame,
    boot: PredictionBootstrap | None,
    baseline: str,
    paper: str,
) -> AUCDifference | None:
    """Intervals of the AUC of every front member, the baseline and the paper's architecture
    (``auc_ci_low``/``auc_ci_high`` of ``archs`` and ``front``), and each member's paired
    difference to its cheaper neighbour and to the baseline (``vs_cheaper``, ``vs_baseline`` and
    their ``*_distinct`` in ``front``), in place; NaN and None without a bootstrap.

    Returns:
        The paper's architecture's AUC minus the baseline's (None: either not evaluated, or
        no bootstrap).
    """
    archs["auc_ci_low"] = np.nan
    archs["auc_ci_high"] = np.nan
    front["vs_cheaper"] = None
    front["vs_baseline"] = None
    paper_vs_baseline = None
    if boot is not None:
        wanted = [a for a in [*front.index, baseline, paper] if a in archs.index]
        for arch in dict.fromkeys(wanted):
            low, high = boot.interval(archs.at[arch, "trials"])
            archs.loc[arch, ["auc_ci_low", "auc_ci_high"]] = [low, high]
        members = list(front.index)
        front["vs_cheaper"] = [None] + [
            boot.difference(archs.at[cur, "trials"], archs.at[prev, "trials"])
            for prev, cur in zip(members, members[1:])
        ]
        if baseline in archs.index:
            base_trials = archs.at[baseline, "trials"]
            front["vs_baseline"] = [
                None if a == baseline else boot.difference(archs.at[a, "trials"], base_trials)
                for a in members
            ]
            if paper in archs.index and paper != baseline:
                paper_vs_baseline = boot.difference(archs.at[paper, "trials"], base_trials)
    front["auc_ci_low"] = archs.loc[front.index, "auc_ci_low"]
    front["auc_ci_high"] = archs.loc[front.index, "auc_ci_high"]
    for col in ("vs_cheaper", "vs_baseline"):
        front[col + "_distinct"] = [
            d.distinguishable if d is not None else None for d in front[col]
        ]
    return paper_vs_baseline
