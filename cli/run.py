"""mdsearch run: the search (Ray Tune + Optuna), its resume, and the report at its end."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mdsearch.search.run_settings import (
    EARLY_STOP,
    SAMPLERS,
    STRATEGIES,
    SUPERNET_BUDGET,
    SUPERNET_SCORES,
    SearchSettings,
)
from mdsearch.search.settings import PROXY_DATA, PROXY_RECIPE

from .common import positive_int
from .flags import (
    DATA_HELP,
    add_data_flags,
    add_quiet_flag,
    add_recipe_flags,
    data_settings,
    train_recipe,
)
from .supernet_flags import add_supernet_flags, supernet_flags_ignored, supernet_settings

__all__ = ["DEFAULTS", "add_run"]

#: The defaults every flag of ``run`` shows and takes (a search's own fields; the data and
#: the proxy recipe are PROXY_DATA and PROXY_RECIPE).
DEFAULTS = SearchSettings()
_RECIPE_NAMES = (
    "epochs",
    "train_subset",
    "val_subset",
    "batch_size",
    "lr",
    "weight_decay",
    "optimizer",
    "schedule",
)


def add_run(sub: Any) -> None:
    """The ``run`` subcommand."""
    d = DEFAULTS
    p = sub.add_parser(
        "run",
        help="search MD-Conv placements (AUC vs FLOPs)",
        description="Search MD-Conv placements with Ray Tune + Optuna, training a short proxy per "
        "architecture. Without --data it runs on a synthetic phantom set (labelled as such).",
    )
    p.add_argument(
        "--budget",
        type=positive_int,
        default=None,
        help=f"trials in total (default {d.budget}; with --strategy supernet: stand-alone trials "
        f"after the supernet, default {SUPERNET_BUDGET}; with --resume: the run's own budget)",
    )
    add_data_flags(p, PROXY_DATA, names=["data"], helps={"data": DATA_HELP})
    p.add_argument(
        "--space",
        default=d.space,
        help=f"preset (default, paper) or a YAML/JSON space file (default: the preset {d.space!r})",
    )
    p.add_argument(
        "--backbone",
        default=d.backbone,
        help="timm backbone replacing the space's, e.g. mobilenetv3_large_100 (default: the "
        "space's own)",
    )
    p.add_argument(
        "--sampler",
        default=d.sampler,
        choices=SAMPLERS,
        help=f"Optuna sampler (default {d.sampler})",
    )
    objectives = ",".join(d.objectives)
    p.add_argument(
        "--objectives",
        default=objectives,
        help=f"what to optimise: {objectives} (default) | auc,latency | auc,flops,latency "
        "(latency: predicted CPU ms per image from a per-block table timed once and cached)",
    )
    add_data_flags(
        p,
        PROXY_DATA,
        names=["seed"],
        helps={"seed": "seeds the sampler, the data split and the trials"},
    )
    p.add_argument(
        "--strategy",
        default=d.strategy,
        choices=STRATEGIES,
        help="standalone: every trial trains its architecture; supernet: train one "
        "weight-sharing supernet, score sub-networks on it, then train the best-ranked on "
        f"their own (the front is built on those only) (default {d.strategy})",
    )
    p.add_argument(
        "--supernet-epochs",
        type=positive_int,
        default=d.supernet_epochs,
        help="--strategy supernet: epochs of the supernet's training, each step training the "
        "largest, the smallest and --supernet-random-subnets random sub-networks; 8 cost 16 "
        f"stand-alone proxy trials with the default sandwich (default {d.supernet_epochs})",
    )
    p.add_argument(
        "--supernet-scores",
        type=positive_int,
        default=d.supernet_scores,
        metavar="N",
        help="--strategy supernet: sub-networks scored on the supernet (default: every "
        f"architecture of a space of up to {SUPERNET_SCORES}, else {SUPERNET_SCORES} chosen by "
        "--sampler)",
    )
    add_supernet_flags(p, DEFAULTS.supernet)
    p.add_argument("--out", default=None, help="run folder (default runs/<date>-<time>)")
    p.add_argument(
        "--resume",
        metavar="RUN",
        default=None,
        help="continue the run in this folder to its budget (its settings are reused)",
    )
    g = p.add_argument_group(
        "proxy training (one trial); defaults: mdsearch.search.settings.PROXY_RECIPE, PROXY_DATA"
    )
    add_data_flags(
        g, PROXY_DATA, names=["resolution"], helps={"resolution": "training input size in px"}
    )
    add_recipe_flags(g, PROXY_RECIPE, names=_RECIPE_NAMES, helps={"epochs": "proxy epochs"})
    add_data_flags(g, PROXY_DATA, names=["val_fraction"])
    g.add_argument(
        "--input-size",
        type=int,
        default=d.input_size,
        help=f"input size at which FLOPs are counted (default {d.input_size}, as in the paper)",
    )
    g.add_argument(
        "--latency-size",
        type=int,
        default=d.latency_size,
        help="input size at which latency is predicted, batch 1, --cpus-per-trial threads "
        f"(default {d.latency_size})",
    )
    g.add_argument(
        "--latency-device",
        default=d.latency_device,
        help=f"where the latency table is timed: cpu or cuda, on this machine "
        f"(default {d.latency_device})",
    )
    g.add_argument(
        "--early-stop",
        choices=EARLY_STOP,
        default=d.early_stop,
        help="asha: stop weak trials early on AUC (stopped trials never enter the front) "
        f"(default {d.early_stop})",
    )
    g.add_argument(
        "--confirm",
        type=float,
        default=d.confirm,
        metavar="SHARE",
        help="share of the budget spent, after exploration, on further seeds of the "
        "architectures whose intervals touch the front, and of the baseline; 0: explore to "
        f"the end (default {d.confirm:g})",
    )
    r = p.add_argument_group("resources")
    r.add_argument(
        "--cpus-per-trial",
        type=float,
        default=d.cpus_per_trial,
        help=f"default {d.cpus_per_trial:g}",
    )
    r.add_argument(
        "--gpus-per-trial",
        type=float,
        default=d.gpus_per_trial,
        help=f"default {d.gpus_per_trial:g}",
    )
    r.add_argument(
        "--max-concurrent",
        type=int,
        default=d.max_concurrent,
        help="cap on trials running at once; with --strategy supernet also on the supernet "
        "training's CPU threads (this x --cpus-per-trial) (default: no cap, as many as the CPUs "
        "and GPUs per trial allow; the supernet takes a whole node)",
    )
    r.add_argument(
        "--address",
        default=d.address,
        help="join an existing Ray cluster (auto or ray://HOST:PORT); default: local Ray",
    )
    add_data_flags(r, PROXY_DATA, names=["cache_dir"])
    f = p.add_argument_group("faults")
    f.add_argument(
        "--trial-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop a trial running longer and record it FAILED (default: no limit)",
    )
    f.add_argument(
        "--max-failures",
        type=int,
        default=None,
        help=f"retries of a trial whose worker or node died (default {d.max_failures}; a trial "
        "that raises is recorded FAILED, not retried)",
    )
    add_quiet_flag(p)
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    p.set_defaults(func=_cmd_run)


def _settings_from_args(args: argparse.Namespace) -> SearchSettings:
    d = DEFAULTS
    return SearchSettings(
        data=data_settings(args, d.data),
        proxy=train_recipe(args, d.proxy),
        space=args.space,
        backbone=args.backbone,
        budget=_default_budget(args.strategy) if args.budget is None else args.budget,
        sampler=args.sampler,
        input_size=args.input_size,
        early_stop=args.early_stop,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent,
        address=args.address,
        trial_timeout=args.trial_timeout,
        max_failures=d.max_failures if args.max_failures is None else args.max_failures,
        objectives=tuple(args.objectives.split(",")),
        latency_size=args.latency_size,
        latency_device=args.latency_device,
        confirm=args.confirm,
        strategy=args.strategy,
        supernet_epochs=args.supernet_epochs,
        supernet_scores=args.supernet_scores,
        supernet=supernet_settings(args, d.supernet),
    )


def _default_budget(strategy: str) -> int:
    return SUPERNET_BUDGET if strategy == "supernet" else DEFAULTS.budget


def _cmd_run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from mdsearch.search import RunFolder, prepare, run_search

    if args.resume:
        folder = RunFolder(args.resume)
        folder.check_resumable()
        settings = SearchSettings.from_dict(folder.read_config()["settings"])
        # On resume only the budget, the place to run and the fault handling may change.
        if args.budget is not None:
            settings = replace(settings, budget=args.budget)
        if args.address is not None:
            settings = replace(settings, address=args.address)
        if args.trial_timeout is not None:
            settings = replace(settings, trial_timeout=args.trial_timeout)
        if args.max_failures is not None:
            settings = replace(settings, max_failures=args.max_failures)
        supernet_flags_ignored(args, settings.supernet)
        prepared = prepare(settings, folder.path, resume=True)
    else:
        out = args.out or f"runs/{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        prepared = prepare(_settings_from_args(args), out)
    finished = run_search(
        prepared, quiet=args.quiet, confirm_policy=_confirm_policy(prepared.settings)
    )
    folder, table = finished.folder, finished.table
    print(f"run folder: {folder.path}")
    trials = table.rows("standalone")
    if table.count("supernet"):
        scored = table.rows("supernet")
        print(f"supernet scores: {len(scored)} ({_counts(scored)}); record: supernet.json")
        print(f"stand-alone trials: {len(trials)} ({_counts(trials)})")
    else:
        print(f"trials: {len(trials)} ({_counts(trials)})")
    print(f"trial table: {folder.table_path}")
    print(f"Optuna study: optuna-dashboard {folder.study_url}")
    if not args.no_report and trials:
        _write_report(folder.path)
    return 0


def _counts(rows: Sequence[dict[str, Any]]) -> str:
    """Rows by status, most first: ``3 complete, 1 failed`` (``none`` for no row)."""
    from collections import Counter

    counts = Counter(str(r["status"]) for r in rows).most_common()
    return ", ".join(f"{n} {status.lower()}" for status, n in counts) or "none"


def _confirm_policy(settings: SearchSettings) -> Any:
    """The results package's confirmation policy for this search (None without --confirm)."""
    from mdsearch.results import FrontConfirmation

    if settings.confirm <= 0:
        return None
    return FrontConfirmation(cost=settings.metric_columns[1])


