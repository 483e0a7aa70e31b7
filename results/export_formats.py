"""The network file formats ``mdsearch export`` writes, one class each, behind one interface.

Every format implements :class:`ExportFormat`: :meth:`~ExportFormat.save` writes the network
(atomically, through :func:`mdsearch.space.files.atomic_write_bytes`) with the metadata a user
needs to feed it (``mdsearch.*`` strings from
:meth:`mdsearch.results.export_metadata.ModelInterface.metadata`: input size, grey to 3 channels,
mean/std, label names, what the output means, the threshold); :meth:`~ExportFormat.load` reads
the file back as something that runs an image batch, so that :func:`check_outputs` can compare
it with PyTorch; :meth:`~ExportFormat.read_metadata` reads the metadata back as the format's own
clients do. :data:`EXPORT_FORMATS` is the registry (``--format`` choices come from it); a new
format is one class here and one line in it, and the contract test in ``tests/test_export.py``
runs every registered format through the same checks.

==============  ========================  =================================  ================
``--format``    file                      checked by                         metadata in
==============  ========================  =================================  ================
``onnx``        ``model.onnx``            onnx.checker, onnxruntime outputs  metadata_props
``torchscript`` ``model.torchscript.pt``  ``torch.jit.load``, outputs        ``mdsearch.json``
                                                                             (an extra file)
``safetensors`` ``model.safetensors``     state dict into ``build(spec)``    the header
==============  ========================  =================================  ================
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from mdsearch.space import ArchSpec
from mdsearch.space.files import atomic_write_bytes

from .errors import ResultsError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "EXPORT_FORMATS",
    "EXPORT_TOLERANCE",
    "ExportFormat",
    "OnnxExport",
    "SafetensorsExport",
    "TorchScriptExport",
    "check_outputs",
    "export_format",
]

#: Largest allowed |exported output - PyTorch output|, relative to the logits' scale (>= 1).
EXPORT_TOLERANCE = 1e-4

#: What a loaded export is: an image batch (N, 3, H, W) in, logits (N, classes) out.
Runner = Callable[["torch.Tensor"], np.ndarray]


@runtime_checkable
class ExportFormat(Protocol):
    """One network file format.

    Attributes:
        name: the ``--format`` value and the key of the written file in ``export()``'s result.
        filename: the file written in the export folder.
        label: how the check line on the model card names the format.
    """

    name: str
    filename: str
    label: str

    def save(
        self,
        net: nn.Module,
        example: torch.Tensor,
        path: Path,
        spec: ArchSpec,
        metadata: Mapping[str, str],
    ) -> None:
        """Write ``net`` (in eval mode) to ``path`` with ``metadata`` (string pairs) inside;
        ``example`` is an input batch to trace with."""
        ...

    def read_metadata(self, path: Path) -> dict[str, str]:
        """The metadata stored by :meth:`save`, read the way the format's own clients read it."""
        ...

    def load(self, path: Path, spec: ArchSpec) -> Runner:
        """The file at ``path`` as a function from an image batch to logits (numpy)."""
        ...

    def card_line(self, spec: ArchSpec, size: int) -> str:
        """The model card's line about the file (``size``: the example's side in pixels)."""
        ...


@dataclass(frozen=True)
class OnnxExport:
    """ONNX through the TorchScript-based exporter, batch and image size left dynamic.

    Args:
        opset: ONNX opset version.
    """

    opset: int = 17
    name: str = "onnx"
    filename: str = "model.onnx"
    label: str = "ONNX (onnxruntime)"

    def save(
        self,
        net: nn.Module,
        example: torch.Tensor,
        path: Path,
        spec: ArchSpec,
        metadata: Mapping[str, str],
    ) -> None:
        """Export with input ``image`` (N, 3, H, W), output ``logits`` (N, classes) and
        ``metadata`` as the model's ``metadata_props``."""
        import onnx
        import torch

        dims = {0: "batch", 2: "height", 3: "width"}
        buffer = io.BytesIO()
        # The TorchScript-based exporter: works offline for timm MobileNets with MD-Conv's
        # split/concat and keeps the graph's batch and image size dynamic.
        torch.onnx.export(
            net,
            (example,),
            buffer,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": dims, "logits": {0: "batch"}},
            opset_version=self.opset,
            dynamo=False,
        )
        model = onnx.load_from_string(buffer.getvalue())
        onnx.helper.set_model_props(model, dict(metadata))
        atomic_write_bytes(path, model.SerializeToString())

    def read_metadata(self, path: Path) -> dict[str, str]:
        """onnxruntime's ``custom_metadata_map`` (what ``metadata_props`` holds)."""
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return dict(session.get_modelmeta().custom_metadata_map)

    def load(self, path: Path, spec: ArchSpec) -> Runner:
        """An onnxruntime CPU session, after ``onnx.checker`` accepted the file."""
        import onnx
        import onnxruntime as ort

        onnx.checker.check_model(str(path))
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: session.run(["logits"], {"image": x.numpy()})[0]

    def card_line(self, spec: ArchSpec, size: int) -> str:
        """Input and output names and shapes."""
        return (
            f"`{self.filename}`: input `image` (N, 3, H, W), output `logits` "
            f"(N, {spec.num_classes})"
        )


