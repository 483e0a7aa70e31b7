"""The Ray side of a search: start or join Ray, run the trials with Ray Tune, handle Ctrl-C.

Faults:

- a trial that raises, diverges, runs out of memory or passes ``--trial-timeout`` reports its
  failure as its final result (status FAILED, the reason in ``error``); its worker is reused;
- a trial whose worker or node dies is retried by Ray Tune (``--max-failures`` times, same trial
  id, same seed) and gets one row when it finally ends, wherever it ran;
- a hung trial is stopped by a watchdog thread that leaves ``faults/<trial id>.json`` and ends
  the worker process; the retry (or the driver) reads the reason and records FAILED;
- Ctrl-C stops every trial: interrupted trials write no row and stay RUNNING in the study
  (marked ``interrupted``); ``--resume`` marks them FAIL and runs them again first, as after a
  kill. The command exits with 130;
- a run folder that cannot be written stops the search with one line naming the file.

Early stopping (``--early-stop asha``) stops weak trials on AUC alone; such a trial keeps its row
with status STOPPED and the fidelity it reached, and Optuna is told it was PRUNED.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from mdsearch.space import SearchSpace

from .run_settings import SearchSettings
from .runfolder import RunError, RunFolder
from .study import STUDY_NAME, make_sampler, proxy_search_class
from .trial import TrialContext, run_trial
from .trial_table import TrialTable

if TYPE_CHECKING:
    from ray.tune import Stopper

    from .progress import InterruptFlag
    from .study import ConfirmPolicy, ExplorePlan

__all__ = [
    "SigintSetsEvent",
    "TrialPlan",
    "interrupt_stopper",
    "run_trials",
    "start_ray",
    "stop_ray",
]


@dataclass(frozen=True)
class TrialPlan:
    """What this invocation of the search runs, besides the settings.

    What the table already holds (its rows of this phase's kind, the architectures they
    trained, the next row's number) is read off the run's
    :class:`~mdsearch.search.trial_table.TrialTable`, which :func:`run_trials` takes beside
    the plan.

    Args:
        remaining: trials left to the budget.
        points: Optuna parameters to evaluate first (reference architectures, then trials a
            kill or Ctrl-C left unfinished).
        num_classes: the dataset's number of findings.
        total: trials of this phase in all, for the progress display (None: the budget).
        proxy: the rows this phase writes (``standalone`` or ``supernet``: what the progress,
            the failure count and the repeats' seeds are over).
        study_name: the Optuna study of this phase.
        explore_plan: what the exploration proposes before the sampler does (None: the
            sampler only).
        confirm: whether the confirmation phase follows the exploration (``--confirm``).
        desc: the progress bar's label.
    """

    remaining: int
    points: Sequence[dict[str, Any]]
    num_classes: int
    total: int | None = None
    proxy: str = "standalone"
    study_name: str = STUDY_NAME
    explore_plan: ExplorePlan | None = None
    confirm: bool = True
    desc: str = "search"


def start_ray(address: str | None) -> bool:
    """Start a local Ray, or join the cluster at ``address`` (a user error when unreachable);
    False when Ray was already initialised by the caller (a notebook), which keeps it."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    try:
        ray.init(
            address=address or "local",
            include_dashboard=False,
            logging_level="ERROR",
            log_to_driver=False,
            configure_logging=True,
            runtime_env=None,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        if address is None:
            raise
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise RunError(
            f"--address {address}: cannot join a Ray cluster there ({first}); start one with "
            "`ray start --head` and, with token authentication, set RAY_AUTH_MODE=token and "
            "RAY_AUTH_TOKEN (or ~/.ray/auth_token) as on the cluster"
        ) from exc
    return True


def stop_ray() -> None:
    """Shut down the Ray that :func:`start_ray` started."""
    import ray

    ray.shutdown()


def run_trials(
    settings: SearchSettings,
    space: SearchSpace,
    folder: RunFolder,
    context: TrialContext,
    plan: TrialPlan,
    *,
    table: TrialTable,
    quiet: bool = False,
    confirm_policy: ConfirmPolicy | None = None,
) -> None:
    """Run ``plan.remaining`` trials with Ray Tune (Ray must be started), recording each one.

    Args:
        settings: the search.
        space: the searched space.
        folder: the run folder (its study.db, trials.csv and ``tune-<k>`` folders).
        context: what every trial shares.
        plan: what to run now.
        table: the run's trial table in memory: the recorder appends each row to it, the
            searcher (repeats, the confirmation policy) and the progress line read it.
        quiet: no progress display.
        confirm_policy: chooses the architectures of the confirmation phase (after
            ``settings.explore_trials`` proposals); None explores to the end.

    Raises:
        KeyboardInterrupt: after Ctrl-C, once every trial has stopped (one line says how to
            resume).
        RunError: the run folder could not be written.
    """
    import optuna
    from ray import tune

    from .progress import InterruptFlag, LiveProgress, TrialNumbers, TrialRecorder

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    interrupted = InterruptFlag()
    numbers = TrialNumbers(start=len(table))  # trials.csv numbers, also stored in the study
    done = table.count(plan.proxy)
    storage = optuna.storages.RDBStorage(folder.study_url)
    searcher = proxy_search_class()(
        space=space.distributions(),
        metric=settings.metric_columns,
        mode=settings.metric_modes,
        sampler=make_sampler(settings.sampler, settings.seed, space, settings.budget),
        study_name=plan.study_name,
        storage=storage,
        points_to_evaluate=list(plan.points) or None,
        mdsearch_space=space,
        num_classes=plan.num_classes,
        seed=settings.seed,
        seen=table.seen(plan.proxy),
        interrupted=interrupted,
        confirm_after=settings.explore_trials if plan.confirm and settings.confirm > 0 else None,
        confirm_policy=confirm_policy if plan.confirm else None,
        trial_table=table,
        trial_numbers=numbers,
        explore_plan=plan.explore_plan,
    )
    scheduler = None
    if settings.early_stop == "asha":
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(
            metric="auc",
            mode="max",
            time_attr="epoch",
            max_t=settings.proxy.epochs,
            grace_period=1,
            reduction_factor=2,
        )
    recorder = TrialRecorder(
        folder,
        table,
        settings.metric_columns,
        settings.metric_modes,
        quiet=quiet,
        interrupted=interrupted,
        numbers=numbers,
        proxy=plan.proxy,
    )
    callbacks: list[tune.Callback] = [recorder]
    if not quiet:
        callbacks.append(
            LiveProgress(
                recorder,
                total=settings.budget if plan.total is None else plan.total,
                done=done,
                desc=plan.desc,
            )
        )
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, ctx=context),
        {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial},
    )
    invocation = len(list(folder.path.glob("tune-*")))
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=plan.remaining,
            reuse_actors=True,
            max_concurrent_trials=settings.max_concurrent,
        ),
        run_config=tune.RunConfig(
            name=f"tune-{invocation}",
            storage_path=str(folder.path),
            verbose=0,
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            stop=interrupt_stopper(interrupted),
            log_to_file=True,
        ),
    )
    # Failed trials are recorded in the table and reported in one line by the recorder;
    # Tune's own tracebacks would bury the progress display.
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    with SigintSetsEvent(interrupted):
        try:
            tuner.fit()
        except KeyboardInterrupt:  # a second Ctrl-C: stop without waiting for Tune
            interrupted.set()
        except Exception:
            if recorder.fatal is None:
                raise
        if recorder.fatal is not None:  # the run folder could not be written
            raise recorder.fatal
    if interrupted.is_set():
        searcher.mark_interrupted()
        print(
            f"\ninterrupted: {recorder.count} trials are in {folder.table_path}; the "
            f"running ones have no row and run again first with "
            f"`mdsearch run --resume {folder.path}`",
            file=sys.stderr,
        )
        raise KeyboardInterrupt


def interrupt_stopper(interrupted: InterruptFlag) -> Stopper:
    """A Tune stopper that ends the experiment once ``interrupted`` is set."""
    from ray.tune import Stopper

    class StopOnInterrupt(Stopper):
        """Ends the experiment (every trial, no further proposals) once Ctrl-C was pressed."""

        def __init__(self, interrupted: InterruptFlag) -> None:
            self.interrupted = interrupted

        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            return self.interrupted.is_set()

    return StopOnInterrupt(interrupted)


class SigintSetsEvent:
    """While active, the first SIGINT only sets ``event`` (Tune then stops every trial at its
    next step); a second one raises KeyboardInterrupt at once. Outside the main thread (a
    notebook worker thread) signals cannot be caught and nothing changes."""

    def __init__(self, event: InterruptFlag) -> None:
        self.event = event
        self.previous: Any = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()
        signal.signal(signal.SIGINT, self.previous or signal.default_int_handler)

    def __enter__(self) -> SigintSetsEvent:
        if threading.current_thread() is threading.main_thread():
            # Tune's own handler would end fit() quietly, without telling us.
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
