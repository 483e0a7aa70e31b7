"""One search trial as Ray Tune runs it: build, count, train the proxy, report.

:func:`run_trial` is the function trainable. It runs in a reused Ray actor (torch, timm and the
mapped dataset stay loaded between trials), parses the architecture the searcher shipped (its
canonical string, once), counts its FLOPs, trains the proxy
(:func:`mdsearch.search.proxy.proxy_train`), writes the validation predictions into the run
folder and reports one final result holding every column of the trial table it knows
(:data:`~mdsearch.search.trial_table.TRIAL_COLUMNS`). A trial that fails in its own code
(exception, NaN, out of memory, ``--trial-timeout``) reports that as its final result instead of
raising, so Ray Tune retries only trials whose worker died; a watchdog ends a worker whose trial
hangs.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .runfolder import RunFolder, RunFolderWriteError
from .scored_labels import LABEL_RULE, LabelRule
from .settings import DataSettings, TrainRecipe
from .trial_table import label_column

if TYPE_CHECKING:
    from mdsearch.mdconv import LatencyTable
    from mdsearch.space import ArchSpec

    from .datasets import Dataset
    from .proxy import ProxyResult

__all__ = ["FAULT_KINDS", "TEST_FAULT_ENV", "TrialContext", "run_trial"]

#: Test hook: ``MDSEARCH_TEST_FAULT=KIND:REGEX`` makes every trial whose canonical arch string
#: matches REGEX (``re.search``) fail on purpose: ``hang`` (never returns, never checks a
#: deadline), ``oom`` (asks the allocator for 1 PiB) or ``raise``; ``slow`` only sleeps 5 s
#: first (so a test can kill a node while it surely trains). Read on the driver when the search
#: starts and shipped to the trials, so it works on any cluster; unset, it costs nothing.
TEST_FAULT_ENV = "MDSEARCH_TEST_FAULT"
FAULT_KINDS = ("hang", "oom", "raise", "slow")


@dataclass(frozen=True)
class TrialContext:
    """What every trial needs besides its config (shipped once per worker).

    Args:
        data: the data the proxy trains on (its resolution is the proxy's).
        recipe: the proxy recipe.
        threads: torch threads per trial (its CPU share).
        input_size: input side (px) at which FLOPs are counted.
        run_dir: the run folder (on a filesystem every node mounts at this path).
        eval_every_epoch: report the validation AUC after every epoch (early stopping).
        use_gpu: train on the worker's GPU.
        trial_timeout: seconds a trial may run (None: no limit).
        test_fault: the :data:`TEST_FAULT_ENV` value read on the driver ("" when unset).
        latency: the latency table when latency is an objective (a trial only looks up).
        label_rule: which labels a trial's mean AUC is over: the run's own (config.json), so a
            resumed run's new rows mean what its old ones do.
        supernet_checkpoint: None: a trial trains its architecture (the proxy); a path: a
            trial scores its architecture as a sub-network of this trained supernet
            (:func:`~mdsearch.search.supernet.score_subnet`; the row's ``proxy`` is
            ``supernet``, and ``recipe`` is then the supernet's training recipe).
    """

    data: DataSettings
    recipe: TrainRecipe
    threads: int
    input_size: int
    run_dir: str
    eval_every_epoch: bool
    use_gpu: bool
    trial_timeout: float | None = None
    test_fault: str = ""
    latency: LatencyTable | None = None
    label_rule: LabelRule = LABEL_RULE
    supernet_checkpoint: str | None = None


_WORKER_DATA: dict[DataSettings, Dataset] = {}


def _worker_dataset(ctx: TrialContext) -> Dataset:
    """The dataset, loaded once per worker process (a reused actor keeps it mapped)."""
    if ctx.data not in _WORKER_DATA:
        _WORKER_DATA.clear()
        _WORKER_DATA[ctx.data] = ctx.data.load(progress=False)
    return _WORKER_DATA[ctx.data]


_WORKER_SUPERNET: dict[tuple[str, int, str], Any] = {}


def _worker_supernet(ctx: TrialContext) -> Any:
    """The trained supernet (a :class:`~mdsearch.search.supernet.SupernetTraining`), loaded
    once per worker process and checkpoint version (a reused actor scores many sub-networks)."""
    from .supernet import load_supernet

    path = str(ctx.supernet_checkpoint)
    device = "cuda" if ctx.use_gpu else "cpu"
    key = (path, os.stat(path).st_mtime_ns, device)
    if key not in _WORKER_SUPERNET:
        _WORKER_SUPERNET.clear()
        _WORKER_SUPERNET[key] = load_supernet(path, device=device)
    return _WORKER_SUPERNET[key]


def _watchdog_grace(timeout: float) -> float:
    """Seconds the cooperative deadline gets before the watchdog ends the worker: one slow
    training step must fit in it."""
    return min(60.0, max(5.0, 0.25 * timeout))


def _timeout_reason(timeout: float) -> str:
    return f"timeout after {timeout:g} s (--trial-timeout)"


def _start_watchdog(folder: RunFolder, trial_id: str, timeout: float) -> threading.Event:
    """A daemon thread that, unless the returned event is set first, leaves the timeout reason
    in ``faults/`` and ends this worker process: a hung trial never reaches a deadline check."""
    done = threading.Event()
    reason = _timeout_reason(timeout)

    def watch() -> None:
        if done.wait(timeout + _watchdog_grace(timeout)):
            return
        try:
            folder.write_fault(trial_id, reason, node_id=_node_id(), pid=os.getpid())
        finally:
            sys.stderr.write(f"mdsearch: trial {trial_id}: {reason}; ending its worker\n")
            sys.stderr.flush()
            os._exit(70)

    threading.Thread(target=watch, name=f"mdsearch-watchdog-{trial_id}", daemon=True).start()
    return done


def _test_fault(ctx: TrialContext, arch: str) -> None:
    """The :data:`TEST_FAULT_ENV` hook (a no-op unless the variable was set on the driver)."""
    import re

    kind, _, pattern = ctx.test_fault.partition(":")
    if not kind or not re.search(pattern, arch):
        return
    if kind == "slow":
        time.sleep(5.0)
        return
    if kind == "hang":
        threading.Event().wait()
    elif kind == "oom":
        import torch

        torch.empty(1 << 50, dtype=torch.uint8)  # the allocator refuses 1 PiB
    raise RuntimeError(f"{TEST_FAULT_ENV}={ctx.test_fault}: failing {arch} on purpose")


def _failure_reason(exc: BaseException) -> str:
    """One line for the table's error column (the exception type, its message, and a hint when
    the cause is memory)."""
    text = " ".join(str(exc).split())[:400]
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    low = text.lower()
    if "out of memory" in low or "can't allocate memory" in low or "cannot allocate" in low:
        line = (
            f"out of memory: {line} (lower --batch-size or --resolution, or raise "
            "--cpus-per-trial/--gpus-per-trial so fewer trials share a node)"
        )
    return line


def run_trial(config: dict[str, Any], ctx: TrialContext) -> None:
    """Ray Tune function trainable: one proxy trial, reported to Tune.

    Args:
        config: what the searcher shipped: ``arch`` (canonical string), ``seed`` and
            ``repeat`` (the table's columns of those names).
        ctx: what every trial shares.

    Reports after each epoch (``final: False``) when early stopping needs it, then once with
    every column it knows and ``final: True``. A trial that fails in its own code (exception,
    NaN, out of memory, ``--trial-timeout``) reports ``final: True`` with an ``error`` line
    instead of raising, so Tune retries only trials whose worker died.
    """
    # The worker's one-time imports (torch and timm: seconds on a busy machine) are not the
    # trial's time: --trial-timeout measures the trial, from `started`.
    import timm  # noqa: F401
    import torch  # noqa: F401
    from ray import tune

    from mdsearch.mdconv import cost
    from mdsearch.space import ArchSpec

    from .proxy import TrialTimeout, proxy_train

    started = time.monotonic()
    trial_id = tune.get_context().get_trial_id()
    folder = RunFolder(ctx.run_dir)
    spec = ArchSpec.parse(config["arch"])
    seed = int(config["seed"])
    c = cost(spec, ctx.input_size)
    epochs = ctx.recipe.epochs
    known: dict[str, Any] = {
        "arch": spec.canonical,
        "arch_id": spec.arch_id,
        "mdconv_stages": list(spec.mdconv_stages),
        "target_fidelity": float(epochs),
        "flops_m": c.flops_m,
        "input_size": ctx.input_size,
        "params_m": c.params_m,
        "resolution": ctx.data.resolution,
        "seed": seed,
        "repeat": int(config.get("repeat", 0)),
        "node_id": _node_id(),
        "proxy": "standalone" if ctx.supernet_checkpoint is None else "supernet",
    }

    def fail(error: str, fidelity: float = 0.0, folder_error: bool = False) -> None:
        tune.report(
            {
                **known,
                "auc": math.nan,
                "fidelity": fidelity,
                "epoch": epochs,
                "error": error,
                "run_folder_error": folder_error,
                "final": True,
            }
        )

    if ctx.latency is not None:
        try:
            known["latency_ms"] = ctx.latency.predict(spec)
        except Exception as exc:  # a variant the driver did not time: recorded, search goes on
            return fail(_failure_reason(exc))

    if not folder.exists():
        return fail(
            f"run folder {ctx.run_dir} is not visible on node {_node_id()} "
            f"({socket.gethostname()}): put it on a filesystem every node mounts at that path",
            folder_error=True,
        )
    earlier = folder.read_fault(trial_id)
    if earlier is not None:  # a retry of a trial whose watchdog ended its worker
        return fail(earlier)
    done = _start_watchdog(folder, trial_id, ctx.trial_timeout) if ctx.trial_timeout else None
    epochs_done = [0.0]

    def report(row: dict[str, float]) -> None:
        epochs_done[0] = float(row["epoch"])
        if row["epoch"] < epochs:
            tune.report(
                {
                    **known,
                    "auc": row.get("auc", math.nan),
                    "fidelity": float(row["epoch"]),
                    "epoch": row["epoch"],
                    "final": False,
                }
            )

    try:
        _test_fault(ctx, spec.canonical)
        data = _worker_dataset(ctx)
        if ctx.supernet_checkpoint is not None:
            result = _score_on_supernet(spec, data, ctx, int(config.get("repeat", 0)), seed)
        else:
            result = proxy_train(
                spec,
                data,
                ctx.recipe,
                seed,
                device="cuda" if ctx.use_gpu else "cpu",
                threads=ctx.threads,
                report=report,
                eval_every_epoch=ctx.eval_every_epoch,
                deadline=None if ctx.trial_timeout is None else started + ctx.trial_timeout,
                label_rule=ctx.label_rule,
            )
        preds = folder.save_predictions(trial_id, result.y_true, result.y_score, data.label_names)
    except RunFolderWriteError as exc:
        return fail(str(exc), epochs_done[0], folder_error=True)
    except TrialTimeout:
        return fail(_timeout_reason(ctx.trial_timeout), epochs_done[0])
    except Exception as exc:  # recorded as a failed trial; the search goes on
        import gc

        gc.collect()  # an out-of-memory failure leaves big tensors behind in the reused worker
        return fail(_failure_reason(exc), epochs_done[0])
    finally:
        if done is not None:
            done.set()
    tune.report(
        {
            **known,
            "auc": result.auc,
            **{label_column(k): v for k, v in result.label_auc.items()},
            "fidelity": result.fidelity,
            "epoch": epochs,
            "train_seconds": result.train_seconds,
            "images_per_s": result.images_per_s,
            "predictions": preds,
            "final": True,
        }
    )


def _score_on_supernet(
    spec: ArchSpec, data: Dataset, ctx: TrialContext, repeat: int, seed: int
) -> ProxyResult:
    """A supernet trial's result: ``spec`` scored on the run's supernet (BatchNorm recalibrated
    on the fixed sample; a repeat draws another sample with its seed), over the run's labels."""
    import torch

    from .subnet_scoring import score_subnet

    if ctx.threads:
        torch.set_num_threads(ctx.threads)
    training = _worker_supernet(ctx)
    return score_subnet(
        training.supernet,
        spec,
        data,
        training.recipe,
        settings=training.settings,
        sample_seed=None if repeat == 0 else seed,
        label_rule=ctx.label_rule,
        device="cuda" if ctx.use_gpu else "cpu",
    )


def _node_id() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # outside Ray (direct calls): the host name is the best we have
        return socket.gethostname()
