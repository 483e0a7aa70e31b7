"""mdsearch train: full training of a chosen architecture, then its test metrics."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import device, optional_int, usage

__all__ = ["add_train"]


def add_train(sub) -> None:
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
        type=optional_int,
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
        raise usage("--epochs, --batch-size and --lr must be positive")
    try:
        _, _, files = train_and_evaluate(
            spec,
            data["data"],
            config,
            out,
            resume=args.resume,
            device=device(args.device),
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
