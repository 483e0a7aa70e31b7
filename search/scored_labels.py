"""Which labels a mean AUC is taken over: the one rule the search's objective, the report's
intervals and ``mdsearch train``'s evaluation share.

A label with a handful of positives in the scored split has an AUC that is mostly chance: on the
NIH sample's validation split Mass, Pneumonia and Edema have one positive each, so one image
decides whether their AUC is 0.02 or 0.98, and such a number would move the searched mean AUC
more than any kernel choice. So a label enters the mean only when the split holds at least
:data:`MIN_POSITIVES` positives **and** :data:`MIN_NEGATIVES` negatives (10 each: the smallest
count at which one image changes the label's AUC by at most 0.1). Its own AUC is still computed
and shown, marked as left out.

When no label reaches the minimum (a tiny smoke-test split) the mean falls back to every label
with both classes, and the warning says the split is too small for a reliable AUC.

Runs searched before this rule scored every label with both classes; their ``config.json`` has
no ``label_rule`` block and :meth:`LabelRule.from_config` gives :data:`BOTH_CLASSES` for them, so
their intervals stay those of the numbers in their table.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BOTH_CLASSES",
    "LABEL_RULE",
    "MIN_NEGATIVES",
    "MIN_POSITIVES",
    "LabelRule",
    "ScoredLabels",
]

#: Positives a label needs in the scored split to enter the mean AUC.
MIN_POSITIVES = 10
#: Negatives a label needs in the scored split to enter the mean AUC.
MIN_NEGATIVES = 10


@dataclass(frozen=True)
class LabelRule:
    """The minimum class counts a label needs in a split to enter the mean AUC.

    Attributes:
        min_positives: positives needed (1 or more).
        min_negatives: negatives needed (1 or more).

    Example:
        >>> y = np.array([[1, 0]] * 12 + [[0, 1]] * 12)
        >>> LABEL_RULE.apply(y, ["Effusion", "Hernia"]).excluded
        ()
        >>> LabelRule(13, 10).apply(y, ["Effusion", "Hernia"]).fallback
        True
    """

    min_positives: int = MIN_POSITIVES
    min_negatives: int = MIN_NEGATIVES

    def __post_init__(self) -> None:
        if self.min_positives < 1 or self.min_negatives < 1:
            raise ValueError(
                f"a label needs at least 1 positive and 1 negative for an AUC, got "
                f"{self.min_positives} and {self.min_negatives}"
            )

    def apply(self, y_true: np.ndarray, label_names: Sequence[str] | None = None) -> ScoredLabels:
        """Which labels of ``y_true`` enter the mean AUC.

        Args:
            y_true: (N, L) or (N,) 0/1 targets of the scored split.
            label_names: L names (default ``label0``, ``label1``, ...).
        """
        y = np.asarray(y_true)
        if y.ndim == 1:
            y = y[:, None]
        names = tuple(label_names) if label_names is not None else None
        if names is None:
            names = tuple(f"label{j}" for j in range(y.shape[1]))
        if len(names) != y.shape[1]:
            raise ValueError(f"{len(names)} label names for {y.shape[1]} target columns")
        positives = y.astype(bool).sum(axis=0)
        return ScoredLabels(
            label_names=names,
            positives=tuple(int(p) for p in positives),
            negatives=tuple(int(y.shape[0] - p) for p in positives),
            rule=self,
        )

    def to_dict(self) -> dict[str, int]:
        """The rule as config.json records it."""
        return {"min_positives": self.min_positives, "min_negatives": self.min_negatives}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LabelRule:
        """The rule a run folder's ``config.json`` records (``label_rule``); a run without one
        was searched before the rule existed and scored every label with both classes."""
        block = config.get("label_rule")
        if not isinstance(block, Mapping):
            return BOTH_CLASSES
        return cls(int(block["min_positives"]), int(block["min_negatives"]))

    def __str__(self) -> str:
        return f"at least {self.min_positives} positives and {self.min_negatives} negatives"


#: The rule every new search, report and evaluation uses.
LABEL_RULE = LabelRule()
#: The rule before :data:`LABEL_RULE`: every label with both classes (old run folders).
BOTH_CLASSES = LabelRule(1, 1)


@dataclass(frozen=True)
class ScoredLabels:
    """What :meth:`LabelRule.apply` found in one split.

    Attributes:
        label_names: the labels, in column order.
        positives, negatives: images per label in the split.
        rule: the rule applied.
    """

    label_names: tuple[str, ...]
    positives: tuple[int, ...]
    negatives: tuple[int, ...]
    rule: LabelRule

    @property
    def _meets_rule(self) -> np.ndarray:
        pos, neg = np.array(self.positives), np.array(self.negatives)
        return (pos >= self.rule.min_positives) & (neg >= self.rule.min_negatives)

    @property
    def fallback(self) -> bool:
        """No label reaches the rule's minimum: the mean is over labels with both classes."""
        return not self._meets_rule.any()

    @property
    def mask(self) -> np.ndarray:
        """(L,) bool: the labels the mean AUC is taken over."""
        if self.fallback:
            return (np.array(self.positives) > 0) & (np.array(self.negatives) > 0)
        return self._meets_rule

    @property
    def excluded(self) -> tuple[str, ...]:
        """Labels left out of the mean AUC (their own AUC may still be shown)."""
        return tuple(n for n, keep in zip(self.label_names, self.mask) if not keep)

    def counts_text(self, name: str) -> str:
        """``1 positive, 199 negatives`` for one label."""
        j = self.label_names.index(name)
        p, n = self.positives[j], self.negatives[j]
        return f"{p} positive{'s' * (p != 1)}, {n} negative{'s' * (n != 1)}"

    def warning(self, split: str = "validation") -> str | None:
        """One line for the user when a label is left out of the mean (None when none is)."""
        if self.fallback:
            return (
                f"no label has {self.rule} in the {split} split ({sum(self.positives)} "
                f"positives over {len(self.label_names)} labels): the mean AUC is over the "
                "labels with both classes and rests on a few images"
            )
        if not self.excluded:
            return None
        parts = "; ".join(f"{n} ({self.counts_text(n)})" for n in self.excluded)
        r = self.rule
        if r == BOTH_CLASSES:  # the rule of runs older than this module: no AUC to show
            return f"left out of the mean AUC (one class only in the {split} split): {parts}"
        return (
            f"left out of the mean AUC (fewer than {r.min_positives} positives or "
            f"{r.min_negatives} negatives in the {split} split): {parts}; their own AUCs are "
            "shown but not searched on"
        )

    def mean(self, label_auc: np.ndarray) -> np.ndarray | float:
        """Mean over the scored labels of per-label AUCs (last axis L); NaN entries (a resample
        with one class) are skipped, and the mean is NaN where none is left.

        Example:
            >>> s = LabelRule(1, 1).apply(np.array([[0, 1], [1, 1]]))
            >>> s.mean(np.array([0.8, np.nan]))
            0.8
        """
        values = np.asarray(label_auc, dtype=float)[..., self.mask]
        if values.shape[-1] == 0:  # no label with both classes
            values = np.full((*values.shape[:-1], 1), np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
            out = np.nanmean(values, axis=-1)
        return float(out) if np.ndim(out) == 0 else out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the rule, and each left-out label with its counts."""
        return {
            **self.rule.to_dict(),
            "excluded": {
                n: {"positives": self.positives[j], "negatives": self.negatives[j]}
                for j, n in enumerate(self.label_names)
                if n in self.excluded
            },
            "fallback": self.fallback,
        }
