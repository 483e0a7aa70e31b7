"""A run folder's trials turned into what they mean: front, hypervolume, knee, uncertainty.

:func:`analyse_run` is the one entry point the reports, ``mdsearch pareto`` and ``mdsearch
export --pick`` share. It reads the run folder (never Ray), keeps the trials that finished the
proxy, pools repeated seeds per architecture, and computes:

- the Pareto front of the run's objectives (``config.json`` ``objectives``, which ``mdsearch
  run --objectives`` writes: AUC up and FLOPs down by default, latency down too with
  ``auc,flops,latency``), computed over all objectives at once (a 3-objective front is the 3-D
  one), one row per architecture, sorted by FLOPs (else by the last objective);
- its hypervolume in as many dimensions as objectives, against the reference point (default:
  AUC 0.5, i.e. chance, and 1.1 x the largest eligible value of each minimised objective; or one
  the caller gives) and the hypervolume after every trial, on the estimates as of that trial
  (each architecture's mean over the seeds run so far: it falls when a further seed lowers a
  front member's mean, and the history marks those trials);
- the knee (:func:`mdsearch.results.pareto.knee_index`);
- the run's seed noise (pooled over its repeated architectures and its proxy-check,
  :mod:`mdsearch.results.seed_noise`), and an interval of every front member's AUC and of the
  baseline's and paper architecture's that includes it beside the validation images, and
  paired differences of each member against its cheaper neighbour on the front and against the
  baseline (``mdsearch.results.uncertainty``); without any seed-noise estimate no difference is
  judged;
- how often each stage carries MD-Conv on the front versus among all eligible architectures;
- which labels the run's mean AUC is over (:mod:`mdsearch.search.scored_labels`) and the run's
  wall time (:mod:`.run_facts`).

Each is a named step, in this order: :func:`eligible_trials`, :func:`pool_eligible`, the stage
model (:func:`~mdsearch.results.stage_effects.fit_stage_effects`) and
:func:`shrink_to_stage_model`, the front and its reference point, :func:`front_members`,
:func:`hypervolume_over_trials`, the seed noise and intervals (:mod:`.front_intervals`), the
stage shares and the run's facts (:mod:`.run_facts`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mdsearch.search.scored_labels import ScoredLabels

from .errors import ResultsError
from .front_intervals import attach_intervals, run_seed_noise
from .pareto import (
    Objective,
    default_reference,
    hypervolume,
    hypervolume_history,
    knee_index,
    minimisation_matrix,
    non_dominated,
    objective_column,
    resolve_objectives,
)
from .picks import select_pick
from .run_facts import (
    WallTime,
    old_label_rule_note,
    run_resolution_warnings,
    run_scored_labels,
    run_wall_time,
)
from .seed_noise import SeedNoise
from .stage_effects import StageEffectModel, fit_stage_effects
from .trials import (
    LoadedRun,
    eligible_mask,
    ineligible_reason,
    label_columns,
    load_run,
    pool_by_arch,
    reference_archs,
)
from .uncertainty import DEFAULT_RESAMPLES, AUCDifference, PredictionBootstrap

__all__ = [
    "NO_SEED_NOISE",
    "RunAnalysis",
    "analyse_run",
    "eligible_trials",
    "front_members",
    "hypervolume_over_trials",
    "pick_architecture",
    "pool_eligible",
    "shrink_to_stage_model",
]

#: An architecture id (SHA-1 prefix of its canonical string) or a unique prefix of one.
_ARCH_ID = re.compile(r"[0-9a-f]{4,40}")

#: What a report says when no architecture was trained twice and there is no proxy-check.
NO_SEED_NOISE = (
    "seed noise unknown: no architecture was trained with more than one seed and the run has no "
    "proxy-check, so intervals cover the validation images only and no difference is judged; "
    "`mdsearch proxy-check --run RUN` measures it (or a search long enough for the sampler to "
    "propose an architecture again, which trains it with a new seed)"
)


@dataclass
class RunAnalysis:
    """Everything the reports show about one run.

    Attributes:
        run: the run folder as read.
        objectives: the objectives of the front.
        eligible: bool Series over ``run.trials``: finished the proxy with objectives present.
        archs: eligible trials pooled per architecture (index ``arch``; means over seeds,
            ``seeds``, ``trials``, ``arch_id``, ``mdconv_stages``, ``on_front``, ``auc_ci_low``/
            ``auc_ci_high`` where computed).
        front: the front members of ``archs``, sorted by the last objective then the first, with
            ``vs_cheaper`` and ``vs_baseline`` (:class:`~mdsearch.results.uncertainty.AUCDifference`
            or None) and their ``*_distinct`` booleans.
        reference: hypervolume reference point, column -> value in the column's units.
        hypervolume: of the front, in the product of the objectives' units.
        history: DataFrame ``trial``, ``hypervolume`` (after each trial, in trial order, on
            each architecture's mean over the seeds run so far), ``repeat`` (the trial was a
            further seed of an architecture seen before) and ``fell`` (the hypervolume went down:
            a further seed lowered a front member's mean).
        knee: ``arch`` of the knee member.
        baseline, paper: canonical strings of the baseline and the paper's architecture ("" when
            unknown); ``baseline in archs.index`` says whether it was evaluated.
        stage_share: per stage, share of front members / of all eligible archs with MD-Conv there.
        counts: trial counts by outcome (``total``, ``complete``, ``failed``, ``stopped``,
            ``eligible``, ``archs``).
        level: interval coverage; ``n_resamples``: 0 when intervals were not computed.
        seed_noise: the seed-to-seed noise of one run's AUC the intervals include.
        stage_model: the additive stage-effect model over every eligible trial (None when it
            cannot be fitted: one architecture, or no stage choice varies); when it could split
            seed noise from interactions, ``archs['auc']`` holds its empirical-Bayes estimates
            and ``archs['auc_mean']`` the raw means over seeds.
        scored_labels: which labels the mean AUC is over (None: no predictions to tell).
        resolution_warnings: stage -> why the proxy cannot rank that stage's choices (its maps
            are not larger than its kernels at the proxy resolution).
        wall_time: the run's wall time (None: no timestamps).
        paper_vs_baseline: the paper architecture's AUC minus the baseline's (None: either not
            evaluated or no intervals).
        notes: remarks for the report (missing predictions and the like).
    """

    run: LoadedRun
    objectives: tuple[Objective, ...]
    eligible: pd.Series
    archs: pd.DataFrame
    front: pd.DataFrame
    reference: dict[str, float]
    hypervolume: float
    history: pd.DataFrame
    knee: str
    baseline: str
    paper: str
    stage_share: pd.DataFrame
    counts: dict[str, int]
    level: float
    n_resamples: int
    seed_noise: SeedNoise = field(default_factory=SeedNoise)
    stage_model: StageEffectModel | None = None
    scored_labels: ScoredLabels | None = None
    resolution_warnings: dict[int, str] = field(default_factory=dict)
    wall_time: WallTime | None = None
    paper_vs_baseline: AUCDifference | None = None
    notes: list[str] = field(default_factory=list)

    def pick(self, pick: str) -> pd.Series:
        """The architecture a pick string chooses: a front member (a row of :attr:`front`) for
        ``knee``, ``best-auc``, ``flops<=1250``, ``auc>=0.78``...; for an architecture id (or a
        unique prefix of one, at least 4 hex digits) any evaluated architecture (its row of
        :attr:`front`, else of :attr:`archs`). ResultsError naming the nearest when none fits."""
        text = str(pick).strip().lower()
        if _ARCH_ID.fullmatch(text):
            hits = self.archs.index[self.archs["arch_id"].str.startswith(text)]
            if len(hits) == 1:
                table = self.front if hits[0] in self.front.index else self.archs
                return table.loc[hits[0]]
            if len(hits) > 1:
                ids = ", ".join(self.archs.loc[hits, "arch_id"])
                raise ResultsError(
                    f"pick {pick!r} matches several architectures ({ids}): give more digits"
                )
            raise ResultsError(
                f"pick {pick!r}: no architecture of this run has that id; `mdsearch pareto "
                f"{self.run.path}` lists the front's ids"
            )
        return self.front.loc[select_pick(self.front, pick, self.objectives)]

    @property
    def latency_info(self) -> dict[str, Any]:
        """config.json's ``latency`` block (input size, batch, threads, device) or {}."""
        return self.run.config.get("latency") or {}

    @property
    def reference_text(self) -> str:
        """The hypervolume reference point as ``column = value`` pairs, for reports."""
        return ", ".join(f"{col} = {value:.4g}" for col, value in self.reference.items())


