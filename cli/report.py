"""mdsearch report / pareto / export: what a finished run means, and its chosen networks."""

from __future__ import annotations

import argparse
import functools
import sys

from .flags import add_quiet_flag

__all__ = ["add_report", "add_pareto", "add_export"]


def _add_resamples_flag(parser, what: str = "the AUC intervals") -> None:
    """``--resamples``: bootstrap resamples of the AUC intervals, default from the results."""
    from mdsearch.results import DEFAULT_RESAMPLES

    parser.add_argument(
        "--resamples",
        type=int,
        default=DEFAULT_RESAMPLES,
        help=f"bootstrap resamples for {what} (0: none; default {DEFAULT_RESAMPLES})",
    )


def add_report(sub) -> None:
    """Add ``mdsearch report`` to the subcommands ``sub``."""
    p = sub.add_parser(
        "report", help="write a run's Pareto-front report (HTML, Markdown, PNG, CSV)"
    )
    p.add_argument("run", help="run folder (runs/<name>)")
    p.add_argument("--out", default=None, help="where to write (default: the run folder)")
    _add_resamples_flag(p)
    p.set_defaults(func=_cmd_report)


def _cmd_report(args) -> int:
    from mdsearch.results import write_report

    files = write_report(args.run, args.out, n_resamples=args.resamples)
    for key, path in files.items():
        print(f"{key:16s} {path}")
    return 0


def add_pareto(sub) -> None:
    """Add ``mdsearch pareto`` to the subcommands ``sub``."""
    p = sub.add_parser("pareto", help="print a run's Pareto front as a table")
    p.add_argument("run", help="run folder (runs/<name>)")
    _add_resamples_flag(p)
    p.set_defaults(func=_cmd_pareto)


def _cmd_pareto(args) -> int:
    from mdsearch.results import format_pareto_table

    print(format_pareto_table(args.run, n_resamples=args.resamples))
    return 0


def _formats(text: str) -> tuple[str, ...]:
    """argparse type of ``--format``: comma-separated names of registered export formats (none:
    only arch.json and the card)."""
    from mdsearch.results import EXPORT_FORMATS

    names = tuple(dict.fromkeys(f.strip() for f in text.split(",") if f.strip()))
    unknown = [n for n in names if n not in EXPORT_FORMATS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown export format {', '.join(unknown)}: use "
            f"{', '.join(EXPORT_FORMATS)} (comma-separated)"
        )
    return names


def add_export(sub) -> None:
    """Add ``mdsearch export`` to the subcommands ``sub``."""
    from mdsearch.results import EXPORT_FORMATS

    every = ",".join(EXPORT_FORMATS)
    p = sub.add_parser(
        "export",
        help="export an architecture of the front: arch.json, config.json, card, "
        "ONNX/TorchScript/safetensors",
        description="Export an architecture of a run: arch.json, a timm-style config.json, a "
        "model card and the network files, each carrying its input recipe (size, grey to 3 "
        "channels, mean/std), label names, output meaning and, after mdsearch train, the "
        "decision threshold. Progress goes to stderr, the written files to stdout.",
    )
    p.add_argument("run", help="run folder (runs/<name>)")
    p.add_argument(
        "--pick",
        default="knee",
        help="knee (default) | best-auc | ARCH_ID | 'flops<=1250' | 'auc>=0.78' (comma-joined)",
    )
    p.add_argument(
        "--format",
        type=_formats,
        default=tuple(EXPORT_FORMATS),
        metavar="FORMAT[,FORMAT...]",
        help=f"comma-separated network formats, of {', '.join(EXPORT_FORMATS)} (default {every})",
    )
    p.add_argument("--out", default=None, help="export folder (default RUN/exports/<arch id>)")
    p.add_argument(
        "--weights",
        default=None,
        help="trained weights (.safetensors) to export (default: OUT/train/weights.safetensors "
        "when mdsearch train left it there, else a seeded random initialisation)",
    )
    _add_resamples_flag(p, "the model card's AUC interval")
    add_quiet_flag(p, "no progress lines on stderr")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args) -> int:
    from mdsearch.results import export_architecture

    say = None if args.quiet else functools.partial(print, file=sys.stderr, flush=True)
    files = export_architecture(
        args.run,
        args.pick,
        args.format,
        out_dir=args.out,
        weights=args.weights,
        n_resamples=args.resamples,
        say=say,
    )
    for key, path in files.items():
        print(f"{key:12s} {path}")
    arch = files.get("arch_json")
    if arch is not None:
        print(f"next: mdsearch train {arch} --data ...   (full training + test metrics)")
    return 0
