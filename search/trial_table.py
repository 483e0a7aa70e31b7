"""The trial table (``trials.csv``): its columns, their order and types, how to read it, and
the table in the driver's memory (:class:`TrialTable`).

The one schema of the table: :class:`~mdsearch.search.runfolder.RunFolder` writes rows with
it, :func:`mdsearch.results.load_run` reads them with it. While a search runs, the driver holds
the table as a :class:`TrialTable`: the recorder appends each finished trial's row to it (after
writing the row to trials.csv), and the searcher, the confirmation policy and the progress
line read it there; trials.csv is read back only when a run is resumed.

Who fills a column: a trial (:func:`mdsearch.search.trial.run_trial`, on its worker) reports
every column it knows (:data:`TRIAL_COLUMNS` and the per-label AUCs); the driver's recorder adds
only what only it knows (:data:`DRIVER_COLUMNS`: the trial's number, its Ray id, how it ended,
when, and why it failed).

Units: ``flops_m`` multiply-adds in millions at ``input_size`` px; ``params_m`` millions;
``latency_ms`` predicted ms per image (see config.json ``latency``; empty unless latency is an
objective); ``fidelity`` / ``target_fidelity`` proxy epochs done / asked; ``resolution`` the
proxy's input side in px; ``train_seconds`` seconds in training steps; ``images_per_s``
training throughput; ``proxy`` how the AUC was measured (:data:`PROXY_KINDS`: a supernet row's
``train_seconds`` is its BatchNorm recalibration + validation, its ``fidelity`` the supernet's
epochs).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported when a table is read, not when a trial imports this
    import pandas as pd

__all__ = [
    "COLUMNS",
    "CONFIG_COLUMNS",
    "DRIVER_COLUMNS",
    "LABEL_PREFIX",
    "REQUIRED_COLUMNS",
    "TEXT_COLUMNS",
    "TRIAL_COLUMNS",
    "PROXY_KINDS",
    "TrialTable",
    "empty_table",
    "label_column",
    "label_columns",
    "proxy_kind",
    "read_trial_table",
    "stage_list",
    "table_columns",
]

#: Fixed columns of trials.csv, in order; the per-label AUC columns follow them. (The order and
#: names are those of every version so far: an older table's rows and a newer one's line up.)
COLUMNS = (
    "trial",
    "ray_trial_id",
    "arch",
    "arch_id",
    "mdconv_stages",
    "status",
    "fidelity",
    "target_fidelity",
    "auc",
    "flops_m",
    "latency_ms",
    "input_size",
    "params_m",
    "resolution",
    "seed",
    "repeat",
    "train_seconds",
    "images_per_s",
    "node_id",
    "finished_at",
    "predictions",
    "error",
    "proxy",
)
#: ``proxy`` values: how a row's AUC was measured. ``standalone``: the architecture trained on
#: its own for the proxy's epochs (every row of a table from before the column); ``supernet``:
#: scored as a sub-network of the run's weight-sharing supernet (``mdsearch run --strategy
#: supernet``), a ranking score that never enters the front.
PROXY_KINDS = ("standalone", "supernet")
#: What only the driver knows: the trial's number in the run, its Ray id, how it ended
#: (COMPLETE, STOPPED, FAILED), when (UTC, ISO 8601), and why it failed.
DRIVER_COLUMNS = ("trial", "ray_trial_id", "status", "finished_at", "error")
#: What the trial reports (besides the per-label AUCs): every other column.
TRIAL_COLUMNS = tuple(c for c in COLUMNS if c not in DRIVER_COLUMNS)
#: What the searcher ships in a trial's config (so also in the row of a trial whose worker died
#: before it reported anything): the architecture's canonical string and the trial's seed.
CONFIG_COLUMNS = ("arch", "seed", "repeat")
#: Columns every table (of any version) has and any analysis needs.
REQUIRED_COLUMNS = ("trial", "arch", "status", "fidelity", "target_fidelity", "auc", "flops_m")
#: Columns read as text ("" when empty); all others are numbers (NaN when empty).
#: ``mdconv_stages`` is the stages with MD-Conv: space-separated on disk ("1 5"), a tuple of
#: ints in memory (:func:`stage_list` turns either into the other's form).
TEXT_COLUMNS = (
    "ray_trial_id",
    "arch",
    "arch_id",
    "mdconv_stages",
    "status",
    "node_id",
    "finished_at",
    "predictions",
    "error",
    "proxy",
)
#: Prefix of the per-label validation AUC columns (``auc__Effusion``).
LABEL_PREFIX = "auc__"


def label_column(label: str) -> str:
    """Name of the per-label AUC column of finding ``label`` (``auc__<label>``)."""
    return f"{LABEL_PREFIX}{label}"


def label_columns(columns: Iterable[str]) -> list[str]:
    """The per-label AUC columns among ``columns`` (e.g. a table's), in their order."""
    return [c for c in columns if c.startswith(LABEL_PREFIX)]


def table_columns(label_names: Sequence[str]) -> list[str]:
    """Header of a new table: :data:`COLUMNS`, then one AUC column per label."""
    return [*COLUMNS, *(label_column(name) for name in label_names)]


def proxy_kind(table: pd.DataFrame) -> pd.Series:
    """Each row's ``proxy`` (:data:`PROXY_KINDS`); ``standalone`` where the table has no such
    column or the cell is empty (tables written before the supernet strategy).

    Example:
        >>> import pandas as pd
        >>> proxy_kind(pd.DataFrame({"proxy": ["supernet", ""]})).tolist()
        ['supernet', 'standalone']
    """
    import pandas as pd

    if "proxy" not in table:
        return pd.Series("standalone", index=table.index, dtype=object)
    kind = table["proxy"].fillna("").astype(str).str.strip()
    return kind.where(kind != "", "standalone")


def empty_table() -> pd.DataFrame:
    """A table with the fixed columns and no row (before any trial ended)."""
    import pandas as pd

    return pd.DataFrame(columns=list(COLUMNS))


def read_trial_table(path: str | Path) -> pd.DataFrame:
    """Read a trials.csv with the schema's types: :data:`TEXT_COLUMNS` as ``str`` ("" when
    empty), the others as numbers (NaN when empty). Columns the file lacks (an older version's
    table) stay absent; columns it has that the schema does not know are read as pandas infers.

    Args:
        path: the trials.csv file.

    Raises:
        FileNotFoundError, pandas.errors.EmptyDataError, pandas.errors.ParserError,
        UnicodeDecodeError: as :func:`pandas.read_csv`.

    Example:
        >>> table = read_trial_table("runs/demo/trials.csv")  # doctest: +SKIP
        >>> table[["trial", "arch", "auc", "flops_m"]].head()  # doctest: +SKIP
    """
    import pandas as pd

    table = pd.read_csv(path, dtype={c: "string" for c in TEXT_COLUMNS})
    for column in TEXT_COLUMNS:
        if column in table:
            table[column] = table[column].fillna("").astype(str)
    return table


def stage_list(value: Any) -> tuple[int, ...]:
    """The MD-Conv stages of a ``mdconv_stages`` cell as the tuple of ints held in memory.

    Takes the on-disk form (``"1 5"``), the separators other writers used (``"1;5"``,
    ``"1, 5"``), a list or tuple of ints (what a trial reports), and an empty or missing cell
    (no MD-Conv: ``()``).

    Example:
        >>> stage_list("1 5"), stage_list("1;5"), stage_list([1, 5]), stage_list(float("nan"))
        ((1, 5), (1, 5), (1, 5), ())
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ()
    if isinstance(value, str):
        value = value.replace(";", " ").replace(",", " ").split()
    return tuple(int(v) for v in value)


def _row_kind(row: Mapping[str, Any]) -> str:
    """A row's ``proxy`` (:data:`PROXY_KINDS`; ``standalone`` when empty), as :func:`proxy_kind`."""
    return str(row.get("proxy") or "").strip() or "standalone"


def _typed(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row with the schema's types in memory: :data:`TEXT_COLUMNS` as ``str`` ("" when
    empty) except ``mdconv_stages`` (a tuple of ints), missing numbers as NaN."""
    out: dict[str, Any] = {}
    for column, value in row.items():
        if column == "mdconv_stages":
            out[column] = stage_list(value)
        elif column in TEXT_COLUMNS:
            empty = value is None or (isinstance(value, float) and math.isnan(value))
            out[column] = "" if empty else str(value)
        else:
            out[column] = math.nan if value is None else value
    return out


class TrialTable:
    """The run's trial table in the driver's memory: one row per finished trial, in the order
    the rows were written.

    The recorder (:class:`~mdsearch.search.progress.TrialRecorder`) appends each row right after
    writing it to trials.csv; the searcher, the confirmation policy and the progress line read
    it here, so trials.csv is read back only when a run is resumed (:meth:`read`). A row is a
    dict with the schema's types (:data:`TEXT_COLUMNS` as ``str``, ``mdconv_stages`` a tuple
    of ints, other columns numbers, NaN when missing). Plain data: Ray Tune pickles the
    searcher and the callbacks that hold it.

    Args:
        columns: the table's columns on disk (trials.csv's header: an older run's keeps its
            own, so appended rows line up with it).
        rows: rows already written.

    Example:
        >>> table = TrialTable.new(["A"])
        >>> table.append({"trial": 0, "arch": "x", "status": "COMPLETE", "auc": 0.7,
        ...               "flops_m": 300.0, "mdconv_stages": [1, 5]})
        >>> len(table), table.rows()[0]["mdconv_stages"], table.seen()
        (1, (1, 5), Counter({'x': 1}))
    """

    def __init__(self, columns: Sequence[str], rows: Iterable[Mapping[str, Any]] = ()) -> None:
        self.columns = list(columns)
        self._rows: list[dict[str, Any]] = []
        self._frames: dict[str | None, tuple[int, pd.DataFrame]] = {}
        for row in rows:
            self.append(row)

    @classmethod
    def new(cls, label_names: Sequence[str]) -> TrialTable:
        """An empty table of a new run: :data:`COLUMNS`, then one AUC column per label."""
        return cls(table_columns(label_names))

    @classmethod
    def read(cls, path: str | Path, label_names: Sequence[str]) -> TrialTable:
        """A resumed run's table as its trials.csv holds it (the one read of the file while a
        search runs); a new table (:meth:`new`) when the file is absent or empty.

        Raises:
            pandas.errors.ParserError, UnicodeDecodeError: as :func:`read_trial_table`.
        """
        import pandas as pd

        try:
            frame = read_trial_table(path)
        except (FileNotFoundError, pd.errors.EmptyDataError):
            return cls.new(label_names)
        return cls(list(frame.columns), frame.to_dict("records"))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_frames": {}}  # Tune's checkpoints need no cached DataFrame

    def append(self, row: Mapping[str, Any]) -> None:
        """Add one finished trial's row (the recorder's, as written to trials.csv)."""
        self._rows.append(_typed(row))

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self, proxy: str | None = None) -> list[dict[str, Any]]:
        """The rows (of one :data:`PROXY_KINDS` kind; None: all), in table order."""
        return [r for r in self._rows if proxy is None or _row_kind(r) == proxy]

    def count(self, proxy: str | None = None, status: str | None = None) -> int:
        """Rows of one kind (None: all) with one ``status`` (None: any)."""
        return sum(1 for r in self.rows(proxy) if status is None or r.get("status") == status)

    def seen(self, proxy: str | None = None) -> Counter[str]:
        """Canonical architecture string -> its rows (of one kind; None: all)."""
        return Counter(str(r["arch"]) for r in self.rows(proxy) if r.get("arch"))

    def objective_values(
        self, metrics: Sequence[str], proxy: str | None = None
    ) -> list[tuple[float, ...]]:
        """The objectives (``metrics`` order) of every COMPLETE row whose values are all finite
        numbers, in table order."""
        out = []
        for r in self.rows(proxy):
            if r.get("status") != "COMPLETE":
                continue
            try:
                values = tuple(float(r[m]) for m in metrics)
            except (KeyError, TypeError, ValueError):
                continue
            if all(math.isfinite(v) for v in values):
                out.append(values)
        return out

    def frame(self, proxy: str | None = None) -> pd.DataFrame:
        """The rows (of one kind; None: all) as a DataFrame with :attr:`columns` first and the
        schema's types (a cell a row lacks: "" in a text column, ``()`` in ``mdconv_stages``,
        else NaN). A new copy each call, built once per new row."""
        import pandas as pd

        cached = self._frames.get(proxy)
        if cached is None or cached[0] != len(self._rows):
            rows = self.rows(proxy)
            extra = [c for r in rows for c in r if c not in self.columns]
            frame = pd.DataFrame(rows, columns=[*self.columns, *dict.fromkeys(extra)])
            for column in TEXT_COLUMNS:
                if column in frame:
                    frame[column] = [_typed({column: v})[column] for v in frame[column]]
            cached = (len(self._rows), frame)
            self._frames[proxy] = cached
        return cached[1].copy()
