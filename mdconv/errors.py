"""Errors raised when an architecture cannot be turned into a network (one line, what to fix)."""

__all__ = ["BuildError"]


class BuildError(ValueError):
    """A spec, layer argument or backbone that mdconv cannot build (the message says why)."""
