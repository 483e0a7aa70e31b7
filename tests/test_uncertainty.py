"""Bootstrap AUC intervals: the fast AUC equals scikit-learn's, and the interval covers."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest
from run_fixtures import FixtureTrial, make_run_folder
from sklearn.metrics import roc_auc_score

from mdsearch.results import (
    PredictionBootstrap,
    SeedNoise,
    auc_from_counts,
    bootstrap_counts,
    bootstrap_mean_auc,
    mean_auc,
    percentile_interval,
)


def test_auc_equals_sklearn_with_ties_and_several_labels():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(300, 4))
    s = np.round(y * 0.6 + rng.normal(0, 1, y.shape), 1)  # rounding makes many ties
    got = auc_from_counts(y, s, np.ones((1, 300)))[0]
    want = [roc_auc_score(y[:, j], s[:, j]) for j in range(4)]
    assert got == pytest.approx(want, abs=1e-12)
    assert mean_auc(y, s) == pytest.approx(np.mean(want))


def test_resample_auc_equals_sklearn_on_the_materialised_resample():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=(120, 2))
    s = np.round(rng.normal(0, 1, y.shape) + y, 1)
    counts = bootstrap_counts(120, 5, seed=7)
    assert np.all(counts.sum(axis=1) == 120)
    got = auc_from_counts(y, s, counts)
    for b in range(5):
        idx = np.repeat(np.arange(120), counts[b])
        want = [roc_auc_score(y[idx, j], s[idx, j]) for j in range(2)]
        assert got[b] == pytest.approx(want, abs=1e-12)


def test_labels_with_one_class_in_a_resample_are_skipped():
    y = np.zeros((50, 2), dtype=np.uint8)
    y[:25, 0] = 1
    y[0, 1] = 1  # label 1 has a single positive: many resamples miss it
    s = np.linspace(0, 1, 50)[:, None] * np.ones((1, 2))
    counts = bootstrap_counts(50, 200, seed=0)
    per_label = auc_from_counts(y, s, counts)
    missed = counts[:, 0] == 0
    assert missed.any() and np.isnan(per_label[missed, 1]).all()
    means = bootstrap_mean_auc(y, s, counts=counts)
    assert means[missed] == pytest.approx(per_label[missed, 0])
    assert not np.isnan(means).any()


def test_bootstrap_interval_covers_the_population_auc_at_about_the_stated_rate():
    # 200 simulated validation sets (one per column), positives ~ N(d, 1), negatives ~ N(0, 1):
    # population AUC = Phi(d / sqrt 2). Columns share the resample draws, which leaves each
    # column's own interval a valid bootstrap.
    rng = np.random.default_rng(2024)
    n_sets, n_images, d = 200, 160, 1.0
    y = (rng.random((n_images, n_sets)) < 0.4).astype(np.uint8)
    y[:2] = [[0], [1]]
    scores = rng.normal(0.0, 1.0, y.shape) + d * y
    true_auc = NormalDist().cdf(d / np.sqrt(2))
    samples = auc_from_counts(y, scores, bootstrap_counts(n_images, 1000, seed=5))
    low, high = percentile_interval(samples, 0.95)
    coverage = np.mean((low <= true_auc) & (true_auc <= high))
    assert 0.90 <= coverage <= 0.99, coverage
    low80, high80 = percentile_interval(samples, 0.80)
    assert np.all(high80 - low80 < high - low)
    assert 0.72 <= np.mean((low80 <= true_auc) & (true_auc <= high80)) <= 0.88


def test_bootstrap_is_reproducible_from_its_seed():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=(80, 2))
    s = rng.random(y.shape)
    a = bootstrap_mean_auc(y, s, n_resamples=50, seed=1)
    assert np.array_equal(a, bootstrap_mean_auc(y, s, n_resamples=50, seed=1))
    assert not np.array_equal(a, bootstrap_mean_auc(y, s, n_resamples=50, seed=2))


def test_percentile_interval_needs_enough_finite_resamples():
    assert np.isnan(percentile_interval(np.array([0.7, np.nan, 0.8]))[0])
    low, high = percentile_interval(np.linspace(0, 1, 1001), 0.9)
    assert (low, high) == pytest.approx((0.05, 0.95))
    with pytest.raises(ValueError):
        percentile_interval(np.ones(20), 1.5)


def test_paired_differences_tell_a_real_gap_from_noise(tmp_path):
    run = make_run_folder(
        tmp_path,
        [
            FixtureTrial((), 0.70, 1223.0),
            FixtureTrial((5,), 0.70, 1228.0),  # same quality, other noise
            FixtureTrial((1,), 0.85, 1235.0),
            FixtureTrial((2,), 0.70, 1247.0, status="FAILED", fidelity=0.0),
        ],
        n_images=500,
    )
    noise = SeedNoise.from_sd(0.005, 10, "test")
    boot = PredictionBootstrap(run, n_resamples=500, seed=0, seed_noise=noise)
    same = boot.difference([1], [0])
    gap = boot.difference([2], [0])
    assert same.paired and gap.paired
    assert not same.distinguishable and same.low < 0 < same.high
    assert gap.distinguishable and gap.low > 0.05
    # Pairing on the same images: the difference is tighter than the two intervals suggest.
    low0, high0 = boot.interval([0])
    assert (gap.high - gap.low) < (high0 - low0) * np.sqrt(2)
    assert boot.difference([3], [0]) is None  # the failed trial has no predictions
    assert any("trial 3" in note for note in boot.notes)


def test_seed_noise_widens_intervals_and_unknown_noise_judges_nothing(tmp_path):
    run = make_run_folder(
        tmp_path,
        [
            FixtureTrial((), 0.62, 1223.0),
            FixtureTrial((), 0.66, 1223.0),
            FixtureTrial((5,), 0.8, 1228.0),
        ],
        n_images=300,
    )
    noise = SeedNoise.from_sd(0.03, 6, "test")
    with_seeds = PredictionBootstrap(run, n_resamples=400, seed=0, seed_noise=noise)
    images_only = PredictionBootstrap(run, n_resamples=400, seed=0)
    pooled = with_seeds.arch_samples([0, 1])
    center = (with_seeds.trial_samples(0) + with_seeds.trial_samples(1)) / 2
    assert np.nanmean(pooled) == pytest.approx(np.nanmean(center), abs=0.01)
    low, high = with_seeds.interval([0, 1])
    low_i, high_i = images_only.interval([0, 1])
    assert high - low > high_i - low_i
    # One seed gets the whole seed variance, two seeds half of it: a wider interval.
    one = np.subtract(*with_seeds.interval([2])[::-1])
    assert one > high - low
    assert with_seeds.difference([2], [0, 1]).judged
    unjudged = images_only.difference([2], [0, 1])
    assert not unjudged.judged and not unjudged.distinguishable
