"""One interface for every source: :func:`load_dataset` -> :class:`Dataset`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

# settings.py imports this package only inside functions, so this import makes no cycle.
from ..settings import DEFAULT_VAL_FRACTION
from .cache import cached_images
from .catalog import patient_split
from .errors import DataError
from .spec import DataSpec, parse_data_spec

__all__ = ["Dataset", "load_dataset"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images, multi-label targets, patients and patient-wise splits of one source.

    Args:
        name: ``phantom``, ``chestxray14``, ``chestmnist`` or ``kermany``.
        source: the ``--data`` value it came from.
        images: uint8 (N, R, R) grayscale at ``resolution``: a read-only memory map of the cache.
        labels: uint8 (N, L) 0/1 multi-label targets.
        label_names: L names, e.g. the 14 findings in the paper's order; ``("Pneumonia",)``.
        patient_ids: (N,) str.
        splits: ``train``, ``val`` and ``test`` (when the source has one): sorted int64 indices
            into ``images``; no patient is in two splits (except as a source publishes it, see
            ``notes``).
        synthetic: True only for ``phantom``; reports print "synthetic".
        fingerprint: content key of the source (changes when the data changes).
        resolution: image side R in pixels.
        notes: what the user must be told (missing images, how the split was made, ...).
        item_ids: (N,) str, which image each row is: the file name for ChestX-ray14 (to match
            ``load_bboxes``), the path under the folder for Kermany, ``train/17`` for ChestMNIST.

    Example:
        >>> ds = load_dataset("phantom,n=200", resolution=32, progress=False)  # doctest: +SKIP
        >>> ds.images.shape, ds.labels.shape, sorted(ds.splits)  # doctest: +SKIP
        ((200, 32, 32), (200, 5), ['test', 'train', 'val'])
    """

    name: str
    source: str
    images: np.ndarray
    labels: np.ndarray
    label_names: tuple[str, ...]
    patient_ids: np.ndarray
    splits: Mapping[str, np.ndarray]
    synthetic: bool
    fingerprint: str
    resolution: int
    notes: tuple[str, ...]
    item_ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def describe(self) -> dict:
        """What run folders and reports record about the data (JSON-ready): name, ``--data``
        value, synthetic, resolution, label names, split sizes, fingerprint, notes."""
        return {
            "name": self.name,
            "source": self.source,
            "synthetic": bool(self.synthetic),
            "resolution": int(self.resolution),
            "label_names": list(self.label_names),
            "splits": {k: int(len(v)) for k, v in self.splits.items()},
            "fingerprint": self.fingerprint,
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        """One line for the terminal, e.g. ``phantom (synthetic): 3,000 images at 64 px, ...``."""
        kind = " (synthetic)" if self.synthetic else ""
        parts = ", ".join(f"{k} {len(v):,}" for k, v in self.splits.items())
        return (
            f"{self.name}{kind}: {len(self):,} images at {self.resolution} px, "
            f"{len(self.label_names)} label(s); {parts}"
        )


def load_dataset(
    value: str | DataSpec = "phantom",
    *,
    resolution: int = 64,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    progress: bool = True,
    task: str | None = None,
) -> Dataset:
    """Load a data source through the image cache (decoding only on the first use).

    Args:
        value: a ``--data`` value (see :func:`parse_data_spec`) or a parsed :class:`DataSpec`.
        resolution: image side R in pixels (images are resized to R x R).
        cache_dir: cache folder; default ``$MDSEARCH_CACHE_DIR`` or the user cache dir.
        seed: seed of the patient-wise validation split (the test split never depends on it).
        val_fraction: share of the train patients held out for validation, when the source has
            no official validation split (ChestMNIST has one); default
            :data:`mdsearch.search.settings.DEFAULT_VAL_FRACTION`.
        progress: show a progress bar on stderr while a cache is built.
        task: ``kermany`` only: ``pneumonia`` (default) or ``subtype`` (bacterial vs viral);
            same as ``,task=...`` in the value.

    Returns:
        The :class:`Dataset`.

    Raises:
        DataError: bad value, missing or malformed files, nothing decodable.

    Example:
        >>> ds = load_dataset("phantom", resolution=64, progress=False)  # doctest: +SKIP
        >>> ds.label_names[0], ds.synthetic  # doctest: +SKIP
        ('Nodule (synthetic)', True)
    """
    from .sources import SOURCES

    spec = value if isinstance(value, DataSpec) else parse_data_spec(value)
    if not isinstance(resolution, int) or not 8 <= resolution <= 4096:
        raise DataError(f"--resolution {resolution!r}: use a whole number of pixels, 8 to 4096")
    if not 0 < val_fraction < 1:
        raise DataError(
            f"val_fraction {val_fraction!r}: use a share between 0 and 1, e.g. {DEFAULT_VAL_FRACTION}"
        )
    source = SOURCES[spec.source]
    given = spec.option("task")
    if task is not None and given is not None and task != given:
        raise DataError(
            f"--data {spec.value!r} says task={given}, but task={task!r} was also given"
        )
    task = task if task is not None else given
    if task is not None and task not in source.tasks:
        allowed = ", ".join(source.tasks) if source.tasks else "none (it has one task)"
        raise DataError(
            f"--data {spec.value!r}: {spec.source} has no task {task!r} (tasks: {allowed})"
        )

    catalog = source.scan(spec, task=task, cache_dir=cache_dir, resolution=resolution)
    cached = cached_images(catalog, resolution, cache_dir, progress=progress)

    notes = list(catalog.notes)
    keep = np.ones(len(catalog), dtype=bool)
    if cached.skipped:
        keep[list(cached.skipped)] = False
        shown = "; ".join(cached.skipped_errors[:3])
        notes.append(f"{len(cached.skipped):,} unreadable image(s) skipped, e.g. {shown}")
    new_index = np.cumsum(keep) - 1
    labels = catalog.labels[keep]
    patient_ids = catalog.patient_ids[keep]
    item_ids = catalog.item_ids[keep]
    given_splits = {k: new_index[v[keep[v]]].astype(np.int64) for k, v in catalog.splits.items()}

    splits: dict[str, np.ndarray] = {}
    if "train_val" in given_splits:
        splits["train"], splits["val"] = patient_split(
            given_splits["train_val"], patient_ids, val_fraction, seed=seed
        )
        notes.append(f"validation: {val_fraction:.0%} of the train patients, seed {seed}")
    else:
        splits["train"], splits["val"] = given_splits["train"], given_splits["val"]
    if "test" in given_splits:
        splits["test"] = given_splits["test"]
    for name, idx in splits.items():
        if len(idx) == 0:
            raise DataError(
                f"--data {spec.value!r}: the {name} split is empty; the source has too few images"
            )
    shared = _shared_patients(patient_ids, splits)
    if shared:
        notes.append(
            f"{shared:,} patient(s) appear in more than one split, as the source publishes it"
        )
    return Dataset(
        name=catalog.name,
        source=spec.value,
        images=cached.images,
        labels=labels,
        label_names=catalog.label_names,
        patient_ids=patient_ids,
        splits=MappingProxyType(splits),
        synthetic=catalog.synthetic,
        fingerprint=catalog.fingerprint,
        resolution=resolution,
        notes=tuple(notes),
        item_ids=item_ids,
    )


def _shared_patients(patient_ids: np.ndarray, splits: Mapping[str, np.ndarray]) -> int:
    seen: dict[str, int] = {}
    shared = set()
    for i, idx in enumerate(splits.values()):
        for patient in np.unique(patient_ids[idx]):
            if seen.setdefault(patient, i) != i:
                shared.add(patient)
    return len(shared)
