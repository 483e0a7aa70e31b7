"""The Markdown and JSON of ``mdsearch explain``: what was found (:class:`Explanation`), as
``explain.md`` (settings, the grid, the localisation table, notes) and ``explain.json``.

The document links its siblings by the names in :data:`EXPLAIN_FILES`; writing them is
:mod:`mdsearch.results.explain_files`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mdsearch.space import ArchSpec

from .localisation import CAM_LEVEL, FindingScore

__all__ = ["EXPLAIN_FILES", "Explanation", "format_explanation", "pointing_game_line"]

#: What ``mdsearch explain`` writes (:func:`~mdsearch.results.explain_files.write_explanation`): key -> file name in the output folder.
EXPLAIN_FILES = {
    "md": "explain.md",
    "json": "explain.json",
    "png": "explain.png",
    "cases": "localisation.csv",
}


@dataclass
class Explanation:
    """What :func:`~mdsearch.results.explain.explain_saved` found (see the module docstring).

    Attributes:
        arch: the architecture's canonical string.
        data: ``Dataset.describe()`` of the data.
        split: the split the cases come from (``all`` for every image).
        resolution: input side in pixels.
        layer: the target layer's module name; ``feature_side``: its map's side in cells.
        cases: one dict per case: ``image`` (item id), ``finding``, ``score`` (sigmoid output of
            that finding, 0-1), ``present`` (its label), without ground truth ``kind`` (true
            positive, false positive or false negative), and with ground truth ``hit``, ``iou``,
            ``area_fraction``, ``peak_row``, ``peak_col``.
        scores: the localisation table (None without ground truth).
        ground_truth: where the ground truth came from (None without).
        level: the IoU's threshold (share of each map's maximum).
        thresholds: without ground truth, the decision threshold per label that sorted the
            cases into true positives, false positives and false negatives.
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
    thresholds: dict[str, float] | None = None
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


def pointing_game_line(e: Explanation) -> str:
    """One line: the pointing game over all findings against chance and a fixed point, and the
    mean IoU (``e`` must have scores)."""
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
    if e.thresholds is not None:
        lines += [
            "The cases are what a reader checks first: per label, the network's most confident "
            "true positive (present, called positive, highest p), false positive (absent, called "
            "positive, highest p) and false negative (present, called negative, lowest p), at the "
            "label's decision threshold chosen on the validation split (Youden's J, as "
            "`mdsearch eval` chooses it; see the notes); every label's first of each kind, then "
            "the second ones. The map is always that label's output's.",
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
