"""Training-seed noise: how much one proxy run's AUC moves when only the seed changes, and
intervals that include it.

The model (one run = one architecture trained with one seed, scored on the run's validation
images)::

    AUC(arch a, seed s) = mu_a + e_as + v_as
        mu_a  the architecture's expected AUC on the population of images (what a user wants)
        e_as  seed noise, variance sigma^2, the same for every architecture
        v_as  image-sampling noise of the finite validation set (shared images: correlated
              between runs, which a paired bootstrap over the images carries)

sigma^2 is estimated from the architectures trained with several seeds (pooled within-
architecture variance, ``df = sum(n_a - 1)``), plus a proxy-check of the same setting when there
is one (its sums of squares and degrees of freedom are added). An architecture's mean over its
n_a seeds then has variance ``sigma^2 / n_a`` beyond the image bootstrap. Intervals draw both
parts: each bootstrap resample of the images gets an independent seed-noise draw
``N(0, sigma_b^2 / n_a)``, where ``sigma_b^2`` is itself drawn from its sampling distribution
(``df * s^2 / chi2_df``), so a noise estimate from few repeats gives wide, t-like intervals rather
than overconfident ones. Without any estimate of sigma^2 the seed part is unknown: intervals then
cover the images only and no difference is called distinct.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "SeedNoise",
    "arch_interval",
    "difference_samples",
    "pooled_seed_noise",
    "seed_noise_draws",
    "with_seed_noise",
]


@dataclass(frozen=True)
class SeedNoise:
    """Pooled seed-to-seed variance of one run's AUC.

    Attributes:
        sum_squares: within-architecture sum of squared deviations from each architecture's mean.
        df: degrees of freedom (sum over repeated architectures of seeds - 1); 0 = unknown.
        sources: what it was estimated from, in words (e.g. ``"12 repeated architectures"``).
    """

    sum_squares: float = 0.0
    df: int = 0
    sources: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        """Whether there is any estimate (at least one degree of freedom)."""
        return self.df > 0

    @property
    def variance(self) -> float:
        """sigma^2 (NaN when unknown)."""
        return self.sum_squares / self.df if self.df > 0 else float("nan")

    @property
    def sd(self) -> float:
        """sigma, the seed-to-seed standard deviation of one run's AUC (NaN when unknown)."""
        return float(np.sqrt(self.variance))

    def __add__(self, other: SeedNoise) -> SeedNoise:
        return SeedNoise(
            self.sum_squares + other.sum_squares, self.df + other.df, self.sources + other.sources
        )

    @classmethod
    def from_sd(cls, sd: float, df: int, source: str) -> SeedNoise:
        """An estimate given as a standard deviation with its degrees of freedom (e.g. a
        proxy-check's seed noise over K architectures x S seeds: df = K (S - 1))."""
        if not np.isfinite(sd) or df < 1:
            return cls()
        return cls(float(sd) ** 2 * int(df), int(df), (source,))

    def describe(self) -> str:
        """One line for reports: ``seed SD 0.027 (30 df; 8 repeated architectures)``."""
        if not self.known:
            return "seed noise unknown (no architecture trained with more than one seed)"
        return f"seed SD {self.sd:.4f} ({self.df} df; {', '.join(self.sources)})"


def pooled_seed_noise(auc: Sequence[float], arch: Sequence[object]) -> SeedNoise:
    """Pooled within-architecture variance of AUC (one-way ANOVA's within mean square).

    Args:
        auc: one AUC per completed run.
        arch: the architecture of each run (any hashable; the same value = the same network).

    Returns:
        The estimate; unknown (df 0) when no architecture has two finite runs.

    Example:
        >>> noise = pooled_seed_noise([0.70, 0.72, 0.80, 0.78, 0.75], ["a", "a", "b", "b", "c"])
        >>> round(noise.sd, 4), noise.df
        (0.0141, 2)
    """
    values = np.asarray(auc, dtype=float)
    keys = np.asarray([str(a) for a in arch])
    if values.shape != keys.shape:
        raise ValueError(f"auc has {values.shape} values, arch {keys.shape}")
    ok = np.isfinite(values)
    values, keys = values[ok], keys[ok]
    ss, df, repeated = 0.0, 0, 0
    for key in np.unique(keys):
        x = values[keys == key]
        if len(x) > 1:
            ss += float(((x - x.mean()) ** 2).sum())
            df += len(x) - 1
            repeated += 1
    if df == 0:
        return SeedNoise()
    word = "architecture" if repeated == 1 else "architectures"
    return SeedNoise(ss, df, (f"{repeated} repeated {word} of this run",))


def seed_noise_draws(noise: SeedNoise, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws of sigma^2 from its sampling distribution (``df * s^2 / chi2_df``).

    Returns:
        (n,) array; all NaN when the noise is unknown.
    """
    if not noise.known:
        return np.full(n, np.nan)
    return noise.sum_squares / rng.chisquare(noise.df, size=n)


def with_seed_noise(
    image_samples: np.ndarray,
    noise: SeedNoise,
    seed_weights: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Bootstrap samples over images widened by seed noise.

    Args:
        image_samples: (B,) bootstrap samples over the validation images of an architecture's
            seed-mean AUC (or of a paired difference of two such means).
        noise: the seed-noise estimate.
        seed_weights: the multiplier of sigma^2 in the statistic's variance: ``1 / n_a`` for
            an architecture's mean over n_a seeds, ``1 / n_a + 1 / n_b`` for a difference.
        rng: generator (seeded by the caller for reproducible reports).

    Returns:
        (B,) samples, each plus an independent seed-noise draw; the input unchanged when the
        noise is unknown (callers must then not claim differences).
    """
    x = np.asarray(image_samples, dtype=float)
    if not noise.known:
        return x
    sigma2 = seed_noise_draws(noise, x.shape[0], rng)
    return x + rng.standard_normal(x.shape[0]) * np.sqrt(sigma2 * float(seed_weights))


def arch_interval(
    seed_samples: np.ndarray, noise: SeedNoise, rng: np.random.Generator, *, level: float = 0.95
) -> tuple[float, float]:
    """Interval of an architecture's mean AUC over its seeds, images and seed noise included.

    Args:
        seed_samples: (S, B) bootstrap samples over the validation images of each seed's AUC,
            all on the same resamples.
        noise: the run's seed-noise estimate (unknown: the interval covers the images only).
        rng: generator for the seed-noise draws.
        level: coverage.
    """
    from .uncertainty import percentile_interval

    x = np.atleast_2d(np.asarray(seed_samples, dtype=float))
    mean = np.nanmean(x, axis=0)
    return percentile_interval(with_seed_noise(mean, noise, 1.0 / x.shape[0], rng), level)


def difference_samples(
    a: np.ndarray, b: np.ndarray, noise: SeedNoise, rng: np.random.Generator
) -> np.ndarray:
    """(B,) samples of mean AUC(a) - mean AUC(b): paired over the images, plus seed noise of
    both means (variance sigma^2 (1/S_a + 1/S_b)).

    Args:
        a, b: (S_a, B) and (S_b, B) bootstrap samples on the same image resamples.
    """
    a2, b2 = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    diff = np.nanmean(a2, axis=0) - np.nanmean(b2, axis=0)
    return with_seed_noise(diff, noise, 1.0 / a2.shape[0] + 1.0 / b2.shape[0], rng)
