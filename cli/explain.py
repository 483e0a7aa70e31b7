"""mdsearch explain: Grad-CAM maps of trained weights (the paper's Figure 7) and, with ground
truth, how well they point at the findings."""

from __future__ import annotations

from .common import device, usage
from .flags import add_device_flag, add_quiet_flag, add_weights_data_flags, saved_data_flags

__all__ = ["add_explain"]


def add_explain(sub) -> None:
    """Add ``mdsearch explain`` to the subcommands ``sub``."""
    from mdsearch.results import CAM_LEVEL, EXPLAIN_SPLITS

    p = sub.add_parser(
        "explain",
        help="Grad-CAM maps of trained weights; with --boxes, localisation against ground truth",
        description="Class activation maps (Grad-CAM, the grad-cam package) of weights written "
        "by mdsearch train, at the last spatial feature map (bn2 of MobileNet-v2, the last block "
        "of MobileNet-v3), of what a reader checks first: per label the most confident true "
        "positives, false positives and false negatives at the threshold mdsearch eval chooses "
        "on validation. Writes explain.png (image, map over it, finding, score), explain.md "
        "and explain.json next to the weights (and links them from eval.md there). With --boxes: "
        "every finding with a known location is scored: pointing game (hit rate against chance) "
        "and IoU of the thresholded map, against the radiologists' boxes of BBox_List_2017.csv "
        "(chestxray14) or the generator's lesion masks (phantom); per case in localisation.csv. "
        "Data flags not given come from train.json next to the weights.",
    )
    p.add_argument("arch", help="the arch.json the weights were trained with (or its string)")
    p.add_argument("--weights", required=True, help="weights.safetensors from mdsearch train")
    p.add_argument(
        "--images",
        type=int,
        default=8,
        help="cases shown in the grid (default 8); without --boxes, per label the most "
        "confident true positive, false positive and false negative (at a threshold chosen on "
        "validation), labels and kinds in turn",
    )
    p.add_argument(
        "--boxes",
        nargs="?",
        const=True,
        default=False,
        metavar="CSV",
        help="score localisation against ground truth: chestxray14's BBox_List_2017.csv(.gz) in "
        "the data folder (or the CSV given), phantom's lesion masks",
    )
    p.add_argument(
        "--split",
        choices=EXPLAIN_SPLITS,
        default="test",
        help="images to explain (default test; all: every image)",
    )
    p.add_argument(
        "--layer",
        default=None,
        help="Grad-CAM's target module, e.g. blocks.5 (default: the last spatial feature map)",
    )
    p.add_argument(
        "--level",
        type=float,
        default=CAM_LEVEL,
        help=f"IoU threshold, a share of each map's maximum (default {CAM_LEVEL})",
    )
    p.add_argument("--out", default=None, help="output folder (default: the weights' folder)")
    add_weights_data_flags(p)
    r = p.add_argument_group("inference")
    r.add_argument(
        "--batch-size", type=int, default=32, help="images per Grad-CAM pass (default 32)"
    )
    add_device_flag(r)
    add_quiet_flag(p, "no progress bar")
    p.set_defaults(func=_cmd_explain)


def _cmd_explain(args) -> int:
    from mdsearch.results import explain_saved
    from mdsearch.space import ArchSpec

    if args.images < 1:
        raise usage(f"--images {args.images}: use 1 or more")
    if args.batch_size < 1:
        raise usage(f"--batch-size {args.batch_size}: use 1 or more")
    if not 0 < args.level < 1:
        raise usage(f"--level {args.level}: use a share of the map's maximum between 0 and 1")
    _, files = explain_saved(
        ArchSpec.load(args.arch),
        args.weights,
        images=args.images,
        boxes=args.boxes,
        split=args.split,
        layer=args.layer,
        level=args.level,
        out_dir=args.out,
        device=device(args.device),
        batch_size=args.batch_size,
        progress=not args.quiet,
        **saved_data_flags(args),
    )
    print(f"report: {files['md']} (grid: {files['png']})")
    return 0