def _objectives_for(run: LoadedRun, objectives: Sequence[str | Objective] | None):
    names = objectives or run.config.get("objectives") or ("auc", "flops")
    return resolve_objectives(names)


def _reference_for(
    objectives: Sequence[Objective],
    points: np.ndarray,
    given: Mapping[str, float] | Sequence[float] | None,
) -> np.ndarray:
    ref = default_reference(points, objectives)
    if given is None:
        return ref
    if isinstance(given, Mapping):
        # Accept short names and column names: {"auc": 0.6, "flops": 1500}.
        by_column = {objective_column(k): v for k, v in given.items()}
        for j, obj in enumerate(objectives):
            if obj.column in by_column:
                ref[j] = obj.sign * float(by_column[obj.column])
        return ref
    values = [float(v) for v in given]
    if len(values) != len(objectives):
        raise ResultsError(
            f"reference point has {len(values)} values for {len(objectives)} objectives"
        )
    return np.array([o.sign * v for o, v in zip(objectives, values)])


def analyse_run(
    run_dir: str | Path | LoadedRun,
    *,
    objectives: Sequence[str | Objective] | None = None,
    reference: Mapping[str, float] | Sequence[float] | None = None,
    level: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    shrink: bool = True,
) -> RunAnalysis:
    """Analyse a run folder (see the module docstring for what is computed).

    Args:
        run_dir: the run folder, or one already read with :func:`load_run`.
        objectives: objective names or :class:`Objective` s (default: the config's, else
            ``("auc", "flops")``).
        reference: hypervolume reference, ``{"auc": 0.5, "flops": 1500}`` or one value per
            objective in the objectives' units (default: see the module docstring).
        level: confidence level of the intervals.
        n_resamples: bootstrap resamples; 0 skips the intervals and comparisons.
        seed: bootstrap seed.
        shrink: rank architectures on the stage model's empirical-Bayes estimates when it can
            be fitted with seed noise separated (False: on raw means over seeds).

    Raises:
        ResultsError: the folder or its trial table is missing or empty, or no trial is eligible
            (the message says why, e.g. "all 5 trials failed").

    Example:
        >>> result = analyse_run("runs/demo")  # doctest: +SKIP
        >>> result.front[["arch_id", "auc", "flops_m"]]  # doctest: +SKIP
        >>> result.pick("flops<=1250")["arch"]  # doctest: +SKIP
    """
    run = run_dir if isinstance(run_dir, LoadedRun) else load_run(run_dir)
    objs = _objectives_for(run, objectives)
    eligible, counts = eligible_trials(run, objs)
    good = run.trials[eligible]
    archs = pool_eligible(good, objs)
    counts["archs"] = len(archs)
    stage_model = _fit_stage_model(good, level)
    if shrink:
        shrink_to_stage_model(archs, stage_model)
    points = minimisation_matrix(archs, objs)
    ref = _reference_for(objs, points, reference)
    archs["on_front"] = non_dominated(points)
    front = front_members(archs, objs)
    refs = reference_archs(run)
    baseline, paper = refs.get("baseline", ""), refs.get("paper", "")
    scored = run_scored_labels(run, good)
    noise = run_seed_noise(run, good)
    notes = [n for n in [old_label_rule_note(run, scored)] if n]
    if not noise.known:
        notes.append(NO_SEED_NOISE)
    boot = None
    if n_resamples > 0:
        boot = PredictionBootstrap(
            run, n_resamples=n_resamples, level=level, seed=seed, seed_noise=noise
        )
    paper_vs_baseline = attach_intervals(archs, front, boot, baseline, paper)
    if boot is not None:
        notes.extend(boot.notes)
    if baseline and baseline not in archs.index:
        notes.append("the baseline (no MD-Conv) was not evaluated in this run: no comparison")
    return RunAnalysis(
        run=run,
        objectives=objs,
        eligible=eligible,
        archs=archs,
        front=front,
        reference={o.column: float(o.sign * r) for o, r in zip(objs, ref)},
        hypervolume=hypervolume(points, ref),
        history=hypervolume_over_trials(run.trials, eligible, objs, ref),
        knee=front.index[knee_index(minimisation_matrix(front, objs))],
        baseline=baseline,
        paper=paper,
        stage_share=_stage_share(archs, front),
        counts=counts,
        level=level,
        n_resamples=n_resamples,
        seed_noise=noise,
        stage_model=stage_model,
        scored_labels=scored,
        resolution_warnings=run_resolution_warnings(run),
        wall_time=run_wall_time(run),
        paper_vs_baseline=paper_vs_baseline,
        notes=notes,
    )


