"""Pareto front, hypervolume and knee point over a table of trials (picks: :mod:`.picks`).

Objectives are a sequence of :class:`Objective` (a table column and a direction), so a third one
(``latency_ms``, minimised) needs no new code. Every function below works on a *minimisation
matrix*: one row per point, one column per objective, maximised objectives negated, so smaller is
better in every column. A point dominates another when it is no worse in every objective and
strictly better in at least one; equal points do not dominate each other, so duplicates are all
on the front.

Methods:
    front: :func:`non_dominated`, the search layer's dominance (:mod:`mdsearch.search.front`,
        numpy only, re-exported here): O(n log n) for 2 objectives, O(n * front size) for more.
    hypervolume: exact. 2 objectives: a sweep over the sorted front, O(n log n). More: slices along
        the last objective, each slab's area by the (k-1)-objective method (O(n^2 log n) for 3).
    reference point (:func:`default_reference`): an objective's own ``reference`` when it has one
        (AUC: 0.5, chance level), else 10% beyond the worst value seen (FLOPs: 1.1 x the largest).
    knee (:func:`knee_index`): on axes normalised to [0, 1] over the front, the member farthest
        from the line (hyperplane for 3+ objectives) through the per-objective extremes, on the
        ideal point's side; when no member lies beyond that line (2 members, or a straight or
        concave front) the member closest to the ideal point.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mdsearch.search.front import non_dominated

from .errors import ResultsError

__all__ = [
    "Objective",
    "OBJECTIVES",
    "resolve_objectives",
    "objective_column",
    "minimisation_matrix",
    "non_dominated",
    "pareto_mask",
    "default_reference",
    "hypervolume",
    "hypervolume_history",
    "knee_index",
]


@dataclass(frozen=True)
class Objective:
    """One objective: a trial-table column and whether larger or smaller is better.

    Args:
        column: trial-table column, e.g. ``"auc"`` or ``"flops_m"``.
        direction: ``"max"`` or ``"min"``.
        reference: hypervolume reference value in the column's units (``None``: 10% beyond the
            worst value seen, see :func:`default_reference`).
        label: axis/table label with units.

    Example:
        >>> Objective("latency_ms", "min", label="latency (ms)").sign
        1.0
    """

    column: str
    direction: str
    reference: float | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if self.direction not in ("max", "min"):
            raise ValueError(f"direction must be 'max' or 'min', got {self.direction!r}")

    @property
    def sign(self) -> float:
        """Factor that turns the column into a quantity to minimise (-1 for maximised)."""
        return -1.0 if self.direction == "max" else 1.0


#: Objectives a run config may name (``"objectives": ["auc", "flops"]``), by name.
OBJECTIVES: dict[str, Objective] = {
    "auc": Objective("auc", "max", reference=0.5, label="mean validation AUC"),
    "flops": Objective("flops_m", "min", label="FLOPs (M multiply-adds)"),
    "latency": Objective("latency_ms", "min", label="latency (ms)"),
    "params": Objective("params_m", "min", label="parameters (M)"),
}
# Column names and short names both resolve (users type "flops", tables say "flops_m").
_ALIASES = {**{o.column: name for name, o in OBJECTIVES.items()}, **{n: n for n in OBJECTIVES}}


def resolve_objectives(names: Iterable[str | Objective]) -> tuple[Objective, ...]:
    """Objectives from names (``"auc"``, ``"flops"`` or ``"flops_m"``, ``"latency"``) or objects.

    Example:
        >>> [o.column for o in resolve_objectives(["auc", "flops"])]
        ['auc', 'flops_m']
    """
    out = []
    for name in names:
        if isinstance(name, Objective):
            out.append(name)
            continue
        key = _ALIASES.get(str(name).strip().lower())
        if key is None:
            known = ", ".join(OBJECTIVES)
            raise ResultsError(f"unknown objective {name!r}: use one of {known}")
        out.append(OBJECTIVES[key])
    if len(out) < 2:
        raise ResultsError(f"a Pareto front needs at least 2 objectives, got {len(out)}")
    if len({o.column for o in out}) != len(out):
        raise ResultsError("the objectives name the same column twice: list each once")
    return tuple(out)


def objective_column(name: str) -> str:
    """The trial-table column an objective name stands for (``flops`` -> ``flops_m``).

    Example:
        >>> objective_column("latency"), objective_column("params_m"), objective_column("x")
        ('latency_ms', 'params_m', 'x')
    """
    key = _ALIASES.get(str(name).strip().lower())
    return OBJECTIVES[key].column if key else str(name)


def minimisation_matrix(table: pd.DataFrame, objectives: Sequence[Objective]) -> np.ndarray:
    """The table's objective columns as an (n, k) float array, maximised columns negated."""
    missing = [o.column for o in objectives if o.column not in table.columns]
    if missing:
        raise ResultsError(f"the trial table has no column {', '.join(missing)}")
    cols = [table[o.column].to_numpy(dtype=float) * o.sign for o in objectives]
    return np.column_stack(cols) if cols else np.empty((len(table), 0))


def pareto_mask(table: pd.DataFrame, objectives: Sequence[Objective]) -> pd.Series:
    """Which rows of ``table`` are on the Pareto front of ``objectives`` (a bool Series)."""
    return pd.Series(non_dominated(minimisation_matrix(table, objectives)), index=table.index)


