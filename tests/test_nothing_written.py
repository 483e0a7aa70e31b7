"""Bad input found only after a command started writing leaves nothing behind: `mdsearch run`
on data that turns out unusable while loading (no run folder, no lock), `mdsearch train` that
fails before its first checkpoint (no output folder). A folder that existed before is never
removed, and a failed `--resume` leaves its run folder as it was.

`mdsearch proxy-check` likewise leaves no output folder. None of these starts Ray; the trainings
stop in their first steps.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mdsearch.cli import main
from mdsearch.search import DataSettings, SearchSettings

#: An architecture with the phantom set's five outputs.
PHANTOM_ARCH = "mobilenetv2_100:c5:k3,k3,k3,k3,k3,k3,k3"
TINY_TRAIN = ["--data", "phantom,n=300", "--resolution", "32", "--epochs", "1",
              "--train-subset", "64", "--batch-size", "32", "--quiet"]  # fmt: skip


def _kermany(root: Path, *, train: bool = True, images: bool = True) -> Path:
    """A Kermany-layout folder: train/NORMAL and train/PNEUMONIA, with or without images."""
    if not train:
        (root / "test" / "NORMAL").mkdir(parents=True)
        return root
    for label in ("NORMAL", "PNEUMONIA"):
        folder = root / "train" / label
        folder.mkdir(parents=True)
        if images and label == "PNEUMONIA":
            Image.new("L", (16, 16)).save(folder / "person1_bacteria_1.jpeg")
    return root


def _bad_data(root: Path, kind: str) -> tuple[str, str]:
    """``(--data value, what the error must say)`` for data that only loading can judge."""
    if kind == "kermany without train/":
        return f"kermany={_kermany(root, train=False)}", "no train/ folder"
    if kind == "kermany with an empty class folder":
        return f"kermany={_kermany(root, images=False)}", "holds no images"
    if kind == "chestxray14 without its CSV":
        (root / "images").mkdir(parents=True)
        Image.new("L", (16, 16)).save(root / "images" / "00000001_000.png")
        return f"chestxray14={root}", "Data_Entry"
    assert kind == "chestmnist file that is no .npz"
    root.mkdir(parents=True)
    (root / "chestmnist.npz").write_bytes(b"not a zip file")
    return f"chestmnist={root / 'chestmnist.npz'}", "not a readable .npz"


BAD_DATA = (
    "kermany without train/",
    "kermany with an empty class folder",
    "chestxray14 without its CSV",
    "chestmnist file that is no .npz",
)


def _one_error_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def _listing(folder: Path) -> dict[str, int]:
    """Every path under ``folder`` with its size (what a failed command must not change)."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")}


# -- mdsearch run ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", BAD_DATA)
def test_run_on_data_unusable_when_loaded_leaves_no_folder_or_lock(
    tmp_path, cache_dir, capsys, kind
):
    data, message = _bad_data(tmp_path / "data", kind)
    out = tmp_path / "runs" / "new"  # its parent does not exist either
    code = main(["run", "--out", str(out), "--data", data, "--cache-dir", cache_dir, "--quiet"])
    assert code == 2
    _one_error_line(capsys, "mdsearch run: error:", message)
    assert not (tmp_path / "runs").exists()


def test_run_into_an_existing_folder_keeps_it_and_its_files(tmp_path, cache_dir, capsys):
    data, _ = _bad_data(tmp_path / "data", "kermany without train/")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("the user's")
    assert main(["run", "--out", str(out), "--data", data, "--cache-dir", cache_dir]) == 2
    _one_error_line(capsys, "no train/ folder")
    assert _listing(out) == {"notes.txt": len("the user's")}


def test_a_failed_resume_leaves_the_run_folder_as_it_was(tmp_path, cache_dir, capsys):
    # A run whose data folder lost its train/ since the run started.
    data, _ = _bad_data(tmp_path / "data", "kermany without train/")
    settings = SearchSettings(data=DataSettings(data, resolution=32, cache_dir=cache_dir))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"settings": settings.to_dict()}))
    (run / "trials.csv").write_text("trial,arch\n")
    before = _listing(run)
    assert main(["run", "--resume", str(run), "--quiet"]) == 2
    _one_error_line(capsys, "no train/ folder")
    assert _listing(run) == before


# -- mdsearch train --------------------------------------------------------------------------
def test_train_with_a_batch_larger_than_the_split_leaves_no_folder(tmp_path, cache_dir, capsys):
    out = tmp_path / "trainings" / "x"
    code = main(["train", PHANTOM_ARCH, "--out", str(out), *TINY_TRAIN, "--train-subset", "all",
                 "--batch-size", "4096", "--cache-dir", cache_dir])  # fmt: skip
    assert code == 2
    _one_error_line(capsys, "--batch-size 4096")
    assert not (tmp_path / "trainings").exists()


def test_train_that_diverges_before_its_first_checkpoint_leaves_no_folder(
    tmp_path, cache_dir, capsys
):
    out = tmp_path / "trainings" / "x"
    code = main(["train", PHANTOM_ARCH, "--out", str(out), *TINY_TRAIN, "--lr", "1e12",
                 "--cache-dir", cache_dir])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "lower --lr" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "trainings").exists()
    # The user's own folder stays, with only what was in it.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("kept")
    code = main(["train", PHANTOM_ARCH, "--out", str(mine), *TINY_TRAIN, "--lr", "1e12",
                 "--cache-dir", cache_dir])  # fmt: skip
    assert code == 2
    assert sorted(os.listdir(mine)) == ["notes.txt"]


def test_train_on_cuda_without_a_gpu_is_one_line_and_writes_nothing(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    out = tmp_path / "x"
    code = main(["train", PHANTOM_ARCH, "--out", str(out), *TINY_TRAIN, "--device", "cuda"])
    assert code == 2
    _one_error_line(capsys, "--device cuda: torch sees no CUDA device")
    assert not out.exists()


def test_a_finished_epoch_is_kept_for_resume(tmp_path, cache_dir):
    """The other side: once a checkpoint exists, a later failure keeps the folder."""
    from mdsearch.results.train_folder import CHECKPOINT, removed_unless_checkpointed

    out = tmp_path / "x"
    with pytest.raises(KeyboardInterrupt), removed_unless_checkpointed(out):
        out.mkdir()
        (out / CHECKPOINT).write_bytes(np.zeros(4).tobytes())
        raise KeyboardInterrupt
    assert (out / CHECKPOINT).is_file()


# -- mdsearch proxy-check ----------------------------------------------------------------------
def test_proxy_check_on_data_unusable_when_loaded_leaves_no_folder(tmp_path, cache_dir, capsys):
    data, message = _bad_data(tmp_path / "data", "kermany with an empty class folder")
    out = tmp_path / "checks" / "x"
    code = main(["proxy-check", "--data", data, "--out", str(out), "--cache-dir", cache_dir,
                 "--quiet"])  # fmt: skip
    assert code == 2
    _one_error_line(capsys, "mdsearch proxy-check: error:", message)
    assert not (tmp_path / "checks").exists()
