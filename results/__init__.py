"""What the trials mean: Pareto front, hypervolume, knee, uncertainty, reports, exports and the
evaluation of trained networks.

Reads a run folder (``config.json``, ``trials.csv``, ``predictions/*.npz``) with pandas; never
imports Ray. Entry points: :func:`analyse_run` (everything below as one object),
:func:`write_report` (``mdsearch report``), :func:`format_pareto_table` (``mdsearch pareto``),
:func:`export_architecture` (``mdsearch export``; :func:`pick_architecture` is its ``--pick``)
and :func:`evaluate_saved` (``mdsearch eval``). Heavy libraries (torch, onnx, matplotlib) are
imported inside the functions that use them.
"""

from .analysis import RunAnalysis, analyse_run, pick_architecture
from .confirmation import CONFIRMED_SEEDS, MAX_SEEDS, evidence, next_to_confirm
from .errors import ResultsError
from .evaluate import EVAL_BATCH_SIZE, evaluate_model, evaluate_saved, evaluate_weights
from .evaluation_report import EVALUATION_FILES, format_evaluation, write_evaluation
from .export import (
    FORMATS,
    ONNX_SNIPPET,
    PYTORCH_SNIPPET,
    TRAINED_WEIGHTS,
    Say,
    export_architecture,
    export_folder,
)
from .export_formats import (
    EXPORT_FORMATS,
    EXPORT_TOLERANCE,
    ExportFormat,
    OnnxExport,
    SafetensorsExport,
    TorchScriptExport,
    check_outputs,
    export_format,
)
from .export_metadata import (
    GRAYSCALE,
    INTERPOLATION,
    METADATA_PREFIX,
    ModelInterface,
    read_threshold,
)
from .figures import (
    figure_names,
    figure_pngs,
    hypervolume_figure,
    pareto_figure,
    projections,
    stage_figure,
)
from .metrics import (
    Evaluation,
    binary_metrics,
    evaluate_predictions,
    youden_threshold,
)
from .paper_tables import (
    PAPER_TABLE6,
    PAPER_TABLE6_MEAN,
    PAPER_TABLE8,
    paper_reference,
    paper_table6,
    paper_table8,
)
from .pareto import (
    OBJECTIVES,
    Objective,
    default_reference,
    hypervolume,
    hypervolume_history,
    knee_index,
    minimisation_matrix,
    non_dominated,
    objective_column,
    pareto_mask,
    resolve_objectives,
)
from .picks import Constraint, Pick, parse_pick, select_pick
from .proxy_fidelity import (
    TauEstimate,
    kendall_tau_ci,
    proxy_check_result,
    recommend_proxy,
    summarise_proxy_check,
)
from .report import format_pareto_table, pareto_csv_table, pareto_table, write_report
from .seed_noise import (
    SeedNoise,
    arch_interval,
    difference_samples,
    pooled_seed_noise,
    seed_noise_draws,
    with_seed_noise,
)
from .stage_effects import StageEffect, StageEffectModel, choice_label, fit_stage_effects
from .synthetic_search import SyntheticSearch, simulate_search
from .trials import LoadedRun, eligible_mask, load_run, pool_by_arch
from .uncertainty import (
    DEFAULT_RESAMPLES,
    AUCDifference,
    PredictionBootstrap,
    auc_from_counts,
    bootstrap_counts,
    bootstrap_mean_auc,
    mean_auc,
    percentile_interval,
)
from .weights import check_weights_arch, load_weights, read_weights_metadata, save_weights

__all__ = [
    "CONFIRMED_SEEDS",
    "MAX_SEEDS",
    "evidence",
    "next_to_confirm",
    "AUCDifference",
    "Constraint",
    "DEFAULT_RESAMPLES",
    "EVALUATION_FILES",
    "EVAL_BATCH_SIZE",
    "EXPORT_FORMATS",
    "EXPORT_TOLERANCE",
    "Evaluation",
    "ExportFormat",
    "FORMATS",
    "GRAYSCALE",
    "INTERPOLATION",
    "LoadedRun",
    "METADATA_PREFIX",
    "ModelInterface",
    "ONNX_SNIPPET",
    "PYTORCH_SNIPPET",
    "Say",
    "OBJECTIVES",
    "Objective",
    "OnnxExport",
    "PAPER_TABLE6",
    "PAPER_TABLE6_MEAN",
    "PAPER_TABLE8",
    "Pick",
    "PredictionBootstrap",
    "ResultsError",
    "RunAnalysis",
    "SafetensorsExport",
    "SeedNoise",
    "StageEffect",
    "StageEffectModel",
    "SyntheticSearch",
    "TRAINED_WEIGHTS",
    "TauEstimate",
    "TorchScriptExport",
    "analyse_run",
    "arch_interval",
    "auc_from_counts",
    "binary_metrics",
    "bootstrap_counts",
    "bootstrap_mean_auc",
    "check_outputs",
    "check_weights_arch",
    "choice_label",
    "default_reference",
    "difference_samples",
    "eligible_mask",
    "evaluate_model",
    "evaluate_predictions",
    "evaluate_saved",
    "evaluate_weights",
    "export_architecture",
    "export_folder",
    "export_format",
    "figure_names",
    "figure_pngs",
    "fit_stage_effects",
    "format_evaluation",
    "format_pareto_table",
    "hypervolume",
    "hypervolume_figure",
    "hypervolume_history",
    "kendall_tau_ci",
    "knee_index",
    "load_run",
    "load_weights",
    "mean_auc",
    "minimisation_matrix",
    "non_dominated",
    "objective_column",
    "paper_reference",
    "paper_table6",
    "paper_table8",
    "pareto_csv_table",
    "pareto_figure",
    "pareto_mask",
    "pareto_table",
    "parse_pick",
    "percentile_interval",
    "pick_architecture",
    "pool_by_arch",
    "pooled_seed_noise",
    "projections",
    "proxy_check_result",
    "read_threshold",
    "read_weights_metadata",
    "recommend_proxy",
    "resolve_objectives",
    "save_weights",
    "seed_noise_draws",
    "select_pick",
    "simulate_search",
    "stage_figure",
    "summarise_proxy_check",
    "with_seed_noise",
    "write_evaluation",
    "write_report",
    "youden_threshold",
]