def default_reference(points: np.ndarray, objectives: Sequence[Objective]) -> np.ndarray:
    """Hypervolume reference point, in minimisation space (see the module docstring).

    Args:
        points: (n, k) minimisation matrix the reference must bound.
        objectives: the k objectives; one with a ``reference`` uses it (AUC: 0.5).

    Returns:
        (k,) array; an objective without a reference gets its worst value plus 10% of its
        magnitude (FLOPs: 1.1 x the largest FLOPs).
    """
    p = np.asarray(points, dtype=float)
    ref = np.empty(len(objectives))
    for j, obj in enumerate(objectives):
        if obj.reference is not None:
            ref[j] = obj.sign * obj.reference
            continue
        column = p[:, j][~np.isnan(p[:, j])] if len(p) else np.empty(0)
        if len(column) == 0:
            raise ResultsError(f"no value of {obj.column} to place a hypervolume reference at")
        worst = column.max()
        ref[j] = worst + 0.1 * abs(worst) if worst != 0 else 1.0
    return ref


def hypervolume(points: np.ndarray, reference: Sequence[float]) -> float:
    """Exact hypervolume dominated by ``points`` and bounded by ``reference`` (minimisation).

    Args:
        points: (n, k) minimisation matrix (NaN rows ignored).
        reference: (k,) point worse than the points; points not strictly better than it in every
            objective add nothing.

    Returns:
        The volume in the product of the objectives' units (e.g. AUC x M FLOPs).

    Example:
        >>> hypervolume(np.array([[1.0, 2.0], [2.0, 1.0]]), [3.0, 3.0])
        3.0
    """
    p = np.asarray(points, dtype=float)
    r = np.asarray(reference, dtype=float)
    if p.ndim != 2 or r.shape != (p.shape[1],):
        raise ValueError(f"reference of shape {r.shape} does not match points of shape {p.shape}")
    p = p[~np.isnan(p).any(axis=1)]
    p = p[np.all(p < r, axis=1)]
    if len(p) == 0:
        return 0.0
    return float(_hypervolume(p[non_dominated(p)], r))


def _hypervolume(p: np.ndarray, r: np.ndarray) -> float:
    k = p.shape[1]
    if k == 1:
        return float(r[0] - p[:, 0].min())
    if k == 2:
        order = np.lexsort((p[:, 1], p[:, 0]))
        x, y = p[order, 0], p[order, 1]
        x_next = np.append(x[1:], r[0])
        # Along the front y falls as x rises, so the slab [x_i, x_i+1] is covered above y_i.
        return float(np.sum((x_next - x) * (r[1] - y)))
    order = np.argsort(p[:, -1], kind="stable")
    p = p[order]
    z_next = np.append(p[1:, -1], r[-1])
    total = 0.0
    for i in range(len(p)):
        depth = z_next[i] - p[i, -1]
        if depth > 0:
            below = p[: i + 1, :-1]
            total += depth * _hypervolume(below[non_dominated(below)], r[:-1])
    return total


def hypervolume_history(
    points: np.ndarray,
    reference: Sequence[float],
    groups: Sequence[Hashable] | None = None,
) -> np.ndarray:
    """Hypervolume of the front after each row, rows taken in the given (trial) order.

    Args:
        points: (n, k) minimisation matrix in trial order; NaN rows (ineligible trials) leave the
            value unchanged.
        reference: fixed reference point (use the final one so the history is comparable).
        groups: optional (n,) keys (e.g. the arch string); rows with one key are pooled into one
            point, the mean of the rows seen so far (repeated seeds of one architecture).

    Returns:
        (n,) array of hypervolumes.
    """
    p = np.asarray(points, dtype=float)
    codes = np.arange(len(p)) if groups is None else pd.factorize(pd.Series(list(groups)))[0]
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    sums = np.zeros((n_groups, p.shape[1]))
    counts = np.zeros(n_groups)
    on_front = np.zeros(n_groups, dtype=bool)
    front = np.empty(0, dtype=int)  # group codes on the current front
    out = np.zeros(len(p))
    current = 0.0
    for t, row in enumerate(p):
        if not np.isnan(row).any():
            g = codes[t]
            sums[g] += row
            counts[g] += 1
            # Off-front points stay dominated by the unchanged front members, so only a change
            # of a front member's own point needs all points again.
            candidates = np.flatnonzero(counts) if on_front[g] else np.append(front, g)
            pooled = sums[candidates] / counts[candidates, None]
            front = candidates[non_dominated(pooled)]
            on_front[:] = False
            on_front[front] = True
            current = hypervolume(sums[front] / counts[front, None], reference)
        out[t] = current
    return out


def knee_index(points: np.ndarray) -> int:
    """Row index of the knee of the front of ``points`` (method in the module docstring).

    Args:
        points: (n, k) minimisation matrix; only its non-dominated rows are candidates.

    Returns:
        Index into ``points``.

    Example:
        >>> knee_index(np.array([[0.0, 1.0], [0.2, 0.3], [0.5, 0.2], [1.0, 0.0]]))
        1
    """
    p = np.asarray(points, dtype=float)
    members = np.flatnonzero(non_dominated(p))
    if len(members) == 0:
        raise ResultsError("no point to take a knee of: the front is empty")
    q = p[members]
    low = q.min(axis=0)
    span = q.max(axis=0) - low
    span[span == 0] = 1.0
    z = (q - low) / span
    k = z.shape[1]
    # The member best in objective j (ties: best in the others, in order) is extreme j.
    extremes = np.array([z[np.lexsort(np.roll(z, -j, axis=1).T[::-1])[0]] for j in range(k)])
    weights = np.ones(k)
    if np.linalg.matrix_rank(extremes) == k:
        solved = np.linalg.solve(extremes, np.ones(k))
        if np.all(np.isfinite(solved)):
            weights = solved
    distance = (1.0 - z @ weights) / np.linalg.norm(weights)  # > 0: towards the ideal point
    if distance.max() > 1e-9:
        return int(members[np.argmax(distance)])
    return int(members[np.argmin(np.linalg.norm(z, axis=1))])
