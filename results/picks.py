"""Picks: the rule that chooses one architecture of a Pareto front (``mdsearch export --pick``).

A pick is ``knee``, ``best-NAME`` (``best-auc``), bounds like ``flops<=1250`` or ``auc>=0.78``,
or several of these joined by ``,``. Bounds alone optimise the first objective they leave free;
when no member satisfies the bounds the error names the nearest one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import ResultsError
from .pareto import OBJECTIVES, Objective, knee_index, minimisation_matrix, objective_column

__all__ = ["Constraint", "Pick", "parse_pick", "select_pick"]

_CONSTRAINT = re.compile(
    r"^(?P<name>[A-Za-z_]\w*)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<value>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)$"
)
_OPS = {"<=": np.less_equal, ">=": np.greater_equal, "<": np.less, ">": np.greater}
_PICK_HELP = (
    "use 'knee', 'best-auc', a bound like 'flops<=1250' or 'auc>=0.78', several joined by ',', "
    "or an architecture id"
)


@dataclass(frozen=True)
class Constraint:
    """A bound on one column, e.g. ``flops_m <= 1250``."""

    column: str
    op: str
    value: float

    def holds(self, values: np.ndarray) -> np.ndarray:
        """Elementwise: whether ``values`` satisfy the bound (NaN never does)."""
        return _OPS[self.op](np.asarray(values, dtype=float), self.value)

    def excess(self, values: np.ndarray) -> np.ndarray:
        """How far ``values`` miss the bound, relative to its magnitude (0 where it holds)."""
        v = np.asarray(values, dtype=float)
        miss = v - self.value if self.op in ("<=", "<") else self.value - v
        return np.maximum(miss, 0.0) / (abs(self.value) or 1.0)

    def __str__(self) -> str:
        return f"{self.column} {self.op} {self.value:g}"


@dataclass(frozen=True)
class Pick:
    """A rule that chooses one architecture from a front.

    Args:
        text: what the user typed.
        constraints: bounds every candidate must satisfy.
        target: the objective optimised among the candidates; ``None`` for the knee.
    """

    text: str
    constraints: tuple[Constraint, ...] = ()
    target: Objective | None = None


def parse_pick(text: str, objectives: Sequence[Objective]) -> Pick:
    """Parse a pick: ``knee``, ``best-auc``, ``flops<=1250``, ``auc>=0.78`` or ``,``-joined parts.

    Bounds alone optimise the first objective they leave free: ``flops<=1250`` is the best AUC
    with at most 1250 M FLOPs, ``auc>=0.78`` the fewest FLOPs with AUC of at least 0.78. Adding
    ``knee`` or ``best-NAME`` says what to choose among the members within the bounds.

    Args:
        text: the pick string (case and spaces do not matter).
        objectives: the run's objectives (names resolve to their columns: flops -> flops_m).

    Example:
        >>> from mdsearch.results.pareto import resolve_objectives
        >>> pick = parse_pick("flops<=1250", resolve_objectives(["auc", "flops"]))
        >>> [str(c) for c in pick.constraints], pick.target.column
        (['flops_m <= 1250'], 'auc')
    """
    constraints: list[Constraint] = []
    target: Objective | None = None
    knee = False
    parts = [part.strip().lower() for part in str(text).split(",")]
    if not text or not all(parts):
        raise ResultsError(f"pick {text!r} is empty or has an empty part: {_PICK_HELP}")
    for part in parts:
        if part == "knee":
            knee = True
        elif part.startswith("best-"):
            target = _objective_named(part[5:], objectives, text)
        elif m := _CONSTRAINT.match(part):
            column = _column_named(m["name"], objectives)
            constraints.append(Constraint(column, m["op"], float(m["value"])))
        else:
            raise ResultsError(f"pick {text!r} is not understood (at {part!r}): {_PICK_HELP}")
    if knee and target is not None:
        raise ResultsError(f"pick {text!r} asks for both the knee and a best: choose one")
    if not knee and target is None:
        if not constraints:
            raise ResultsError(f"pick {text!r} chooses nothing: {_PICK_HELP}")
        bound = {c.column for c in constraints}
        target = next((o for o in objectives if o.column not in bound), objectives[0])
    return Pick(str(text), tuple(constraints), None if knee else target)


def _column_named(name: str, objectives: Sequence[Objective]) -> str:
    column = objective_column(name)
    known = {o.column for o in (*OBJECTIVES.values(), *objectives)}
    if column in known:
        return column
    names = ", ".join(sorted({*OBJECTIVES, *(o.column for o in objectives)}))
    raise ResultsError(f"pick names {name!r}, which is not a column: use one of {names}")


def _objective_named(name: str, objectives: Sequence[Objective], text: str) -> Objective:
    column = _column_named(name, objectives)
    for obj in objectives:
        if obj.column == column:
            return obj
    names = ", ".join(o.column for o in objectives)
    raise ResultsError(f"pick {text!r}: {name} is not an objective of this run ({names})")


def select_pick(front: pd.DataFrame, pick: Pick | str, objectives: Sequence[Objective]) -> Hashable:
    """The index label of the front member a pick chooses.

    Args:
        front: the Pareto front, one row per architecture, with the objective and bound columns
            (and ``arch_id``, used in messages).
        pick: a :class:`Pick` or a pick string (see :func:`parse_pick`).
        objectives: the run's objectives.

    Raises:
        ResultsError: the front is empty, a bound names a missing column, or no member satisfies
            the bounds (the message names the nearest member).
    """
    if isinstance(pick, str):
        pick = parse_pick(pick, objectives)
    if front.empty:
        raise ResultsError(f"pick {pick.text!r}: the Pareto front is empty")
    ok = np.ones(len(front), dtype=bool)
    excess = np.zeros(len(front))
    for c in pick.constraints:
        if c.column not in front.columns:
            raise ResultsError(f"pick {pick.text!r}: the trial table has no column {c.column}")
        values = front[c.column].to_numpy(dtype=float)
        ok &= c.holds(values)
        excess += np.nan_to_num(c.excess(values), nan=math.inf)
    if not ok.any():
        nearest = front.iloc[int(np.argmin(excess))]
        shown = ", ".join(
            f"{col} = {nearest[col]:.4g}"
            for col in dict.fromkeys(
                [c.column for c in pick.constraints] + [o.column for o in objectives]
            )
        )
        who = nearest.get("arch_id", nearest.name)
        bounds = " and ".join(str(c) for c in pick.constraints)
        raise ResultsError(
            f"no Pareto-front architecture has {bounds}: the nearest is {who} with {shown}; "
            "loosen the bound"
        )
    candidates = front[ok]
    matrix = minimisation_matrix(candidates, objectives)
    if pick.target is None:
        return candidates.index[knee_index(matrix)]
    first = [o.column for o in objectives].index(pick.target.column)
    keys = np.roll(matrix, -first, axis=1)  # target first, the others break ties in order
    return candidates.index[np.lexsort(keys.T[::-1])[0]]
