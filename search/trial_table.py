"""The trial table (``trials.csv``): its columns, their order and types, and how to read it.

The one schema of the table: :class:`~mdsearch.search.runfolder.RunFolder` writes rows with
it, :func:`mdsearch.results.load_run` reads them with it.

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

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

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
    "empty_table",
    "label_column",
    "label_columns",
    "proxy_kind",
    "read_trial_table",
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
#: ``mdconv_stages`` is the searched stages with MD-Conv, space-separated ("1 5").
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
