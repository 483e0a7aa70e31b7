"""`mdsearch run` end to end through Ray Tune + Optuna, with a tiny proxy.

Each search here trains a few MobileNet-v2 proxies at 32 px on 64 synthetic images, so one
search costs Ray's start-up (~5 s) plus a few seconds per trial.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pandas as pd
import pytest
from search_fixtures import TINY_PROXY, table_rows

from mdsearch.cli import main
from mdsearch.space import ArchSpec

TINY = [*TINY_PROXY, "--quiet", "--no-report"]


def run_cli(*args: str) -> int:
    return main(["run", *args])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--space", "nope"], "unknown space 'nope'"),
        (["--budget", "0"], "--budget 0"),
        (["--data", "imagenet"], "imagenet"),
        (["--data", "kermany=/no/such/folder"], "/no/such/folder"),
        (["--epochs", "0"], "--epochs 0"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert run_cli("--out", str(out), *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not out.exists()


def test_invalid_space_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  9: [base, k3.5s1:1]\n")
    assert run_cli("--out", str(tmp_path / "run"), "--space", str(bad)) == 2
    assert "stage(s) [9] do not exist" in capsys.readouterr().err


def test_search_records_every_trial_with_references_first(tmp_path, cache_dir, space_file):
    out = tmp_path / "run"
    code = run_cli("--out", str(out), "--space", space_file, "--budget", "5",
                   "--cache-dir", cache_dir, "--sampler", "random", *TINY)  # fmt: skip
    assert code == 0
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 5 and set(table["status"]) == {"COMPLETE"}
    labels = json.loads((out / "config.json").read_text())["data"]["label_names"]
    base = ArchSpec.default("mobilenetv2_100", len(labels))
    paper = base.with_stage(5, (3, 5), (1, 1))
    study = optuna.load_study(study_name="mdsearch", storage=f"sqlite:///{out / 'study.db'}")
    # The reference points are the first two trials proposed (rows are in order of finishing).
    first = sorted(study.trials, key=lambda t: t.number)[:2]
    assert {t.user_attrs["arch"] for t in first} == {base.canonical, paper.canonical}
    assert table["auc"].between(0, 1).all() and (table["fidelity"] == 1).all()
    assert (table["flops_m"] > 250).all() and table["params_m"].notna().all()
    for rel in table["predictions"]:
        assert (out / rel).is_file()
    # 4 distinct architectures, budget 5: the repeat is a further seed, not a silent copy.
    repeats = table[table["repeat"] > 0]
    assert len(repeats) >= 1
    for _, row in repeats.iterrows():
        seeds = table.loc[table["arch"] == row["arch"], "seed"]
        assert seeds.is_unique
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 5
    assert {t.user_attrs["arch"] for t in study.trials} == set(table["arch"])


def test_a_diverging_trial_is_recorded_as_failed_and_the_search_goes_on(
    tmp_path, cache_dir, space_file
):
    out = tmp_path / "run"
    code = run_cli("--out", str(out), "--space", space_file, "--budget", "2",
                   "--cache-dir", cache_dir, "--lr", "1e12", *TINY)  # fmt: skip
    assert code == 0
    table = pd.read_csv(out / "trials.csv", dtype={"error": str})
    assert len(table) == 2 and set(table["status"]) == {"FAILED"}
    assert table["error"].str.contains("Diverged: .* became (?:nan|NaN)", regex=True).all()


def test_second_run_on_the_same_folder_refuses(tmp_path, space_file):
    from mdsearch.search.runfolder import RunFolder

    out = tmp_path / "run"
    with RunFolder(out).lock():
        code = main(["run", "--out", str(out), "--space", space_file, *TINY])
    assert code == 2


def test_resume_after_kill_keeps_completed_trials_and_reaches_the_budget(
    tmp_path, cache_dir, space_file
):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "mdsearch.cli", "run", "--out", str(out), "--space",
           space_file, "--budget", "6", "--cache-dir", cache_dir, "--max-concurrent", "1", *TINY]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while table_rows(out / "trials.csv") < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = pd.read_csv(out / "trials.csv", dtype=str)
    assert 2 <= len(before) < 6, proc.stderr.read().decode()[-2000:]

    assert main(["run", "--resume", str(out), "--quiet", "--no-report"]) == 0
    after = pd.read_csv(out / "trials.csv", dtype=str)
    assert len(after) == 6
    pd.testing.assert_frame_equal(after.iloc[: len(before)], before)
    assert after["ray_trial_id"].is_unique
    assert set(after["status"]) == {"COMPLETE"}


def test_early_stopped_trials_keep_their_fidelity_and_are_pruned_for_optuna(
    tmp_path, cache_dir, space_file
):
    out = tmp_path / "run"
    # One trial at a time on one CPU thread: ASHA's decisions are deterministic (seed 1 stops
    # two of the six trials early); the PRUNED path is also checked directly below.
    code = run_cli(*TINY, "--out", str(out), "--space", space_file, "--budget", "6",
                   "--epochs", "3", "--early-stop", "asha", "--sampler", "random",
                   "--max-concurrent", "1", "--seed", "1", "--cache-dir", cache_dir)  # fmt: skip
    assert code == 0
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 6 and set(table["status"]) <= {"COMPLETE", "STOPPED"}
    stopped = table[table["status"] == "STOPPED"]
    assert len(stopped) >= 1
    assert (stopped["fidelity"] < stopped["target_fidelity"]).all()
    assert (table.loc[table["status"] == "COMPLETE", "fidelity"] == 3).all()
    study = optuna.load_study(study_name="mdsearch", storage=f"sqlite:///{out / 'study.db'}")
    states = [t.state for t in study.trials]
    # A partial AUC never reaches Optuna as a finished proxy.
    assert states.count(optuna.trial.TrialState.PRUNED) == len(stopped)
    assert states.count(optuna.trial.TrialState.COMPLETE) == len(table) - len(stopped)


def test_optuna_is_told_complete_only_for_finished_proxies(space_file):
    import threading

    from mdsearch.search.orchestrate import _searcher_class
    from mdsearch.space import load_space

    space = load_space(space_file)
    searcher = _searcher_class()(
        space=space.distributions(), metric=["auc", "flops_m"], mode=["max", "min"],
        sampler=optuna.samplers.RandomSampler(seed=0), mdsearch_space=space, num_classes=5,
        seed=0, seen={}, interrupted=threading.Event(),
    )  # fmt: skip
    results = {
        "done": {"auc": 0.7, "flops_m": 1200.0, "fidelity": 2.0, "final": True},
        "stopped": {"auc": 0.6, "flops_m": 1200.0, "fidelity": 1.0, "final": False},
        "failed": {"auc": float("nan"), "flops_m": 1200.0, "final": True, "error": "x"},
    }
    for trial_id, result in results.items():
        assert searcher.suggest(trial_id)["__seed"] >= 0
        searcher.on_trial_complete(trial_id, result)
    study = searcher._ot_study
    states = [t.state.name for t in sorted(study.trials, key=lambda t: t.number)]
    assert states == ["COMPLETE", "PRUNED", "FAIL"]
    assert study.trials[0].values == [0.7, 1200.0]
