"""What the trials mean: Pareto front, hypervolume, knee, uncertainty, reports, exports and the
evaluation of trained networks.

Reads a run folder (``config.json``, ``trials.csv``, ``predictions/*.npz``) with pandas; never
imports Ray. Entry points: :func:`analyse_run` (everything below as one object),
:func:`write_report` (``mdsearch report``: :func:`gather_report` -> :func:`build_report`, a
:class:`Document` of :class:`Section` s -> :func:`render_markdown` / :func:`render_html`),
:func:`format_pareto_table` (``mdsearch pareto``),
:func:`export_architecture` (``mdsearch export``; :func:`pick_architecture` is its ``--pick``)
and :func:`evaluate_saved` (``mdsearch eval``). Heavy libraries (torch, onnx, matplotlib) are
imported inside the functions that use them.

Names load on first use (:pep:`562`): ``import mdsearch.results`` imports none of its modules, and
``from mdsearch.results import CAM_LEVEL`` only the one that defines it (and what that imports),
so the command line builds its ``--help`` without pandas, torch or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

#: module -> the public names it defines, re-exported here.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "analysis": ("RunAnalysis", "analyse_run", "pick_architecture"),
    "confirmation": (
        "CONFIRMED_SEEDS",
        "FrontConfirmation",
        "evidence",
        "next_to_confirm",
        "race_candidates",
    ),
    "document": ("Bullets", "Document", "Figure", "Paragraph", "Section", "Table"),
    "errors": ("ResultsError",),
    "evaluate": (
        "EVAL_BATCH_SIZE",
        "evaluate_model",
        "evaluate_saved",
        "evaluate_weights",
        "saved_data_settings",
    ),
    "evaluation_report": ("EVALUATION_FILES", "format_evaluation", "write_evaluation"),
    "explain": ("EXPLAIN_SPLITS", "explain_saved", "explain_section", "with_explain_section"),
    "explain_cases": (
        "CASE_KINDS",
        "CaseSelection",
        "confident_cases",
        "decision_thresholds",
        "ground_truth_cases",
        "located_cases",
        "most_confident_cases",
        "split_rows",
    ),
    "explain_document": (
        "EXPLAIN_FILES",
        "Explanation",
        "format_explanation",
        "pointing_game_line",
    ),
    "explain_files": ("write_explanation",),
    "explain_grid": ("explain_figure", "grid_caption", "panel_title"),
    "explain_maps": ("cam_target_layer", "class_activation_maps", "sigmoid_scores"),
    "export": (
        "FORMATS",
        "ONNX_SNIPPET",
        "PYTORCH_SNIPPET",
        "TRAINED_WEIGHTS",
        "Say",
        "export_architecture",
        "export_folder",
    ),
    "export_formats": (
        "EXPORT_FORMATS",
        "EXPORT_TOLERANCE",
        "ExportFormat",
        "OnnxExport",
        "SafetensorsExport",
        "TorchScriptExport",
        "check_outputs",
        "export_format",
    ),
    "export_metadata": (
        "GRAYSCALE",
        "INTERPOLATION",
        "METADATA_PREFIX",
        "ModelInterface",
        "read_threshold",
    ),
    "fidelity_report": ("fidelity_section", "format_fidelity_markdown", "format_fidelity_table"),
    "figures": (
        "hypervolume_figure",
        "pareto_figure",
        "projections",
        "report_figures",
        "stage_figure",
        "supernet_figure",
    ),
    "localisation": (
        "CAM_LEVEL",
        "NIH_SIDE",
        "FindingScore",
        "box_mask",
        "map_iou",
        "map_peak",
        "pointing_hit",
        "poisson_binomial_tail",
        "score_localisation",
    ),
    "metrics": ("Evaluation", "binary_metrics", "evaluate_predictions", "youden_threshold"),
    "noise_model": ("NoiseModel",),
    "paper_tables": (
        "PAPER_TABLE6",
        "PAPER_TABLE6_MEAN",
        "PAPER_TABLE8",
        "paper_reference",
        "paper_table6",
        "paper_table8",
    ),
    "pareto": (
        "OBJECTIVES",
        "Objective",
        "default_reference",
        "hypervolume",
        "hypervolume_history",
        "knee_index",
        "minimisation_matrix",
        "non_dominated",
        "objective_column",
        "pareto_mask",
        "resolve_objectives",
    ),
    "picks": ("Constraint", "Pick", "parse_pick", "select_pick"),
    "proxy_fidelity": (
        "TauEstimate",
        "kendall_tau_ci",
        "proxy_check_result",
        "recommend_proxy",
        "summarise_proxy_check",
    ),
    "report": ("format_pareto_table", "gather_report", "write_report"),
    "report_markup": ("render_html", "render_markdown", "render_text"),
    "report_sections": ("ReportData", "build_pareto_summary", "build_report"),
    "report_tables": ("pareto_csv_table", "pareto_table"),
    "run_facts": ("WallTime", "run_wall_time"),
    "saved_data": (
        "SavedData",
        "SavedDataFlags",
        "check_label_count",
        "load_saved_data",
        "saved_data_settings",
    ),
    "seed_noise": (
        "SeedNoise",
        "arch_interval",
        "difference_samples",
        "pooled_seed_noise",
        "seed_noise_draws",
        "with_seed_noise",
    ),
    "stage_effects": ("StageEffect", "StageEffectModel", "choice_label", "fit_stage_effects"),
    "supernet_analysis": ("SupernetAgreement", "SupernetAnalysis", "analyse_supernet"),
    "supernet_report": ("supernet_section",),
    "synthetic_search": ("SyntheticSearch", "simulate_search"),
    "trials": ("LoadedRun", "eligible_mask", "load_run", "pool_by_arch", "proxy_kind"),
    "uncertainty": (
        "DEFAULT_RESAMPLES",
        "AUCDifference",
        "PredictionBootstrap",
        "auc_from_counts",
        "bootstrap_counts",
        "bootstrap_mean_auc",
        "mean_auc",
        "percentile_interval",
    ),
    "verdict": (
        "ArchVerdict",
        "Claim",
        "Verdict",
        "arch_verdict",
        "pooled_paired_sd",
        "run_verdict",
        "seeds_needed",
    ),
    "verdict_text": ("verdict_headline", "verdict_lines"),
    "weights": ("check_weights_arch", "load_weights", "read_weights_metadata", "save_weights"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = list(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next lookup is an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
