"""The Optuna side of a search: the sampler, the Ray Tune searcher that proposes architectures,
and the study's recovery after a kill.

The study lives in ``study.db`` in the run folder. The searcher decodes each sampled set of
Optuna parameters to an :class:`~mdsearch.space.ArchSpec` once and ships its canonical string
in the trial's config (``{"arch": ..., "seed": ..., "repeat": ...}``, the table's own column
names); no one downstream decodes parameters again.

Repeats: when the sampler proposes an architecture the run has already evaluated, it is trained
again with the next seed (seed, seed+1, ...): a repeat is a further seed that narrows that
architecture's uncertainty, never an accidental copy.

Optuna is told only finished proxies as COMPLETE: a failed trial is FAIL, one stopped early by
``--early-stop asha`` is PRUNED (a partial AUC never poses as a finished proxy), and one
interrupted by Ctrl-C stays RUNNING, marked ``interrupted``, until ``--resume`` settles it.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mdsearch.space import ArchSpec, SearchSpace

from .runfolder import RunFolder

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from ray.tune.search.optuna import OptunaSearch

    from .progress import TrialNumbers
    from .trial_table import TrialTable

__all__ = [
    "STUDY_NAME",
    "SUPERNET_STUDY_NAME",
    "TABLE_TRIAL_ATTR",
    "ConfirmPolicy",
    "ExplorePlan",
    "InOrder",
    "Interrupted",
    "covering_plan",
    "make_sampler",
    "objective_values",
    "proxy_search_class",
    "recover_study",
]

#: Name of the Optuna study in study.db (what ``optuna.load_study`` takes): the stand-alone
#: trials, whose front the run reports.
STUDY_NAME = "mdsearch"
#: The study of a supernet run's scores (``--strategy supernet``), beside :data:`STUDY_NAME`
#: in the same study.db (optuna-dashboard lists both).
SUPERNET_STUDY_NAME = "mdsearch-supernet"

#: The Optuna user attribute holding the trial's number in trials.csv (its ``trial`` column):
#: after a kill and ``--resume``, Optuna's trial numbers and the table's differ.
TABLE_TRIAL_ATTR = "table_trial"


class ConfirmPolicy(Protocol):
    """The confirmation policy: which architecture the confirmation phase (``--confirm``) gives
    its next seed. Judging results is the results layer's job, so the search takes the policy
    from its caller (the command line passes :class:`mdsearch.results.FrontConfirmation`).
    Ray Tune pickles the searcher that holds it: a policy is plain data."""

    def choose(self, trials: TrialTable, proposed: Mapping[str, int]) -> str | None:
        """The architecture to give the next seed, or None to let the sampler explore.

        Args:
            trials: the run's trial table so far, in memory (every kind of row: a policy
                reads the stand-alone ones).
            proposed: canonical string -> trials proposed so far (running ones included).
        """
        ...


#: A planned exploration: canonical string -> trials proposed so far, to the architecture to
#: propose next, or None to let the sampler propose (e.g. a supernet run's stand-alone phase
#: trains the supernet's best-ranked architectures in order).
ExplorePlan = Callable[[Mapping[str, int]], "str | None"]


@dataclass(frozen=True)
class InOrder:
    """An :data:`ExplorePlan`: the first of ``archs`` not proposed yet (None once all were).
    A class, not a closure: Ray Tune pickles the searcher that holds it.

    Args:
        archs: canonical strings, in the order to propose them.
        before_confirmation: the confirmation phase waits until every one was proposed (a
            covering plan: :func:`covering_plan`).

    Example:
        >>> plan = InOrder(("a", "b"))
        >>> plan({}), plan({"a": 1}), plan({"a": 1, "b": 2})
        ('a', 'b', None)
    """

    archs: tuple[str, ...]
    before_confirmation: bool = False

    def __call__(self, seen: Mapping[str, int]) -> str | None:
        return next((a for a in self.archs if not seen.get(a)), None)


def covering_plan(
    space: SearchSpace, num_classes: int, seed: int, first: Sequence[str] = ()
) -> InOrder:
    """Every architecture of a space once, in a random order (seeded), before any repeat and
    before the confirmation phase: what a search whose budget is no smaller than its space
    explores, whatever the sampler (a sampler's own proposals repeat architectures long before
    a small space is covered: ``--sampler random --space paper --budget 16`` trained 8 of the
    16 networks). The reference architectures run before any plan (they are queued first).

    Args:
        space: the searched space.
        num_classes: the dataset's number of findings.
        seed: the run's seed (the same order on ``--resume``).
        first: architectures to propose before the random order (a supernet run's ranked
            candidates).

    Example:
        >>> from mdsearch.space import load_space
        >>> plan = covering_plan(load_space("paper"), 14, seed=0)
        >>> len(plan.archs), len(set(plan.archs)), plan.before_confirmation
        (16, 16, True)
    """
    import random

    every = [spec.canonical for spec in space.enumerate(num_classes)]
    random.Random(seed).shuffle(every)
    return InOrder(tuple(dict.fromkeys([*first, *every])), before_confirmation=True)


class Interrupted(Protocol):
    """What the searcher asks of the Ctrl-C flag (:class:`~mdsearch.search.progress.InterruptFlag`)."""

    def is_set(self) -> bool: ...


def make_sampler(
    name: str, seed: int, space: SearchSpace, budget: int
) -> optuna.samplers.BaseSampler:
    """The Optuna sampler for ``--sampler``.

    tpe (default): multi-objective TPE (``constant_liar`` keeps parallel trials from all
    proposing the same point); it favours cheap architectures, which keeps the default 100-trial
    run within 20 minutes on 2 CPU cores. random: on a space no larger than the budget (e.g.
    ``paper``), replayed searches against a ground-truth table (``benchmarks/replay_search.py``,
    README "Which sampler") found fronts at least as good as TPE's, NSGA-II's and GP's: with
    proxy seed noise larger than the differences between architectures, a model-guided sampler
    exploits noise and covers fewer architectures; its proposals are also a balanced design for
    the stage-effect model. nsga2 needs several generations of ~population size (budgets of
    several hundred). grid enumerates a small space (e.g. the paper's 16 placements).
    """
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=min(10, max(1, budget // 5)), constant_liar=True
        )
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(
            seed=seed, population_size=max(4, min(50, budget // 4))
        )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    from .grid_sampler import BudgetGridSampler

    grid = {k: list(d.choices) for k, d in space.distributions().items()}
    return BudgetGridSampler(grid, seed=seed)


def objective_values(values: Mapping[str, Any], metrics: Sequence[str]) -> list[float] | None:
    """The objectives of a result or table row in ``metrics`` order; None unless all are finite
    numbers (a failed or diverged trial is not told to Optuna as COMPLETE)."""
    out = []
    for m in metrics:
        try:
            v = float(values.get(m, math.nan))
        except (TypeError, ValueError):
            return None
        if not math.isfinite(v):
            return None
        out.append(v)
    return out


def proxy_search_class() -> type[OptunaSearch]:
    """The searcher class (built on first use: it subclasses Ray's OptunaSearch, and importing
    Ray is left to the search itself).

    Its constructor takes OptunaSearch's arguments and ``mdsearch_space`` (the
    :class:`~mdsearch.space.SearchSpace`), ``num_classes``, ``seed`` (repeat k of an
    architecture trains with seed + k), ``seen`` (architectures already in the table -> count),
    ``interrupted`` (an :class:`Interrupted` flag), ``confirm_after`` (proposals before the
    confirmation phase), ``confirm_policy`` (a :class:`ConfirmPolicy`), ``trial_table`` (the
    run's :class:`~mdsearch.search.trial_table.TrialTable`, which the policy reads),
    ``trial_numbers`` (the recorder's
    :class:`~mdsearch.search.progress.TrialNumbers`: each Optuna trial then carries its
    trials.csv number as the user attribute :data:`TABLE_TRIAL_ATTR`) and ``explore_plan`` (an
    :class:`ExplorePlan` the exploration follows before the sampler's own proposals).
    """
    from optuna.exceptions import ExperimentalWarning
    from optuna.trial import TrialState
    from ray.tune.search.optuna import OptunaSearch

    class ProxySearch(OptunaSearch):
        """OptunaSearch that (1) decodes each proposal to an architecture once and ships its
        canonical string, (2) gives repeats of an arch the next seed and (3) tells Optuna only
        finished proxies as COMPLETE: failures are FAIL, early stops PRUNED."""

        def __init__(
            self,
            *args: Any,
            mdsearch_space: SearchSpace,
            num_classes: int,
            seed: int,
            seen: Mapping[str, int],
            interrupted: Interrupted,
            confirm_after: int | None = None,
            confirm_policy: ConfirmPolicy | None = None,
            trial_table: TrialTable | None = None,
            trial_numbers: TrialNumbers | None = None,
            explore_plan: ExplorePlan | None = None,
            **kwargs: Any,
        ) -> None:
            super().__init__(*args, **kwargs)
            self._md_metrics = list(kwargs["metric"])
            self._md_space = mdsearch_space
            self._md_classes = num_classes
            self._md_seed = seed
            self._md_seen = Counter(seen)
            self._md_interrupted = interrupted
            self._md_confirm_after = confirm_after
            self._md_confirm_policy = confirm_policy
            self._md_table = trial_table
            self._md_numbers = trial_numbers
            self._md_plan = explore_plan
            study = getattr(self, "_ot_study", None)
            if study is not None:  # optuna-dashboard then names the objectives, not "Objective 0"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ExperimentalWarning)
                    study.set_metric_names(self._md_metrics)

        def _confirmation(self) -> str | None:
            """The architecture the confirmation phase gives the next seed (None: explore)."""
            policy, table = self._md_confirm_policy, self._md_table
            if policy is None or self._md_confirm_after is None or table is None:
                return None
            if sum(self._md_seen.values()) < self._md_confirm_after:
                return None
            plan = self._md_plan
            if isinstance(plan, InOrder) and plan.before_confirmation and plan(self._md_seen):
                return None  # a small space is covered first
            return policy.choose(table, dict(self._md_seen))

        def _planned(self) -> str | None:
            """The explore plan's next architecture, once the study has nothing queued (the
            reference architectures and interrupted trials, enqueued first, run first)."""
            if self._md_plan is None:
                return None
            if self._ot_study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                return None
            return self._md_plan(dict(self._md_seen))

        def suggest(self, trial_id: str) -> dict[str, Any] | None:
            confirm = self._confirmation()
            chosen = confirm if confirm is not None else self._planned()
            if chosen is not None:
                # Optuna's next ask() takes the enqueued point: the sampler stays informed.
                arch = self._md_space.encode(ArchSpec.parse(chosen))
                self._ot_study.enqueue_trial(arch, skip_if_exists=False)
            params = super().suggest(trial_id)
            if params is None:
                return None
            spec = self._md_space.decode(params, self._md_classes)
            repeat = self._md_seen[spec.canonical]
            self._md_seen[spec.canonical] += 1
            seed = self._md_seed + repeat
            ot_trial = self._ot_trials[trial_id]
            ot_trial.set_user_attr("arch", spec.canonical)
            ot_trial.set_user_attr("arch_id", spec.arch_id)
            ot_trial.set_user_attr("seed", seed)
            ot_trial.set_user_attr("phase", "confirm" if confirm is not None else "explore")
            ot_trial.set_user_attr("ray_trial_id", trial_id)
            return {"arch": spec.canonical, "seed": seed, "repeat": repeat}

        def on_trial_complete(
            self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
        ) -> None:
            if trial_id in self._completed_trials or trial_id not in self._ot_trials:
                return
            ot_trial = self._ot_trials[trial_id]
            if self._md_interrupted.is_set() and not (result or {}).get("final"):
                # Ctrl-C: no row is written; --resume runs the trial again (see recover_study).
                ot_trial.set_user_attr("interrupted", True)
                self._completed_trials.add(trial_id)
                return
            if self._md_numbers is not None:  # the row the recorder writes (or wrote) for it
                ot_trial.set_user_attr(TABLE_TRIAL_ATTR, self._md_numbers.number(trial_id))
            finished = bool(result) and result.get("final") and not error
            values = objective_values(result or {}, self._md_metrics)
            if finished and values is not None:
                self._ot_study.tell(ot_trial, values)
            else:
                if result:
                    ot_trial.set_user_attr("fidelity", result.get("fidelity", 0.0))
                state = TrialState.FAIL if (error or finished) else TrialState.PRUNED
                self._ot_study.tell(ot_trial, state=state)
            self._completed_trials.add(trial_id)

        def mark_interrupted(self) -> None:
            """Tag the trials still RUNNING in the study after Ctrl-C (they have no row)."""
            for trial_id, ot_trial in self._ot_trials.items():
                if trial_id not in self._completed_trials:
                    ot_trial.set_user_attr("interrupted", True)

    return ProxySearch


def recover_study(
    folder: RunFolder,
    space: SearchSpace,
    table: pd.DataFrame,
    metrics: Sequence[str],
    study_name: str = STUDY_NAME,
) -> list[dict[str, Any]]:
    """After a kill or Ctrl-C: settle the study's RUNNING trials and return the parameters of
    those to run again first.

    A RUNNING trial whose architecture and seed already have a row (the driver died between
    writing the row and telling Optuna) gets the row's number (:data:`TABLE_TRIAL_ATTR`) and is
    told the row's outcome; every other one is marked
    FAIL and its architecture runs again, so no trial is lost or counted twice (one whose
    proposal was cut short by the kill is only marked FAIL).

    Args:
        folder: the run folder (its study.db).
        space: the searched space (which Optuna parameters are its own).
        table: the trial table so far (the rows of this study's trials only).
        metrics: the objective columns, in the study's order.
        study_name: the study (:data:`STUDY_NAME` or :data:`SUPERNET_STUDY_NAME`).

    Returns:
        Optuna parameters to evaluate first (``points_to_evaluate``).
    """
    import optuna
    from optuna.trial import TrialState

    if not folder.study_path.exists():
        return []
    rows = {}
    for _, row in table.iterrows():
        if row["seed"] == row["seed"]:  # not NaN
            rows[(str(row["arch"]), int(row["seed"]))] = row
    names_in_db = optuna.get_all_study_names(storage=folder.study_url)
    if study_name not in names_in_db:
        return []
    study = optuna.load_study(study_name=study_name, storage=folder.study_url)
    names = list(space.distributions())
    again = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        row = rows.get((t.user_attrs.get("arch"), t.user_attrs.get("seed")))
        if t.state == TrialState.RUNNING and row is not None:
            if row["trial"] == row["trial"]:  # not NaN
                # FrozenTrial has no setter: a Trial handle on the same storage row has.
                optuna.Trial(study, t._trial_id).set_user_attr(TABLE_TRIAL_ATTR, int(row["trial"]))
            values = objective_values(row, metrics)
            if row["status"] == "COMPLETE" and values is not None:
                study.tell(t.number, values)
            else:
                study.tell(t.number, state=TrialState.FAIL)
            continue
        if t.state == TrialState.RUNNING:
            study.tell(t.number, state=TrialState.FAIL)
        point = {k: t.params[k] for k in names if k in t.params}
        # A driver killed while Optuna stored a proposal leaves some of its parameters: such a
        # trial never ran, and Tune refuses a partial point; the sampler proposes anew.
        if len(point) == len(names):
            again.append(point)
    return again
