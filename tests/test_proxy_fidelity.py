"""Proxy fidelity statistics (mdsearch.results.proxy_fidelity) on constructed AUC matrices:
a known Kendall tau and its bootstrap interval, seed noise with diverged runs, the recommended
proxy and the summary's warnings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mdsearch.results.proxy_fidelity import (
    kendall_tau_ci,
    recommend_proxy,
    seed_noise,
    summarise_proxy_check,
)


def test_tau_is_one_with_a_point_interval_when_every_seed_ranks_alike():
    long = np.array([[0.70, 0.71], [0.75, 0.74], [0.80, 0.79], [0.85, 0.86]])
    est = kendall_tau_ci(long - 0.1, long, n_resamples=200)
    assert (est.tau, est.low, est.high) == (1.0, 1.0, 1.0)
    assert est.per_seed == (1.0, 1.0)
    reversed_ = kendall_tau_ci(long[::-1] - 0.1, long, n_resamples=200)
    assert (reversed_.tau, reversed_.low, reversed_.high) == (-1.0, -1.0, -1.0)


def test_tau_of_three_archs_with_one_swapped_pair_is_one_third():
    long = np.array([[0.1], [0.2], [0.3]])
    short = np.array([[0.2], [0.1], [0.3]])
    est = kendall_tau_ci(short, long)
    assert est.tau == pytest.approx(1 / 3)
    # One seed: the seed bootstrap has nothing to redraw, so there is no interval.
    assert math.isnan(est.low) and math.isnan(est.high)


def test_seed_bootstrap_interval_spans_the_taus_of_the_possible_seed_draws():
    long = np.array([[0.70, 0.70], [0.80, 0.80], [0.90, 0.90]])
    # Seed 0 ranks like long; seed 1 ranks 2 > 1 > 3 ... reversed in part.
    short = np.array([[0.70, 0.76], [0.80, 0.71], [0.90, 0.70]])
    est = kendall_tau_ci(short, long, n_resamples=2000, seed=1)
    seed0, seed1 = est.per_seed
    both = kendall_tau_ci(short.mean(1, keepdims=True), long[:, :1]).tau
    assert seed0 == 1.0 and seed1 == -1.0
    assert est.tau == both
    # With S = 2 a resample draws {0,0}, {1,1} or {0,1}: tau is one of three values, and 2000
    # draws reach both extremes at the 2.5/97.5 percentiles.
    assert (est.low, est.high) == (min(seed0, seed1, both), max(seed0, seed1, both))


def test_arch_bootstrap_keeps_perfect_agreement_and_rejects_unknown_modes():
    long = np.array([[0.70, 0.71], [0.75, 0.74], [0.80, 0.79], [0.85, 0.86]])
    est = kendall_tau_ci(long + 0.01, long, over="both", n_resamples=300)
    assert (est.low, est.high) == (1.0, 1.0)
    with pytest.raises(ValueError, match="over="):
        kendall_tau_ci(long, long, over="labels")
    with pytest.raises(ValueError, match="archs, seeds"):
        kendall_tau_ci(long, long[:, :1])


def test_diverged_runs_are_left_out_of_means_and_noise():
    auc = np.array([[0.70, 0.72, np.nan], [0.80, 0.80, 0.80], [np.nan, np.nan, np.nan]])
    pooled, per_arch = seed_noise(auc)
    assert per_arch[:2] == pytest.approx([math.sqrt(0.0002), 0.0])
    assert math.isnan(per_arch[2])
    assert pooled == pytest.approx(0.01)  # sqrt(mean(0.0002, 0))
    est = kendall_tau_ci(auc, auc)
    assert est.tau == 1.0  # the all-NaN architecture ranks nowhere


def test_recommendation_is_the_cheapest_short_proxy_reaching_the_threshold():
    assert recommend_proxy({4: 0.9, 1: 0.2, 2: 0.6}) == 2
    assert recommend_proxy({1: 0.59, 2: float("nan")}) is None
    assert recommend_proxy({1: 0.7}, threshold=0.8) is None


def test_summary_recommends_and_warns():
    rng = np.random.default_rng(0)
    long = np.linspace(0.6, 0.9, 5)[:, None] + rng.normal(0, 0.001, (5, 3))
    auc = {
        1: long[::-1].copy(),  # reversed ranking
        2: long - 0.02,  # same ranking
        8: long,
    }
    summary = summarise_proxy_check(auc, 8, n_resamples=100)
    assert summary["recommended"] == 2
    assert summary["settings"]["1"]["tau"]["tau"] == pytest.approx(-1.0)
    assert "tau" not in summary["settings"]["8"]
    assert summary["warnings"] == []
    noisy = {1: long[::-1].copy(), 8: 0.75 + rng.normal(0, 0.05, (5, 3))}
    summary = summarise_proxy_check(noisy, 8, n_resamples=100)
    assert summary["recommended"] is None
    assert any("no short proxy" in w for w in summary["warnings"])
