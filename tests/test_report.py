"""Reports from a hand-made run folder: files, their contents, and the errors users meet."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from run_fixtures import DEFAULT_TRIALS, FixtureTrial, arch_string, make_run_folder

from mdsearch.results import (
    LoadedRun,
    ResultsError,
    analyse_run,
    format_pareto_table,
    load_run,
    pick_architecture,
    write_report,
)
from mdsearch.space import ArchSpec

# The default fixture's front: baseline, stage5 (paper), stages 1,5.
FRONT = [arch_string(()), arch_string((5,)), arch_string((1, 5))]
OFF_FRONT = [arch_string((1,)), arch_string((1, 2, 3, 5)), arch_string((3,)), arch_string((2,))]


def _id(arch: str) -> str:
    return ArchSpec.parse(arch).arch_id


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = make_run_folder(tmp_path_factory.mktemp("runs"))
    return run, write_report(run, n_resamples=300)


def test_report_files_exist_in_the_run_folder(report):
    run, files = report
    assert {"html", "markdown", "pareto_png", "pareto_csv"} <= set(files)
    for path in files.values():
        assert path.parent == run and path.stat().st_size > 0
    assert files["pareto_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pareto_csv_holds_the_front_only_with_intervals_and_pooled_seeds(report):
    _, files = report
    table = pd.read_csv(files["pareto_csv"])
    assert table["arch"].tolist() == FRONT  # cheapest first
    assert table["seeds"].tolist() == [2, 1, 2]
    # The front ranks, and its intervals and claims are of, one estimate: the raw mean over seeds.
    assert "auc_mean" not in table
    assert (table["auc_ci_low"] < table["auc"]).all() and (
        table["auc"] < table["auc_ci_high"]
    ).all()
    assert table.loc[table["baseline"], "arch"].tolist() == [FRONT[0]]
    assert table.loc[table["paper"], "arch"].tolist() == [FRONT[1]]
    assert table["knee"].sum() == 1
    assert {"auc__Atelectasis", "auc__Effusion", "auc__Nodule"} <= set(table.columns)
    # The pooled AUC is the mean of the seeds' AUC in trials.csv; the verdict's columns say
    # what the report claims about each member.
    trials = pd.read_csv(report[0] / "trials.csv")
    seeds = trials[trials["arch"] == FRONT[2]]["auc"]
    assert table.loc[2, "auc"] == pytest.approx(seeds.mean())
    assert set(table["verdict"].fillna("")) <= {
        "",
        "unknown",
        "untested",
        "better",
        "no difference",
    }


def test_html_is_self_contained_and_shows_the_front(report):
    _, files = report
    page = files["html"].read_text()
    assert page.count("data:image/png;base64,") >= 3
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert "<script" not in page and "stylesheet" not in page
    for arch in FRONT:
        assert _id(arch) in page
    for arch in OFF_FRONT:
        assert _id(arch) not in page
    assert "Synthetic data" in page
    assert "FLOPs M @448x448" in page


def test_markdown_has_the_front_table_settings_and_plots(report):
    _, files = report
    text = files["markdown"].read_text()
    assert "Synthetic data" in text and "(pareto.png)" in text
    rows = [line for line in text.splitlines() if any(_id(a) in line for a in FRONT)]
    assert len(rows) >= 3
    assert "| proxy.resolution | 64 |" in text
    assert "RuntimeError: out of memory" in text  # the failed trial's error is reported
    # MD-Conv per stage: front vs all; stage5 marked: its maps at the 64 px proxy are 2x2
    assert "| stage5 (!) | 2x2: too small | 2 (67%) | 3 (60%) |" in text


def test_terminal_table_lists_the_front_and_the_counts(tmp_path):
    run = make_run_folder(tmp_path)
    text = format_pareto_table(run, n_resamples=100)
    assert "9 trials (7 complete, 1 failed, 1 stopped early)" in text
    assert all(_id(a) in text for a in FRONT)
    assert not any(_id(a) in text for a in OFF_FRONT)
    assert "hypervolume" in text and "Synthetic data" in text


def test_real_data_run_has_no_synthetic_notice_and_out_dir_is_respected(tmp_path):
    run = make_run_folder(tmp_path, DEFAULT_TRIALS[:4], synthetic=False, predictions=False)
    files = write_report(run, tmp_path / "elsewhere")
    assert files["html"].parent == tmp_path / "elsewhere"
    page = files["html"].read_text()
    assert "Synthetic data" not in page
    assert "no predictions file" in page  # AUC shown without an interval, and why


def test_picks_on_a_run(tmp_path):
    run = make_run_folder(tmp_path)
    assert pick_architecture(run, "flops<=1230", n_resamples=0).name == FRONT[1]
    assert pick_architecture(run, "auc>=0.8", n_resamples=0).name == FRONT[2]
    analysis = analyse_run(run, n_resamples=0)
    assert analysis.pick("knee").name == analysis.knee
    with pytest.raises(ResultsError, match=f"nearest is {_id(FRONT[0])}"):
        analysis.pick("flops<=1000")
    with pytest.raises(ResultsError, match="not understood"):
        analysis.pick("flops==1000")


def test_pick_by_architecture_id_as_the_help_offers(tmp_path):
    run = make_run_folder(tmp_path)
    analysis = analyse_run(run, n_resamples=0)
    assert analysis.pick(_id(FRONT[1])).name == FRONT[1]
    assert analysis.pick(_id(FRONT[1])[:6].upper()).name == FRONT[1]  # a unique prefix
    assert analysis.pick(_id(OFF_FRONT[0])).name == OFF_FRONT[0]  # evaluated, not on the front
    with pytest.raises(ResultsError, match="no architecture of this run has that id"):
        analysis.pick("0123456789")


def test_missing_run_folder(tmp_path):
    with pytest.raises(ResultsError, match="does not exist"):
        write_report(tmp_path / "nope")


def test_run_folder_without_trials(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(ResultsError, match="no trials.csv"):
        format_pareto_table(tmp_path / "run")
    (tmp_path / "run" / "trials.csv").write_text(
        "trial,arch,status,fidelity,target_fidelity,auc,flops_m\n"
    )
    with pytest.raises(ResultsError, match="no trials yet"):
        write_report(tmp_path / "run")


def test_empty_front_says_why(tmp_path):
    failed = [
        FixtureTrial((), float("nan"), 1223.0, status="FAILED", fidelity=0.0, error="boom")
    ] * 5
    with pytest.raises(ResultsError, match=r"all 5 trials failed \(first error: boom\)"):
        write_report(make_run_folder(tmp_path, failed, name="failed"))
    stopped = [FixtureTrial((), 0.7, 1223.0, status="STOPPED", fidelity=1.0)] * 2
    with pytest.raises(ResultsError, match="all 2 trials were stopped early"):
        write_report(make_run_folder(tmp_path, stopped, name="stopped"))
    mixed = failed[:1] + stopped[:1] + [FixtureTrial((), 0.7, 1223.0, fidelity=1.0)]
    with pytest.raises(ResultsError, match="1 failed, 1 stopped early, 1 complete but below"):
        analyse_run(make_run_folder(tmp_path, mixed, name="mixed"))


def test_report_without_the_baseline_says_so(tmp_path):
    run = make_run_folder(
        tmp_path, [FixtureTrial((5,), 0.8, 1228.0), FixtureTrial((1, 5), 0.85, 1241.0)]
    )
    analysis = analyse_run(run, n_resamples=100)
    assert analysis.front["vs_baseline"].isna().all()
    assert any("baseline" in note for note in analysis.notes)
    assert "not evaluated" in write_report(run)["markdown"].read_text()


def test_a_row_cut_off_by_a_crash_is_ignored(tmp_path):
    run = make_run_folder(tmp_path, DEFAULT_TRIALS[:4])
    with open(run / "trials.csv", "a") as f:
        f.write("4,mobilenetv2_100:c3:k3")  # no newline, most columns missing
    trials = analyse_run(run, n_resamples=0).run.trials
    assert trials["trial"].tolist() == [0, 1, 2, 3]


def test_a_proxy_check_in_the_run_folder_goes_into_the_report(tmp_path):
    import json

    import numpy as np

    from mdsearch.results import summarise_proxy_check
    from mdsearch.search.proxy_check import PROXY_CHECK_SCHEMA

    run = make_run_folder(tmp_path)
    auc = {1: np.array([[0.70, 0.72], [0.75, 0.74]]), 4: np.array([[0.80, 0.81], [0.85, 0.84]])}
    check = {
        "schema": PROXY_CHECK_SCHEMA,
        "archs": [
            {"label": "baseline", "arch": arch_string(), "id": "b", "flops_m": 1198.0},
            {"label": "paper", "arch": arch_string((5,)), "id": "p", "flops_m": 1201.9},
        ],
        **summarise_proxy_check(auc, 4, n_resamples=50),
    }
    (run / "proxy_check.json").write_text(json.dumps(check))
    files = write_report(run)
    assert "## Proxy fidelity" in files["markdown"].read_text()
    assert "Proxy fidelity" in files["html"].read_text()
    # Without a check, no such section.
    (run / "proxy_check.json").unlink()
    assert "Proxy fidelity" not in write_report(run)["markdown"].read_text()


def test_stage_effects_section_table_and_plot(report):
    _, files = report
    text = files["markdown"].read_text()
    assert "## Stage effects: every explored architecture at once" in text
    assert "(stage_effects.png)" in files["markdown"].read_text()
    assert files["effects_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(files["effects_csv"])
    # The fixture varies stages 1, 2, 3 and 5, but 2 and 3 only together (in one dominated
    # arch): stage 3's effect cannot be told from stage 2's and is reported as such.
    assert set(table["stage"]) == {1, 2, 5}
    assert "stage 3 is not separable" in text
    # Stage 5 runs on 4x4 -> 2x2 maps at the fixture's 64 px: not identifiable, no interval.
    seen = table[table["identifiable"]]
    assert set(seen["stage"]) == {1, 2} and table.loc[~table["identifiable"], "low"].isna().all()
    assert (seen["low"] <= seen["effect"]).all() and (seen["effect"] <= seen["high"]).all()
    assert "Leave-one-architecture-out" in text or "Too few architectures" in text


def test_a_run_without_repeats_judges_no_difference(tmp_path):
    once = [t for t in DEFAULT_TRIALS if t.status == "COMPLETE"][:5]
    run = make_run_folder(tmp_path, once)
    analysis = analyse_run(run, n_resamples=200)
    assert not analysis.seed_noise.known
    assert not any(analysis.front["vs_baseline_distinct"].fillna(False))
    text = format_pareto_table(run, n_resamples=200)
    assert "seed noise unknown" in text and "proxy-check" in text
    assert "distinct" not in text.replace("not judged", "")


def test_the_report_states_the_wall_time(report):
    _, files = report
    # config.json created 00:00, last trial finished 00:08 (tests/run_fixtures.py).
    line = "Wall time: 8 min 00 s (2025-01-01 00:00 to 00:08 UTC)"
    assert line in files["markdown"].read_text() and line in files["html"].read_text()


def test_a_resumed_run_says_its_wall_time_spans_the_pause(tmp_path):
    run = make_run_folder(tmp_path, DEFAULT_TRIALS[:4])
    (run / "tune-0").mkdir()
    (run / "tune-1").mkdir()
    wall = analyse_run(run, n_resamples=0).wall_time
    assert wall.seconds == 180 and wall.sessions == 2
    assert "over 2 sessions (resumed 1 time): the span includes the pauses" in wall.text()
    # A table without finish times (made by hand, or by a replay) has no wall time, no error.
    trials = load_run(run).trials.drop(columns=["finished_at"])
    assert (
        analyse_run(LoadedRun(run, load_run(run).config, trials), n_resamples=0).wall_time is None
    )


def test_the_paper_architecture_has_its_own_table_when_evaluated(report, tmp_path):
    _, files = report
    text = files["markdown"].read_text()
    section = text.split("## The paper's architecture")[1].split("\n## ")[0]
    paper_row = next(line for line in section.splitlines() if line.startswith("| paper"))
    assert _id(FRONT[1]) in paper_row and "1228.0" in paper_row
    # One seed of the paper's network: its difference is shown, but not judged (a claim needs 3
    # seeds paired with the baseline's).
    assert re.search(r"\| yes \| not judged \(1 seed\) \|", paper_row), paper_row
    assert any(line.startswith("| baseline: no MD-Conv") for line in section.splitlines())
    # A run that never trained the paper's architecture says so instead.
    run = make_run_folder(tmp_path, [t for t in DEFAULT_TRIALS if t.stages != (5,)])
    text = write_report(run, n_resamples=0)["markdown"].read_text()
    assert "The paper's architecture (MD-Conv 3x3+5x5 1:1 in stage5 only) was not evaluated" in text


def test_hypervolume_history_is_on_the_pooled_estimates_as_of_each_trial(tmp_path):
    import numpy as np

    from mdsearch.results import hypervolume, non_dominated

    trials = [
        FixtureTrial((), 0.66, 1223.0),
        FixtureTrial((5,), 0.85, 1228.0),  # a lucky first seed: joins the front
        FixtureTrial((1, 5), 0.80, 1241.0),  # dominated by stage5's first seed
        FixtureTrial((5,), 0.60, 1228.0),  # its second seed pulls its mean down
        FixtureTrial((5,), 0.95, 1228.0),  # its third seed raises it again
    ]
    run = make_run_folder(tmp_path, trials)
    analysis = analyse_run(run, n_resamples=0, shrink=False)
    table = analysis.run.trials
    ref = np.array([-analysis.reference["auc"], analysis.reference["flops_m"]])
    for t in range(len(trials)):
        so_far = table.iloc[: t + 1].groupby("arch")[["auc", "flops_m"]].mean()
        points = np.c_[-so_far["auc"], so_far["flops_m"]]
        want = hypervolume(points[non_dominated(points)], ref)
        assert analysis.history["hypervolume"].iloc[t] == pytest.approx(want)
    assert analysis.history["fell"].tolist() == [False, False, False, True, False]
    assert analysis.history["repeat"].tolist() == [False, False, False, True, True]
    text = write_report(run, n_resamples=0)["markdown"].read_text()
    caption = text.split("## Hypervolume over trials")[1].split("\n## ")[0]
    assert "computed on the estimates as of that trial" in caption
    assert "1 such fall here" in caption


def test_stages_the_proxy_resolution_cannot_rank_are_marked_next_to_the_stage_table(report):
    _, files = report
    text = files["markdown"].read_text()
    section = text.split("## Where MD-Conv sits")[1].split("\n## ")[0]
    # The paper space at 64 px: stage3 ends on 4x4 maps, stage5 on 2x2; both search 5x5.
    assert "| stage3 (!) | 4x4: too small |" in section and "| stage1 | 16x16 |" in section
    assert "> **Warning:** Stages marked (!)" in section
    assert "stage5 runs on 2x2 maps at --resolution 64" in section
    assert "stage1 runs" not in section
    assert "stage5 (!)" in files["html"].read_text()


def test_a_proxy_at_a_resolution_that_shows_every_kernel_marks_no_stage(tmp_path):
    import json

    run = make_run_folder(tmp_path, DEFAULT_TRIALS[:4])
    config = json.loads((run / "config.json").read_text())
    config["proxy"]["resolution"] = 224  # stage5 on 7x7 maps: larger than 5x5
    (run / "config.json").write_text(json.dumps(config))
    text = write_report(run, n_resamples=0)["markdown"].read_text()
    assert "(!)" not in text and "| stage5 | 7x7 |" in text


def test_settings_are_listed_once(tmp_path):
    import json
    import shutil
    from pathlib import Path

    run = tmp_path / "v1_run"
    shutil.copytree(Path(__file__).parent / "fixtures" / "v1_run", run)
    config = json.loads((run / "config.json").read_text())
    assert config["settings"]["proxy"] == config["proxy"]  # config.json holds both
    text = write_report(run, n_resamples=0)["markdown"].read_text()
    settings = text.split("## Settings and data")[1]
    assert "settings.proxy" not in settings and settings.count("| proxy.epochs |") == 1
    assert "settings.objectives" not in settings and "| objectives | auc, flops |" in settings
    assert "| settings.data | phantom,n=300 |" in settings  # as typed: not the same as data.*
