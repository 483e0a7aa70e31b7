"""Running ``mdsearch proxy-check``: how far the search's short proxies can be trusted.

A search ranks architectures by a short proxy (:data:`~mdsearch.search.settings.PROXY_RECIPE`, 2
epochs by default). On real X-rays a 2-epoch proxy ranked three placements differently from an
8-epoch one (Kendall tau 0.33) with seed noise as large as the differences (README, "How far can
a short proxy be trusted?"). This module trains what measures that for the user's own data and
settings, and writes the raw AUCs; what they mean (seed noise, spread, Kendall tau with its
bootstrap interval, the recommended proxy) is computed one layer up, in
:mod:`mdsearch.results.proxy_fidelity`, and the command line composes the two.

- K architectures: the space's reference points (the baseline, then the paper's stage5 MD-Conv
  when the space holds it), then uniform samples of the space without repeats (seeded).
- Each is trained with S seeds (``seed``, ``seed + 1``, ...: the seeds the search gives repeats
  of an architecture) at every short epoch count and at the long one. All other settings are
  the search's proxy settings.

Schedules: under the cosine schedule (the default) the learning rate at epoch e depends on the
run's total length, so a long run's epoch-e evaluation is not what an e-epoch proxy would score:
every setting is trained separately (K x S x (shorts + 1) trainings). Under ``schedule="constant"``
an e-epoch run IS the first e epochs of the long run (same seed, same data order), so only the
long runs are trained, evaluated after every epoch, and the short AUCs are read from them (K x S
trainings; the short settings' time is then the long run's time pro rata).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mdsearch.space import ArchSpec, atomic_write_text, load_space

from .proxy_check_settings import (
    AGREEMENT_TAU,
    CI_OVER,
    ProxyCheckError,
    ProxyCheckSettings,
    sample_architectures,
)

# Settings and sampling live in proxy_check_settings; re-exported: one import for the command.
__all__ = [
    "AGREEMENT_TAU",
    "CI_OVER",
    "PROXY_CHECK_FILE",
    "PROXY_CHECK_MARKDOWN_FILE",
    "PROXY_CHECK_SCHEMA",
    "ProxyCheckError",
    "ProxyCheckRun",
    "ProxyCheckSettings",
    "prepare_output",
    "run_proxy_check",
    "sample_architectures",
    "write_proxy_check",
]

#: The proxy-check result in a run folder (or its own folder); the report reads it from there.
PROXY_CHECK_FILE = "proxy_check.json"
#: The same result as a Markdown section, next to it.
PROXY_CHECK_MARKDOWN_FILE = "proxy_check.md"
PROXY_CHECK_SCHEMA = "mdsearch.proxy_check/1"


# -- running --------------------------------------------------------------------------------


class _Progress:
    """A tqdm bar over training epochs (ETA weighted by run length) on a terminal; one line per
    finished training in a log."""

    def __init__(self, total_epochs: int, trainings: int, quiet: bool) -> None:
        self.quiet, self.total, self.trainings = quiet, total_epochs, trainings
        self.done_epochs, self.done_trainings = 0, 0
        self.started = time.monotonic()
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total_epochs,
                unit="epoch",
                file=sys.stderr,
                desc="proxy-check",
                dynamic_ncols=True,
                mininterval=0.5,
            )

    def epoch(self) -> None:
        self.done_epochs += 1
        if self.bar is not None:
            self.bar.update(1)

    def training(self, text: str) -> None:
        self.done_trainings += 1
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
        elif not self.quiet:
            elapsed = time.monotonic() - self.started
            left = elapsed / max(self.done_epochs, 1) * (self.total - self.done_epochs)
            eta = time.strftime("%H:%M:%S", time.gmtime(left))
            print(
                f"proxy-check {self.done_trainings}/{self.trainings} trainings | {text} | "
                f"ETA {eta}",
                file=sys.stderr,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass
class ProxyCheckRun:
    """What a proxy-check trained and measured, before any statistics.

    Attributes:
        settings: what was asked.
        archs: ``(label, spec)`` of the K architectures, in row order.
        seeds: the S training seeds, in column order.
        auc: per epoch count, (K, S) validation AUCs (NaN: the run diverged).
        train_seconds: per epoch count, (K, S) training seconds of each run.
        trainings: trainings run (K x S x settings trained).
        wall_seconds: seconds from the first training to the last.
        data: the dataset's description (``Dataset.describe()``).
        space: the space's ``name``, ``backbone`` and ``size``.
        created: UTC time the run finished, ISO 8601.
        supernet_auc: (K,) the supernet's validation AUC of each architecture (None: no
            supernet was trained).
        supernet: the supernet training's ``epochs``, ``random_subnets``, ``train_seconds``,
            ``images_per_s`` (every sub-network counted), ``proxy_equivalents`` (its cost in
            stand-alone proxy trials) and ``score_seconds`` (mean per architecture).
    """

    settings: ProxyCheckSettings
    archs: list[tuple[str, ArchSpec]]
    seeds: list[int]
    auc: dict[int, np.ndarray]
    train_seconds: dict[int, np.ndarray]
    trainings: int
    wall_seconds: float
    data: dict[str, Any] = field(default_factory=dict)
    space: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    supernet_auc: np.ndarray | None = None
    supernet: dict[str, Any] = field(default_factory=dict)

    def mean_seconds(self) -> dict[int, float]:
        """Per epoch count, the mean training seconds of one run (NaN when none finished)."""
        with warnings.catch_warnings():  # every run of a setting diverged: NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            return {e: float(np.nanmean(s)) for e, s in self.train_seconds.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the raw half of proxy_check.json): ``schema``, ``created``,
        ``parameters``, ``data``, ``space``, ``archs`` (label, arch, id, mdconv_stages,
        ``flops_m`` in millions of multiply-adds at 448 px), ``seeds``, ``auc`` and
        ``train_seconds`` (per epoch count, K x S, null for a diverged run), ``trainings``,
        ``reused_long_runs`` and ``wall_seconds``."""
        from mdsearch.mdconv import cost

        epochs = self.settings.epochs
        supernet = (
            {}
            if self.supernet_auc is None
            else {"supernet": {**self.supernet, "auc": _json_floats(self.supernet_auc[None])[0]}}
        )
        return {
            "schema": PROXY_CHECK_SCHEMA,
            "created": self.created,
            "parameters": self.settings.to_dict(),
            "data": self.data,
            "space": self.space,
            "archs": [
                {
                    "label": label,
                    "arch": spec.canonical,
                    "id": spec.arch_id,
                    "mdconv_stages": list(spec.mdconv_stages),
                    "flops_m": round(cost(spec, 448).flops_m, 1),
                }
                for label, spec in self.archs
            ],
            "seeds": self.seeds,
            "auc": {str(e): _json_floats(self.auc[e]) for e in epochs},
            "train_seconds": {str(e): _json_floats(self.train_seconds[e]) for e in epochs},
            "trainings": self.trainings,
            "reused_long_runs": self.settings.reuses_long_runs,
            "wall_seconds": self.wall_seconds,
            **supernet,
        }


