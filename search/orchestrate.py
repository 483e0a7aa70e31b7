"""The search: Ray Tune runs Optuna-guided proxy trials and records every one in the run folder.

Flow of one ``mdsearch run`` (each step's module in brackets):

1. everything the user typed is checked before Ray starts: the settings, the space, the folder
   (:func:`prepare`; :mod:`~mdsearch.search.run_settings`);
2. the driver loads the data once, so the decoded cache exists before any worker maps it
   (:mod:`~mdsearch.search.proxy_data`), and when latency is an objective the latency table
   (:mod:`~mdsearch.search.latency_for_search`);
3. ``OptunaSearch`` (multi-objective: maximise validation AUC, minimise FLOPs and/or latency, as
   ``--objectives`` says) proposes architectures, decoded once to their canonical string; its
   study lives in ``study.db`` inside the run folder (:mod:`~mdsearch.search.study`);
4. each trial (:func:`mdsearch.search.trial.run_trial`) runs the proxy in a reused Ray actor
   (torch and timm are imported once per worker, not once per trial), writes its validation
   predictions and reports every column of its row (:mod:`~mdsearch.search.trial_table`);
5. the driver appends one row per finished trial to ``trials.csv`` and shows live progress
   (:mod:`~mdsearch.search.progress`; Ray's lifecycle and Ctrl-C:
   :mod:`~mdsearch.search.ray_session`).

With ``--strategy supernet`` steps 3-5 are preceded by the supernet's training and the scoring
of sub-networks on it, and the stand-alone trials train the supernet's best-ranked
architectures first (:mod:`~mdsearch.search.supernet_run`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mdsearch.space import SearchSpace, load_space

from . import ray_session
from .latency_for_search import check_latency_device, run_latency_table
from .provenance import run_config
from .proxy_data import load_proxy_data
from .run_settings import GRID_LIMIT, SearchSettings
from .runfolder import PARTIAL_ROWS_FILE, RunError, RunFolder
from .scored_labels import LABEL_RULE, LabelRule
from .study import covering_plan, recover_study
from .supernet_run import candidate_plan, score_phase, train_supernet_phase
from .trial import FAULT_KINDS, TEST_FAULT_ENV, TrialContext
from .trial_table import TrialTable

if TYPE_CHECKING:
    import pandas as pd

    from .study import ConfirmPolicy

__all__ = ["FinishedSearch", "Prepared", "prepare", "run_search"]


@dataclass(frozen=True)
class Prepared:
    """A checked search, ready to run: what :func:`prepare` returns.

    Args:
        settings: the checked settings.
        space: the searched space.
        folder: the run folder (not written yet).
        resume: whether the folder's search is continued.
    """

    settings: SearchSettings
    space: SearchSpace
    folder: RunFolder
    resume: bool


@dataclass(frozen=True)
class FinishedSearch:
    """What :func:`run_search` returns: the run folder and its trial table as the search left
    it (in memory: every row it read back on resume or wrote since, each also in trials.csv).

    Args:
        folder: the run folder.
        table: its trial table.
    """

    folder: RunFolder
    table: TrialTable


def prepare(settings: SearchSettings, out: str | Path, *, resume: bool = False) -> Prepared:
    """Check everything the user typed, before Ray starts or anything is written.

    Args:
        settings: the search's settings (on resume: the run's, as config.json holds them).
        out: the run folder.
        resume: continue the search in ``out`` instead of starting one there.

    Raises:
        RunError, SettingsError, SpaceError, DataError: one line naming the flag and what to do.
    """
    folder = RunFolder(out)
    if resume:
        folder.check_resumable()
    else:
        folder.check_new()
    settings = settings.check()
    # Trials run in their own working directory (Ray Tune's trial folder): a relative
    # kermany=../data or --cache-dir would name nothing there.
    settings = replace(settings, data=settings.data.absolute())
    fault = os.environ.get(TEST_FAULT_ENV, "")
    if fault and fault.partition(":")[0] not in FAULT_KINDS:
        raise RunError(f"{TEST_FAULT_ENV}={fault!r}: use KIND:REGEX with KIND one of {FAULT_KINDS}")
    space = recorded_space(folder) if resume else None
    if space is None:
        space = load_space(settings.space, settings.backbone, resolution=settings.data.resolution)
    if settings.sampler == "grid" and space.size > GRID_LIMIT:
        raise RunError(
            f"--sampler grid: space {space.name} has {space.size} architectures, more than a "
            f"grid can cover ({GRID_LIMIT}); use tpe, nsga2 or random"
        )
    check_latency_device(settings.latency_device, needed="latency" in settings.objectives)
    return Prepared(settings, space, folder, resume)


def recorded_space(folder: RunFolder) -> SearchSpace | None:
    """The space a run searched, as its config.json records it (None: not recorded): a resumed
    run keeps it even when the preset's meaning changed since (``default`` became the stages
    visible at the proxy's resolution)."""
    info = folder.read_config().get("space") or {}
    choices = info.get("choices")
    if not choices:
        return None
    data = {"backbone": info.get("backbone"), "stages": choices}
    space = SearchSpace.from_dict(data, str(info.get("name", "recorded")))
    held = tuple(
        (int(k.removeprefix("stage")), str(v)) for k, v in (info.get("held") or {}).items()
    )
    return replace(space, held=held, description=space.description)


