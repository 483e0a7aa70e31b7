"""Labels with too few validation positives stay out of the mean AUC, by one rule everywhere:
the search's objective, the report's intervals and ``mdsearch train``'s evaluation."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from run_fixtures import make_run_folder

from mdsearch.results import (
    analyse_run,
    bootstrap_mean_auc,
    evaluate_predictions,
    mean_auc,
    write_evaluation,
    write_report,
)
from mdsearch.search import (
    LABEL_RULE,
    MIN_NEGATIVES,
    MIN_POSITIVES,
    DataSettings,
    LabelRule,
    load_proxy_data,
)
from mdsearch.search.training import label_aucs
from mdsearch.space import load_space

NAMES = ("Effusion", "Mass", "Hernia")


def _nih_like(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Effusion: 90 positives, scored fairly well; Mass: 1 positive, scored lowest of all (AUC ~0);
    Hernia: no positive (no AUC)."""
    rng = np.random.default_rng(seed)
    y = np.zeros((n, 3), dtype=np.uint8)
    y[:90, 0] = 1
    y[5, 1] = 1
    s = rng.random((n, 3)).astype(np.float32)
    s[:, 0] += 0.5 * y[:, 0]  # AUC ~0.87: informative, not perfect
    s[5, 1] = -1.0
    return y, s


def test_a_label_with_one_positive_is_left_out_of_the_mean_but_keeps_its_auc():
    y, s = _nih_like()
    mean, per_label = label_aucs(y, s, NAMES)
    assert per_label["Mass"] == pytest.approx(0.0)  # one image decides it: shown, not searched
    assert np.isnan(per_label["Hernia"])
    assert mean == pytest.approx(per_label["Effusion"])  # not diluted to ~0.5 by Mass
    scored = LABEL_RULE.apply(y, NAMES)
    assert scored.excluded == ("Mass", "Hernia") and not scored.fallback
    line = scored.warning()
    assert "\n" not in line and "Mass (1 positive, 299 negatives)" in line
    assert "Hernia (0 positives" in line and "Effusion" not in line


def test_the_minimum_is_ten_of_each_class():
    assert (MIN_POSITIVES, MIN_NEGATIVES) == (10, 10)
    y = np.zeros((40, 2), dtype=np.uint8)
    y[:10, 0] = 1  # exactly 10 positives, 30 negatives: kept
    y[:31, 1] = 1  # 31 positives but 9 negatives: left out
    assert LABEL_RULE.apply(y, ["a", "b"]).excluded == ("b",)


def test_the_objective_the_report_intervals_and_train_evaluation_share_the_rule():
    y, s = _nih_like()
    objective, _ = label_aucs(y, s, NAMES)  # what a trial reports
    assert mean_auc(y, s) == pytest.approx(objective)  # the report's point estimate
    boot = bootstrap_mean_auc(y, s, n_resamples=300, seed=0)  # the report's intervals
    assert np.nanpercentile(boot, 2.5) < objective < np.nanpercentile(boot, 97.5)
    assert abs(np.nanmean(boot) - objective) < 0.02
    ev = evaluate_predictions(y, s, y, s, NAMES, split="val", n_resamples=200)  # mdsearch train
    assert ev.auc == pytest.approx(objective) and ev.val_auc == pytest.approx(objective)
    assert ev.auc_ci[0] < ev.auc < ev.auc_ci[1]
    assert ev.excluded == ("Mass", "Hernia")
    assert sum("left out of the mean AUC" in w for w in ev.warnings) == 2  # val and evaluated


def test_train_evaluation_report_marks_left_out_labels(tmp_path):
    y, s = _nih_like()
    ev = evaluate_predictions(y[:150], s[:150], y[150:], s[150:], NAMES, n_resamples=100)
    text = write_evaluation(ev, tmp_path)["md"].read_text()
    assert "Mass (not in mean)" in text and "Hernia (not in mean)" in text
    assert "left out of the mean AUC" in text


