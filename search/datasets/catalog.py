"""What every data source hands the loader: a :class:`Catalog` (labels, patients, splits, and
where the pixels come from), and the :class:`DataSource` record that registers a source.

A source is data plus one function: a :class:`DataSource` names its ``--data`` syntax and holds
its :class:`SourceScanner`, the only code that differs between sources. Everything after the
scan (decoding, caching, the patient-wise split, batching) is shared.

A catalog is cheap to make (file listings and CSVs, no image decoding); the pixels are decoded
once per resolution into the cache (:mod:`.cache`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, get_args

import numpy as np

from .errors import DataError

if TYPE_CHECKING:  # spec.py imports the registry lazily; only annotations need it here
    from .spec import DataSpec

__all__ = [
    "Catalog",
    "DataSource",
    "PathRule",
    "PathKind",
    "SourceScanner",
    "patient_split",
    "listing_digest",
    "TEST_SPLIT_FRACTION",
    "TEST_SPLIT_SEED",
]

#: Whether a source's ``--data NAME=PATH`` needs, allows or refuses ``=PATH``.
PathRule = Literal["required", "optional", "forbidden"]
#: What ``=PATH`` names.
PathKind = Literal["folder", "file"]

# The fallback test split (sources without an official one) never depends on the user's seed:
# a different --seed must not move images between the test set and the search's train/val.
TEST_SPLIT_SEED = 0
#: Share of the patients in that fallback test split.
TEST_SPLIT_FRACTION = 0.2


@dataclass(frozen=True, eq=False)
class Catalog:
    """One source's items in a fixed order, before decoding.

    Args:
        name: source name (``phantom``, ``chestxray14``, ...).
        label_names: one name per label column.
        labels: uint8 (N, L) 0/1 targets.
        patient_ids: (N,) str.
        item_ids: (N,) str: which image each row is (file name relative to the source, npz
            split and index, or generated id), e.g. to match NIH box lists.
        splits: int64 index arrays. Either ``train``/``val`` (official, used as given) or
            ``train_val`` (the loader carves ``val`` out by patient); ``test`` when the source
            has one.
        image_key: digest of what decides the pixels, in order (names, sizes and mtimes of the
            files, npz member checksums, generator parameters): the cache key.
        fingerprint: digest of the whole source (image_key plus label files).
        notes: what the user must be told about this source.
        synthetic: True only for generated data.
        files: image files, decoded with :func:`.cache.decode_image` (one per item); or
        render: ``render(start, stop, resolution)`` -> uint8 (stop - start, R, R), for sources
            whose pixels are arrays (npz, generated).
        native_size: side of the stored images in pixels when known (for notes), else None.
    """

    name: str
    label_names: tuple[str, ...]
    labels: np.ndarray
    patient_ids: np.ndarray
    item_ids: np.ndarray
    splits: Mapping[str, np.ndarray]
    image_key: str
    fingerprint: str
    notes: tuple[str, ...] = ()
    synthetic: bool = False
    files: tuple[Path, ...] | None = None
    render: Callable[[int, int, int], np.ndarray] | None = field(default=None, repr=False)
    native_size: int | None = None

    def __post_init__(self) -> None:
        n = len(self.labels)
        if (self.files is None) == (self.render is None):
            raise TypeError("a Catalog needs exactly one of files= or render=")
        if self.files is not None and len(self.files) != n:
            raise TypeError(f"{len(self.files)} files for {n} labels")
        if (
            self.labels.shape != (n, len(self.label_names))
            or len(self.patient_ids) != n
            or len(self.item_ids) != n
        ):
            raise TypeError("labels, label_names, patient_ids and item_ids disagree in shape")

    def __len__(self) -> int:
        return len(self.labels)


class SourceScanner(Protocol):
    """How a source lists its items (cheap: file listings and label files, no image decoding).

    Args:
        spec: the parsed ``--data`` value (its ``source`` is this source's name).
        task: the task asked for, one of the source's ``tasks`` (None: its default).
        cache_dir: the image-cache folder as the user gave it (None: the default one); sources
            that download or convert files keep them under it.
        resolution: the image side in pixels the loader will decode to (for notes and for
            choosing among stored sizes).

    Returns:
        The source's :class:`Catalog`.

    Raises:
        DataError: missing or malformed files, one line saying what to fix.
    """

    def __call__(
        self,
        spec: DataSpec,
        *,
        task: str | None,
        cache_dir: str | os.PathLike | None,
        resolution: int,
    ) -> Catalog: ...


@dataclass(frozen=True)
class DataSource:
    """A registered source: how its ``--data`` value looks and how to catalog it.

    Args:
        name: the ``--data`` name.
        summary: one line for ``--help`` and error messages.
        example: an example ``--data`` value.
        path: whether ``=PATH`` is ``"required"``, ``"optional"`` or ``"forbidden"``.
        scan: the source's :class:`SourceScanner`.
        path_kind: ``"folder"`` or ``"file"``: what ``=PATH`` must name.
        sizes: allowed ``:SIZE`` values (empty: none).
        options: allowed ``,key=value`` options and, per option, its allowed values (empty tuple:
            any integer).
        tasks: allowed values of ``task`` (empty: the source has one task).

    Raises:
        ValueError: ``path`` or ``path_kind`` is not one of its allowed values (a programming
            error in the source's module, caught when it is imported).
    """

    name: str
    summary: str
    example: str
    path: PathRule
    scan: SourceScanner = field(repr=False)
    path_kind: PathKind = "folder"
    sizes: tuple[int, ...] = ()
    options: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    tasks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.path not in get_args(PathRule):
            raise ValueError(
                f"source {self.name}: path={self.path!r}, not one of {get_args(PathRule)}"
            )
        if self.path_kind not in get_args(PathKind):
            raise ValueError(
                f"source {self.name}: path_kind={self.path_kind!r}, not one of {get_args(PathKind)}"
            )


def patient_split(
    indices: np.ndarray, patient_ids: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` in two by patient: no patient lands on both sides.

    Uses scikit-learn's ``GroupShuffleSplit``: ``fraction`` of the patients (not of the images)
    go to the second part.

    Args:
        indices: int64 item indices to split.
        patient_ids: (N,) patient id of every item of the catalog.
        fraction: share of patients in the second part, 0 < fraction < 1.
        seed: random state of the split.

    Returns:
        ``(first, second)`` sorted int64 index arrays.

    Example:
        >>> ids = np.array(["a", "a", "b", "c", "c", "d"])
        >>> first, second = patient_split(np.arange(6), ids, 0.5, seed=0)
        >>> sorted(set(ids[first]) & set(ids[second]))
        []
    """
    from sklearn.model_selection import GroupShuffleSplit

    indices = np.asarray(indices, dtype=np.int64)
    groups = patient_ids[indices]
    if len(np.unique(groups)) < 2:
        raise DataError(
            f"only {len(np.unique(groups))} patient(s) to split by patient: the data needs at "
            "least 2 patients for a train/val split"
        )
    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    first, second = next(splitter.split(indices, groups=groups))
    return np.sort(indices[first]), np.sort(indices[second])


def listing_digest(root: Path, files: Iterable[Path]) -> str:
    """SHA-256 over the relative names, sizes and modification times of ``files``, in order.

    Cheap (one ``stat`` per file, no reading), and it changes when a file is added, removed,
    replaced or rewritten.
    """
    digest = hashlib.sha256()
    for path in files:
        st = os.stat(path)
        rel = os.path.relpath(path, root)
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()
