"""`mdsearch run --address` on a real multi-node Ray cluster: two `ray start` nodes on this
machine's loopback (1 CPU each), the search driven by a separate `mdsearch run` process.

The cluster is started once for the module and killed by process group at the end, also when a
test fails (tests/ray_cluster.py); other Ray instances on the machine are never touched. The
head's health checks are tightened so a killed node is declared dead in seconds, not ~30 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from ray_cluster import LocalRayCluster  # tests/ is on sys.path (rootdir-relative import)
from search_fixtures import TINY_PROXY

from mdsearch.search import TEST_FAULT_ENV

TINY = [*TINY_PROXY, "--no-report"]


FAST_HEALTH_CHECKS = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


@pytest.fixture(scope="module")
def cluster():
    c = LocalRayCluster()
    c.env.update(FAST_HEALTH_CHECKS)
    try:
        c.start([1, 1])
        yield c
    finally:
        c.stop()


def table_rows(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame(columns=["node_id"])


class Driver:
    """`mdsearch run` in a subprocess; its stderr lines are kept with the time they arrived."""

    def __init__(self, cluster: LocalRayCluster, *args: str, env: dict | None = None) -> None:
        cmd = [sys.executable, "-m", "mdsearch.cli", "run", *args]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**cluster.driver_env(), **(env or {})},
        )  # fmt: skip
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line.rstrip()))

    def wait(self, timeout: float = 300) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    @property
    def stderr(self) -> str:
        return "\n".join(line for _, line in self.lines)[-3000:]


def _assert_budget_reached_once_each(out: Path, budget: int) -> pd.DataFrame:
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == budget and table["ray_trial_id"].is_unique
    assert set(table["status"]) == {"COMPLETE"}
    for rel in table["predictions"]:
        assert (out / rel).is_file()
    study = optuna.load_study(study_name="mdsearch", storage=f"sqlite:///{out / 'study.db'}")
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == budget and "RUNNING" not in states
    return table


def test_trials_run_on_both_nodes_and_one_table_records_them(
    tmp_path, cluster, cache_dir, space_file
):
    out = tmp_path / "run"
    driver = Driver(cluster, "--address", cluster.address, "--out", str(out), "--space",
                    space_file, "--budget", "4", "--cache-dir", cache_dir, *TINY)  # fmt: skip
    assert driver.wait() == 0, driver.stderr
    table = _assert_budget_reached_once_each(out, 4)
    assert table["node_id"].nunique() == 2, table["node_id"]


@pytest.mark.slow
def test_a_worker_node_killed_mid_search_loses_and_repeats_no_trial(
    tmp_path, cluster, cache_dir, space_file
):
    # An extra node, killed while it trains: its trial is retried on the nodes left. Every
    # trial here first sleeps 5 s (the "slow" test hook) and a reused worker starts its next
    # trial within a fraction of a second, so 2 s after a row from the node it surely trains.
    extra = cluster.add_worker(1)
    out = tmp_path / "run"
    budget = 6
    driver = Driver(cluster, "--address", cluster.address, "--out", str(out), "--space",
                    space_file, "--budget", str(budget), "--cache-dir", cache_dir,
                    *TINY, env={TEST_FAULT_ENV: "slow:."})  # fmt: skip
    extra_id = cluster.node_id(extra)
    deadline = time.time() + 240
    while not (table_rows(out / "trials.csv")["node_id"] == extra_id).any():
        assert time.time() < deadline and driver.proc.poll() is None, driver.stderr
        time.sleep(0.05)
    # Its actor is reused for the next trial at once; kill the node while that one trains.
    time.sleep(2.0)
    killed_at = time.monotonic()
    extra.kill()
    assert driver.wait() == 0, driver.stderr
    table = _assert_budget_reached_once_each(out, budget)
    retries = [(t, line) for t, line in driver.lines if "retrying it" in line]
    assert retries, driver.stderr
    assert not (table["node_id"] == extra_id).all()
    print(f"\nworker death -> retry decided: {retries[0][0] - killed_at:.1f} s; "
          f"rows per node: {table['node_id'].str[:8].value_counts().to_dict()}")  # fmt: skip


@pytest.mark.slow
def test_a_killed_driver_resumes_on_the_cluster_to_the_budget(
    tmp_path, cluster, cache_dir, space_file
):
    out = tmp_path / "run"
    driver = Driver(cluster, "--address", cluster.address, "--out", str(out), "--space",
                    space_file, "--budget", "6", "--cache-dir", cache_dir, *TINY)  # fmt: skip
    deadline = time.time() + 240
    while len(table_rows(out / "trials.csv")) < 2:
        assert time.time() < deadline and driver.proc.poll() is None, driver.stderr
        time.sleep(0.05)
    os.kill(driver.proc.pid, signal.SIGKILL)
    driver.wait()
    before = pd.read_csv(out / "trials.csv", dtype=str)
    assert 2 <= len(before) < 6

    resumed = Driver(cluster, "--resume", str(out), "--address", cluster.address, "--no-report")
    assert resumed.wait() == 0, resumed.stderr
    after = pd.read_csv(out / "trials.csv", dtype=str)
    pd.testing.assert_frame_equal(after.iloc[: len(before)], before)
    _assert_budget_reached_once_each(out, 6)


def test_an_unreachable_address_is_a_one_line_error(tmp_path, space_file, cluster):
    out = tmp_path / "run"
    env = {k: v for k, v in cluster.driver_env().items() if k != "RAY_AUTH_TOKEN"}
    env["RAY_AUTH_MODE"] = "disabled"  # a driver without the cluster's token is turned away
    proc = subprocess.run(
        [sys.executable, "-m", "mdsearch.cli", "run", "--address", cluster.address,
         "--out", str(out), "--space", space_file, "--budget", "1", *TINY, "--quiet"],
        capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"mdsearch run: error: --address {cluster.address}: cannot join")
    assert "RAY_AUTH_TOKEN" in last
