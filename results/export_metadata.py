"""What a stranger needs to get mdsearch's prediction from an exported network, in one place.

An exported file is only useful if its user feeds it what it was trained on and reads its output
as it was meant. :class:`ModelInterface` holds that contract, taken from the code that defines it,
not from copies:

- the input: the image decoded to 8-bit grey (Pillow ``convert("L")``, as the image cache
  :mod:`mdsearch.search.datasets.cache` does), resized to R x R with Pillow's bilinear filter
  ignoring the aspect ratio (no crop), scaled to [0, 1], normalised with
  :data:`mdsearch.search.datasets.MEAN` / :data:`~mdsearch.search.datasets.STD` (the loader's
  constants) and repeated over the 3 input channels;
- the output: one logit per label; the probability of a label is the sigmoid of its logit, each
  label on its own (the network is trained with binary cross-entropy: multi-label, never a
  softmax), and, when ``mdsearch train`` chose one (one-label data only), the decision threshold
  on that probability;
- the architecture string, the label names, where the weights come from.

It is written three ways, all from this class: :meth:`ModelInterface.metadata` (string pairs under
``mdsearch.*`` keys: ONNX ``metadata_props``, the safetensors header, a TorchScript extra file),
:meth:`ModelInterface.config` (a timm-style ``config.json``), and :meth:`ModelInterface.card_lines`
(the model card's "Input and output" section). :meth:`ModelInterface.from_metadata` reads the
first back.

==========================  =====================================================================
metadata key                value (a string; lists and numbers as JSON)
==========================  =====================================================================
``mdsearch.arch``           the architecture's canonical string (``ArchSpec.parse`` rebuilds it)
``mdsearch.label_names``    JSON list of the output names, in output order
``mdsearch.input_size``     JSON ``[3, R, R]``
``mdsearch.resolution``     R, the side in pixels the network was trained (or searched) at
``mdsearch.grayscale``      how a colour or 16-bit file becomes one 8-bit grey channel
``mdsearch.interpolation``  ``bilinear`` (Pillow), to R x R, aspect ratio ignored
``mdsearch.gray_to_3ch``    ``true``: the grey image is repeated over the 3 input channels
``mdsearch.mean``           JSON list of 3: ``x = (pixel / 255 - mean) / std`` per channel
``mdsearch.std``            JSON list of 3
``mdsearch.preprocess``     the whole recipe in one sentence
``mdsearch.output``         what the output means
``mdsearch.activation``     ``sigmoid`` (per label)
``mdsearch.threshold``      JSON number, only when ``mdsearch train`` chose one
``mdsearch.threshold_rule`` how it was chosen (only with a threshold)
``mdsearch.weights``        trained weights or a random initialisation
``mdsearch.data``           the ``--data`` value the network was trained or searched on
==========================  =====================================================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdsearch.search.datasets import MEAN, STD
from mdsearch.space import ArchSpec

from .errors import ResultsError

__all__ = ["GRAYSCALE", "INTERPOLATION", "METADATA_PREFIX", "ModelInterface", "read_threshold"]

#: Prefix of every key mdsearch writes into a file's metadata (as in ``weights.safetensors``).
METADATA_PREFIX = "mdsearch."
#: The resize filter of the image cache (:func:`mdsearch.search.datasets.decode_image`).
INTERPOLATION = "bilinear"
#: How the image cache makes one 8-bit grey channel of any file.
GRAYSCALE = (
    "Pillow Image.convert('L') (RGB/RGBA to ITU-R 601-2 luma); 16-bit or float images are first "
    "scaled by their maximum to 0-255"
)


@dataclass(frozen=True)
class ModelInterface:
    """How to feed an exported network and read its output.

    Args:
        arch: the architecture's canonical string.
        label_names: output names, in output order.
        resolution: input side R in pixels the network was trained (or searched) at.
        threshold: decision threshold on the sigmoid probability, when ``mdsearch train`` chose
            one (one-label data: Youden's J on validation); None otherwise.
        threshold_rule: how ``threshold`` was chosen.
        weights: where the weights come from (trained weights or a random initialisation).
        data: the ``--data`` value of the training or the search.
        mean, std: the normalisation (default: the loader's :data:`MEAN` / :data:`STD`).
    """

    arch: str
    label_names: tuple[str, ...]
    resolution: int
    threshold: float | None = None
    threshold_rule: str | None = None
    weights: str = ""
    data: str = ""
    mean: float = MEAN
    std: float = STD

    def __post_init__(self) -> None:
        spec = ArchSpec.parse(self.arch)
        if len(self.label_names) != spec.num_classes:
            raise ResultsError(
                f"{len(self.label_names)} label names for {self.arch}, which has "
                f"{spec.num_classes} outputs: export with weights and data of this architecture"
            )

    @property
    def input_size(self) -> list[int]:
        """``[3, R, R]`` (channels, height, width), as timm's ``input_size``."""
        return [3, self.resolution, self.resolution]

    def preprocess_text(self) -> str:
        """The whole input recipe in one sentence."""
        r = self.resolution
        return (
            f"decode to 8-bit grey ({GRAYSCALE}); resize to {r}x{r} with Pillow's "
            f"{INTERPOLATION} filter, ignoring the aspect ratio (no crop); "
            f"x = (pixel / 255 - {self.mean}) / {self.std}; repeat the grey channel 3 times: "
            f"a float32 array (N, 3, {r}, {r})"
        )

    def output_text(self, *, threshold: bool = True) -> str:
        """What the output means, and (``threshold``) how to make a decision from it."""
        names = ", ".join(self.label_names)
        text = (
            f"logits (N, {len(self.label_names)}) for {names}: the probability of each label is "
            "sigmoid(logit), each label on its own (trained with binary cross-entropy: "
            "multi-label, not a softmax)"
        )
        if not threshold:
            return text
        if self.threshold is not None:
            text += (
                f"; call {self.label_names[0]} positive when sigmoid(logit) >= "
                f"{self.threshold:.6g} (chosen by {self.threshold_rule})"
            )
        else:
            text += "; no decision threshold was chosen (mdsearch train chooses one for one label)"
        return text

    def metadata(self) -> dict[str, str]:
        """Every field as ``mdsearch.*`` string pairs (see the module's table)."""
        values: dict[str, Any] = {
            "arch": self.arch,
            "label_names": list(self.label_names),
            "input_size": self.input_size,
            "resolution": self.resolution,
            "grayscale": GRAYSCALE,
            "interpolation": INTERPOLATION,
            "gray_to_3ch": True,
            "mean": [self.mean] * 3,
            "std": [self.std] * 3,
            "preprocess": self.preprocess_text(),
            "output": self.output_text(),
            "activation": "sigmoid",
            "weights": self.weights,
            "data": self.data,
        }
        if self.threshold is not None:
            values["threshold"] = self.threshold
            values["threshold_rule"] = self.threshold_rule or ""
        return {
            METADATA_PREFIX + key: value if isinstance(value, str) else json.dumps(value)
            for key, value in values.items()
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> ModelInterface:
        """Read back what :meth:`metadata` wrote (other keys are ignored).

        Raises:
            ResultsError: a key this class needs is missing.
        """
        try:
            threshold = metadata.get(METADATA_PREFIX + "threshold")
            return cls(
                arch=metadata[METADATA_PREFIX + "arch"],
                label_names=tuple(json.loads(metadata[METADATA_PREFIX + "label_names"])),
                resolution=int(metadata[METADATA_PREFIX + "resolution"]),
                threshold=None if threshold is None else float(threshold),
                threshold_rule=metadata.get(METADATA_PREFIX + "threshold_rule"),
                weights=metadata.get(METADATA_PREFIX + "weights", ""),
                data=metadata.get(METADATA_PREFIX + "data", ""),
                mean=float(json.loads(metadata[METADATA_PREFIX + "mean"])[0]),
                std=float(json.loads(metadata[METADATA_PREFIX + "std"])[0]),
            )
        except KeyError as exc:
            raise ResultsError(
                f"no {exc.args[0]} in the metadata: not an mdsearch export"
            ) from None

    def config(self) -> dict[str, Any]:
        """A timm-style ``config.json``: the network, its input, its output.

        ``architecture`` is mdsearch's string (``build(ArchSpec.parse(...))``), ``backbone`` the
        timm model it modifies; ``input_size``, ``interpolation``, ``mean``, ``std`` and
        ``crop_pct`` (1.0: nothing cropped) mean what they mean in timm's pretrained configs.
        """
        spec = ArchSpec.parse(self.arch)
        out: dict[str, Any] = {
            "architecture": self.arch,
            "backbone": spec.backbone,
            "num_classes": spec.num_classes,
            "label_names": list(self.label_names),
            "input_size": self.input_size,
            "interpolation": INTERPOLATION,
            "crop_pct": 1.0,
            "mean": [self.mean] * 3,
            "std": [self.std] * 3,
            "gray_to_3ch": True,
            "grayscale": GRAYSCALE,
            "preprocess": self.preprocess_text(),
            "output": self.output_text(),
            "activation": "sigmoid",
            "threshold": self.threshold,
            "threshold_rule": self.threshold_rule,
            "weights": self.weights,
            "data": self.data,
        }
        return out

    def card_lines(self) -> list[str]:
        """The model card's "Input and output" section."""
        r = self.resolution
        threshold = (
            f"{self.threshold:.6g} on the sigmoid of `{self.label_names[0]}` "
            f"(chosen by {self.threshold_rule})"
            if self.threshold is not None
            else "none chosen (`mdsearch train` chooses one on validation for one-label data)"
        )
        return [
            "## Input and output",
            "",
            "Everything below is also in `config.json`, in the ONNX file's `metadata_props` and "
            "in the safetensors header (keys `mdsearch.*`).",
            "",
            f"- input: `image`, float32 (N, 3, {r}, {r}): the side the network was trained at "
            "(untrained: the side the search trained its proxies at); the ONNX graph takes "
            "other sizes too",
            f"- grey: {GRAYSCALE}",
            f"- resize: to {r}x{r}, Pillow {INTERPOLATION}, aspect ratio ignored (no crop)",
            f"- normalise: x = (pixel / 255 - {self.mean}) / {self.std}, then the grey "
            "channel repeated 3 times",
            f"- output: {self.output_text(threshold=False)}",
            f"- labels, in output order: {', '.join(self.label_names)}",
            f"- decision threshold: {threshold}",
            "",
        ]


def read_threshold(weights: str | Path, spec: ArchSpec) -> tuple[float | None, str | None]:
    """The decision threshold ``mdsearch train`` (or ``mdsearch eval``) chose for ``weights``.

    Both write ``eval.json`` next to the weights: its ``threshold`` (one-label data only) and
    ``threshold_rule``, for the architecture in its ``arch``. An ``eval.json`` of another
    architecture, or none, gives ``(None, None)``.
    """
    path = Path(weights).parent / "eval.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, None
    if record.get("arch") != spec.canonical or record.get("threshold") is None:
        return None, None
    rule = record.get("threshold_rule") or "choice on the validation split"
    return float(record["threshold"]), str(rule)
