"""``chestxray14=PATH``: the NIH ChestX-ray14 folder as published.

PATH holds:

- ``Data_Entry_2017_v2020.csv`` (2020 revision, 11 columns; preferred when both are there) or
  ``Data_Entry_2017.csv`` (2017 layout with a trailing empty column); ``.csv.gz`` works too.
- the PNGs, flat or anywhere below (``images_001/images/00000001_000.png`` as the 12 archives
  unpack); the first file of a name wins. Images listed in the CSV but missing on disk (users
  often unpack only some archives) are left out and counted in one note.
- optionally ``train_val_list.txt`` / ``test_list.txt``, the official patient-wise split. Without
  them: a seeded patient-wise split, 20% of the patients for test (seed 0 whatever ``--seed``,
  so the test set does not move between runs), and a note says so.
- optionally ``BBox_List_2017.csv(.gz)``: :func:`load_bboxes`.

Labels: the 14 findings in the paper's order (Table 6); "No Finding" is all zeros.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .catalog import (
    TEST_SPLIT_FRACTION,
    TEST_SPLIT_SEED,
    Catalog,
    DataSource,
    listing_digest,
    patient_split,
)
from .errors import DataError
from .spec import DataSpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FINDINGS", "load_bboxes", "scan_chestxray14", "SOURCE"]

FINDINGS = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
_CSV_NAMES = (
    "Data_Entry_2017_v2020.csv",
    "Data_Entry_2017_v2020.csv.gz",
    "Data_Entry_2017.csv",
    "Data_Entry_2017.csv.gz",
)
_COLUMNS = ("Image Index", "Finding Labels", "Patient ID")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def scan_chestxray14(
    spec: DataSpec,
    *,
    task: str | None,
    cache_dir: str | os.PathLike | None,
    resolution: int,
) -> Catalog:
    """Catalog of the ChestX-ray14 folder ``spec.path`` (see the module docstring)."""
    import pandas as pd

    root = Path(spec.path)
    csv = next((root / name for name in _CSV_NAMES if (root / name).is_file()), None)
    if csv is None:
        raise DataError(
            f"chestxray14: no Data_Entry_2017_v2020.csv or Data_Entry_2017.csv (.gz) in {root}; "
            "put the NIH label file next to the images"
        )
    try:
        table = pd.read_csv(csv, usecols=lambda c: c in _COLUMNS, dtype=str)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"chestxray14: cannot read {csv} ({exc}); is it the NIH CSV?") from exc
    missing_cols = [c for c in _COLUMNS if c not in table.columns]
    if missing_cols:
        raise DataError(
            f"chestxray14: {csv} lacks the column(s) {', '.join(missing_cols)}; expected the NIH "
            "Data_Entry_2017 layout (Image Index, Finding Labels, Follow-up #, Patient ID, ...)"
        )
    table = table.dropna(subset=["Image Index"]).drop_duplicates("Image Index")
    listed = len(table)

    on_disk = _find_images(root)
    present = table["Image Index"].isin(on_disk.keys()).to_numpy()
    missing = listed - int(present.sum())
    table = table[present].reset_index(drop=True)
    if table.empty:
        raise DataError(
            f"chestxray14: none of the {listed:,} images listed in {csv.name} is under {root}; "
            "unpack the NIH image archives (images_001 ... images_012) there"
        )
    names = table["Image Index"].tolist()
    files = tuple(on_disk[name] for name in names)
    labels = _labels(table["Finding Labels"].fillna("No Finding"), csv)
    patient_ids = table["Patient ID"].fillna("").str.strip().to_numpy(dtype=str)
    if (patient_ids == "").any():
        raise DataError(f"chestxray14: {csv} has rows without a Patient ID; fix or remove them")

    notes = []
    if missing:
        notes.append(
            f"{missing:,} of {listed:,} images listed in {csv.name} are missing under {root}, "
            "left out (the NIH images ship in 12 archives: unpack more for more data)"
        )
    unlisted = len(on_disk) - len(names)
    if unlisted:
        notes.append(f"{unlisted:,} image files under {root} are not in {csv.name}, ignored")
    splits, split_note, list_digest = _splits(root, names, patient_ids)
    notes.append(split_note)

    image_key = listing_digest(root, files)
    fingerprint = hashlib.sha256((image_key + _file_digest(csv) + list_digest).encode()).hexdigest()
    return Catalog(
        name="chestxray14",
        label_names=FINDINGS,
        labels=labels,
        patient_ids=patient_ids,
        item_ids=np.array(names, dtype=str),
        splits=splits,
        image_key=image_key,
        fingerprint=fingerprint,
        notes=tuple(notes),
        files=files,
    )


def _find_images(root: Path) -> dict[str, Path]:
    """Image file name -> path, searching ``root`` recursively (the first of a name wins)."""
    found: dict[str, Path] = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(_IMAGE_SUFFIXES) and name not in found:
                found[name] = Path(folder) / name
    return found


def _labels(findings, csv: Path) -> np.ndarray:
    index = {name: i for i, name in enumerate(FINDINGS)}
    labels = np.zeros((len(findings), len(FINDINGS)), dtype=np.uint8)
    for row, text in enumerate(findings):
        for finding in str(text).split("|"):
            finding = finding.strip()
            if finding in ("No Finding", ""):
                continue
            column = index.get(finding)
            if column is None:
                raise DataError(
                    f"chestxray14: {csv} has the unknown finding {finding!r} (row {row + 2}); "
                    f"expected 'No Finding' or: {', '.join(FINDINGS)}"
                )
            labels[row, column] = 1
    return labels


def _splits(
    root: Path, names: list[str], patient_ids: np.ndarray
) -> tuple[dict[str, np.ndarray], str, str]:
    lists = {key: root / f"{key}_list.txt" for key in ("train_val", "test")}
    given = {key: path for key, path in lists.items() if path.is_file()}
    position = {name: i for i, name in enumerate(names)}
    if not given:
        train_val, test = patient_split(
            np.arange(len(names)), patient_ids, TEST_SPLIT_FRACTION, seed=TEST_SPLIT_SEED
        )
        note = (
            "no official split lists (train_val_list.txt, test_list.txt): seeded patient-wise "
            f"split (seed {TEST_SPLIT_SEED}), {TEST_SPLIT_FRACTION:.0%} of the patients for test"
        )
        return {"train_val": train_val, "test": test}, note, ""
    chosen: dict[str, np.ndarray] = {}
    digest = hashlib.sha256()
    for key, path in given.items():
        entries = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        digest.update(path.read_bytes())
        chosen[key] = np.array(
            sorted(position[e] for e in entries if e in position), dtype=np.int64
        )
    everything = np.arange(len(names), dtype=np.int64)
    if "test" not in chosen:
        chosen["test"] = np.setdiff1d(everything, chosen["train_val"])
    if "train_val" not in chosen:
        chosen["train_val"] = np.setdiff1d(everything, chosen["test"])
    overlap = np.intersect1d(chosen["train_val"], chosen["test"])
    if overlap.size:
        raise DataError(
            f"chestxray14: {overlap.size:,} images are in both train_val_list.txt and "
            f"test_list.txt under {root}, e.g. {names[overlap[0]]}; use the official lists"
        )
    used = " and ".join(path.name for path in given.values())
    note = f"official split from {used}"
    if len(given) == 1:
        note += " (the images not listed form the other part)"
    return chosen, note, digest.hexdigest()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_bboxes(path: str | os.PathLike) -> pd.DataFrame:
    """The 984 finding boxes of ``BBox_List_2017.csv`` as a table (for Grad-CAM checks).

    Args:
        path: the CSV (``.csv`` or ``.csv.gz``) or the folder that holds it.

    Returns:
        pandas DataFrame with columns ``Image Index``, ``Finding Label`` (named as in
        Data_Entry: the file's "Infiltrate" becomes "Infiltration"), and ``x``, ``y``, ``w``,
        ``h``: the box in pixels of the original 1024x1024 image (top-left corner, width,
        height; float).

    Raises:
        DataError: the file is missing or not laid out as the NIH box list.

    Example:
        >>> boxes = load_bboxes("/data/nih")  # doctest: +SKIP
        >>> boxes.loc[0, ["Image Index", "Finding Label", "x", "y", "w", "h"]].tolist()  # doctest: +SKIP
        ['00013118_008.png', 'Atelectasis', 225.08, 547.02, 86.78, 79.19]
    """
    import pandas as pd

    path = Path(path).expanduser()
    if path.is_dir():
        candidates = [path / "BBox_List_2017.csv", path / "BBox_List_2017.csv.gz"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise DataError(f"no BBox_List_2017.csv (.gz) in {path}; put the NIH box list there")
        path = found
    if not path.is_file():
        raise DataError(
            f"box list {path} does not exist; give the NIH BBox_List_2017.csv or its folder"
        )
    try:
        # The header names 9 columns ("Bbox [x,y,w,h]" splits on its commas, plus empty ones);
        # the rows hold 6 (some copies add empty trailing fields): read by position.
        raw = pd.read_csv(path, header=None, skiprows=1, usecols=range(6), dtype=str)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"cannot read the box list {path} ({exc})") from exc
    raw.columns = ["Image Index", "Finding Label", "x", "y", "w", "h"]
    boxes = raw.dropna(subset=["Image Index"]).reset_index(drop=True)
    try:
        boxes[["x", "y", "w", "h"]] = boxes[["x", "y", "w", "h"]].astype(float)
    except ValueError as exc:
        raise DataError(f"{path}: box coordinates are not numbers ({exc})") from exc
    boxes["Finding Label"] = (
        boxes["Finding Label"].str.strip().replace("Infiltrate", "Infiltration")
    )
    return boxes


SOURCE = DataSource(
    name="chestxray14",
    summary="NIH ChestX-ray14 folder: Data_Entry_2017*.csv(.gz), PNGs, optional split lists",
    example="chestxray14=/data/nih",
    path="required",
    scan=scan_chestxray14,
)
