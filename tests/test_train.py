"""Full training and test evaluation (``mdsearch train`` / ``mdsearch eval``) on tiny phantom data."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mdsearch.cli import main
from mdsearch.results import (
    ResultsError,
    evaluate_model,
    evaluate_predictions,
    format_evaluation,
    load_weights,
    save_weights,
    write_evaluation,
    youden_threshold,
)
from mdsearch.results.train import train_architecture
from mdsearch.results.train_folder import saved_settings
from mdsearch.search.datasets import batches, load_dataset
from mdsearch.search.proxy import proxy_train
from mdsearch.search.settings import FULL_RECIPE, SettingsError, TrainRecipe
from mdsearch.search.training import predict, train
from mdsearch.space import ArchSpec

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATA = "phantom,n=200"
CONFIG = dataclasses.replace(FULL_RECIPE, epochs=2, batch_size=32)
SEED = 0
SPEC = ArchSpec.default("mobilenetv2_035", 5).with_stage(5, (3, 5), (1, 1))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One CPU thread: bitwise-reproducible training (and kind to the shared machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def phantom(cache_dir):
    return load_dataset(DATA, resolution=32, cache_dir=cache_dir, progress=False)


@pytest.fixture(scope="module")
def trained(phantom, tmp_path_factory):
    """One uninterrupted 2-epoch run (multi-label, 5 phantom labels)."""
    out = tmp_path_factory.mktemp("run")
    result = train_architecture(SPEC, phantom, CONFIG, SEED, out, progress=False, threads=1)
    return result, out


def _one_label(dataset):
    """The phantom set reduced to its Cardiomegaly label: a two-class task with a test split."""
    return dataclasses.replace(
        dataset, labels=dataset.labels[:, [4]].copy(), label_names=(dataset.label_names[4],)
    )


# -- training, checkpoints, weights -------------------------------------------------------------


def test_training_writes_checkpoint_history_and_best_weights(trained):
    result, out = trained
    for name in ("checkpoint.pt", "history.csv", "train.json", "weights.safetensors", "arch.json"):
        assert (out / name).is_file(), name
    lines = (out / "history.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,loss,val_auc")
    assert len(lines) == 1 + CONFIG.epochs
    aucs = [row["val_auc"] for row in result.history]
    assert result.best_val_auc == max(aucs)
    assert result.best_epoch == 1 + int(np.argmax(aucs))
    info = json.loads((out / "train.json").read_text())
    assert info["status"] == "done" and info["best_epoch"] == result.best_epoch
    assert ArchSpec.load(out / "arch.json") == SPEC


def test_saved_weights_load_into_build_and_reproduce_predictions(trained, phantom):
    result, out = trained

    def scores(model):
        _, s = predict(model, batches(phantom, "test", batch_size=64, shuffle=False, augment=False))
        return s

    loaded = load_weights(ArchSpec.load(out / "arch.json"), out / "weights.safetensors")
    trained_state = result.model.state_dict()
    assert all(torch.equal(v, trained_state[k]) for k, v in loaded.state_dict().items())
    # The loaded network is in the default memory format, the trained one channels-last: the
    # convolutions may round differently in the last bit.
    np.testing.assert_allclose(scores(loaded), scores(result.model), rtol=1e-5, atol=1e-6)


def test_resume_continues_at_next_epoch_with_the_same_final_weights(trained, phantom, tmp_path):
    _, full_out = trained

    def stop_after_first(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_architecture(
            SPEC, phantom, CONFIG, SEED, tmp_path, progress=False, on_epoch=stop_after_first
        )
    assert not (tmp_path / "weights.safetensors").exists()
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 2

    with pytest.raises(ResultsError, match="--resume"):  # a checkpoint is never overwritten
        train_architecture(SPEC, phantom, CONFIG, SEED, tmp_path, progress=False)
    with pytest.raises(ResultsError, match="epochs=2"):
        train_architecture(
            SPEC, phantom, dataclasses.replace(CONFIG, epochs=3), SEED, tmp_path, resume=True
        )

    epochs_seen = []
    resumed = train_architecture(
        SPEC,
        phantom,
        CONFIG,
        SEED,
        tmp_path,
        resume=True,
        progress=False,
        on_epoch=lambda row: epochs_seen.append(row["epoch"]),
    )
    assert resumed.resumed_from == 1 and epochs_seen == [2]
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    from safetensors.torch import load_file

    a = load_file(str(full_out / "weights.safetensors"))
    b = load_file(str(tmp_path / "weights.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ca = torch.load(full_out / "checkpoint.pt", weights_only=True)["model"]
    cb = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(ca[k], cb[k]) for k in ca)


def test_progress_in_a_log_is_one_line_per_epoch(phantom, tmp_path, capsys):
    """stderr that is not a terminal (a log file, CI) gets a line per epoch, no bar redraws."""
    train_architecture(SPEC, phantom, CONFIG, SEED, tmp_path, progress=True, threads=1)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(f"train {SPEC.arch_id}:")]
    assert len(lines) == CONFIG.epochs and "\r" not in err
    assert lines[0].startswith(f"train {SPEC.arch_id}: epoch 1/{CONFIG.epochs}, loss ")
    assert "val_auc" in lines[0] and "img/s, ETA " in lines[0]
    assert lines[-1].endswith("ETA 0 s")


def test_resume_without_checkpoint_is_refused(phantom, tmp_path):
    with pytest.raises(ResultsError, match="no checkpoint.pt"):
        train_architecture(SPEC, phantom, CONFIG, SEED, tmp_path, resume=True, progress=False)


#: ``TrainConfig(resolution=32, epochs=2, batch_size=32).to_dict()``: the ``config`` entry the
#: code before the shared recipe wrote into checkpoint.pt and train.json (no ``val_subset``).
OLD_CONFIG = {
    "resolution": 32,
    "epochs": 2,
    "batch_size": 32,
    "train_subset": None,
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "optimizer": "adamw",
    "schedule": "cosine",
    "augment": True,
    "head_init": "small",
    "seed": 0,
    "channels_last": True,
}


def test_a_folder_in_the_old_train_config_layout_resumes(trained, phantom, tmp_path, cache_dir):
    _, full_out = trained
    out = tmp_path / "old"

    def stop_after_first(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_architecture(
            SPEC, phantom, CONFIG, SEED, out, progress=False, on_epoch=stop_after_first
        )
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    ckpt["config"] = dict(OLD_CONFIG)
    torch.save(ckpt, out / "checkpoint.pt")
    info = json.loads((out / "train.json").read_text())
    info["config"] = dict(OLD_CONFIG)
    info["data_settings"] = {"data": DATA, "val_fraction": 0.2, "seed": 0, "cache_dir": None}
    (out / "train.json").write_text(json.dumps(info))

    data, recipe = saved_settings(out)
    assert (data.data, data.resolution, data.seed, data.val_fraction) == (DATA, 32, 0, 0.2)
    assert recipe == CONFIG
    common = ["--cache-dir", str(cache_dir), "--quiet", "--threads", "1"]
    assert main(["train", SPEC.canonical, "--out", str(out), "--resume", *common]) == 0
    from safetensors.torch import load_file

    a = load_file(str(full_out / "weights.safetensors"))
    b = load_file(str(out / "weights.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((out / "train.json").read_text())["status"] == "done"


def test_cosine_schedule_ends_exactly_at_the_last_step(phantom):
    """Images per epoch not a multiple of the batch: the loader drops the partial batch, and the
    schedule counts only the steps that run (the proxy used to count one more per epoch)."""
    recipe = TrainRecipe(epochs=2, batch_size=16, train_subset=40)
    n_train = len(phantom.splits["train"])
    assert recipe.images_per_epoch(n_train) % recipe.batch_size != 0
    loader = batches(phantom, "train", batch_size=16, shuffle=True, augment=False, subset=40)
    assert recipe.steps_per_epoch(n_train) == sum(1 for _ in loader) == 2
    steps: list[int] = []
    run = train(SPEC, phantom, recipe, SEED, on_step=steps.append, validate=lambda epoch: False)
    assert len(steps) == recipe.epochs * 2 == run.scheduler.T_max == run.scheduler.last_epoch
    assert run.epochs[-1].lr > 1e-4  # the last epoch still learns ...
    assert run.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # ... to 0


def test_the_loop_reads_the_loss_once_per_epoch_and_a_nan_fails_the_epoch(phantom):
    """The losses are summed on the device, not read back per step: a NaN at one step makes the
    epoch's sum NaN, and the epoch ends in Diverged (its later steps ran: no check per step)."""
    from mdsearch.mdconv import build
    from mdsearch.search.train_step import one_loss
    from mdsearch.search.training import Diverged, make_optimizer, train_one_epoch

    torch.manual_seed(SEED)
    model = build(SPEC)
    optimizer, scheduler = make_optimizer(
        model, name="adamw", lr=1e-3, weight_decay=0.0, total_steps=4, schedule="cosine"
    )
    steps: list[int] = []

    def nan_at_second_step(model, x, y):
        loss, images = one_loss(model, x, y)
        return (loss * float("nan") if len(steps) == 1 else loss), images

    loader = batches(phantom, "train", batch_size=16, shuffle=False, augment=False, subset=64)
    with pytest.raises(Diverged, match=r"became nan .*: lower --lr"):
        train_one_epoch(model, loader, optimizer, scheduler, step=nan_at_second_step,
                        on_step=steps.append)  # fmt: skip
    assert steps == [16] * 4


