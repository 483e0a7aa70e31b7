"""The paper's reference numbers that our evaluations are printed next to.

- :data:`PAPER_TABLE6`: per-finding test AUC of MD-Conv MobileNet-v2 on ChestX-ray14 (Table 6),
  shown when the labels are the 14 ChestX-ray14 findings.
- :data:`PAPER_TABLE8`: accuracy / sensitivity / specificity / AUC (percent) on Kermany
  ChestX-ray2017 (Table 8), shown for Kermany data with one label (``Pneumonia`` or ``Viral``).

These are the paper's numbers, never ours: every table that shows them says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "PAPER_TABLE6",
    "PAPER_TABLE6_MEAN",
    "PAPER_TABLE8",
    "TABLE6_SETTINGS",
    "TABLE8_SETTINGS",
    "paper_reference",
    "paper_table6",
    "paper_table8",
]

#: Table 6: per-finding test AUC of MD-Conv MobileNet-v2 on ChestX-ray14 (official split, 448 px).
PAPER_TABLE6: dict[str, float] = {
    "Atelectasis": 0.767,
    "Cardiomegaly": 0.896,
    "Effusion": 0.828,
    "Infiltration": 0.696,
    "Mass": 0.752,
    "Nodule": 0.733,
    "Pneumonia": 0.725,
    "Pneumothorax": 0.815,
    "Consolidation": 0.742,
    "Edema": 0.857,
    "Emphysema": 0.829,
    "Fibrosis": 0.816,
    "Pleural_Thickening": 0.749,
    "Hernia": 0.735,
}
PAPER_TABLE6_MEAN = 0.782
#: Where the Table 6 numbers come from (printed under every table that shows them).
TABLE6_SETTINGS = "paper, Table 6: MD-Conv MobileNet-v2, ChestX-ray14 official test split, 448 px"

#: Table 8 (Kermany ChestX-ray2017, official test split): per task, rows of
#: (method, accuracy %, sensitivity %, specificity %, AUC % or None).
PAPER_TABLE8: dict[str, tuple[tuple[str, float, float, float, float | None], ...]] = {
    "pneumonia vs normal": (
        ("Inception-v3 (Kermany et al.; paper, Table 8)", 92.8, 93.2, 90.1, 96.8),
        ("MD-Conv MobileNet-v2 (paper, Table 8)", 93.4, 97.4, 86.8, 98.3),
    ),
    "bacterial vs viral": (
        ("Inception-v3 (Kermany et al.; paper, Table 8)", 90.7, 88.6, 90.9, None),
        ("MD-Conv MobileNet-v2 (paper, Table 8)", 91.0, 88.5, 92.6, None),
    ),
}
#: Where the Table 8 numbers come from.
TABLE8_SETTINGS = (
    "paper, Table 8: Kermany ChestX-ray2017 official test split (234 normal, 390 pneumonia)"
)
_TASK_OF_LABEL = {"Pneumonia": "pneumonia vs normal", "Viral": "bacterial vs viral"}


def _finding_key(name: str) -> str:
    return name.replace(" ", "_").lower()


def paper_table6(label_names: Sequence[str]) -> dict[str, float] | None:
    """The paper's Table 6 AUC per label when the labels are the ChestX-ray14 findings, else None.

    Example:
        >>> paper_table6(["Mass", "Hernia"])
        {'Mass': 0.752, 'Hernia': 0.735}
    """
    table = {_finding_key(k): v for k, v in PAPER_TABLE6.items()}
    keys = [_finding_key(n) for n in label_names]
    if len(keys) < 2 or not all(k in table for k in keys):
        return None
    return {n: table[k] for n, k in zip(label_names, keys)}


def paper_table8(label_names: Sequence[str], data_name: str | None) -> str | None:
    """The Table 8 task (a key of :data:`PAPER_TABLE8`) matching Kermany data's label, else None.

    Example:
        >>> paper_table8(["Pneumonia"], "kermany")
        'pneumonia vs normal'
    """
    if data_name != "kermany" or len(label_names) != 1:
        return None
    return _TASK_OF_LABEL.get(label_names[0])


def paper_reference(
    layout: str, label_names: Sequence[str], data: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The paper's numbers comparable to an evaluation, as the ``paper`` entry of eval.json.

    Args:
        layout: ``multilabel`` (Table 6) or ``binary`` (Table 8).
        label_names: the evaluated outputs.
        data: the data description (its ``name`` says whether it is Kermany data).

    Returns:
        ``{"table": 6, "settings", "label_auc"}``, ``{"table": 8, "task", "settings", "rows"}``,
        or None when the paper has no comparable numbers.
    """
    if layout == "multilabel":
        per = paper_table6(label_names)
        if per is None:
            return None
        return {"table": 6, "settings": TABLE6_SETTINGS, "label_auc": per}
    task = paper_table8(label_names, data.get("name"))
    if task is None:
        return None
    rows = [
        dict(zip(("method", "accuracy_pct", "sensitivity_pct", "specificity_pct", "auc_pct"), r))
        for r in PAPER_TABLE8[task]
    ]
    return {"table": 8, "task": task, "settings": TABLE8_SETTINGS, "rows": rows}
