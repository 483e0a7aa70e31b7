"""Errors raised for run folders and picks a user named: one line, what is wrong, what to do."""

__all__ = ["ResultsError"]


class ResultsError(ValueError):
    """A run folder, trial table or pick that cannot be analysed (the message says why)."""
