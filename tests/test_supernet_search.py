"""`mdsearch run --strategy supernet` end to end through Ray Tune + Optuna, with a tiny proxy:
the supernet's training trial, its scores in the trial table, the stand-alone phase that trains
the best-ranked, the report, and the resume of each phase."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import optuna
import pandas as pd
import pytest
from search_fixtures import TINY_PROXY

from mdsearch.cli import main
from mdsearch.results import load_run
from mdsearch.results.supernet_candidates import rank_candidates
from mdsearch.search import (
    SUPERNET_STUDY_NAME,
    RunFolder,
    SearchSettings,
    TrialTable,
    proxy_kind,
    proxy_search_class,
)
from mdsearch.search.study import InOrder
from mdsearch.search.supernet_run import candidate_plan
from mdsearch.space import ArchSpec, load_space

TINY = [*TINY_PROXY, "--quiet"]
#: One trial at a time, and so a one-thread supernet training: a two-thread one crawls when
#: another process holds a core (OpenMP threads wait on each other).
SUPERNET = ["--strategy", "supernet", "--supernet-epochs", "1", "--max-concurrent", "1"]


def _study(out, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


def test_a_supernet_run_scores_every_architecture_then_trains_the_best_ranked(
    tmp_path, cache_dir, space_file, capsys
):
    out = tmp_path / "run"
    own = ["--supernet-random-subnets", "1", "--supernet-distill",
           "--supernet-recalibration-images", "64"]  # fmt: skip
    code = main(["run", "--out", str(out), "--space", space_file, "--budget", "3",
                 "--cache-dir", cache_dir, "--confirm", "0", *SUPERNET, *own, *TINY])  # fmt: skip
    assert code == 0, capsys.readouterr().err[-2000:]
    printed = capsys.readouterr().out
    assert "supernet scores: 4 (4 complete)" in printed and "stand-alone trials: 3" in printed

    record = json.loads((out / "supernet.json").read_text())
    assert record["epochs_done"] == 1 and len(record["history"]) == 1
    assert record["proxy_equivalents"] > 0 and record["images_per_s"] > 0
    assert record["random_subnets"] == 1 and record["distill"] is True
    assert record["recalibration_images"] == 64 and record["per_choice_depthwise"] is False
    assert (out / "supernet.pt").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["strategy"] == "supernet"
    assert config["settings"]["supernet"] == {
        "random_subnets": 1, "distill": True, "recalibration_images": 64,
        "recalibration_batch": 64, "kernel_transform": False, "per_choice_depthwise": False,
    }  # fmt: skip

    table = pd.read_csv(out / "trials.csv", dtype={"proxy": str})
    kind = proxy_kind(table)
    scores, trained = table[kind == "supernet"], table[kind == "standalone"]
    # The two-stage space has 4 architectures: scored exhaustively, each once, as sub-networks
    # of a 1-epoch supernet, with their predictions saved like a trial's.
    assert len(scores) == 4 and scores["arch"].is_unique
    assert set(scores["status"]) == {"COMPLETE"} and (scores["fidelity"] == 1).all()
    assert scores["auc"].between(0, 1).all()
    assert all((out / p).is_file() for p in scores["predictions"])
    assert table["trial"].tolist() == list(range(7))  # one numbering over both phases

    # The stand-alone phase: the baseline and the paper's network first, then the supernet's
    # best-ranked architecture (its Pareto layers, cheap first) that is not one of them.
    labels = json.loads((out / "config.json").read_text())["data"]["label_names"]
    base = ArchSpec.default("mobilenetv2_100", len(labels))
    refs = {base.canonical, base.with_stage(5, (3, 5), (1, 1)).canonical}
    ranking = rank_candidates(scores)
    expected = refs | {next(a for a in ranking if a not in refs)}
    assert len(trained) == 3 and set(trained["arch"]) == expected
    assert (trained["fidelity"] == 1).all()

    # Two studies in study.db: the scores, and the stand-alone trials (whose front is reported).
    assert len(_study(out, SUPERNET_STUDY_NAME).trials) == 4
    assert {t.user_attrs["arch"] for t in _study(out, "mdsearch").trials} == expected

    # The front and the report rest on stand-alone rows only.
    run = load_run(out)
    assert set(run.trials["arch"]) == expected
    front = pd.read_csv(out / "pareto.csv")
    assert set(front["arch"]) <= expected
    assert "Supernet" in (out / "report.md").read_text()

    # --resume with a larger budget: one more stand-alone trial; the supernet is neither
    # trained nor scored again.
    # A supernet flag given otherwise on --resume is ignored with a note, like every run setting.
    checkpoint_time = (out / "supernet.pt").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--budget", "4", "--quiet", "--no-report",
                 "--supernet-random-subnets", "3", "--supernet-distill"]) == 0  # fmt: skip
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert notes == [
        "note: --supernet-random-subnets ignored on --resume: the run keeps its "
        "random_subnets=1 (config.json)"
    ]
    assert json.loads((out / "config.json").read_text()) == config
    after = pd.read_csv(out / "trials.csv", dtype={"proxy": str})
    assert (proxy_kind(after) == "supernet").sum() == 4
    assert (proxy_kind(after) == "standalone").sum() == 4
    assert (out / "supernet.pt").stat().st_mtime_ns == checkpoint_time
    assert len(list(out.glob("supernet-*"))) == 1


@pytest.mark.slow
def test_a_supernet_training_killed_after_an_epoch_resumes_from_its_checkpoint(
    tmp_path, cache_dir, space_file
):
    out = tmp_path / "run"
    args = [*TINY_PROXY, "--train-subset", "256", "--strategy", "supernet", "--supernet-epochs",
            "2", "--supernet-scores", "3", "--budget", "2", "--confirm", "0",
            "--max-concurrent", "1", "--quiet", "--no-report"]  # fmt: skip
    cmd = [sys.executable, "-m", "mdsearch.cli", "run", "--out", str(out), "--space", space_file,
           "--cache-dir", cache_dir, *args]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not (out / "supernet.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / "supernet.pt").exists(), proc.stderr.read().decode()[-2000:]
    assert not (out / "supernet.json").exists(), "the kill came too late to test the resume"

    assert main(["run", "--resume", str(out), "--quiet", "--no-report"]) == 0
    record = json.loads((out / "supernet.json").read_text())
    # Epoch 1 came from the checkpoint (its record kept), epoch 2 was trained after the resume.
    assert record["epochs_done"] == 2 and len(record["history"]) == 2
    table = pd.read_csv(out / "trials.csv", dtype=str)
    # --supernet-scores 3 of 4 architectures: not exhaustive, so the references first, then
    # what the sampler proposes.
    scores = table[proxy_kind(table) == "supernet"]
    labels = json.loads((out / "config.json").read_text())["data"]["label_names"]
    base = ArchSpec.default("mobilenetv2_100", len(labels))
    refs = {base.canonical, base.with_stage(5, (3, 5), (1, 1)).canonical}
    assert len(scores) == 3 and refs <= set(scores["arch"])
    assert (proxy_kind(table) == "standalone").sum() == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "oneshot"], "--strategy"),
        (["--strategy", "supernet", "--early-stop", "asha"], "--early-stop asha"),
        (["--strategy", "supernet", "--supernet-epochs", "0"], "--supernet-epochs"),
        (["--strategy", "supernet", "--supernet-scores", "0"], "--supernet-scores"),
        (
            ["--strategy", "supernet", "--supernet-random-subnets", "-1"],
            "--supernet-random-subnets",
        ),
        (
            ["--strategy", "supernet", "--supernet-random-subnets", "two"],
            "--supernet-random-subnets",
        ),
        (
            ["--strategy", "supernet", "--supernet-recalibration-images", "10"],
            "--supernet-recalibration-images 10: give at least 64",
        ),
        (
            [
                "--strategy",
                "supernet",
                "--supernet-kernel-transform",
                "--supernet-per-choice-depthwise",
            ],
            "exclude each other",
        ),
    ],
)
def test_bad_supernet_flags_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    try:
        code = main(["run", "--out", str(out), *args])
    except SystemExit as exc:  # argparse's own check of a choice
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not out.exists()


def test_the_supernet_budget_defaults_to_a_third_of_the_standalone_run():
    from mdsearch.cli.main import build_parser
    from mdsearch.cli.run import _settings_from_args

    settings = _settings_from_args(build_parser().parse_args(["run", "--strategy", "supernet"]))
    assert settings.budget == 16 and settings.supernet_epochs == 8
    assert settings.scores_for(16) == 16 and settings.scores_for(16384) == 200
    assert SearchSettings.from_dict(settings.to_dict()) == settings.check()


def test_the_supernet_settings_are_flags_with_their_defaults_and_config_json_keeps_them():
    import argparse

    from mdsearch.cli.main import build_parser
    from mdsearch.cli.run import _settings_from_args
    from mdsearch.search import SupernetSettings

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {o: a.help for a in sub.choices["run"]._actions for o in a.option_strings}
    d = SupernetSettings()
    assert f"(default {d.random_subnets})" in helps["--supernet-random-subnets"]
    assert f"(default {d.recalibration_images})" in helps["--supernet-recalibration-images"]
    for flag in ("--supernet-distill", "--supernet-kernel-transform",
                 "--supernet-per-choice-depthwise"):  # fmt: skip
        assert "(default: off" in helps[flag]

    args = ["run", "--strategy", "supernet", "--supernet-per-choice-depthwise",
            "--supernet-random-subnets", "0"]  # fmt: skip
    settings = _settings_from_args(parser.parse_args(args))
    assert settings.supernet == SupernetSettings(random_subnets=0, per_choice_depthwise=True)
    assert SearchSettings.from_dict(settings.to_dict()) == settings.check()
    # config.json of a run from before the flags: the defaults it trained with
    old = {k: v for k, v in settings.to_dict().items() if k != "supernet"}
    assert SearchSettings.from_dict(old).supernet == SupernetSettings()


def test_the_explore_plan_is_followed_after_the_queued_points(space_file):
    """The stand-alone phase's searcher: the enqueued reference points run first, then the
    plan's architectures in order, each once; then the sampler proposes."""
    space = load_space(space_file)
    archs = [spec.canonical for spec in space.enumerate(num_classes=5)]
    base = ArchSpec.default(space.backbone, 5)
    order = [a for a in reversed(archs) if a != base.canonical]
    searcher = proxy_search_class()(
        space=space.distributions(), metric=["auc", "flops_m"], mode=["max", "min"],
        sampler=optuna.samplers.RandomSampler(seed=0), mdsearch_space=space, num_classes=5,
        seed=0, seen={}, interrupted=threading.Event(), explore_plan=InOrder(tuple(order)),
        points_to_evaluate=[space.encode(base)],
    )  # fmt: skip
    proposed = []
    for k in range(5):
        proposed.append(searcher.suggest(f"t{k}")["arch"])
        searcher.on_trial_complete(f"t{k}", {"auc": 0.7, "flops_m": 1200.0, "final": True})
    assert proposed[:4] == [base.canonical, *order]
    assert proposed[4] in archs  # the plan is spent: the sampler's repeat (a further seed)
    assert all(t.state.name == "COMPLETE" for t in searcher._ot_study.trials)


def test_candidates_follow_the_supernets_pareto_layers(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    rows = pd.DataFrame(
        {
            "trial": range(5),
            "arch": ["a", "b", "c", "d", "e"],
            "status": ["COMPLETE"] * 4 + ["FAILED"],
            "proxy": ["supernet"] * 5,
            "auc": [0.80, 0.85, 0.82, 0.70, 0.99],
            "flops_m": [1.0, 3.0, 2.0, 2.5, 0.5],
        }
    )
    rows.to_csv(folder.table_path, index=False)
    plan = candidate_plan(TrialTable.read(folder.table_path, []), "flops_m")
    # Front (a, c, b by cost), then d; the failed score never becomes a candidate.
    assert [plan({}), plan({"a": 1}), plan({"a": 1, "c": 1}), plan({"a": 1, "b": 1, "c": 1})] == [
        "a", "c", "b", "d"
    ]  # fmt: skip
    assert plan(dict.fromkeys("abcd", 1)) is None
