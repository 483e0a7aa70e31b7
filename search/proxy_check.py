"""How far the search's short proxies can be trusted (``mdsearch proxy-check``).

A search ranks architectures by a short proxy (:class:`~mdsearch.search.proxy.ProxyConfig`, 2
epochs by default). On real X-rays a 2-epoch proxy ranked three placements differently from an
8-epoch one (Kendall tau 0.33) with seed noise as large as the differences (DESIGN.md, "Honest
search"). This module measures that for the user's own data and settings:

- K architectures: the space's reference points (the baseline, then the paper's stage5 MD-Conv
  when the space holds it), then uniform samples of the space without repeats (seeded).
- Each is trained with S seeds (``seed``, ``seed + 1``, ...: the seeds the search gives repeats
  of an architecture) at every short epoch count and at the long one. All other settings are
  the search's proxy settings.
- Per setting: the seed noise (std of AUC over seeds, ddof=1, pooled over architectures as the
  root mean variance) and the between-architecture spread (std of the seed-mean AUCs, ddof=1).
- Per short setting: Kendall's tau-b (``scipy.stats.kendalltau``) between the short and the long
  ranking of the seed-mean AUCs, with a percentile bootstrap interval. Default: the bootstrap
  redraws the seeds (with replacement; the same seed draw for every architecture and for short
  and long, which keeps the pairing of runs that share an initialisation and data order). It
  answers "would other seeds rank these K architectures alike?", not "would other architectures
  of the space?" (``ci_over="archs"`` or ``"both"`` also redraws the architectures; with a small K
  that interval is mostly undefined). With S = 2 a seed bootstrap has only three distinct draws,
  so the interval is coarse; tau itself takes few values for small K (K = 3: -1, -1/3, 1/3, 1).
- Recommendation: the cheapest short proxy whose tau >= 0.6, or a warning that none agreed.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mdsearch.space import ArchSpec, SearchSpace, load_space

from .proxy import ProxyConfig

__all__ = [
    "AGREEMENT_TAU",
    "CI_OVER",
    "PROXY_CHECK_FILE",
    "PROXY_CHECK_SCHEMA",
    "ProxyCheckError",
    "ProxyCheckSettings",
    "TauEstimate",
    "kendall_tau_ci",
    "parse_epochs",
    "prepare_output",
    "recommend_proxy",
    "run_proxy_check",
    "sample_architectures",
    "seed_noise",
    "settings_from_flags",
    "summarise_proxy_check",
    "write_proxy_check",
]

#: Tau at which a short proxy's ranking counts as agreeing with the long one.
AGREEMENT_TAU = 0.6
#: What the tau interval's bootstrap redraws.
CI_OVER = ("seeds", "archs", "both")
PROXY_CHECK_FILE = "proxy_check.json"
PROXY_CHECK_SCHEMA = "mdsearch.proxy_check/1"


class ProxyCheckError(ValueError):
    """A proxy-check that cannot run as asked (the message names the flag and what to do)."""


@dataclass(frozen=True)
class ProxyCheckSettings:
    """What a proxy-check trains.

    Args:
        data: ``--data`` value (``phantom``, ``kermany=PATH``, ...).
        space: preset name or space file the sampled architectures come from.
        backbone: optional timm backbone replacing the space's.
        archs: K, architectures compared (at least 2).
        seeds: S, seeds per architecture and setting (1 gives no seed noise and no interval).
        seed: first seed; also seeds the architecture sample and the validation split.
        short: short proxies to judge, as epoch counts.
        long: the reference length in epochs (more than every short one).
        proxy: every other training setting (its ``epochs`` is ignored).
        val_fraction: share of patients held out for validation.
        cache_dir: decoded-image cache folder (None: the user cache dir).
        ci_over: what the tau bootstrap redraws: ``seeds``, ``archs`` or ``both``.
        n_resamples: bootstrap resamples of the tau interval.
        level: coverage of the interval, e.g. 0.95.
        threshold: tau at which a short proxy agrees with the long one.
        run_proxy_epochs: epochs of the search run this check belongs to (None: no run); its
            seed noise is the one the report quotes.
    """

    data: str = "phantom"
    space: str = "default"
    backbone: str | None = None
    archs: int = 4
    seeds: int = 2
    seed: int = 0
    short: tuple[int, ...] = (2,)
    long: int = 8
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    val_fraction: float = 0.2
    cache_dir: str | None = None
    ci_over: str = "seeds"
    n_resamples: int = 1000
    level: float = 0.95
    threshold: float = AGREEMENT_TAU
    run_proxy_epochs: int | None = None

    @property
    def epochs(self) -> tuple[int, ...]:
        """Every setting's epoch count, shortest first (the long one last)."""
        return (*sorted(set(self.short)), self.long)

    @property
    def reuses_long_runs(self) -> bool:
        """Whether short AUCs are read from the long runs (constant schedule only)."""
        return self.proxy.schedule == "constant"

    def check(self) -> None:
        """Raise :class:`ProxyCheckError` for settings that cannot give an answer."""
        if self.archs < 2:
            raise ProxyCheckError(f"--archs {self.archs}: a ranking needs 2 or more architectures")
        if self.seeds < 1:
            raise ProxyCheckError(f"--seeds {self.seeds}: use 1 or more (2+ to measure seed noise)")
        if not self.short:
            raise ProxyCheckError("--short: give one or more epoch counts, e.g. --short 1,2")
        if min(self.short) < 1:
            raise ProxyCheckError(f"--short {_epochs_text(self.short)}: epochs must be 1 or more")
        if self.long <= max(self.short):
            raise ProxyCheckError(
                f"--long {self.long} is not longer than --short {_epochs_text(self.short)}: "
                f"use --long {2 * max(self.short)} or more"
            )
        if self.ci_over not in CI_OVER:
            raise ProxyCheckError(f"ci_over {self.ci_over!r}: use one of {', '.join(CI_OVER)}")
        if self.n_resamples < 0:
            raise ProxyCheckError(f"--resamples {self.n_resamples}: use 0 or more")
        if not 0 < self.level < 1:
            raise ProxyCheckError(f"level {self.level}: use a coverage between 0 and 1, e.g. 0.95")
        p = self.proxy
        if min(p.batch_size, p.resolution) < 1 or p.lr <= 0:
            raise ProxyCheckError("--batch-size, --resolution and --lr must be positive")
        if p.train_subset is not None and p.train_subset < 1:
            raise ProxyCheckError(f"--train-subset {p.train_subset}: use 1 or more, or 'all'")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for proxy_check.json."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "proxy"}
        d["short"] = sorted(set(self.short))
        # The proxy's own epochs are replaced by ``short`` and ``long``: not written, not misread.
        d["proxy"] = {k: v for k, v in self.proxy.to_dict().items() if k != "epochs"}
        return d


