"""Trained weights of one architecture as a safetensors file, and loading them back into a network.

``weights.safetensors`` holds the network's ``state_dict`` (float32, contiguous) and, in the
safetensors header metadata (strings), what is needed to use it without guessing:

==========================  ==================================================================
key                         value
==========================  ==================================================================
``mdsearch.arch``           the architecture's canonical string (``build(ArchSpec.parse(..))``)
``mdsearch.label_names``    JSON list of the output names, in output order
``mdsearch.resolution``     input side in pixels the weights were trained at
``mdsearch.normalize``      JSON ``{"mean": .., "std": ..}``: ``x = (pixel/255 - mean) / std`` of
                            a gray image repeated over the 3 input channels
``mdsearch.epoch``          the training epoch the weights come from
``mdsearch.val_auc``        mean validation AUC of these weights
==========================  ==================================================================

The metadata is informative: :func:`load_weights` checks ``mdsearch.arch`` against the spec it is
given and the tensors against the network ``build(spec)`` makes, and refuses a mismatch.
``mdsearch export`` loads trained weights through :func:`load_weights` too, and its
``model.safetensors`` carries the whole input and output recipe under the same prefix (see
:mod:`mdsearch.results.export_metadata`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mdsearch.space import ArchSpec
from mdsearch.space.files import atomic_write_bytes

from .errors import ResultsError

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "check_weights_arch",
    "load_weights",
    "read_weights_metadata",
    "save_weights",
]

_PREFIX = "mdsearch."


def save_weights(
    state: Mapping[str, Any] | nn.Module,
    path: str | os.PathLike,
    spec: ArchSpec,
    *,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write a network's weights as safetensors (atomically), with the architecture in the header.

    Args:
        state: a ``state_dict`` or the network itself.
        path: the ``.safetensors`` file to write.
        spec: the architecture the weights belong to.
        metadata: more header entries (``label_names``, ``resolution``, ``normalize``, ``epoch``,
            ``val_auc``, ...): stored as ``mdsearch.<key>``, non-strings as JSON.

    Returns:
        The path written.
    """
    from safetensors.torch import save

    if hasattr(state, "state_dict"):
        state = state.state_dict()
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    header = {f"{_PREFIX}arch": spec.canonical}
    for key, value in (metadata or {}).items():
        header[f"{_PREFIX}{key}"] = value if isinstance(value, str) else json.dumps(value)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, save(tensors, metadata=header))
    return path


def read_weights_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``mdsearch.*`` header entries of a weights file, JSON values decoded, prefix dropped.

    Raises:
        ResultsError: the file is missing or not a safetensors file.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ResultsError(
            f"--weights {path}: no such file; give the weights.safetensors that mdsearch train wrote"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ResultsError(f"--weights {path}: not a safetensors file ({exc})") from None
    out: dict[str, Any] = {}
    for key, value in header.items():
        if key.startswith(_PREFIX):
            try:
                out[key[len(_PREFIX) :]] = json.loads(value)
            except json.JSONDecodeError:
                out[key[len(_PREFIX) :]] = value
    return out


def check_weights_arch(spec: ArchSpec, path: str | os.PathLike) -> dict[str, Any]:
    """Refuse weights whose header names another architecture; returns the header metadata.

    Cheap (reads the header only), so commands call it before loading any data.

    Raises:
        ResultsError: missing or unreadable file, or ``mdsearch.arch`` differs from ``spec``.
    """
    meta = read_weights_metadata(path)
    saved_arch = meta.get("arch")
    if saved_arch is not None and str(saved_arch) != spec.canonical:
        raise ResultsError(
            f"--weights {path} were trained for {saved_arch}, not {spec.canonical}: pass the "
            "arch.json saved next to them"
        )
    labels = meta.get("label_names")
    if isinstance(labels, list) and len(labels) != spec.num_classes:
        raise ResultsError(
            f"--weights {path} have {len(labels)} outputs, {spec.canonical} has "
            f"{spec.num_classes}: pass the arch.json saved next to them"
        )
    return meta


def load_weights(spec: ArchSpec, path: str | os.PathLike, *, device: str = "cpu") -> nn.Module:
    """``build(spec)`` with the weights of ``path`` loaded (every tensor must match).

    Args:
        spec: the architecture the weights were trained for.
        path: a ``.safetensors`` file written by :func:`save_weights` (or any safetensors
            ``state_dict`` of ``build(spec)``).
        device: where to put the network.

    Returns:
        The network in eval mode.

    Raises:
        ResultsError: missing/unreadable file, weights of another architecture (by the header or
            by missing, unexpected or differently shaped tensors).

    Example:
        >>> spec = ArchSpec.parse("mobilenetv2_035:c1:k3,k3,k3,k3,k3,k3.5s1:1,k3")  # doctest: +SKIP
        >>> net = load_weights(spec, "runs/x/train/weights.safetensors")  # doctest: +SKIP
    """
    from safetensors.torch import load_file

    from mdsearch.mdconv import build

    path = Path(path)
    check_weights_arch(spec, path)
    tensors = load_file(str(path))
    model = build(spec, head_init="small")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    reshaped = sorted(
        k
        for k in set(expected) & set(tensors)
        if tuple(expected[k].shape) != tuple(tensors[k].shape)
    )
    if missing or unexpected or reshaped:
        parts = []
        for what, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("reshaped", reshaped),
        ):
            if keys:
                parts.append(f"{len(keys)} {what} (e.g. {keys[0]})")
        raise ResultsError(
            f"--weights {path} do not fit {spec.canonical}: {', '.join(parts)} tensors; pass the "
            "arch.json the weights were trained with"
        )
    model.load_state_dict(tensors)
    return model.to(device).eval()
