"""What a run folder says about a run besides its front: how long it took, which labels its mean
AUC is over, and which stages its proxy resolution cannot rank.

Each is one step of :func:`~mdsearch.results.analysis.analyse_run`: :func:`run_wall_time`
(config.json's start to the last trial's finish, over how many sessions), :func:`run_scored_labels`
(the label rule applied to the saved validation targets) with :func:`old_label_rule_note` for runs
searched before the rule, and :func:`run_resolution_warnings` (stages whose maps at the proxy
resolution are not larger than their kernels).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from mdsearch.search.scored_labels import LABEL_RULE, LabelRule, ScoredLabels

from .trials import LoadedRun

__all__ = [
    "WallTime",
    "old_label_rule_note",
    "run_resolution_warnings",
    "run_scored_labels",
    "run_wall_time",
]


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


def old_label_rule_note(run: LoadedRun, scored: ScoredLabels | None) -> str | None:
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
