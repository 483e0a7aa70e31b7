"""Candidate phantom findings whose cue lives at one spatial scale (screening for a workload where
MD-Conv's placement matters; ``--data phantom,variant=screen``).

Each finding is designed so that what tells positives from negatives is not visible in a small
window, only at a given scale; distractors of the same local look are in every image:

=========================  =========================================================================
label                      positive / negative (every image has the lesion; only its form differs)
=========================  =========================================================================
Cavity (synthetic)         a ring (a round lesion with a dark centre) / a solid disk of the same
                           size and edge contrast, 8-14 px across at 64 px
Pairs (synthetic)          8 small dots, in 4 pairs exactly 10 px apart at 64 px / placed at random
Reticular (synthetic)      a patch of fine parallel lines 8 px apart at 64 px / 5 px apart
=========================  =========================================================================

Coordinates are the phantom's: [-1, 1] across the image, so one unit is 32 px at 64 px.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SCALE_LABELS", "sample_scale_findings", "draw_scale_findings"]

SCALE_LABELS = ("Cavity (synthetic)", "Pairs (synthetic)", "Reticular (synthetic)")
_DOTS = 8
_PAIR_LAG = 10 / 32  # units: 10 px at 64 px
_PERIODS = (8 / 32, 5 / 32)  # positive, negative line spacing (units)


def sample_scale_findings(rng: np.random.Generator, n: int, lung_point) -> dict[str, np.ndarray]:
    """Per-image parameters of the three findings (labels at 50% prevalence)."""
    p: dict[str, np.ndarray] = {}
    labels = (rng.random((n, 3)) < 0.5).astype(np.uint8)
    p["scale_labels"] = labels
    _, p["cav_x"], p["cav_y"] = lung_point(n)
    p["cav_r"] = rng.uniform(0.13, 0.22, n)
    p["cav_a"] = rng.uniform(0.30, 0.50, n)
    # Dots: first of each pair at a random lung point; the second at the lag (positives) or at
    # another random lung point (negatives).
    _, x0, y0 = lung_point((n, _DOTS // 2))
    _, x1, y1 = lung_point((n, _DOTS // 2))
    theta = rng.uniform(0, 2 * np.pi, (n, _DOTS // 2))
    pos = labels[:, 1:2].astype(bool)
    x1 = np.where(pos, x0 + _PAIR_LAG * np.cos(theta), x1)
    y1 = np.where(pos, y0 + _PAIR_LAG * np.sin(theta), y1)
    p["pair_x"] = np.concatenate([x0, x1], axis=1)
    p["pair_y"] = np.concatenate([y0, y1], axis=1)
    p["pair_a"] = rng.uniform(0.25, 0.40, (n, _DOTS))
    _, p["ret_x"], p["ret_y"] = lung_point(n)
    p["ret_theta"] = rng.uniform(0, np.pi, n)
    p["ret_phase"] = rng.uniform(0, 2 * np.pi, n)
    p["ret_period"] = np.where(labels[:, 2] > 0, _PERIODS[0], _PERIODS[1])
    p["ret_a"] = rng.uniform(0.20, 0.30, n)
    return p


def draw_scale_findings(p, sl: slice, col, g, gauss, soft) -> np.ndarray:
    """The three findings' opacity for items ``sl`` (B, S, S), before the lungs' mask."""
    x, y = g["x"], g["y"]
    d = np.sqrt((x - col("cav_x")) ** 2 + (y - col("cav_y")) ** 2) / col("cav_r")
    ring = soft(d, 0.12) - soft(d / 0.55, 0.2)
    is_ring = p["scale_labels"][sl, 0][:, None, None] > 0
    out = col("cav_a") * np.where(is_ring, ring, soft(d, 0.12))
    for k in range(_DOTS):
        out = out + col("pair_a", k) * gauss(x, y, col("pair_x", k), col("pair_y", k), 0.022)
    theta, period = col("ret_theta"), col("ret_period")
    along = (x - col("ret_x")) * np.cos(theta) + (y - col("ret_y")) * np.sin(theta)
    lines = 0.5 + 0.5 * np.cos(2 * np.pi * along / period + col("ret_phase"))
    envelope = gauss(x, y, col("ret_x"), col("ret_y"), 0.16)
    return out + col("ret_a") * lines * envelope
