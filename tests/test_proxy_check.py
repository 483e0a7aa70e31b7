"""mdsearch proxy-check: its settings (the shared limits), its architectures, its flags and their
bad-input errors, and tiny end-to-end runs (phantom, 32 px), one into a run folder. The statistics
are tested in test_proxy_fidelity.py."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from mdsearch.cli import main
from mdsearch.cli.proxy_check import parse_epochs
from mdsearch.results import (
    Document,
    ResultsError,
    fidelity_section,
    format_fidelity_markdown,
    render_html,
)
from mdsearch.results.fidelity import lead_within_seed_noise, load_proxy_check, proxy_seed_std
from mdsearch.results.proxy_fidelity import seed_noise
from mdsearch.search.proxy_check import (
    PROXY_CHECK_FILE,
    PROXY_CHECK_MARKDOWN_FILE,
    ProxyCheckError,
    ProxyCheckSettings,
    run_proxy_check,
    sample_architectures,
)
from mdsearch.search.settings import PROXY_DATA, PROXY_RECIPE, DataSettings, TrainRecipe
from mdsearch.space import load_space

TINY = ["--data", "phantom,n=300", "--resolution", "32", "--train-subset", "64"]
TINY += ["--batch-size", "32"]
TINY_DATA = DataSettings("phantom,n=300", resolution=32)
TINY_RECIPE = TrainRecipe(train_subset=64, batch_size=32)


# -- architectures and bad inputs -------------------------------------------------------------


def test_sampled_architectures_start_with_the_references_and_are_distinct_and_seeded():
    space = load_space("default")
    archs = sample_architectures(space, 6, seed=3, num_classes=5)
    labels = [label for label, _ in archs]
    assert labels[:3] == ["baseline", "paper", "sample 1"]
    specs = [spec for _, spec in archs]
    assert specs[0].mdconv_stages == () and specs[1].mdconv_stages == (5,)
    assert len({s.canonical for s in specs}) == 6
    assert all(space.contains(s) and s.num_classes == 5 for s in specs)
    assert sample_architectures(space, 6, seed=3, num_classes=5) == archs
    assert sample_architectures(space, 6, seed=4, num_classes=5) != archs
    paper = load_space("paper")
    assert len(sample_architectures(paper, 16)) == 16  # the whole space, no endless redraws
    with pytest.raises(ProxyCheckError, match="holds only 16"):
        sample_architectures(paper, 17)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--archs", "1"], "--archs 1"),
        (["--seeds", "0"], "--seeds 0"),
        (["--short", "2,4", "--long", "4"], "--long 4 is not longer"),
        (["--short", "0", "--long", "4"], "epochs must be 1 or more"),
        (["--short", "two"], "--short 'two'"),
        (["--long", "4,8"], "one epoch count"),
        (["--run", "no-such-run"], "not a run folder"),
        # The limits every training shares (DataSettings / TrainRecipe), not looser ones.
        (["--batch-size", "1"], "--batch-size 1"),
        (["--resolution", "8"], "--resolution 8"),
        (["--train-subset", "16"], "smaller than --batch-size"),
        (["--data", "nosuch"], "nosuch"),
    ],
)
def test_bad_flags_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "out"
    code = main(["proxy-check", *TINY, "--out", str(out), *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and "\n" not in err
    assert not out.exists()


def test_parse_epochs_accepts_spaces():
    assert parse_epochs(" 1, 2 ,4") == (1, 2, 4)


def test_settings_check_themselves_with_the_shared_limits():
    ProxyCheckSettings(data=TINY_DATA, proxy=TINY_RECIPE).check()
    with pytest.raises(ProxyCheckError, match="--long 2 is not longer"):
        ProxyCheckSettings(short=(2,), long=2).check()
    with pytest.raises(ValueError, match="--batch-size 1"):
        ProxyCheckSettings(proxy=replace(TINY_RECIPE, batch_size=1)).check()


def test_help_shows_the_defaults_of_the_settings_classes(capsys):
    with pytest.raises(SystemExit):
        main(["proxy-check", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    d = ProxyCheckSettings()
    for shown in (
        f"px (default {PROXY_DATA.resolution}, or the saved run's)",
        f"images per optimizer step (default {PROXY_RECIPE.batch_size}",
        f"(default {PROXY_RECIPE.train_subset}, or the saved run's)",
        f"K architectures (default {d.archs})",
        f"default max({d.long}, 4 x longest short)",
        f"N_RESAMPLES default {d.n_resamples}",
    ):
        assert shown in text, shown
    for flag in ("--run", "--out", "--seed", "--val-fraction", "--cache-dir", "--ci-over",
                 "--schedule", "--optimizer", "--weight-decay", "--lr", "--val-subset",
                 "--device", "--quiet", "--space", "--backbone", "--short", "--long"):  # fmt: skip
        assert flag in text, flag


def test_constant_schedule_reads_short_aucs_from_the_long_runs():
    from mdsearch.search.proxy import proxy_train

    recipe = replace(TINY_RECIPE, schedule="constant")
    settings = ProxyCheckSettings(
        data=TINY_DATA, proxy=recipe, space="paper", archs=2, seeds=1, short=(1,), long=2
    )
    run = run_proxy_check(settings, quiet=True)
    assert run.settings.reuses_long_runs and run.trainings == 2
    assert run.to_dict()["reused_long_runs"] is True
    # Under a constant schedule a 1-epoch proxy IS the long run's first epoch.
    ds = TINY_DATA.load(progress=False)
    spec = sample_architectures(load_space("paper"), 2, num_classes=len(ds.label_names))[1][1]
    alone = proxy_train(spec, ds, replace(recipe, epochs=1), seed=0)
    assert run.auc[1][1, 0] == pytest.approx(alone.auc, abs=1e-6)


def test_a_check_without_a_run_writes_into_out(tmp_path, capsys):
    out = tmp_path / "check"
    argv = ["proxy-check", *TINY, "--space", "paper", "--archs", "2", "--seeds", "1"]
    assert main([*argv, "--short", "1", "--long", "2", "--resamples", "0", "--out", str(out),
                 "--quiet"]) == 0  # fmt: skip
    assert f"written: {out / PROXY_CHECK_FILE}, {out / PROXY_CHECK_MARKDOWN_FILE}" in (
        capsys.readouterr().out
    )
    data = json.loads((out / PROXY_CHECK_FILE).read_text())
    p = data["parameters"]
    # proxy_check.json keeps its layout: the data settings flat, the recipe under "proxy" with
    # the resolution and the torch threads, without its epochs.
    assert (p["data"], p["seed"], p["val_fraction"]) == ("phantom,n=300", 0, 0.2)
    assert p["cache_dir"] is None and p["space"] == "paper" and p["backbone"] is None
    assert p["short"] == [1] and p["long"] == 2 and p["run_proxy_epochs"] is None
    assert p["proxy"]["resolution"] == 32 and p["proxy"]["threads"] == 1
    assert "epochs" not in p["proxy"] and p["proxy"]["batch_size"] == 32
    assert data["trainings"] == 2 * 1 * 2 and data["recommended"] in (None, 1)
    assert sorted(f.name for f in out.iterdir()) == [PROXY_CHECK_FILE, PROXY_CHECK_MARKDOWN_FILE]


# -- end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checked_run(tmp_path_factory):
    """A fake search run (config.json only) with a 1-epoch proxy, then proxy-check --run on it."""
    from mdsearch.search.run_settings import SearchSettings

    run = tmp_path_factory.mktemp("run")
    settings = SearchSettings(data=TINY_DATA, proxy=replace(TINY_RECIPE, epochs=1))
    (run / "config.json").write_text(json.dumps({"settings": settings.to_dict()}))
    argv = ["proxy-check", "--run", str(run), "--archs", "3", "--seeds", "2", "--long", "2"]
    return run, argv


def test_proxy_check_end_to_end_into_a_run_folder(checked_run, capsys):
    run, argv = checked_run
    assert main([*argv, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "paper" in out and "Kendall tau" in out
    assert "± " in out
    data = json.loads((run / "proxy_check.json").read_text())
    # Unset flags came from the run; its 1-epoch proxy is the short setting.
    assert data["parameters"]["proxy"]["resolution"] == 32
    assert data["parameters"]["short"] == [1] and data["parameters"]["run_proxy_epochs"] == 1
    assert [a["label"] for a in data["archs"]] == ["baseline", "paper", "sample 1"]
    assert data["trainings"] == 3 * 2 * 2
    for epochs in ("1", "2"):
        auc = np.array(data["auc"][epochs], dtype=float)
        assert auc.shape == (3, 2) and np.all((auc >= 0) & (auc <= 1))
        row = data["settings"][epochs]
        assert row["seed_std"] == pytest.approx(seed_noise(auc)[0])
    tau = data["settings"]["1"]["tau"]
    assert -1 <= tau["tau"] <= 1 and len(tau["per_seed"]) == 2
    # What the report gets.
    md = format_fidelity_markdown(load_proxy_check(run))
    assert md.startswith("## Proxy fidelity") and md == (run / "proxy_check.md").read_text().strip()
    assert proxy_seed_std(run) == pytest.approx(data["settings"]["1"]["seed_std"])


def test_seed_noise_figure_for_the_report():
    check = {"schema": "mdsearch.proxy_check/1", "settings": {"2": {"seed_std": 0.01}}}
    # One run each: the lead's seed std is 0.01 * sqrt(2) = 0.0141; 1.96 x that = 0.0277.
    assert lead_within_seed_noise(0.027, check) is True
    assert lead_within_seed_noise(-0.028, check) is False
    # Four seeds of the front member and of the baseline halve the noise of the lead.
    assert lead_within_seed_noise(0.02, check, n_seeds=4, n_baseline_seeds=4) is False
    assert proxy_seed_std(check, epochs=8) is None


def test_fidelity_reader_without_or_with_a_foreign_file(tmp_path):
    assert load_proxy_check(tmp_path) is None
    assert lead_within_seed_noise(0.1, tmp_path) is None
    (tmp_path / "proxy_check.json").write_text('{"schema": "other"}')
    with pytest.raises(ResultsError, match="not a proxy-check result"):
        load_proxy_check(tmp_path)


def test_proxy_check_md_shows_the_supernet_tau_beside_the_short_proxies(tmp_path):
    from mdsearch.results import summarise_proxy_check
    from mdsearch.search.proxy_check import PROXY_CHECK_SCHEMA

    rng = np.random.default_rng(0)
    long = np.linspace(0.6, 0.9, 5)[:, None] + rng.normal(0, 0.001, (5, 2))
    scores = np.array([0.80, 0.74, 0.70, 0.66, 0.61])  # the long ranking reversed: tau -1
    check = {
        "schema": PROXY_CHECK_SCHEMA,
        "archs": [
            {"label": f"sample {i}", "id": f"{i:04d}", "mdconv_stages": [i], "flops_m": 1200.0 + i}
            for i in range(5)
        ],
        "supernet": {
            "epochs": 8,
            "random_subnets": 2,
            "train_seconds": 412.3,
            "images_per_s": 300.0,
            "proxy_equivalents": 16.0,
            "proxy_epochs": 2,
            "score_seconds": 1.27,
            "auc": scores.tolist(),
        },  # fmt: skip
        **summarise_proxy_check({2: long - 0.02, 8: long}, 8, n_resamples=100, supernet=scores),
    }
    (tmp_path / PROXY_CHECK_FILE).write_text(json.dumps(check))
    line = (
        "upernet (8 epochs, cost 16 stand-alone proxy trials of 2 epochs): tau -1.00 "
        "[-1.00, -1.00] vs the 8-epoch ranking; trained in 412 s, 1.3 s per architecture scored"
    )
    md = format_fidelity_markdown(load_proxy_check(tmp_path))
    assert line in md and line in render_html(Document("", (fidelity_section(check),)))
    # A row beside the short proxies' taus, and the scores beside their AUCs.
    assert "| supernet (8 ep, 16 trials) | - | " in md and "| -1.00 [-1.00, -1.00] | " in md
    assert "| 2 ep | " in md and "| supernet score |" in md and "| 0.610 |" in md
    # The warning summarise_proxy_check gives stays; without a supernet block, no row or line.
    assert "Warning: the supernet ranked the architectures unlike 8 epochs" in md
    for key in ("supernet", "supernet_tau"):
        check.pop(key)
    plain = format_fidelity_markdown(check)
    assert "supernet (" not in plain and "supernet score" not in plain
