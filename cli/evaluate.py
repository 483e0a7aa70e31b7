"""mdsearch eval: saved weights evaluated on the test split, in the paper's layout."""

from __future__ import annotations

from .common import device, usage

__all__ = ["add_eval"]


def add_eval(sub) -> None:
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
        raise usage(f"--batch-size {args.batch_size}: use 1 or more")
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
        device=device(args.device),
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    print(f"report: {files['md']}")
    return 0