def test_proxy_runs_the_shared_loop(phantom, monkeypatch):
    import mdsearch.search.training as training

    calls = []
    shared = training.train
    monkeypatch.setattr(training, "train", lambda *a, **k: calls.append(a[2]) or shared(*a, **k))
    recipe = TrainRecipe(epochs=1, batch_size=16, train_subset=32, val_subset=20)
    result = proxy_train(SPEC, phantom, recipe, SEED, threads=1)
    assert calls == [recipe] and result.fidelity == 1 and len(result.y_true) == 20


def test_a_train_split_smaller_than_a_batch_is_refused_before_writing(phantom, tmp_path):
    big = dataclasses.replace(CONFIG, batch_size=4096)
    with pytest.raises(SettingsError, match="lower --batch-size"):
        train_architecture(SPEC, phantom, big, SEED, tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


# -- evaluation layouts ---------------------------------------------------------------------------


def test_multilabel_evaluation_has_per_label_auc_and_mean(trained, phantom, tmp_path):
    result, _ = trained
    ev = evaluate_model(result.model, phantom, n_resamples=200)
    assert ev.layout == "multilabel" and ev.split == "test"
    assert ev.n_images == len(phantom.splits["test"])
    assert set(ev.label_auc) == set(phantom.label_names)
    defined = [v for v in ev.label_auc.values() if not np.isnan(v)]
    assert ev.auc == pytest.approx(np.mean(defined))
    assert ev.auc_ci[0] <= ev.auc <= ev.auc_ci[1]
    files = write_evaluation(ev, tmp_path, arch=SPEC, settings={"epochs": 2})
    text = files["md"].read_text()
    assert "Table 6 layout" in text and "SYNTHETIC" in text
    assert "paper (Table 6)" not in text  # phantom labels are not ChestX-ray14 findings
    payload = json.loads(files["json"].read_text())
    assert payload["data"]["synthetic"] is True and payload["arch"] == SPEC.canonical
    assert payload["paper"] is None


def test_table6_reference_shown_for_chestxray14_findings():
    from mdsearch.search.datasets import FINDINGS

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (120, 14))
    s = y + rng.normal(0, 1, y.shape)
    ev = evaluate_predictions(y[:80], s[:80], y[80:], s[80:], FINDINGS, n_resamples=50)
    text = format_evaluation(ev)
    assert "paper (Table 6)" in text and "0.896" in text and "0.782" in text
    assert ev.to_dict()["paper"]["label_auc"]["Cardiomegaly"] == 0.896