def test_a_split_too_small_for_the_rule_falls_back_and_says_so():
    rng = np.random.default_rng(1)
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]] * 3, dtype=np.uint8)  # 6 positives each
    s = rng.random(y.shape)
    scored = LABEL_RULE.apply(y, ["a", "b"])
    assert scored.fallback and scored.excluded == ()
    assert "rests on a few images" in scored.warning()
    mean, per_label = label_aucs(y, s, ["a", "b"])
    assert mean == pytest.approx(np.mean(list(per_label.values())))


def test_a_run_records_the_rule_and_its_report_marks_the_left_out_label(tmp_path):
    run = make_run_folder(tmp_path, n_images=300)
    # Make Nodule a one-positive label, as Mass is on the NIH sample, and re-score every trial
    # the way a search with the rule does.
    config = json.loads((run / "config.json").read_text())
    table = pd.read_csv(run / "trials.csv")
    for i, rel in table["predictions"].items():
        if not isinstance(rel, str):
            continue
        with np.load(run / rel) as data:
            y, s, names = data["y_true"].copy(), data["y_score"], data["label_names"]
        y[:, 2] = 0
        y[7, 2] = 1
        np.savez(run / rel, y_true=y, y_score=s, label_names=names)
        mean, per_label = label_aucs(y, s, list(names))
        table.loc[i, "auc"] = mean
        table.loc[i, "auc__Nodule"] = per_label["Nodule"]
    config["label_rule"] = LABEL_RULE.apply(y, list(names)).to_dict()
    (run / "config.json").write_text(json.dumps(config))
    table.to_csv(run / "trials.csv", index=False)

    analysis = analyse_run(run, n_resamples=300)
    assert analysis.scored_labels.excluded == ("Nodule",)
    assert not any("searched before" in n for n in analysis.notes)
    front = analysis.front
    # The interval is of the same mean the table holds: Nodule is in neither.
    assert ((front["auc_ci_low"] < front["auc"]) & (front["auc"] < front["auc_ci_high"])).all()
    text = write_report(run, n_resamples=300)["markdown"].read_text()
    assert "| Nodule | 1 / 299 | no |" in text
    assert re.search(r"\| Effusion \| \d+ / \d+ \| yes \|", text)
    assert "> **Note:** left out of the mean AUC" in text and "Nodule (1 positive" in text


def test_an_old_run_keeps_its_own_rule_and_the_report_says_what_the_new_one_would_drop(tmp_path):
    run = make_run_folder(tmp_path, n_images=300)
    config = json.loads((run / "config.json").read_text())
    assert "label_rule" not in config  # searched before the rule
    table = pd.read_csv(run / "trials.csv")
    for rel in table["predictions"].dropna():
        with np.load(run / rel) as data:
            y, s, names = data["y_true"].copy(), data["y_score"], data["label_names"]
        y[:, 2] = 0
        y[:3, 2] = 1
        np.savez(run / rel, y_true=y, y_score=s, label_names=names)
    analysis = analyse_run(run, n_resamples=0)
    assert analysis.scored_labels.rule == LabelRule(1, 1)
    assert analysis.scored_labels.excluded == ()
    (note,) = [n for n in analysis.notes if "searched before" in n]
    assert "Nodule (3 positives" in note


def test_the_nih_sample_warns_once_at_run_start(shared_data, tmp_path):
    data = DataSettings(
        f"chestxray14={shared_data / 'nih-sample'}", resolution=32, cache_dir=str(tmp_path)
    )
    lines: list[str] = []
    load_proxy_data(data, load_space("paper"), lines.append, progress=False)
    warned = [line for line in lines if "left out of the mean AUC" in line]
    assert len(warned) == 1
    for label in ("Mass", "Pneumonia", "Edema", "Hernia"):
        assert f"{label} (" in warned[0]
