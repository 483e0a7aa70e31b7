"""The search: Ray Tune runs Optuna-guided proxy trials and records every one in the run folder.

Flow of one ``mdsearch run``:

1. everything the user typed is checked before Ray starts (space, data, sampler, folder);
2. the driver loads the data once, so the decoded cache exists before any worker maps it;
3. ``OptunaSearch`` (multi-objective: maximise validation AUC, minimise FLOPs and/or latency, as
   ``--objectives`` says) proposes architectures; its study lives in ``study.db`` inside the run
   folder;
4. each trial (:func:`mdsearch.search.trial.run_trial`) runs the proxy in a reused Ray actor
   (torch and timm are imported once per worker, not once per trial) and writes its validation
   predictions;
5. the driver appends one row per finished trial to ``trials.csv`` and shows live progress.

Latency as an objective (``--objectives auc,latency`` or ``auc,flops,latency``): the driver
loads the per-stage latency table (:mod:`mdsearch.mdconv.latency`) for the space from the user
cache dir before Ray starts, times the block variants it lacks (once per device and thread count),
writes the table into config.json and ships it to the trials, which add its prediction
(``latency_ms``, ms per image at ``--latency-size``, batch 1, ``--cpus-per-trial`` threads, on
the driver's CPU, or its GPU with ``--latency-device cuda``) to their result. No trial times
anything, so latency is cheap and the same number for the same architecture in every trial; a
resume reuses the table config.json holds.

Repeats: when the sampler proposes an architecture the run has already evaluated, it is trained
again with the next seed (seed, seed+1, ...): a repeat is a further seed that narrows that
architecture's uncertainty, never an accidental copy. The results pool the seeds of one arch.

Early stopping (``--early-stop asha``) stops weak trials on AUC alone; such a trial keeps its row
with status STOPPED and the fidelity it reached, and Optuna is told it was PRUNED, so a partial
AUC never poses as a finished proxy.

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
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import platform
import signal
import socket
import sys
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mdsearch.space import SearchSpace, load_space

from .proxy import ProxyConfig
from .runfolder import RunError, RunFolder
from .trial import FAULT_KINDS, TEST_FAULT_ENV, TrialContext, run_trial

__all__ = [
    "SearchSettings",
    "SAMPLERS",
    "SEARCH_OBJECTIVES",
    "parse_objectives",
    "search_latency_table",
    "TEST_FAULT_ENV",
    "prepare",
    "run_search",
    "resolution_warnings",
]


SAMPLERS = ("tpe", "nsga2", "random", "grid")
#: ``--objectives`` names -> (trial result / table column, Optuna direction). AUC comes first:
#: the proxy, early stopping and the report's y-axis are about it.
SEARCH_OBJECTIVES: dict[str, tuple[str, str]] = {
    "auc": ("auc", "max"),
    "flops": ("flops_m", "min"),
    "latency": ("latency_ms", "min"),
}
_OBJECTIVE_ALIASES = {col: name for name, (col, _) in SEARCH_OBJECTIVES.items()}
_OBJECTIVES_HELP = "use auc,flops (default), auc,latency or auc,flops,latency"
EARLY_STOP = ("none", "asha")
_STUDY = "mdsearch"
_GRID_LIMIT = 4096


@dataclass(frozen=True)
class SearchSettings:
    """Every setting of a search (stored in config.json; ``--resume`` reads them back).

    Args:
        data: ``--data`` value (``phantom``, ``kermany=PATH``, ...).
        space: preset name or space file.
        backbone: optional timm backbone overriding the space's.
        budget: number of trials in total (resumes count the ones already done).
        sampler: Optuna sampler (tpe, nsga2, random, grid).
        seed: seeds the sampler and the trials (repeat k of an arch uses seed + k).
        input_size: input side at which FLOPs are counted (the paper's 448).
        proxy: the proxy training settings.
        early_stop: ``none`` or ``asha``.
        cpus_per_trial / gpus_per_trial: Ray resources per trial.
        max_concurrent: cap on trials running at once (None: as many as resources allow).
        address: Ray cluster address (None: a local Ray started and stopped by the command).
        cache_dir: decoded-image cache folder (None: the user cache dir).
        val_fraction: share of patients held out for validation when the source has no val split.
        trial_timeout: seconds one trial may run before it is stopped and recorded FAILED
            (None: no limit).
        max_failures: retries of a trial whose worker or node died (not of a trial that raised).
        objectives: what the search optimises, names of :data:`SEARCH_OBJECTIVES` with ``auc``
            first (``("auc", "flops")``, ``("auc", "latency")``, ``("auc", "flops", "latency")``).
        latency_size: input side, pixels, at which latency is predicted (batch 1) when latency
            is an objective.
        latency_device: ``cpu`` or ``cuda``: where the latency table is timed (on the machine
            that runs the search, before Ray starts).
    """

    data: str = "phantom"
    space: str = "default"
    backbone: str | None = None
    budget: int = 100
    sampler: str = "tpe"
    seed: int = 0
    input_size: int = 448
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    early_stop: str = "none"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    address: str | None = None
    cache_dir: str | None = None
    val_fraction: float = 0.2
    trial_timeout: float | None = None
    max_failures: int = 2
    objectives: tuple[str, ...] = ("auc", "flops")
    latency_size: int = 224
    latency_device: str = "cpu"

    @property
    def metric_columns(self) -> list[str]:
        """Result keys / table columns of the objectives, in order (what Optuna is told)."""
        return [SEARCH_OBJECTIVES[n][0] for n in self.objectives]

    @property
    def metric_modes(self) -> list[str]:
        """``"max"`` / ``"min"`` per objective, in :attr:`metric_columns` order."""
        return [SEARCH_OBJECTIVES[n][1] for n in self.objectives]

    @property
    def latency_threads(self) -> int:
        """CPU threads the latency table is timed with: one trial's share (--cpus-per-trial)."""
        return max(1, int(self.cpus_per_trial))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for config.json."""
        d = asdict(self)
        d["proxy"] = self.proxy.to_dict()
        d["objectives"] = list(self.objectives)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSettings:
        """Inverse of :meth:`to_dict`."""
        data = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        data["proxy"] = ProxyConfig.from_dict(data.get("proxy", {}))
        if "objectives" in data:  # runs from before --objectives searched AUC and FLOPs
            data["objectives"] = tuple(data["objectives"])
        return cls(**data)


@dataclass(frozen=True)
class Prepared:
    """A checked search, ready to run: what :func:`prepare` returns."""

    settings: SearchSettings
    space: SearchSpace
    folder: RunFolder
    resume: bool


def _fail(message: str) -> None:
    raise RunError(message)


def parse_objectives(value: str | Sequence[str]) -> tuple[str, ...]:
    """The ``--objectives`` value as names of :data:`SEARCH_OBJECTIVES`, checked.

    Args:
        value: ``"auc,flops,latency"`` or a sequence of names; column names (``flops_m``,
            ``latency_ms``) and case do not matter.

    Returns:
        The names, ``auc`` first, e.g. ``("auc", "flops", "latency")``.

    Raises:
        RunError: an unknown or repeated name, AUC missing or not first, or AUC alone.

    Example:
        >>> parse_objectives("AUC, latency_ms")
        ('auc', 'latency')
    """
    parts = value.split(",") if isinstance(value, str) else list(value)
    text = ",".join(str(p).strip() for p in parts)
    names = []
    for part in parts:
        key = str(part).strip().lower()
        name = key if key in SEARCH_OBJECTIVES else _OBJECTIVE_ALIASES.get(key)
        if name is None:
            _fail(f"--objectives {text}: {part.strip()!r} is not an objective; {_OBJECTIVES_HELP}")
        names.append(name)
    if len(set(names)) != len(names):
        _fail(f"--objectives {text}: an objective is named twice; {_OBJECTIVES_HELP}")
    if len(names) < 2 or names[0] != "auc":
        _fail(f"--objectives {text}: give auc first and at least one cost; {_OBJECTIVES_HELP}")
    return tuple(names)


def prepare(settings: SearchSettings, out: str | Path, *, resume: bool = False) -> Prepared:
    """Check everything the user typed, before Ray starts or anything is written.

    Raises:
        RunError, SpaceError, DataError: one line naming the flag and what to do.
    """
    from .datasets import parse_data_spec

    folder = RunFolder(out)
    if resume:
        folder.check_resumable()
    else:
        folder.check_new()
    settings = replace(settings, objectives=parse_objectives(settings.objectives))
    if settings.budget < 1:
        _fail(f"--budget {settings.budget}: give at least 1 trial")
    if settings.sampler not in SAMPLERS:
        _fail(f"--sampler {settings.sampler!r} is unknown: use one of {', '.join(SAMPLERS)}")
    if settings.early_stop not in EARLY_STOP:
        _fail(f"--early-stop {settings.early_stop!r} is unknown: use none or asha")
    p = settings.proxy
    for flag, value, low in (
        ("--resolution", p.resolution, 16),
        ("--epochs", p.epochs, 1),
        ("--batch-size", p.batch_size, 2),
        ("--input-size", settings.input_size, 32),
        ("--latency-size", settings.latency_size, 32),
    ):
        if value < low:
            _fail(f"{flag} {value}: must be at least {low}")
    if p.train_subset is not None and p.train_subset < p.batch_size:
        _fail(f"--train-subset {p.train_subset} is smaller than --batch-size {p.batch_size}")
    if not p.lr > 0:
        _fail(f"--lr {p.lr}: must be positive")
    if settings.cpus_per_trial <= 0 or settings.gpus_per_trial < 0:
        _fail("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
    if settings.trial_timeout is not None and not settings.trial_timeout > 0:
        _fail(f"--trial-timeout {settings.trial_timeout}: give a positive number of seconds")
    if settings.max_failures < 0:
        _fail(f"--max-failures {settings.max_failures}: give 0 or more retries")
    fault = os.environ.get(TEST_FAULT_ENV, "")
    if fault and fault.partition(":")[0] not in FAULT_KINDS:
        _fail(f"{TEST_FAULT_ENV}={fault!r}: use KIND:REGEX with KIND one of {FAULT_KINDS}")
    if not 0 < settings.val_fraction < 1:
        _fail(f"--val-fraction {settings.val_fraction}: must be between 0 and 1")
    space = load_space(settings.space, settings.backbone)
    if settings.sampler == "grid" and space.size > _GRID_LIMIT:
        _fail(
            f"--sampler grid: space {space.name} has {space.size} architectures, more than a "
            f"grid can cover ({_GRID_LIMIT}); use tpe, nsga2 or random"
        )
    check_latency_device(settings.latency_device, needed="latency" in settings.objectives)
    parse_data_spec(settings.data)
    return Prepared(settings, space, folder, resume)


def load_proxy_data(
    settings: Any, space: SearchSpace, say: Callable[[str], None], *, progress: bool
):
    """The dataset a search (or a proxy check) trains on, at its proxy resolution; its notes and
    the resolution warnings for ``space`` go to ``say``.

    Args:
        settings: :class:`SearchSettings` or the proxy check's settings (``data``, ``proxy``,
            ``cache_dir``, ``seed``, ``val_fraction``).
        space: the searched space (for :func:`resolution_warnings`).
        say: receives one line per note or warning.
        progress: show the image-cache progress while a cache is built.
    """
    from .datasets import load_dataset

    dataset = load_dataset(
        settings.data,
        resolution=settings.proxy.resolution,
        cache_dir=settings.cache_dir,
        seed=settings.seed,
        val_fraction=settings.val_fraction,
        progress=progress,
    )
    for note in dataset.notes:
        say(f"data: {note}")
    for w in resolution_warnings(space, settings.proxy.resolution):
        say(f"warning: {w}")
    return dataset


def resolution_warnings(space: SearchSpace, resolution: int) -> list[str]:
    """Warnings for searched stages whose feature maps are not larger than their kernels.

    At 64 px MobileNet-v2's stage5 runs on 4x4 -> 2x2 maps: a 5x5 kernel adds nothing a 3x3
    does not, so the proxy cannot rank that stage's choices.
    """
    from mdsearch.space import get_backbone

    sizes = get_backbone(space.backbone).map_sizes(resolution)
    out = []
    for i in space.searched_stages:
        kmax = max(max(s.kernels) for s in space.choices[i])
        if sizes[i] <= kmax:
            out.append(
                f"stage{i} runs on {sizes[i]}x{sizes[i]} maps at --resolution {resolution}, not "
                f"larger than its {kmax}x{kmax} kernel choice: the proxy cannot tell those "
                f"choices apart there (use --resolution {_min_resolution(space, i, kmax)} or more)"
            )
    return out


def _min_resolution(space: SearchSpace, stage: int, kernel: int) -> int:
    from mdsearch.space import get_backbone

    return get_backbone(space.backbone).output_strides()[stage] * (kernel + 1)


def _versions() -> dict[str, str]:
    from importlib import metadata

    names = [
        "mdsearch",
        "torch",
        "timm",
        "optuna",
        "ray",
        "fvcore",
        "numpy",
        "pandas",
        "scikit-learn",
    ]
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def make_sampler(name: str, seed: int, space: SearchSpace, budget: int):
    """The Optuna sampler for ``--sampler``.

    tpe (default): multi-objective TPE handles categorical stage choices well and learns from
    its first ~10 trials, so it suits budgets around 100; ``constant_liar`` keeps parallel trials
    from all proposing the same point. nsga2 needs several generations of ~population size to
    pay off (budgets of several hundred). random is the honest control. grid enumerates a small
    space (e.g. the paper's 16 placements).
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
    grid = {k: list(d.choices) for k, d in space.distributions().items()}
    return optuna.samplers.GridSampler(grid, seed=seed)


# -- the driver -----------------------------------------------------------------------------
def _searcher_class():
    from optuna.trial import TrialState
    from ray.tune.search.optuna import OptunaSearch

    class ProxySearch(OptunaSearch):
        """OptunaSearch that (1) gives repeats of an arch the next seed and (2) tells Optuna
        only finished proxies as COMPLETE: failures are FAIL, early stops PRUNED."""

        def __init__(self, *args, mdsearch_space, num_classes, seed, seen, interrupted, **kwargs):
            super().__init__(*args, **kwargs)
            self._md_metrics = list(kwargs["metric"])
            self._md_space = mdsearch_space
            self._md_classes = num_classes
            self._md_seed = seed
            self._md_seen = Counter(seen)
            self._md_interrupted = interrupted

        def suggest(self, trial_id: str):
            params = super().suggest(trial_id)
            if params is None:
                return None
            spec = self._md_space.decode(params, self._md_classes)
            repeat = self._md_seen[spec.canonical]
            self._md_seen[spec.canonical] += 1
            ot_trial = self._ot_trials[trial_id]
            ot_trial.set_user_attr("arch", spec.canonical)
            ot_trial.set_user_attr("arch_id", spec.arch_id)
            ot_trial.set_user_attr("seed", self._md_seed + repeat)
            return {**params, "__seed": self._md_seed + repeat, "__repeat": repeat}

        def on_trial_complete(self, trial_id: str, result=None, error: bool = False):
            if trial_id in self._completed_trials or trial_id not in self._ot_trials:
                return
            ot_trial = self._ot_trials[trial_id]
            if self._md_interrupted.is_set() and not (result or {}).get("final"):
                # Ctrl-C: no row is written; --resume runs the trial again (see _recover_study).
                ot_trial.set_user_attr("interrupted", True)
                self._completed_trials.add(trial_id)
                return
            finished = bool(result) and result.get("final") and not error
            values = _objective_values(result or {}, self._md_metrics)
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


def _objective_values(values: Any, metrics: Sequence[str]) -> list[float] | None:
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


def _recover_study(
    folder: RunFolder, space: SearchSpace, table, metrics: Sequence[str]
) -> list[dict[str, Any]]:
    """After a kill or Ctrl-C: settle the study's RUNNING trials and return the parameters of
    those to run again first.

    A RUNNING trial whose architecture and seed already have a row (the driver died between
    writing the row and telling Optuna) is told the row's outcome; every other one is marked
    FAIL and its architecture runs again, so no trial is lost or counted twice.
    """
    import optuna
    from optuna.trial import TrialState

    if not folder.study_path.exists():
        return []
    rows = {}
    for _, row in table.iterrows():
        if row["seed"] == row["seed"]:  # not NaN
            rows[(str(row["arch"]), int(row["seed"]))] = row
    study = optuna.load_study(study_name=_STUDY, storage=folder.study_url)
    again = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        row = rows.get((t.user_attrs.get("arch"), t.user_attrs.get("seed")))
        if t.state == TrialState.RUNNING and row is not None:
            values = _objective_values(row, metrics)
            if row["status"] == "COMPLETE" and values is not None:
                study.tell(t.number, values)
            else:
                study.tell(t.number, state=TrialState.FAIL)
            continue
        if t.state == TrialState.RUNNING:
            study.tell(t.number, state=TrialState.FAIL)
        if t.params:
            again.append({k: t.params[k] for k in space.distributions() if k in t.params})
    return again


def run_search(prepared: Prepared, *, quiet: bool = False) -> RunFolder:
    """Run (or resume) the search to its budget; returns the run folder.

    Ray is started locally and stopped again unless ``settings.address`` names a cluster.
    """
    settings, space, folder = prepared.settings, prepared.space, prepared.folder
    with folder.lock():
        say = (lambda *a: None) if quiet else (lambda msg: print(msg, file=sys.stderr))
        dataset = load_proxy_data(settings, space, say, progress=not quiet)
        num_classes = len(dataset.label_names)
        table = folder.read_table()
        done = len(table)
        remaining = settings.budget - done
        if remaining <= 0:
            say(f"{folder.path}: all {settings.budget} trials of the budget are done")
            return folder
        latency = None
        if "latency" in settings.objectives:  # before Ray: timing wants the CPU to itself
            latency = _run_latency_table(prepared, say)
        # Ray first: an unreachable --address then leaves no half-made run folder behind.
        started_ray = _start_ray(settings.address)
        try:
            if not prepared.resume:
                folder.create(_config(settings, space, dataset, folder.path.name, latency))
            if settings.budget > space.size:
                say(
                    f"note: --budget {settings.budget} exceeds the {space.size} distinct "
                    f"architectures of space {space.name}: repeated proposals train further "
                    "seeds of an architecture"
                )
            metrics = settings.metric_columns
            again = _recover_study(folder, space, table, metrics) if prepared.resume else []
            seen = Counter(table["arch"]) if done else Counter()
            refs = [
                space.encode(r)
                for r in space.reference_points(num_classes)
                if r.canonical not in seen
            ]
            points = refs + [p for p in again if p not in refs]
            args = (dataset, num_classes, remaining, seen, points, done, quiet, latency)
            _tune(prepared, folder, *args)
        finally:
            if started_ray:
                import ray

                ray.shutdown()
    return folder


def check_latency_device(device: str, *, needed: bool, flag: str = "--latency-device") -> None:
    """``device`` is cpu or cuda; and when latency will be timed (``needed``), a CUDA device is
    visible if it is cuda. Raises :class:`RunError` naming ``flag``."""
    if device not in ("cpu", "cuda"):
        _fail(f"{flag} {device!r} is unknown: use cpu or cuda")
    if device == "cuda" and needed:
        import torch

        if not torch.cuda.is_available():
            _fail(f"{flag} cuda: torch sees no CUDA device on this machine; use {flag} cpu")


def search_latency_table(
    settings: SearchSettings,
    space: SearchSpace,
    *,
    timer: Callable[[Any, Any], float] | None = None,
    say: Callable[[str], None] = lambda message: None,
):
    """The latency table a search predicts ``latency_ms`` from, covering every stage variant of
    ``space``: the cached one (user cache dir, or ``$MDSEARCH_CACHE_DIR/latency``, one file per
    backbone, input size, device, thread count and torch version), with the variants it lacks
    timed now on this machine's CPU or GPU (``settings.latency_device``) and saved.

    Args:
        settings: the search (``latency_size``, batch 1, ``latency_threads`` threads,
            ``latency_device``).
        space: the search space whose stage choices must all be in the table.
        timer: ms of one forward pass of a module on an input (default
            :func:`mdsearch.mdconv.latency.time_module`).
        say: receives one progress line before timing starts.

    Returns:
        A :class:`mdsearch.mdconv.latency.LatencyTable` with every variant of ``space``.
    """
    from mdsearch.mdconv.latency import (
        LatencyTable,
        build_latency_table,
        device_name,
        latency_table,
    )

    size, threads, device = settings.latency_size, settings.latency_threads, settings.latency_device
    table = latency_table(space.backbone, size, threads=threads, device=device)
    todo = {LatencyTable.entry(i, s) for i, options in enumerate(space.choices) for s in options}
    todo -= set(table.stages)
    whole = {"stem", "head", "overhead"}
    todo |= {part for part in whole if getattr(table, f"{part}_ms") is None}
    if todo:
        stages = len(todo - whole)
        say(
            f"latency: timing {stages} block variants"
            + (" (and stem, head, whole network)" if stages < len(todo) else "")
            + f" of {space.backbone} at {size}x{size}, batch 1, {threads} thread(s) on "
            f"{device} [{device_name(device)}] (once; cached in {table.path})"
        )
        build_latency_table(
            space.backbone,
            size,
            variants=dict(enumerate(space.choices)),
            threads=threads,
            device=device,
            timer=timer,
            table=table,
        )
        table.save()
    return table


def _run_latency_table(prepared: Prepared, say: Callable[[str], None]):
    """The table of a new search, or on resume the one its config.json recorded (so every trial
    of a run is predicted from the same times, wherever it is resumed)."""
    from mdsearch.mdconv.latency import LatencyTable

    if prepared.resume:
        saved = (prepared.folder.read_config().get("latency") or {}).get("table")
        if saved:
            return LatencyTable.from_dict(saved)
    return search_latency_table(prepared.settings, prepared.space, say=say)


def _latency_config(settings: SearchSettings, table) -> dict[str, Any] | None:
    if table is None:
        return None
    return {
        "unit": "ms per image, median, inference (eval, no autograd), predicted as the sum of "
        "the per-stage table's stem, stage variants and head plus its whole-network overhead",
        "input_size": settings.latency_size,
        "batch_size": 1,
        "threads": settings.latency_threads,
        "device": table.key["device"],
        "device_name": table.key["device_name"],
        "path": str(table.path) if table.path else None,
        "table": table.to_dict(),
    }


def _config(
    settings: SearchSettings, space: SearchSpace, dataset, name: str, latency=None
) -> dict[str, Any]:
    return {
        "name": name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": settings.to_dict(),
        "data": dataset.describe(),
        "space": {
            "name": space.name,
            "backbone": space.backbone,
            "size": space.size,
            "choices": {f"stage{i}": [s.token for s in c] for i, c in enumerate(space.choices)},
        },
        "proxy": settings.proxy.to_dict(),
        "input_size": settings.input_size,
        "objectives": list(settings.objectives),
        "latency": _latency_config(settings, latency),
        "sampler": settings.sampler,
        "seed": settings.seed,
        "budget": settings.budget,
        "versions": _versions(),
        "host": {"hostname": socket.gethostname(), "cpus": os.cpu_count()},
    }


def _tune(
    prepared, folder, dataset, num_classes, remaining, seen, points, done, quiet, latency
) -> None:
    import optuna
    from ray import tune

    from .progress import InterruptFlag, LiveProgress, TrialRecorder

    settings, space = prepared.settings, prepared.space
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    use_gpu = settings.gpus_per_trial > 0
    ctx = TrialContext(
        space=space,
        data=settings.data,
        cache_dir=settings.cache_dir,
        val_fraction=settings.val_fraction,
        data_seed=settings.seed,
        num_classes=num_classes,
        input_size=settings.input_size,
        proxy=replace(settings.proxy, threads=max(1, int(settings.cpus_per_trial))),
        run_dir=str(folder.path),
        eval_every_epoch=settings.early_stop == "asha",
        use_gpu=use_gpu,
        trial_timeout=settings.trial_timeout,
        test_fault=os.environ.get(TEST_FAULT_ENV, ""),
        latency=latency,
    )
    interrupted = InterruptFlag()
    storage = optuna.storages.RDBStorage(folder.study_url)
    searcher = _searcher_class()(
        space=space.distributions(),
        metric=settings.metric_columns,
        mode=settings.metric_modes,
        sampler=make_sampler(settings.sampler, settings.seed, space, settings.budget),
        study_name=_STUDY,
        storage=storage,
        points_to_evaluate=points or None,
        mdsearch_space=space,
        num_classes=num_classes,
        seed=settings.seed,
        seen=seen,
        interrupted=interrupted,
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
        space,
        num_classes,
        dataset.label_names,
        settings,
        start=done,
        quiet=quiet,
        interrupted=interrupted,
    )
    callbacks = [recorder]
    if not quiet:
        callbacks.append(LiveProgress(recorder, total=settings.budget, done=done))
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, ctx=ctx),
        {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial},
    )
    invocation = len(list(folder.path.glob("tune-*")))
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=remaining,
            reuse_actors=True,
            max_concurrent_trials=settings.max_concurrent,
        ),
        run_config=tune.RunConfig(
            name=f"tune-{invocation}",
            storage_path=str(folder.path),
            verbose=0,
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            stop=_interrupt_stopper(interrupted),
            log_to_file=True,
        ),
    )
    # Failed trials are recorded in the table and reported in one line by the recorder;
    # Tune's own tracebacks would bury the progress display.
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    with _SigintSetsEvent(interrupted):
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


def _start_ray(address: str | None) -> bool:
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


def _interrupt_stopper(interrupted):
    """A Tune stopper that ends the experiment once ``interrupted`` is set."""
    from ray.tune import Stopper

    class StopOnInterrupt(Stopper):
        """Ends the experiment (every trial, no further proposals) once Ctrl-C was pressed."""

        def __init__(self, interrupted) -> None:
            self.interrupted = interrupted

        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            return self.interrupted.is_set()

    return StopOnInterrupt(interrupted)


class _SigintSetsEvent:
    """While active, the first SIGINT only sets ``event`` (Tune then stops every trial at its
    next step); a second one raises KeyboardInterrupt at once. Outside the main thread (a
    notebook worker thread) signals cannot be caught and nothing changes."""

    def __init__(self, event) -> None:
        self.event = event
        self.previous = None

    def _handle(self, signum, frame) -> None:
        self.event.set()
        signal.signal(signal.SIGINT, self.previous or signal.default_int_handler)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            # Tune's own handler would end fit() quietly, without telling us.
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
