"""The registry of data sources: ``--data NAME`` -> :class:`DataSource`.

A contract test runs every entry through the same assertions; a new source registers here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .catalog import DataSource
from .chestmnist import SOURCE as CHESTMNIST
from .chestxray14 import SOURCE as CHESTXRAY14
from .kermany import SOURCE as KERMANY
from .phantom import SOURCE as PHANTOM

__all__ = ["SOURCES"]

SOURCES: Mapping[str, DataSource] = MappingProxyType(
    {source.name: source for source in (PHANTOM, CHESTXRAY14, CHESTMNIST, KERMANY)}
)