# -- the steps --------------------------------------------------------------------------------
def eligible_trials(run: LoadedRun, objectives: Sequence[Objective]) -> tuple[pd.Series, dict]:
    """Which of the run's trials may enter the front (COMPLETE, at the proxy's fidelity, every
    objective present), and the trials counted by outcome (``total``, ``complete``, ``failed``,
    ``stopped``, ``eligible``).

    Raises:
        ResultsError: no stand-alone trial, an objective's column missing, or no trial
            eligible (the message says why, e.g. "all 5 trials failed").
    """
    trials = run.trials
    if trials.empty:  # only a supernet run loads without a stand-alone row
        raise ResultsError(
            f"{run.path} has no finished stand-alone trial yet: the Pareto front is built on "
            "stand-alone trials only (supernet scores rank, they do not enter it); `mdsearch "
            f"report {run.path}` shows the supernet's scores meanwhile"
        )
    columns = [o.column for o in objectives]
    missing = [c for c in columns if c not in trials.columns]
    if missing:
        raise ResultsError(
            f"{run.path / 'trials.csv'} has no column {', '.join(missing)} for the objectives"
        )
    eligible = eligible_mask(trials, columns)
    status = trials["status"]
    counts = {
        "total": len(trials),
        "complete": int((status == "COMPLETE").sum()),
        "failed": int((status == "FAILED").sum()),
        "stopped": int((status == "STOPPED").sum()),
        "eligible": int(eligible.sum()),
    }
    if not eligible.any():
        raise ResultsError(
            f"no trial in {run.path} finished the proxy, so the Pareto front is empty: "
            f"{ineligible_reason(trials, eligible)}"
        )
    return eligible, counts