def _json_floats(a: np.ndarray) -> list[list[float | None]]:
    return [[None if not math.isfinite(v) else float(v) for v in row] for row in a.tolist()]


def run_proxy_check(
    settings: ProxyCheckSettings,
    *,
    device: str = "cpu",
    quiet: bool = False,
    say: Callable[[str], None] | None = None,
) -> ProxyCheckRun:
    """Train the K architectures x S seeds at every setting (see the module doc).

    Args:
        settings: what to train.
        device: ``cpu`` or ``cuda``.
        quiet: no progress display.
        say: where notes (data notes, resolution warnings) go (default: stderr unless quiet).

    Returns:
        The raw AUCs and times; :func:`mdsearch.results.proxy_fidelity.proxy_check_result`
        turns them into the figures the report shows.

    Raises:
        ProxyCheckError, SettingsError: bad settings (before anything is trained).
    """
    from .proxy import proxy_train
    from .proxy_data import load_proxy_data
    from .training import Diverged

    settings.check()
    if say is None:
        say = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr))
    space = load_space(settings.space, settings.backbone)
    dataset = load_proxy_data(
        settings.data, space, say, progress=not quiet, val_subset=settings.proxy.val_subset
    )
    archs = sample_architectures(
        space, settings.archs, settings.seed, num_classes=len(dataset.label_names)
    )
    epochs = settings.epochs
    seeds = [settings.seed + j for j in range(settings.seeds)]
    k, s = len(archs), len(seeds)
    auc = {e: np.full((k, s), np.nan) for e in epochs}
    train_s = {e: np.full((k, s), np.nan) for e in epochs}
    trained = [settings.long] if settings.reuses_long_runs else list(epochs)
    progress = _Progress(k * s * sum(trained), k * s * len(trained), quiet)
    started = time.monotonic()
    try:
        for i, (label, spec) in enumerate(archs):
            for j, seed in enumerate(seeds):
                for e in trained:
                    try:
                        result = proxy_train(
                            spec,
                            dataset,
                            settings.recipe(e),
                            seed,
                            device=device,
                            threads=settings.threads,
                            report=lambda row: progress.epoch(),
                            eval_every_epoch=settings.reuses_long_runs,
                        )
                    except Diverged:
                        text = "diverged"
                    else:
                        auc[e][i, j], train_s[e][i, j] = result.auc, result.train_seconds
                        if settings.reuses_long_runs:
                            by_epoch = {int(r["epoch"]): r.get("auc") for r in result.history}
                            for short in settings.short:
                                auc[short][i, j] = by_epoch.get(short, math.nan)
                                train_s[short][i, j] = result.train_seconds * short / e
                        text = f"AUC {result.auc:.4f}"
                    progress.training(f"{label} seed {seed} {e} ep: {text}")
    finally:
        progress.close()
    supernet_auc, supernet = None, {}
    if settings.supernet:
        supernet_auc, supernet = _supernet_scores(settings, space, dataset, archs, device, say)
    return ProxyCheckRun(
        settings=settings,
        archs=archs,
        seeds=seeds,
        auc=auc,
        train_seconds=train_s,
        trainings=k * s * len(trained),
        wall_seconds=round(time.monotonic() - started, 1),
        data=dataset.describe(),
        space={"name": space.name, "backbone": space.backbone, "size": space.size},
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        supernet_auc=supernet_auc,
        supernet=supernet,
    )


