"""Bootstrap confidence intervals of validation AUC from saved predictions.

AUC differences between MD-Conv placements are about the size of the noise, so every
AUC a report shows carries an interval. Method:

- One resample draws the validation images with replacement (the same draw for all labels of an
  image). It is stored as counts per image, and the AUC of a resample is the tie-aware
  Mann-Whitney statistic with those counts as weights: per label, one sort of the negatives'
  scores places every positive among them (searchsorted), then for all resamples at once the
  negatives' counts summed between those places give how many lie below each positive (O(B * N)
  per label, numpy; equal to scikit-learn's ``roc_auc_score`` on the materialised resample, which
  the tests check).
- A trial's mean AUC in a resample is the mean over the labels its search scored (those with
  enough positives and negatives in the validation split, :mod:`mdsearch.search.scored_labels`;
  the rule a run recorded in its config.json, every label with both classes for older runs);
  a label with one class in a resample is skipped for that resample.
- Trials whose predictions are on the same validation split (identical ``y_true``) share the same
  resamples, so the difference of two architectures is a paired bootstrap on the same images.
- Training seeds: an architecture's AUC is the mean over its seeds, and every resample also gets
  an independent draw of seed noise (variance sigma^2 / S for S seeds; sigma^2 pooled over the
  run's repeated architectures and its proxy-check, :mod:`mdsearch.results.seed_noise`), so an
  interval covers the training noise as well as the finite validation set, for one seed as for
  several. Without any estimate of sigma^2 an interval covers the images only and no difference
  is judged (:attr:`AUCDifference.judged` is False, never "distinct").
- Intervals are percentile intervals (default 95%, 1000 resamples, seeded).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mdsearch.search.scored_labels import LABEL_RULE, LabelRule

from .seed_noise import SeedNoise, arch_interval, difference_samples, with_seed_noise

if TYPE_CHECKING:  # trials imports pandas: not for DEFAULT_RESAMPLES in --help
    from .trials import LoadedRun

__all__ = [
    "DEFAULT_RESAMPLES",
    "bootstrap_counts",
    "auc_from_counts",
    "mean_auc",
    "bootstrap_mean_auc",
    "percentile_interval",
    "AUCDifference",
    "PredictionBootstrap",
]

#: Bootstrap resamples of every interval a report, export card or evaluation shows.
DEFAULT_RESAMPLES = 1000

# Elements (resamples x images) handled at once: bounds memory at ~32 MB per float64 array.
_CHUNK_ELEMENTS = 4_000_000


def bootstrap_counts(
    n_items: int, n_resamples: int = DEFAULT_RESAMPLES, seed: int | Sequence[int] = 0
):
    """How often each item is drawn in each bootstrap resample.

    Args:
        n_items: number of items (validation images).
        n_resamples: number of resamples.
        seed: seed (or seed sequence) of the numpy generator.

    Returns:
        (n_resamples, n_items) unsigned integer array; every row sums to ``n_items``.

    Example:
        >>> bootstrap_counts(5, 3, seed=0).sum(axis=1).tolist()
        [5, 5, 5]
    """
    rng = np.random.default_rng(seed)
    dtype = np.uint16 if n_items < 2**16 else np.uint32
    counts = np.empty((n_resamples, n_items), dtype=dtype)
    step = max(1, _CHUNK_ELEMENTS // max(n_items, 1))
    for start in range(0, n_resamples, step):
        b = min(step, n_resamples - start)
        draws = rng.integers(0, n_items, size=(b, n_items)) + np.arange(b)[:, None] * n_items
        counts[start : start + b] = np.bincount(draws.ravel(), minlength=b * n_items).reshape(
            b, n_items
        )
    return counts


def auc_from_counts(y_true: np.ndarray, y_score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC AUC of every label in every resample given as per-item counts (weights).

    Args:
        y_true: (N,) or (N, L) binary labels.
        y_score: scores of the same shape (higher = more likely positive).
        counts: (B, N) non-negative weights, e.g. from :func:`bootstrap_counts`; a row of ones is
            the plain AUC.

    Returns:
        (B, L) float array (L = 1 for 1-D input); NaN where a resample has only one class.

    Example:
        >>> auc_from_counts(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]),
        ...                 np.ones((1, 4))).item()
        0.75
    """
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    if y.ndim == 1:
        y, s = y[:, None], s[:, None]
    if y.shape != s.shape or counts.shape[1] != y.shape[0]:
        raise ValueError(
            f"shapes do not match: y_true {y.shape}, y_score {s.shape}, counts {counts.shape}"
        )
    n_resamples, n = counts.shape
    # Integer counts add up exactly in int64; other weights in float64.
    acc = np.int64 if np.issubdtype(counts.dtype, np.integer) else np.float64
    out = np.full((n_resamples, y.shape[1]), np.nan)
    step = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for label in range(y.shape[1]):
        positive = y[:, label].astype(bool)
        pos_idx, neg_idx = np.flatnonzero(positive), np.flatnonzero(~positive)
        if len(pos_idx) == 0 or len(neg_idx) == 0:
            continue
        neg_idx = neg_idx[np.argsort(s[neg_idx, label], kind="stable")]
        neg_scores = s[neg_idx, label]
        # Negatives strictly below / at most each positive's score: a tie counts one half.
        below = np.searchsorted(neg_scores, s[pos_idx, label], side="left")
        at_most = np.searchsorted(neg_scores, s[pos_idx, label], side="right")
        # Running sums of the negatives' counts are needed only where positives fall: add the
        # counts up segment by segment between those places, then accumulate the few segments.
        cuts = np.unique(np.r_[0, below, at_most])
        cuts = cuts[cuts < len(neg_idx)]
        at_below, at_at_most = np.searchsorted(cuts, below), np.searchsorted(cuts, at_most)
        for b0 in range(0, n_resamples, step):
            chunk = counts[b0 : b0 + step]
            segments = np.add.reduceat(np.take(chunk, neg_idx, axis=1), cuts, axis=1, dtype=acc)
            running = np.zeros((len(chunk), len(cuts) + 1), dtype=acc)
            np.cumsum(segments, axis=1, out=running[:, 1:])
            w_pos = np.take(chunk, pos_idx, axis=1).astype(acc)
            twice_u = np.einsum("bp,bp->b", w_pos, running[:, at_below] + running[:, at_at_most])
            pairs = w_pos.sum(axis=1) * running[:, -1]
            with np.errstate(invalid="ignore", divide="ignore"):
                out[b0 : b0 + step, label] = np.where(pairs > 0, 0.5 * twice_u / pairs, np.nan)
    return out


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
        return np.nanmean(values, axis=1)