def _brute_force_youden(y, s):
    best, best_t = -np.inf, None
    for t in np.unique(s):
        pred = s >= t
        j = np.mean(pred[y == 1]) - np.mean(pred[y == 0])
        if j > best + 1e-12:
            best, best_t = j, t
        elif abs(j - best) <= 1e-12:
            best_t = max(best_t, t)  # ties: the highest threshold
    return best_t


def test_threshold_is_the_validation_optimum_and_ignores_test_labels():
    rng = np.random.default_rng(1)
    val_y = rng.integers(0, 2, (150, 1))
    val_s = (val_y + rng.normal(0, 1.2, val_y.shape)).astype(np.float32)
    test_y = rng.integers(0, 2, (100, 1))
    test_s = (test_y + rng.normal(0, 1.2, test_y.shape)).astype(np.float32)

    ev = evaluate_predictions(test_y, test_s, val_y, val_s, ["Pneumonia"], n_resamples=50)
    assert ev.layout == "binary"
    assert ev.threshold == pytest.approx(_brute_force_youden(val_y[:, 0], val_s[:, 0]))
    assert ev.threshold == youden_threshold(val_y[:, 0], val_s[:, 0])

    flipped = 1 - test_y  # test labels perturbed: the threshold must not move
    ev2 = evaluate_predictions(flipped, test_s, val_y, val_s, ["Pneumonia"], n_resamples=50)
    assert ev2.threshold == ev.threshold
    assert ev2.metrics["sensitivity"] != ev.metrics["sensitivity"]  # but the test scores do

    shuffled = rng.permutation(val_y)  # validation labels changed: it moves
    ev3 = evaluate_predictions(test_y, test_s, shuffled, val_s, ["Pneumonia"], n_resamples=50)
    assert ev3.threshold != ev.threshold

    pred = test_s[:, 0] >= ev.threshold
    y = test_y[:, 0] == 1
    assert ev.metrics["sensitivity"] == pytest.approx(pred[y].mean())
    assert ev.metrics["specificity"] == pytest.approx((~pred[~y]).mean())
    assert ev.metrics["accuracy"] == pytest.approx((pred == y).mean())
    assert sum(ev.confusion.values()) == len(test_y)