def _supernet_scores(settings, space, dataset, archs, device, say):
    """Train the space's supernet once (seed ``settings.seed``) and score the K architectures.

    Returns:
        ``((K,) AUCs, what the training cost)``; see :class:`ProxyCheckRun`.
    """
    from .settings import PROXY_RECIPE
    from .subnet_scoring import score_subnet
    from .supernet import SupernetSettings, train_supernet

    recipe, options = settings.supernet_recipe(), SupernetSettings()
    # the cost is counted in the search's stand-alone trials (the run's proxy, else the default)
    proxy = settings.recipe(settings.run_proxy_epochs or PROXY_RECIPE.epochs)

    def progress(training, stats) -> None:
        say(
            f"supernet epoch {training.epochs_done}/{recipe.epochs}: "
            f"{stats.images_per_s:.0f} images/s (every sub-network counted)"
        )

    training = train_supernet(
        space, dataset, recipe, settings.seed, settings=options, proxy=proxy, device=device,
        threads=settings.threads, on_epoch=progress,
    )  # fmt: skip
    results = [
        score_subnet(training.supernet, spec, dataset, recipe, settings=options, device=device)
        for _, spec in archs
    ]
    auc = np.array([r.auc for r in results], dtype=float)
    return auc, {
        "epochs": recipe.epochs,
        "random_subnets": options.random_subnets,
        "train_seconds": round(training.seconds, 1),
        "images_per_s": training.images_per_s,
        "proxy_equivalents": training.proxy_equivalents,
        "proxy_epochs": proxy.epochs,
        "score_seconds": float(np.mean([r.train_seconds for r in results])),
    }


# -- writing --------------------------------------------------------------------------------


def prepare_output(folder: str | Path) -> Path:
    """Create the output folder before anything is trained, so an unwritable one fails first.

    Raises:
        ProxyCheckError: it cannot be created or written.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProxyCheckError(
            f"cannot create {folder}: {exc.strerror or exc}; choose another --out"
        ) from None
    if not os.access(folder, os.W_OK):
        raise ProxyCheckError(f"{folder} is not writable; choose another --out")
    return folder


def write_proxy_check(
    result: Mapping[str, Any], folder: str | Path, markdown: str | None = None
) -> dict[str, Path]:
    """Write :data:`PROXY_CHECK_FILE` (and :data:`PROXY_CHECK_MARKDOWN_FILE` when ``markdown``
    is given) into ``folder``, each atomically.

    Args:
        result: the JSON-ready result (NaN is written as null).
        folder: run folder or the check's own folder (created when missing).
        markdown: the result as a Markdown section (None: no ``.md``).

    Returns:
        ``{"json": path}``, plus ``"md": path`` when written.

    Raises:
        ProxyCheckError: the folder cannot be written.
    """
    folder = Path(folder)
    texts = {"json": (PROXY_CHECK_FILE, json.dumps(_nan_to_none(result), indent=2) + "\n")}
    if markdown is not None:
        texts["md"] = (PROXY_CHECK_MARKDOWN_FILE, markdown + "\n")
    files: dict[str, Path] = {}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for key, (name, text) in texts.items():
            files[key] = atomic_write_text(folder / name, text)
    except OSError as exc:
        raise ProxyCheckError(
            f"cannot write {folder}: {exc.strerror or exc}; choose another --out"
        ) from exc
    return files


def _nan_to_none(value: Any) -> Any:
    """JSON has no NaN: write null (readers treat it as 'not measured')."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value
