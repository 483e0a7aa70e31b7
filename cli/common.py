"""Pieces every command shares: argument types, the usage error, the device choice."""

from __future__ import annotations

import argparse

__all__ = ["UsageError", "device", "optional_int", "positive_int", "usage"]


class UsageError(ValueError):
    """A flag combination the parser cannot reject by itself (one line, exit 2)."""


def usage(message: str) -> UsageError:
    """A :class:`UsageError` to raise from a command."""
    return UsageError(message)


def positive_int(text: str) -> int:
    """argparse type: a whole number."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def optional_int(text: str) -> int | None:
    """argparse type: a whole number of at least 1, or ``all``/``none`` for "no limit"."""
    if text.lower() in {"all", "none"}:
        return None
    value = positive_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give 1 or more, or 'all' for every image")
    return value


def device(name: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; other names unchanged."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