@dataclass(frozen=True)
class TorchScriptExport:
    """A traced TorchScript module (traced at the example's size)."""

    name: str = "torchscript"
    filename: str = "model.torchscript.pt"
    label: str = "TorchScript"

    #: The extra file (``torch.jit.load(..., _extra_files=...)``) that holds the metadata.
    extra_file: str = "mdsearch.json"

    def save(
        self,
        net: nn.Module,
        example: torch.Tensor,
        path: Path,
        spec: ArchSpec,
        metadata: Mapping[str, str],
    ) -> None:
        """``torch.jit.trace`` on ``example``, saved with ``metadata`` as a JSON extra file."""
        import torch

        buffer = io.BytesIO()
        extra = {self.extra_file: json.dumps(dict(metadata), indent=1)}
        with torch.no_grad(), warnings.catch_warnings():
            # torch 2.x marks TorchScript deprecated; it is still what many deployments load.
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(torch.jit.trace(net, example), buffer, _extra_files=extra)
        atomic_write_bytes(path, buffer.getvalue())

    def read_metadata(self, path: Path) -> dict[str, str]:
        """The extra file, through ``torch.jit.load(..., _extra_files=...)``."""
        import torch

        extra = {self.extra_file: ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.load(str(path), _extra_files=extra)
        return json.loads(extra[self.extra_file] or "{}")

    def load(self, path: Path, spec: ArchSpec) -> Runner:
        """``torch.jit.load``, run without gradients."""
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return _torch_runner(torch.jit.load(str(path)))

    def card_line(self, spec: ArchSpec, size: int) -> str:
        """The tracing size."""
        return (
            f"`{self.filename}`: traced at {size}x{size}; metadata in the extra file "
            f"`{self.extra_file}`"
        )


@dataclass(frozen=True)
class SafetensorsExport:
    """The state dict (tensors only), the metadata in the header (``mdsearch.arch``, ...)."""

    name: str = "safetensors"
    filename: str = "model.safetensors"
    label: str = "safetensors (loaded into build(arch))"

    def save(
        self,
        net: nn.Module,
        example: torch.Tensor,
        path: Path,
        spec: ArchSpec,
        metadata: Mapping[str, str],
    ) -> None:
        """The contiguous state dict, ``metadata`` (and ``mdsearch.arch``) in the header."""
        from safetensors.torch import save

        state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
        header = {"mdsearch.arch": spec.canonical, **metadata}
        atomic_write_bytes(path, save(state, metadata=header))

    def read_metadata(self, path: Path) -> dict[str, str]:
        """The header's metadata (``safetensors.safe_open(...).metadata()``)."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})

    def load(self, path: Path, spec: ArchSpec) -> Runner:
        """``build(spec)`` with the file's tensors, in eval mode."""
        from safetensors.torch import load_file

        from mdsearch.mdconv import build

        net = build(spec).eval()
        net.load_state_dict(load_file(str(path)))
        return _torch_runner(net)

    def card_line(self, spec: ArchSpec, size: int) -> str:
        """What the file holds."""
        return f"`{self.filename}`: state dict (load it as shown below, with `config.json`)"


def _torch_runner(module: Callable[[torch.Tensor], torch.Tensor]) -> Runner:
    """A torch module (eager or TorchScript) as a runner: no gradients, numpy out."""
    import torch

    def run(x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return module(x).numpy()

    return run


#: Every export format by ``--format`` name, in the order they are written and listed.
EXPORT_FORMATS: dict[str, ExportFormat] = {
    f.name: f for f in (OnnxExport(), TorchScriptExport(), SafetensorsExport())
}


def export_format(name: str) -> ExportFormat:
    """The registered format called ``name``.

    Raises:
        ResultsError: no such format (the message lists the known ones).

    Example:
        >>> export_format("onnx").filename
        'model.onnx'
    """
    try:
        return EXPORT_FORMATS[name]
    except KeyError:
        raise ResultsError(
            f"unknown export format {name}: use {', '.join(EXPORT_FORMATS)}"
        ) from None


def check_outputs(what: str, got: np.ndarray, want: np.ndarray) -> str:
    """Compare an export's outputs with PyTorch's; the model card's line when they agree.

    The bound is :data:`EXPORT_TOLERANCE` times the logits' scale (at least 1): float32 rounding
    grows with the size of the logits.

    Args:
        what: the format's label.
        got: the exported network's outputs.
        want: PyTorch's outputs on the same input.

    Raises:
        ResultsError: different shapes, or a difference above the bound.

    Example:
        >>> check_outputs("X", np.zeros((2, 3)), np.zeros((2, 3)))[:35]
        'X: max |output - PyTorch| = 0.0e+00'
    """
    diff = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("inf")
    scale = max(1.0, float(np.max(np.abs(want))))
    if not diff <= EXPORT_TOLERANCE * scale:
        raise ResultsError(
            f"{what} export differs from PyTorch by {diff:.2e} (> {EXPORT_TOLERANCE:g} x "
            f"{scale:.3g}): do not use this file; report the architecture string"
        )
    return (
        f"{what}: max |output - PyTorch| = {diff:.1e} on a {len(want)}-image example "
        f"(logits up to {scale:.3g}; bound {EXPORT_TOLERANCE:g} x that)"
    )
