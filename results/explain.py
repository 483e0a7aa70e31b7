"""Grad-CAM maps of a trained network (the paper's Figure 7) and how well they point at findings.

``mdsearch explain ARCH.json --weights W`` loads the weights (:func:`~mdsearch.results.weights.
load_weights`) and the data the way ``mdsearch eval`` does (:func:`~mdsearch.results.evaluate.
saved_data_settings`: the training run's data settings unless flags say otherwise), computes
class activation maps with the ``grad-cam`` package (``pytorch_grad_cam.GradCAM``) and writes:

==================  ==========================================================================
``explain.png``     a grid: each case as the input image and its map over it, with the finding,
                    the network's score and, where known, the ground truth outline
``explain.md``      settings, the grid, the localisation table (with ground truth)
``explain.json``    the same as data
``localisation.csv``  one row per scored case (with ground truth)
==================  ==========================================================================

Ground truth (``--boxes``): on ChestX-ray14 data, the radiologists' boxes of
``BBox_List_2017.csv`` (rescaled from 1024 px to the input side); on ``phantom`` data, the lesion
masks the generator knows (:func:`mdsearch.search.datasets.phantom_lesion_masks`). Each case is
one (image, finding) pair with a ground truth; its map is the map of that finding's output, and
:mod:`mdsearch.results.localisation` scores it (pointing game against chance, IoU).

**Target layer** (why): the last feature map that still has a spatial layout, where Grad-CAM is
usually taken (its gradients are the closest to the output and its channels the most semantic).
In timm's MobileNet-v2 (``EfficientNet`` class) that is ``bn2``: the 1x1 ``conv_head`` to 1280
channels with its batch norm and ReLU6 (``BatchNormAct2d``), stride 32. MobileNet-v3 pools before
its head convolution, so there it is the last block, ``blocks.6`` (also stride 32). At stride 32
a 64 px input gives 2x2 cells and 224 px 7x7: the map cannot be finer than that (``--layer
blocks.5`` takes a stride-16 map instead).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mdsearch.space import ArchSpec, atomic_write_bytes

from .errors import ResultsError
from .localisation import CAM_LEVEL, FindingScore, box_mask, score_localisation

if TYPE_CHECKING:
    from torch import nn

    from mdsearch.search.datasets import Dataset

    from .document import Section

__all__ = [
    "EXPLAIN_FILES",
    "EXPLAIN_SPLITS",
    "Explanation",
    "cam_target_layer",
    "class_activation_maps",
    "explain_figure",
    "explain_saved",
    "explain_section",
    "format_explanation",
    "ground_truth_cases",
    "with_explain_section",
    "write_explanation",
]

#: What :func:`write_explanation` writes: key -> file name in the output folder.
EXPLAIN_FILES = {
    "md": "explain.md",
    "json": "explain.json",
    "png": "explain.png",
    "cases": "localisation.csv",
}
#: Splits ``--split`` accepts (``all``: every image of the data).
EXPLAIN_SPLITS = ("test", "val", "train", "all")
#: Cases per row of the grid (each takes two panels: image, map over it).
_GRID_COLUMNS = 4
#: Marks the start of the Grad-CAM section appended to a training folder's ``eval.md``.
_SECTION_MARK = "<!-- mdsearch explain -->"


@dataclass
class Explanation:
    """What :func:`explain_saved` found (see the module docstring).

    Attributes:
        arch: the architecture's canonical string.
        data: ``Dataset.describe()`` of the data.
        split: the split the cases come from (``all`` for every image).
        resolution: input side in pixels.
        layer: the target layer's module name; ``feature_side``: its map's side in cells.
        cases: one dict per case: ``image`` (item id), ``finding``, ``score`` (sigmoid output of
            that finding, 0-1), ``present`` (its label), and with ground truth ``hit``, ``iou``,
            ``area_fraction``, ``peak_row``, ``peak_col``.
        scores: the localisation table (None without ground truth).
        ground_truth: where the ground truth came from (None without).
        level: the IoU's threshold (share of each map's maximum).
        notes: what the reader must know (boxes found, lesions not visible, ...).
        settings: weights, device and the like, for the report.
    """

    arch: str
    data: dict[str, Any]
    split: str
    resolution: int
    layer: str
    feature_side: int
    cases: list[dict[str, Any]]
    scores: list[FindingScore] | None = None
    ground_truth: str | None = None
    level: float = CAM_LEVEL
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        out = {k: v for k, v in self.__dict__.items() if k != "scores"}
        out["scores"] = None if self.scores is None else [s.to_dict() for s in self.scores]
        return out

    @property
    def overall(self) -> FindingScore | None:
        """The ``all findings`` row of the localisation table, if any."""
        return None if not self.scores else self.scores[-1]


def cam_target_layer(model: nn.Module, name: str | None = None) -> tuple[str, nn.Module]:
    """The layer Grad-CAM reads: ``name`` (a module name such as ``blocks.5``) or, by default,
    the last spatial feature map (``bn2`` of MobileNet-v2, the last block of MobileNet-v3; see
    the module docstring).

    Raises:
        ResultsError: ``name`` is not a module of the network.
    """
    modules = dict(model.named_modules())
    if name is None:
        name = "bn2" if "bn2" in modules and "conv_head" in modules else None
        if name is None:
            blocks = [n for n in modules if re.fullmatch(r"blocks\.\d+", n)]
            if not blocks:
                raise ResultsError("the network has no blocks to take Grad-CAM from: pass --layer")
            name = max(blocks, key=lambda n: int(n.split(".")[1]))
    if name not in modules or not name:
        top = ", ".join(n for n in modules if n and "." not in n)
        raise ResultsError(
            f"--layer {name!r} is not a module of the network; use e.g. bn2, blocks.5 (top level: "
            f"{top})"
        )
    return name, modules[name]


def class_activation_maps(
    model: nn.Module,
    images: np.ndarray,
    classes: Sequence[int],
    *,
    layer: str | None = None,
    batch_size: int = 32,
    progress: Callable[[int], Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Grad-CAM maps of ``model`` for one output per image (``pytorch_grad_cam.GradCAM``).

    The images are normalised as in training (:mod:`mdsearch.search.datasets.loader`: gray
    ``pixel / 255`` minus ``MEAN`` over ``STD``, repeated over 3 channels). The map of output
    ``c`` is the ReLU of the target layer's channels weighted by the mean gradient of the logit
    ``c``, upsampled bilinearly to the input and scaled to 0-1 per image (0 everywhere when no
    location has positive evidence).

    Args:
        model: the network (eval mode), on the device it should run on.
        images: uint8 (N, R, R) grayscale.
        classes: N output indices, the output each map explains.
        layer: target module name (default: :func:`cam_target_layer`'s choice).
        batch_size: images per forward/backward pass (memory only).
        progress: called with the number of images done after each batch.

    Returns:
        ``(maps, probabilities, feature_side)``: float32 (N, R, R) maps in [0, 1], float32 (N, L)
        sigmoid outputs, and the target layer's map side in cells.
    """
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    _, target = cam_target_layer(model, layer)
    model.eval()
    # Not ``with GradCAM(...)``: its __exit__ swallows IndexError.
    cam = GradCAM(model=model, target_layers=[target])
    maps, probs, side = [], [], 0
    try:
        for start in range(0, len(images), batch_size):
            x = _inputs(model, images[start : start + batch_size])
            targets = [ClassifierOutputTarget(int(c)) for c in classes[start : start + batch_size]]
            maps.append(np.asarray(cam(input_tensor=x, targets=targets), dtype=np.float32))
            probs.append(torch.sigmoid(cam.outputs.detach().float()).cpu().numpy())
            side = int(cam.activations_and_grads.activations[0].shape[-1])
            if progress is not None:
                progress(min(start + batch_size, len(images)))
    finally:
        cam.activations_and_grads.release()
    if not maps:
        return np.zeros((0, *images.shape[1:]), np.float32), np.zeros((0, 0), np.float32), side
    return np.concatenate(maps), np.concatenate(probs).astype(np.float32), side


