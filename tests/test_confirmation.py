"""The confirmation phase: which architecture gets the next seed, and `mdsearch run --confirm`
end to end (further seeds go to front candidates and the baseline; a resumed run goes on)."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest
from search_fixtures import TINY_PROXY, table_rows
from test_search import run_cli

from mdsearch.results import (
    FrontConfirmation,
    evidence,
    next_to_confirm,
    race_candidates,
)
from mdsearch.space import ArchSpec

BASE = ArchSpec.default("mobilenetv2_100", 5)
A, B, C = (BASE.with_stage(k, (3, 5), (1, 1)) for k in (1, 3, 5))


def _table(rows):
    return pd.DataFrame(
        [
            {"arch": spec.canonical, "status": "COMPLETE", "fidelity": 2, "target_fidelity": 2,
             "auc": auc, "flops_m": flops, "seed": seed, "phase": "explore"}
            for spec, auc, flops, seed in rows
        ]
    )  # fmt: skip


def test_the_race_serves_the_knee_first_and_keeps_the_baseline_a_seed_ahead():
    table = _table([
        (BASE, 0.70, 1198.0, 0), (BASE, 0.71, 1198.0, 1),
        (A, 0.80, 1222.0, 0), (A, 0.80, 1222.0, 1),  # a clear lead at more FLOPs
        (B, 0.55, 1206.0, 0),  # dominated by the baseline: never raced
        (C, 0.79, 1202.0, 0),  # nearly A's AUC for little more than the baseline: the knee
    ])  # fmt: skip
    proposed = {BASE.canonical: 2, A.canonical: 2, B.canonical: 1, C.canonical: 1}
    assert next_to_confirm(table, proposed) == C.canonical  # the knee, fewest seeds
    picks = []
    for _ in range(30):
        pick = next_to_confirm(table, proposed, max_seeds=6)
        if pick is None:
            break
        if pick != BASE.canonical:  # its next seed has a baseline partner already
            assert proposed[BASE.canonical] > proposed[pick]
        picks.append(pick)
        proposed[pick] += 1
    assert B.canonical not in picks
    assert {a: proposed[a.canonical] for a in (BASE, A, C)} == dict.fromkeys((BASE, A, C), 6)
    assert next_to_confirm(table, proposed, max_seeds=6) is None  # every candidate has its 6
    assert next_to_confirm(table, proposed) == BASE.canonical  # no limit: the race goes on


def test_confirmation_seeds_do_not_choose_the_candidates():
    """A candidate whose confirmation seeds are poor stays in the race: the candidates come from
    exploration trials, so the held-out seeds are an unbiased sample of every one of them."""
    table = _table([(BASE, 0.70, 1198.0, 0), (A, 0.80, 1222.0, 0), (C, 0.75, 1202.0, 0)])
    confirm = _table([(BASE, 0.70, 1198.0, 1), (A, 0.50, 1222.0, 1)]).assign(phase="confirm")
    both = pd.concat([table, confirm])
    proposed = {BASE.canonical: 2, A.canonical: 2, C.canonical: 1}
    assert set(race_candidates(table, baseline=BASE.canonical)) == {A.canonical, C.canonical}
    picks = set()
    for _ in range(12):
        pick = next_to_confirm(both, proposed)
        picks.add(pick)
        proposed[pick] += 1
    assert A.canonical in picks  # A's one poor held-out seed did not drop it


def test_the_searcher_confirms_from_the_table_in_memory_without_reading_trials_csv(
    space_file, monkeypatch
):
    """With --confirm every proposal asks the policy; it reads the run's table in memory (it
    re-read and re-parsed trials.csv each time), and a supernet score confirms nothing."""
    import threading

    from mdsearch.search import TrialTable, proxy_search_class
    from mdsearch.space import load_space

    def no_csv(*args, **kwargs):
        raise AssertionError("the driver read a CSV while the search ran")

    monkeypatch.setattr(pd, "read_csv", no_csv)
    space = load_space(space_file)
    table = TrialTable.new([])
    searcher = proxy_search_class()(
        space=space.distributions(), metric=["auc", "flops_m"], mode=["max", "min"],
        sampler=optuna.samplers.RandomSampler(seed=0), mdsearch_space=space, num_classes=5,
        seed=0, seen={}, interrupted=threading.Event(), confirm_after=2,
        confirm_policy=FrontConfirmation(), trial_table=table,
    )  # fmt: skip
    searcher._ot_study.enqueue_trial(space.encode(BASE))  # the references come first in a run
    scored = BASE.with_stage(3, (3, 5), (1, 1)).canonical  # best and cheapest, if it counted
    table.append({"arch": scored, "proxy": "supernet", "status": "COMPLETE", "fidelity": 1.0,
                  "target_fidelity": 1.0, "auc": 0.99, "flops_m": 1.0})  # fmt: skip
    phases, archs = [], []
    for k in range(6):
        config = searcher.suggest(f"t{k}")
        trial = searcher._ot_trials[f"t{k}"]
        phases.append(trial.user_attrs["phase"])
        archs.append(config["arch"])
        auc = 0.6 if k == 0 else 0.9  # the second architecture leads the baseline clearly
        result = {"auc": auc, "flops_m": 1200.0 + k, "fidelity": 1.0, "target_fidelity": 1.0}
        searcher.on_trial_complete(f"t{k}", {**result, "final": True})
        table.append({**result, **config, "status": "COMPLETE"})  # as the recorder does
    assert phases == ["explore", "explore"] + ["confirm"] * 4
    assert set(archs[2:]) <= set(archs[:2])  # further seeds of what was trained, not the score


def test_evidence_words():
    assert evidence(1) == "candidate" and evidence(4) == "confirmed"


def test_run_with_confirmation_gives_further_seeds_and_resumes(tmp_path, cache_dir, space_file):
    out = tmp_path / "run"
    args = ["--space", space_file, "--cache-dir", cache_dir, "--sampler", "random",
            *TINY_PROXY, "--quiet"]  # fmt: skip
    assert run_cli("--out", str(out), "--budget", "6", "--confirm", "0.5", *args) == 0
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert settings["confirm"] == 0.5
    study = optuna.load_study(study_name="mdsearch", storage=f"sqlite:///{out / 'study.db'}")
    phases = [t.user_attrs["phase"] for t in sorted(study.trials, key=lambda t: t.number)]
    # The share would start confirming after 3 trials, but a space no larger than the budget
    # (4 architectures) is covered first.
    assert phases == ["explore"] * 4 + ["confirm"] * 2
    table = pd.read_csv(out / "trials.csv")
    confirmed = [t.user_attrs["arch"] for t in study.trials if t.user_attrs["phase"] == "confirm"]
    explored = {t.user_attrs["arch"] for t in study.trials if t.user_attrs["phase"] == "explore"}
    assert set(confirmed) <= explored  # further seeds of evaluated architectures only
    assert table.groupby("arch").size().max() >= 2
    # Resumed with a larger budget, the confirmation phase goes on where it stopped.
    assert run_cli("--resume", str(out), "--budget", "8", "--quiet") == 0
    assert table_rows(out / "trials.csv") == 8
    study = optuna.load_study(study_name="mdsearch", storage=f"sqlite:///{out / 'study.db'}")
    assert [t.user_attrs["phase"] for t in study.trials][-2:] == ["confirm", "confirm"]
    report = (out / "report.md").read_text()
    assert "confirmed" in report or "candidate" in report


def test_bad_confirm_share_is_one_line(tmp_path, space_file, capsys):
    assert run_cli("--out", str(tmp_path / "r"), "--space", space_file, "--confirm", "1.5") == 2
    assert "--confirm 1.5" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("share", [0.0])
def test_zero_confirm_explores_to_the_end(share):
    from mdsearch.search import SearchSettings

    settings = SearchSettings(budget=100, confirm=share)
    assert settings.explore_trials == 100
    assert SearchSettings(budget=100).explore_trials == 70
