"""Ray Tune callbacks on the driver: record each finished trial, show live progress.

:class:`TrialRecorder` is the single writer of ``trials.csv`` (trials on other nodes report
through Ray, so the table stays consistent on a cluster) and appends each row to the run's
:class:`~mdsearch.search.trial_table.TrialTable` in memory. :class:`LiveProgress` draws one
progress bar with ETA and a status line: done / budget, running, failed, best AUC, front size
(over the run's objectives), all read off that table.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.tune import Callback

from .front import front_size
from .runfolder import RunError, RunFolder, RunFolderWriteError
from .trial_table import CONFIG_COLUMNS, LABEL_PREFIX, TRIAL_COLUMNS, TrialTable

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

__all__ = ["InterruptFlag", "LiveProgress", "TrialNumbers", "TrialRecorder"]


class InterruptFlag:
    """Set once Ctrl-C was pressed; read by the stopper, the searcher and the recorder.

    A plain attribute rather than a threading.Event: Tune pickles its callbacks and searcher
    with the experiment state, and an Event holds a lock.
    """

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        """Mark the search interrupted."""
        self._set = True

    def is_set(self) -> bool:
        """Whether Ctrl-C was pressed."""
        return self._set


class TrialNumbers:
    """Each Ray trial's number in trials.csv (the ``trial`` column), given once, in the order
    asked.

    The recorder writes the number in the trial's row; the searcher stores the same number in
    the Optuna trial (user attribute ``table_trial``) before it tells Optuna the outcome, so
    optuna-dashboard and the table can be matched (after a kill and ``--resume`` their own
    numbers differ). Ray Tune calls the two in either order (the recorder first for a trial
    that finished, the searcher first for one stopped early or lost), so whichever asks first
    fixes the number. Plain data, since Tune pickles its searcher and callbacks.

    Args:
        start: rows already in the table (the first number given).

    Example:
        >>> numbers = TrialNumbers(start=3)
        >>> numbers.number("a"), numbers.number("b"), numbers.number("a")
        (3, 4, 3)
    """

    def __init__(self, start: int = 0) -> None:
        self.next = start
        self._given: dict[str, int] = {}

    def number(self, trial_id: str) -> int:
        """The table number of Ray trial ``trial_id`` (the next free one when first asked)."""
        if trial_id not in self._given:
            self._given[trial_id] = self.next
            self.next += 1
        return self._given[trial_id]


def _last_error_line(trial: Trial) -> str:
    """The exception line of a failed trial's traceback (Tune writes it to the trial's error file)."""
    text = ""
    try:
        if trial.error_file:
            text = Path(trial.error_file).read_text()
    except OSError:  # unreadable error file: the row still records the failure
        pass
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else "trial failed without an error message"


class TrialRecorder(Callback):
    """Appends one row to trials.csv, and to the run's table in memory, per finished, stopped
    or failed trial (driver side).

    One row per Ray trial id, whatever happened: a trial retried after its worker or node died
    keeps its id and gets its row when it finally ends (a retry announces itself on stderr and
    counts in :attr:`retries`). After Ctrl-C (``interrupted`` set) trials that did not finish
    get no row. A row that cannot be written is kept in :attr:`fatal` and raised, which ends
    the search; it is not added to the table in memory either.

    The row is what the trial reported (every column it knows), plus what only the driver
    knows: the trial's number, its Ray id, its status, when it ended and why it failed. A trial
    whose worker died before it reported anything gets the columns its config holds (the
    architecture and seed the searcher shipped).

    Args:
        folder: the run folder (its trials.csv).
        table: the run's trial table in memory (read back on resume; the rows written here
            are appended to it).
        metrics: the objective columns (AUC first), as Optuna is told them.
        modes: ``"max"`` / ``"min"`` per objective.
        quiet: no line per failure or retry on stderr.
        interrupted: the Ctrl-C flag.
        numbers: the table numbers, shared with the searcher (default: numbered from the
            table's length here).
        proxy: the rows this recorder's trials write (``standalone`` or ``supernet``); its
            counts, failures and objective values are over those rows.
    """

    def __init__(
        self,
        folder: RunFolder,
        table: TrialTable,
        metrics: Sequence[str],
        modes: Sequence[str],
        quiet: bool = False,
        interrupted: InterruptFlag | None = None,
        numbers: TrialNumbers | None = None,
        proxy: str = "standalone",
    ) -> None:
        self.folder = folder
        self.table = table
        self.numbers = numbers if numbers is not None else TrialNumbers(len(table))
        self.quiet = quiet
        self.proxy = proxy
        self.retries = 0
        self.interrupted = interrupted if interrupted is not None else InterruptFlag()
        self.fatal: RunError | None = None
        #: the objective columns and their directions
        self.metrics: list[str] = list(metrics)
        self.modes: list[str] = list(modes)
        self._written: set[str] = set()

    @property
    def count(self) -> int:
        """Rows of this recorder's kind in the table (those of earlier invocations too)."""
        return self.table.count(self.proxy)

    @property
    def failed(self) -> int:
        """FAILED rows of this recorder's kind."""
        return self.table.count(self.proxy, "FAILED")

    @property
    def points(self) -> list[tuple[float, ...]]:
        """Objective values of every COMPLETE row of this kind, in ``metrics`` order."""
        return self.table.objective_values(self.metrics, self.proxy)

    @property
    def best_auc(self) -> float:
        """Best AUC of a COMPLETE trial so far (NaN before the first)."""
        return max((p[0] for p in self.points), default=math.nan)

    def _row(
        self, trial: Trial, result: Mapping[str, Any], status: str, error: str = ""
    ) -> dict[str, Any]:
        row = {c: trial.config.get(c) for c in CONFIG_COLUMNS}
        row.update(
            (k, v) for k, v in result.items() if k in TRIAL_COLUMNS or k.startswith(LABEL_PREFIX)
        )
        if status == "FAILED":  # a partial AUC of a failed trial is no result
            row["auc"] = math.nan
        row.update(
            trial=self.numbers.number(trial.trial_id),
            ray_trial_id=trial.trial_id,
            status=status,
            finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            error=error,
        )
        return row

    def _write(
        self, trial: Trial, result: Mapping[str, Any] | None, status: str, error: str = ""
    ) -> None:
        if trial.trial_id in self._written or self.fatal is not None:
            return
        row = self._row(trial, result or {}, status, error)
        try:
            self.folder.append_row(row, columns=self.table.columns)
        except RunFolderWriteError as exc:
            self.fatal = exc
            raise
        self.table.append(row)
        self._written.add(trial.trial_id)

    def _say(self, message: str) -> None:
        if not self.quiet:
            from tqdm import tqdm

            tqdm.write(message, file=sys.stderr)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if not result.get("final"):
            return
        error = result.get("error") or ""
        if result.get("run_folder_error") and self.fatal is None:
            # The trial could not write to (or see) the run folder: every other trial would fail
            # the same way, so the search stops here instead of spending its budget on failures.
            self.fatal = RunError(error)
            raise self.fatal
        self._write(trial, result, "FAILED" if error else "COMPLETE", error)
        if error:
            self._say(f"trial {trial.trial_id} failed (recorded, search goes on): {error}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        # Reached only without a final result when a scheduler stopped the trial early.
        if not self.interrupted.is_set():
            self._write(trial, trial.last_result, "STOPPED")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.retries += 1
        node = (trial.last_result or {}).get("node_id", "")
        self._say(
            f"trial {trial.trial_id} lost its worker{f' on node {node[:12]}' if node else ''} "
            f"({_last_error_line(trial)}); retrying it (--max-failures)"
        )

    def on_trial_error(self, iteration, trials, trial, **info):
        if self.interrupted.is_set():  # e.g. Ctrl-C reached the worker too: it reruns on resume
            return
        error = self.folder.read_fault(trial.trial_id) or _last_error_line(trial)
        self._write(trial, trial.last_result, "FAILED", error)
        self._say(f"trial {trial.trial_id} failed (recorded, search goes on): {error}")


class LiveProgress(Callback):
    """Progress on stderr: a tqdm bar with ETA and a status (running / failed / best AUC / front
    size) on a terminal; one line per finished trial, with the same figures, in a log file.

    Args:
        recorder: the run's recorder (counts, failures, objective values).
        total: the budget.
        done: trials already in the table.
        desc: the bar's label.
    """

    def __init__(
        self,
        recorder: TrialRecorder,
        total: int,
        done: int = 0,
        desc: str = "search",
    ) -> None:
        from tqdm import tqdm

        self.desc = desc
        self.recorder = recorder
        self.total = total
        self.start_done = done
        self.started = time.monotonic()
        self.interactive = sys.stderr.isatty()
        self.bar = (
            tqdm(
                total=total,
                initial=done,
                unit="trial",
                file=sys.stderr,
                dynamic_ncols=True,
                desc=desc,
                mininterval=0.5,
            )
            if self.interactive
            else None
        )
        self._shown = done
        self._status = ""
        self._figures_at = -1
        self._figures: tuple[int, str, int] = (0, "-", 0)

    def _status_text(self, trials) -> str:
        r = self.recorder
        running = sum(1 for t in trials if t.status == "RUNNING")
        failed, best, front = self._table_figures()
        retried = f" | retried {r.retries}" if r.retries else ""
        return f"running {running} | failed {failed}{retried} | best AUC {best} | front {front}"

    def _table_figures(self) -> tuple[int, str, int]:
        """Failures, best AUC and front size, read off the table once per new row (Tune calls
        :meth:`on_step_end` many times a second)."""
        r = self.recorder
        if self._figures_at != len(r.table):
            points = r.points
            best = max((p[0] for p in points), default=math.nan)
            best_text = f"{best:.4f}" if math.isfinite(best) else "-"
            self._figures = (r.failed, best_text, front_size(points, r.modes))
            self._figures_at = len(r.table)
        return self._figures

    def _eta(self) -> str:
        finished = self.recorder.count - self.start_done
        if finished <= 0:
            return "?"
        left = (time.monotonic() - self.started) / finished * (self.total - self.recorder.count)
        return time.strftime("%H:%M:%S", time.gmtime(left))

    def _refresh(self, trials) -> None:
        count = self.recorder.count
        status = self._status_text(trials)
        if self.bar is not None:
            if count != self._shown:
                self.bar.update(count - self._shown)
            if status != self._status:
                self.bar.set_postfix_str(status)
        elif count != self._shown:
            print(
                f"{self.desc} [{count}/{self.total}] {status} | ETA {self._eta()}",
                file=sys.stderr,
                flush=True,
            )
        self._shown, self._status = count, status

    def on_step_end(self, iteration, trials, **info):
        self._refresh(trials)

    def on_experiment_end(self, trials, **info):
        self._refresh(trials)
        if self.bar is not None:
            self.bar.close()
