"""Faults of one `mdsearch run` on one machine: hung, out-of-memory and interrupted trials, a run
folder that stops taking writes, and two runs on one folder.

Every search trains a few MobileNet-v2 proxies at 32 px on 64 synthetic images (as in
test_search.py). Faults are made on purpose with the MDSEARCH_TEST_FAULT hook (see
mdsearch.search.TEST_FAULT_ENV), by signals to a real subprocess, or at the one
function that writes bytes to the trial table.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from search_fixtures import TINY_PROXY, table_rows

from mdsearch.cli import main
from mdsearch.search import (
    TEST_FAULT_ENV,
    DataSettings,
    RunFolder,
    TrainRecipe,
    TrialTimeout,
    proxy_train,
    runfolder,
)

TINY = [*TINY_PROXY, "--quiet", "--no-report"]


#: Canonical strings of TWO_STAGE_SPACE end in "k3.5s1:1,k3" exactly when stage 5 has MD-Conv (as the
#: paper's network, a reference point evaluated first, does).
STAGE5_MD = "k3.5s1:1,k3"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mdsearch.cli", "run", *args]


def _study(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="mdsearch", storage=f"sqlite:///{out / 'study.db'}")


def _states(out: Path) -> dict[str, int]:
    names = [t.state.name for t in _study(out).get_trials(deepcopy=False)]
    return {n: names.count(n) for n in set(names)}


# -- two runs, one folder ----------------------------------------------------------------------
def _hold_lock(out: Path) -> subprocess.Popen:
    """Another process holding the run folder's lock until killed (it prints 'held' first)."""
    return subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from mdsearch.search import RunFolder\n"
         "with RunFolder(sys.argv[1]).lock():\n    print('held', flush=True); time.sleep(600)",
         str(out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_the_lock_holds_across_processes_and_dies_with_its_holder(tmp_path, space_file, capsys):
    out = tmp_path / "run"
    holder = _hold_lock(out)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["run", "--out", str(out), "--space", space_file, *TINY]) == 2
        err = capsys.readouterr().err
        assert "in use by a running search" in err and str(out) in err
        assert not (out / "config.json").exists()
    finally:
        holder.kill()
        holder.wait()
    # A lock is an OS lock on the file: a holder killed with SIGKILL leaves nothing that blocks.
    with RunFolder(out).lock():
        pass