def _epochs_text(epochs: Sequence[int]) -> str:
    return ",".join(str(e) for e in epochs)


# -- architectures --------------------------------------------------------------------------


def sample_architectures(
    space: SearchSpace, k: int, seed: int = 0, num_classes: int = 14
) -> list[tuple[str, ArchSpec]]:
    """K architectures of ``space``: its reference points first, then uniform samples.

    Samples are drawn by index over the product of the stage choices (no enumeration, so the
    16,384-point default space costs nothing), without repeats.

    Args:
        space: the search space.
        k: how many (at most ``space.size``).
        seed: seeds the samples.
        num_classes: outputs of every architecture.

    Returns:
        ``(label, spec)`` pairs; labels are ``baseline``, ``paper`` and ``sample 1`` ...

    Raises:
        ProxyCheckError: ``k`` exceeds the space's size.

    Example:
        >>> [label for label, _ in sample_architectures(load_space("paper"), 3, seed=0)]
        ['baseline', 'paper', 'sample 1']
    """
    if k > space.size:
        raise ProxyCheckError(
            f"--archs {k}: space {space.name} holds only {space.size} architectures"
        )
    refs = space.reference_points(num_classes)
    chosen = list(zip(("baseline", "paper"), refs))[:k]
    seen = {spec.canonical for _, spec in chosen}
    rng = np.random.default_rng([seed, 0x9C])
    n_samples = 0
    while len(chosen) < k:
        index = int(rng.integers(space.size))
        stages = []
        for options in reversed(space.choices):  # mixed-radix digits, last stage fastest
            index, digit = divmod(index, len(options))
            stages.append(options[digit])
        spec = ArchSpec(space.backbone, num_classes, tuple(reversed(stages)))
        if spec.canonical not in seen:
            seen.add(spec.canonical)
            n_samples += 1
            chosen.append((f"sample {n_samples}", spec))
    return chosen


