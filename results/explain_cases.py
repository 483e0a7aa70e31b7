"""Which (image, output) pairs ``mdsearch explain`` maps, and why those.

**With ground truth** (``--boxes``): every (image, finding) of the split whose location is known
(:func:`ground_truth_cases`: the radiologists' boxes of ChestX-ray14, the phantom generator's
lesion masks) is a case and is scored; the grid shows ``limit`` of them, the findings in turn.

**Without**: what a reader checks first, per label: the network's most confident **true
positive** (a present finding it calls positive, highest score first), **false positive** (an
absent one it calls positive, highest score first) and **false negative** (a present one it
calls negative, lowest score first), at the label's decision threshold: chosen on the validation
split by Youden's J, as ``mdsearch eval`` chooses it (:func:`decision_thresholds`); an image is
called positive when its sigmoid score is >= the threshold. The grid takes labels and kinds in
turn: every label's most confident case of each kind, then the second ones, and so on
(:func:`confident_cases`). A map always explains the output of the case's own label.
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

#: The kinds of case shown without ground truth, in the order each label's are taken.
CASE_KINDS = ("true positive", "false positive", "false negative")
#: Threshold of a label whose validation split holds one class (no ROC to choose one on).
_FALLBACK_THRESHOLD = 0.5
__all__ = [
    "CASE_KINDS",
    "CaseSelection",
    "confident_cases",
    "decision_thresholds",
    "ground_truth_cases",
    "located_cases",
    "most_confident_cases",
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


def decision_thresholds(
    labels: np.ndarray, scores: np.ndarray, label_names: Sequence[str]
) -> tuple[np.ndarray, list[str]]:
    """Per label, the decision threshold on the sigmoid score chosen on the validation split by
    Youden's J (:func:`~mdsearch.results.metrics.youden_threshold`, as ``mdsearch eval`` chooses
    it); :data:`_FALLBACK_THRESHOLD` for a label whose validation images hold one class.

    Args:
        labels: uint8 (M, L) targets of the validation images.
        scores: float (M, L) the network's sigmoid outputs on them.
        label_names: L names, for the notes.

    Returns:
        ``(thresholds, notes)``: float64 (L,), and what the reader must know about them.
    """
    from .metrics import youden_threshold

    thresholds = np.full(len(label_names), _FALLBACK_THRESHOLD)
    one_class = []
    for k, name in enumerate(label_names):
        present = labels[:, k] > 0
        if present.all() or not present.any():
            one_class.append(name)
        else:
            thresholds[k] = youden_threshold(present, scores[:, k])
    listed = ", ".join(f"{name} {t:.3g}" for name, t in zip(label_names, thresholds, strict=True))
    notes = [
        "decision thresholds on the sigmoid score (an image is called positive at or above), "
        f"chosen on the validation split by Youden's J as mdsearch eval chooses them: {listed}"
    ]
    if one_class:
        notes.append(
            f"the validation split holds one class of {', '.join(one_class)}: no threshold to "
            f"choose there, {_FALLBACK_THRESHOLD:g} is used"
        )
    return thresholds, notes


def _kind_masks(
    labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray
) -> dict[str, np.ndarray]:
    """Per kind of :data:`CASE_KINDS`, a bool (N, L): which (image, label) is of that kind."""
    present = labels > 0
    called = scores >= np.asarray(thresholds)[None, :]
    return dict(
        zip(CASE_KINDS, (present & called, ~present & called, present & ~called), strict=True)
    )


def confident_cases(
    labels: np.ndarray, scores: np.ndarray, thresholds: Sequence[float], limit: int
) -> list[tuple[int, int, str]]:
    """Up to ``limit`` cases ``(position, label, kind)``: per label, its most confident true
    positives and false positives (highest score first) and false negatives (lowest first) at
    ``thresholds``; every label's first of each kind, then the second ones, and so on.

    Args:
        labels: uint8 (N, L) targets.
        scores: float (N, L) sigmoid outputs.
        thresholds: L decision thresholds (positive when score >= threshold).
        limit: cases at most.

    Example:
        >>> labels = np.array([[0], [0], [1], [1]])  # sorted by class, as a folder split is
        >>> scores = np.array([[0.1], [0.7], [0.3], [0.9]])
        >>> confident_cases(labels, scores, [0.5], 3)
        [(3, 0, 'true positive'), (1, 0, 'false positive'), (2, 0, 'false negative')]
    """
    queues: dict[tuple[int, str], np.ndarray] = {}
    kinds = _kind_masks(labels, scores, np.asarray(thresholds))
    for k in range(labels.shape[1]):
        for kind, mask in kinds.items():
            rows = np.flatnonzero(mask[:, k])
            confidence = scores[rows, k] if kind != "false negative" else -scores[rows, k]
            queues[(k, kind)] = rows[np.argsort(-confidence, kind="stable")]
    return [(pos, k, kind) for (k, kind), pos in _in_turn(queues, limit)]


def most_confident_cases(
    dataset: Dataset,
    index: np.ndarray,
    scores: np.ndarray,
    val_scores: np.ndarray,
    split: str,
    limit: int,
) -> CaseSelection:
    """The cases a reader checks first (see the module docstring), from the rows ``index``.

    Args:
        dataset: the data.
        index: rows of ``split`` to choose from.
        scores: float (N, L) sigmoid outputs of the network on ``index``.
        val_scores: float (M, L) its outputs on the validation split (the thresholds' images).
        split: the split's name, for the notes.
        limit: cases at most.

    Raises:
        ResultsError: no image of ``index`` is a true positive, false positive or false negative.
    """
    val = np.asarray(dataset.splits["val"], dtype=np.int64)
    thresholds, notes = decision_thresholds(dataset.labels[val], val_scores, dataset.label_names)
    if split in ("val", "all"):
        notes.append(f"the thresholds were chosen on images of the {split} split shown here")
    labels = dataset.labels[index]
    picked = confident_cases(labels, scores, thresholds, limit)
    kinds = _kind_masks(labels, scores, thresholds)
    missing = [
        f"{name} {kind}"
        for k, name in enumerate(dataset.label_names)
        for kind, mask in kinds.items()
        if not mask[:, k].any()
    ]
    if not picked:
        raise ResultsError(
            f"--split {split}: every image is a true negative at the thresholds, so there is no "
            "true positive, false positive or false negative to map; use another --split or --boxes"
        )
    if missing:
        notes.append(f"no case of the {split} split is a {'; '.join(missing)}")
    return CaseSelection(
        rows=index[[pos for pos, _, _ in picked]].astype(np.int64),
        classes=np.array([k for _, k, _ in picked], dtype=np.int64),
        shown=list(range(len(picked))),
        masks=[None] * len(picked),
        kinds=[kind for _, _, kind in picked],
        thresholds={n: float(t) for n, t in zip(dataset.label_names, thresholds, strict=True)},
        notes=notes,
    )
