"""The one way mdsearch writes a file that other processes read: atomically.

Run folders, latency tables, image caches, proxy checks and exports all go through
:func:`atomic_write_bytes`, so a reader never sees a half-written file and a killed writer leaves
at most a hidden ``.NAME.*.tmp`` behind, never a truncated ``NAME``. A file too large to hold in
memory (the memory-mapped image cache, written in place) is finished in a temporary file of its
own and published with :func:`atomic_replace`, the same fsync-and-rename step.

:func:`removed_on_failure` is the other half of "nothing written on bad input": a command that
finds a problem only after it started writing removes what it wrote.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_replace", "atomic_write_bytes", "atomic_write_text", "removed_on_failure"]


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync, rename.

    Args:
        path: the file to (re)place; its folder must exist.
        data: the whole content.
        mode: permission bits of the result, less the process umask as for any new file
            (default 0644: readable by everyone, like the rest of a run folder, under the usual
            umask 022; a user whose umask is 077 gets 0600).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.json"
        >>> atomic_write_bytes(p, b"{}").read_text()
        '{}'
    """
    path = Path(path)
    fd, tmp = _new_temporary(path, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return atomic_replace(tmp, path)


def _new_temporary(path: Path, mode: int) -> tuple[int, Path]:
    """Create ``.NAME.<random>.tmp`` next to ``path`` with ``mode``, for writing.

    Created with ``os.open`` (not ``tempfile.mkstemp``, which always makes 0600) so that the
    kernel applies the umask, as it does to every other file a run writes.
    """
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name next to {path}")


def atomic_replace(
    tmp: str | os.PathLike, path: str | os.PathLike, *, mode: int | None = None
) -> Path:
    """Publish a finished temporary file as ``path``: fsync it, (set its mode,) rename it.

    For files written by other means than :func:`atomic_write_bytes` (e.g. a memory-mapped
    array filled in place). The rename is atomic only within one file system: put ``tmp`` in
    ``path``'s folder. On failure ``tmp`` is removed.

    Args:
        tmp: the complete temporary file.
        path: the file to (re)place.
        mode: permission bits to set (default: keep those ``tmp`` was created with, which for
            a file made by ``open`` or numpy are 0666 less the umask).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the data is on disk before the name points at it
        finally:
            os.close(fd)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, mode: int = 0o644) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


@contextmanager
def removed_on_failure(
    folder: str | os.PathLike, *, keep: Callable[[], bool] | None = None
) -> Iterator[Path]:
    """Undo what a block wrote into ``folder`` if it raises, so bad input found late leaves
    nothing behind (a run folder, an export, a training's output, a proxy-check's folder).

    On failure (any exception, Ctrl-C included, re-raised afterwards): when the block created
    ``folder``, it goes with what it holds, and so do the parents the block created with it
    (while empty: another command may have written there meanwhile); when ``folder`` existed
    before, only the entries the block added go, and what was there is kept. Nothing is removed
    when ``keep()`` says so (e.g. a training saved a checkpoint to resume from).

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "export"
        >>> try:
        ...     with removed_on_failure(out):
        ...         out.mkdir()
        ...         raise ValueError("bad weights")
        ... except ValueError:
        ...     pass
        >>> out.exists()
        False
    """
    folder = Path(folder)
    made = []  # folders the block may create, deepest first
    path = folder
    while not path.exists() and path != path.parent:
        made.append(path)
        path = path.parent
    before = set(os.listdir(folder)) if folder.is_dir() else set()
    try:
        yield folder
    except BaseException:
        if keep is None or not keep():
            _remove_added(folder, made, before)
        raise


def _remove_added(folder: Path, made: list[Path], before: set[str]) -> None:
    """``folder`` with the parents in ``made`` when the block made it, else only its entries
    not in ``before``."""
    if made:
        shutil.rmtree(folder, ignore_errors=True)
        for parent in made[1:]:
            try:
                parent.rmdir()  # only while empty
            except OSError:
                break
        return
    if not folder.is_dir():
        return
    for name in set(os.listdir(folder)) - before:
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
