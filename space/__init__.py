"""What can be searched: one architecture as data (:class:`ArchSpec`), backbone stage layouts,
and search spaces with their Optuna encoding. Imports neither torch models nor Ray."""

from .archspec import SCHEMA, ArchSpec, StageSpec, split_channels
from .backbones import BACKBONES, BackboneLayout, StageLayout, get_backbone, register_backbone
from .errors import ArchSpecError, SpaceError
from .files import atomic_replace, atomic_write_bytes, atomic_write_text, removed_on_failure
from .spaces import PRESETS, SearchSpace, load_space

__all__ = [
    "ArchSpec",
    "ArchSpecError",
    "BACKBONES",
    "BackboneLayout",
    "PRESETS",
    "SCHEMA",
    "SearchSpace",
    "SpaceError",
    "StageLayout",
    "StageSpec",
    "atomic_replace",
    "atomic_write_bytes",
    "atomic_write_text",
    "removed_on_failure",
    "get_backbone",
    "register_backbone",
    "load_space",
    "split_channels",
]
