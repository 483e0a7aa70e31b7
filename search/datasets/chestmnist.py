"""``chestmnist`` / ``chestmnist:SIZE`` / ``chestmnist=FILE.npz``: MedMNIST's ChestMNIST.

The npz layout of MedMNIST v2/v3: ``train_images`` (N, S, S) uint8, ``train_labels`` (N, 14)
0/1, the same for ``val_`` and ``test_`` (a file without ``test_*`` gives no test split). S is
28 (``chestmnist.npz``) or 64/128/224 (MedMNIST+, ``chestmnist_64.npz`` ...). Labels: the 14
ChestX-ray14 findings, in the paper's order (MedMNIST's order is the same).

Without a file, ``chestmnist`` looks for the npz in ``~/.medmnist`` (where the ``medmnist``
package puts it) and in ``<cache>/medmnist``; if absent and the optional ``medmnist`` package is
installed (``pip install 'mdsearch[medmnist]'``), it downloads it there. The size is ``:SIZE``,
else the smallest MedMNIST size at least the requested resolution (224 at most).

MedMNIST ships no patient ids: every image is its own patient (``unknown-<index>``), and the
official MedMNIST train/val/test splits are used as given. Their test split is NIH's official
patient-wise test list; whether their train/val split keeps patients apart is not documented, so
the notes say so.

Pixels: each split's image array is read into memory once while the cache is built (npz members
are compressed, so they cannot be memory-mapped); later loads map the cache.
"""

from __future__ import annotations

import hashlib
import os
import threading
import zipfile
from pathlib import Path

import numpy as np

from .cache import resize_array, resolve_cache_dir
from .catalog import Catalog, DataSource
from .chestxray14 import FINDINGS
from .errors import DataError
from .spec import DataSpec

__all__ = ["SIZES", "npz_file_name", "scan_chestmnist", "SOURCE"]

SIZES = (28, 64, 128, 224)
_SPLITS = ("train", "val", "test")
_DOWNLOAD_PAGE = "https://zenodo.org/records/10519652"


def npz_file_name(size: int) -> str:
    """MedMNIST's file name for ChestMNIST at ``size`` (``chestmnist.npz`` for 28)."""
    return "chestmnist.npz" if size == 28 else f"chestmnist_{size}.npz"


