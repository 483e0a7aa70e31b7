"""Proxy fidelity statistics: what the AUCs a proxy-check trained say about the short proxy.

:func:`mdsearch.search.proxy_check.run_proxy_check` trains K architectures x S seeds at each
short epoch count and at a long one and returns the raw AUCs; this module turns them into the
figures the report and the terminal show (:mod:`mdsearch.results.fidelity` renders them):

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
- The weight-sharing supernet (when the check trained one): tau between its scores and the long
  ranking, with the same interval (its one score per architecture stands in for every seed), and
  its cost in stand-alone proxy trials. It is reported, not recommended from.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mdsearch.search.proxy_check import AGREEMENT_TAU, CI_OVER, ProxyCheckRun

from .uncertainty import percentile_interval

__all__ = [
    "TauEstimate",
    "kendall_tau_ci",
    "proxy_check_result",
    "recommend_proxy",
    "seed_noise",
    "summarise_proxy_check",
]


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
        """Plain dict for proxy_check.json (``per_seed`` as a list)."""
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
    supernet: np.ndarray | None = None,
) -> dict[str, Any]:
    """The figures a proxy-check reports, from its AUC matrices.

    Args:
        auc: per epoch count, (K, S) validation AUCs (architecture x seed); must hold ``long``.
        long: the reference epoch count; every other key is a short proxy.
        seconds: per epoch count, mean training seconds of one run (for the cost column).
        ci_over, n_resamples, level, seed: the tau interval (see :func:`kendall_tau_ci`).
        threshold: tau at which a short proxy agrees with the long one.
        supernet: (K,) the supernet's AUC per architecture (None: no supernet was trained).

    Returns:
        JSON-ready dict: ``settings`` (per epoch count: ``mean``/``std`` per arch, pooled
        ``seed_std``, ``spread``, ``seconds``, and for short ones ``tau``), ``recommended``
        (epochs or None), ``threshold`` and ``warnings`` (lines for the user); with
        ``supernet``, ``supernet_tau`` (its tau vs the long ranking, as a short one's).
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
    if supernet is not None:
        long_auc = np.asarray(auc[long], dtype=float)
        # One supernet score per architecture stands in for every seed column, so a seed
        # bootstrap redraws only the long runs.
        scores = np.repeat(np.asarray(supernet, dtype=float)[:, None], long_auc.shape[1], 1)
        est = kendall_tau_ci(
            scores, long_auc, over=ci_over, n_resamples=n_resamples, level=level, seed=seed
        )
        out["supernet_tau"] = est.to_dict()
        if not (math.isfinite(est.tau) and est.tau >= threshold):
            out["warnings"].append(
                f"the supernet ranked the architectures unlike {long} epochs of stand-alone "
                f"training (tau {est.tau:.2f} < {threshold:g}): do not search by its scores alone"
            )
    return out


def _warnings(summary: dict[str, Any], long: int, threshold: float) -> list[str]:
    lines = []
    rows = summary["settings"]
    if summary["recommended"] is None:
        shorts = [int(e) for e, r in rows.items() if not r["long"]]
        unit = "epoch" if shorts == [1] else "epochs"
        listed = ",".join(str(e) for e in shorts)
        lines.append(
            f"no short proxy ({listed} {unit}) ranked the architectures like "
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


def proxy_check_result(run: ProxyCheckRun) -> dict[str, Any]:
    """The whole proxy_check.json content: the run's raw AUCs and times with their figures.

    Args:
        run: what :func:`mdsearch.search.proxy_check.run_proxy_check` returned.

    Returns:
        ``run.to_dict()`` plus :func:`summarise_proxy_check`'s keys (``settings``,
        ``threshold``, ``warnings``, ``recommended``), with the interval, threshold and
        bootstrap seed of ``run.settings``.
    """
    s = run.settings
    summary = summarise_proxy_check(
        run.auc,
        s.long,
        seconds=run.mean_seconds(),
        ci_over=s.ci_over,
        n_resamples=s.n_resamples,
        level=s.level,
        threshold=s.threshold,
        seed=s.seed,
        supernet=run.supernet_auc,
    )
    return {**run.to_dict(), **summary}