def _write_report(path: Path) -> None:
    from mdsearch.results import ResultsError, write_report

    try:
        files = write_report(path)
    except ResultsError as exc:  # e.g. every trial failed: the search itself still finished
        print(f"no report: {exc}", file=sys.stderr)
        return
    print(f"report: {files['html']}")
    if "pareto_csv" not in files:  # a supernet run whose stand-alone trials all failed
        print("no front: no stand-alone trial finished its proxy", file=sys.stderr)
        return
    print(_knee_line(files["pareto_csv"]))
    if "verdict" in files:
        print(files["verdict"].read_text().rstrip())
    print(f"next: mdsearch pareto {path}   |   mdsearch export {path} --pick knee")


def _knee_line(pareto_csv: Path) -> str:
    """The knee of the front as the report wrote it (pareto.csv): id, FLOPs, AUC, interval."""
    import pandas as pd

    front = pd.read_csv(pareto_csv)
    knee = front[front["knee"]].iloc[0]
    auc = f"AUC {knee['auc']:.3f}"
    if "auc_mean" in knee and pd.notna(knee["auc_mean"]):
        auc += f" (shrunk; mean over {int(knee['seeds'])} seed(s) {knee['auc_mean']:.3f}"
    else:
        auc += f" (mean over {int(knee['seeds'])} seed(s)"
    if pd.notna(knee.get("auc_ci_low")):
        auc += f" [{knee['auc_ci_low']:.3f}, {knee['auc_ci_high']:.3f}]"
    return f"knee: {knee['arch_id']}, {knee['flops_m']:.1f} M FLOPs at {front['input_size'].iloc[0]} px, {auc})"
