"""The one error a user's ``--data`` value or data folder can cause: one line, what to do."""

__all__ = ["DataError"]


class DataError(ValueError):
    """A data source that cannot be used; the message names the path or flag and what to do."""
