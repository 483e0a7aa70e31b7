"""mdsearch proxy-check: how far the short proxy's ranking can be trusted."""

from __future__ import annotations

import argparse

from .common import device, optional_int, positive_int

__all__ = ["add_proxy_check"]


def add_proxy_check(sub) -> None:
    from mdsearch.search.proxy import ProxyConfig

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
    p.add_argument("--archs", type=positive_int, default=4, help="K architectures (default 4)")
    p.add_argument("--seeds", type=positive_int, default=2, help="S seeds each (default 2)")
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
    g.add_argument("--train-subset", type=optional_int, default=keep, help="images per epoch")
    g.add_argument("--val-subset", type=optional_int, default=keep, help="validation images")
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
    from mdsearch.search.proxy_check import (
        prepare_output,
        run_proxy_check,
        settings_from_flags,
        write_proxy_check,
    )

    settings, out = settings_from_flags(vars(args))
    prepare_output(out)
    result = run_proxy_check(settings, device=device(args.device), quiet=args.quiet)
    files = write_proxy_check(result, out)
    print(format_fidelity_table(result))
    print(f"written: {files['json']}, {files['md']}")
    return 0
