"""mdsearch run: the search (Ray Tune + Optuna), its resume, and the report at its end."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from .common import optional_int, positive_int

__all__ = ["add_run"]


def add_run(sub) -> None:
    from mdsearch.search.orchestrate import EARLY_STOP, SAMPLERS
    from mdsearch.search.proxy import ProxyConfig

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
        help="trials in total (default 100; with --resume: the run's own budget)",
    )
    p.add_argument(
        "--data",
        default="phantom",
        help="phantom (default, synthetic) | chestxray14=PATH | chestmnist[:SIZE][=FILE.npz] | kermany=PATH",
    )
    p.add_argument(
        "--space", default="default", help="preset (default, paper) or a YAML/JSON space file"
    )
    p.add_argument(
        "--backbone",
        default=None,
        help="timm backbone replacing the space's (e.g. mobilenetv3_large_100)",
    )
    p.add_argument(
        "--sampler", default="tpe", choices=SAMPLERS, help="Optuna sampler (default tpe)"
    )
    p.add_argument(
        "--objectives",
        default="auc,flops",
        help="what to optimise: auc,flops (default) | auc,latency | auc,flops,latency "
        "(latency: predicted CPU ms per image from a per-block table timed once and cached)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seeds the sampler, the data split and the trials"
    )
    p.add_argument("--out", default=None, help="run folder (default runs/<date>-<time>)")
    p.add_argument(
        "--resume",
        metavar="RUN",
        default=None,
        help="continue the run in this folder to its budget (its settings are reused)",
    )
    g = p.add_argument_group(
        "proxy training (one trial); defaults: mdsearch.search.proxy.ProxyConfig"
    )
    d = ProxyConfig()
    g.add_argument(
        "--resolution",
        type=int,
        default=d.resolution,
        help=f"training input size in px (default {d.resolution})",
    )
    g.add_argument(
        "--epochs", type=int, default=d.epochs, help=f"proxy epochs (default {d.epochs})"
    )
    g.add_argument(
        "--train-subset",
        type=optional_int,
        default=d.train_subset,
        help=f"training images per epoch (default {d.train_subset}; 'all' for the whole split)",
    )
    g.add_argument(
        "--val-subset",
        type=optional_int,
        default=d.val_subset,
        help="validation images scored (default: all)",
    )
    g.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    g.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr:g})")
    g.add_argument(
        "--weight-decay", type=float, default=d.weight_decay, help=f"default {d.weight_decay:g}"
    )
    g.add_argument("--optimizer", choices=("adamw", "sgd"), default=d.optimizer)
    g.add_argument("--schedule", choices=("cosine", "constant"), default=d.schedule)
    g.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="share of patients held out for validation (default 0.2)",
    )
    g.add_argument(
        "--input-size",
        type=int,
        default=448,
        help="input size at which FLOPs are counted (default 448, as in the paper)",
    )
    g.add_argument(
        "--latency-size",
        type=int,
        default=224,
        help="input size at which latency is predicted, batch 1, --cpus-per-trial threads "
        "(default 224)",
    )
    g.add_argument(
        "--latency-device",
        default="cpu",
        help="where the latency table is timed: cpu (default) or cuda, on this machine",
    )
    g.add_argument(
        "--early-stop",
        choices=EARLY_STOP,
        default="none",
        help="asha: stop weak trials early on AUC (stopped trials never enter the front)",
    )
    r = p.add_argument_group("resources")
    r.add_argument("--cpus-per-trial", type=float, default=1.0, help="default 1")
    r.add_argument("--gpus-per-trial", type=float, default=0.0, help="default 0")
    r.add_argument("--max-concurrent", type=int, default=None, help="cap on trials running at once")
    r.add_argument(
        "--address",
        default=None,
        help="join an existing Ray cluster (auto or ray://HOST:PORT); default: local Ray",
    )
    r.add_argument(
        "--cache-dir", default=None, help="decoded-image cache (default: user cache dir)"
    )
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
        help="retries of a trial whose worker or node died (default 2; a trial that raises is "
        "recorded FAILED, not retried)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    p.set_defaults(func=_cmd_run)


def _settings_from_args(args):
    from mdsearch.search.orchestrate import SearchSettings
    from mdsearch.search.proxy import ProxyConfig

    proxy = ProxyConfig(
        resolution=args.resolution,
        epochs=args.epochs,
        batch_size=args.batch_size,
        train_subset=args.train_subset,
        val_subset=args.val_subset,
        lr=args.lr,
        weight_decay=args.weight_decay,
        optimizer=args.optimizer,
        schedule=args.schedule,
    )
    return SearchSettings(
        data=args.data,
        space=args.space,
        backbone=args.backbone,
        budget=args.budget,
        sampler=args.sampler,
        seed=args.seed,
        input_size=args.input_size,
        proxy=proxy,
        early_stop=args.early_stop,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent,
        address=args.address,
        cache_dir=args.cache_dir,
        val_fraction=args.val_fraction,
        trial_timeout=args.trial_timeout,
        max_failures=2 if args.max_failures is None else args.max_failures,
        objectives=tuple(args.objectives.split(",")),
        latency_size=args.latency_size,
        latency_device=args.latency_device,
    )


def _cmd_run(args) -> int:
    from dataclasses import replace

    from mdsearch.search.orchestrate import SearchSettings, prepare, run_search
    from mdsearch.search.runfolder import RunFolder

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
        prepared = prepare(settings, folder.path, resume=True)
    else:
        out = args.out or f"runs/{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        if args.budget is None:
            args.budget = 100
        prepared = prepare(_settings_from_args(args), out)
    folder = run_search(prepared, quiet=args.quiet)
    table = folder.read_table()
    counts = table["status"].value_counts().to_dict() if len(table) else {}
    print(f"run folder: {folder.path}")
    print(
        f"trials: {len(table)} ({', '.join(f'{v} {k.lower()}' for k, v in counts.items()) or 'none'})"
    )
    print(f"trial table: {folder.table_path}")
    print(f"Optuna study: optuna-dashboard {folder.study_url}")
    if not args.no_report and len(table):
        _write_report(folder.path)
    return 0


def _write_report(path: Path) -> None:
    from mdsearch.results import ResultsError, write_report

    try:
        files = write_report(path)
    except ResultsError as exc:  # e.g. every trial failed: the search itself still finished
        print(f"no report: {exc}", file=sys.stderr)
        return
    print(f"report: {files['html']}")