def _inputs(model: nn.Module, images: np.ndarray):
    """uint8 (B, R, R) images as the network's normalised (B, 3, R, R) input, on its device."""
    import torch

    from mdsearch.search.datasets.loader import normalize

    pixels = torch.from_numpy(np.ascontiguousarray(images))
    x = normalize(pixels.unsqueeze(1).to(torch.float32).div_(255.0))
    return x.expand(-1, 3, -1, -1).contiguous().to(next(model.parameters()).device)


def _probabilities(model: nn.Module, images: np.ndarray, batch_size: int) -> np.ndarray:
    """float32 (N, L) sigmoid outputs of ``model`` on uint8 (N, R, R) images."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = model(_inputs(model, images[start : start + batch_size]))
            out.append(torch.sigmoid(logits.float()).cpu().numpy())
    return np.concatenate(out).astype(np.float32)


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


def explain_figure(
    images: np.ndarray,
    maps: np.ndarray,
    titles: Sequence[str],
    *,
    masks: Sequence[np.ndarray | None] | None = None,
    caption: str = "",
) -> bytes:
    """The grid as PNG bytes: per case the image, then its map over it (with ``masks``' outline
    and a ``+`` at the map's maximum), titled ``titles``; a colour bar says the map's scale.

    Args:
        images: uint8 (N, R, R).
        maps: float (N, R, R) in [0, 1].
        titles: N panel titles (finding, score, ...).
        masks: N ground-truth masks or None.
        caption: the figure's title line (what the map is, the input size in px).
    """
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pytorch_grad_cam.utils.image import show_cam_on_image

    from .localisation import map_peak

    n = len(images)
    columns = min(n, _GRID_COLUMNS) * 2 or 2
    rows = max(1, math.ceil(n / _GRID_COLUMNS))
    fig, axes = plt.subplots(
        rows, columns, figsize=(1.9 * columns + 0.9, 2.25 * rows + 0.7), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax_img, ax_map = axes.flat[2 * i], axes.flat[2 * i + 1]
        gray = images[i].astype(np.float32) / 255.0
        ax_img.imshow(gray, cmap="gray", vmin=0, vmax=1)
        overlay = show_cam_on_image(
            np.repeat(gray[..., None], 3, axis=2), maps[i].astype(np.float32), use_rgb=True
        )
        ax_map.imshow(overlay)
        mask = None if masks is None else masks[i]
        if mask is not None and mask.any():
            ax_map.contour(mask.astype(float), levels=[0.5], colors="white", linewidths=1.0)
            ax_img.contour(mask.astype(float), levels=[0.5], colors="lime", linewidths=0.8)
        peak = map_peak(maps[i])
        if peak is not None:
            ax_map.plot(peak[1], peak[0], "+", color="white", markersize=9, mew=1.8)
        ax_img.set_title(titles[i], fontsize=7, loc="left")
    mappable = plt.cm.ScalarMappable(cmap="jet", norm=matplotlib.colors.Normalize(0, 1))
    bar = fig.colorbar(mappable, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01)
    bar.set_label("Grad-CAM, share of the map's maximum (0-1)", fontsize=8)
    fig.suptitle(caption, fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _split_index(dataset: Dataset, split: str) -> np.ndarray:
    if split == "all":
        return np.arange(len(dataset), dtype=np.int64)
    if split not in dataset.splits:
        raise ResultsError(
            f"--split {split}: --data {dataset.source!r} has the splits "
            f"{', '.join(dataset.splits)} (or all)"
        )
    return np.asarray(dataset.splits[split], dtype=np.int64)


def _grid_order(findings: Sequence[int], limit: int) -> list[int]:
    """Up to ``limit`` case positions, taking the findings in turn so that each shows."""
    queues: dict[int, list[int]] = {}
    for pos, k in enumerate(findings):
        queues.setdefault(int(k), []).append(pos)
    order: list[int] = []
    while len(order) < limit and any(queues.values()):
        for k in sorted(queues):
            if queues[k] and len(order) < limit:
                order.append(queues[k].pop(0))
    return sorted(order)


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
    resolution: int | None = None,
    seed: int | None = None,
    val_fraction: float | None = None,
    cache_dir: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = 32,
    progress: bool = True,
    say: Callable[[str], Any] = print,
) -> tuple[Explanation, dict[str, Path]]:
    """``mdsearch explain``: Grad-CAM maps of saved weights, scored against ground truth.

    Without ``boxes``: the first ``images`` images of ``split`` (in the order ``mdsearch eval``
    reads them), each with the map of its most likely present finding (or of its top-scoring
    output when it has none). With ``boxes``: every (image, finding) of ``split`` whose location
    is known (:func:`ground_truth_cases`) is scored; the grid shows ``images`` of them, the
    findings taken in turn.

    Args:
        spec, weights: the architecture and its ``weights.safetensors``.
        data, resolution, seed, val_fraction, cache_dir: as in
            :func:`~mdsearch.results.evaluate.evaluate_saved` (defaults: the training run's).
        images: cases in the grid (1 or more).
        boxes: score localisation: True for the data's own ground truth, or a box-list path.
        split: ``test`` (default), ``val``, ``train`` or ``all``.
        layer: Grad-CAM's target module (default :func:`cam_target_layer`).
        level: the IoU's threshold, a share of each map's maximum.
        out_dir: where the files go (default: the weights' folder, next to ``eval.md``, whose
            Grad-CAM section is then refreshed).
        device, batch_size: inference settings.
        progress: progress bars (image cache, maps).
        say: where one-line messages go.

    Returns:
        ``(explanation, files)``.

    Raises:
        ResultsError, DataError: bad weights, data, split, layer or ground truth; nothing is
            written then.
    """
    from .evaluate import saved_data_settings
    from .weights import load_weights

    if split not in EXPLAIN_SPLITS:
        raise ResultsError(f"--split {split}: use one of {', '.join(EXPLAIN_SPLITS)}")
    if images < 1:
        raise ResultsError(f"--images {images}: use 1 or more")
    if not 0 < level < 1:
        raise ResultsError(f"--level {level}: use a share of the map's maximum between 0 and 1")
    weights = Path(weights)
    settings, meta, trained = saved_data_settings(
        spec,
        weights,
        data,
        resolution=resolution,
        seed=seed,
        val_fraction=val_fraction,
        cache_dir=cache_dir,
    )
    settings.check()
    dataset = settings.load(progress=progress)
    say(f"data: {dataset.summary()}")
    if len(dataset.label_names) != spec.num_classes:
        raise ResultsError(
            f"{spec.canonical} has {spec.num_classes} outputs, --data {dataset.source!r} has "
            f"{len(dataset.label_names)} label(s): pass the arch and data the weights were "
            "trained for"
        )
    index = _split_index(dataset, split)
    model = load_weights(spec, weights, device=device)
    layer, _ = cam_target_layer(model, layer)

    notes: list[str] = []
    source = None
    masks: list[np.ndarray | None]
    if boxes:
        found, source, notes = ground_truth_cases(dataset, index, boxes)
        for note in notes:
            say(f"  {note}")
        if not found:
            raise ResultsError(
                f"--boxes: no finding of the {split} split has a known location ({'; '.join(notes)}); "
                "try --split all"
            )
        rows = np.array([c[0] for c in found], dtype=np.int64)
        classes = np.array([c[1] for c in found], dtype=np.int64)
        masks = [c[2] for c in found]
    else:
        from mdsearch.search.datasets.loader import evaluation_index

        rows = (np.arange(len(dataset)) if split == "all" else evaluation_index(dataset, split))[
            :images
        ]
        probs = _probabilities(model, dataset.images[rows], batch_size)
        present = dataset.labels[rows] > 0
        chosen = np.where(present, probs, -1.0)
        classes = np.where(present.any(1), chosen.argmax(1), probs.argmax(1))
        masks = [None] * len(rows)

    say(f"Grad-CAM at {layer}: {len(rows):,} map(s) of the {split} split")
    bar = _progress_bar(len(rows), progress)
    try:
        maps, probs, feature_side = class_activation_maps(
            model,
            dataset.images[rows],
            classes,
            layer=layer,
            batch_size=batch_size,
            progress=bar.update_to if bar else None,
        )
    finally:
        if bar:
            bar.close()
    ids = dataset.item_ids if dataset.item_ids is not None else np.arange(len(dataset)).astype(str)
    cases = [
        {
            "image": str(ids[row]),
            "finding": dataset.label_names[k],
            "score": float(probs[i, k]),
            "present": bool(dataset.labels[row, k]),
        }
        for i, (row, k) in enumerate(zip(rows, classes, strict=True))
    ]
    scores = None
    if boxes:
        scores, scored = score_localisation(
            maps, np.stack(masks), [c["finding"] for c in cases], level=level
        )
        for case, extra in zip(cases, scored, strict=True):
            case.update({k: v for k, v in extra.items() if k != "finding"})
    explanation = Explanation(
        arch=spec.canonical,
        data=dataset.describe(),
        split=split,
        resolution=dataset.resolution,
        layer=layer,
        feature_side=feature_side,
        cases=cases,
        scores=scores,
        ground_truth=source,
        level=level,
        notes=notes,
        settings={
            "weights": str(weights),
            "weights epoch": meta.get("epoch"),
            "trained on": trained.get("data"),
            "device": device,
        },
    )
    shown = _grid_order(classes, images) if boxes else list(range(len(rows)))
    figure = explain_figure(
        dataset.images[rows[shown]],
        maps[shown],
        [_panel_title(cases[i]) for i in shown],
        masks=[masks[i] for i in shown],
        caption=_caption(explanation),
    )
    files = write_explanation(explanation, out_dir or weights.parent, figure)
    if scores:
        say(_overall_line(explanation))
    return explanation, files


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


def _panel_title(case: dict[str, Any]) -> str:
    finding = case["finding"].replace(" (synthetic)", "")
    text = f"{case['image']}\n{finding}: p={case['score']:.2f}"
    text += " (present)" if case["present"] else " (absent)"
    if "hit" in case:
        text += f"\n{'hit' if case['hit'] else 'miss'}, IoU {case['iou']:.2f}"
    return text


def _caption(e: Explanation) -> str:
    cell = e.resolution / e.feature_side if e.feature_side else float("nan")
    synthetic = "SYNTHETIC phantom data; " if e.data.get("synthetic") else ""
    outline = "; outline: ground truth, +: the map's maximum" if e.ground_truth else ""
    return (
        f"{synthetic}Grad-CAM of {ArchSpec.parse(e.arch).arch_id} at {e.layer} "
        f"({e.feature_side}x{e.feature_side} cells of {cell:.0f} px) on {e.resolution}x"
        f"{e.resolution} px inputs, {e.split} split; p: the network's sigmoid score{outline}"
    )


def _overall_line(e: Explanation) -> str:
    o = e.overall
    return (
        f"pointing game: {o.hits}/{o.cases} hits = {o.hit_rate:.2f} (95% CI {o.hit_low:.2f}-"
        f"{o.hit_high:.2f}) vs chance {o.chance:.3f} (p = {o.p_value:.2g}) and a fixed point "
        f"{o.fixed_point:.2f}; mean IoU at "
        f"{e.level:g} of the maximum: {o.mean_iou:.2f}"
    )


def format_explanation(e: Explanation) -> str:
    """``explain.md``: settings, the grid, the localisation table, notes."""
    arch_id = ArchSpec.parse(e.arch).arch_id
    lines = [f"# Grad-CAM of {e.arch}", ""]
    if e.data.get("synthetic"):
        lines += ["> SYNTHETIC data (phantom), not chest X-rays.", ""]
    lines += [
        f"Data: `{e.data.get('source')}` ({e.data.get('name')}), {e.split} split, inputs "
        f"{e.resolution}x{e.resolution} px. Target layer `{e.layer}`: the last feature map with "
        f"a spatial layout ({e.feature_side}x{e.feature_side} cells, so one cell spans "
        f"{e.resolution / max(e.feature_side, 1):.0f} px); each map is scaled to 0-1 of its own "
        "maximum.",
        "",
        f"![Grad-CAM maps of {arch_id}]({EXPLAIN_FILES['png']})",
        "",
        "Each case: the input image, then the map of one finding's output over it; the title "
        "gives the image, the finding, the network's sigmoid score p (0-1) and whether the "
        "finding is labelled present.",
        "",
    ]
    if e.scores:
        lines += [
            "## Localisation",
            "",
            f"Ground truth: {e.ground_truth}. A case is one (image, finding) with a known "
            "location; its map is that finding's. Pointing game: a hit when the map's maximum "
            "lies in the ground truth; chance is the hit rate of a random point (the mean area "
            "fraction of the ground truth). IoU: the map above "
            f"{e.level:g} of its maximum against the ground truth. Rates and IoU are shares "
            "(0-1); p is one-sided, exact, against chance. Fixed point: the hit rate of always "
            "pointing at the pixel most often inside this finding's ground truth (chosen on "
            "these cases): a map that only beats chance may just know where the finding usually "
            "is; one that beats the fixed point finds it in each image.",
            "",
            "| finding | cases | hits | hit rate [95% CI] | chance | hit rate / chance | p | "
            "fixed point | mean IoU | flat maps |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s in e.scores:
            name = f"**{s.finding}**" if s.finding == "all findings" else s.finding
            ratio = s.hit_rate / s.chance if s.chance else float("nan")
            lines.append(
                f"| {name} | {s.cases:,} | {s.hits:,} | {s.hit_rate:.2f} [{s.hit_low:.2f}, "
                f"{s.hit_high:.2f}] | {s.chance:.3f} | {ratio:.1f} | {s.p_value:.2g} | "
                f"{s.fixed_point:.2f} | {s.mean_iou:.2f} | {s.flat_maps} |"
            )
        lines += [
            "",
            f"Per case: [{EXPLAIN_FILES['cases']}]({EXPLAIN_FILES['cases']}). A flat map has no "
            "positive evidence anywhere (it points nowhere: a miss).",
            "",
        ]
    if e.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in e.notes] + [""]
    lines += ["## Settings", ""]
    lines += [f"- {k}: {v}" for k, v in e.settings.items() if v is not None]
    lines.append("")
    return "\n".join(lines)


def write_explanation(e: Explanation, out_dir: str | Path, figure: bytes) -> dict[str, Path]:
    """Write ``explain.md``, ``explain.json``, ``explain.png`` (and ``localisation.csv`` with
    ground truth) atomically; refresh the Grad-CAM section of an ``eval.md`` in ``out_dir``.

    Returns:
        key -> path of each file written.
    """
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {key: out / name for key, name in EXPLAIN_FILES.items()}
    atomic_write_bytes(files["png"], figure)
    atomic_write_bytes(files["json"], (json.dumps(e.to_dict(), indent=2) + "\n").encode())
    atomic_write_bytes(files["md"], format_explanation(e).encode())
    if e.scores:
        atomic_write_bytes(files["cases"], pd.DataFrame(e.cases).to_csv(index=False).encode())
    else:
        del files["cases"]
    report = out / "eval.md"
    if report.is_file():
        atomic_write_bytes(report, with_explain_section(report.read_text(), out).encode())
        files["report"] = report
    return files


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
