"""``mdsearch run``'s flags for the supernet's settings (:class:`~mdsearch.search.SupernetSettings`:
sandwich size, distillation, kernel transform, per-choice depthwise weights, recalibration
images), in one place: the flags, the settings they give, and the note a resume prints for a
flag it ignores (a resumed run keeps the settings its config.json records, as for every other
run setting).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any

from mdsearch.search.supernet import SupernetSettings

__all__ = ["SUPERNET_FLAGS", "add_supernet_flags", "supernet_flags_ignored", "supernet_settings"]

#: ``mdsearch run``'s supernet flags -> SupernetSettings fields (the flags default to None, so
#: a resume can tell a value given from one left out).
SUPERNET_FLAGS = {
    "--supernet-random-subnets": "random_subnets",
    "--supernet-distill": "distill",
    "--supernet-kernel-transform": "kernel_transform",
    "--supernet-per-choice-depthwise": "per_choice_depthwise",
    "--supernet-recalibration-images": "recalibration_images",
}


def add_supernet_flags(p: Any, d: SupernetSettings) -> None:
    """The flags of how the supernet trains and recalibrates, each showing its default from
    ``d`` (``SearchSettings().supernet``)."""
    p.add_argument(
        "--supernet-random-subnets",
        type=int,
        default=None,
        metavar="N",
        help="--strategy supernet: sub-networks drawn at random per training step besides the "
        "largest and the smallest (the sandwich rule's N; each adds --supernet-epochs / proxy "
        f"--epochs stand-alone proxy trials of compute: 4 at the defaults) (default "
        f"{d.random_subnets})",
    )
    p.add_argument(
        "--supernet-distill",
        action="store_true",
        default=None,
        help="--strategy supernet: in-place distillation (BigNAS): every sub-network but the "
        "largest learns from the largest's outputs (default: off, all learn from the labels)",
    )
    p.add_argument(
        "--supernet-kernel-transform",
        action="store_true",
        default=None,
        help="--strategy supernet: Once-for-All's learned kernel transformation: a smaller "
        "kernel is a learned map of the larger one's centre (default: off, the bare centre)",
    )
    p.add_argument(
        "--supernet-per-choice-depthwise",
        action="store_true",
        default=None,
        help="--strategy supernet: each kernel choice of a stage owns its depthwise weights "
        "and the BatchNorm after them, the pointwise layers stay shared (default: off, a "
        "smaller kernel is the centre of the larger; excludes --supernet-kernel-transform)",
    )
    p.add_argument(
        "--supernet-recalibration-images",
        type=int,
        default=None,
        metavar="N",
        help="--strategy supernet: training images (a fixed shuffled sample) over which each "
        "scored sub-network's BatchNorm statistics are recomputed, at least "
        f"{d.recalibration_batch} (default {d.recalibration_images})",
    )


def supernet_settings(args: argparse.Namespace, base: SupernetSettings) -> SupernetSettings:
    """``base`` with the supernet flags given on the command line."""
    given = {field: getattr(args, _dest(flag)) for flag, field in SUPERNET_FLAGS.items()}
    return replace(base, **{k: v for k, v in given.items() if v is not None})


def supernet_flags_ignored(args: argparse.Namespace, kept: SupernetSettings) -> None:
    """On --resume the run keeps its supernet settings: a note for each flag given otherwise."""
    for flag, field in SUPERNET_FLAGS.items():
        value = getattr(args, _dest(flag))
        if value is not None and value != getattr(kept, field):
            print(
                f"note: {flag} ignored on --resume: the run keeps its {field}="
                f"{getattr(kept, field)!r} (config.json)",
                file=sys.stderr,
            )


def _dest(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")
