"""mdsearch proxy-check: how far the short proxy's ranking can be trusted.

The command composes the layers: the flags become :class:`ProxyCheckSettings` (here), the
trainings run in :mod:`mdsearch.search.proxy_check`, their figures come from
:mod:`mdsearch.results.proxy_fidelity`, and the result is written as ``proxy_check.json`` with the
Markdown of :mod:`mdsearch.results.fidelity` beside it.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import device, positive_int, removed_on_failure
from .flags import (
    add_data_flags,
    add_device_flag,
    add_quiet_flag,
    add_recipe_flags,
    data_settings,
    train_recipe,
)

if TYPE_CHECKING:  # the settings module imports numpy: not at parser construction
    from mdsearch.search.proxy_check_settings import ProxyCheckSettings
    from mdsearch.search.settings import DataSettings, TrainRecipe

__all__ = ["add_proxy_check", "parse_epochs", "settings_from_flags"]

#: Recipe flags of proxy-check (its epochs are --short and --long, not --epochs).
_RECIPE_FLAGS = (
    "train_subset",
    "val_subset",
    "batch_size",
    "lr",
    "weight_decay",
    "optimizer",
    "schedule",
)


def add_proxy_check(sub) -> None:
    """Add ``mdsearch proxy-check``; unset data and training flags stay unset, so ``--run``
    can supply the run's values."""
    from mdsearch.search.proxy_check_settings import CI_OVER, ProxyCheckSettings
    from mdsearch.search.settings import PROXY_DATA, PROXY_RECIPE

    d = ProxyCheckSettings()
    p = sub.add_parser(
        "proxy-check",
        help="measure how far short proxies rank architectures like a longer training",
        description="Train K architectures (the baseline, the paper's, samples of --space) with S "
        "seeds at each --short epoch count and at --long, then report each setting's seed noise, "
        "the spread between architectures, Kendall's tau of the short vs long ranking (with a "
        "bootstrap interval over seeds) and the cheapest short proxy with tau >= "
        f"{d.threshold:g}. With --run, unset flags come from that run and the results go into "
        "its report.",
    )
    keep = argparse.SUPPRESS
    p.add_argument("--run", default=None, help="search run folder: its settings, its report")
    add_data_flags(p, PROXY_DATA, names=("data",), keep=True)
    p.add_argument(
        "--space", default=keep, help=f"preset or space file sampled (default {d.space})"
    )
    p.add_argument(
        "--backbone",
        default=keep,
        help="timm backbone replacing the space's (default: the space's own, or the run's)",
    )
    p.add_argument(
        "--archs", type=positive_int, default=d.archs, help=f"K architectures (default {d.archs})"
    )
    p.add_argument(
        "--seeds", type=positive_int, default=d.seeds, help=f"S seeds each (default {d.seeds})"
    )
    p.add_argument(
        "--short",
        default=None,
        help=f"short proxies as epoch counts, e.g. 1,2,4 (default the proxy's "
        f"{PROXY_RECIPE.epochs}; with --run the run's own length is always added)",
    )
    p.add_argument(
        "--long",
        default=None,
        help=f"reference length in epochs (default max({d.long}, 4 x longest short))",
    )
    add_data_flags(
        p,
        PROXY_DATA,
        names=("seed",),
        keep=True,
        helps={"seed": "first seed; also samples the archs and seeds the validation split"},
    )
    p.add_argument(
        "--out", default=None, help="output folder without --run (default proxy-check-<date>)"
    )
    g = p.add_argument_group("training (as for mdsearch run)")
    add_data_flags(g, PROXY_DATA, names=("resolution",), keep=True)
    add_recipe_flags(
        g,
        PROXY_RECIPE,
        names=_RECIPE_FLAGS,
        keep=True,
        helps={
            "schedule": "cosine: every setting trained separately; constant: short AUCs read "
            "from the long runs' epochs"
        },
    )
    add_data_flags(g, PROXY_DATA, names=("val_fraction",), keep=True)
    s = p.add_argument_group("statistics")
    s.add_argument(
        "--ci-over",
        choices=CI_OVER,
        default=d.ci_over,
        help=f"what the tau interval's bootstrap redraws (default {d.ci_over})",
    )
    s.add_argument(
        "--resamples",
        dest="n_resamples",
        type=int,
        default=d.n_resamples,
        help=f"default {d.n_resamples}",
    )
    p.add_argument(
        "--supernet",
        action="store_true",
        help="also train the space's weight-sharing supernet once and rank the architectures "
        "by its scores (its tau beside the short proxies')",
    )
    r = p.add_argument_group("resources")
    add_device_flag(r)
    add_data_flags(r, PROXY_DATA, names=("cache_dir",), keep=True)
    add_quiet_flag(p)
    p.set_defaults(func=_cmd_proxy_check)