def pool_eligible(good: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """The eligible trials pooled per architecture (:func:`~mdsearch.results.trials.pool_by_arch`):
    the objectives, AUC, FLOPs, latency (when the table has it), params, train seconds,
    images/s and every per-label AUC, averaged over the seeds."""
    metrics = [o.column for o in objectives]
    metrics += ["auc", "flops_m", "latency_ms", "params_m", "train_seconds", "images_per_s"]
    return pool_by_arch(good, metrics + label_columns(good))


def shrink_to_stage_model(archs: pd.DataFrame, model: StageEffectModel | None) -> None:
    """Rank architectures on the stage model's empirical-Bayes estimates where it separates seed
    noise from interactions (``archs['auc']``), keeping the raw means in ``archs['auc_mean']``:
    a single lucky run must not put an architecture on the front. In place; nothing without a
    model that shrinks."""
    if model is None or not model.shrinks:
        return
    archs["auc_mean"] = archs["auc"]
    archs["auc"] = model.estimates["shrunk"].reindex(archs.index)


def front_members(archs: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """The rows of ``archs`` on the front (``on_front``), cheapest first: by FLOPs when it is an
    objective (else the last objective), then by the first objective."""
    cost = next((o for o in objectives if o.column == "flops_m"), objectives[-1])
    order = list(dict.fromkeys([cost, objectives[0]]))
    return archs[archs["on_front"]].sort_values(
        [o.column for o in order], ascending=[o.direction == "min" for o in order]
    )


def hypervolume_over_trials(
    trials: pd.DataFrame, eligible: pd.Series, objectives: Sequence[Objective], ref: np.ndarray
) -> pd.DataFrame:
    """The front's hypervolume after each trial, on each architecture's mean over the seeds run
    so far, with ``repeat`` (a further seed of an architecture seen before) and ``fell`` (the
    hypervolume went down: a further seed lowered a front member's mean)."""
    points = minimisation_matrix(trials, objectives)
    points[~eligible.to_numpy()] = np.nan
    curve = hypervolume_history(points, ref, groups=trials["arch"])
    seen_before = trials["arch"].where(eligible).duplicated() & eligible
    return pd.DataFrame(
        {
            "trial": trials["trial"].astype(int).to_numpy(),
            "hypervolume": curve,
            "repeat": seen_before.to_numpy(),
            # Relative tolerance: a pooled mean recomputed in another order differs in the last bit.
            "fell": np.r_[False, np.diff(curve) < -1e-12 * max(abs(curve).max(), 1.0)],
        }
    )


def _fit_stage_model(trials: pd.DataFrame, level: float) -> StageEffectModel | None:
    """The additive stage model of the eligible trials, or None when it cannot be fitted."""
    try:
        return fit_stage_effects(trials, level=level)
    except ValueError:
        return None


def _stage_share(archs: pd.DataFrame, front: pd.DataFrame) -> pd.DataFrame:
    """Per stage: number and share of front / all eligible architectures with MD-Conv there."""
    from mdsearch.space import ArchSpec, ArchSpecError

    n_stages = 0
    for arch in archs.index:
        try:
            n_stages = max(n_stages, len(ArchSpec.parse(arch).stages))
        except ArchSpecError:
            continue

    def count(table: pd.DataFrame) -> np.ndarray:
        out = np.zeros(n_stages, dtype=int)
        for stages in table["mdconv_stages"]:
            for i in stages:
                out[i] += 1
        return out

    on_front, overall = count(front), count(archs)
    return pd.DataFrame(
        {
            "front_n": on_front,
            "front_share": on_front / max(len(front), 1),
            "all_n": overall,
            "all_share": overall / max(len(archs), 1),
        },
        index=pd.Index([f"stage{i}" for i in range(n_stages)], name="stage"),
    )


def pick_architecture(run_dir: str | Path, pick: str = "knee", **kwargs: Any) -> pd.Series:
    """The front member a pick string chooses, e.g. for ``mdsearch export --pick``.

    Args:
        run_dir: the run folder.
        pick: ``knee``, ``best-auc``, ``flops<=1250``, ``auc>=0.78`` or ``,``-joined parts
            (see :func:`mdsearch.results.picks.parse_pick`).
        **kwargs: passed to :func:`analyse_run` (``n_resamples=0`` skips the intervals).

    Returns:
        The member's row (``name`` is the canonical arch string; ``arch_id``, ``auc``,
        ``flops_m``, ``trials``, ...).

    Example:
        >>> pick_architecture("runs/demo", "flops<=1250").name  # doctest: +SKIP
        'mobilenetv2_100:c14:k3,k3,k3,k3,k3,k3.5s1:1,k3'
    """
    return analyse_run(run_dir, **kwargs).pick(pick)