def _resume_summary(
    folder: RunFolder, table: pd.DataFrame, budget: int, rerun: int, references: int = 0
) -> str:
    """What ``--resume`` found, in one line: rows done (by status), the trials a kill or Ctrl-C
    interrupted (run again first), and what is left of the budget.

    Args:
        folder: the run folder.
        table: its trial table.
        budget: the run's budget (trials in total).
        rerun: interrupted trials that run again first.
        references: reference architectures not evaluated yet (also run first).

    Example:
        >>> import pandas as pd
        >>> table = pd.DataFrame({"status": ["COMPLETE", "COMPLETE", "FAILED"]})
        >>> _resume_summary(RunFolder("runs/a"), table, 10, 1).split(": ", 1)[1]
        '3 of 10 trials done (2 complete, 1 failed); 1 interrupted trial runs again first; 7 left to the budget'
    """
    counts = table["status"].value_counts() if len(table) else {}
    by_status = ", ".join(f"{n} {status.lower()}" for status, n in counts.items())
    text = f"resuming {folder.path}: {len(table)} of {budget} trials done"
    text += f" ({by_status})" if by_status else ""
    if rerun:
        text += f"; {_count(rerun, 'interrupted trial')} {_runs(rerun)} again first"
    if references:
        text += f"; {_count(references, 'reference architecture')} not evaluated yet "
        text += f"{_runs(references)} first"
    return text + f"; {max(0, budget - len(table))} left to the budget"


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def _runs(n: int) -> str:
    return "runs" if n == 1 else "run"


