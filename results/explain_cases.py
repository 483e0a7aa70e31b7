"""Which (image, output) pairs ``mdsearch explain`` maps, and why those.

**With ground truth** (``--boxes``): every (image, finding) of the split whose location is known
(:func:`ground_truth_cases`: the radiologists' boxes of ChestX-ray14, the phantom generator's
lesion masks) is a case and is scored; the grid shows ``limit`` of them, the findings in turn.

**Without**: the first ``limit`` images of the split, each with the map of its most likely present
finding (or of its top-scoring output when it has none).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ResultsError
from .localisation import box_mask

if TYPE_CHECKING:
    from mdsearch.search.datasets import Dataset

__all__ = [
    "CaseSelection",
    "first_cases",
    "ground_truth_cases",
    "located_cases",
    "split_rows",
]


@dataclass
class CaseSelection:
    """The cases to map: one (image, output) each, in the order the report lists them.

    Attributes:
        rows: int64 (C,) rows of the dataset.
        classes: int64 (C,) the output (label index) each map explains.
        shown: positions into the cases of those the grid shows, in the grid's order.
        masks: C ground-truth masks (bool (R, R)), or None per case without ground truth.
        kinds: without ground truth, each case's kind (one of :data:`CASE_KINDS`).
        ground_truth: where the masks come from (None without).
        thresholds: without ground truth, the decision threshold per label name.
        notes: what the reader must know (boxes found, thresholds, kinds missing, ...).
    """

    rows: np.ndarray
    classes: np.ndarray
    shown: list[int]
    masks: list[np.ndarray | None]
    kinds: list[str] | None = None
    ground_truth: str | None = None
    thresholds: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)


def split_rows(dataset: Dataset, split: str) -> np.ndarray:
    """Rows of ``split`` in the order ``mdsearch eval`` reads them (``all``: every row).

    Raises:
        ResultsError: the data has no such split.
    """
    if split == "all":
        return np.arange(len(dataset), dtype=np.int64)
    if split not in dataset.splits:
        raise ResultsError(
            f"--split {split}: --data {dataset.source!r} has the splits "
            f"{', '.join(dataset.splits)} (or all)"
        )
    return np.asarray(dataset.splits[split], dtype=np.int64)


def _in_turn(queues: Mapping[Hashable, Sequence[int]], limit: int) -> list[tuple[Hashable, int]]:
    """Up to ``limit`` (key, item) pairs: the first item of every queue (in the mapping's order),
    then the second of each, and so on, so that every queue shows before any shows twice."""
    taken: list[tuple[Hashable, int]] = []
    depth = 0
    while len(taken) < limit and any(len(q) > depth for q in queues.values()):
        for key, queue in queues.items():
            if depth < len(queue) and len(taken) < limit:
                taken.append((key, int(queue[depth])))
        depth += 1
    return taken


def ground_truth_cases(
    dataset: Dataset, index: np.ndarray, boxes: bool | str | Path = True
) -> tuple[list[tuple[int, int, np.ndarray]], str, list[str]]:
    """The (image, finding) pairs of ``index`` whose location is known, with their masks.

    Args:
        dataset: a phantom or ChestX-ray14 dataset.
        index: rows of ``dataset`` to take cases from.
        boxes: ChestX-ray14 only: True for ``BBox_List_2017.csv(.gz)`` in the data folder, or
            the box list's path.

    Returns:
        ``(cases, description, notes)``: ``(row, label index, bool (R, R) mask)`` per case, in
        ``index`` order; where the ground truth comes from; counts the reader should know.

    Raises:
        ResultsError: the data has no known locations.
        DataError: the box list is missing or malformed.
    """
    from mdsearch.search.datasets import parse_data_spec, phantom_lesion_masks

    spec = parse_data_spec(dataset.source)
    side = dataset.resolution
    ids = dataset.item_ids[index] if dataset.item_ids is not None else None
    cases: list[tuple[int, int, np.ndarray]] = []
    notes: list[str] = []
    if dataset.name == "phantom":
        masks = phantom_lesion_masks(spec, ids, side)
        present = dataset.labels[index] > 0
        hidden = present & ~masks.any(axis=(2, 3))
        for i, row in enumerate(index):
            for k in np.flatnonzero(present[i] & ~hidden[i]):
                cases.append((int(row), int(k), masks[i, k]))
        if hidden.any():
            per = ", ".join(
                f"{dataset.label_names[k]} {int(n)}" for k, n in enumerate(hidden.sum(0)) if n
            )
            notes.append(
                f"{int(hidden.sum())} labelled finding(s) do not show in their image (drawn "
                f"outside the lungs' air, e.g. behind the heart) and are not scored: {per}"
            )
        return cases, "the phantom generator's lesion masks (where each finding shows)", notes
    if dataset.name != "chestxray14":
        raise ResultsError(
            f"--boxes: --data {dataset.source!r} has no known finding locations; use "
            "chestxray14=FOLDER with BBox_List_2017.csv, or phantom"
        )
    from mdsearch.search.datasets import load_bboxes

    table = load_bboxes(spec.path if boxes is True else boxes)
    label_of = {name: k for k, name in enumerate(dataset.label_names)}
    all_rows = {name: i for i, name in enumerate(dataset.item_ids)}
    row_of = {str(name): int(row) for name, row in zip(ids, index, strict=True)}
    in_data = table["Image Index"].isin(all_rows.keys())
    for _, box in table[table["Image Index"].isin(row_of.keys())].iterrows():
        k = label_of.get(box["Finding Label"])
        if k is None:
            continue
        mask = box_mask(box["x"], box["y"], box["w"], box["h"], side)
        cases.append((row_of[box["Image Index"]], k, mask))
    cases.sort(key=lambda c: (int(np.searchsorted(index, c[0])), c[1]))
    notes.append(
        f"{len(table):,} boxes in the box list; {int(in_data.sum()):,} on "
        f"{table.loc[in_data, 'Image Index'].nunique():,} image(s) of the data; "
        f"{len(cases):,} in the scored images"
    )
    return cases, "the radiologists' boxes of BBox_List_2017.csv, rescaled from 1024 px", notes


def located_cases(
    dataset: Dataset, index: np.ndarray, boxes: bool | str | Path, split: str, limit: int
) -> CaseSelection:
    """Every case of ``index`` with a known location (:func:`ground_truth_cases`); the grid
    shows ``limit`` of them, the findings taken in turn, in ``index`` order.

    Raises:
        ResultsError: no finding of ``index`` has a known location, or the data has none.
    """
    found, source, notes = ground_truth_cases(dataset, index, boxes)
    if not found:
        raise ResultsError(
            f"--boxes: no finding of the {split} split has a known location ({'; '.join(notes)}); "
            "try --split all"
        )
    classes = np.array([c[1] for c in found], dtype=np.int64)
    queues: dict[int, list[int]] = {}
    for pos, k in enumerate(classes):
        queues.setdefault(int(k), []).append(pos)
    shown = sorted(pos for _, pos in _in_turn(dict(sorted(queues.items())), limit))
    return CaseSelection(
        rows=np.array([c[0] for c in found], dtype=np.int64),
        classes=classes,
        shown=shown,
        masks=[c[2] for c in found],
        ground_truth=source,
        notes=notes,
    )


def first_cases(
    dataset: Dataset, index: np.ndarray, scores: np.ndarray, limit: int
) -> CaseSelection:
    """The first ``limit`` rows of ``index``, each with its most likely present finding (its
    top-scoring output when it has none); ``scores``: float (N, L) sigmoid outputs of those rows."""
    rows = index[:limit]
    present = dataset.labels[rows] > 0
    chosen = np.where(present, scores[: len(rows)], -1.0)
    classes = np.where(present.any(1), chosen.argmax(1), scores[: len(rows)].argmax(1))
    return CaseSelection(
        rows=rows, classes=classes, shown=list(range(len(rows))), masks=[None] * len(rows)
    )