def scan_chestmnist(
    spec: DataSpec,
    *,
    task: str | None,
    cache_dir: str | os.PathLike | None,
    resolution: int,
) -> Catalog:
    """Catalog of a ChestMNIST npz (see the module docstring)."""
    path = Path(spec.path) if spec.path is not None else _locate(spec, cache_dir, resolution)
    members = _members(path)
    missing = [
        f"{split}_{kind}"
        for split in ("train", "val")
        for kind in ("images", "labels")
        if f"{split}_{kind}.npy" not in members
    ]
    if missing:
        found = ", ".join(sorted(m.removesuffix(".npy") for m in members)) or "none"
        raise DataError(
            f"chestmnist: {path} lacks {', '.join(missing)} (it has: {found}); give a MedMNIST "
            "npz with train_images, train_labels, val_images, val_labels (and test_*)"
        )
    splits_present = [
        s for s in _SPLITS if f"{s}_images.npy" in members and f"{s}_labels.npy" in members
    ]
    with np.load(path) as npz:
        shapes = {s: _member_shape(path, f"{s}_images.npy") for s in splits_present}
        labels_per_split = [np.asarray(npz[f"{s}_labels"]) for s in splits_present]
    size = None
    for split, labels, shape in zip(splits_present, labels_per_split, shapes.values()):
        if len(shape) != 3 or shape[1] != shape[2] or shape[0] != len(labels):
            raise DataError(
                f"chestmnist: {path}: {split}_images has shape {shape} for {len(labels)} labels; "
                "expected (N, S, S) grayscale images, one per label row"
            )
        if labels.ndim != 2 or labels.shape[1] != len(FINDINGS):
            raise DataError(
                f"chestmnist: {path}: {split}_labels has shape {labels.shape}; expected "
                f"(N, {len(FINDINGS)}) for the 14 ChestX-ray14 findings"
            )
        size = shape[1]
    if spec.size is not None and size != spec.size:
        raise DataError(
            f"--data {spec.value!r}: {path} holds {size} px images, not {spec.size} px; "
            "drop :SIZE or give the matching file"
        )
    counts = [shapes[s][0] for s in splits_present]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    splits = {
        s: np.arange(offsets[i], offsets[i + 1], dtype=np.int64)
        for i, s in enumerate(splits_present)
    }
    labels = np.concatenate(labels_per_split).astype(np.uint8)
    if not np.isin(labels, (0, 1)).all():
        raise DataError(f"chestmnist: {path} has labels other than 0 and 1")
    n = len(labels)

    digest = hashlib.sha256()
    for name, (crc, length) in sorted(members.items()):
        digest.update(f"{name}\0{crc}\0{length}\n".encode())
    image_key = digest.hexdigest()

    arrays: dict[str, np.ndarray] = {}
    lock = threading.Lock()

    def split_array(split: str) -> np.ndarray:
        with lock:  # one split in memory at a time: the cache is built in order
            if split not in arrays:
                arrays.clear()
                with np.load(path) as npz:
                    arrays[split] = np.asarray(npz[f"{split}_images"], dtype=np.uint8)
            return arrays[split]

    def render(start: int, stop: int, resolution: int) -> np.ndarray:
        out = np.empty((stop - start, resolution, resolution), dtype=np.uint8)
        for i in range(start, stop):
            k = int(np.searchsorted(offsets, i, side="right")) - 1
            out[i - start] = resize_array(
                split_array(splits_present[k])[i - offsets[k]], resolution
            )
        return out

    notes = [
        "MedMNIST has no patient ids: each image is its own patient (unknown-<index>); the "
        "official MedMNIST train/val/test splits are used as given (their train/val split is not "
        "documented as patient-wise)"
    ]
    if size is not None and size < resolution:
        notes.append(f"ChestMNIST images are {size} px, upsampled to {resolution} px")
    if "test" not in splits:
        notes.append(f"{path} has no test_images/test_labels: no test split")
    return Catalog(
        name="chestmnist",
        label_names=FINDINGS,
        labels=labels,
        patient_ids=np.array([f"unknown-{i}" for i in range(n)]),
        item_ids=np.array([f"{s}/{i}" for s in splits_present for i in range(shapes[s][0])]),
        splits=splits,
        image_key=image_key,
        fingerprint=image_key,
        notes=tuple(notes),
        render=render,
        native_size=size,
    )


def _members(path: Path) -> dict[str, tuple[int, int]]:
    """npz member name -> (CRC-32, uncompressed size): a content key without reading the data."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {info.filename: (info.CRC, info.file_size) for info in archive.infolist()}
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"chestmnist: {path} is not a readable .npz file ({exc})") from exc


def _member_shape(path: Path, member: str) -> tuple[int, ...]:
    """Shape of one array in an npz from its header, without decompressing the data."""
    with zipfile.ZipFile(path) as archive, archive.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, _ = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _, _ = np.lib.format.read_array_header_2_0(f)
    return tuple(shape)


def _locate(spec, cache_dir, resolution: int) -> Path:
    size = spec.size or next((s for s in SIZES if s >= resolution), SIZES[-1])
    name = npz_file_name(size)
    folders = [Path("~/.medmnist").expanduser(), resolve_cache_dir(cache_dir) / "medmnist"]
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    try:
        import medmnist
    except ImportError:
        raise DataError(
            f"chestmnist: {name} not found in {folders[0]} or {folders[1]}; download it from "
            f"{_DOWNLOAD_PAGE} and pass --data chestmnist={name} (or put it there), or "
            "pip install 'mdsearch[medmnist]' to download it automatically"
        ) from None
    folders[1].mkdir(parents=True, exist_ok=True)
    try:
        medmnist.ChestMNIST(split="train", download=True, size=size, root=str(folders[1]))
    except Exception as exc:  # network, disk: whatever stops the download, tell the user
        raise DataError(
            f"chestmnist: downloading {name} with medmnist failed ({exc}); download it from "
            f"{_DOWNLOAD_PAGE} and pass --data chestmnist=FILE.npz"
        ) from exc
    if not (folders[1] / name).is_file():
        raise DataError(f"chestmnist: medmnist did not leave {name} in {folders[1]}")
    return folders[1] / name


SOURCE = DataSource(
    name="chestmnist",
    summary="MedMNIST ChestMNIST npz (train/val/test images and 14 labels), sizes 28-224",
    example="chestmnist=/data/chestmnist_64.npz",
    path="optional",
    path_kind="file",
    scan=scan_chestmnist,
    sizes=SIZES,
)
