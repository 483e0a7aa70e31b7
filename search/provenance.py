"""What a run folder's config.json records besides the settings: the data's fingerprint, the
space, the labels the mean AUC is over, the latency table, package versions and the host (so a
run can be reproduced and its numbers trusted later)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
from typing import TYPE_CHECKING, Any

from mdsearch.space import SearchSpace

from .latency_for_search import latency_config
from .proxy_data import scored_validation_labels
from .run_settings import SearchSettings

if TYPE_CHECKING:
    from mdsearch.mdconv import LatencyTable

    from .datasets import Dataset

__all__ = ["PACKAGES", "run_config", "versions"]

#: Packages whose versions config.json records.
PACKAGES = (
    "mdsearch",
    "torch",
    "timm",
    "optuna",
    "ray",
    "fvcore",
    "numpy",
    "pandas",
    "scikit-learn",
)


def versions() -> dict[str, str]:
    """Python's and :data:`PACKAGES`' versions (``not installed`` for a missing one)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_config(
    settings: SearchSettings,
    space: SearchSpace,
    dataset: Dataset,
    name: str,
    latency: LatencyTable | None = None,
) -> dict[str, Any]:
    """config.json of a new run (its layout is read by ``--resume`` and by mdsearch.results).

    Args:
        settings: the checked settings.
        space: the searched space.
        dataset: the loaded data (described: name, labels, splits, fingerprint).
        name: the run's name (its folder's).
        latency: the latency table when latency is an objective.
    """
    return {
        "name": name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": settings.to_dict(),
        "data": dataset.describe(),
        "space": {
            "name": space.name,
            "backbone": space.backbone,
            "size": space.size,
            "choices": {f"stage{i}": [s.token for s in c] for i, c in enumerate(space.choices)},
            # Stages the space searches elsewhere but held at their base here (not visible at
            # the proxy's resolution), with why.
            "held": {f"stage{i}": why for i, why in space.held},
        },
        "proxy": settings.proxy_dict(),
        # Which labels every trial's mean AUC is over (the report reads the rule from here).
        "label_rule": scored_validation_labels(dataset, settings.proxy.val_subset).to_dict(),
        "input_size": settings.input_size,
        # standalone or supernet (mdsearch run --strategy); runs from before it: standalone.
        "strategy": settings.strategy,
        "objectives": list(settings.objectives),
        "latency": latency_config(settings, latency),
        "sampler": settings.sampler,
        "seed": settings.seed,
        "budget": settings.budget,
        "versions": versions(),
        "host": {"hostname": socket.gethostname(), "cpus": os.cpu_count()},
    }
