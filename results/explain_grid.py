"""The grid of ``mdsearch explain`` (``explain.png``): per case the input image, then its
Grad-CAM map over it, titled with the image, the finding and the network's score.

matplotlib and ``pytorch_grad_cam``'s overlay are imported inside :func:`explain_figure`.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mdsearch.space import ArchSpec

if TYPE_CHECKING:
    from .explain_document import Explanation

__all__ = ["explain_figure", "grid_caption", "panel_title"]

#: Cases per row of the grid (each takes two panels: image, map over it).
_GRID_COLUMNS = 4


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
    # About 15 characters of 8 pt text per inch: wrap the caption to the figure's width.
    fig.suptitle(textwrap.fill(caption, width=int(15 * fig.get_figwidth())), fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def panel_title(case: dict[str, Any]) -> str:
    """A case's title in the grid: the image, the finding, its score p, whether it is present,
    its kind (true positive, ...) when it has one, and with ground truth the pointing game's
    verdict and the IoU."""
    finding = case["finding"].replace(" (synthetic)", "")
    text = f"{case['image']}\n{finding}: p={case['score']:.2f}"
    text += " (present)" if case["present"] else " (absent)"
    if "kind" in case:
        text += f"\n{case['kind']}"
    if "hit" in case:
        text += f"\n{'hit' if case['hit'] else 'miss'}, IoU {case['iou']:.2f}"
    return text


def grid_caption(e: Explanation) -> str:
    """The grid's title: the data (SYNTHETIC when it is), the network, the layer and its cells,
    the input size, the split, which cases are shown, and what the marks mean."""
    cell = e.resolution / e.feature_side if e.feature_side else float("nan")
    synthetic = "SYNTHETIC phantom data; " if e.data.get("synthetic") else ""
    outline = "; outline: ground truth, +: the map's maximum" if e.ground_truth else ""
    chosen = (
        "; per label its most confident true positives, false positives and false negatives at "
        "a threshold chosen on the validation split"
        if e.thresholds is not None
        else ""
    )
    return (
        f"{synthetic}Grad-CAM of {ArchSpec.parse(e.arch).arch_id} at {e.layer} "
        f"({e.feature_side}x{e.feature_side} cells of {cell:.0f} px) on {e.resolution}x"
        f"{e.resolution} px inputs, {e.split} split{chosen}; p: the network's sigmoid "
        f"score{outline}"
    )
