"""FLOPs and parameter counts of an architecture, per stage, with fvcore.

Convention (everywhere in mdsearch): **FLOPs = multiply-adds of convolutions and linear layers
(matrix products), in millions, for one image of ``input_size x input_size`` pixels with 3
channels** (grayscale X-rays are expanded to 3 channels by the data loader, as timm expects).
BatchNorm, activations, squeeze-excitation gating, residual additions and pooling are not
counted. fvcore traces the network once (``FlopCountAnalysis``, which counts one fused
multiply-add as one FLOP) with its operator handles restricted to convolution and
addmm/linear/matmul/mm/bmm/einsum.

How this relates to other numbers for standard MobileNet-v2 (``mobilenetv2_100``, 14 classes):
at 448x448 we count about 1198 M; fvcore's default total, which adds BatchNorm and pooling, is
about 1252 M; the paper prints 1223 M (its counting convention is not stated). At 224x224 the
conv+linear count is about 300 M (the usual "300 MFLOPs" of MobileNet-v2).

Parameters are all trainable weights and biases of the network (``params_m``, millions); BatchNorm
running statistics are buffers and not counted.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import torch

from mdsearch.space import ArchSpec

from .builder import build
from .errors import BuildError

__all__ = ["Cost", "StageCost", "cost", "COUNTED_OPS"]

#: The ATen operators whose multiply-adds are counted (all others count 0).
COUNTED_OPS = (
    "aten::_convolution",
    "aten::addmm",
    "aten::linear",
    "aten::matmul",
    "aten::mm",
    "aten::bmm",
    "aten::einsum",
)


@dataclass(frozen=True)
class StageCost:
    """Cost of one row of the network: ``stem``, ``stage0`` .. ``stageN``, ``head`` or
    ``classifier``.

    Args:
        name: row name (``stageI`` = timm ``blocks[I]``, the paper's Table 1 numbering; ``head``
            = everything between the last stage and the classifier: last 1x1 conv, norm, pooling).
        flops_m: multiply-adds of its convolutions and linear layers, millions, at the
            :class:`Cost`'s input size.
        params_m: its parameters, millions.
    """

    name: str
    flops_m: float
    params_m: float


@dataclass(frozen=True)
class Cost:
    """FLOPs and parameters of one architecture at one input size.

    Args:
        arch: canonical architecture string.
        input_size: side of the square 3-channel input, pixels.
        flops_m: multiply-adds of all convolutions and linear layers (BatchNorm and elementwise
            ops not counted), millions, for one image at ``input_size x input_size``.
        params_m: parameters, millions.
        stages: per-row costs (``stem``, ``stage0`` .. ``stageN``, ``head``, ``classifier``);
            their ``flops_m`` and ``params_m`` sum to the totals.
    """

    arch: str
    input_size: int
    flops_m: float
    params_m: float
    stages: tuple[StageCost, ...]

    def stage(self, name: str) -> StageCost:
        """The row called ``name`` (``"stage5"``, ``"stem"``, ...)."""
        for row in self.stages:
            if row.name == name:
                return row
        raise KeyError(f"no row {name!r}: rows are {', '.join(r.name for r in self.stages)}")


def cost(spec: ArchSpec, input_size: int = 448) -> Cost:
    """FLOPs (multiply-adds of conv + linear, millions) and parameters of ``spec``, per stage.

    Results are cached per (canonical string, input size): the search asks often.

    Args:
        spec: the architecture.
        input_size: side of the square 3-channel input, pixels (the paper reports at 448).

    Returns:
        A :class:`Cost`.

    Example:
        >>> c = cost(ArchSpec.default("mobilenetv2_100"), input_size=448)
        >>> round(c.flops_m), round(c.params_m, 2)
        (1198, 2.24)
    """
    if int(input_size) != input_size or input_size < 8:
        raise BuildError(f"input size {input_size!r} must be an integer of at least 8 pixels")
    return _cost_cached(spec.canonical, int(input_size))


@functools.lru_cache(maxsize=1024)
def _cost_cached(canonical: str, input_size: int) -> Cost:
    with warnings.catch_warnings():
        # fvcore's import touches torch.jit.script, which torch marks deprecated (FutureWarning).
        warnings.simplefilter("ignore", FutureWarning)
        from fvcore.nn import FlopCountAnalysis
        from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS

    spec = ArchSpec.parse(canonical)
    # Building draws random weights; keep the caller's torch RNG stream (trial seeds) untouched.
    with torch.random.fork_rng(devices=[]):
        model = build(spec).eval()
    x = torch.zeros(1, 3, input_size, input_size)
    analysis = FlopCountAnalysis(model, x)
    # Only conv and matrix products count; every other op becomes "unsupported", whose warnings
    # (and the tracer's) are silenced because skipping them is the convention, not an accident.
    analysis.clear_op_handles()
    analysis.set_op_handle(**{op: _DEFAULT_SUPPORTED_OPS[op] for op in COUNTED_OPS})
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    with torch.no_grad():
        by_module = analysis.by_module()
        total_flops = analysis.total()

    classifier = model.get_classifier()
    rows: dict[str, list[float]] = {}  # name -> [flops, params]
    seen_blocks = False
    for child_name, child in model.named_children():
        params = sum(p.numel() for p in child.parameters())
        if child_name == "blocks":
            seen_blocks = True
            for i, _stage in enumerate(child):
                stage_params = sum(p.numel() for p in _stage.parameters())
                rows[f"stage{i}"] = [by_module.get(f"blocks.{i}", 0), stage_params]
            continue
        if child is classifier:
            row = "classifier"
        else:
            row = "head" if seen_blocks else "stem"
        acc = rows.setdefault(row, [0, 0])
        acc[0] += by_module.get(child_name, 0)
        acc[1] += params
    # Ops run by the model's own forward outside any child (none in timm's MobileNets) go to head.
    rows.setdefault("head", [0, 0])[0] += total_flops - sum(r[0] for r in rows.values())
    order = ["stem", *[f"stage{i}" for i in range(len(model.blocks))], "head", "classifier"]
    stages = tuple(
        StageCost(name, rows[name][0] / 1e6, rows[name][1] / 1e6) for name in order if name in rows
    )
    return Cost(
        arch=canonical,
        input_size=input_size,
        flops_m=total_flops / 1e6,
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        stages=stages,
    )