def mean_auc(y_true: np.ndarray, y_score: np.ndarray, rule: LabelRule = LABEL_RULE) -> float:
    """Mean ROC AUC over the labels ``rule`` keeps (the point estimate a trial reports).

    Example:
        >>> mean_auc(np.array([[0, 1], [1, 1]]), np.array([[0.2, 0.5], [0.7, 0.1]]))
        1.0
    """
    return float(
        bootstrap_mean_auc(y_true, y_score, counts=np.ones((1, len(y_true))), rule=rule)[0]
    )


def bootstrap_mean_auc(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int | Sequence[int] = 0,
    counts: np.ndarray | None = None,
    rule: LabelRule = LABEL_RULE,
) -> np.ndarray:
    """Bootstrap distribution of the mean AUC over labels of one set of predictions.

    Args:
        y_true: (N, L) binary labels of the validation images.
        y_score: (N, L) scores.
        n_resamples: resamples to draw (ignored when ``counts`` is given).
        seed: generator seed (ignored when ``counts`` is given).
        counts: (B, N) resample counts to reuse, so that two models are compared on the same
            resamples (a paired bootstrap).
        rule: which labels enter the mean, decided once on all of ``y_true``.

    Returns:
        (B,) mean AUC per resample over the labels ``rule`` keeps (one with one class in a
        resample skipped there; NaN when none is left).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = rng.integers(0, 2, (200, 3)); s = y + rng.normal(0, 1, y.shape)
        >>> lo, hi = percentile_interval(bootstrap_mean_auc(y, s, n_resamples=200))
        >>> bool(lo < mean_auc(y, s) < hi)
        True
    """
    y = np.asarray(y_true)
    if counts is None:
        counts = bootstrap_counts(y.shape[0], n_resamples, seed)
    return np.atleast_1d(rule.apply(y).mean(auc_from_counts(y, y_score, counts)))


