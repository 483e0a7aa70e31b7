"""The ``mdsearch`` command line.

    mdsearch run --budget 100            search (embedded synthetic data unless --data is given)
    mdsearch run --resume runs/NAME      continue a killed or interrupted search to its budget
    mdsearch space [PRESET|FILE]         the choices of a search space and its size
    mdsearch show ARCH                   per-stage table of an architecture with FLOPs and params
    mdsearch report RUN                  Pareto-front report (HTML, Markdown, PNG, CSV)
    mdsearch pareto RUN                  the front as a table in the terminal
    mdsearch export RUN --pick knee      arch.json, model card, ONNX / TorchScript / safetensors
    mdsearch train ARCH.json --data ...  full training, then test metrics in the paper's layout
    mdsearch eval ARCH.json --weights W  evaluate saved weights the same way
    mdsearch proxy-check --short 1,2 --long 8   how far the short proxy's ranking can be trusted

Bad input exits with status 2 and one line saying what to change; nothing is written then.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]


def _user_errors() -> tuple[type[Exception], ...]:
    """Exceptions that mean "the user asked for something that cannot be done": one line, exit 2."""
    from mdsearch.mdconv import BuildError, LatencyError
    from mdsearch.results import ResultsError
    from mdsearch.space import ArchSpecError, SpaceError

    from .datasets import DataError
    from .proxy_check import ProxyCheckError
    from .runfolder import RunError

    return (ArchSpecError, SpaceError, BuildError, LatencyError, DataError, RunError,
            ProxyCheckError, ResultsError)  # fmt: skip


def _positive_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _optional_int(text: str) -> int | None:
    return None if text.lower() in {"all", "none", "0"} else _positive_int(text)


def _add_run(sub) -> None:
    from .orchestrate import EARLY_STOP, SAMPLERS
    from .proxy import ProxyConfig

    p = sub.add_parser(
        "run",
        help="search MD-Conv placements (AUC vs FLOPs)",
        description="Search MD-Conv placements with Ray Tune + Optuna, training a short proxy per "
        "architecture. Without --data it runs on a synthetic phantom set (labelled as such).",
    )
    p.add_argument(
        "--budget",
        type=_positive_int,
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
        type=_optional_int,
        default=d.train_subset,
        help=f"training images per epoch (default {d.train_subset}; 'all' for the whole split)",
    )
    g.add_argument(
        "--val-subset",
        type=_optional_int,
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
    from .orchestrate import SearchSettings
    from .proxy import ProxyConfig

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

    from .orchestrate import SearchSettings, prepare, run_search
    from .runfolder import RunFolder

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


def _add_report(sub) -> None:
    p = sub.add_parser(
        "report", help="write a run's Pareto-front report (HTML, Markdown, PNG, CSV)"
    )
    p.add_argument("run", help="run folder (runs/<name>)")
    p.add_argument("--out", default=None, help="where to write (default: the run folder)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the CIs")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args) -> int:
    from mdsearch.results import write_report

    files = write_report(args.run, args.out, n_resamples=args.resamples)
    for key, path in files.items():
        print(f"{key:16s} {path}")
    return 0


def _add_pareto(sub) -> None:
    p = sub.add_parser("pareto", help="print a run's Pareto front as a table")
    p.add_argument("run", help="run folder (runs/<name>)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (0: no CIs)")
    p.set_defaults(func=_cmd_pareto)


def _cmd_pareto(args) -> int:
    from mdsearch.results import format_pareto_table

    print(format_pareto_table(args.run, n_resamples=args.resamples))
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export an architecture of the front: arch.json, card, ONNX/TorchScript/safetensors",
    )
    p.add_argument("run", help="run folder (runs/<name>)")
    p.add_argument(
        "--pick",
        default="knee",
        help="knee (default) | best-auc | ARCH_ID | 'flops<=1250' | 'auc>=0.78' (comma-joined)",
    )
    p.add_argument(
        "--format",
        default="onnx,torchscript,safetensors",
        help="comma-separated network formats (default all three)",
    )
    p.add_argument("--out", default=None, help="export folder (default RUN/exports/<arch id>)")
    p.add_argument("--weights", default=None, help="trained weights (.safetensors) to export")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args) -> int:
    from mdsearch.results.export import export

    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    files = export(args.run, args.pick, formats, out_dir=args.out, weights=args.weights)
    for key, path in files.items():
        print(f"{key:12s} {path}")
    arch = files.get("arch_json")
    if arch is not None:
        print(f"next: mdsearch train {arch} --data ...   (full training + test metrics)")
    return 0


def _add_space(sub) -> None:
    p = sub.add_parser("space", help="print a search space's choices and size")
    p.add_argument(
        "space", nargs="?", default="default", help="preset (default, paper) or YAML/JSON file"
    )
    p.add_argument("--backbone", default=None, help="timm backbone replacing the space's")
    p.set_defaults(func=_cmd_space)


def _cmd_space(args) -> int:
    from mdsearch.space import load_space

    print(load_space(args.space, args.backbone).describe())
    return 0


def _add_show(sub) -> None:
    p = sub.add_parser("show", help="per-stage table of one architecture with FLOPs and params")
    p.add_argument(
        "arch",
        help="canonical string (e.g. mobilenetv2_100:c14:k3,k3,k3,k3,k3,k3.5s1:1,k3), "
        "'paper', 'baseline', or an arch.json file",
    )
    p.add_argument("--input-size", type=int, default=448, help="FLOPs input size (default 448)")
    p.add_argument("--backbone", default="mobilenetv2_100", help="backbone for 'paper'/'baseline'")
    p.add_argument("--num-classes", type=int, default=14, help="outputs for 'paper'/'baseline'")
    p.add_argument(
        "--latency",
        action="store_true",
        help="also measure latency (ms per image, batch 1) per stage and in total",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads for --latency")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda, for --latency")
    p.set_defaults(func=_cmd_show)


def _cmd_show(args) -> int:
    from mdsearch.space import ArchSpec

    if args.arch in {"baseline", "paper"}:
        spec = ArchSpec.default(args.backbone, args.num_classes)
        if args.arch == "paper":
            spec = spec.with_stage(5, (3, 5), (1, 1))
    else:
        spec = ArchSpec.load(args.arch)
    if args.input_size < 32:
        raise _usage(f"--input-size {args.input_size}: must be at least 32")
    from mdsearch.mdconv import format_arch_table

    from .orchestrate import check_latency_device

    check_latency_device(args.device, needed=args.latency, flag="--device")

    print(
        format_arch_table(
            spec, args.input_size, latency=args.latency, threads=args.threads, device=args.device
        )
    )
    return 0


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _add_train(sub) -> None:
    keep = argparse.SUPPRESS  # unset flags stay unset: --resume then reuses the checkpoint's
    p = sub.add_parser(
        "train",
        help="train a chosen architecture fully, then evaluate it once on the test split",
        description="Train ARCH from scratch (checkpoint every epoch, --resume continues), keep "
        "the best-on-validation weights, then evaluate once on the test split in the paper's "
        "layout: per-label AUC (Table 6) or, for one label, accuracy/sensitivity/specificity/AUC "
        "(Table 8) at a threshold chosen on validation (Youden's J). Writes weights.safetensors, "
        "arch.json, history.csv, eval.json, eval.md.",
    )
    p.add_argument("arch", help="arch.json (from mdsearch export) or a canonical arch string")
    p.add_argument(
        "--data",
        default=keep,
        help="as for run (default phantom, synthetic); its label count must equal the arch's "
        "num_classes",
    )
    p.add_argument(
        "--out",
        default=None,
        help="output folder (default <arch.json folder>/train; train-<arch id> for a string)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the checkpoint in --out at its next epoch, with its settings",
    )
    p.add_argument(
        "--eval-on-val",
        action="store_true",
        help="data without a test split: report validation metrics, labelled as such",
    )
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=keep, help="default 30")
    g.add_argument("--resolution", type=int, default=keep, help="input size in px (default 224)")
    g.add_argument("--batch-size", type=int, default=keep, help="default 64")
    g.add_argument(
        "--train-subset",
        type=_optional_int,
        default=keep,
        help="training images per epoch (default all)",
    )
    g.add_argument("--lr", type=float, default=keep, help="peak learning rate (default 3e-3)")
    g.add_argument("--weight-decay", type=float, default=keep, help="default 1e-4")
    g.add_argument("--optimizer", choices=("adamw", "sgd"), default=keep, help="default adamw")
    g.add_argument("--schedule", choices=("cosine", "constant"), default=keep)
    g.add_argument("--no-augment", dest="augment", action="store_const", const=False, default=keep)
    g.add_argument(
        "--seed", type=int, default=keep, help="seeds init, data order, validation split (0)"
    )
    g.add_argument(
        "--val-fraction", type=float, default=keep, help="patients held out (default 0.2)"
    )
    r = p.add_argument_group("resources")
    r.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    r.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    r.add_argument("--cache-dir", default=None, help="decoded-image cache")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    from mdsearch.results.train import TrainConfig, saved_settings, train_and_evaluate
    from mdsearch.space import ArchSpec

    spec = ArchSpec.load(args.arch)
    arch_file = Path(args.arch)
    if args.out:
        out = Path(args.out)
    else:
        out = arch_file.parent / "train" if arch_file.is_file() else Path(f"train-{spec.arch_id}")
    given = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__}
    data = {"data": "phantom", "val_fraction": 0.2}
    if args.resume:
        saved = saved_settings(out)
        given = {**saved["config"], **given}
        data.update({k: v for k, v in saved["data_settings"].items() if k in data})
    data.update({k: getattr(args, k) for k in data if hasattr(args, k)})
    config = TrainConfig.from_dict(given)
    if min(config.epochs, config.batch_size) < 1 or config.lr <= 0:
        raise _usage("--epochs, --batch-size and --lr must be positive")
    try:
        _, _, files = train_and_evaluate(
            spec,
            data["data"],
            config,
            out,
            resume=args.resume,
            device=_device(args.device),
            threads=args.threads,
            val_fraction=data["val_fraction"],
            cache_dir=args.cache_dir,
            eval_on_val=args.eval_on_val,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        print(f"\ninterrupted: continue with mdsearch train {args.arch} --out {out} --resume")
        raise
    print(f"output: {out} ({', '.join(sorted(p.name for p in files.values()))})")
    return 0


def _add_eval(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate saved weights on the test split (the paper's table layout)",
        description="Evaluate weights written by mdsearch train on the test split, as train does "
        "at its end (threshold for one label chosen on validation, never on test).",
    )
    p.add_argument("arch", help="the arch.json the weights were trained with (or its string)")
    p.add_argument("--weights", required=True, help="weights.safetensors from mdsearch train")
    p.add_argument("--data", default=None, help="as for run (default: the training run's)")
    p.add_argument("--out", default=None, help="report folder (default: the weights' folder)")
    p.add_argument(
        "--resolution", type=int, default=None, help="default: the weights' training resolution"
    )
    p.add_argument(
        "--seed", type=int, default=None, help="validation split seed (default: the training's)"
    )
    p.add_argument(
        "--val-fraction", type=float, default=None, help="default: the training's, else 0.2"
    )
    p.add_argument(
        "--eval-on-val",
        action="store_true",
        help="data without a test split: report validation metrics, labelled as such",
    )
    p.add_argument("--batch-size", type=int, default=128, help="default 128")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--cache-dir", default=None, help="decoded-image cache")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args) -> int:
    from mdsearch.results.evaluate import evaluate_saved
    from mdsearch.space import ArchSpec

    if args.batch_size < 1:
        raise _usage(f"--batch-size {args.batch_size}: use 1 or more")
    _, files = evaluate_saved(
        ArchSpec.load(args.arch),
        args.weights,
        args.data,
        out_dir=args.out,
        resolution=args.resolution,
        seed=args.seed,
        val_fraction=args.val_fraction,
        cache_dir=args.cache_dir,
        eval_on_val=args.eval_on_val,
        device=_device(args.device),
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    print(f"report: {files['md']}")
    return 0


def _add_proxy_check(sub) -> None:
    from .proxy import ProxyConfig

    keep = argparse.SUPPRESS  # unset flags stay unset: --run then supplies the run's settings
    d = ProxyConfig()
    p = sub.add_parser(
        "proxy-check",
        help="measure how far short proxies rank architectures like a longer training",
        description="Train K architectures (the baseline, the paper's, samples of --space) with S "
        "seeds at each --short epoch count and at --long, then report each setting's seed noise, "
        "the spread between architectures, Kendall's tau of the short vs long ranking (with a "
        "bootstrap interval over seeds) and the cheapest short proxy with tau >= 0.6. With --run, "
        "unset flags come from that run and the results go into its report.",
    )
    p.add_argument("--run", default=None, help="search run folder: its settings, its report")
    p.add_argument("--data", default=keep, help="as for run (default phantom, synthetic)")
    p.add_argument("--space", default=keep, help="preset or space file sampled (default default)")
    p.add_argument("--backbone", default=keep, help="timm backbone replacing the space's")
    p.add_argument("--archs", type=_positive_int, default=4, help="K architectures (default 4)")
    p.add_argument("--seeds", type=_positive_int, default=2, help="S seeds each (default 2)")
    p.add_argument(
        "--short",
        default=None,
        help=f"short proxies as epoch counts, e.g. 1,2,4 (default the proxy's {d.epochs}; with "
        "--run the run's own length is always added)",
    )
    p.add_argument(
        "--long",
        default=None,
        help="reference length in epochs (default max(8, 4 x longest short))",
    )
    p.add_argument("--seed", type=int, default=keep, help="first seed; also samples the archs (0)")
    p.add_argument("--out", default=None, help="output folder without --run (proxy-check-<date>)")
    g = p.add_argument_group("training (as for mdsearch run); defaults: ProxyConfig or --run's")
    g.add_argument("--resolution", type=int, default=keep, help=f"px (default {d.resolution})")
    g.add_argument("--train-subset", type=_optional_int, default=keep, help="images per epoch")
    g.add_argument("--val-subset", type=_optional_int, default=keep, help="validation images")
    g.add_argument("--batch-size", type=int, default=keep, help=f"default {d.batch_size}")
    g.add_argument("--lr", type=float, default=keep, help=f"peak learning rate ({d.lr:g})")
    g.add_argument("--weight-decay", type=float, default=keep)
    g.add_argument("--optimizer", choices=("adamw", "sgd"), default=keep)
    g.add_argument(
        "--schedule",
        choices=("cosine", "constant"),
        default=keep,
        help="cosine (default): every setting trained separately; constant: short AUCs read "
        "from the long runs' epochs",
    )
    g.add_argument("--val-fraction", type=float, default=keep, help="default 0.2")
    s = p.add_argument_group("statistics")
    s.add_argument(
        "--ci-over",
        choices=("seeds", "archs", "both"),
        default="seeds",
        help="what the tau interval's bootstrap redraws (default seeds)",
    )
    s.add_argument("--resamples", dest="n_resamples", type=int, default=1000, help="default 1000")
    r = p.add_argument_group("resources")
    r.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    r.add_argument("--cache-dir", default=keep, help="decoded-image cache")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=_cmd_proxy_check)


def _cmd_proxy_check(args) -> int:
    from mdsearch.results.fidelity import format_fidelity_table

    from .proxy_check import (
        prepare_output,
        run_proxy_check,
        settings_from_flags,
        write_proxy_check,
    )

    settings, out = settings_from_flags(vars(args))
    prepare_output(out)
    result = run_proxy_check(settings, device=_device(args.device), quiet=args.quiet)
    files = write_proxy_check(result, out)
    print(format_fidelity_table(result))
    print(f"written: {files['json']}, {files['md']}")
    return 0


class _UsageError(ValueError):
    pass


def _usage(message: str) -> _UsageError:
    return _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="mdsearch",
        description="Neural architecture search over MD-Conv placements for chest X-ray classifiers.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_run,
        _add_space,
        _add_show,
        _add_report,
        _add_pareto,
        _add_export,
        _add_train,
        _add_eval,
        _add_proxy_check,
    ):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mdsearch`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (_UsageError, *_user_errors()) as exc:
        print(f"mdsearch {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
