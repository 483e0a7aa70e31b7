"""The one way mdsearch writes a file that other processes read: atomically.

Run folders, latency tables, image caches, proxy checks and exports all go through
:func:`atomic_write_bytes`, so a reader never sees a half-written file and a killed writer leaves
at most a hidden ``.NAME.*.tmp`` behind, never a truncated ``NAME``. A file too large to hold in
memory (the memory-mapped image cache, written in place) is finished in a temporary file of its
own and published with :func:`atomic_replace`, the same fsync-and-rename step.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["atomic_replace", "atomic_write_bytes", "atomic_write_text"]


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