def test_two_class_train_and_evaluate_in_table8_layout(phantom, tmp_path):
    data = _one_label(phantom)
    spec = ArchSpec.default("mobilenetv2_035", 1)
    result = train_architecture(
        spec, data, dataclasses.replace(CONFIG, epochs=1), SEED, tmp_path, progress=False
    )
    ev = evaluate_model(result.model, data, n_resamples=100)
    assert ev.layout == "binary" and ev.threshold is not None
    assert ev.threshold == youden_threshold(ev.val_true[:, 0], ev.val_score[:, 0])
    text = write_evaluation(ev, tmp_path, arch=spec)["md"].read_text()
    assert "Table 8 layout" in text and "sensitivity %" in text
    assert f"{ev.threshold:.4f}" in text and "chosen on the validation split" in text
    assert "(paper, Table 8)" not in text  # not Kermany data: no paper rows


def test_no_test_split_refuses_test_metrics_and_labels_validation(trained, phantom):
    result, _ = trained
    no_test = dataclasses.replace(
        phantom, splits={k: v for k, v in phantom.splits.items() if k != "test"}
    )
    with pytest.raises(ResultsError, match="no test split"):
        evaluate_model(result.model, no_test)
    ev = evaluate_model(result.model, no_test, split="val", n_resamples=50)
    assert ev.split == "val" and any("NOT a test result" in w for w in ev.warnings)
    assert "VALIDATION" in format_evaluation(ev)


# -- bad inputs -------------------------------------------------------------------------------


def test_label_count_mismatch_is_a_one_line_error(phantom, tmp_path):
    wrong = ArchSpec.default("mobilenetv2_035", 14)
    with pytest.raises(ResultsError, match="14 outputs.*5 label"):
        train_architecture(wrong, phantom, CONFIG, SEED, tmp_path, progress=False)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_weights_of_another_architecture_are_refused(trained, tmp_path):
    _, out = trained
    other = ArchSpec.default("mobilenetv2_035", 5)  # no MD-Conv in stage5
    with pytest.raises(ResultsError, match="trained for"):
        load_weights(other, out / "weights.safetensors")
    # Without the header, the tensors themselves give it away.
    from safetensors.torch import load_file, save_file

    bare = tmp_path / "bare.safetensors"
    save_file(load_file(str(out / "weights.safetensors")), str(bare))
    with pytest.raises(ResultsError, match="do not fit"):
        load_weights(other, bare)
    with pytest.raises(ResultsError, match="no such file"):
        load_weights(SPEC, tmp_path / "missing.safetensors")


