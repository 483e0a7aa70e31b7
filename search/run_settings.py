"""The settings of one search (:class:`SearchSettings`), what ``--objectives`` may name, and how
they are checked and stored in config.json.

A search is the data it trains on (:class:`~mdsearch.search.settings.DataSettings`, whose
resolution is the proxy's), the proxy recipe (:class:`~mdsearch.search.settings.TrainRecipe`)
and the fields below; each of the three checks itself (``check``), with the limits every
command shares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from .latency_for_search import check_latency_device
from .runfolder import RunError
from .settings import PROXY_DATA, PROXY_RECIPE, DataSettings, TrainRecipe, known_fields
from .supernet import SupernetSettings

__all__ = [
    "EARLY_STOP",
    "GRID_LIMIT",
    "SAMPLERS",
    "SEARCH_OBJECTIVES",
    "STRATEGIES",
    "SUPERNET_BUDGET",
    "SUPERNET_SCORES",
    "SearchSettings",
    "parse_objectives",
]

SAMPLERS = ("tpe", "nsga2", "random", "grid")
#: ``--strategy``: how architectures are scored. ``standalone``: every trial trains its
#: architecture on its own (the proxy); ``supernet``: one weight-sharing supernet is trained,
#: sub-networks are scored on it, and the best-ranked go to stand-alone training (the front is
#: built on those only).
STRATEGIES = ("standalone", "supernet")
#: ``--budget`` of a supernet run when none is given: stand-alone trials after the supernet,
#: whose default training costs 16 more (so 32 proxy trials in all, a third of the default
#: stand-alone run's 100).
SUPERNET_BUDGET = 16
#: ``--supernet-scores`` when none is given: every architecture of a space up to this size
#: (``paper``: 16), else this many chosen by the sampler.
SUPERNET_SCORES = 200
EARLY_STOP = ("none", "asha")
#: A grid sampler enumerates the space: beyond this many architectures it cannot cover it.
GRID_LIMIT = 4096
#: ``--objectives`` names -> (trial result / table column, Optuna direction). AUC comes first:
#: the proxy, early stopping and the report's y-axis are about it.
SEARCH_OBJECTIVES: dict[str, tuple[str, str]] = {
    "auc": ("auc", "max"),
    "flops": ("flops_m", "min"),
    "latency": ("latency_ms", "min"),
}
_OBJECTIVE_ALIASES = {col: name for name, (col, _) in SEARCH_OBJECTIVES.items()}
_OBJECTIVES_HELP = "use auc,flops (default), auc,latency or auc,flops,latency"


def _fail(message: str) -> None:
    raise RunError(message)


def parse_objectives(value: str | Sequence[str]) -> tuple[str, ...]:
    """The ``--objectives`` value as names of :data:`SEARCH_OBJECTIVES`, checked.

    Args:
        value: ``"auc,flops,latency"`` or a sequence of names; column names (``flops_m``,
            ``latency_ms``) and case do not matter.

    Returns:
        The names, ``auc`` first, e.g. ``("auc", "flops", "latency")``.

    Raises:
        RunError: an unknown or repeated name, AUC missing or not first, or AUC alone.

    Example:
        >>> parse_objectives("AUC, latency_ms")
        ('auc', 'latency')
    """
    parts = value.split(",") if isinstance(value, str) else list(value)
    text = ",".join(str(p).strip() for p in parts)
    names = []
    for part in parts:
        key = str(part).strip().lower()
        name = key if key in SEARCH_OBJECTIVES else _OBJECTIVE_ALIASES.get(key)
        if name is None:
            _fail(f"--objectives {text}: {part.strip()!r} is not an objective; {_OBJECTIVES_HELP}")
        names.append(name)
    if len(set(names)) != len(names):
        _fail(f"--objectives {text}: an objective is named twice; {_OBJECTIVES_HELP}")
    if len(names) < 2 or names[0] != "auc":
        _fail(f"--objectives {text}: give auc first and at least one cost; {_OBJECTIVES_HELP}")
    return tuple(names)


@dataclass(frozen=True)
class SearchSettings:
    """Every setting of a search (stored in config.json; ``--resume`` reads them back).

    Args:
        data: the images the proxies train on; its ``resolution`` is the proxy's input side
            (px) and its ``seed`` seeds the sampler, the validation split and the trials
            (repeat k of an arch uses seed + k).
        proxy: how one trial trains its architecture (the proxy recipe).
        space: preset name or space file.
        backbone: optional timm backbone overriding the space's.
        budget: number of trials in total (resumes count the ones already done).
        sampler: Optuna sampler (:data:`SAMPLERS`).
        input_size: input side (px) at which FLOPs are counted (the paper's 448).
        early_stop: ``none`` or ``asha``.
        cpus_per_trial / gpus_per_trial: Ray resources per trial; a trial trains with
            ``cpus_per_trial`` torch threads (:attr:`trial_threads`).
        max_concurrent: cap on trials running at once (None: as many as resources allow).
        address: Ray cluster address (None: a local Ray started and stopped by the command).
        trial_timeout: seconds one trial may run before it is stopped and recorded FAILED
            (None: no limit).
        max_failures: retries of a trial whose worker or node died (not of a trial that raised).
        objectives: what the search optimises, names of :data:`SEARCH_OBJECTIVES` with ``auc``
            first (``("auc", "flops")``, ``("auc", "latency")``, ``("auc", "flops", "latency")``).
        latency_size: input side (px) at which latency is predicted (batch 1) when latency is
            an objective.
        latency_device: ``cpu`` or ``cuda``: where the latency table is timed (on the machine
            that runs the search, before Ray starts).
        confirm: share of the budget spent, after exploration, on further seeds of the
            architectures whose intervals touch the front, and of the baseline
            (:mod:`mdsearch.results.confirmation`); 0 explores to the end.
        strategy: :data:`STRATEGIES`. With ``supernet``, :attr:`budget` counts the stand-alone
            trials that follow the supernet (its training and scoring are not trials of the
            budget).
        supernet_epochs: epochs of the supernet's training (the proxy recipe otherwise).
        supernet_scores: sub-networks scored on the supernet (None: every architecture of a
            space of up to :data:`SUPERNET_SCORES`, else that many).
        supernet: how the supernet trains and recalibrates (sandwich size, distillation,
            kernel transform, per-choice depthwise weights, recalibration images;
            :class:`~mdsearch.search.SupernetSettings`).

    Example:
        >>> s = SearchSettings(DataSettings("phantom,n=300", resolution=32), budget=4)
        >>> s.check(); s.metric_columns
        ['auc', 'flops_m']
    """

    data: DataSettings = PROXY_DATA
    proxy: TrainRecipe = PROXY_RECIPE
    space: str = "default"
    backbone: str | None = None
    budget: int = 100
    sampler: str = "tpe"
    input_size: int = 448
    early_stop: str = "none"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    address: str | None = None
    trial_timeout: float | None = None
    max_failures: int = 2
    objectives: tuple[str, ...] = ("auc", "flops")
    latency_size: int = 224
    latency_device: str = "cpu"
    confirm: float = 0.3
    strategy: str = "standalone"
    supernet_epochs: int = 8
    supernet_scores: int | None = None
    supernet: SupernetSettings = SupernetSettings()

    @property
    def seed(self) -> int:
        """Seed of the sampler, the validation split and the trials (``--seed``)."""
        return self.data.seed

    @property
    def metric_columns(self) -> list[str]:
        """Result keys / table columns of the objectives, in order (what Optuna is told)."""
        return [SEARCH_OBJECTIVES[n][0] for n in self.objectives]

    @property
    def metric_modes(self) -> list[str]:
        """``"max"`` / ``"min"`` per objective, in :attr:`metric_columns` order."""
        return [SEARCH_OBJECTIVES[n][1] for n in self.objectives]

    @property
    def explore_trials(self) -> int:
        """Trials proposed by the sampler before the confirmation phase starts."""
        return self.budget - round(self.confirm * self.budget)

    def scores_for(self, space_size: int) -> int:
        """Sub-networks a supernet run scores in a space of ``space_size`` architectures."""
        if self.supernet_scores is not None:
            return self.supernet_scores
        return min(space_size, SUPERNET_SCORES)

    @property
    def trial_threads(self) -> int:
        """Torch threads of one trial, and of the latency table's timing: its CPU share."""
        return max(1, int(self.cpus_per_trial))

    @property
    def latency_threads(self) -> int:
        """CPU threads the latency table is timed with: one trial's share (--cpus-per-trial)."""
        return self.trial_threads

    def check(self) -> SearchSettings:
        """Check every setting (the data's and the recipe's included) without reading an image.

        Returns:
            The settings with :attr:`objectives` normalised by :func:`parse_objectives`.

        Raises:
            RunError: a search field no search can use (naming its flag);
            SettingsError / DataError: from :meth:`DataSettings.check` and
            :meth:`TrainRecipe.check`.
        """
        settings = replace(self, objectives=parse_objectives(self.objectives))
        if settings.budget < 1:
            _fail(f"--budget {settings.budget}: give at least 1 trial")
        if settings.sampler not in SAMPLERS:
            _fail(f"--sampler {settings.sampler!r} is unknown: use one of {', '.join(SAMPLERS)}")
        if settings.early_stop not in EARLY_STOP:
            _fail(f"--early-stop {settings.early_stop!r} is unknown: use none or asha")
        settings.data.check()
        settings.proxy.check()
        for flag, value, low in (
            ("--input-size", settings.input_size, 32),
            ("--latency-size", settings.latency_size, 32),
        ):
            if value < low:
                _fail(f"{flag} {value}: must be at least {low}")
        if settings.cpus_per_trial <= 0 or settings.gpus_per_trial < 0:
            _fail("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
        if settings.trial_timeout is not None and not settings.trial_timeout > 0:
            _fail(f"--trial-timeout {settings.trial_timeout}: give a positive number of seconds")
        if not 0 <= settings.confirm < 1:
            _fail(f"--confirm {settings.confirm}: give a share of the budget from 0 to below 1")
        if settings.strategy not in STRATEGIES:
            _fail(
                f"--strategy {settings.strategy!r} is unknown: use one of {', '.join(STRATEGIES)}"
            )
        if settings.supernet_epochs < 1:
            _fail(f"--supernet-epochs {settings.supernet_epochs}: give at least 1 epoch")
        if settings.supernet_scores is not None and settings.supernet_scores < 1:
            _fail(f"--supernet-scores {settings.supernet_scores}: give at least 1 sub-network")
        _check_supernet(settings.supernet)
        if settings.strategy == "supernet" and settings.early_stop != "none":
            _fail(
                "--early-stop asha: not with --strategy supernet (its stand-alone trials "
                "confirm candidates; stopping them early would leave the front unconfirmed)"
            )
        if settings.max_failures < 0:
            _fail(f"--max-failures {settings.max_failures}: give 0 or more retries")
        check_latency_device(settings.latency_device, needed=False)
        return settings

    def proxy_dict(self) -> dict[str, Any]:
        """The proxy as config.json has always stored it: the recipe's fields with the proxy
        resolution first and the trial's torch threads (what results' readers look up)."""
        recipe = self.proxy.to_dict()
        last = recipe.pop("channels_last")
        return {
            "resolution": self.data.resolution,
            **recipe,
            "threads": self.trial_threads,
            "channels_last": last,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for config.json, in the layout every version wrote: the data settings as
        top-level ``data`` (the ``--data`` text), ``seed``, ``cache_dir``, ``val_fraction``,
        and ``proxy`` holding the recipe plus ``resolution`` and ``threads``."""
        own = {f.name: getattr(self, f.name) for f in fields(self)}
        d = self.data
        return {
            "data": d.data,
            "space": own["space"],
            "backbone": own["backbone"],
            "budget": own["budget"],
            "sampler": own["sampler"],
            "seed": d.seed,
            "input_size": own["input_size"],
            "proxy": self.proxy_dict(),
            "early_stop": own["early_stop"],
            "cpus_per_trial": own["cpus_per_trial"],
            "gpus_per_trial": own["gpus_per_trial"],
            "max_concurrent": own["max_concurrent"],
            "address": own["address"],
            "cache_dir": d.cache_dir,
            "val_fraction": d.val_fraction,
            "trial_timeout": own["trial_timeout"],
            "max_failures": own["max_failures"],
            "objectives": list(self.objectives),
            "latency_size": own["latency_size"],
            "latency_device": own["latency_device"],
            "confirm": own["confirm"],
            "strategy": own["strategy"],
            "supernet_epochs": own["supernet_epochs"],
            "supernet_scores": own["supernet_scores"],
            "supernet": self.supernet.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSettings:
        """Inverse of :meth:`to_dict`; reads the config.json of every earlier version (keys it
        lacks take their defaults, e.g. ``objectives`` from before ``--objectives``)."""
        proxy = dict(data.get("proxy") or {})
        own = known_fields(cls, data)
        own.pop("data", None)
        own.pop("proxy", None)
        if "objectives" in own:
            own["objectives"] = tuple(own["objectives"])
        own.setdefault("confirm", 0.0)  # runs from before --confirm explored to the end
        # runs from before the supernet's flags trained it with the defaults
        own["supernet"] = SupernetSettings.from_dict(data.get("supernet") or {})
        data_settings = DataSettings.from_dict(
            {
                "data": data.get("data", PROXY_DATA.data),
                "resolution": proxy.get("resolution", PROXY_DATA.resolution),
                "cache_dir": data.get("cache_dir"),
                "seed": data.get("seed", PROXY_DATA.seed),
                "val_fraction": data.get("val_fraction", PROXY_DATA.val_fraction),
            }
        )
        return cls(data=data_settings, proxy=TrainRecipe.from_dict(proxy), **own)


def _check_supernet(supernet: SupernetSettings) -> None:
    """The supernet's settings, each error naming its ``mdsearch run`` flag."""
    if supernet.random_subnets < 0:
        _fail(
            f"--supernet-random-subnets {supernet.random_subnets}: give 0 or more (sub-networks "
            "drawn per step besides the largest and the smallest)"
        )
    if supernet.recalibration_images < supernet.recalibration_batch:
        _fail(
            f"--supernet-recalibration-images {supernet.recalibration_images}: give at least "
            f"{supernet.recalibration_batch} (one recalibration batch)"
        )
    if supernet.kernel_transform and supernet.per_choice_depthwise:
        _fail(
            "--supernet-kernel-transform and --supernet-per-choice-depthwise exclude each other "
            "(per-choice kernels are not crops of a larger one to transform): give one"
        )
    supernet.check()
