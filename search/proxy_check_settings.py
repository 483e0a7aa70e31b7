"""What ``mdsearch proxy-check`` trains: its settings and its K architectures.

:class:`ProxyCheckSettings` is built on the two settings every training shares
(:class:`~mdsearch.search.settings.DataSettings`, :class:`~mdsearch.search.settings.TrainRecipe`)
and checks itself in one place, with their limits; :func:`sample_architectures` picks the
architectures compared. Running them is :mod:`mdsearch.search.proxy_check`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mdsearch.space import ArchSpec, SearchSpace

from .settings import PROXY_DATA, PROXY_RECIPE, DataSettings, SettingsError, TrainRecipe

__all__ = [
    "AGREEMENT_TAU",
    "CI_OVER",
    "ProxyCheckError",
    "ProxyCheckSettings",
    "sample_architectures",
]

#: Tau at which a short proxy's ranking counts as agreeing with the long one.
AGREEMENT_TAU = 0.6
#: What the tau interval's bootstrap may redraw (see mdsearch.results.proxy_fidelity).
CI_OVER = ("seeds", "archs", "both")


class ProxyCheckError(SettingsError):
    """A proxy-check that cannot run as asked (the message names the flag and what to do)."""


def _epochs_text(epochs: Sequence[int]) -> str:
    return ",".join(str(e) for e in epochs)


@dataclass(frozen=True)
class ProxyCheckSettings:
    """What a proxy-check trains.

    Args:
        data: the images and the validation split; its ``seed`` is also the first training
            seed and seeds the architecture sample.
        proxy: how every run trains (its ``epochs`` is replaced by ``short`` and ``long``).
        space: preset name or space file the sampled architectures come from.
        backbone: optional timm backbone replacing the space's.
        archs: K, architectures compared (at least 2).
        seeds: S, seeds per architecture and setting (1 gives no seed noise and no interval).
        short: short proxies to judge, as epoch counts.
        long: the reference length in epochs (more than every short one).
        ci_over: what the tau bootstrap redraws: ``seeds``, ``archs`` or ``both``.
        n_resamples: bootstrap resamples of the tau interval.
        level: coverage of the interval, e.g. 0.95.
        threshold: tau at which a short proxy agrees with the long one.
        run_proxy_epochs: epochs of the search run this check belongs to (None: no run); its
            seed noise is the one the report quotes.
        threads: torch intra-op threads per training on CPU (the search's per-trial threads).
        supernet: also train the space's weight-sharing supernet once
            (:func:`mdsearch.search.train_supernet`: this proxy's recipe for
            :data:`~mdsearch.search.supernet.SUPERNET_RECIPE`'s epochs, largest + smallest + 2
            random sub-networks per step) and rank the K architectures by its scores, beside the
            short proxies.

    Example:
        >>> ProxyCheckSettings(short=(1, 2), long=8).epochs
        (1, 2, 8)
    """

    data: DataSettings = PROXY_DATA
    proxy: TrainRecipe = PROXY_RECIPE
    space: str = "default"
    backbone: str | None = None
    archs: int = 4
    seeds: int = 2
    short: tuple[int, ...] = (PROXY_RECIPE.epochs,)
    long: int = 8
    ci_over: str = "seeds"
    n_resamples: int = 1000
    level: float = 0.95
    threshold: float = AGREEMENT_TAU
    run_proxy_epochs: int | None = None
    threads: int | None = 1
    supernet: bool = False

    @property
    def seed(self) -> int:
        """The first training seed (also the architecture sample's and the split's)."""
        return self.data.seed

    @property
    def epochs(self) -> tuple[int, ...]:
        """Every setting's epoch count, shortest first (the long one last)."""
        return (*sorted(set(self.short)), self.long)

    @property
    def reuses_long_runs(self) -> bool:
        """Whether short AUCs are read from the long runs (constant schedule only)."""
        return self.proxy.schedule == "constant"

    def recipe(self, epochs: int) -> TrainRecipe:
        """The recipe of one training of ``epochs`` epochs."""
        return replace(self.proxy, epochs=epochs)

    def supernet_recipe(self) -> TrainRecipe:
        """The supernet's training: this proxy's recipe for the supernet's default epochs."""
        from .supernet import SUPERNET_RECIPE

        return replace(self.proxy, epochs=SUPERNET_RECIPE.epochs)

    def check(self) -> None:
        """Raise :class:`ProxyCheckError` (a :class:`SettingsError`) for settings that cannot
        give an answer; the data and the recipe check themselves, with the limits of every
        other training."""
        if self.archs < 2:
            raise ProxyCheckError(f"--archs {self.archs}: a ranking needs 2 or more architectures")
        if self.seeds < 1:
            raise ProxyCheckError(f"--seeds {self.seeds}: use 1 or more (2+ to measure seed noise)")
        if not self.short:
            raise ProxyCheckError("--short: give one or more epoch counts, e.g. --short 1,2")
        if min(self.short) < 1:
            raise ProxyCheckError(f"--short {_epochs_text(self.short)}: epochs must be 1 or more")
        if self.long <= max(self.short):
            raise ProxyCheckError(
                f"--long {self.long} is not longer than --short {_epochs_text(self.short)}: "
                f"use --long {2 * max(self.short)} or more"
            )
        if self.ci_over not in CI_OVER:
            raise ProxyCheckError(f"ci_over {self.ci_over!r}: use one of {', '.join(CI_OVER)}")
        if self.n_resamples < 0:
            raise ProxyCheckError(f"--resamples {self.n_resamples}: use 0 or more")
        if not 0 < self.level < 1:
            raise ProxyCheckError(f"level {self.level}: use a coverage between 0 and 1, e.g. 0.95")
        self.data.check()
        self.recipe(self.long).check()

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for proxy_check.json (the layout every version wrote: the data settings
        flat, ``proxy`` holding the recipe with ``resolution`` and ``threads``)."""
        d: dict[str, Any] = {
            "data": self.data.data,
            "space": self.space,
            "backbone": self.backbone,
            "archs": self.archs,
            "seeds": self.seeds,
            "seed": self.data.seed,
            "short": sorted(set(self.short)),
            "long": self.long,
            "val_fraction": self.data.val_fraction,
            "cache_dir": self.data.cache_dir,
        }
        d.update({k: getattr(self, k) for k in ("ci_over", "n_resamples", "level", "threshold")})
        d["run_proxy_epochs"] = self.run_proxy_epochs
        d["supernet"] = self.supernet
        # The recipe's own epochs are replaced by ``short`` and ``long``: not written, not misread.
        recipe = {k: v for k, v in self.proxy.to_dict().items() if k != "epochs"}
        last = recipe.pop("channels_last")
        d["proxy"] = {
            "resolution": self.data.resolution,
            **recipe,
            "threads": self.threads,
            "channels_last": last,
        }
        return d


# -- architectures --------------------------------------------------------------------------


def sample_architectures(
    space: SearchSpace, k: int, seed: int = 0, num_classes: int = 14
) -> list[tuple[str, ArchSpec]]:
    """K architectures of ``space``: its reference points first, then uniform samples.

    Samples are drawn by index over the product of the stage choices (no enumeration, so the
    16,384-point default space costs nothing), without repeats.

    Args:
        space: the search space.
        k: how many (at most ``space.size``).
        seed: seeds the samples.
        num_classes: outputs of every architecture.

    Returns:
        ``(label, spec)`` pairs; labels are ``baseline``, ``paper`` and ``sample 1`` ...

    Raises:
        ProxyCheckError: ``k`` exceeds the space's size.

    Example:
        >>> from mdsearch.space import load_space
        >>> [label for label, _ in sample_architectures(load_space("paper"), 3, seed=0)]
        ['baseline', 'paper', 'sample 1']
    """
    if k > space.size:
        raise ProxyCheckError(
            f"--archs {k}: space {space.name} holds only {space.size} architectures"
        )
    refs = space.reference_points(num_classes)
    chosen = list(zip(("baseline", "paper"), refs))[:k]
    seen = {spec.canonical for _, spec in chosen}
    rng = np.random.default_rng([seed, 0x9C])
    n_samples = 0
    while len(chosen) < k:
        index = int(rng.integers(space.size))
        stages = []
        for options in reversed(space.choices):  # mixed-radix digits, last stage fastest
            index, digit = divmod(index, len(options))
            stages.append(options[digit])
        spec = ArchSpec(space.backbone, num_classes, tuple(reversed(stages)))
        if spec.canonical not in seen:
            seen.add(spec.canonical)
            n_samples += 1
            chosen.append((f"sample {n_samples}", spec))
    return chosen
