"""mdsearch train: full training of a chosen architecture, then its test metrics."""

from __future__ import annotations

from pathlib import Path

from mdsearch.search.settings import FULL_DATA, FULL_RECIPE

from .common import device
from .flags import (
    DATA_HELP,
    add_data_flags,
    add_device_flag,
    add_quiet_flag,
    add_recipe_flags,
    data_settings,
    train_recipe,
)

__all__ = ["add_train"]

#: The recipe flags of ``train``: all but ``--val-subset`` (the best weights are chosen on the
#: whole validation split).
_RECIPE_FLAGS = (
    "epochs",
    "batch_size",
    "train_subset",
    "lr",
    "weight_decay",
    "optimizer",
    "schedule",
    "augment",
)


def add_train(sub) -> None:
    """Add ``mdsearch train``: its flags default to :data:`FULL_DATA` and :data:`FULL_RECIPE`,
    or, with ``--resume``, to the checkpoint's settings (a flag typed replaces them)."""
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
    add_data_flags(
        p,
        FULL_DATA,
        names=("data",),
        keep=True,
        helps={"data": f"{DATA_HELP}; its label count must equal the arch's num_classes"},
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
    add_recipe_flags(g, FULL_RECIPE, names=_RECIPE_FLAGS, keep=True)
    add_data_flags(
        g,
        FULL_DATA,
        names=("resolution", "seed", "val_fraction"),
        keep=True,
        helps={"seed": "seeds init, data order and the validation split"},
    )
    r = p.add_argument_group("resources")
    add_device_flag(r)
    r.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's own choice, one per core)",
    )
    add_data_flags(r, FULL_DATA, names=("cache_dir",))
    add_quiet_flag(p, "no progress bar")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    from mdsearch.results.train_evaluate import train_and_evaluate
    from mdsearch.results.train_folder import (
        CHECKPOINT,
        removed_unless_checkpointed,
        saved_settings,
    )
    from mdsearch.space import ArchSpec

    spec = ArchSpec.load(args.arch)
    arch_file = Path(args.arch)
    if args.out:
        out = Path(args.out)
    else:
        out = arch_file.parent / "train" if arch_file.is_file() else Path(f"train-{spec.arch_id}")
    data, recipe = saved_settings(out) if args.resume else (FULL_DATA, FULL_RECIPE)
    data = data_settings(args, data)  # flags typed replace the defaults or the saved settings
    recipe = train_recipe(args, recipe)
    where = device(args.device)
    try:
        # A failure before the first checkpoint leaves no folder or file behind.
        with removed_unless_checkpointed(out):
            _, _, files = train_and_evaluate(
                spec,
                data,
                recipe,
                data.seed,
                out,
                resume=args.resume,
                device=where,
                threads=args.threads,
                eval_on_val=args.eval_on_val,
                progress=not args.quiet,
            )
    except KeyboardInterrupt:
        if (out / CHECKPOINT).exists():
            print(f"\ninterrupted: continue with mdsearch train {args.arch} --out {out} --resume")
        else:
            print("\ninterrupted before the first epoch ended: nothing was kept")
        raise
    print(f"output: {out} ({', '.join(sorted(p.name for p in files.values()))})")
    return 0
