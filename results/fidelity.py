"""Proxy fidelity: what ``mdsearch proxy-check`` measured, read back for the analysis.

``mdsearch proxy-check`` writes ``proxy_check.json`` (:data:`PROXY_CHECK_FILE`: the trainings of
:mod:`mdsearch.search.proxy_check`, the figures of :mod:`.proxy_fidelity`) into a run folder
(``--run``) or its own folder. This module reads it (plain JSON; no torch, no Ray):
:func:`load_proxy_check`; :func:`proxy_seed_std`, :func:`proxy_check_seed_noise` and
:func:`lead_within_seed_noise` give the analysis a second noise figure next to the paired
bootstrap: the seed-to-seed std of the proxy's AUC, which one run's validation bootstrap cannot
see. :mod:`.fidelity_report` presents the check (the report's section, the terminal's tables).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mdsearch.search.proxy_check import PROXY_CHECK_FILE, PROXY_CHECK_SCHEMA

from .errors import ResultsError
from .seed_noise import SeedNoise, pooled_seed_noise

__all__ = [
    "PROXY_CHECK_FILE",
    "lead_within_seed_noise",
    "load_proxy_check",
    "proxy_check_seed_noise",
    "proxy_seed_std",
]

# Any version of the proxy-check schema (the part before the version number).
_SCHEMA_PREFIX = PROXY_CHECK_SCHEMA.rsplit("/", 1)[0] + "/"

Source = str | Path | Mapping[str, Any]


def load_proxy_check(source: Source) -> dict[str, Any] | None:
    """A proxy-check result from a run folder, a ``proxy_check.json`` path, or the dict itself.

    Returns:
        The result dict; None when ``source`` is a folder without ``proxy_check.json``.

    Raises:
        ResultsError: the file is not a proxy-check result (unreadable, not JSON, other schema).
    """
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    if path.is_dir():
        path = path / PROXY_CHECK_FILE
        if not path.is_file():
            return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: not a readable proxy-check result ({exc})") from None
    if not str(data.get("schema", "")).startswith(_SCHEMA_PREFIX):
        raise ResultsError(f"{path}: not a proxy-check result; rerun mdsearch proxy-check")
    return data


def proxy_seed_std(source: Source, epochs: int | None = None) -> float | None:
    """Seed-to-seed std of one run's validation AUC at a proxy length, as proxy-check measured.

    Args:
        source: run folder, ``proxy_check.json`` path or result dict.
        epochs: proxy length (default: the run's proxy epochs when the check was made with
            ``--run``, else its shortest setting).

    Returns:
        The pooled std (AUC units); None when there is no check, the check did not measure that
        length, or it had one seed.
    """
    data = load_proxy_check(source)
    if data is None:
        return None
    key = _run_setting(data, epochs)
    if key is None:
        return None
    value = data["settings"][key].get("seed_std")
    return float(value) if value is not None and math.isfinite(value) else None


def proxy_check_seed_noise(source: Source, epochs: int | None = None) -> SeedNoise:
    """The seed noise a proxy-check measured at a proxy length, with its degrees of freedom
    (K architectures x S seeds: K (S - 1)), to pool with a run's own repeats.

    Args:
        source: run folder, ``proxy_check.json`` path or result dict.
        epochs: proxy length (default as :func:`proxy_seed_std`).

    Returns:
        The estimate; unknown when there is no check, it did not measure that length, or it
        had one seed.
    """
    data = load_proxy_check(source)
    key = None if data is None else _run_setting(data, epochs)
    if key is None or key not in data.get("auc", {}):
        return SeedNoise()
    auc = np.array(
        [[np.nan if v is None else v for v in row] for row in data["auc"][key]], dtype=float
    )
    noise = pooled_seed_noise(auc.ravel(), np.repeat(np.arange(auc.shape[0]), auc.shape[1]))
    if not noise.known:
        return noise
    where = f"proxy-check, {auc.shape[0]} archs x {auc.shape[1]} seeds at {key} epochs"
    return SeedNoise(noise.sum_squares, noise.df, (where,))


def _run_setting(data: Mapping[str, Any], epochs: int | None) -> str | None:
    rows = data["settings"]
    if epochs is None:
        epochs = data.get("parameters", {}).get("run_proxy_epochs")
    if epochs is not None:
        return str(epochs) if str(epochs) in rows else None
    return min(rows, key=int)


def lead_within_seed_noise(
    lead: float,
    source: Source,
    *,
    n_seeds: int = 1,
    n_baseline_seeds: int = 1,
    z: float = 1.96,
    epochs: int | None = None,
) -> bool | None:
    """Whether an AUC lead over the baseline is within the proxy's seed noise.

    The lead of one architecture's mean over ``n_seeds`` runs against the baseline's mean over
    ``n_baseline_seeds`` runs has a seed std of ``sd * sqrt(1/n_seeds + 1/n_baseline_seeds)``;
    the lead is within noise when ``|lead|`` is less than ``z`` times that (1.96: two-sided 95%
    under a normal approximation).

    Args:
        lead: mean AUC of the architecture minus the baseline's.
        source: run folder, ``proxy_check.json`` path or result dict.
        n_seeds, n_baseline_seeds: runs behind each mean.
        z: multiple of the std that counts as noise.
        epochs: proxy length (see :func:`proxy_seed_std`).

    Returns:
        True/False; None when there is no seed-noise figure.

    Example:
        >>> check = {"schema": "mdsearch.proxy_check/1", "settings": {"2": {"seed_std": 0.01}}}
        >>> lead_within_seed_noise(0.02, check), lead_within_seed_noise(0.04, check)
        (True, False)
    """
    sd = proxy_seed_std(source, epochs)
    if sd is None:
        return None
    return bool(abs(lead) < z * sd * math.sqrt(1 / n_seeds + 1 / n_baseline_seeds))
