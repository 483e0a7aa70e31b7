"""A run folder written before the redesign (issue 12) still reports and resumes.

``tests/fixtures/v1_run`` was written by commit 39cf6bd (see ``tests/fixtures/README.md``): four
trials of the two-stage space on the phantom set. Each test works on a copy in ``tmp_path``, from
a working directory that also holds the space file, because the run's config.json names the
space file and the image cache by relative paths, as they were given to that run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest

from mdsearch.cli import main

FIXTURES = Path(__file__).resolve().parent / "fixtures"
V1_RUN = FIXTURES / "v1_run"
SPACE_FILE = "two_stage_space.yaml"

#: The old run's front (objectives auc and flops): the plain network (cheapest) and MD-Conv in
#: stage 5; MD-Conv in stage 1 is dominated.
V1_FRONT = {"0ea7a674ef", "aaff45e8f0"}
V1_DOMINATED = "27ae875542"


@pytest.fixture()
def v1_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the v1 run folder, with the working directory where its relative paths hold."""
    run = tmp_path / "v1_run"
    shutil.copytree(V1_RUN, run)
    shutil.copy(FIXTURES / SPACE_FILE, tmp_path / SPACE_FILE)
    monkeypatch.chdir(tmp_path)
    return run


def test_the_fixture_is_the_old_run():
    # Guards the fixture itself: four complete trials, no lock or Ray folder committed.
    table = pd.read_csv(V1_RUN / "trials.csv")
    assert len(table) == 4 and set(table["status"]) == {"COMPLETE"}
    assert sorted(p.name for p in V1_RUN.iterdir()) == [
        "config.json",
        "predictions",
        "study.db",
        "trials.csv",
    ]
    assert len(list((V1_RUN / "predictions").glob("*.npz"))) == 4


def test_v1_run_reports(v1_run, capsys):
    assert main(["pareto", str(v1_run), "--resamples", "0"]) == 0
    table = capsys.readouterr().out
    assert "4 trials (4 complete" in table and "2 on the Pareto front" in table
    assert all(arch_id in table for arch_id in V1_FRONT) and V1_DOMINATED not in table

    assert main(["report", str(v1_run), "--resamples", "20"]) == 0
    for name in ("report.html", "report.md", "pareto.csv", "pareto.png"):
        assert (v1_run / name).is_file(), name
    front = pd.read_csv(v1_run / "pareto.csv", dtype=str)
    assert set(front["arch_id"]) == V1_FRONT


def test_v1_run_resumes_to_a_larger_budget(v1_run, tmp_path):
    before = pd.read_csv(v1_run / "trials.csv", dtype=str, keep_default_na=False)
    cache = tmp_path / "cache-new"
    code = main(["run", "--resume", str(v1_run), "--budget", "6", "--cache-dir", str(cache),
                 "--quiet", "--no-report"])  # fmt: skip
    assert code == 0

    after = pd.read_csv(v1_run / "trials.csv", dtype=str, keep_default_na=False)
    assert len(after) == 6
    assert list(after.columns) == list(before.columns)
    pd.testing.assert_frame_equal(after.iloc[: len(before)], before)  # old rows untouched

    new = after.iloc[len(before) :]
    assert list(new["trial"]) == ["4", "5"] and after["ray_trial_id"].is_unique
    assert set(new["status"]) == {"COMPLETE"}
    # Every column the old code filled for every trial, the new code fills too.
    always_filled = [c for c in before.columns if (before[c] != "").all()]
    missing = {c: list(new[c]) for c in always_filled if (new[c] == "").any()}
    assert not missing, f"columns the old rows fill but the new ones leave empty: {missing}"
    assert set(new["resolution"]) == {"32"} and set(new["input_size"]) == {"448"}
    for path in new["predictions"]:
        assert (v1_run / path).is_file()

    study = optuna.load_study(study_name=None, storage=f"sqlite:///{v1_run / 'study.db'}")
    assert len(study.trials) == 6

    # The resumed run still reports.
    assert main(["pareto", str(v1_run), "--resamples", "0"]) == 0


def test_a_resumed_run_keeps_the_label_rule_its_trials_were_scored_with(v1_run, monkeypatch):
    """The v1 run scored every label with both classes (its config.json has no label_rule):
    its resumed trials must too, or old and new rows of one table would mean different things."""
    from mdsearch.search import BOTH_CLASSES, LABEL_RULE, ray_session

    contexts = []
    monkeypatch.setattr(ray_session, "start_ray", lambda address: False)
    monkeypatch.setattr(
        ray_session, "run_trials", lambda settings, space, folder, context, plan, **kw: contexts.append(context)
    )  # fmt: skip
    args = ["--budget", "6", "--cache-dir", "cache-new", "--quiet", "--no-report"]
    assert main(["run", "--resume", str(v1_run), *args]) == 0
    assert contexts[-1].label_rule == BOTH_CLASSES
    assert main(["run", "--data", "phantom,n=300", "--out", "new_run", *args]) == 0
    assert contexts[-1].label_rule == LABEL_RULE
