"""``--sampler grid``: Optuna's GridSampler, without its stop at the end of the grid.

A module of its own because Ray Tune pickles the searcher, sampler included, at every searcher
checkpoint: the class must be importable by name (a class made inside a function was not, and
every real ``--sampler grid`` run crashed at the first checkpoint). Importing this module
imports Optuna, so :func:`mdsearch.search.make_sampler` imports it when a grid is asked for.
"""

from __future__ import annotations

from typing import Any

import optuna

__all__ = ["BudgetGridSampler"]


class BudgetGridSampler(optuna.samplers.GridSampler):
    """GridSampler whose run ends at the budget, not at the end of the grid.

    GridSampler calls ``study.stop()`` after the trial that visits the last grid point, which
    Optuna allows only inside ``study.optimize``; Ray Tune asks and tells instead, so the tell
    of that trial raised and the search broke. Here the budget ends the run, and proposals after
    the grid is covered revisit grid points (Optuna picks them at random), which the searcher
    trains as further seeds.

    Example:
        >>> sampler = BudgetGridSampler({"stage1": ["base", "k3.5s1:1"]}, seed=0)
        >>> import pickle; type(pickle.loads(pickle.dumps(sampler))).__name__
        'BudgetGridSampler'
    """

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        """No ``study.stop()``: the run's budget decides when it ends."""
