"""mdsearch proxy-check: its statistics on constructed inputs, its recommendation, its bad-input
errors, and one tiny end-to-end run into a run folder (phantom, 32 px)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from mdsearch.cli import main
from mdsearch.results import ResultsError
from mdsearch.results.fidelity import (
    format_fidelity_html,
    format_fidelity_markdown,
    lead_within_seed_noise,
    load_proxy_check,
    proxy_seed_std,
)
from mdsearch.search.proxy_check import (
    ProxyCheckError,
    ProxyCheckSettings,
    kendall_tau_ci,
    parse_epochs,
    recommend_proxy,
    run_proxy_check,
    sample_architectures,
    seed_noise,
    summarise_proxy_check,
)
from mdsearch.space import load_space

TINY = ["--data", "phantom,n=300", "--resolution", "32", "--train-subset", "64"]
TINY += ["--batch-size", "32"]


# -- statistics -----------------------------------------------------------------------------


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


# -- architectures and bad inputs -------------------------------------------------------------


def test_sampled_architectures_start_with_the_references_and_are_distinct_and_seeded():
    space = load_space("default")
    archs = sample_architectures(space, 6, seed=3, num_classes=5)
    labels = [label for label, _ in archs]
    assert labels[:3] == ["baseline", "paper", "sample 1"]
    specs = [spec for _, spec in archs]
    assert specs[0].mdconv_stages == () and specs[1].mdconv_stages == (5,)
    assert len({s.canonical for s in specs}) == 6
    assert all(space.contains(s) and s.num_classes == 5 for s in specs)
    assert sample_architectures(space, 6, seed=3, num_classes=5) == archs
    assert sample_architectures(space, 6, seed=4, num_classes=5) != archs
    paper = load_space("paper")
    assert len(sample_architectures(paper, 16)) == 16  # the whole space, no endless redraws
    with pytest.raises(ProxyCheckError, match="holds only 16"):
        sample_architectures(paper, 17)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--archs", "1"], "--archs 1"),
        (["--seeds", "0"], "--seeds 0"),
        (["--short", "2,4", "--long", "4"], "--long 4 is not longer"),
        (["--short", "0", "--long", "4"], "epochs must be 1 or more"),
        (["--short", "two"], "--short 'two'"),
        (["--long", "4,8"], "one epoch count"),
        (["--run", "no-such-run"], "not a run folder"),
    ],
)
def test_bad_flags_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "out"
    code = main(["proxy-check", *TINY, "--out", str(out), *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and "\n" not in err
    assert not out.exists()


def test_parse_epochs_accepts_spaces():
    assert parse_epochs(" 1, 2 ,4") == (1, 2, 4)


def test_constant_schedule_reads_short_aucs_from_the_long_runs():
    from mdsearch.search.datasets import load_dataset
    from mdsearch.search.proxy import ProxyConfig, proxy_train

    proxy = ProxyConfig(resolution=32, train_subset=64, batch_size=32, schedule="constant")
    settings = ProxyCheckSettings(
        data="phantom,n=300", space="paper", archs=2, seeds=1, short=(1,), long=2, proxy=proxy
    )
    result = run_proxy_check(settings, quiet=True)
    assert result["reused_long_runs"] and result["trainings"] == 2
    # Under a constant schedule a 1-epoch proxy IS the long run's first epoch.
    ds = load_dataset("phantom,n=300", resolution=32, progress=False)
    spec = sample_architectures(load_space("paper"), 2, num_classes=len(ds.label_names))[1][1]
    alone = proxy_train(spec, ds, replace(proxy, epochs=1), seed=0)
    assert result["auc"]["1"][1][0] == pytest.approx(alone.auc, abs=1e-6)


# -- end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checked_run(tmp_path_factory):
    """A fake search run (config.json only) with a 1-epoch proxy, then proxy-check --run on it."""
    from mdsearch.search.orchestrate import SearchSettings
    from mdsearch.search.proxy import ProxyConfig

    run = tmp_path_factory.mktemp("run")
    proxy = ProxyConfig(resolution=32, epochs=1, train_subset=64, batch_size=32)
    settings = SearchSettings(data="phantom,n=300", space="default", proxy=proxy)
    (run / "config.json").write_text(json.dumps({"settings": settings.to_dict()}))
    argv = ["proxy-check", "--run", str(run), "--archs", "3", "--seeds", "2", "--long", "2"]
    return run, argv


def test_proxy_check_end_to_end_into_a_run_folder(checked_run, capsys):
    run, argv = checked_run
    assert main([*argv, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "paper" in out and "Kendall tau" in out
    assert "± " in out
    data = json.loads((run / "proxy_check.json").read_text())
    # Unset flags came from the run; its 1-epoch proxy is the short setting.
    assert data["parameters"]["proxy"]["resolution"] == 32
    assert data["parameters"]["short"] == [1] and data["parameters"]["run_proxy_epochs"] == 1
    assert [a["label"] for a in data["archs"]] == ["baseline", "paper", "sample 1"]
    assert data["trainings"] == 3 * 2 * 2
    for epochs in ("1", "2"):
        auc = np.array(data["auc"][epochs], dtype=float)
        assert auc.shape == (3, 2) and np.all((auc >= 0) & (auc <= 1))
        row = data["settings"][epochs]
        assert row["seed_std"] == pytest.approx(seed_noise(auc)[0])
    tau = data["settings"]["1"]["tau"]
    assert -1 <= tau["tau"] <= 1 and len(tau["per_seed"]) == 2
    # What the report gets.
    md = format_fidelity_markdown(run)
    assert md.startswith("## Proxy fidelity") and md == (run / "proxy_check.md").read_text().strip()
    assert "<table>" in format_fidelity_html(run)
    assert proxy_seed_std(run) == pytest.approx(data["settings"]["1"]["seed_std"])


def test_seed_noise_figure_for_the_report():
    check = {"schema": "mdsearch.proxy_check/1", "settings": {"2": {"seed_std": 0.01}}}
    # One run each: the lead's seed std is 0.01 * sqrt(2) = 0.0141; 1.96 x that = 0.0277.
    assert lead_within_seed_noise(0.027, check) is True
    assert lead_within_seed_noise(-0.028, check) is False
    # Four seeds of the front member and of the baseline halve the noise of the lead.
    assert lead_within_seed_noise(0.02, check, n_seeds=4, n_baseline_seeds=4) is False
    assert proxy_seed_std(check, epochs=8) is None


def test_fidelity_reader_without_or_with_a_foreign_file(tmp_path):
    assert load_proxy_check(tmp_path) is None
    assert format_fidelity_markdown(tmp_path) is None
    assert lead_within_seed_noise(0.1, tmp_path) is None
    (tmp_path / "proxy_check.json").write_text('{"schema": "other"}')
    with pytest.raises(ResultsError, match="not a proxy-check result"):
        load_proxy_check(tmp_path)