def test_save_weights_is_loadable_by_safetensors_with_metadata(trained, tmp_path):
    result, _ = trained
    path = save_weights(result.model, tmp_path / "w.safetensors", SPEC, metadata={"epoch": 3})
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["mdsearch.arch"] == SPEC.canonical
        assert f.metadata()["mdsearch.epoch"] == "3"


# -- command line -----------------------------------------------------------------------------


def test_cli_train_then_eval_end_to_end(tmp_path, cache_dir, capsys):
    arch = tmp_path / "exports" / "arch.json"
    arch.parent.mkdir()
    arch.write_text(SPEC.to_json())
    common = ["--cache-dir", str(cache_dir), "--quiet"]
    rc = main(
        ["train", str(arch), "--data", DATA, "--resolution", "32", "--epochs", "1"]
        + ["--batch-size", "32", "--threads", "1", *common]
    )
    assert rc == 0
    out = arch.parent / "train"  # default: next to arch.json
    trained = json.loads((out / "eval.json").read_text())
    assert trained["split"] == "test" and trained["layout"] == "multilabel"
    assert "synthetic" in capsys.readouterr().out.lower()

    # eval reuses the training's data, seed and resolution from the folder
    rc = main(
        ["eval", str(arch), "--weights", str(out / "weights.safetensors"), "--out"]
        + [str(tmp_path / "ev"), *common]
    )
    assert rc == 0
    again = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert again["auc"] == pytest.approx(trained["auc"])
    assert again["label_auc"] == pytest.approx(trained["label_auc"])

    # a second train into the same folder without --resume is refused before any data loads
    assert main(["train", str(arch), "--data", DATA, *common]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "missing/arch.json"], "cannot read"),
        (["train", "mobilenetv2_035:c14:k3,k3,k3,k3,k3,k3,k3", "--data", DATA], "14 outputs"),
        (["eval", SPEC.canonical, "--weights", "missing.safetensors"], "no such file"),
        (["train", SPEC.canonical, "--data", "nosuchsource"], "nosuchsource"),
    ],
)
def test_cli_bad_inputs_exit_2_with_one_line(
    argv, message, tmp_path, cache_dir, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    rc = main([*argv, "--cache-dir", str(cache_dir), "--quiet", "--resolution", "32"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_eval_on_kermany_without_test_split_refuses(tmp_path, cache_dir, capsys):
    """The shared Kermany copy has train/ only: no test metrics unless --eval-on-val."""
    if not (SHARED_DATA / "kermany224" / "train").is_dir():
        pytest.skip(f"shared data {SHARED_DATA} is absent (only in CI / the team machine)")
    root = tmp_path / "kermany"
    for cls in ("NORMAL", "PNEUMONIA"):  # a small copy: 40 images per class
        (root / "train" / cls).mkdir(parents=True)
        for f in sorted((SHARED_DATA / "kermany224" / "train" / cls).iterdir())[:40]:
            (root / "train" / cls / f.name).symlink_to(f)
    spec = ArchSpec.default("mobilenetv2_035", 1)
    data = f"kermany={root}"
    common = ["--resolution", "32", "--cache-dir", str(cache_dir), "--quiet", "--threads", "1"]
    rc = main(
        ["train", spec.canonical, "--data", data, "--epochs", "1", "--batch-size", "16"]
        + ["--out", str(tmp_path / "t"), *common]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "no test split" in out and "no test metrics" in out
    assert not (tmp_path / "t" / "eval.json").exists()
    weights = str(tmp_path / "t" / "weights.safetensors")
    base = ["eval", spec.canonical, "--weights", weights, "--cache-dir", str(cache_dir), "--quiet"]
    assert main(base) == 2
    assert "no test split" in capsys.readouterr().err
    assert main([*base, "--eval-on-val"]) == 0
    text = (tmp_path / "t" / "eval.md").read_text()
    assert "NOT a test result" in text and "Table 8 layout" in text
    assert "(paper, Table 8)" in text  # Kermany pneumonia vs normal: the paper's rows
    shutil.rmtree(tmp_path / "t")
