"""The ``--data`` value: its grammar, parsed into a :class:`DataSpec` and checked early.

Grammar::

    NAME[:SIZE][=PATH][,KEY=VALUE ...]

    phantom                       the synthetic default (3,000 images; ``phantom,n=500,seed=1``)
    chestxray14=/data/nih         NIH folder with Data_Entry_2017*.csv(.gz) and the PNGs
    chestmnist                    MedMNIST npz from ~/.medmnist (or downloaded with ``medmnist``)
    chestmnist:64                 ... at MedMNIST+ size 64 (28, 64, 128 or 224)
    chestmnist=/data/chestmnist_64.npz
    kermany=/data/chest_xray                     pneumonia vs normal
    kermany=/data/chest_xray,task=subtype        viral vs bacterial (pneumonia images only)

Options come last, each ``,key=value``; a path may itself contain commas as long as it does not
end in ``,word=value``. Names are case-insensitive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError

__all__ = ["DataSpec", "parse_data_spec"]

_HEAD = re.compile(r"^(?P<name>[A-Za-z][\w-]*)(?::(?P<size>[^=,]*))?(?P<rest>.*)$", re.DOTALL)
_OPTION = re.compile(r",(?P<key>[A-Za-z_]\w*)=(?P<value>[^,=]*)$")


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``--data`` value.

    Args:
        value: the value as the user gave it.
        source: the source name (a key of ``SOURCES``).
        path: the ``=PATH`` part, user-expanded, or None.
        size: the ``:SIZE`` part, or None.
        options: ``(key, value)`` pairs of the ``,key=value`` options, in the given order.

    Example:
        >>> spec = parse_data_spec("phantom,n=500")
        >>> spec.source, spec.option("n")
        ('phantom', '500')
    """

    value: str
    source: str
    path: Path | None = None
    size: int | None = None
    options: tuple[tuple[str, str], ...] = ()

    def option(self, key: str, default: str | None = None) -> str | None:
        """The value of option ``key``, or ``default`` when not given."""
        return dict(self.options).get(key, default)

    def absolute(self) -> str:
        """The ``--data`` value with its path made absolute (the same data from any working
        directory: a Ray Tune trial runs in its own folder, a resume may start elsewhere).

        Example:
            >>> import os
            >>> v = DataSpec("kermany=x,task=subtype", "kermany", Path("x"), None,
            ...              (("task", "subtype"),)).absolute()
            >>> v == f"kermany={os.getcwd()}/x,task=subtype"
            True
        """
        if self.path is None or self.path.is_absolute():
            return self.value
        size = "" if self.size is None else f":{self.size}"
        options = "".join(f",{k}={v}" for k, v in self.options)
        return f"{self.source}{size}={self.path.resolve()}{options}"


def parse_data_spec(value: str) -> DataSpec:
    """Parse and check a ``--data`` value without loading anything (cheap: call it early).

    Checks the source name, the size, the options and that a given path exists (a folder for
    folder sources, a file for npz files).

    Args:
        value: e.g. ``phantom``, ``chestxray14=/data/nih``, ``chestmnist:64``,
            ``kermany=/data/chest_xray,task=subtype``.

    Returns:
        The parsed :class:`DataSpec`.

    Raises:
        DataError: malformed value, unknown source, size or option, or a missing path.

    Example:
        >>> parse_data_spec("chestmnist:64").size
        64
    """
    from .sources import SOURCES

    text = str(value).strip()
    head = _HEAD.match(text)
    if not text or head is None or (head["rest"] and head["rest"][0] not in "=,"):
        raise DataError(
            f"--data {value!r} is malformed: use NAME[:SIZE][=PATH][,key=value], "
            f"e.g. phantom, chestmnist:64, kermany=/data/chest_xray ({_known(SOURCES)})"
        )
    name = head["name"].lower()
    source = SOURCES.get(name)
    if source is None:
        raise DataError(f"--data {value!r}: unknown source {name!r} ({_known(SOURCES)})")

    rest = head["rest"]
    options: list[tuple[str, str]] = []
    while (m := _OPTION.search(rest)) is not None:
        options.insert(0, (m["key"].lower(), m["value"].strip()))
        rest = rest[: m.start()]
    if rest.startswith(","):
        raise DataError(f"--data {value!r}: options must be key=value, e.g. {source.example}")
    path_text = rest[1:].strip() if rest.startswith("=") else None

    size = _parse_size(value, source, head["size"])
    for key, opt_value in options:
        _check_option(value, source, key, opt_value)
    if len({k for k, _ in options}) != len(options):
        raise DataError(f"--data {value!r}: an option is given twice")

    path = None
    if path_text is not None:
        if source.path == "forbidden":
            raise DataError(f"--data {value!r}: {name} takes no path ({source.summary})")
        if not path_text:
            raise DataError(f"--data {value!r}: the path after '=' is empty, e.g. {source.example}")
        path = Path(path_text).expanduser()
        _check_path(value, source, path)
    elif source.path == "required":
        raise DataError(f"--data {value!r}: {name} needs a path, e.g. --data {source.example}")
    return DataSpec(value=text, source=name, path=path, size=size, options=tuple(options))


def _known(sources) -> str:
    return "known sources: " + ", ".join(sources)


def _parse_size(value: str, source, size_text: str | None) -> int | None:
    if size_text is None:
        return None
    if not source.sizes:
        raise DataError(f"--data {value!r}: {source.name} takes no :SIZE")
    if not size_text.isdigit() or int(size_text) not in source.sizes:
        allowed = ", ".join(str(s) for s in source.sizes)
        raise DataError(f"--data {value!r}: size {size_text!r} is not one of {allowed}")
    return int(size_text)


def _check_option(value: str, source, key: str, opt_value: str) -> None:
    if key not in source.options:
        allowed = ", ".join(source.options) or "none"
        raise DataError(
            f"--data {value!r}: {source.name} has no option {key!r} (options: {allowed})"
        )
    choices = source.options[key]
    if choices and opt_value not in choices:
        raise DataError(f"--data {value!r}: {key}={opt_value!r} is not one of {', '.join(choices)}")
    if not choices and not opt_value.isdigit():
        raise DataError(f"--data {value!r}: {key} must be a whole number, got {opt_value!r}")


def _check_path(value: str, source, path: Path) -> None:
    if source.path_kind == "file":
        if not path.is_file():
            raise DataError(
                f"--data {value!r}: file {path} does not exist; give {source.name} an existing "
                f"file, e.g. --data {source.example}"
            )
        return
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a folder"
        raise DataError(
            f"--data {value!r}: folder {path} {what}; point {source.name}= at the data folder"
        )
