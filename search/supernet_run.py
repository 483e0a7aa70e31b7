"""``mdsearch run --strategy supernet``: train one weight-sharing supernet, score sub-networks on
it, then train the best-ranked on their own.

The three phases of a supernet run, each through Ray Tune like any trial (so each runs on a
cluster node or a GPU), all in one run folder:

1. **train** (:func:`train_supernet_phase`): one Ray Tune trial trains the supernet
   (:func:`~mdsearch.search.supernet.train_supernet`: sandwich rule, checkpoint
   ``supernet.pt`` after every epoch) on one node's CPUs (or ``--gpus-per-trial``); the driver
   writes its record, ``supernet.json``. A killed or interrupted training continues from its
   last epoch on ``--resume``;
2. **score** (:func:`score_phase`): Ray Tune + Optuna trials, one per sub-network, each a
   :func:`~mdsearch.search.trial.run_trial` that loads the supernet once per worker and scores
   its architecture (BatchNorm recalibrated, then validation AUC; predictions saved like a
   trial's). Their rows go to trials.csv with ``proxy`` = ``supernet`` and their Optuna trials to
   the study ``mdsearch-supernet``. A space no larger than ``--supernet-scores`` (e.g.
   ``paper``) is scored exhaustively, a larger one as the sampler proposes;
3. **stand-alone** (the ordinary search, :func:`~mdsearch.search.ray_session.run_trials`, with
   :func:`candidate_plan`): the baseline and the paper's network first, then the architectures
   in the order :func:`~mdsearch.search.supernet_candidates.rank_candidates` gives (the
   supernet's Pareto layers), one seed each, then the confirmation phase (``--confirm``)
   gives further seeds to those whose intervals touch the front. ``--budget`` counts these
   trials; the front and every claim of the report rest on them only.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .runfolder import RunError, RunFolder
from .settings import DataSettings, TrainRecipe
from .study import SUPERNET_STUDY_NAME, ExplorePlan, InOrder, recover_study
from .supernet import SupernetSettings
from .supernet_candidates import rank_candidates
from .trial import TrialContext, _failure_reason, _node_id, _worker_dataset
from .trial_table import TrialTable

if TYPE_CHECKING:
    from mdsearch.space import SearchSpace

    from .run_settings import SearchSettings

__all__ = [
    "SupernetTrialContext",
    "candidate_plan",
    "score_phase",
    "train_supernet_phase",
    "train_supernet_trial",
]


@dataclass(frozen=True)
class SupernetTrialContext:
    """What the supernet's training trial needs (shipped to its worker).

    Args:
        space: the searched space.
        data: the proxy data.
        recipe: the supernet's training recipe (the proxy's, with ``--supernet-epochs``).
        proxy: the stand-alone proxy recipe its cost is counted in.
        settings: the sandwich and the recalibration.
        checkpoint: ``supernet.pt`` in the run folder.
        threads: torch threads.
        use_gpu: train on the worker's GPU.
    """

    space: SearchSpace
    data: DataSettings
    recipe: TrainRecipe
    proxy: TrainRecipe
    settings: SupernetSettings
    checkpoint: str
    threads: int
    use_gpu: bool


def train_supernet_trial(config: dict[str, Any], ctx: SupernetTrialContext) -> None:
    """Ray Tune function trainable: the supernet's training (continued from its checkpoint).

    Reports after every epoch (``final: False``: ``epoch``, ``loss``, ``images``,
    ``seconds``), then once with ``final: True`` and ``record`` (:func:`_record`), or with an
    ``error`` line when the training failed (diverged, out of memory): the driver stops the
    run with it, and ``--resume`` continues from the last checkpointed epoch.
    """
    from ray import tune

    from .supernet import train_supernet

    def on_epoch(training: Any, stats: Any) -> None:
        tune.report(
            {
                "epoch": training.epochs_done,
                "loss": stats.loss,
                "images": stats.images,
                "seconds": stats.seconds,
                "final": False,
            }
        )

    try:
        training = train_supernet(
            ctx.space,
            _worker_dataset(ctx),  # type: ignore[arg-type]  # it reads only ctx.data
            ctx.recipe,
            int(config["seed"]),
            settings=ctx.settings,
            checkpoint=ctx.checkpoint,
            proxy=ctx.proxy,
            device="cuda" if ctx.use_gpu else "cpu",
            threads=ctx.threads,
            on_epoch=on_epoch,
        )
    except Exception as exc:  # reported: the driver stops the run with one line
        tune.report({"final": True, "error": _failure_reason(exc)})
        return
    tune.report({"final": True, "record": _record(training, ctx)})


def _record(training: Any, ctx: SupernetTrialContext) -> dict[str, Any]:
    """supernet.json: what the training was and what it cost."""
    return {
        "checkpoint": Path(ctx.checkpoint).name,
        "epochs": ctx.recipe.epochs,
        "epochs_done": training.epochs_done,
        "random_subnets": ctx.settings.random_subnets,
        "distill": ctx.settings.distill,
        "kernel_transform": ctx.settings.kernel_transform,
        "per_choice_depthwise": ctx.settings.per_choice_depthwise,
        "recalibration_images": ctx.settings.recalibration_images,
        "train_seconds": training.seconds,
        "images": training.images,
        "images_per_s": training.images_per_s,
        "proxy_equivalents": training.proxy_equivalents,
        "device": "cuda" if ctx.use_gpu else "cpu",
        "threads": ctx.threads,
        "node_id": _node_id(),
        "history": [
            {"epoch": i, "loss": e.loss, "images": e.images, "seconds": e.seconds}
            for i, e in enumerate(training.epochs, 1)
        ],
    }


def _node_cpus(settings: SearchSettings) -> float:
    """CPUs the training trial asks for: the share the search's trials would take together
    (``--max-concurrent`` x ``--cpus-per-trial``), at most one node's (the largest alive one):
    it is the only trial running, and one trial cannot span nodes."""
    import ray

    node = max(n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive"))
    if settings.max_concurrent is not None:
        node = min(node, settings.max_concurrent * settings.cpus_per_trial)
    return max(settings.cpus_per_trial, node)


def train_supernet_phase(
    settings: SearchSettings,
    space: SearchSpace,
    folder: RunFolder,
    *,
    say: Callable[[str], None],
    quiet: bool = False,
) -> dict[str, Any]:
    """Phase 1: the supernet's training as one Ray Tune trial (Ray must be started); returns
    its record (also written to supernet.json). A finished training is not run again.

    Raises:
        RunError: the training failed (the message names why and how to continue).
        KeyboardInterrupt: after Ctrl-C, once the trial stopped.
    """
    from ray import tune

    from .progress import InterruptFlag
    from .ray_session import SigintSetsEvent, interrupt_stopper

    record = folder.read_supernet_record()
    if record is not None and record.get("epochs_done", 0) >= settings.supernet_epochs:
        say(
            f"supernet: trained ({record['epochs_done']} epochs, "
            f"{record['proxy_equivalents']:.0f} stand-alone proxy trials of compute); reusing "
            f"{folder.supernet_checkpoint.name}"
        )
        return record
    cpus = _node_cpus(settings)
    ctx = SupernetTrialContext(
        space=space,
        data=settings.data,
        recipe=replace(settings.proxy, epochs=settings.supernet_epochs),
        proxy=settings.proxy,
        settings=settings.supernet,
        checkpoint=str(folder.supernet_checkpoint),
        threads=max(1, int(cpus)),
        use_gpu=settings.gpus_per_trial > 0,
    )
    sandwich = ctx.settings.subnets_per_step - 2
    options = [
        name
        for name, on in (
            ("in-place distillation", ctx.settings.distill),
            ("learned kernel transform", ctx.settings.kernel_transform),
            ("per-choice depthwise weights", ctx.settings.per_choice_depthwise),
        )
        if on
    ]
    say(
        f"supernet: training {ctx.recipe.epochs} epochs x {ctx.recipe.train_subset or 'all'} "
        "training images, "
        f"each step the largest + the smallest + {sandwich} random sub-networks"
        + "".join(f", {o}" for o in options)
        + ", on "
        f"{'a GPU' if ctx.use_gpu else f'{ctx.threads} CPU thread(s)'}"
        + (" (continuing from its checkpoint)" if folder.supernet_checkpoint.exists() else "")
    )
    interrupted = InterruptFlag()
    progress = _epoch_lines_class()(ctx.recipe.epochs, say if not quiet else (lambda m: None))
    trainable = tune.with_resources(
        tune.with_parameters(train_supernet_trial, ctx=ctx),
        {"cpu": cpus, "gpu": settings.gpus_per_trial},
    )
    invocation = len(list(folder.path.glob("supernet-*")))
    tuner = tune.Tuner(
        trainable,
        param_space={"seed": settings.seed},
        tune_config=tune.TuneConfig(num_samples=1),
        run_config=tune.RunConfig(
            name=f"supernet-{invocation}",
            storage_path=str(folder.path),
            verbose=0,
            callbacks=[progress],
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            stop=interrupt_stopper(interrupted),
            log_to_file=True,
        ),
    )
    with SigintSetsEvent(interrupted):
        try:
            grid = tuner.fit()
        except KeyboardInterrupt:
            interrupted.set()
    if interrupted.is_set():
        print(
            f"\ninterrupted: the supernet's training keeps its last finished epoch in "
            f"{folder.supernet_checkpoint}; `mdsearch run --resume {folder.path}` continues it",
            file=sys.stderr,
        )
        raise KeyboardInterrupt
    result = (grid[0].metrics or {}) if len(grid) else {}
    if not result.get("final") or result.get("error"):
        why = result.get("error") or (str(grid[0].error) if len(grid) and grid[0].error else "")
        raise RunError(
            f"the supernet's training failed: {why or 'its worker died'}; fix the cause (e.g. "
            f"lower --lr or --batch-size), then `mdsearch run --resume {folder.path}` continues "
            "from its last finished epoch"
        )
    record = result["record"]
    folder.write_supernet_record(record)
    say(
        f"supernet: trained in {record['train_seconds']:.0f} s ({record['images_per_s']:.0f} "
        f"images/s, every sub-network counted), cost {record['proxy_equivalents']:.1f} "
        "stand-alone proxy trials"
    )
    return record


def _epoch_lines_class() -> type:
    from ray.tune import Callback

    class EpochLines(Callback):
        """One line per supernet epoch: loss, images/s, ETA."""

        def __init__(self, epochs: int, say: Callable[[str], None]) -> None:
            self.epochs = epochs
            self.say = say
            self.started = time.monotonic()
            self.first: int | None = None

        def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
            if result.get("final") or "epoch" not in result:
                return
            epoch = int(result["epoch"])
            self.first = epoch if self.first is None else self.first
            done = epoch - self.first + 1
            left = (time.monotonic() - self.started) / done * (self.epochs - epoch)
            rate = result["images"] / result["seconds"] if result["seconds"] > 0 else math.nan
            self.say(
                f"supernet epoch {epoch}/{self.epochs}: loss {result['loss']:.4f}, "
                f"{result['images']} images in {result['seconds']:.0f} s ({rate:.0f} images/s)"
                f" | ETA {time.strftime('%H:%M:%S', time.gmtime(left))}"
            )

    return EpochLines


def score_phase(
    settings: SearchSettings,
    space: SearchSpace,
    folder: RunFolder,
    context: TrialContext,
    *,
    table: TrialTable,
    num_classes: int,
    quiet: bool,
    say: Callable[[str], None],
) -> None:
    """Phase 2: score ``settings.scores_for(space.size)`` sub-networks on the trained supernet,
    one Ray Tune trial each (continuing the scores a kill left unfinished); their rows go to
    trials.csv and to ``table``, the run's trial table in memory."""
    from .ray_session import TrialPlan, run_trials

    scored = table.count("supernet")
    target = settings.scores_for(space.size)
    if scored >= target:
        say(f"supernet: {scored} sub-networks scored (of {target})")
        return
    seen = table.seen("supernet")
    rows = table.frame("supernet")
    again = recover_study(folder, space, rows, settings.metric_columns, SUPERNET_STUDY_NAME)
    refs = [space.encode(r) for r in space.reference_points(num_classes) if r.canonical not in seen]
    plan: ExplorePlan | None = None
    if space.size <= target:  # exhaustively, each architecture once
        every = [spec.canonical for spec in space.enumerate(num_classes)]
        plan = InOrder(tuple(every))
    say(
        f"supernet: scoring {target - scored} sub-network(s)"
        + (" (every architecture of the space)" if plan is not None else f" ({settings.sampler})")
    )
    run_trials(
        replace(settings, budget=target),
        space,
        folder,
        replace(
            context,
            recipe=replace(settings.proxy, epochs=settings.supernet_epochs),
            eval_every_epoch=False,
            supernet_checkpoint=str(folder.supernet_checkpoint),
        ),
        TrialPlan(
            remaining=target - scored,
            points=refs + [p for p in again if p not in refs],
            num_classes=num_classes,
            total=target,
            proxy="supernet",
            study_name=SUPERNET_STUDY_NAME,
            explore_plan=plan,
            confirm=False,
            desc="supernet scores",
        ),
        table=table,
        quiet=quiet,
    )
    seconds = [r["train_seconds"] for r in table.rows("supernet") if r["status"] == "COMPLETE"]
    if seconds:
        say(
            f"supernet: {len(seconds)} sub-networks scored, {statistics.median(seconds):.1f} s "
            "each (median: BatchNorm recalibration + validation)"
        )


def candidate_plan(table: TrialTable, cost: str) -> InOrder:
    """Phase 3's exploration: the scored architectures (the run's table's ``supernet`` rows)
    in the order :func:`~mdsearch.search.supernet_candidates.rank_candidates` gives, each
    proposed once."""
    return InOrder(tuple(rank_candidates(table.frame("supernet"), cost)))