def test_a_folder_in_use_says_so_instead_of_advising_resume(tmp_path, space_file, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")  # a search was started here
    holder = _hold_lock(out)
    try:
        assert holder.stdout.readline().strip() == "held"
        for args in (["--out", str(out), "--space", space_file, *TINY], ["--resume", str(out)]):
            assert main(["run", *args]) == 2
            err = capsys.readouterr().err
            assert "in use by a running search" in err and err.count("\n") == 1
    finally:
        holder.kill()
        holder.wait()


def test_zero_images_per_epoch_is_refused_not_read_as_all(tmp_path, space_file, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--out", str(out), "--space", space_file, *TINY, "--train-subset", "0"])
    assert exit_info.value.code == 2
    assert "'all'" in capsys.readouterr().err and not out.exists()


# -- trials that fail in their own code ----------------------------------------------------------
def test_the_cooperative_deadline_stops_training_between_batches(cache_dir):
    from mdsearch.space import ArchSpec

    data = DataSettings("phantom,n=300", resolution=32, cache_dir=cache_dir).load(progress=False)
    spec = ArchSpec.default("mobilenetv2_100", len(data.label_names))
    recipe = TrainRecipe(epochs=1, batch_size=32, train_subset=64)
    with pytest.raises(TrialTimeout, match="deadline"):
        proxy_train(spec, data, recipe, seed=0, deadline=time.monotonic())
    assert proxy_train(spec, data, recipe, seed=0, deadline=time.monotonic() + 600).fidelity == 1


def test_a_hung_trial_is_ended_by_the_watchdog_recorded_and_not_retried(
    tmp_path, cache_dir, space_file, monkeypatch
):
    # The hook hangs without ever checking a deadline: only the watchdog can end it. The
    # watchdog ends the worker process, Tune retries the trial (--max-failures 2 by default),
    # and the retry finds the watchdog's note and records the timeout instead of hanging again.
    monkeypatch.setenv(TEST_FAULT_ENV, f"hang:{STAGE5_MD}$")
    out = tmp_path / "run"
    code = main(["run", "--out", str(out), "--space", space_file, "--budget", "3",
                 "--cache-dir", cache_dir, "--trial-timeout", "10", *TINY])  # fmt: skip
    assert code == 0
    table = pd.read_csv(out / "trials.csv", dtype={"error": str})
    assert len(table) == 3 and table["ray_trial_id"].is_unique
    hung = table["arch"].str.endswith(STAGE5_MD)
    assert hung.any() and (~hung).any()
    assert (table.loc[hung, "status"] == "FAILED").all()
    assert table.loc[hung, "error"].str.startswith("timeout after 10 s (--trial-timeout)").all()
    assert (table.loc[~hung, "status"] == "COMPLETE").all()
    assert {p.stem for p in (out / "faults").glob("*.json")} == set(table.loc[hung, "ray_trial_id"])
    assert _states(out) == {"COMPLETE": int((~hung).sum()), "FAIL": int(hung.sum())}


def test_a_trial_out_of_memory_is_recorded_failed_with_the_reason(
    tmp_path, cache_dir, space_file, monkeypatch
):
    # The hook asks torch's allocator for 1 PiB: the real "can't allocate memory" error path.
    monkeypatch.setenv(TEST_FAULT_ENV, f"oom:{STAGE5_MD}$")
    out = tmp_path / "run"
    code = main(["run", "--out", str(out), "--space", space_file, "--budget", "2",
                 "--cache-dir", cache_dir, *TINY])  # fmt: skip
    assert code == 0
    table = pd.read_csv(out / "trials.csv", dtype={"error": str}).set_index("arch")
    oom = table.loc[[a for a in table.index if a.endswith(STAGE5_MD)]]
    assert len(oom) == 1 and oom["status"].item() == "FAILED"
    assert oom["error"].item().startswith("out of memory: RuntimeError")
    assert "--batch-size" in oom["error"].item()
    assert set(table["status"]) == {"FAILED", "COMPLETE"}


def test_a_bad_fault_hook_value_is_a_clear_error(tmp_path, space_file, monkeypatch, capsys):
    monkeypatch.setenv(TEST_FAULT_ENV, "explode:k3")
    assert main(["run", "--out", str(tmp_path / "run"), "--space", space_file, *TINY]) == 2
    assert TEST_FAULT_ENV in capsys.readouterr().err


# -- Ctrl-C --------------------------------------------------------------------------------------
def test_ctrl_c_stops_cleanly_exit_130_and_resume_reaches_the_budget(
    tmp_path, cache_dir, space_file
):
    out = tmp_path / "run"
    cmd = _cli("--out", str(out), "--space", space_file, "--budget", "6", "--cache-dir",
               cache_dir, "--max-concurrent", "1", *TINY)  # fmt: skip
    # Its own session, so that the SIGINT below reaches the driver and everything it started,
    # as Ctrl-C in a terminal reaches the foreground process group.
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 240
    while table_rows(out / "trials.csv") < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert f"mdsearch run --resume {out}" in err
    before = pd.read_csv(out / "trials.csv", dtype=str)
    assert 2 <= len(before) < 6 and set(before["status"]) == {"COMPLETE"}
    # The table and the study agree: every COMPLETE trial of the study has its row; trials
    # that were running have no row, are marked interrupted and stay RUNNING until --resume.
    study = _study(out)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert sorted(t.user_attrs["arch"] for t in complete) == sorted(before["arch"])
    running = [t for t in study.trials if t.state.name == "RUNNING"]
    assert all(t.user_attrs.get("interrupted") for t in running)

    assert main(["run", "--resume", str(out), "--quiet", "--no-report"]) == 0
    after = pd.read_csv(out / "trials.csv", dtype=str)
    assert len(after) == 6 and after["ray_trial_id"].is_unique
    pd.testing.assert_frame_equal(after.iloc[: len(before)], before)
    assert _states(out).get("RUNNING", 0) == 0


# -- a run folder that stops taking writes --------------------------------------------------------
def test_disk_full_stops_the_search_with_one_line_and_keeps_what_was_written(
    tmp_path, cache_dir, space_file, monkeypatch, capsys
):
    out = tmp_path / "run"
    real = runfolder.write_all
    rows_before_full = 2

    def fills_up(fd: int, data: bytes) -> None:
        # The table's header and first rows go out; the next row gets half-way, as on a
        # disk that fills during the write.
        if table_rows(out / "trials.csv") >= rows_before_full:
            os.write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd, data)

    monkeypatch.setattr(runfolder, "write_all", fills_up)
    code = main(["run", "--out", str(out), "--space", space_file, "--budget", "5",
                 "--cache-dir", cache_dir, "--max-concurrent", "1", *TINY])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"cannot write {out / 'trials.csv'}: No space left on device" in err[0]
    assert f"mdsearch run --resume {out}" in err[0]
    # No partial row: the table is exactly the rows written before, and their predictions load.
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == rows_before_full and set(table["status"]) == {"COMPLETE"}
    assert (out / "trials.csv").read_bytes().endswith(b"\n")
    for rel in table["predictions"]:
        assert np.load(out / rel)["y_score"].shape[0] > 0

    monkeypatch.setattr(runfolder, "write_all", real)  # space freed: resume finishes the run
    assert main(["run", "--resume", str(out), "--quiet", "--no-report"]) == 0
    after = pd.read_csv(out / "trials.csv")
    assert len(after) == 5 and after["ray_trial_id"].is_unique
    states = _states(out)
    assert states["COMPLETE"] == 5 and states.get("RUNNING", 0) == 0


@pytest.fixture()
def immutable(tmp_path):
    """chattr +i / -i: read-only even for root (tests run as root, where chmod does not bind)."""
    marked: list[Path] = []
    probe = tmp_path / "probe"
    probe.write_text("x")
    if (
        shutil.which("chattr") is None
        or subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode
    ):
        pytest.skip("chattr +i is not available on this filesystem or to this user")
    subprocess.run(["chattr", "-i", str(probe)], check=True)

    def mark(path: Path) -> None:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        marked.append(path)

    yield mark
    for path in marked:
        subprocess.run(["chattr", "-i", str(path)], check=False)


@pytest.mark.slow  # the disk-full test covers the same code path in the default suite
def test_a_table_made_read_only_mid_run_stops_with_one_line_and_stays_readable(
    tmp_path, cache_dir, space_file, immutable
):
    out = tmp_path / "run"
    cmd = _cli("--out", str(out), "--space", space_file, "--budget", "8", "--cache-dir",
               cache_dir, "--max-concurrent", "1", *TINY)  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while table_rows(out / "trials.csv") < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    immutable(out / "trials.csv")
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 2, err[-2000:]
    assert f"cannot write {out / 'trials.csv'}: Operation not permitted" in err
    table = pd.read_csv(out / "trials.csv")
    assert 1 <= len(table) < 8 and set(table["status"]) == {"COMPLETE"}
