"""One search trial as Ray Tune runs it: build, count, train the proxy, report.

:func:`run_trial` is the function trainable. It runs in a reused Ray actor (torch, timm and the
mapped dataset stay loaded between trials), counts the architecture's FLOPs, trains the proxy
(:func:`mdsearch.search.proxy.proxy_train`), writes the validation predictions into the run
folder and reports one final result. A trial that fails in its own code (exception, NaN, out of
memory, ``--trial-timeout``) reports that as its final result instead of raising, so Ray Tune
retries only trials whose worker died; a watchdog ends a worker whose trial hangs.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from mdsearch.space import SearchSpace

from .proxy import ProxyConfig
from .runfolder import RunFolder, RunFolderWriteError, label_column

__all__ = ["FAULT_KINDS", "TEST_FAULT_ENV", "TrialContext", "run_trial"]

#: Test hook: ``MDSEARCH_TEST_FAULT=KIND:REGEX`` makes every trial whose canonical arch string
#: matches REGEX (``re.search``) fail on purpose: ``hang`` (never returns, never checks a
#: deadline), ``oom`` (asks the allocator for 1 PiB) or ``raise``; ``slow`` only sleeps 5 s
#: first (so a test can kill a node while it surely trains). Read on the driver when the search starts and
#: shipped to the trials, so it works on any cluster; unset, it costs nothing.
TEST_FAULT_ENV = "MDSEARCH_TEST_FAULT"
FAULT_KINDS = ("hang", "oom", "raise", "slow")


@dataclass(frozen=True)
class TrialContext:
    """What every trial needs besides its Optuna parameters (shipped once per worker)."""

    space: SearchSpace
    data: str
    cache_dir: str | None
    val_fraction: float
    data_seed: int
    num_classes: int
    input_size: int
    proxy: ProxyConfig
    run_dir: str
    eval_every_epoch: bool
    use_gpu: bool
    trial_timeout: float | None = None
    test_fault: str = ""
    latency: Any = None  # the LatencyTable when latency is an objective (predict: a look-up)


_WORKER_DATA: dict[tuple, Any] = {}


def _worker_dataset(ctx: TrialContext):
    """The dataset, loaded once per worker process (a reused actor keeps it mapped)."""
    from .datasets import load_dataset

    key = (ctx.data, ctx.proxy.resolution, ctx.cache_dir, ctx.data_seed, ctx.val_fraction)
    if key not in _WORKER_DATA:
        _WORKER_DATA.clear()
        _WORKER_DATA[key] = load_dataset(
            ctx.data,
            resolution=ctx.proxy.resolution,
            cache_dir=ctx.cache_dir,
            seed=ctx.data_seed,
            val_fraction=ctx.val_fraction,
            progress=False,
        )
    return _WORKER_DATA[key]


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

    Reports after each epoch (``final: False``) when early stopping needs it, then once with
    every metric and ``final: True``. A trial that fails in its own code (exception, NaN,
    out of memory, ``--trial-timeout``) reports ``final: True`` with an ``error`` line instead
    of raising, so Tune retries only trials whose worker died.
    """
    from ray import tune

    from mdsearch.mdconv import cost

    from .proxy import TrialTimeout, proxy_train

    started = time.monotonic()
    trial_id = tune.get_context().get_trial_id()
    folder = RunFolder(ctx.run_dir)
    params = {k: v for k, v in config.items() if not k.startswith("__")}
    spec = ctx.space.decode(params, ctx.num_classes)
    c = cost(spec, ctx.input_size)
    common = {
        "flops_m": c.flops_m,
        "params_m": c.params_m,
        "target_fidelity": float(ctx.proxy.epochs),
        "node_id": _node_id(),
    }

    def fail(error: str, fidelity: float = 0.0, folder_error: bool = False) -> None:
        tune.report(
            {
                **common,
                "auc": math.nan,
                "fidelity": fidelity,
                "epoch": ctx.proxy.epochs,
                "error": error,
                "run_folder_error": folder_error,
                "final": True,
            }
        )

    if ctx.latency is not None:
        try:
            common["latency_ms"] = ctx.latency.predict(spec)
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
        if row["epoch"] < ctx.proxy.epochs:
            tune.report(
                {
                    **common,
                    "auc": row.get("auc", math.nan),
                    "fidelity": float(row["epoch"]),
                    "epoch": row["epoch"],
                    "final": False,
                }
            )

    try:
        _test_fault(ctx, spec.canonical)
        data = _worker_dataset(ctx)
        result = proxy_train(
            spec,
            data,
            ctx.proxy,
            int(config.get("__seed", 0)),
            device="cuda" if ctx.use_gpu else "cpu",
            report=report,
            eval_every_epoch=ctx.eval_every_epoch,
            deadline=None if ctx.trial_timeout is None else started + ctx.trial_timeout,
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
            **common,
            "auc": result.auc,
            **{label_column(k): v for k, v in result.label_auc.items()},
            "fidelity": result.fidelity,
            "epoch": ctx.proxy.epochs,
            "train_seconds": result.train_seconds,
            "images_per_s": result.images_per_s,
            "predictions": preds,
            "final": True,
        }
    )


def _node_id() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # outside Ray (direct calls): the host name is the best we have
        return socket.gethostname()
