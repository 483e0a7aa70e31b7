"""``mdsearch explain``: Grad-CAM maps of a trained network (the paper's Figure 7) and how well
they point at findings.

``mdsearch explain ARCH.json --weights W`` loads the weights (:func:`~mdsearch.results.weights.
load_weights`) and the data as ``mdsearch eval`` does (:func:`~mdsearch.results.saved_data.
load_saved_data`: the training run's data settings unless flags say otherwise), chooses the
cases (:mod:`~mdsearch.results.explain_cases`), computes their class activation maps with the
``grad-cam`` package (:mod:`~mdsearch.results.explain_maps`), scores them against ground truth
(:mod:`~mdsearch.results.localisation`) and writes (:mod:`~mdsearch.results.explain_files`):

==================  ==========================================================================
``explain.png``     a grid: each case as the input image and its map over it, with the finding,
                    the network's score and, where known, the ground truth outline
                    (:mod:`~mdsearch.results.explain_grid`)
``explain.md``      settings, the grid, the localisation table (with ground truth)
                    (:mod:`~mdsearch.results.explain_document`)
``explain.json``    the same as data
``localisation.csv``  one row per scored case (with ground truth)
==================  ==========================================================================

An ``eval.md`` in the output folder (the training report) gets a Grad-CAM section linking them
(:func:`with_explain_section`), replaced, not repeated, on every run.

Ground truth (``--boxes``): on ChestX-ray14 data, the radiologists' boxes of
``BBox_List_2017.csv`` (rescaled from 1024 px to the input side); on ``phantom`` data, the lesion
masks the generator knows (:func:`mdsearch.search.datasets.phantom_lesion_masks`). Each case is
one (image, finding) pair with a ground truth; its map is the map of that finding's output.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

import numpy as np

from mdsearch.space import ArchSpec, atomic_write_bytes

from .errors import ResultsError
from .explain_cases import CaseSelection, located_cases, most_confident_cases, split_rows
from .explain_document import EXPLAIN_FILES, Explanation, pointing_game_line
from .explain_files import write_explanation
from .explain_grid import explain_figure, grid_caption, panel_title
from .explain_maps import cam_target_layer, class_activation_maps, sigmoid_scores
from .localisation import CAM_LEVEL, FindingScore, score_localisation
from .saved_data import SavedDataFlags, load_saved_data

if TYPE_CHECKING:
    from torch import nn

    from mdsearch.search.datasets import Dataset

    from .document import Section

__all__ = ["EXPLAIN_SPLITS", "explain_saved", "explain_section", "with_explain_section"]

#: Splits ``--split`` accepts (``all``: every image of the data).
EXPLAIN_SPLITS = ("test", "val", "train", "all")
#: Marks the start of the Grad-CAM section appended to a training folder's ``eval.md``.
_SECTION_MARK = "<!-- mdsearch explain -->"


def explain_saved(
    spec: ArchSpec,
    weights: str | Path,
    data: str | None = None,
    *,
    images: int = 8,
    boxes: bool | str | Path = False,
    split: str = "test",
    layer: str | None = None,
    level: float = CAM_LEVEL,
    out_dir: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = 32,
    progress: bool = True,
    say: Callable[[str], Any] = print,
    **flags: Unpack[SavedDataFlags],
) -> tuple[Explanation, dict[str, Path]]:
    """``mdsearch explain``: Grad-CAM maps of saved weights, scored against ground truth.

    Without ``boxes``: per label, the network's most confident true positives, false positives
    and false negatives in ``split`` at a threshold chosen on the validation split, ``images``
    cases in all, labels and kinds in turn. With ``boxes``: every (image, finding) of ``split``
    whose location is known is scored; the grid shows ``images`` of them, the findings taken in
    turn (:mod:`~mdsearch.results.explain_cases`).

    Args:
        spec, weights: the architecture and its ``weights.safetensors``.
        data: a ``--data`` value (default: the training run's).
        images: cases in the grid (1 or more).
        boxes: score localisation: True for the data's own ground truth, or a box-list path.
        split: ``test`` (default), ``val``, ``train`` or ``all``.
        layer: Grad-CAM's target module (default :func:`~mdsearch.results.explain_maps.
            cam_target_layer`).
        level: the IoU's threshold, a share of each map's maximum.
        out_dir: where the files go (default: the weights' folder, next to ``eval.md``, whose
            Grad-CAM section is then refreshed).
        device, batch_size: inference settings.
        progress: progress bars (image cache, maps).
        say: where one-line messages go.
        flags: ``resolution``, ``seed``, ``val_fraction``, ``cache_dir``
            (:class:`~mdsearch.results.saved_data.SavedDataFlags`; unset: the training run's).

    Returns:
        ``(explanation, files)``.

    Raises:
        ResultsError, DataError: bad weights, data, split, layer or ground truth; nothing is
            written then.
    """
    from .weights import load_weights

    _check_options(split, images, level)
    weights = Path(weights)
    saved = load_saved_data(spec, weights, data, progress=progress, say=say, **flags)
    dataset = saved.dataset
    model = load_weights(spec, weights, device=device)
    layer, _ = cam_target_layer(model, layer)
    cases = _select_cases(model, dataset, split, boxes, images, batch_size, say)
    for note in cases.notes:
        say(f"  {note}")
    say(f"Grad-CAM at {layer}: {len(cases.rows):,} map(s) of the {split} split")
    maps, scores, feature_side = _maps(model, dataset, cases, layer, batch_size, progress)
    records = _case_records(dataset, cases, scores)
    explanation = Explanation(
        arch=spec.canonical,
        data=dataset.describe(),
        split=split,
        resolution=dataset.resolution,
        layer=layer,
        feature_side=feature_side,
        cases=records,
        scores=_score_cases(records, maps, cases, level) if cases.ground_truth else None,
        ground_truth=cases.ground_truth,
        level=level,
        notes=cases.notes,
        thresholds=cases.thresholds,
        settings={
            "weights": str(weights),
            "weights epoch": saved.metadata.get("epoch"),
            "trained on": saved.trained.get("data"),
            "device": device,
        },
    )
    figure = _grid(dataset, cases, maps, explanation)
    out = Path(out_dir or weights.parent)
    files = write_explanation(explanation, out, figure)
    files.update(_link_from_eval_report(out))
    if explanation.scores:
        say(pointing_game_line(explanation))
    return explanation, files


def _check_options(split: str, images: int, level: float) -> None:
    if split not in EXPLAIN_SPLITS:
        raise ResultsError(f"--split {split}: use one of {', '.join(EXPLAIN_SPLITS)}")
    if images < 1:
        raise ResultsError(f"--images {images}: use 1 or more")
    if not 0 < level < 1:
        raise ResultsError(f"--level {level}: use a share of the map's maximum between 0 and 1")


def _select_cases(
    model: nn.Module,
    dataset: Dataset,
    split: str,
    boxes: bool | str | Path,
    images: int,
    batch_size: int,
    say: Callable[[str], Any],
) -> CaseSelection:
    """The cases to map (:mod:`~mdsearch.results.explain_cases`); without ground truth, the
    network scores ``split`` and the validation split (its thresholds) first."""
    index = split_rows(dataset, split)
    if boxes:
        return located_cases(dataset, index, boxes, split, images)
    also = "" if split in ("val", "all") else " and the validation split (the thresholds)"
    say(f"scoring the {split} split{also} to choose the cases")
    scores = sigmoid_scores(model, dataset.images[index], batch_size)
    val = np.asarray(dataset.splits["val"], dtype=np.int64)
    if split in ("val", "all"):  # the validation images are among those just scored
        val_scores = scores[np.searchsorted(index, val)]
    else:
        val_scores = sigmoid_scores(model, dataset.images[val], batch_size)
    return most_confident_cases(dataset, index, scores, val_scores, split, images)


def _maps(
    model: nn.Module,
    dataset: Dataset,
    cases: CaseSelection,
    layer: str,
    batch_size: int,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Grad-CAM maps of the cases, the network's sigmoid scores, the map's side in cells."""
    bar = _progress_bar(len(cases.rows), progress)
    try:
        return class_activation_maps(
            model,
            dataset.images[cases.rows],
            cases.classes,
            layer=layer,
            batch_size=batch_size,
            progress=bar.update_to if bar else None,
        )
    finally:
        if bar:
            bar.close()


def _progress_bar(total: int, enabled: bool):
    """A tqdm bar on stderr with an ``update_to(done)`` method, or None."""
    if not enabled:
        return None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="map", desc="Grad-CAM", leave=False)

    def update_to(done: int) -> None:
        bar.update(done - bar.n)

    bar.update_to = update_to
    return bar


def _case_records(
    dataset: Dataset, cases: CaseSelection, scores: np.ndarray
) -> list[dict[str, Any]]:
    """One dict per case for the report: image id, finding, score (0-1), present, and without
    ground truth its kind (true positive, ...)."""
    ids = dataset.item_ids if dataset.item_ids is not None else np.arange(len(dataset)).astype(str)
    records = [
        {
            "image": str(ids[row]),
            "finding": dataset.label_names[k],
            "score": float(scores[i, k]),
            "present": bool(dataset.labels[row, k]),
        }
        for i, (row, k) in enumerate(zip(cases.rows, cases.classes, strict=True))
    ]
    for record, kind in zip(records, cases.kinds or [], strict=False):
        record["kind"] = kind
    return records


def _score_cases(
    records: list[dict[str, Any]], maps: np.ndarray, cases: CaseSelection, level: float
) -> list[FindingScore]:
    """The localisation table of the maps against the ground truth; adds each case's hit, IoU,
    area fraction and peak to its record."""
    table, scored = score_localisation(
        maps, np.stack(cases.masks), [c["finding"] for c in records], level=level
    )
    for case, extra in zip(records, scored, strict=True):
        case.update({k: v for k, v in extra.items() if k != "finding"})
    return table


def _grid(dataset: Dataset, cases: CaseSelection, maps: np.ndarray, e: Explanation) -> bytes:
    """``explain.png`` of the shown cases."""
    shown = cases.shown
    return explain_figure(
        dataset.images[cases.rows[shown]],
        maps[shown],
        [panel_title(e.cases[i]) for i in shown],
        masks=[cases.masks[i] for i in shown],
        caption=grid_caption(e),
    )


def _link_from_eval_report(out: Path) -> dict[str, Path]:
    """Refresh the Grad-CAM section of the training report ``eval.md`` in ``out``, if any."""
    report = out / "eval.md"
    if not report.is_file():
        return {}
    atomic_write_bytes(report, with_explain_section(report.read_text(), out).encode())
    return {"report": report}


def explain_section(saved: dict[str, Any]) -> Section:
    """The ``Grad-CAM`` section of a report beside ``explain.md`` (``eval.md``), from what
    ``explain.json`` holds: what the maps are and, with ground truth, the pointing game against
    chance. Reads no file (:func:`with_explain_section` gathers ``saved``)."""
    from .document import Paragraph, Section

    side = saved.get("feature_side")
    text = (
        f"Class activation maps (`mdsearch explain`): [{EXPLAIN_FILES['md']}]"
        f"({EXPLAIN_FILES['md']}), [{EXPLAIN_FILES['png']}]({EXPLAIN_FILES['png']}); "
        f"{len(saved.get('cases', []))} map(s) of the {saved.get('split')} split at "
        f"`{saved.get('layer')}` ({side}x{side} cells)."
    )
    scores = saved.get("scores")
    if scores:
        o = scores[-1]
        text += (
            f" Pointing game over {o['cases']} located findings: hit rate {o['hit_rate']:.2f} "
            f"[{o['hit_low']:.2f}, {o['hit_high']:.2f}] vs chance {o['chance']:.3f} (a fixed "
            f"point: {o['fixed_point']:.2f}); mean IoU "
            f"{o['mean_iou']:.2f}."
        )
    return Section("Grad-CAM", (Paragraph(text),))


def with_explain_section(text: str, out_dir: str | Path) -> str:
    """``text`` (a report in ``out_dir``) with its Grad-CAM section replaced by the current one
    (removed when ``out_dir`` has no readable ``explain.json``): reads ``explain.json``, builds
    :func:`explain_section` from it, renders it as Markdown."""
    from .report_markup import markdown_section

    body = text.split(_SECTION_MARK)[0].rstrip("\n") + "\n"
    try:
        saved = json.loads((Path(out_dir) / EXPLAIN_FILES["json"]).read_text())
    except (OSError, json.JSONDecodeError):
        return body
    return f"{body}\n{_SECTION_MARK}\n{markdown_section(explain_section(saved))}\n"
