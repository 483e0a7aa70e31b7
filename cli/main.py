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
    mdsearch explain ARCH.json --weights W --boxes   Grad-CAM maps, localisation vs ground truth
    mdsearch proxy-check --short 1,2 --long 8   how far the short proxy's ranking can be trusted

Bad input exits with status 2 and one line saying what to change; nothing is written then.
"""

from __future__ import annotations

import argparse
import sys

from . import arch, evaluate, explain, proxy_check, report, run, train
from .common import OneLineParser, UsageError

__all__ = ["build_parser", "main"]


def _user_errors() -> tuple[type[Exception], ...]:
    """Exceptions that mean "the user asked for something that cannot be done": one line, exit 2."""
    from mdsearch.mdconv import BuildError, LatencyError
    from mdsearch.results import ResultsError
    from mdsearch.search.datasets import DataError
    from mdsearch.search.proxy_check import ProxyCheckError
    from mdsearch.search.runfolder import RunError
    from mdsearch.search.settings import SettingsError
    from mdsearch.space import ArchSpecError, SpaceError

    return (ArchSpecError, SpaceError, BuildError, LatencyError, DataError, RunError,
            ProxyCheckError, ResultsError, SettingsError)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = OneLineParser(
        prog="mdsearch",
        description="Neural architecture search over MD-Conv placements for chest X-ray classifiers.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser
    )
    for add in (
        run.add_run,
        arch.add_space,
        arch.add_show,
        report.add_report,
        report.add_pareto,
        report.add_export,
        train.add_train,
        evaluate.add_eval,
        explain.add_explain,
        proxy_check.add_proxy_check,
    ):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mdsearch`` console script."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # no command: the list of commands, not a one-line error
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, *_user_errors()) as exc:
        print(f"mdsearch {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
