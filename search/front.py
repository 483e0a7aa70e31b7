"""Pareto dominance over objective values, numpy only: the non-dominated points (the front),
the front's successive layers (non-dominated sorting), and the front's size.

The search needs it while trials run (the progress line's front size, the order in which a
supernet run trains its candidates), so it sits below the results layer, whose
:mod:`mdsearch.results.pareto` builds a run's front, hypervolume and knee on it.

Points are a *minimisation matrix*: one row per point, one column per objective, maximised
objectives negated, so smaller is better in every column. A point dominates another when it is
no worse in every objective and strictly better in at least one; equal points do not dominate
each other, so duplicates are all on the front. A row with a NaN is never on it.

Method: 2 objectives, sort by the first objective, then one pass with a running minimum of the
second, all in numpy: O(n log n). Three or more: lexicographic sort, then blocks of points are
checked against the front found so far and against each other (a point can only be dominated
by one that sorts before it): O(n * front size).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["front_size", "non_dominated", "pareto_layers"]


def non_dominated(points: np.ndarray) -> np.ndarray:
    """Mask of the non-dominated rows of a minimisation matrix (rows with NaN never are).

    Args:
        points: (n, k) array, smaller is better in every column.

    Returns:
        (n,) bool array, True for rows on the Pareto front (duplicates of a front point too).

    Example:
        >>> non_dominated(np.array([[1, 3], [2, 2], [2, 3], [3, 1], [1, 3]])).tolist()
        [True, True, False, True, True]
    """
    p = np.asarray(points, dtype=float)
    if p.ndim != 2:
        raise ValueError(f"points must be a 2-D array (n, k), got shape {p.shape}")
    mask = np.zeros(len(p), dtype=bool)
    valid = np.flatnonzero(~np.isnan(p).any(axis=1))
    if len(valid) == 0:
        return mask
    q = p[valid]
    k = q.shape[1]
    if k == 1:
        keep = q[:, 0] == q[:, 0].min()
    elif k == 2:
        keep = _non_dominated_2d(q)
    else:
        keep = _non_dominated_nd(q)
    mask[valid[keep]] = True
    return mask


def pareto_layers(points: np.ndarray) -> np.ndarray:
    """Non-dominated sorting (as NSGA-II ranks a population): each row's layer, 0 for the
    front, 1 for the front of what is left, and so on; -1 for a row with a NaN.

    Args:
        points: (n, k) minimisation matrix.

    Example:
        >>> pareto_layers(np.array([[1.0, 3.0], [2.0, 2.0], [2.0, 3.0], [3.0, 3.0]])).tolist()
        [0, 0, 1, 2]
    """
    p = np.asarray(points, dtype=float)
    if p.ndim != 2:
        raise ValueError(f"points must be a 2-D array (n, k), got shape {p.shape}")
    layer = np.full(len(p), -1)
    left = np.flatnonzero(~np.isnan(p).any(axis=1))
    depth = 0
    while len(left):
        front = non_dominated(p[left])
        layer[left[front]] = depth
        left, depth = left[~front], depth + 1
    return layer


def front_size(values: Sequence[Sequence[float]], modes: Sequence[str]) -> int:
    """Number of non-dominated points among objective values (duplicates each count): what
    the live progress shows as ``front``.

    Args:
        values: one tuple of objective values per trial, e.g. (AUC, FLOPs).
        modes: ``"max"`` or ``"min"`` per objective.

    Example:
        >>> front_size([(0.7, 300.0), (0.8, 310.0), (0.6, 320.0)], ["max", "min"])
        2
    """
    if not len(values):
        return 0
    signs = np.array([-1.0 if m == "max" else 1.0 for m in modes])
    return int(non_dominated(np.asarray(values, dtype=float) * signs).sum())


def _non_dominated_2d(p: np.ndarray) -> np.ndarray:
    order = np.lexsort((p[:, 1], p[:, 0]))  # by x, then y
    x, y = p[order, 0], p[order, 1]
    new_x = np.ones(len(x), dtype=bool)
    new_x[1:] = x[1:] != x[:-1]
    starts = np.flatnonzero(new_x)
    group = np.cumsum(new_x) - 1
    group_min = y[starts]  # y is sorted within a group of equal x
    # Best y among points with strictly smaller x: a point must beat it strictly.
    before = np.concatenate(([np.inf], np.minimum.accumulate(group_min)[:-1]))
    keep_sorted = (y == group_min[group]) & (y < before[group])
    keep = np.empty(len(p), dtype=bool)
    keep[order] = keep_sorted
    return keep


def _dominated_by_any(candidates: np.ndarray, by: np.ndarray) -> np.ndarray:
    """For each candidate row, whether some row of ``by`` dominates it."""
    if len(by) == 0 or len(candidates) == 0:
        return np.zeros(len(candidates), dtype=bool)
    le = np.all(by[None, :, :] <= candidates[:, None, :], axis=2)
    lt = np.any(by[None, :, :] < candidates[:, None, :], axis=2)
    return np.any(le & lt, axis=1)


def _non_dominated_nd(p: np.ndarray, block: int = 256) -> np.ndarray:
    # A dominator sorts lexicographically before what it dominates, and a dominated dominator is
    # itself dominated by a front member, so each block needs checking only against the front
    # found so far and against itself.
    order = np.lexsort(p.T[::-1])
    keep = np.zeros(len(p), dtype=bool)
    front = np.empty((0, p.shape[1]))
    for start in range(0, len(order), block):
        idx = order[start : start + block]
        chunk = p[idx]
        ok = ~_dominated_by_any(chunk, front)
        ok &= ~_dominated_by_any(chunk, chunk[ok])
        keep[idx[ok]] = True
        front = np.concatenate([front, chunk[ok]])
    return keep