# -- statistics -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TauEstimate:
    """Kendall's tau-b between a short and the long ranking of seed-mean AUCs.

    Attributes:
        tau: tau-b of the seed means (NaN when fewer than 2 architectures have both).
        p_value: scipy's two-sided p-value for tau = 0 (exact for small K without ties).
        low, high: percentile bootstrap interval (NaN when it cannot be estimated).
        per_seed: tau of each seed's own short vs long ranking.
        over: what the bootstrap redrew (``seeds``, ``archs``, ``both``).
    """

    tau: float
    p_value: float
    low: float
    high: float
    per_seed: tuple[float, ...]
    over: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "tau": self.tau,
            "p_value": self.p_value,
            "low": self.low,
            "high": self.high,
            "per_seed": list(self.per_seed),
            "over": self.over,
        }


def _tau(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from scipy.stats import kendalltau

    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return math.nan, math.nan
    with warnings.catch_warnings():  # constant input: NaN is the answer, not a warning
        warnings.simplefilter("ignore")
        result = kendalltau(x[ok], y[ok])
    return float(result.statistic), float(result.pvalue)


def _seed_means(auc: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # an architecture whose every run diverged: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(auc, axis=-1)


def kendall_tau_ci(
    short: np.ndarray,
    long: np.ndarray,
    *,
    over: str = "seeds",
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> TauEstimate:
    """Kendall's tau of the seed-mean rankings of ``short`` and ``long``, with a bootstrap CI.

    Args:
        short, long: (K, S) validation AUCs, architecture x seed; column j of both comes from
            seed j (NaN marks a diverged run and is left out of the means).
        over: ``seeds`` redraws the S seed columns with replacement (the same draw for every
            architecture and both settings), ``archs`` redraws the K architectures, ``both``
            does both.
        n_resamples: bootstrap resamples (0: no interval).
        level: coverage of the percentile interval.
        seed: seeds the bootstrap.

    Returns:
        A :class:`TauEstimate`. The interval is NaN when fewer than 10 resamples give a tau
        (e.g. ``over="seeds"`` with S = 1).

    Example:
        >>> long = np.array([[0.70, 0.71], [0.75, 0.74], [0.80, 0.79]])
        >>> est = kendall_tau_ci(long - 0.05, long)
        >>> est.tau, est.low, est.high
        (1.0, 1.0, 1.0)
    """
    from mdsearch.results.uncertainty import percentile_interval

    short, long = np.asarray(short, dtype=float), np.asarray(long, dtype=float)
    if short.ndim != 2 or short.shape != long.shape:
        raise ValueError(f"short {short.shape} and long {long.shape} must both be (archs, seeds)")
    if over not in CI_OVER:
        raise ValueError(f"over={over!r}: use one of {', '.join(CI_OVER)}")
    k, s = short.shape
    tau, p_value = _tau(_seed_means(short), _seed_means(long))
    per_seed = tuple(_tau(short[:, j], long[:, j])[0] for j in range(s))
    low = high = math.nan
    redraw_seeds = over in {"seeds", "both"} and s > 1
    redraw_archs = over in {"archs", "both"}
    if n_resamples > 0 and (redraw_seeds or redraw_archs):
        rng = np.random.default_rng(seed)
        samples = np.full(n_resamples, math.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for b in range(n_resamples):
                cols = rng.integers(s, size=s) if redraw_seeds else np.arange(s)
                rows = rng.integers(k, size=k) if redraw_archs else np.arange(k)
                a, c = (
                    np.nanmean(short[np.ix_(rows, cols)], 1),
                    np.nanmean(long[np.ix_(rows, cols)], 1),
                )
                # Repeated architectures are ties in both rankings: tau-b leaves them out, and
                # fewer than two distinct ones rank nothing.
                if len(set(rows.tolist())) >= 2:
                    samples[b] = _tau(a, c)[0]
        low, high = percentile_interval(samples, level)
    return TauEstimate(tau, p_value, float(low), float(high), per_seed, over)


def seed_noise(auc: np.ndarray) -> tuple[float, np.ndarray]:
    """Seed-to-seed standard deviation of AUC (ddof=1).

    Args:
        auc: (K, S) validation AUCs, architecture x seed (NaN: diverged, left out).

    Returns:
        ``(pooled, per_arch)``: the root mean of the architectures' variances, and each
        architecture's std (NaN with fewer than 2 finite seeds).

    Example:
        >>> pooled, per_arch = seed_noise(np.array([[0.70, 0.72], [0.80, 0.80]]))
        >>> round(pooled, 4), per_arch.round(4).tolist()
        (0.01, [0.0141, 0.0])
    """
    auc = np.asarray(auc, dtype=float)
    finite = np.isfinite(auc).sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        var = np.where(finite >= 2, np.nanvar(auc, axis=1, ddof=1), np.nan)
        pooled = float(np.sqrt(np.nanmean(var))) if np.isfinite(var).any() else math.nan
    return pooled, np.sqrt(var)


def recommend_proxy(taus: Mapping[int, float], threshold: float = AGREEMENT_TAU) -> int | None:
    """The cheapest (fewest epochs) short proxy whose tau reaches ``threshold``; None if none.

    Example:
        >>> recommend_proxy({1: 0.33, 2: 0.67, 4: 1.0})
        2
        >>> recommend_proxy({1: 0.33, 2: float("nan")}) is None
        True
    """
    for epochs in sorted(taus):
        tau = taus[epochs]
        if tau is not None and math.isfinite(tau) and tau >= threshold:
            return epochs
    return None


def summarise_proxy_check(
    auc: Mapping[int, np.ndarray],
    long: int,
    *,
    seconds: Mapping[int, float] | None = None,
    ci_over: str = "seeds",
    n_resamples: int = 1000,
    level: float = 0.95,
    threshold: float = AGREEMENT_TAU,
    seed: int = 0,
) -> dict[str, Any]:
    """The figures a proxy-check reports, from its AUC matrices.

    Args:
        auc: per epoch count, (K, S) validation AUCs (architecture x seed); must hold ``long``.
        long: the reference epoch count; every other key is a short proxy.
        seconds: per epoch count, mean training seconds of one run (for the cost column).
        ci_over, n_resamples, level, seed: the tau interval (see :func:`kendall_tau_ci`).
        threshold: tau at which a short proxy agrees with the long one.

    Returns:
        JSON-ready dict: ``settings`` (per epoch count: ``mean``/``std`` per arch, pooled
        ``seed_std``, ``spread``, ``seconds``, and for short ones ``tau``), ``recommended``
        (epochs or None), ``threshold`` and ``warnings`` (lines for the user).
    """
    if long not in auc:
        raise ValueError(f"no AUCs for the long setting ({long} epochs)")
    out: dict[str, Any] = {"settings": {}, "threshold": threshold, "warnings": []}
    taus: dict[int, float] = {}
    for epochs in sorted(auc):
        a = np.asarray(auc[epochs], dtype=float)
        pooled, per_arch = seed_noise(a)
        means = _seed_means(a)
        finite = means[np.isfinite(means)]
        spread = float(np.std(finite, ddof=1)) if len(finite) >= 2 else math.nan
        row: dict[str, Any] = {
            "epochs": epochs,
            "long": epochs == long,
            "mean": means.tolist(),
            "std": per_arch.tolist(),
            "seed_std": pooled,
            "spread": spread,
            "failed": int((~np.isfinite(a)).sum()),
            "seconds": None if seconds is None else seconds.get(epochs),
        }
        if epochs != long:
            est = kendall_tau_ci(
                a, auc[long], over=ci_over, n_resamples=n_resamples, level=level, seed=seed
            )
            row["tau"] = est.to_dict()
            taus[epochs] = est.tau
        out["settings"][str(epochs)] = row
    out["recommended"] = recommend_proxy(taus, threshold)
    out["warnings"] = _warnings(out, long, threshold)
    return out


def _warnings(summary: dict[str, Any], long: int, threshold: float) -> list[str]:
    lines = []
    rows = summary["settings"]
    if summary["recommended"] is None:
        shorts = [int(e) for e, r in rows.items() if not r["long"]]
        unit = "epoch" if shorts == [1] else "epochs"
        lines.append(
            f"no short proxy ({_epochs_text(shorts)} {unit}) ranked the architectures like "
            f"{long} epochs (tau >= {threshold:g}): a search with it ranks by noise; use more "
            "epochs (--epochs) or more seeds per architecture"
        )
    for e, r in rows.items():
        if (
            math.isfinite(r["seed_std"])
            and math.isfinite(r["spread"])
            and r["spread"] <= r["seed_std"]
        ):
            lines.append(
                f"{e} epochs: the architectures' spread ({r['spread']:.4f}) is not larger than "
                f"the seed noise ({r['seed_std']:.4f}): their differences are within noise"
            )
        if r["failed"]:
            lines.append(f"{e} epochs: {r['failed']} run(s) diverged (left out of the means)")
    return lines


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


def run_proxy_check(
    settings: ProxyCheckSettings,
    *,
    device: str = "cpu",
    quiet: bool = False,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train the K architectures x S seeds at every setting and summarise (see the module doc).

    Args:
        settings: what to train.
        device: ``cpu`` or ``cuda``.
        quiet: no progress display.
        say: where notes (data notes, resolution warnings) go (default: stderr unless quiet).

    Returns:
        The JSON-ready result (what :func:`write_proxy_check` writes): ``schema``, ``created``,
        ``parameters`` (the :class:`ProxyCheckSettings`), ``data``, ``space``, ``archs`` (label, arch, id, mdconv_stages, flops_m at 448 px),
        ``auc`` (per epoch count, K x S), ``seeds``, ``trainings``, ``wall_seconds`` and the
        figures of :func:`summarise_proxy_check`.

    Raises:
        ProxyCheckError: bad settings (before anything is trained).
    """
    from mdsearch.mdconv import cost

    from .orchestrate import load_proxy_data
    from .proxy import proxy_train
    from .training import Diverged

    settings.check()
    if say is None:
        say = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr))
    space = load_space(settings.space, settings.backbone)
    dataset = load_proxy_data(settings, space, say, progress=not quiet)
    num_classes = len(dataset.label_names)
    archs = sample_architectures(space, settings.archs, settings.seed, num_classes)
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
                    config = replace(settings.proxy, epochs=e)
                    try:
                        result = proxy_train(
                            spec,
                            dataset,
                            config,
                            seed,
                            device=device,
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        seconds = {e: float(np.nanmean(train_s[e])) for e in epochs}
    summary = summarise_proxy_check(
        auc,
        settings.long,
        seconds=seconds,
        ci_over=settings.ci_over,
        n_resamples=settings.n_resamples,
        level=settings.level,
        threshold=settings.threshold,
        seed=settings.seed,
    )
    return {
        "schema": PROXY_CHECK_SCHEMA,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "parameters": settings.to_dict(),
        "data": dataset.describe(),
        "space": {"name": space.name, "backbone": space.backbone, "size": space.size},
        "archs": [
            {
                "label": label,
                "arch": spec.canonical,
                "id": spec.arch_id,
                "mdconv_stages": list(spec.mdconv_stages),
                "flops_m": round(cost(spec, 448).flops_m, 1),
            }
            for label, spec in archs
        ],
        "seeds": seeds,
        "auc": {str(e): _json_floats(auc[e]) for e in epochs},
        "train_seconds": {str(e): _json_floats(train_s[e]) for e in epochs},
        "trainings": k * s * len(trained),
        "reused_long_runs": settings.reuses_long_runs,
        "wall_seconds": round(time.monotonic() - started, 1),
        **summary,
    }


def _json_floats(a: np.ndarray) -> list[list[float | None]]:
    return [[None if not math.isfinite(v) else float(v) for v in row] for row in a.tolist()]


def write_proxy_check(result: Mapping[str, Any], folder: str | Path) -> dict[str, Path]:
    """Write ``proxy_check.json`` and ``proxy_check.md`` into ``folder`` (atomically).

    Returns:
        ``{"json": path, "md": path}``.

    Raises:
        ProxyCheckError: the folder cannot be written.
    """
    from mdsearch.results.fidelity import format_fidelity_markdown

    folder = Path(folder)
    files = {"json": folder / PROXY_CHECK_FILE, "md": folder / "proxy_check.md"}
    texts = {
        "json": json.dumps(_nan_to_none(result), indent=2) + "\n",
        "md": format_fidelity_markdown(result) + "\n",
    }
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for key, path in files.items():
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(texts[key])
            os.replace(tmp, path)
    except OSError as exc:
        raise ProxyCheckError(
            f"cannot write {folder}: {exc.strerror or exc}; choose another --out"
        ) from exc
    return files


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


def _nan_to_none(value: Any) -> Any:
    """JSON has no NaN: write null (readers treat it as 'not measured')."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value


# -- command line ---------------------------------------------------------------------------


def parse_epochs(text: str, flag: str = "--short") -> tuple[int, ...]:
    """Epoch counts from ``1,2,4`` (the ``--short`` / ``--long`` syntax).

    Example:
        >>> parse_epochs("1, 2,4")
        (1, 2, 4)
    """
    try:
        values = tuple(int(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise ProxyCheckError(
            f"{flag} {text!r}: give epoch counts as whole numbers, e.g. {flag} 1,2"
        ) from None
    if not values:
        raise ProxyCheckError(f"{flag} {text!r}: give one or more epoch counts, e.g. {flag} 2")
    return values


_PROXY_FLAGS = (
    "resolution",
    "train_subset",
    "val_subset",
    "batch_size",
    "lr",
    "weight_decay",
    "optimizer",
    "schedule",
)


def settings_from_flags(given: Mapping[str, Any]) -> tuple[ProxyCheckSettings, Path]:
    """Settings and output folder from ``mdsearch proxy-check``'s flags.

    With ``run`` (``--run RUN``) every flag not given is taken from the run's config.json
    (data, space, backbone, seed, validation split, cache and proxy settings), the run's own
    proxy length is added to the short settings when shorter than ``--long`` (so the report can
    quote its seed noise), and the output folder is the run folder. Otherwise unset flags take
    ``ProxyConfig``'s defaults and the output goes to ``out`` or ``proxy-check-<date>-<time>``.

    Args:
        given: the flags the user set (argparse namespace as a dict, unset ones absent);
            ``short`` and ``long`` as text (``"1,2"``, ``"8"``).

    Raises:
        ProxyCheckError: a bad flag; mdsearch.search.runfolder.RunError: ``run`` is not a run.
    """
    from .runfolder import RunFolder

    run = given.get("run")
    base: dict[str, Any] = {}
    proxy = ProxyConfig()
    if run:
        config = RunFolder(run).read_config()
        saved = config.get("settings", {})
        base = {
            k: saved[k]
            for k in ("data", "space", "backbone", "seed", "val_fraction", "cache_dir")
            if k in saved
        }
        proxy = ProxyConfig.from_dict(saved.get("proxy", config.get("proxy", {})))
    proxy = replace(proxy, **{k: given[k] for k in _PROXY_FLAGS if given.get(k, ...) is not ...})
    fields = ProxyCheckSettings.__dataclass_fields__
    values = {
        **base,
        **{k: v for k, v in given.items() if k in fields and k not in {"short", "long", "proxy"}},
    }
    short = parse_epochs(given["short"], "--short") if given.get("short") else (proxy.epochs,)
    long = given.get("long")
    long_epochs = parse_epochs(long, "--long") if long is not None else (max(8, 4 * max(short)),)
    if len(long_epochs) != 1:
        raise ProxyCheckError(f"--long {long}: give one epoch count, e.g. --long 8")
    run_epochs = proxy.epochs if run else None
    if run_epochs is not None and run_epochs < long_epochs[0]:
        short = (*short, run_epochs)
    settings = ProxyCheckSettings(
        **values,
        short=tuple(sorted(set(short))),
        long=long_epochs[0],
        proxy=proxy,
        run_proxy_epochs=run_epochs,
    )
    settings.check()
    if run:
        out = Path(run)
    elif given.get("out"):
        out = Path(given["out"])
    else:
        out = Path(f"proxy-check-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    return settings, out
