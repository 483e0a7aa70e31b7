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
  wall time (:func:`run_wall_time`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mdsearch.search.scored_labels import LABEL_RULE, LabelRule, ScoredLabels

from .errors import ResultsError
from .fidelity import proxy_check_seed_noise
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
from .seed_noise import SeedNoise, pooled_seed_noise
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
    "WallTime",
    "analyse_run",
    "pick_architecture",
    "run_resolution_warnings",
    "run_scored_labels",
    "run_seed_noise",
    "run_wall_time",
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


def _duration_text(seconds: float) -> str:
    """``42 s``, ``19 min 35 s``, ``2 h 05 min``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


@dataclass(frozen=True)
class WallTime:
    """How long a run took on the wall clock.

    Attributes:
        started: when the search started (config.json's ``created``), UTC.
        finished: when its last trial finished (trials.csv ``finished_at``), UTC.
        sessions: how many times ``mdsearch run`` worked on the folder (1 + resumes, counted
            from its ``tune-<k>`` folders); with more than one the span includes the pauses.
        train_seconds: the trials' training seconds summed (compute, not wall time).
    """

    started: pd.Timestamp
    finished: pd.Timestamp
    sessions: int = 1
    train_seconds: float = float("nan")

    @property
    def seconds(self) -> float:
        """Seconds from start to the last trial's finish."""
        return (self.finished - self.started).total_seconds()

    def text(self) -> str:
        """One line for reports, e.g. ``19 min 35 s (2026-11-30 08:34 to 08:54 UTC)``."""
        fmt = "%Y-%m-%d %H:%M"
        end = self.finished.strftime(
            "%H:%M" if self.finished.date() == self.started.date() else fmt
        )
        out = f"{_duration_text(self.seconds)} ({self.started.strftime(fmt)} to {end} UTC)"
        if self.sessions > 1:
            out += (
                f", over {self.sessions} sessions (resumed {self.sessions - 1} time"
                f"{'s' * (self.sessions > 2)}): the span includes the pauses between them"
            )
        if np.isfinite(self.train_seconds):
            out += f"; the trials trained for {_duration_text(self.train_seconds)} in all"
        return out


def run_wall_time(run: LoadedRun) -> WallTime | None:
    """The run's wall time from config.json's ``created`` to the last ``finished_at`` in its
    trial table; None when either is missing or unreadable (e.g. a hand-made table)."""
    if "finished_at" not in run.trials:
        return None
    finished = pd.to_datetime(run.trials["finished_at"], errors="coerce", utc=True)
    started = pd.to_datetime(run.config.get("created"), errors="coerce", utc=True)
    if finished.isna().all() or pd.isna(started):
        return None
    last = finished.max()
    if last < started:
        return None
    sessions = max(1, len([p for p in run.path.glob("tune-*") if p.is_dir()]))
    train = pd.to_numeric(run.trials.get("train_seconds"), errors="coerce")
    total = float(train.sum()) if train is not None and train.notna().any() else float("nan")
    return WallTime(started, last, sessions, total)


def run_scored_labels(run: LoadedRun, trials: pd.DataFrame) -> ScoredLabels | None:
    """Which labels the run's mean AUC is over: the rule its config.json records (every label
    with both classes for runs older than the rule) applied to the validation targets of the
    first of ``trials`` with readable predictions; None when none has."""
    rule = LabelRule.from_config(run.config)
    for trial in trials["trial"]:
        path = run.predictions_path(int(trial))
        if path is None:
            continue
        try:
            with np.load(path, allow_pickle=False) as data:
                y_true = np.asarray(data["y_true"])
        except (OSError, KeyError, ValueError):
            continue
        y_true = y_true[:, None] if y_true.ndim == 1 else y_true
        names = run.label_names
        return rule.apply(y_true, names if len(names) == y_true.shape[1] else None)
    return None


def run_resolution_warnings(run: LoadedRun) -> dict[int, str]:
    """Stage -> warning for the searched stages whose feature maps at the proxy resolution are
    not larger than their largest kernel choice (:func:`mdsearch.search.resolution_warnings`):
    the proxy cannot rank those stages' choices. The space comes from config.json, else from the
    architectures the table holds; {} when the resolution or the space is unknown."""
    from mdsearch.search import resolution_warnings
    from mdsearch.space import ArchSpec, ArchSpecError, SearchSpace, SpaceError

    resolution = (run.config.get("proxy") or {}).get("resolution")
    if resolution is None and "resolution" in run.trials:
        known = pd.to_numeric(run.trials["resolution"], errors="coerce").dropna()
        resolution = known.iloc[0] if len(known) else None
    space_info = run.config.get("space") or {}
    choices = space_info.get("choices")
    specs = []
    for arch in dict.fromkeys(run.trials["arch"]):
        try:
            specs.append(ArchSpec.parse(arch))
        except ArchSpecError:
            continue
    backbone = space_info.get("backbone") or (specs[0].backbone if specs else None)
    if resolution is None or not backbone:
        return {}
    if not choices:  # an older config: the choices the run evaluated
        choices = {
            f"stage{i}": list(dict.fromkeys(spec.stages[i].token for spec in specs))
            for i in range(len(specs[0].stages) if specs else 0)
        }
    try:
        space = SearchSpace.from_dict({"stages": choices}, str(space_info.get("name")), backbone)
    except (SpaceError, ArchSpecError):
        return {}
    warned = resolution_warnings(space, int(resolution))
    stages = [int(re.match(r"stage(\d+)", w).group(1)) for w in warned]
    return dict(zip(stages, warned))


def _old_rule_note(run: LoadedRun, scored: ScoredLabels | None) -> str | None:
    """For a run searched before the label rule: which labels the rule would leave out now."""
    if scored is None or "label_rule" in run.config:
        return None
    now = replace(scored, rule=LABEL_RULE)
    extra = [n for n in now.excluded if n not in scored.excluded]
    if not extra:
        return None
    parts = "; ".join(f"{n} ({scored.counts_text(n)})" for n in extra)
    return (
        f"this run was searched before labels with fewer than {LABEL_RULE.min_positives} "
        f"positives or {LABEL_RULE.min_negatives} negatives in the validation split were left "
        f"out of the mean AUC: its mean AUCs (and their intervals) include {parts}"
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
    trials = run.trials
    if trials.empty:  # only a supernet run loads without a stand-alone row
        raise ResultsError(
            f"{run.path} has no finished stand-alone trial yet: the Pareto front is built on "
            "stand-alone trials only (supernet scores rank, they do not enter it); `mdsearch "
            f"report {run.path}` shows the supernet's scores meanwhile"
        )
    columns = [o.column for o in objs]
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
    good = trials[eligible]
    # latency_ms rides along when the table has it (an objective, or predicted anyway).
    metrics = [*columns, "auc", "flops_m", "latency_ms", "params_m", "train_seconds"]
    metrics += ["images_per_s"]
    metrics += label_columns(trials)
    archs = pool_by_arch(good, metrics)
    counts["archs"] = len(archs)
    stage_model = _fit_stage_model(good, level)
    if stage_model is not None and shrink and stage_model.shrinks:
        # A single lucky run must not put an architecture on the front: rank on the
        # empirical-Bayes estimates, keep the raw means beside them.
        archs["auc_mean"] = archs["auc"]
        archs["auc"] = stage_model.estimates["shrunk"].reindex(archs.index)

    points = minimisation_matrix(archs, objs)
    ref = _reference_for(objs, points, reference)
    archs["on_front"] = non_dominated(points)
    hv = hypervolume(points, ref)

    history_points = minimisation_matrix(trials, objs)
    history_points[~eligible.to_numpy()] = np.nan
    curve = hypervolume_history(history_points, ref, groups=trials["arch"])
    seen_before = trials["arch"].where(eligible).duplicated() & eligible
    history = pd.DataFrame(
        {
            "trial": trials["trial"].astype(int).to_numpy(),
            "hypervolume": curve,
            "repeat": seen_before.to_numpy(),
            # Relative tolerance: a pooled mean recomputed in another order differs in the last bit.
            "fell": np.r_[False, np.diff(curve) < -1e-12 * max(abs(curve).max(), 1.0)],
        }
    )

    refs = reference_archs(run)
    baseline, paper = refs.get("baseline", ""), refs.get("paper", "")

    # Cheapest first: by FLOPs when it is an objective (else the last objective), then the first.
    cost = next((o for o in objs if o.column == "flops_m"), objs[-1])
    order = list(dict.fromkeys([cost, objs[0]]))
    front = archs[archs["on_front"]].sort_values(
        [o.column for o in order], ascending=[o.direction == "min" for o in order]
    )
    knee_arch = front.index[knee_index(minimisation_matrix(front, objs))]

    scored = run_scored_labels(run, good)
    notes: list[str] = [n for n in [_old_rule_note(run, scored)] if n]
    noise = run_seed_noise(run, good)
    if not noise.known:
        notes.append(NO_SEED_NOISE)
    paper_vs_baseline = None
    archs["auc_ci_low"] = np.nan
    archs["auc_ci_high"] = np.nan
    front["vs_cheaper"] = None
    front["vs_baseline"] = None
    if n_resamples > 0:
        boot = PredictionBootstrap(
            run, n_resamples=n_resamples, level=level, seed=seed, seed_noise=noise
        )
        wanted = [a for a in [*front.index, baseline, paper] if a in archs.index]
        for arch in dict.fromkeys(wanted):
            low, high = boot.interval(archs.at[arch, "trials"])
            archs.loc[arch, ["auc_ci_low", "auc_ci_high"]] = [low, high]
        cheaper: list[Any] = [None]
        members = list(front.index)
        for prev, cur in zip(members, members[1:]):
            cheaper.append(boot.difference(archs.at[cur, "trials"], archs.at[prev, "trials"]))
        front["vs_cheaper"] = cheaper
        if baseline in archs.index:
            base_trials = archs.at[baseline, "trials"]
            front["vs_baseline"] = [
                None if a == baseline else boot.difference(archs.at[a, "trials"], base_trials)
                for a in members
            ]
            if paper in archs.index and paper != baseline:
                paper_vs_baseline = boot.difference(archs.at[paper, "trials"], base_trials)
        notes.extend(boot.notes)
    front["auc_ci_low"] = archs.loc[front.index, "auc_ci_low"]
    front["auc_ci_high"] = archs.loc[front.index, "auc_ci_high"]
    for col in ("vs_cheaper", "vs_baseline"):
        front[col + "_distinct"] = [
            d.distinguishable if d is not None else None for d in front[col]
        ]
    if baseline and baseline not in archs.index:
        notes.append("the baseline (no MD-Conv) was not evaluated in this run: no comparison")

    stage_share = _stage_share(archs, front)
    return RunAnalysis(
        run=run,
        objectives=objs,
        eligible=eligible,
        archs=archs,
        front=front,
        reference={o.column: float(o.sign * r) for o, r in zip(objs, ref)},
        hypervolume=hv,
        history=history,
        knee=knee_arch,
        baseline=baseline,
        paper=paper,
        stage_share=stage_share,
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


def _fit_stage_model(trials: pd.DataFrame, level: float) -> StageEffectModel | None:
    """The additive stage model of the eligible trials, or None when it cannot be fitted."""
    try:
        return fit_stage_effects(trials, level=level)
    except ValueError:
        return None


def run_seed_noise(run: LoadedRun, trials: pd.DataFrame) -> SeedNoise:
    """Seed noise of one proxy run's AUC in ``run``: pooled over the architectures among
    ``trials`` (those that finished the proxy) with several seeds, plus the run's proxy-check at
    the run's proxy length when there is one."""
    own = pooled_seed_noise(trials["auc"].to_numpy(), trials["arch"].to_numpy())
    epochs = (run.config.get("proxy") or {}).get("epochs")
    return own + proxy_check_seed_noise(run.path, epochs)


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
