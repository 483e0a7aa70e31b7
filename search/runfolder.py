"""The run folder: everything one search produced, readable without Ray.

Layout of ``runs/<name>/``::

    config.json        every setting, package versions, data fingerprint (written once)
    trials.csv         one row per finished trial, appended (and fsynced) as each trial ends
    trials.partial.csv a last row cut off mid-write (power loss), set aside by a resume
    predictions/       <ray trial id>.npz: validation y_true / y_score / label_names per trial
    study.db           the Optuna study (SQLite): optuna-dashboard sqlite:///runs/<name>/study.db
    tune-<k>/          Ray Tune's experiment folder of the k-th invocation (0 = first, 1.. = resumes)
    faults/            <ray trial id>.json: why a trial's worker was stopped (--trial-timeout)
    supernet.pt        --strategy supernet: the supernet's checkpoint (written every epoch)
    supernet.json      --strategy supernet: its finished training's record (cost, images/s)
    supernet-<k>/      --strategy supernet: Ray Tune's folder of the supernet training trial
    .lock              held while a `mdsearch run` works on the folder

The trial table is the source of truth: a trial that has a row is never run again, so a kill
loses at most the trials that were running. On a cluster the driver writes trials.csv and
study.db, while trials write predictions/ and faults/ on their own node: the folder must be on
a filesystem every node mounts at the same path.

A write that fails (disk full, folder made read-only) raises :class:`RunFolderWriteError` and
leaves every file as it was before the write: trials.csv never ends in a partial row.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mdsearch.space.files import atomic_write_bytes

from .trial_table import empty_table, read_trial_table, table_columns

if TYPE_CHECKING:
    import pandas as pd
    from filelock import FileLock

__all__ = [
    "CONFIG_FILE",
    "FAULTS_DIR",
    "LOCK_FILE",
    "PREDICTIONS_DIR",
    "STUDY_FILE",
    "SUPERNET_CHECKPOINT",
    "SUPERNET_RECORD",
    "TABLE_FILE",
    "PARTIAL_ROWS_FILE",
    "RunFolder",
    "RunError",
    "RunFolderWriteError",
    "write_all",
]

#: File and folder names of a run folder (the layout above); readers use these too.
CONFIG_FILE = "config.json"
TABLE_FILE = "trials.csv"
PARTIAL_ROWS_FILE = "trials.partial.csv"
PREDICTIONS_DIR = "predictions"
STUDY_FILE = "study.db"
FAULTS_DIR = "faults"
LOCK_FILE = ".lock"
SUPERNET_CHECKPOINT = "supernet.pt"
SUPERNET_RECORD = "supernet.json"


class RunError(ValueError):
    """A run folder that cannot be used as asked (the message says what to do)."""


class RunFolderWriteError(RunError):
    """A file of the run folder could not be written (disk full, read-only, gone)."""

    def __init__(self, path: Path, exc: OSError, folder: Path) -> None:
        reason = exc.strerror or str(exc)
        super().__init__(
            f"cannot write {path}: {reason}; what was written before is intact: free space or "
            f"make the folder writable, then `mdsearch run --resume {folder}`"
        )
        self.errno = exc.errno


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is out (a regular file may take a short write). The one
    function that writes the trial table's bytes (the fault tests replace it: a full disk)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class RunFolder:
    """One search's folder (see the module docstring for the layout).

    Args:
        path: the folder (need not exist yet).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()

    config_path = property(lambda self: self.path / CONFIG_FILE)
    table_path = property(lambda self: self.path / TABLE_FILE)
    predictions_dir = property(lambda self: self.path / PREDICTIONS_DIR)
    faults_dir = property(lambda self: self.path / FAULTS_DIR)
    study_path = property(lambda self: self.path / STUDY_FILE)
    supernet_checkpoint = property(lambda self: self.path / SUPERNET_CHECKPOINT)
    supernet_record_path = property(lambda self: self.path / SUPERNET_RECORD)

    @property
    def study_url(self) -> str:
        """Optuna storage URL of the study (also what optuna-dashboard takes)."""
        return f"sqlite:///{self.study_path}"

    def exists(self) -> bool:
        """Whether a search was started here (config.json exists)."""
        return self.config_path.is_file()

    def check_new(self) -> None:
        """Refuse to start a new search over an existing one."""
        if self.exists():
            self.check_not_in_use()
            raise RunError(
                f"{self.path} already holds a search: continue it with "
                f"`mdsearch run --resume {self.path}` or choose another --out"
            )
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"--out {self.path} is a file: give a folder path")

    def check_resumable(self) -> None:
        """Refuse to resume a folder that holds no search, or one a running search holds."""
        if not self.exists():
            raise RunError(
                f"--resume {self.path}: no config.json there; give the folder of a run that "
                "`mdsearch run` started"
            )
        self.check_not_in_use()

    def create(self, config: Mapping[str, Any]) -> None:
        """Create the folder and write config.json (atomically)."""
        try:
            self.predictions_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.config_path, json.dumps(config, indent=2, default=str).encode())
        except OSError as exc:
            raise RunError(
                f"cannot create {self.config_path}: {exc.strerror or exc}; choose another --out"
            ) from exc

    def write_supernet_record(self, record: Mapping[str, Any]) -> None:
        """Write supernet.json (atomically): the finished supernet training's record."""
        path = self.supernet_record_path
        try:
            atomic_write_bytes(path, json.dumps(dict(record), indent=2, default=str).encode())
        except OSError as exc:
            raise RunFolderWriteError(path, exc, self.path) from exc

    def read_supernet_record(self) -> dict[str, Any] | None:
        """supernet.json (None: no supernet training finished here)."""
        path = self.supernet_record_path
        return json.loads(path.read_text()) if path.is_file() else None

    def read_config(self) -> dict[str, Any]:
        """The run's settings."""
        try:
            return json.loads(self.config_path.read_text())
        except FileNotFoundError:
            raise RunError(f"{self.path} is not a run folder (no config.json)") from None

    def check_not_in_use(self) -> None:
        """Refuse, with one line, when another ``mdsearch run`` holds the folder right now."""
        if (self.path / LOCK_FILE).exists():
            self._take_lock().release()

    def _take_lock(self) -> FileLock:
        """The folder's lock, held (the caller releases it); a :class:`RunError` naming the
        holder when another ``mdsearch run`` has it: no run waits for another."""
        from filelock import FileLock, Timeout

        lock_path = self.path / LOCK_FILE
        lock = FileLock(str(lock_path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise RunError(
                f"{self.path} is in use by a running search (another `mdsearch run` holds "
                f"{lock_path}); wait for it to finish or stop it first"
            ) from None
        return lock

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder for one ``mdsearch run``; a second one refuses instead of waiting.

        If the block fails, what this call made goes again: the lock file, and, when no search
        was started here (no config.json yet: bad data found while loading it, an unreachable
        cluster, Ctrl-C), the folder with its missing parents if they did not exist before. A
        folder that existed before is never removed, so a failed ``--resume`` or a run into an
        existing folder leaves it as it was.
        """
        made = _missing_dirs(self.path)  # deepest first
        lock_path = self.path / LOCK_FILE
        made_lock = not lock_path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self._take_lock()
        try:
            yield
        except BaseException:
            # Still held while removing: no other run can take the folder half-removed.
            _remove_made(made if not self.exists() else [], lock_path if made_lock else None)
            raise
        finally:
            lock.release()

    # -- trial table ------------------------------------------------------------------------
    def append_row(
        self,
        row: Mapping[str, Any],
        label_names: Sequence[str] = (),
        *,
        columns: Sequence[str] | None = None,
    ) -> None:
        """Append one trial's row to trials.csv and fsync it, so a kill cannot lose it.

        The row goes out in one write; if that fails part-way (disk full) the file is cut back
        to its previous length, so the table never ends in a partial row. Rows follow the
        table's header, so a table written by an older version (fewer columns) stays aligned
        when its run is resumed. ``mdconv_stages`` goes out space-separated (``1 5``).

        Args:
            row: the row (column -> value; columns the header lacks are left out).
            label_names: the dataset's findings (a new table's AUC columns), when ``columns``
                is not given.
            columns: the table's header (the driver's
                :attr:`~mdsearch.search.trial_table.TrialTable.columns`); None: the file's
                first line, or for a new file :data:`~mdsearch.search.trial_table.COLUMNS`
                and one AUC column per label.

        Raises:
            RunFolderWriteError: the table could not be written; it holds the earlier rows.
        """
        import io

        try:
            fd = os.open(self.table_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunFolderWriteError(self.table_path, exc, self.path) from exc
        try:
            size = os.fstat(fd).st_size
            if columns is None:
                columns = (_header(self.table_path) if size else []) or table_columns(label_names)
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
            if size == 0:
                writer.writeheader()
            writer.writerow({k: _cell(row.get(k)) for k in columns})
            try:
                write_all(fd, buf.getvalue().encode())
                os.fsync(fd)
            except BaseException as exc:
                try:
                    os.ftruncate(fd, size)
                except OSError:  # the cut fails too: a resume sets the partial row aside
                    pass
                if isinstance(exc, OSError):
                    raise RunFolderWriteError(self.table_path, exc, self.path) from exc
                raise
        finally:
            os.close(fd)

    def set_aside_partial_row(self) -> str:
        """Before a resume reads trials.csv: move a partial last row (one cut off by a power
        loss, or by a failed write whose cut-back failed too) out of the table, to
        :data:`PARTIAL_ROWS_FILE` beside it, so the next row starts on a line of its own. A
        complete row ends in a newline; a partial one never does. Returns the partial text
        ("" when the table ends cleanly or does not exist).

        Raises:
            RunFolderWriteError: the table could not be cut back.
        """
        try:
            with open(self.table_path, "r+b") as f:
                data = f.read()
                if not data or data.endswith(b"\n"):
                    return ""
                keep = data.rfind(b"\n") + 1
                with open(
                    self.path / PARTIAL_ROWS_FILE, "ab"
                ) as out:  # never lost: kept for the user to look at
                    out.write(data[keep:] + b"\n")
                    out.flush()
                    os.fsync(out.fileno())
                f.truncate(keep)
                os.fsync(f.fileno())
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise RunFolderWriteError(self.table_path, exc, self.path) from exc
        return data[keep:].decode(errors="replace")

    def read_table(self) -> pd.DataFrame:
        """trials.csv as a DataFrame with the schema's types
        (:func:`~mdsearch.search.trial_table.read_trial_table`); empty, with the columns, when
        no trial ended yet. (A running search reads its table in memory, not here.)"""
        if not self.table_path.exists():
            return empty_table()
        return read_trial_table(self.table_path)

    # -- predictions -------------------------------------------------------------------------
    def save_predictions(
        self, key: str, y_true: np.ndarray, y_score: np.ndarray, label_names: Sequence[str]
    ) -> str:
        """Write one trial's validation predictions atomically; returns the path relative to
        the run folder (what the table's ``predictions`` column holds)."""
        import io

        self.predictions_dir.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            y_true=y_true.astype(np.uint8),
            y_score=y_score.astype(np.float32),
            label_names=np.array(list(label_names)),
        )
        path = self.predictions_dir / f"{key}.npz"
        try:
            atomic_write_bytes(path, buf.getvalue())
        except OSError as exc:
            raise RunFolderWriteError(path, exc, self.path) from exc
        return str(path.relative_to(self.path))

    # -- faults ------------------------------------------------------------------------------
    def write_fault(self, key: str, reason: str, **info: Any) -> None:
        """Leave why trial ``key``'s worker is about to be stopped (read by the driver)."""
        self.faults_dir.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"reason": reason, **info}, default=str).encode()
        atomic_write_bytes(self.faults_dir / f"{key}.json", data)

    def read_fault(self, key: str) -> str | None:
        """The reason :meth:`write_fault` left for trial ``key``, if any."""
        try:
            return json.loads((self.faults_dir / f"{key}.json").read_text())["reason"]
        except (OSError, ValueError, KeyError):
            return None


def _missing_dirs(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _remove_made(made: Sequence[Path], lock_path: Path | None) -> None:
    """Undo what :meth:`RunFolder.lock` made: the lock file it added (None: it was there
    before) and the folders in ``made`` (deepest first; the first is the run folder, removed
    with what it holds, since this command made it)."""
    import shutil

    if lock_path is not None:
        lock_path.unlink(missing_ok=True)
    if made:
        shutil.rmtree(made[0], ignore_errors=True)
    for parent in made[1:]:
        try:
            parent.rmdir()  # only while empty: another command may have written there since
        except OSError:
            break


def _header(path: Path) -> list[str]:
    """The column names in the first line of a CSV file ([] when unreadable)."""
    try:
        with open(path, newline="") as f:
            return next(csv.reader(f), [])
    except OSError:
        return []


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    if isinstance(value, float) and value != value:  # NaN
        return ""
    return value
