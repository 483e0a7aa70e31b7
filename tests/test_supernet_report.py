"""A supernet run's results: its supernet rows never reach the front or any analysis built on
the stand-alone trials, and the report's Supernet section (training, scoring, agreement with
stand-alone training inside the run, the supernet's own front, the scatter plot) appears for
supernet runs only. Hand-made run folders; no training."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from run_fixtures import DEFAULT_TRIALS, LABELS, arch_string, make_run_folder
from scipy.stats import kendalltau
from sklearn.metrics import roc_auc_score

from mdsearch.results import (
    ResultsError,
    analyse_run,
    analyse_supernet,
    format_pareto_table,
    load_run,
    next_to_confirm,
    proxy_kind,
    write_report,
)
from mdsearch.space import ArchSpec

RECORD = {
    "checkpoint": "supernet.pt",
    "epochs": 8,
    "epochs_done": 8,
    "random_subnets": 2,
    "distill": False,
    "recalibration_images": 512,
    "train_seconds": 321.5,
    "images": 65536,
    "images_per_s": 203.8,
    "proxy_equivalents": 16.0,
    "device": "cpu",
    "history": [{"epoch": e, "loss": 0.6, "images": 8192, "seconds": 40.2} for e in range(1, 9)],
}
TOO_FEW = "too few architectures trained stand-alone to judge the supernet's ranking"

# Supernet scores (population AUC of the simulated predictions) and FLOPs. Stages (4,) and
# (1, 4) were never trained stand-alone; (4,) is cheaper than every stand-alone architecture and
# scores higher than all: were supernet rows pooled with the stand-alone ones, it would be on
# the front.
SCORES = (
    ((), 0.70, 1223.0),
    ((5,), 0.74, 1228.0),
    ((1,), 0.78, 1235.0),
    ((1, 5), 0.82, 1241.0),
    ((1, 2, 3, 5), 0.86, 1278.0),
    ((2,), 0.75, 1247.0),  # failed stand-alone: not trained both ways
    ((3,), 0.60, 1236.0),  # stopped stand-alone: not trained both ways
    ((4,), 0.99, 1100.0),
    ((1, 4), 0.72, 1260.0),
)


def add_supernet(
    run: Path,
    scores: Sequence[tuple[tuple[int, ...], float, float]] = SCORES,
    *,
    record: dict | None = RECORD,
    standalone: bool = True,
    labels: Sequence[str] = LABELS,
    n_images: int = 400,
    seed: int = 0,
) -> Path:
    """Append supernet rows (``proxy`` = ``supernet``, predictions saved like a trial's) to a
    run made by :func:`make_run_folder` with the same ``labels``, ``n_images`` and ``seed``, and write
    ``supernet.json`` (``record``; None: none). ``standalone=False`` drops the stand-alone rows
    (a supernet run whose stand-alone phase has not finished a trial)."""
    table = pd.read_csv(run / "trials.csv", dtype={"error": str, "predictions": str})
    # The same validation split and shared per-image noise as make_run_folder's.
    rng = np.random.default_rng(seed)
    y_true = (rng.random((n_images, len(labels))) < 0.3).astype(np.uint8)
    y_true[:2] = [[0] * len(labels), [1] * len(labels)]
    shared = rng.normal(0.0, 0.7, y_true.shape)
    # Half the stand-alone rows say so, half have an empty cell (as older tables have none).
    table["proxy"] = ["standalone" if i % 2 else "" for i in range(len(table))]
    rows = []
    for k, (stages, quality, flops) in enumerate(scores):
        number = len(table) + k
        arch = arch_string(stages, len(labels))
        d = 1.4 * NormalDist().inv_cdf(quality)
        own = np.random.default_rng([seed, 1000 + number]).normal(0.0, 0.7, y_true.shape)
        score = 1.0 / (1.0 + np.exp(-(d * y_true + shared + own)))
        per_label = [roc_auc_score(y_true[:, j], score[:, j]) for j in range(len(labels))]
        rel = f"predictions/{number:05d}.npz"
        np.savez(run / rel, y_true=y_true, y_score=score.astype(np.float32), label_names=labels)
        rows.append(
            {
                "trial": number,
                "arch": arch,
                "arch_id": ArchSpec.parse(arch).arch_id,
                "mdconv_stages": " ".join(map(str, stages)),
                "status": "COMPLETE",
                "fidelity": 8.0,
                "target_fidelity": 8.0,
                "auc": float(np.mean(per_label)),
                **{f"auc__{label}": a for label, a in zip(labels, per_label)},
                "flops_m": flops,
                "input_size": 448,
                "params_m": 2.23,
                "resolution": 64,
                "seed": 0,
                "repeat": 0,
                "train_seconds": 2.0 + 0.5 * k,
                "images_per_s": 900.0,
                "node_id": "node0",
                "finished_at": f"2025-01-01T00:30:{k:02d}",
                "predictions": rel,
                "error": "",
                "proxy": "supernet",
            }
        )
    if not standalone:
        table = table.iloc[0:0]
    pd.concat([table, pd.DataFrame(rows)], ignore_index=True).to_csv(
        run / "trials.csv", index=False
    )
    if record is not None:
        (run / "supernet.json").write_text(json.dumps(record))
    return run


def _section_text(markdown: str) -> str:
    """The ``## Supernet`` section of report.md."""
    found = re.search(r"^## Supernet\n(.*?)(?=^## |\Z)", markdown, flags=re.M | re.S)
    assert found, "no Supernet section"
    return found.group(1)


@pytest.fixture(scope="module")
def supernet_run(tmp_path_factory):
    run = add_supernet(make_run_folder(tmp_path_factory.mktemp("sn")))
    return run, write_report(run, n_resamples=200)


# -- the front and every analysis: stand-alone rows only ----------------------------------------


def test_supernet_rows_never_enter_the_trials_front_or_pareto_csv(supernet_run):
    run, files = supernet_run
    loaded = load_run(run)
    table = pd.read_csv(run / "trials.csv", dtype={"proxy": str})
    assert (proxy_kind(table) == "supernet").sum() == len(SCORES)
    assert len(loaded.trials) == len(DEFAULT_TRIALS)
    assert (proxy_kind(loaded.trials) == "standalone").all()
    assert len(loaded.supernet_scores) == len(SCORES) and loaded.supernet == RECORD
    analysis = analyse_run(run, n_resamples=0)
    assert analysis.counts["total"] == len(DEFAULT_TRIALS)
    # The supernet's cheapest, best-scored architecture was never trained stand-alone.
    cheap = arch_string((4,))
    assert cheap not in analysis.archs.index and cheap not in analysis.front.index
    assert cheap not in pd.read_csv(files["pareto_csv"])["arch"].tolist()
    # Seeds count stand-alone trials only: the baseline has 2, not 3.
    assert analysis.archs.loc[arch_string(()), "seeds"] == 2
    assert len(analysis.history) == len(DEFAULT_TRIALS)


def test_the_confirmation_policy_ignores_supernet_rows(supernet_run):
    run, _ = supernet_run
    table = pd.read_csv(run / "trials.csv", dtype={"proxy": str})
    scores_only = table[proxy_kind(table) == "supernet"]
    # Supernet scores alone are no finished stand-alone trial: nothing to confirm yet.
    assert next_to_confirm(scores_only, {}) is None
    chosen = next_to_confirm(table, {})
    assert chosen is not None and chosen != arch_string((4,))


def test_a_run_without_the_proxy_column_loads_every_row_as_stand_alone(tmp_path):
    run = make_run_folder(tmp_path)
    loaded = load_run(run)
    assert len(loaded.trials) == len(DEFAULT_TRIALS)
    assert loaded.supernet_scores.empty and loaded.supernet is None
    assert not loaded.has_supernet and analyse_supernet(loaded) is None


# -- the section ------------------------------------------------------------------------------


def test_the_section_appears_only_for_supernet_runs(supernet_run, tmp_path):
    _, files = supernet_run
    md, page = files["markdown"].read_text(), files["html"].read_text()
    assert "## Supernet" in md and '<section id="supernet">' in page
    assert "built on stand-alone trials only" in _section_text(md)
    assert "built on stand-alone trials only" in page
    assert files["supernet_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![supernet score vs stand-alone AUC](supernet.png)" in md
    # The Trials section says its counts leave the supernet's scores out.
    assert f"the supernet scored {len(SCORES)} sub-networks besides" in md
    plain = write_report(make_run_folder(tmp_path), n_resamples=0)
    assert "supernet_png" not in plain
    assert "Supernet" not in plain["markdown"].read_text()
    assert 'id="supernet"' not in plain["html"].read_text()


def test_training_and_scoring_figures(supernet_run):
    _, files = supernet_run
    text = _section_text(files["markdown"].read_text())
    assert "8 epochs" in text
    assert "the largest, the smallest and 2 random sub-networks on the same batch (4 per step)" in (
        text
    )
    assert "322 s of training" in text and "on cpu" in text and "204 images/s" in text
    assert "Cost: 16 stand-alone proxy trials" in text
    # Median of 2.0, 2.5, ..., 6.0 s (9 scores).
    assert f"{len(SCORES)} sub-network scores of {len(SCORES)} architectures" in text
    assert "512 training images" in text and "median 4.0 s per sub-network" in text


def test_tau_is_over_the_architectures_trained_both_ways(supernet_run):
    run, files = supernet_run
    supernet = analyse_supernet(load_run(run), n_resamples=300)
    trials = pd.read_csv(run / "trials.csv", dtype={"proxy": str})
    standalone = trials[proxy_kind(trials) == "standalone"]
    done = standalone[standalone["status"] == "COMPLETE"]
    alone = done.groupby("arch")["auc"].mean()
    scores = trials[proxy_kind(trials) == "supernet"].set_index("arch")["auc"]
    # Five architectures: the failed, the stopped and the two never trained stand-alone are out.
    both = [a for a in scores.index if a in alone.index]
    assert len(both) == 5 and supernet.agreement.n == 5
    expected = kendalltau(scores[both], alone[both]).statistic
    assert supernet.agreement.tau == pytest.approx(expected)
    # Counting the stopped trial (AUC 0.95, supernet score low) would change tau.
    wrong = [*both, arch_string((3,))]
    any_row = standalone.groupby("arch")["auc"].mean()
    assert kendalltau(scores[wrong], any_row[wrong]).statistic != pytest.approx(expected)
    assert supernet.agreement.low <= supernet.agreement.tau <= supernet.agreement.high
    # Stand-alone means are over the seeds: the baseline's two.
    assert supernet.archs.loc[arch_string(()), "standalone_seeds"] == 2
    assert supernet.archs.loc[arch_string(()), "standalone_auc"] == pytest.approx(
        alone[arch_string(())]
    )
    text = _section_text(files["markdown"].read_text())
    assert f"Kendall tau-b {expected:+.2f}" in text and "over 5 architectures" in text
    assert TOO_FEW not in text


def test_fewer_than_five_shared_architectures_give_the_sentence_not_a_number(tmp_path):
    run = add_supernet(make_run_folder(tmp_path), SCORES[:4] + SCORES[7:])
    supernet = analyse_supernet(load_run(run), n_resamples=100)
    assert supernet.agreement.n == 4 and not supernet.agreement.judged
    text = _section_text(write_report(run, n_resamples=100)["markdown"].read_text())
    assert TOO_FEW in text and "(4 trained both ways; at least 5 needed)" in text
    assert "Kendall tau-b" not in text


def test_the_supernet_front_table_with_intervals_and_stand_alone_aucs(supernet_run):
    run, files = supernet_run
    supernet = analyse_supernet(load_run(run), n_resamples=200)
    front = supernet.front
    # (4,) is the cheapest and the best scored: alone on the supernet's front.
    assert list(front.index) == [arch_string((4,))]
    assert not supernet.archs.loc[arch_string((1, 4)), "on_front"]
    row = front.iloc[0]
    assert row["score_low"] < row["score"] < row["score_high"]
    text = _section_text(files["markdown"].read_text())
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert table[0] == (
        "| arch id | MD-Conv stages | FLOPs M @448x448 | supernet score [95% CI] | "
        "stand-alone AUC (seeds) |"
    )
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells[:3] == [ArchSpec.parse(arch_string((4,))).arch_id, "4", "1100.0"]
    assert re.fullmatch(r"0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]", cells[3])
    assert cells[4] == "-"  # never trained stand-alone
    assert "validation images only" in text and "not an estimate of the AUC" in text


def test_a_front_member_trained_stand_alone_shows_its_mean_and_seeds(tmp_path):
    # Without (4,), the supernet's front starts at the baseline (2 stand-alone seeds).
    run = add_supernet(make_run_folder(tmp_path), SCORES[:7])
    text = _section_text(write_report(run, n_resamples=0)["markdown"].read_text())
    base = ArchSpec.parse(arch_string(())).arch_id
    line = next(line for line in text.splitlines() if line.startswith(f"| {base} "))
    assert re.search(r"\| 0\.\d{3} \(2 seeds\) \|$", line)


def test_a_supernet_run_without_stand_alone_trials_still_reports(tmp_path):
    run = add_supernet(make_run_folder(tmp_path), standalone=False)
    loaded = load_run(run)
    assert loaded.trials.empty and len(loaded.supernet_scores) == len(SCORES)
    with pytest.raises(ResultsError, match="no finished stand-alone trial yet"):
        analyse_run(run)
    with pytest.raises(ResultsError, match="no finished stand-alone trial yet"):
        format_pareto_table(run)
    files = write_report(run, n_resamples=50)
    assert set(files) == {"html", "markdown", "supernet_png"}
    md = files["markdown"].read_text()
    assert "the stand-alone phase has no finished trial yet" in md
    assert "## Supernet" in md and "## Pareto front" not in md
    assert TOO_FEW in md and "(0 trained both ways" in md
    assert "the stand-alone phase has no finished trial yet" in files["html"].read_text()


def test_a_supernet_trained_but_not_yet_scored(tmp_path):
    run = tmp_path / "fresh"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"name": "fresh", "objectives": ["auc", "flops"]}))
    (run / "supernet.json").write_text(json.dumps(RECORD))
    files = write_report(run)
    md = files["markdown"].read_text()
    assert "Scoring: no sub-network scored yet." in md and "Cost: 16 stand-alone" in md


def test_scores_without_supernet_json_say_the_training_is_unknown(tmp_path):
    run = add_supernet(make_run_folder(tmp_path), record=None)
    text = _section_text(write_report(run, n_resamples=0)["markdown"].read_text())
    assert "supernet.json is absent" in text
    assert f"{len(SCORES)} sub-network scores" in text


def test_a_supernet_report_fits_a_1400_px_window(tmp_path):
    from test_report_browser import _chromium, _measure, _wide_run

    from mdsearch.search.datasets import FINDINGS

    chromium = _chromium()
    run = _wide_run(tmp_path)
    # _wide_run's 14 labels and latency column: give the supernet rows the same.
    add_supernet(run, SCORES, labels=FINDINGS)
    trials = pd.read_csv(run / "trials.csv")
    trials["latency_ms"] = 3.0 + (trials["flops_m"] - 1200.0) / 50.0
    trials.to_csv(run / "trials.csv", index=False)
    files = write_report(run, n_resamples=50)
    measured = _measure(chromium, files["html"], tmp_path)
    assert measured["scroll"] <= measured["client"], measured
    assert measured["wide_tables"] == [], measured
