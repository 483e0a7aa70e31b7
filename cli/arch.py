"""mdsearch space / show: a search space's choices, one architecture's per-stage table."""

from __future__ import annotations

from .common import usage

__all__ = ["add_space", "add_show"]


def add_space(sub) -> None:
    p = sub.add_parser("space", help="print a search space's choices and size")
    p.add_argument(
        "space",
        nargs="?",
        default="default",
        help="preset (default, paper, every-stage) or YAML/JSON file",
    )
    p.add_argument(
        "--backbone", default=None, help="timm backbone replacing the space's (default: its own)"
    )
    p.add_argument(
        "--resolution",
        type=int,
        default=_PROXY_RESOLUTION,
        help="the proxy's input side (px): the default space searches only the stages visible "
        "there, as `mdsearch run --resolution` does (default %(default)s)",
    )
    p.set_defaults(func=_cmd_space)


#: `mdsearch run`'s default --resolution (search.settings.PROXY_DATA; not imported here, so that
#: `mdsearch --help` loads no torch): tests/test_cli.py checks that they agree.
_PROXY_RESOLUTION = 64


def _cmd_space(args) -> int:
    from mdsearch.space import SpaceError, load_space

    if args.resolution < 8:
        raise SpaceError(f"--resolution {args.resolution}: use 8 px or more")
    space = load_space(args.space, args.backbone, resolution=args.resolution)
    print(space.describe())
    if space.only_visible:
        print(f"(stages visible at --resolution {args.resolution}: `mdsearch run` with that "
              "resolution searches these)")  # fmt: skip
    return 0


def add_show(sub) -> None:
    p = sub.add_parser("show", help="per-stage table of one architecture with FLOPs and params")
    p.add_argument(
        "arch",
        help="canonical string (e.g. mobilenetv2_100:c14:k3,k3,k3,k3,k3,k3.5s1:1,k3), "
        "'paper', 'baseline', or an arch.json file",
    )
    p.add_argument("--input-size", type=int, default=448, help="FLOPs input size (default 448)")
    p.add_argument(
        "--backbone",
        default="mobilenetv2_100",
        help="backbone for 'paper'/'baseline' (default %(default)s)",
    )
    p.add_argument(
        "--num-classes",
        type=int,
        default=14,
        help="outputs for 'paper'/'baseline' (default %(default)s, ChestX-ray14's findings)",
    )
    p.add_argument(
        "--latency",
        action="store_true",
        help="also measure latency (ms per image, batch 1) per stage and in total",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for --latency (default: torch's own choice, one per core)",
    )
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda, for --latency")
    p.set_defaults(func=_cmd_show)


def _cmd_show(args) -> int:
    from mdsearch.space import ArchSpec

    if args.arch == "baseline":
        spec = ArchSpec.default(args.backbone, args.num_classes)
    elif args.arch == "paper":
        spec = ArchSpec.paper(args.backbone, args.num_classes)
    else:
        spec = ArchSpec.load(args.arch)
    if args.input_size < 32:
        raise usage(f"--input-size {args.input_size}: must be at least 32")
    from mdsearch.mdconv import format_arch_table
    from mdsearch.search import check_latency_device

    check_latency_device(args.device, needed=args.latency, flag="--device")

    print(
        format_arch_table(
            spec, args.input_size, latency=args.latency, threads=args.threads, device=args.device
        )
    )
    return 0