def run_search(
    prepared: Prepared,
    *,
    quiet: bool = False,
    confirm_policy: ConfirmPolicy | None = None,
) -> FinishedSearch:
    """Run (or resume) the search to its budget; returns the run folder and its table.

    The trial table is held in memory while the search runs (trials.csv is read once, on
    ``--resume``, and appended to as trials end).

    Ray is started locally and stopped again unless ``settings.address`` names a cluster.

    Args:
        prepared: what :func:`prepare` returned.
        quiet: no progress display and no notes on stderr.
        confirm_policy: chooses the architectures of the confirmation phase (the command line
            passes :class:`mdsearch.results.FrontConfirmation`); None explores to the end.
    """
    settings, space, folder = prepared.settings, prepared.space, prepared.folder
    with folder.lock():
        say = (lambda *a: None) if quiet else (lambda msg: print(msg, file=sys.stderr))
        # A resumed run keeps the label rule its config.json records (none: a run from before
        # the rule, which scored every label with both classes), so all its rows mean the same.
        label_rule = LabelRule.from_config(folder.read_config()) if prepared.resume else LABEL_RULE
        dataset = load_proxy_data(
            settings.data,
            space,
            say,
            progress=not quiet,
            val_subset=settings.proxy.val_subset,
            rule=label_rule,
        )
        num_classes = len(dataset.label_names)
        if prepared.resume and (partial := folder.set_aside_partial_row()):
            say(
                f"{folder.table_path}: its last row was cut off mid-write ({partial[:40]}...); "
                f"moved to {PARTIAL_ROWS_FILE}, the run goes on from the complete rows"
            )
        table = (
            TrialTable.read(folder.table_path, dataset.label_names)  # the one read of trials.csv
            if prepared.resume
            else TrialTable.new(dataset.label_names)
        )
        done = table.count("standalone")  # a supernet run's scores are not trials
        remaining = settings.budget - done
        if remaining <= 0:
            say(f"{folder.path}: all {settings.budget} trials of the budget are done")
            return FinishedSearch(folder, table)
        latency = None
        if "latency" in settings.objectives:  # before Ray: timing wants the CPU to itself
            latency = run_latency_table(settings, space, folder, resume=prepared.resume, say=say)
        # Ray first: an unreachable --address then leaves no half-made run folder behind.
        started_ray = ray_session.start_ray(settings.address)
        try:
            if not prepared.resume:
                folder.create(run_config(settings, space, dataset, folder.path.name, latency))
            if settings.budget > space.size:
                say(
                    f"note: --budget {settings.budget} exceeds the {space.size} distinct "
                    f"architectures of space {space.name}: each is trained once (in a random "
                    "order) before further seeds of any"
                )
            metrics = settings.metric_columns
            trials = table.frame("standalone")
            again = recover_study(folder, space, trials, metrics) if prepared.resume else []
            seen = table.seen("standalone")
            refs = [
                space.encode(r)
                for r in space.reference_points(num_classes)
                if r.canonical not in seen
            ]
            if prepared.resume:
                say(_resume_summary(folder, trials, settings.budget, len(again), len(refs)))
            context = TrialContext(
                data=settings.data,
                recipe=settings.proxy,
                threads=settings.trial_threads,
                input_size=settings.input_size,
                run_dir=str(folder.path),
                eval_every_epoch=settings.early_stop == "asha",
                use_gpu=settings.gpus_per_trial > 0,
                trial_timeout=settings.trial_timeout,
                test_fault=os.environ.get(TEST_FAULT_ENV, ""),
                latency=latency,
                label_rule=label_rule,
            )
            explore_plan = None
            if settings.strategy == "supernet":
                train_supernet_phase(settings, space, folder, say=say, quiet=quiet)
                score_phase(
                    settings,
                    space,
                    folder,
                    context,
                    table=table,
                    num_classes=num_classes,
                    quiet=quiet,
                    say=say,
                )
                explore_plan = candidate_plan(table, metrics[1])
                say(f"stand-alone: {remaining} trial(s) of the supernet's best-ranked")
            if space.size <= settings.budget:  # each architecture once before any repeat
                first = explore_plan.archs if explore_plan is not None else ()
                explore_plan = covering_plan(space, num_classes, settings.seed, first)
            plan = ray_session.TrialPlan(
                remaining=remaining,
                points=refs + [p for p in again if p not in refs],
                num_classes=num_classes,
                explore_plan=explore_plan,
                desc="stand-alone" if settings.strategy == "supernet" else "search",
            )
            ray_session.run_trials(
                settings,
                space,
                folder,
                context,
                plan,
                table=table,
                quiet=quiet,
                confirm_policy=confirm_policy,
            )
        finally:
            if started_ray:
                ray_session.stop_ray()
    return FinishedSearch(folder, table)
