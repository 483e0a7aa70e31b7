"""The one atomic writer (``mdsearch.space.files``): whole content or nothing under the name."""

from __future__ import annotations

import os
import stat

import pytest

from mdsearch.space import atomic_replace, atomic_write_bytes, atomic_write_text


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("old")
    assert atomic_write_text(path, "new") == path
    assert path.read_text() == "new"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert atomic_write_bytes(path, b"\x00\x01", mode=0o600).read_bytes() == b"\x00\x01"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("old")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_atomic_replace_publishes_a_finished_file(tmp_path):
    tmp, path = tmp_path / "big.npy.1.tmp", tmp_path / "big.npy"
    tmp.write_bytes(b"array")
    assert atomic_replace(tmp, path) == path
    assert path.read_bytes() == b"array" and not tmp.exists()
    with pytest.raises(FileNotFoundError):
        atomic_replace(tmp_path / "missing.tmp", path)
    assert path.read_bytes() == b"array"


@pytest.fixture()
def umask():
    """Set the process umask for one test (restored after it)."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield os.umask
    os.umask(saved)


def test_written_files_take_0644_less_the_users_umask(tmp_path, umask):
    umask(0o022)
    assert stat.S_IMODE(atomic_write_text(tmp_path / "a.json", "{}").stat().st_mode) == 0o644
    umask(0o077)  # a user who keeps their files private gets private files
    assert stat.S_IMODE(atomic_write_text(tmp_path / "b.json", "{}").stat().st_mode) == 0o600
    assert stat.S_IMODE(atomic_write_text(tmp_path / "a.json", "[]").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]


def test_removed_on_failure_removes_only_what_the_failed_block_added(tmp_path):
    from mdsearch.space import removed_on_failure

    made = tmp_path / "a" / "b"
    with pytest.raises(KeyboardInterrupt), removed_on_failure(made):
        made.mkdir(parents=True)
        (made / "partial.json").write_text("{")
        raise KeyboardInterrupt
    assert not (tmp_path / "a").exists()  # the folder and the parent it created

    kept = tmp_path / "existing"
    kept.mkdir()
    (kept / "mine.txt").write_text("the user's")
    with pytest.raises(ValueError), removed_on_failure(kept):
        (kept / "new.bin").write_bytes(b"x")
        (kept / "sub").mkdir()
        raise ValueError
    assert sorted(p.name for p in kept.iterdir()) == ["mine.txt"]

    with pytest.raises(ValueError), removed_on_failure(made, keep=lambda: True):
        made.mkdir(parents=True)
        raise ValueError
    assert made.is_dir()  # e.g. a checkpoint to resume from was saved
