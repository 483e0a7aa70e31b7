"""mdsearch eval: saved weights evaluated on the test split, in the paper's layout."""

from __future__ import annotations

from .common import device, usage
from .flags import add_device_flag, add_quiet_flag, add_weights_data_flags, saved_data_flags

__all__ = ["add_eval"]


def add_eval(sub) -> None:
    """Add ``mdsearch eval`` to the subcommands ``sub``."""
    from mdsearch.results import EVAL_BATCH_SIZE

    p = sub.add_parser(
        "eval",
        help="evaluate saved weights on the test split (the paper's table layout)",
        description="Evaluate weights written by mdsearch train on the test split, as train does "
        "at its end (threshold for one label chosen on validation, never on test). Data flags "
        "not given come from train.json next to the weights (the training run's).",
    )
    p.add_argument("arch", help="the arch.json the weights were trained with (or its string)")
    p.add_argument("--weights", required=True, help="weights.safetensors from mdsearch train")
    p.add_argument("--out", default=None, help="report folder (default: the weights' folder)")
    p.add_argument(
        "--eval-on-val",
        action="store_true",
        help="data without a test split: report validation metrics, labelled as such",
    )
    add_weights_data_flags(p)
    r = p.add_argument_group("inference")
    r.add_argument(
        "--batch-size",
        type=int,
        default=EVAL_BATCH_SIZE,
        help=f"images per forward pass (default {EVAL_BATCH_SIZE})",
    )
    add_device_flag(r)
    add_quiet_flag(p, "no progress bar")
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args) -> int:
    from mdsearch.results import evaluate_saved
    from mdsearch.space import ArchSpec

    if args.batch_size < 1:
        raise usage(f"--batch-size {args.batch_size}: use 1 or more")
    _, files = evaluate_saved(
        ArchSpec.load(args.arch),
        args.weights,
        out_dir=args.out,
        eval_on_val=args.eval_on_val,
        device=device(args.device),
        batch_size=args.batch_size,
        progress=not args.quiet,
        **saved_data_flags(args),
    )
    print(f"report: {files['md']}")
    return 0
