"""Synthetic searches with known truth, for checking that intervals and claims are calibrated.

No training: each "run" of an architecture gets validation scores drawn from a binormal model
whose population AUC is known exactly, so a claim ("distinct", an interval) can be scored
against the truth over thousands of simulated runs in seconds.

Per run of architecture a with seed s, and per label::

    q_as   = mu_a + e_as,  e_as ~ N(0, seed_sd^2)        the run's population AUC
    score_i = d_as * y_i + sqrt(rho) * u_i + sqrt(1 - rho) * z_asi,  d_as = sqrt(2) Phi^-1(q_as)

``u_i`` is an image effect shared by every run (hard images are hard for every network), so
runs scored on the same validation images are correlated as real ones are; the population AUC of
the scores is exactly ``q_as``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

__all__ = ["SyntheticSearch", "simulate_search"]

_NORMAL = NormalDist()


@dataclass(frozen=True)
class SyntheticSearch:
    """One simulated search: runs of several architectures on one validation set.

    Attributes:
        arch: (T,) architecture index of each run.
        y_true: (N, L) validation labels (shared by all runs).
        y_score: (T, N, L) each run's scores.
        truth: (A,) each architecture's true mean AUC (over seeds, on the image population).
    """

    arch: np.ndarray
    y_true: np.ndarray
    y_score: np.ndarray
    truth: np.ndarray

    def runs_of(self, a: int) -> np.ndarray:
        """Indices of the runs of architecture ``a``."""
        return np.flatnonzero(self.arch == a)


def simulate_search(
    truth: Sequence[float],
    seeds: int | Sequence[int],
    *,
    seed_sd: float,
    n_images: int = 300,
    n_labels: int = 2,
    prevalence: float = 0.3,
    image_corr: float = 0.5,
    rng: np.random.Generator,
) -> SyntheticSearch:
    """Simulate every run of a search.

    Args:
        truth: each architecture's true mean AUC (between 0.5 and 1).
        seeds: runs per architecture (one number for all, or one per architecture).
        seed_sd: standard deviation of a run's population AUC between seeds.
        n_images: validation images.
        n_labels: labels per image (the reported AUC is the mean over labels).
        prevalence: share of positives per label.
        image_corr: share of score noise that is the image's own (shared by all runs).
        rng: the generator.

    Example:
        >>> s = simulate_search([0.7, 0.75], 2, seed_sd=0.01, rng=np.random.default_rng(0))
        >>> s.y_score.shape, s.runs_of(1).tolist()
        ((4, 300, 2), [2, 3])
    """
    mu = np.asarray(truth, dtype=float)
    per_arch = np.broadcast_to(np.asarray(seeds, dtype=int), mu.shape)
    arch = np.repeat(np.arange(len(mu)), per_arch)
    y = (rng.random((n_images, n_labels)) < prevalence).astype(np.uint8)
    for label in range(n_labels):  # both classes present in every label
        y[:2, label] = (0, 1)
    shared = rng.standard_normal((n_images, n_labels))
    q = np.clip(mu[arch] + rng.normal(0.0, seed_sd, len(arch)), 0.501, 0.999)
    d = np.sqrt(2.0) * np.array([_NORMAL.inv_cdf(v) for v in q])
    own = rng.standard_normal((len(arch), n_images, n_labels))
    scores = (
        d[:, None, None] * y[None]
        + np.sqrt(image_corr) * shared[None]
        + np.sqrt(1.0 - image_corr) * own
    )
    return SyntheticSearch(arch, y, scores.astype(np.float32), mu)
