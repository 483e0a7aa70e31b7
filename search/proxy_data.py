"""The data a search (or a proxy check) trains its proxies on, and what the proxy resolution
cannot show about a space.

One loader for both: :func:`load_proxy_data` loads the dataset through
:meth:`~mdsearch.search.settings.DataSettings.load` at the proxy resolution and passes on its
notes, the :func:`resolution_warnings` for the searched space, and which labels the validation
split has too few positives or negatives of to enter the searched mean AUC
(:func:`scored_validation_labels`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mdsearch.space import SearchSpace, get_backbone

from .scored_labels import LABEL_RULE, LabelRule, ScoredLabels
from .settings import DataSettings

if TYPE_CHECKING:
    from .datasets import Dataset

__all__ = [
    "load_proxy_data",
    "resolution_warnings",
    "scored_validation_labels",
]


def load_proxy_data(
    data: DataSettings,
    space: SearchSpace,
    say: Callable[[str], None],
    *,
    progress: bool,
    val_subset: int | None = None,
    rule: LabelRule = LABEL_RULE,
) -> Dataset:
    """The dataset a search (or a proxy check) trains on, at its proxy resolution; its notes, the
    resolution warnings for ``space`` and the labels left out of the mean AUC go to ``say``.

    Args:
        data: the data settings (``resolution`` is the proxy's input side, px).
        space: the searched space (for :func:`resolution_warnings`).
        say: receives one line per note or warning.
        progress: show the image-cache progress while a cache is built.
        val_subset: the validation images the proxy scores (the recipe's; None: all).
        rule: the label rule the trials use (a resumed run's own).

    Raises:
        DataError, SettingsError: see :meth:`DataSettings.load`.
    """
    dataset = data.load(progress=progress)
    for note in dataset.notes:
        say(f"data: {note}")
    if space.held:
        searched = ", ".join(str(i) for i in space.searched_stages)
        held = ", ".join(str(i) for i, _ in space.held)
        say(
            f"space {space.name}: searching stages {searched} (maps larger than their kernels at "
            f"{data.resolution} px); stages {held} held at the backbone's kernel "
            "(`mdsearch space --resolution R` shows why)"
        )
    for w in resolution_warnings(space, data.resolution):
        say(f"warning: {w}")
    left_out = scored_validation_labels(dataset, val_subset, rule).warning()
    if left_out:
        say(f"warning: {left_out}")
    return dataset


def scored_validation_labels(
    dataset: Dataset, val_subset: int | None = None, rule: LabelRule = LABEL_RULE
) -> ScoredLabels:
    """Which labels enter every trial's mean AUC: ``rule`` (default :data:`~mdsearch.search.
    scored_labels.LABEL_RULE`) on the validation images the proxy scores (known before any
    trial runs).

    Args:
        dataset: the loaded data.
        val_subset: the recipe's ``val_subset`` (None: the whole validation split).
        rule: the label rule.
    """
    from .datasets import evaluation_index

    index = evaluation_index(dataset, "val", val_subset)
    return rule.apply(dataset.labels[index], dataset.label_names)


def resolution_warnings(space: SearchSpace, resolution: int) -> list[str]:
    """Warnings for searched stages whose feature maps are not larger than their kernels.

    At 64 px MobileNet-v2's stage5 runs on 4x4 -> 2x2 maps: a 5x5 kernel adds nothing a 3x3
    does not, so the proxy cannot rank that stage's choices.

    Args:
        space: the searched space.
        resolution: the proxy's input side, px.
    """
    backbone = get_backbone(space.backbone)
    sizes = backbone.map_sizes(resolution)
    strides = backbone.output_strides()
    out = []
    for i in space.searched_stages:
        kmax = max(max(s.kernels) for s in space.choices[i])
        if sizes[i] <= kmax:
            out.append(
                f"stage{i} runs on {sizes[i]}x{sizes[i]} maps at --resolution {resolution}, not "
                f"larger than its {kmax}x{kmax} kernel choice: the proxy cannot tell those "
                f"choices apart there (use --resolution {strides[i] * (kmax + 1)} or more)"
            )
    return out
