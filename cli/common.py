"""Pieces every command shares: the parser class, argument types, the usage error, the device
choice."""

from __future__ import annotations

import argparse
import re
from typing import NoReturn

from mdsearch.space import removed_on_failure  # re-exported for the commands

__all__ = [
    "OneLineParser",
    "UsageError",
    "device",
    "optional_int",
    "positive_int",
    "removed_on_failure",
    "usage",
]

# argparse's wording of a bad choice: "argument --sampler: invalid choice: 'foo' (choose from
# 'tpe', 'nsga2')" (Python 3.11; 3.12+ may drop the quotes around the choices).
_BAD_CHOICE = re.compile(
    r"^argument (?P<flag>\S+): invalid choice: (?P<value>.*?) \(choose from (?P<choices>.*)\)$"
)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2, like every other
    user error of mdsearch, instead of the usage block followed by the error.

    ``mdsearch run --sampler foo`` prints::

        mdsearch run: error: --sampler: 'foo' is not one of tpe, nsga2, random, grid

    ``--help`` still shows the whole usage. The subcommands' parsers are of this class too
    (``add_subparsers`` makes them with the parser's own class).
    """

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: error: <message>`` as one line and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {_one_line(message)}\n")

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        """As argparse's, but an unknown flag is reported by the command it was given to, so
        the message names whose ``--help`` to read."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            owner = self._command_parser(getattr(parsed, "command", None)) or self
            owner.error(
                f"unrecognized arguments: {' '.join(extras)} (`{owner.prog} --help` lists "
                "the flags)"
            )
        return parsed

    def _command_parser(self, command: str | None) -> argparse.ArgumentParser | None:
        """The subcommand's parser named ``command`` (None without subcommands)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and command in action.choices:
                return action.choices[command]
        return None


def _one_line(message: str) -> str:
    """argparse's error message, reworded where it is unclear and joined into one line."""
    message = " ".join(message.split())
    match = _BAD_CHOICE.match(message)
    if match:
        choices = ", ".join(c.strip().strip("'") for c in match["choices"].split(","))
        return f"{match['flag']}: {match['value']} is not one of {choices}"
    return message.removeprefix("argument ")


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
    """``--device``: ``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cpu`` and
    ``cuda`` (or ``cuda:N``) as given.

    Raises:
        UsageError: another name, or cuda on a machine where torch sees no GPU (checked here,
            before a command writes anything, instead of as a traceback mid-way).
    """
    cuda = name == "cuda" or name.startswith("cuda:")
    if name not in ("auto", "cpu") and not cuda:
        raise usage(f"--device {name!r} is unknown: use cpu, cuda or auto")
    if name == "cpu":
        return name
    import torch

    if not torch.cuda.is_available():
        if cuda:
            raise usage(
                f"--device {name}: torch sees no CUDA device on this machine; use --device cpu"
            )
        return "cpu"
    return "cuda" if name == "auto" else name
