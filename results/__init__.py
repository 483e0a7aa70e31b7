"""What the trials mean: Pareto front, hypervolume, knee point, uncertainty, and reports.

Reads a run folder (``config.json``, ``trials.csv``, ``predictions/*.npz``) with pandas; never
imports Ray. Entry points: :func:`analyse_run` (everything below as one object),
:func:`write_report` (``mdsearch report``), :func:`format_pareto_table` (``mdsearch pareto``) and
:func:`pick_architecture` (``mdsearch export --pick``).
"""

from .analysis import RunAnalysis, analyse_run, pick_architecture
from .errors import ResultsError
from .pareto import (
    OBJECTIVES,
    Constraint,
    Objective,
    Pick,
    default_reference,
    hypervolume,
    hypervolume_history,
    knee_index,
    non_dominated,
    pareto_mask,
    parse_pick,
    resolve_objectives,
    select_pick,
)
from .report import format_pareto_table, write_report
from .trials import LoadedRun, eligible_mask, load_run, pool_by_arch
from .uncertainty import (
    AUCDifference,
    PredictionBootstrap,
    auc_from_counts,
    bootstrap_counts,
    bootstrap_mean_auc,
    mean_auc,
    percentile_interval,
)

__all__ = [
    "AUCDifference",
    "Constraint",
    "OBJECTIVES",
    "Objective",
    "Pick",
    "PredictionBootstrap",
    "ResultsError",
    "RunAnalysis",
    "LoadedRun",
    "analyse_run",
    "auc_from_counts",
    "bootstrap_counts",
    "bootstrap_mean_auc",
    "default_reference",
    "eligible_mask",
    "format_pareto_table",
    "hypervolume",
    "hypervolume_history",
    "knee_index",
    "load_run",
    "mean_auc",
    "non_dominated",
    "pareto_mask",
    "parse_pick",
    "percentile_interval",
    "pick_architecture",
    "pool_by_arch",
    "resolve_objectives",
    "select_pick",
    "write_report",
]