def parse_epochs(text: str, flag: str = "--short") -> tuple[int, ...]:
    """Epoch counts from ``1,2,4`` (the ``--short`` / ``--long`` syntax).

    Raises:
        ProxyCheckError: not whole numbers, or none.

    Example:
        >>> parse_epochs("1, 2,4")
        (1, 2, 4)
    """
    from mdsearch.search.proxy_check_settings import ProxyCheckError

    try:
        values = tuple(int(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise ProxyCheckError(
            f"{flag} {text!r}: give epoch counts as whole numbers, e.g. {flag} 1,2"
        ) from None
    if not values:
        raise ProxyCheckError(f"{flag} {text!r}: give one or more epoch counts, e.g. {flag} 2")
    return values


def _run_settings(run: str) -> tuple[DataSettings, TrainRecipe, dict[str, Any], int]:
    """What a search run trained its proxies with, read from its config.json by
    :meth:`SearchSettings.from_dict` (every version's layout).

    Returns:
        ``(data, proxy recipe, {"space", "backbone"}, torch threads per trial)``.

    Raises:
        RunError: ``run`` is not a run folder.
    """
    from mdsearch.search.run_settings import SearchSettings
    from mdsearch.search.runfolder import RunFolder

    config = RunFolder(run).read_config()
    # A config.json may hold the proxy beside "settings": the reader before this one took both.
    saved = {"proxy": config.get("proxy", {}), **config.get("settings", {})}
    search = SearchSettings.from_dict(saved)
    space = {"space": search.space, "backbone": search.backbone}
    return search.data, search.proxy, space, search.trial_threads


def settings_from_flags(args: argparse.Namespace) -> tuple[ProxyCheckSettings, Path]:
    """Settings and output folder from ``mdsearch proxy-check``'s flags.

    With ``--run RUN`` every flag not given is taken from the run's config.json (data, space,
    backbone, seed, validation split, cache and proxy settings), the run's own proxy length is
    added to the short settings when shorter than ``--long`` (so the report can quote its seed
    noise), and the output folder is the run folder. Otherwise unset flags take
    :data:`~mdsearch.search.settings.PROXY_DATA`'s and
    :data:`~mdsearch.search.settings.PROXY_RECIPE`'s values and the output goes to ``--out`` or
    ``proxy-check-<date>-<time>``.

    Args:
        args: the parsed flags (data and training flags the user did not type are absent).

    Raises:
        ProxyCheckError, SettingsError: a bad flag; RunError: ``--run`` is not a run.
    """
    from mdsearch.search.proxy_check_settings import ProxyCheckError, ProxyCheckSettings
    from mdsearch.search.settings import PROXY_DATA, PROXY_RECIPE

    run = getattr(args, "run", None)
    data, recipe, space, threads = PROXY_DATA, PROXY_RECIPE, {}, ProxyCheckSettings.threads
    if run:
        data, recipe, space, threads = _run_settings(run)
    data = data_settings(args, data)
    recipe = train_recipe(args, recipe)
    space.update({k: v for k, v in vars(args).items() if k in ("space", "backbone")})
    short = parse_epochs(args.short, "--short") if args.short else (recipe.epochs,)
    if args.long is not None:
        long_epochs = parse_epochs(args.long, "--long")
        if len(long_epochs) != 1:
            raise ProxyCheckError(f"--long {args.long}: give one epoch count, e.g. --long 8")
        long = long_epochs[0]
    else:
        long = max(ProxyCheckSettings.long, 4 * max(short))
    run_epochs = recipe.epochs if run else None
    if run_epochs is not None and run_epochs < long:
        short = (*short, run_epochs)
    settings = ProxyCheckSettings(
        data=data,
        proxy=recipe,
        **space,
        archs=args.archs,
        seeds=args.seeds,
        short=tuple(sorted(set(short))),
        long=long,
        ci_over=args.ci_over,
        n_resamples=args.n_resamples,
        run_proxy_epochs=run_epochs,
        threads=threads,
        supernet=args.supernet,
    )
    settings.check()
    if run:
        out = Path(run)
    elif args.out:
        out = Path(args.out)
    else:
        out = Path(f"proxy-check-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    return settings, out


def _cmd_proxy_check(args: argparse.Namespace) -> int:
    from mdsearch.results import format_fidelity_markdown, format_fidelity_table
    from mdsearch.results.proxy_fidelity import proxy_check_result
    from mdsearch.search.proxy_check import prepare_output, run_proxy_check, write_proxy_check

    settings, out = settings_from_flags(args)
    where = device(args.device)
    with removed_on_failure(out):  # e.g. data found unusable while loading: no empty folder
        prepare_output(out)
        run = run_proxy_check(settings, device=where, quiet=args.quiet)
        result = proxy_check_result(run)
        files = write_proxy_check(result, out, markdown=format_fidelity_markdown(result))
    print(format_fidelity_table(result))  # with the supernet's tau line when one was trained
    print(f"written: {files['json']}, {files['md']}")
    return 0