def percentile_interval(
    samples: np.ndarray, level: float = 0.95, axis: int = 0
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Percentile bootstrap interval, ignoring NaN resamples.

    Args:
        samples: bootstrap values (resamples along ``axis``).
        level: coverage, e.g. 0.95.
        axis: the resample axis.

    Returns:
        ``(low, high)``: floats for 1-D samples, arrays otherwise; NaN when fewer than 10
        resamples are finite.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    x = np.asarray(samples, dtype=float)
    tail = (1 - level) / 2 * 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(x, [tail, 100 - tail], axis=axis)
    too_few = np.sum(np.isfinite(x), axis=axis) < 10
    low, high = np.where(too_few, np.nan, low), np.where(too_few, np.nan, high)
    if x.ndim == 1:
        return float(low), float(high)
    return low, high


@dataclass(frozen=True)
class AUCDifference:
    """Bootstrap of the mean-AUC difference a - b between two architectures.

    Attributes:
        mean: mean of the bootstrap differences.
        low, high: percentile interval at the bootstrap's level.
        paired: whether both were resampled on the same validation images.
        judged: whether seed noise was known, so that the interval can decide anything.
    """

    mean: float
    low: float
    high: float
    paired: bool
    judged: bool = True

    @property
    def distinguishable(self) -> bool:
        """Whether the interval excludes 0 (never without an estimate of seed noise)."""
        return bool(self.judged and (self.low > 0 or self.high < 0))

    def __str__(self) -> str:
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


class PredictionBootstrap:
    """Bootstrap distributions of trials' and architectures' mean AUC in one run folder.

    Distributions are computed on first use and cached; trials without a readable predictions
    file give ``None`` (and a line in :attr:`notes`).

    Args:
        run: a run folder (path or :class:`~mdsearch.results.trials.LoadedRun`).
        n_resamples: bootstrap resamples.
        level: interval coverage.
        seed: seed of all resampling (results are reproducible).
        seed_noise: the run's seed-noise estimate (None or unknown: images only, nothing
            judged; see the module docstring).
        rule: which labels a trial's mean AUC is over (default: the one the run recorded).

    Example:
        >>> boot = PredictionBootstrap("runs/demo")  # doctest: +SKIP
        >>> boot.interval([3, 17])  # trials 3 and 17: two seeds of one arch  # doctest: +SKIP
        (0.741, 0.779)
    """

    def __init__(
        self,
        run: LoadedRun | str | Path,
        *,
        n_resamples: int = DEFAULT_RESAMPLES,
        level: float = 0.95,
        seed: int = 0,
        seed_noise: SeedNoise | None = None,
        rule: LabelRule | None = None,
    ) -> None:
        from .trials import LoadedRun, load_run

        self.run = run if isinstance(run, LoadedRun) else load_run(run)
        self.rule = rule if rule is not None else LabelRule.from_config(self.run.config)
        self.n_resamples = int(n_resamples)
        self.level = float(level)
        self.seed = int(seed)
        self.seed_noise = seed_noise if seed_noise is not None else SeedNoise()
        self.notes: list[str] = []
        self._samples: dict[int, np.ndarray | None] = {}
        self._keys: dict[int, str | None] = {}
        self._counts: dict[str, np.ndarray] = {}

    def _load(self, trial: int) -> tuple[np.ndarray, np.ndarray] | None:
        path = self.run.predictions_path(trial)
        if path is None:
            self.notes.append(f"trial {trial}: no predictions file, no interval")
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                y_true, y_score = np.asarray(data["y_true"]), np.asarray(data["y_score"])
        except (OSError, KeyError, ValueError) as exc:
            self.notes.append(f"trial {trial}: {path.name} unreadable ({exc}), no interval")
            return None
        if y_true.ndim == 1:
            y_true, y_score = y_true[:, None], y_score[:, None]
        if y_true.shape != y_score.shape or y_true.shape[0] < 2:
            self.notes.append(f"trial {trial}: {path.name} has mismatched shapes, no interval")
            return None
        return y_true, y_score

    def trial_samples(self, trial: int) -> np.ndarray | None:
        """(B,) bootstrap mean AUC of one trial, or ``None`` without predictions."""
        trial = int(trial)
        if trial not in self._samples:
            loaded = self._load(trial)
            if loaded is None:
                self._samples[trial], self._keys[trial] = None, None
            else:
                y_true, y_score = loaded
                y_bytes = np.ascontiguousarray(y_true, dtype=np.uint8)
                key = hashlib.sha1(str(y_bytes.shape).encode() + y_bytes.tobytes()).hexdigest()
                if key not in self._counts:
                    # Seeded by the split itself: the same split gets the same resamples.
                    self._counts[key] = bootstrap_counts(
                        y_true.shape[0], self.n_resamples, [self.seed, int(key[:12], 16)]
                    )
                self._keys[trial] = key
                self._samples[trial] = bootstrap_mean_auc(
                    y_true, y_score, counts=self._counts[key], rule=self.rule
                )
        return self._samples[trial]

    def _seed_samples(self, trials: Sequence[int]) -> np.ndarray | None:
        """(S, B) image-bootstrap samples of each seed's AUC (trials with predictions only)."""
        per_trial = [s for s in (self.trial_samples(t) for t in trials) if s is not None]
        return np.stack(per_trial) if per_trial else None

    def _rng(self, *groups: Sequence[int]) -> np.random.Generator:
        """A generator for the seed-noise draws of these trials (reproducible reports)."""
        text = repr([sorted(int(t) for t in g) for g in groups])
        return np.random.default_rng(
            [self.seed, int(hashlib.sha1(text.encode()).hexdigest()[:12], 16)]
        )

    def arch_samples(self, trials: Sequence[int]) -> np.ndarray | None:
        """(B,) samples of an architecture's mean AUC over its seeds (its trials): the image
        bootstrap plus a seed-noise draw per resample (images only when seed noise is unknown);
        ``None`` without predictions."""
        stacked = self._seed_samples(trials)
        if stacked is None:
            return None
        mean = _nanmean_rows(stacked.T)
        return with_seed_noise(mean, self.seed_noise, 1.0 / len(stacked), self._rng(trials))

    def interval(self, trials: Sequence[int]) -> tuple[float, float]:
        """Percentile interval of an architecture's mean AUC (NaN without predictions): the
        calibrated :func:`~mdsearch.results.seed_noise.arch_interval`."""
        stacked = self._seed_samples(trials)
        if stacked is None:
            return float("nan"), float("nan")
        return arch_interval(stacked, self.seed_noise, self._rng(trials), level=self.level)

    def difference(self, trials_a: Sequence[int], trials_b: Sequence[int]) -> AUCDifference | None:
        """Mean AUC(a) - mean AUC(b): paired over the images, plus the seed noise of both means;
        ``None`` when either has no predictions."""
        a, b = self._seed_samples(trials_a), self._seed_samples(trials_b)
        if a is None or b is None:
            return None
        keys = {self._keys.get(int(t)) for t in (*trials_a, *trials_b)} - {None}
        diff = difference_samples(a, b, self.seed_noise, self._rng(trials_a, trials_b))
        low, high = percentile_interval(diff, self.level)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = float(np.nanmean(diff))
        return AUCDifference(mean, low, high, paired=len(keys) == 1, judged=self.seed_noise.known)
