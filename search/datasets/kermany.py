"""``kermany=PATH``: the pediatric chest X-ray set ChestX-ray2017 (Kermany et al. 2018).

PATH holds ``train/`` and, when present, ``test/`` (and ``val/``, as in the Kaggle copy: merged
into the train pool, since validation is always carved out by patient), each with ``NORMAL/`` and
``PNEUMONIA/``. A folder that holds ``chest_xray/train`` (the archive as unpacked) works too. A
search needs only ``train/``.

Tasks (``kermany=PATH,task=subtype`` or ``load_dataset(..., task="subtype")``):

- ``pneumonia`` (default): every image, one label ``Pneumonia`` (1 = PNEUMONIA folder).
- ``subtype``: bacterial vs viral, as in the paper's Table 8: the PNEUMONIA images only, one
  label ``Viral`` (1 = ``virus`` in the file name, 0 = ``bacteria``).

Patient ids from the file names: ``person1_bacteria_1.jpeg`` -> ``person1``; the NORMAL files
``IM-0115-0001.jpeg``, ``IM-0553-0001-0002.jpeg`` -> ``IM-0115``, ``IM-0553`` (the trailing
numbers count images of one study) and ``NORMAL2-IM-0427-0001.jpeg`` -> ``NORMAL2-IM-0427`` (a
second, separately numbered batch, so its numbers are not the first batch's patients). Test
patients get a ``test/`` prefix: the official split is kept as published, and the same number in
train and test is not taken to be one patient. A file name that fits no pattern is its own
patient (counted in the notes).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .catalog import Catalog, DataSource, listing_digest
from .errors import DataError
from .spec import DataSpec

__all__ = ["TASKS", "patient_key", "scan_kermany", "SOURCE"]

TASKS = ("pneumonia", "subtype")
_CLASSES = ("NORMAL", "PNEUMONIA")
_SUFFIXES = (".jpeg", ".jpg", ".png")
_PATIENT = re.compile(r"^(person\d+)_|^((?:NORMAL2-)?IM-\d+)(?:-\d+)*\.", re.IGNORECASE)


def patient_key(file_name: str) -> str | None:
    """Patient of a Kermany file name, or None when the name fits no known pattern.

    Example:
        >>> [patient_key(n) for n in ("person1_bacteria_1.jpeg", "IM-0553-0001-0002.jpeg",
        ...                           "NORMAL2-IM-0427-0001.jpeg", "scan.png")]
        ['person1', 'IM-0553', 'NORMAL2-IM-0427', None]
    """
    m = _PATIENT.match(file_name)
    if m is None:
        return None
    return m[1] or m[2]


def scan_kermany(
    spec: DataSpec,
    *,
    task: str | None,
    cache_dir: str | os.PathLike | None,
    resolution: int,
) -> Catalog:
    """Catalog of the Kermany folder ``spec.path`` for ``task`` (see the module docstring)."""
    task = task or "pneumonia"
    root = Path(spec.path)
    if not (root / "train").is_dir() and (root / "chest_xray" / "train").is_dir():
        root = root / "chest_xray"
    if not (root / "train").is_dir():
        raise DataError(
            f"kermany: no train/ folder in {root}; expected train/NORMAL and train/PNEUMONIA "
            "(and optionally test/) as in the ChestX-ray2017 archive"
        )
    parts = [p for p in ("train", "val", "test") if (root / p).is_dir()]
    files: list[Path] = []
    part_of: list[str] = []
    pneumonia: list[int] = []
    for part in parts:
        for cls in _CLASSES:
            folder = root / part / cls
            if not folder.is_dir():
                raise DataError(
                    f"kermany: {folder} is missing; {part}/ needs NORMAL/ and PNEUMONIA/ folders"
                )
            found = sorted(
                f for f in folder.iterdir() if f.suffix.lower() in _SUFFIXES and f.is_file()
            )
            if not found:
                raise DataError(
                    f"kermany: {folder} holds no images (.jpeg, .jpg, .png); restore its files"
                )
            files += found
            part_of += [part] * len(found)
            pneumonia += [cls == "PNEUMONIA"] * len(found)

    notes = []
    part_arr = np.array(part_of)
    if task == "subtype":
        names = [f.name.lower() for f in files]
        viral = np.array(["virus" in n for n in names])
        bacterial = np.array(["bacteria" in n for n in names])
        keep = np.array(pneumonia) & (viral ^ bacterial)
        unclear = int(np.sum(np.array(pneumonia) & ~(viral ^ bacterial)))
        if unclear:
            notes.append(f"{unclear} PNEUMONIA files name neither 'bacteria' nor 'virus', left out")
        labels = viral[keep].astype(np.uint8)[:, None]
        files = [f for f, k in zip(files, keep) if k]
        part_arr = part_arr[keep]
        label_names: tuple[str, ...] = ("Viral",)
        notes.append(
            "task=subtype: PNEUMONIA images only; label Viral = 1 for viral, 0 for bacterial "
            "(from the file names)"
        )
    elif task == "pneumonia":
        labels = np.array(pneumonia, dtype=np.uint8)[:, None]
        label_names = ("Pneumonia",)
    else:
        raise DataError(f"kermany: unknown task {task!r}; use one of {', '.join(TASKS)}")

    keys = [patient_key(f.name) for f in files]
    unparsed = sum(k is None for k in keys)
    if unparsed:
        notes.append(f"{unparsed} file names fit no patient pattern: each is its own patient")
    patient_ids = np.array(
        [
            ("test/" if part == "test" else "") + (key or f"file:{f.stem}")
            for f, key, part in zip(files, keys, part_arr)
        ]
    )
    index = np.arange(len(files), dtype=np.int64)
    splits = {"train_val": index[part_arr != "test"]}
    if "test" in parts:
        splits["test"] = index[part_arr == "test"]
    else:
        notes.append(f"no test/ folder in {root}: train and validation splits only")
    if "val" in parts:
        notes.append("the val/ folder is merged into train; validation is carved out by patient")
    image_key = listing_digest(root, files)
    return Catalog(
        name="kermany",
        label_names=label_names,
        labels=labels,
        patient_ids=patient_ids,
        item_ids=np.array([f.relative_to(root).as_posix() for f in files]),
        splits=splits,
        image_key=image_key,
        fingerprint=image_key,
        notes=tuple(notes),
        files=tuple(files),
    )


SOURCE = DataSource(
    name="kermany",
    summary="Kermany ChestX-ray2017 folder: train/ (and test/) with NORMAL/ and PNEUMONIA/",
    example="kermany=/data/chest_xray,task=subtype",
    path="required",
    scan=scan_kermany,
    options={"task": TASKS},
    tasks=TASKS,
)
