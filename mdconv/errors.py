"""Errors raised when an architecture cannot be turned into a network (one line, what to fix)."""

__all__ = ["BuildError", "LatencyError"]


class BuildError(ValueError):
    """A spec, layer argument or backbone that mdconv cannot build (the message says why)."""


class LatencyError(ValueError):
    """A latency measurement or table that cannot be made or used (the message says what to do)."""
