"""`mdsearch run --objectives`: measured latency as a search objective, end to end.

The latency table is prefilled (stub times, written into a temporary MDSEARCH_CACHE_DIR) and the
real timer is replaced by one that fails the test if called: a search must take every latency
from the table and time nothing itself. One search (~15 s: Ray start-up plus 4 tiny proxies)
backs the end-to-end checks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from search_fixtures import TINY_PROXY, TWO_STAGE_SPACE

from mdsearch.cli import main
from mdsearch.search import (
    RunError,
    RunFolder,
    SearchSettings,
    parse_objectives,
    prepare,
    ray_session,
    search_latency_table,
)
from mdsearch.search.latency_for_search import run_latency_table
from mdsearch.space import ArchSpec, load_space

TINY = [*TINY_PROXY, "--quiet"]


LATENCY_SIZE = 64  # small: building the table's shapes and variants stays cheap


def stub_ms(module, x) -> float:
    """A deterministic 'time' that differs between variants (parameter count), in ms."""
    return 0.05 + 1e-5 * sum(p.numel() for p in module.parameters())


class NoTiming:
    """Stands in for the real timer: counts calls (a search must make none)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, module, x) -> float:
        self.calls += 1
        return stub_ms(module, x)


def _write_space(folder: Path) -> str:
    path = folder / "space.yaml"
    path.write_text(TWO_STAGE_SPACE)
    return str(path)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A 3-objective search over a 2-stage space with a prefilled latency table."""
    root = tmp_path_factory.mktemp("objectives")
    space_file = _write_space(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MDSEARCH_CACHE_DIR", str(root / "usercache"))
        settings = SearchSettings(space=space_file, latency_size=LATENCY_SIZE)
        table = search_latency_table(settings, load_space(space_file), timer=stub_ms)
        timer = NoTiming()
        mp.setattr("mdsearch.mdconv.stage_table.time_module", timer)  # the table's default timer
        out = root / "run"
        code = main(
            ["run", "--out", str(out), "--space", space_file, "--budget", "4",
             "--cache-dir", str(root / "data"), "--objectives", "auc,flops,latency",
             "--latency-size", str(LATENCY_SIZE), "--sampler", "random", *TINY]
        )  # fmt: skip
    return {"code": code, "out": out, "table": table, "timer": timer}


def test_three_objective_search_takes_latency_from_the_table(searched):
    assert searched["code"] == 0
    assert searched["timer"].calls == 0
    out, table = searched["out"], searched["table"]
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 4 and set(trials["status"]) == {"COMPLETE"}
    expected = [table.predict(ArchSpec.parse(a)) for a in trials["arch"]]
    assert trials["latency_ms"].to_numpy() == pytest.approx(expected)
    assert trials["latency_ms"].nunique() > 1  # the stub gives MD-Conv variants other times

    config = json.loads((out / "config.json").read_text())
    assert config["objectives"] == ["auc", "flops", "latency"]
    lat = config["latency"]
    assert (lat["input_size"], lat["batch_size"], lat["threads"]) == (LATENCY_SIZE, 1, 1)
    assert Path(lat["path"]) == table.path and lat["table"]["stages"] == table.stages

    study = optuna.load_study(study_name="mdsearch", storage=f"sqlite:///{out / 'study.db'}")
    D = optuna.study.StudyDirection
    assert study.directions == [D.MAXIMIZE, D.MINIMIZE, D.MINIMIZE]
    assert study.metric_names == ["auc", "flops_m", "latency_ms"]
    by_arch_seed = {(r.arch, r.seed): r for r in trials.itertuples()}
    for t in study.trials:
        row = by_arch_seed[(t.user_attrs["arch"], t.user_attrs["seed"])]
        assert t.values == pytest.approx([row.auc, row.flops_m, row.latency_ms])


def test_resume_reuses_the_table_in_config_json(searched, tmp_path, monkeypatch):
    monkeypatch.setenv("MDSEARCH_CACHE_DIR", str(tmp_path))  # an empty cache: nothing to reuse
    timer = NoTiming()
    monkeypatch.setattr("mdsearch.mdconv.stage_table.time_module", timer)
    folder = RunFolder(searched["out"])
    settings = SearchSettings.from_dict(folder.read_config()["settings"])
    assert settings.objectives == ("auc", "flops", "latency")
    prepared = prepare(settings, folder.path, resume=True)
    table = run_latency_table(
        prepared.settings, prepared.space, prepared.folder, resume=True, say=print
    )
    assert timer.calls == 0 and table.stages == searched["table"].stages


def _brute_force_front(archs: pd.DataFrame, columns: list[str], signs: list[float]) -> set[str]:
    values = archs[columns].to_numpy(dtype=float) * np.array(signs)
    front = set()
    for i, a in enumerate(values):
        dominated = any(np.all(b <= a) and np.any(b < a) for j, b in enumerate(values) if j != i)
        if not dominated:
            front.add(archs.index[i])
    return front


def test_report_has_the_3d_front_and_both_projections(searched):
    out = searched["out"]
    for name in ("report.html", "report.md", "pareto.png", "pareto_latency.png", "pareto.csv"):
        assert (out / name).is_file(), name
    md = (out / "report.md").read_text()
    assert "(pareto.png)" in md and "(pareto_latency.png)" in md
    assert "hypervolume (3-D)" in md and "latency_ms" in md
    assert (out / "report.html").read_text().count("data:image/png;base64") >= 4

    trials = pd.read_csv(out / "trials.csv")
    archs = trials.groupby("arch")[["auc", "flops_m", "latency_ms"]].mean()
    front = _brute_force_front(archs, ["auc", "flops_m", "latency_ms"], [-1, 1, 1])
    csv = pd.read_csv(out / "pareto.csv")
    assert set(csv["arch"]) == front
    assert csv["latency_ms"].notna().all()


def test_pareto_command_shows_latency(searched, capsys):
    assert main(["pareto", str(searched["out"]), "--resamples", "0"]) == 0
    text = capsys.readouterr().out
    assert f"latency ms @{LATENCY_SIZE}x{LATENCY_SIZE}" in text and "hypervolume (3-D)" in text


def test_auc_latency_report_plots_auc_against_latency(searched, tmp_path):
    from mdsearch.results import analyse_run, write_report

    files = write_report(searched["out"], tmp_path, objectives=["auc", "latency"], n_resamples=0)
    assert "pareto_latency_png" not in files and files["pareto_png"].is_file()
    analysis = analyse_run(searched["out"], objectives=["auc", "latency"], n_resamples=0)
    archs = pd.read_csv(searched["out"] / "trials.csv").groupby("arch")[["auc", "latency_ms"]]
    assert set(analysis.front.index) == _brute_force_front(
        archs.mean(), ["auc", "latency_ms"], [-1, 1]
    )


@pytest.mark.parametrize("value", ["auc,speed", "flops,latency", "auc", "auc,flops,flops"])
def test_bad_objectives_are_one_line_exit_2_before_ray(tmp_path, capsys, monkeypatch, value):
    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(ray_session, "start_ray", no_ray)
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--objectives", value, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--objectives {value}" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "device, message",
    [("tpu", "--latency-device 'tpu' is unknown"), ("cuda", "--latency-device cuda: torch sees")],
)
def test_bad_latency_device_is_one_line_exit_2_before_ray(
    tmp_path, capsys, monkeypatch, device, message
):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the cuda table would be timed")
    monkeypatch.setattr(ray_session, "start_ray", lambda *a, **k: pytest.fail("Ray was started"))
    out = tmp_path / "run"
    args = ["run", "--out", str(out), "--objectives", "auc,latency", "--latency-device", device]
    assert main([*args, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not out.exists()


def test_latency_device_reaches_the_table_and_the_run_config(tmp_path, monkeypatch):
    """--latency-device picks the table (device in its cache key) and config.json records it; a
    config.json from before the flag loads as cpu."""
    monkeypatch.setenv("MDSEARCH_CACHE_DIR", str(tmp_path))
    space_file = _write_space(tmp_path)
    settings = SearchSettings(space=space_file, latency_size=LATENCY_SIZE, latency_device="cpu")
    table = search_latency_table(settings, load_space(space_file), timer=stub_ms)
    assert table.key["device"] == "cpu"
    assert SearchSettings.from_dict(settings.to_dict()).latency_device == "cpu"
    old = {k: v for k, v in settings.to_dict().items() if k != "latency_device"}
    assert SearchSettings.from_dict(old).latency_device == "cpu"


def test_objective_names_accept_columns_and_case():
    assert parse_objectives("AUC, latency_ms") == ("auc", "latency")
    assert parse_objectives(["auc", "flops_m", "latency"]) == ("auc", "flops", "latency")
    with pytest.raises(RunError, match="auc first"):
        parse_objectives("latency,auc")


def test_missing_table_entries_are_timed_once_then_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("MDSEARCH_CACHE_DIR", str(tmp_path))
    space_file = _write_space(tmp_path)
    space = load_space(space_file)
    settings = SearchSettings(space=space_file, latency_size=LATENCY_SIZE)
    said: list[str] = []
    timer = NoTiming()
    table = search_latency_table(settings, space, timer=timer, say=said.append)
    # stem + head + one variant per stage + the second choice of stages 1 and 5 + the whole
    # default network (the table's overhead term)
    n = 2 + len(space.choices) + 2 + 1
    assert timer.calls == n and len(said) == 1
    assert f"timing {n - 3} block variants (and stem, head, whole network)" in said[0]
    assert table.path is not None and table.path.is_file()
    again = search_latency_table(settings, space, timer=timer, say=said.append)
    assert timer.calls == n and len(said) == 1 and again.stages == table.stages


def test_an_older_table_without_latency_column_stays_aligned(tmp_path):
    folder = RunFolder(tmp_path)
    old = "trial,ray_trial_id,arch,status,auc,flops_m,error,auc__A\n0,x,a,COMPLETE,0.7,300,,0.7\n"
    folder.table_path.write_text(old)
    folder.append_row(
        {"trial": 1, "ray_trial_id": "y", "arch": "b", "status": "COMPLETE", "auc": 0.8,
         "flops_m": 310, "latency_ms": 5.0, "auc__A": 0.8},
        ["A"],
    )  # fmt: skip
    table = folder.read_table()
    assert list(table["arch"]) == ["a", "b"] and list(table["flops_m"]) == [300, 310]
    assert list(table["auc__A"]) == [0.7, 0.8]
