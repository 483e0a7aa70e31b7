"""`mdsearch run` end to end through Ray Tune + Optuna, with a tiny proxy.

Each search here trains a few MobileNet-v2 proxies at 32 px on 64 synthetic images, so one
search costs Ray's start-up (~5 s) plus a few seconds per trial.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import optuna
import pandas as pd
import pytest
from search_fixtures import TINY_PROXY, table_rows

from mdsearch.cli import main
from mdsearch.search import (
    PROXY_RECIPE,
    SAMPLERS,
    DataSettings,
    RunFolder,
    SearchSettings,
    TrainRecipe,
    TrialTable,
    covering_plan,
    make_sampler,
    proxy_search_class,
    read_trial_table,
    stage_list,
)
from mdsearch.search.trial_table import table_columns
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


def test_search_records_every_trial_with_references_first(tmp_path, cache_dir, space_file, capsys):
    out = tmp_path / "run"
    with_report = [a for a in TINY if a != "--no-report"]
    code = run_cli("--out", str(out), "--space", space_file, "--budget", "5",
                   "--cache-dir", cache_dir, "--sampler", "random", *with_report)  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert re.search(r"knee: [0-9a-f]{10}, [0-9.]+ M FLOPs at 448 px, AUC 0\.\d+", printed)
    assert f"next: mdsearch pareto {out}" in printed and "--pick knee" in printed
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 5 and set(table["status"]) == {"COMPLETE"}
    labels = json.loads((out / "config.json").read_text())["data"]["label_names"]
    base = ArchSpec.default("mobilenetv2_100", len(labels))
    paper = base.with_stage(5, (3, 5), (1, 1))
    study = optuna.load_study(study_name="mdsearch", storage=f"sqlite:///{out / 'study.db'}")
    assert study.metric_names == ["auc", "flops_m"]  # optuna-dashboard names the objectives
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
    out = tmp_path / "run"
    with RunFolder(out).lock():
        code = main(["run", "--out", str(out), "--space", space_file, *TINY])
    assert code == 2


def test_resume_after_kill_keeps_completed_trials_and_reaches_the_budget(
    tmp_path, cache_dir, space_file, capsys
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

    assert main(["run", "--resume", str(out), "--no-report"]) == 0
    # --resume says what it found before it goes on.
    summary = re.search(r"resuming .*: (\d+) of 6 trials done \((\d+) complete\)(.*); (\d+) left "
                        r"to the budget", capsys.readouterr().err)  # fmt: skip
    assert summary, "no resume summary on stderr"
    assert int(summary[1]) == int(summary[2]) == len(before) and int(summary[4]) == 6 - len(before)
    after = pd.read_csv(out / "trials.csv", dtype=str)
    assert len(after) == 6
    pd.testing.assert_frame_equal(after.iloc[: len(before)], before)
    assert after["ray_trial_id"].is_unique
    assert set(after["status"]) == {"COMPLETE"}
    study = optuna.load_study(study_name="mdsearch", storage=f"sqlite:///{out / 'study.db'}")
    # The trials the kill cut off are FAIL in the study; those with a whole proposal reran first.
    cut_off = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    rerun = re.search(r"; (\d+) interrupted trials? runs? again first", summary[3])
    assert (int(rerun[1]) if rerun else 0) == sum(len(t.params) == 2 for t in cut_off)
    # The study and the table match through the table's number (user attribute table_trial),
    # though after a kill Optuna's own numbers run ahead of the table's.
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.user_attrs["table_trial"] for t in done) == list(range(6))
    for t in done:
        (row,) = after[after["trial"] == str(t.user_attrs["table_trial"])].to_dict("records")
        assert row["arch"] == t.user_attrs["arch"]
        assert row["ray_trial_id"] == t.user_attrs["ray_trial_id"]
    if cut_off:
        assert any(t.number != t.user_attrs["table_trial"] for t in done)


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
    # Tune tells the searcher before the recorder here: the study still has the rows' numbers.
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert sorted(t.user_attrs["table_trial"] for t in pruned) == sorted(stopped["trial"])


def test_optuna_is_told_complete_only_for_finished_proxies(space_file):
    import threading

    from mdsearch.space import load_space

    space = load_space(space_file)
    searcher = proxy_search_class()(
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
        config = searcher.suggest(trial_id)
        # The searcher decodes the proposal once: the trial gets the canonical string.
        assert set(config) == {"arch", "seed", "repeat", "phase"} and config["seed"] >= 0
        assert ArchSpec.parse(config["arch"]).canonical == config["arch"]
        searcher.on_trial_complete(trial_id, result)
    study = searcher._ot_study
    states = [t.state.name for t in sorted(study.trials, key=lambda t: t.number)]
    assert states == ["COMPLETE", "PRUNED", "FAIL"]
    assert study.trials[0].values == [0.7, 1200.0]


def test_the_grid_sampler_covers_the_space_then_repeats_to_the_budget(space_file):
    """--sampler grid: every architecture once, then further seeds; the tell of the trial that
    completes the grid used to raise (GridSampler's study.stop() outside study.optimize)."""
    import threading

    from mdsearch.space import load_space

    space = load_space(space_file)
    searcher = proxy_search_class()(
        space=space.distributions(), metric=["auc", "flops_m"], mode=["max", "min"],
        sampler=make_sampler("grid", 0, space, 2 * space.size), mdsearch_space=space,
        num_classes=5, seed=0, seen={}, interrupted=threading.Event(),
    )  # fmt: skip
    archs = []
    for k in range(space.size + 2):
        config = searcher.suggest(f"t{k}")
        archs.append(config["arch"])
        searcher.on_trial_complete(f"t{k}", {"auc": 0.7, "flops_m": 1200.0, "final": True})
    assert len(set(archs[: space.size])) == space.size  # the grid first, each point once
    assert all(a in archs[: space.size] for a in archs[space.size :])  # then repeats
    states = {t.state.name for t in searcher._ot_study.trials}
    assert states == {"COMPLETE"}


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_samplers_searcher_survives_tunes_checkpoint_and_covers_the_space_first(
    sampler, space_file, tmp_path
):
    """Ray Tune saves the searcher (its attributes, the sampler included) with pickle at every
    experiment checkpoint, the first one at the start of a run: --sampler grid's class was made
    inside a function, could not be pickled, and every real grid run crashed there. With a
    budget no smaller than the space, the space is covered before any repeat or confirmation,
    whatever the sampler."""
    from mdsearch.results import FrontConfirmation
    from mdsearch.search.progress import InterruptFlag, TrialNumbers
    from mdsearch.space import load_space

    space = load_space(space_file)
    table = TrialTable.new([])
    args = dict(
        space=space.distributions(), metric=["auc", "flops_m"], mode=["max", "min"],
        mdsearch_space=space, num_classes=5, seed=0, seen={}, interrupted=InterruptFlag(),
        confirm_after=2, confirm_policy=FrontConfirmation(), trial_table=table,
        trial_numbers=TrialNumbers(), explore_plan=covering_plan(space, 5, seed=0),
    )  # fmt: skip
    searcher = proxy_search_class()(sampler=make_sampler(sampler, 0, space, 6), **args)
    archs = []
    for k in range(space.size):
        config = searcher.suggest(f"t{k}")
        archs.append(config["arch"])
        result = {"auc": 0.6 + 0.01 * k, "flops_m": 1200.0 + k, "fidelity": 1.0,
                  "target_fidelity": 1.0}  # fmt: skip
        searcher.on_trial_complete(f"t{k}", {**result, "final": True})
        table.append({**config, **result, "status": "COMPLETE"})
    assert len(set(archs)) == space.size  # covered, though confirmation was due after 2
    searcher.save(str(tmp_path / "searcher.pkl"))  # what Tune's checkpoint does
    restored = proxy_search_class()(sampler=make_sampler(sampler, 0, space, 6), **args)
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.suggest("t4")["repeat"] == 1  # the space covered: a further seed
    assert restored._ot_trials["t4"].user_attrs["phase"] == "confirm"


def test_each_optuna_trial_carries_its_trial_table_number(space_file):
    import threading

    from mdsearch.search.progress import TrialNumbers
    from mdsearch.space import load_space

    space = load_space(space_file)
    numbers = TrialNumbers(start=10)  # ten rows in the table before this invocation
    searcher = proxy_search_class()(
        space=space.distributions(), metric=["auc", "flops_m"], mode=["max", "min"],
        sampler=optuna.samplers.RandomSampler(seed=0), mdsearch_space=space, num_classes=5,
        seed=0, seen={}, interrupted=threading.Event(), trial_numbers=numbers,
    )  # fmt: skip
    for trial_id in ("finished", "stopped", "lost"):
        searcher.suggest(trial_id)
    # Ray Tune records a finished trial's row before the searcher hears of it ...
    assert numbers.number("finished") == 10
    searcher.on_trial_complete("finished", {"auc": 0.7, "flops_m": 1200.0, "final": True})
    # ... and tells the searcher first about a trial stopped early or one whose worker died.
    searcher.on_trial_complete("stopped", {"auc": 0.6, "flops_m": 1200.0, "final": False})
    searcher.on_trial_complete("lost", None, error=True)
    assert [numbers.number(t) for t in ("stopped", "lost")] == [11, 12]  # the rows written next
    attrs = [t.user_attrs for t in sorted(searcher._ot_study.trials, key=lambda t: t.number)]
    assert [a["table_trial"] for a in attrs] == [10, 11, 12]
    assert [a["ray_trial_id"] for a in attrs] == ["finished", "stopped", "lost"]


#: The settings block of a config.json written by mdsearch before DataSettings and TrainRecipe
#: (commit 39cf6bd): flat data fields and the proxy with its resolution and threads.
OLD_SETTINGS = {
    "data": "phantom,n=300", "space": "paper", "backbone": None, "budget": 4, "sampler": "tpe",
    "seed": 3, "input_size": 448,
    "proxy": {"resolution": 32, "epochs": 1, "batch_size": 32, "train_subset": 64,
              "val_subset": None, "lr": 0.003, "weight_decay": 0.0001, "optimizer": "adamw",
              "schedule": "cosine", "augment": True, "head_init": "small", "threads": 1,
              "channels_last": True},
    "early_stop": "none", "cpus_per_trial": 1.0, "gpus_per_trial": 0.0, "max_concurrent": None,
    "address": None, "cache_dir": "/tmp/cache", "val_fraction": 0.25, "trial_timeout": None,
    "max_failures": 2, "objectives": ["auc", "flops"], "latency_size": 224,
    "latency_device": "cpu",
}  # fmt: skip


def test_an_old_config_json_loads_and_is_written_back_in_its_layout():
    settings = SearchSettings.from_dict(OLD_SETTINGS)
    assert settings.data == DataSettings(
        "phantom,n=300", resolution=32, cache_dir="/tmp/cache", seed=3, val_fraction=0.25
    )
    assert settings.proxy == TrainRecipe(epochs=1, train_subset=64)
    assert settings.seed == 3 and settings.objectives == ("auc", "flops")
    # Written back in the same layout, plus the settings added since: a run from before
    # --confirm explores to the end when resumed, one from before --strategy is stand-alone.
    assert settings.confirm == 0.0 and settings.strategy == "standalone"
    added = ("confirm", "strategy", "supernet_epochs", "supernet_scores", "supernet")
    assert {k: v for k, v in settings.to_dict().items() if k not in added} == OLD_SETTINGS
    # Keys of a still older run (no objectives, no latency device) take their defaults.
    older = {k: v for k, v in OLD_SETTINGS.items() if k not in ("objectives", "latency_device")}
    assert SearchSettings.from_dict(older).objectives == ("auc", "flops")
    assert SearchSettings.from_dict(SearchSettings().to_dict()) == SearchSettings()
    assert SearchSettings().proxy == PROXY_RECIPE


#: trials.csv as mdsearch wrote it before the trial-table schema module (commit 39cf6bd).
OLD_TABLE = (
    "trial,ray_trial_id,arch,arch_id,mdconv_stages,status,fidelity,target_fidelity,auc,flops_m,"
    "latency_ms,input_size,params_m,resolution,seed,repeat,train_seconds,images_per_s,node_id,"
    "finished_at,predictions,error,auc__A,auc__B\n"
    "0,a_00000,ARCH0,id0,,COMPLETE,1.0,1.0,0.7,300.5,,448,2.2,32,0,0,3.1,20.5,n0,"
    "2025-01-01T00:00:00+00:00,predictions/a_00000.npz,,0.6,0.8\n"
    "1,a_00001,ARCH1,id1,1 5,FAILED,0.0,1.0,,310.0,,448,2.3,32,0,0,,,n0,"
    "2025-01-01T00:01:00+00:00,,RuntimeError: x,,\n"
)


def test_an_old_trial_table_reads_with_the_schema_types_and_takes_new_rows(tmp_path):
    folder = RunFolder(tmp_path)
    folder.table_path.write_text(OLD_TABLE)
    folder.append_row(
        {"trial": 2, "ray_trial_id": "a_00002", "arch": "ARCH2", "mdconv_stages": [5],
         "status": "COMPLETE", "auc": 0.9, "flops_m": 305.0, "seed": 1, "repeat": 1,
         "auc__A": 0.85, "auc__B": 0.95},
        ["A", "B"],
    )  # fmt: skip
    table = folder.read_table()
    assert list(table["arch"]) == ["ARCH0", "ARCH1", "ARCH2"]
    assert list(table["mdconv_stages"]) == ["", "1 5", "5"]
    assert list(table["error"]) == ["", "RuntimeError: x", ""]
    assert table["auc"].iloc[[0, 2]].tolist() == [0.7, 0.9] and pd.isna(table["auc"].iloc[1])
    assert list(table["auc__B"].iloc[[0, 2]]) == [0.8, 0.95]
    pd.testing.assert_frame_equal(table, read_trial_table(folder.table_path))


def test_a_partial_last_row_is_set_aside_on_resume_and_the_table_grows_cleanly(tmp_path):
    """A row cut off mid-write (power loss) would be read as a trial and glued to the next
    row; a resume moves it to trials.partial.csv first, and the complete rows are kept."""
    folder = RunFolder(tmp_path)
    folder.table_path.write_text(OLD_TABLE + "2,a_00002,ARCH2,id2,,COMPL")
    assert folder.set_aside_partial_row() == "2,a_00002,ARCH2,id2,,COMPL"
    assert folder.table_path.read_text() == OLD_TABLE
    assert (tmp_path / "trials.partial.csv").read_text() == "2,a_00002,ARCH2,id2,,COMPL\n"
    table = TrialTable.read(folder.table_path, ["A", "B"])
    row = {"trial": 2, "arch": "ARCH2", "status": "COMPLETE", "auc": 0.9, "flops_m": 305.0}
    folder.append_row(row, columns=table.columns)
    assert list(read_trial_table(folder.table_path)["arch"]) == ["ARCH0", "ARCH1", "ARCH2"]
    assert folder.set_aside_partial_row() == ""  # a clean table is left alone
    assert RunFolder(tmp_path / "new").set_aside_partial_row() == ""


def test_an_old_table_is_read_back_once_into_memory_and_grows_there_and_on_disk(tmp_path):
    """On resume the driver reads trials.csv once; rows it writes after go to the file (in the
    old header's columns) and to the table in memory, whose stage lists are tuples of ints."""
    folder = RunFolder(tmp_path)
    folder.table_path.write_text(OLD_TABLE)
    table = TrialTable.read(folder.table_path, ["A", "B", "C"])
    assert table.columns == list(read_trial_table(folder.table_path).columns)  # the file's own
    row = {"trial": 2, "ray_trial_id": "a_00002", "arch": "ARCH2", "mdconv_stages": [5],
           "status": "COMPLETE", "auc": 0.9, "flops_m": 305.0, "seed": 1, "repeat": 1,
           "auc__A": 0.85, "auc__B": 0.95, "auc__C": 0.5, "proxy": "standalone"}  # fmt: skip
    folder.append_row(row, columns=table.columns)
    table.append(row)
    assert [r["mdconv_stages"] for r in table.rows()] == [(), (1, 5), (5,)]
    assert table.seen() == {"ARCH0": 1, "ARCH1": 1, "ARCH2": 1}
    assert table.count("standalone") == 3 and table.count(status="FAILED") == 1
    assert table.objective_values(["auc", "flops_m"]) == [(0.7, 300.5), (0.9, 305.0)]
    on_disk = read_trial_table(folder.table_path)
    assert list(on_disk.columns) == table.columns  # no column the old header lacks
    assert list(on_disk["mdconv_stages"]) == ["", "1 5", "5"]
    memory = table.frame()[table.columns]  # (and the row's columns the old header lacks)
    pd.testing.assert_frame_equal(
        memory.drop(columns="mdconv_stages"), on_disk.drop(columns="mdconv_stages")
    )
    assert memory["mdconv_stages"].tolist() == [(), (1, 5), (5,)]
    assert TrialTable.read(tmp_path / "absent.csv", ["A"]).columns == table_columns(["A"])


@pytest.mark.parametrize("cell", ["1 5", "1;5", "1, 5", [1, 5], (1, 5)])
def test_every_stage_list_form_reads_as_one_tuple(cell):
    assert stage_list(cell) == (1, 5)
    assert stage_list("") == stage_list(None) == stage_list(float("nan")) == ()


def test_resume_settles_running_trials_and_reruns_only_whole_proposals(tmp_path, space_file):
    from mdsearch.search.study import STUDY_NAME, recover_study
    from mdsearch.space import load_space

    space = load_space(space_file)
    folder = RunFolder(tmp_path)
    study = optuna.create_study(
        study_name=STUDY_NAME, storage=folder.study_url, directions=["maximize", "minimize"]
    )
    dists = space.distributions()
    whole = study.ask(dists)  # a proposal that was running when the driver died
    cut = study.ask()  # one the kill interrupted while Optuna stored its parameters
    cut.suggest_categorical("stage1", dists["stage1"].choices)
    table = pd.DataFrame(columns=["arch", "seed", "status"])
    again = recover_study(folder, space, table, ["auc", "flops_m"])
    assert again == [whole.params]
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {whole.number: "FAIL", cut.number: "FAIL"}


def test_resume_gives_a_trial_with_a_row_its_table_number(tmp_path, space_file):
    """The driver died after writing the row, before telling Optuna: resume tells the outcome
    and the row's number, so the dashboard still matches the table."""
    from mdsearch.search.study import STUDY_NAME, recover_study
    from mdsearch.space import load_space

    space = load_space(space_file)
    folder = RunFolder(tmp_path)
    study = optuna.create_study(
        study_name=STUDY_NAME, storage=folder.study_url, directions=["maximize", "minimize"]
    )
    running = study.ask(space.distributions())
    arch = space.decode(running.params, 5).canonical
    running.set_user_attr("arch", arch)  # as the searcher marks every proposal
    running.set_user_attr("seed", 0)
    table = pd.DataFrame(
        [{"trial": 7, "arch": arch, "seed": 0, "status": "COMPLETE", "auc": 0.7, "flops_m": 1200.0}]
    )
    assert recover_study(folder, space, table, ["auc", "flops_m"]) == []
    (trial,) = study.get_trials()
    assert trial.state.name == "COMPLETE" and trial.values == [0.7, 1200.0]
    assert trial.user_attrs["table_trial"] == 7


def test_relative_data_and_cache_paths_reach_the_trials_absolute(tmp_path, monkeypatch):
    """Ray Tune runs each trial in its own folder: a relative kermany=../data or --cache-dir
    must be resolved on the driver (it was not: every trial failed with 'does not exist')."""
    from mdsearch.search import prepare

    (tmp_path / "xrays").mkdir()
    monkeypatch.chdir(tmp_path)
    data = DataSettings("kermany=xrays,task=subtype", resolution=32, cache_dir="cache")
    prepared = prepare(SearchSettings(data=data, budget=1), tmp_path / "run")
    assert prepared.settings.data.data == f"kermany={tmp_path / 'xrays'},task=subtype"
    assert prepared.settings.data.cache_dir == str(tmp_path / "cache")
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def shared_ray():
    """One local Ray for several searches (`mdsearch run` uses a Ray its caller started and
    leaves it running): one start-up instead of one per run."""
    from mdsearch.search import ray_session

    ray_session.start_ray(None)
    yield
    ray_session.stop_ray()


@pytest.mark.slow  # 4 x (2 Tune runs + 5 trials): about 9 min on the busy 2-core machine
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_covers_a_small_space_checkpoints_and_resumes(
    sampler, shared_ray, tmp_path, cache_dir, space_file, capsys
):
    """Each --sampler through a real run: Ray Tune pickles the searcher (sampler included) at
    its checkpoints (--sampler grid crashed there); a space no larger than the budget is
    covered, references first, before any repeat; --resume goes on with the sampler's own
    proposal (a further seed, the space being covered)."""
    out = tmp_path / "run"
    code = run_cli("--out", str(out), "--space", space_file, "--budget", "4", "--confirm", "0",
                   "--sampler", sampler, "--input-size", "64", "--cache-dir", cache_dir, *TINY)  # fmt: skip
    assert code == 0, capsys.readouterr().err[-2000:]
    assert list((out / "tune-0").glob("searcher-state-*.pkl"))  # the searcher was saved
    labels = json.loads((out / "config.json").read_text())["data"]["label_names"]
    base = ArchSpec.default("mobilenetv2_100", len(labels))
    paper = base.with_stage(5, (3, 5), (1, 1))
    every = {base.canonical, paper.canonical, base.with_stage(1, (3, 5), (1, 1)).canonical,
             paper.with_stage(1, (3, 5), (1, 1)).canonical}  # fmt: skip
    assert set(pd.read_csv(out / "trials.csv")["arch"]) == every  # each once

    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--budget", "5", "--no-report"]) == 0
    err = capsys.readouterr().err
    assert list((out / "tune-1").glob("searcher-state-*.pkl"))
    # The progress line (not --quiet) reads the table in memory: failures, best AUC, front.
    assert re.search(
        r"search \[5/5\] running \d+ \| failed 0 \| best AUC 0\.\d+ \| front [1-5] ", err
    )
    study = optuna.load_study(study_name="mdsearch", storage=f"sqlite:///{out / 'study.db'}")
    trials = sorted(study.trials, key=lambda t: t.number)
    assert {t.user_attrs["arch"] for t in trials[:2]} == {base.canonical, paper.canonical}
    assert [t.state.name for t in trials] == ["COMPLETE"] * 5
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 5 and table["arch"][4] in every and table["repeat"][4] == 1
