"""How well a class activation map points at a finding: the pointing game and the IoU of the
thresholded map, against a ground-truth mask (a radiologist's box, or the phantom's lesion).

Both scores take a map and a boolean mask of the same side (the network's input, in pixels):

- **pointing game** (Zhang et al., "Top-down neural attention by excitation backprop", 2016): a
  hit when the map's maximum lies inside the mask. A point drawn uniformly at random hits with
  probability equal to the mask's area fraction, so that fraction, averaged over the cases, is
  the **chance** hit rate; the p-value is the exact tail of the number of hits under that chance
  (a Poisson-binomial distribution, one success probability per case). A map with no positive
  evidence (all zero after Grad-CAM's ReLU) points nowhere and counts as a miss.
- **IoU**: the map thresholded at ``level`` of its maximum (0.5 by default), intersection over
  union with the mask.

NIH boxes (``BBox_List_2017.csv``) are in pixels of the original 1024x1024 image;
:func:`box_mask` rescales them to the input resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "CAM_LEVEL",
    "FindingScore",
    "NIH_SIDE",
    "box_mask",
    "map_iou",
    "map_peak",
    "pointing_hit",
    "poisson_binomial_tail",
    "score_localisation",
]

#: Side in pixels of the original ChestX-ray14 images the NIH boxes are measured on.
NIH_SIDE = 1024
#: Share of a map's maximum above which the map counts as "on" for the IoU.
CAM_LEVEL = 0.5


def box_mask(
    x: float, y: float, w: float, h: float, resolution: int, *, side: int = NIH_SIDE
) -> np.ndarray:
    """A box as a bool (resolution, resolution) mask: every pixel the rescaled box overlaps.

    Args:
        x, y, w, h: top-left corner, width and height in pixels of an image ``side`` px wide.
        resolution: side of the mask (the network's input) in pixels.
        side: side of the image the box was drawn on (1024 for ChestX-ray14).

    Example:
        >>> box_mask(256, 512, 128, 64, 8).nonzero()[1].tolist()  # rows 4, columns 2
        [2]
    """
    scale = resolution / side
    x0, y0 = math.floor(x * scale), math.floor(y * scale)
    x1, y1 = math.ceil((x + w) * scale), math.ceil((y + h) * scale)
    x0, y0 = min(max(x0, 0), resolution - 1), min(max(y0, 0), resolution - 1)
    x1, y1 = max(min(x1, resolution), x0 + 1), max(min(y1, resolution), y0 + 1)
    mask = np.zeros((resolution, resolution), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def map_peak(cam: np.ndarray) -> tuple[int, int] | None:
    """``(row, column)`` of the map's maximum, or None for a map with no positive value (it points
    nowhere).

    Among equal maxima, the one nearest the image centre: a map upsampled bilinearly from a
    coarse feature map peaks at a cell's centre, but a border cell's peak is a flat top from its
    centre out to the image border (at 64 px a 2x2 map's maximum is a 16x16 corner block), whose
    first pixel in reading order would be the image's corner. The pixel of that top nearest the
    image centre is the cell's centre.
    """
    if not np.isfinite(cam).all() or cam.max() <= 0:
        return None
    top = np.argwhere(cam >= cam.max() * (1 - 1e-6))
    centre = (np.array(cam.shape) - 1) / 2
    row, column = top[np.argmin(((top - centre) ** 2).sum(axis=1))]
    return int(row), int(column)


def pointing_hit(cam: np.ndarray, mask: np.ndarray) -> bool:
    """Whether the map's maximum lies inside ``mask`` (a map with no positive value misses)."""
    peak = map_peak(cam)
    return peak is not None and bool(mask[peak])


def map_iou(cam: np.ndarray, mask: np.ndarray, level: float = CAM_LEVEL) -> float:
    """IoU of ``cam >= level * max(cam)`` with ``mask`` (0 for a map with no positive value)."""
    if map_peak(cam) is None:
        return 0.0
    on = cam >= level * cam.max()
    union = np.logical_or(on, mask).sum()
    return float(np.logical_and(on, mask).sum() / union) if union else 0.0


def poisson_binomial_tail(p: Sequence[float], k: int) -> float:
    """P(X >= k) for X the number of successes of independent trials with probabilities ``p``.

    Exact (the distribution is built one trial at a time), fine for thousands of trials.
    """
    dist = np.array([1.0])
    for q in np.asarray(p, dtype=float):
        dist = np.concatenate([dist * (1 - q), [0.0]]) + np.concatenate([[0.0], dist * q])
    return float(min(1.0, dist[max(k, 0) :].sum()))


@dataclass(frozen=True)
class FindingScore:
    """The localisation scores of one finding (or of all, ``finding="all findings"``).

    Attributes:
        finding: the label name.
        cases: (image, finding) pairs scored, each with a non-empty ground-truth mask.
        hits: pointing-game hits.
        hit_rate: ``hits / cases``.
        hit_low, hit_high: 95% Wilson interval of the hit rate.
        chance: the hit rate of a uniformly random point: mean area fraction of the masks.
        fixed_point: the hit rate of always pointing at the same pixel, the one most often inside
            this finding's masks (chosen on these cases, so a generous baseline): a map must beat
            it to show more than where the finding usually is.
        p_value: P(hits or more | chance), one-sided, exact (Poisson-binomial).
        mean_iou: mean IoU of the map thresholded at ``CAM_LEVEL`` of its maximum.
        flat_maps: maps with no positive value (counted as misses, IoU 0).
    """

    finding: str
    cases: int
    hits: int
    hit_rate: float
    hit_low: float
    hit_high: float
    chance: float
    fixed_point: float
    p_value: float
    mean_iou: float
    flat_maps: int

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return asdict(self)


def score_localisation(
    cams: np.ndarray,
    masks: np.ndarray,
    findings: Sequence[str],
    *,
    level: float = CAM_LEVEL,
) -> tuple[list[FindingScore], list[dict]]:
    """Score maps against ground-truth masks, per finding and over all findings.

    Args:
        cams: float (N, R, R) maps, one per case (the map of the case's finding).
        masks: bool (N, R, R) ground truth, non-empty.
        findings: N finding names (the table has one row per distinct name, in first-seen order,
            then ``all findings``).
        level: the IoU's threshold, a share of each map's maximum.

    Returns:
        ``(scores, cases)``: the per-finding :class:`FindingScore` rows and one dict per case
        (``finding``, ``hit``, ``iou``, ``area_fraction``, ``peak_row``, ``peak_col``).

    Raises:
        ValueError: shapes disagree or a mask is empty.
    """
    from scipy.stats import binomtest

    cams = np.asarray(cams, dtype=np.float32)
    masks = np.asarray(masks, dtype=bool)
    if cams.shape != masks.shape or cams.ndim != 3 or len(findings) != len(cams):
        raise ValueError(
            f"maps {cams.shape}, masks {masks.shape} and {len(findings)} findings must agree"
        )
    area = masks.mean(axis=(1, 2))
    if (area == 0).any():
        raise ValueError("every ground-truth mask must cover at least one pixel")
    cases = []
    for cam, mask, finding, fraction in zip(cams, masks, findings, area, strict=True):
        peak = map_peak(cam)
        cases.append(
            {
                "finding": str(finding),
                "hit": pointing_hit(cam, mask),
                "iou": map_iou(cam, mask, level),
                "area_fraction": float(fraction),
                "peak_row": None if peak is None else peak[0],
                "peak_col": None if peak is None else peak[1],
            }
        )

    names = list(dict.fromkeys(str(f) for f in findings))
    of = np.array([str(f) for f in findings])
    # The fixed-point baseline: per finding, the pixel most often inside its masks.
    fixed_hits = {}
    for name in names:
        chosen_masks = masks[of == name]
        frequency = chosen_masks.mean(axis=0)
        point = np.unravel_index(int(np.argmax(frequency)), frequency.shape)
        fixed_hits[name] = int(chosen_masks[:, point[0], point[1]].sum())

    def row(name: str, chosen: list[dict]) -> FindingScore:
        hits = sum(c["hit"] for c in chosen)
        n = len(chosen)
        fixed = sum(fixed_hits[f] for f in names if name in (f, "all findings"))
        interval = binomtest(hits, n).proportion_ci(confidence_level=0.95, method="wilson")
        chances = [c["area_fraction"] for c in chosen]
        return FindingScore(
            finding=name,
            cases=n,
            hits=int(hits),
            hit_rate=hits / n,
            hit_low=float(interval.low),
            hit_high=float(interval.high),
            chance=float(np.mean(chances)),
            fixed_point=fixed / n,
            p_value=poisson_binomial_tail(chances, hits),
            mean_iou=float(np.mean([c["iou"] for c in chosen])),
            flat_maps=sum(c["peak_row"] is None for c in chosen),
        )

    scores = [row(name, [c for c in cases if c["finding"] == name]) for name in names]
    if cases:
        scores.append(row("all findings", cases))
    return scores, cases
