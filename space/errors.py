"""Errors raised for descriptions a user wrote (architectures, spaces): one line, what to fix."""

__all__ = ["ArchSpecError", "SpaceError"]


class ArchSpecError(ValueError):
    """An architecture description that cannot be built (the message says what to change)."""


class SpaceError(ValueError):
    """A search-space definition that cannot be used (the message says what to change)."""
