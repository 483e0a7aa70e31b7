"""A per-stage table of an architecture, like Table 1 of the paper, with FLOPs and parameters
(and, for ``mdsearch show --latency``, the latency table's per-stage times and a measurement).

FLOPs are multiply-adds of convolutions and linear layers, in millions, at the named input size
(see :mod:`mdsearch.mdconv.cost`); parameters are in millions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mdsearch.space import ArchSpec, StageSpec, get_backbone, split_channels

from .builder import build
from .cost import cost
from .latency_runners import runner_for
from .latency_timing import StageTimer, measure_latency, torch_threads
from .stage_table import latency_table, predict_latency

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["arch_table", "format_arch_table", "format_latency", "latency_table_parts"]

COLUMNS = [
    "layer",
    "operator",
    "n",
    "stride",
    "out_channels",
    "kernels",
    "dw_channels",
    "flops_m",
    "params_m",
]
_BLOCK_OPERATOR = {"ds": "bottleneck (t=1)", "ir": "bottleneck", "cn": "conv2d 1x1"}


def arch_table(spec: ArchSpec, input_size: int = 448) -> pd.DataFrame:
    """One row per layer group (stem, stage0 .. stageN, head, classifier) plus a total row.

    Args:
        spec: the architecture.
        input_size: side of the square 3-channel input, pixels, for the FLOPs.

    Returns:
        DataFrame with columns ``layer``, ``operator``, ``n`` (blocks), ``stride`` (of the first
        block), ``out_channels``, ``kernels`` (``3x3`` or ``3x3+5x5 (1:1)``), ``dw_channels``
        (depthwise channels per kernel group and block, e.g. ``288+288, 480+480 (x2)``),
        ``flops_m`` (multiply-adds of conv + linear, millions, at ``input_size``) and
        ``params_m`` (millions).

    Example:
        >>> spec = ArchSpec.parse("mobilenetv2_100:c14:k3,k3,k3,k3,k3,k3.5s1:1,k3")
        >>> arch_table(spec).set_index("layer").loc["stage5", "kernels"]
        '3x3+5x5 (1:1)'
    """
    import pandas as pd

    layout = get_backbone(spec.backbone)
    costs = cost(spec, input_size)
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream untouched
        model = build(spec)
    rows = []
    stem = costs.stage("stem")
    rows.append(
        ["stem", "conv2d 3x3", 1, 2, layout.stem_channels, "-", "-", stem.flops_m, stem.params_m]
    )
    for i, (stage, lay) in enumerate(zip(spec.stages, layout.stages)):
        row = costs.stage(f"stage{i}")
        op = _BLOCK_OPERATOR.get(lay.block, lay.block) + (" + SE" if lay.se else "")
        rows.append(
            [
                f"stage{i}",
                op,
                lay.repeats,
                lay.stride,
                lay.out_channels,
                _kernels_text(stage),
                _channels_text(stage, lay.dw_channels),
                row.flops_m,
                row.params_m,
            ]
        )
    head = costs.stage("head")
    classifier = model.get_classifier()
    head_out = getattr(classifier, "in_features", getattr(model, "num_features", 0))
    rows.append(["head", _head_text(model), 1, 1, head_out, "-", "-", head.flops_m, head.params_m])
    fc = costs.stage("classifier")
    rows.append(
        ["classifier", "linear", 1, "-", spec.num_classes, "-", "-", fc.flops_m, fc.params_m]
    )
    rows.append(["total", "", "", "", "", "", "", costs.flops_m, costs.params_m])
    return pd.DataFrame(rows, columns=COLUMNS)


def format_arch_table(
    spec: ArchSpec,
    input_size: int = 448,
    *,
    latency: bool = False,
    threads: int | None = None,
    device: str = "cpu",
    timer: StageTimer | None = None,
) -> str:
    """:func:`arch_table` as text for ``mdsearch show ARCH --input-size N [--latency]``.

    The first lines name the architecture (canonical string and id), the input size and the
    FLOPs convention.

    Args:
        spec: the architecture.
        input_size: side of the square 3-channel input, pixels, for the FLOPs (and latency).
        latency: also a ``latency_ms`` column (per-stage table prediction, ms per image at
            batch 1; the head row includes the classifier) and the lines of
            :func:`~mdsearch.mdconv.format_latency` (whole-network measurement, a few seconds;
            stage variants not in the cached table are timed first, about a second each).
        threads: CPU threads for the latency (``None``: torch's setting).
        device: ``"cpu"`` or ``"cuda"`` for the latency.
        timer: timing function for latency-table entries not timed yet (default
            :func:`~mdsearch.mdconv.time_module`; tests inject a stub).

    Returns:
        Multi-line text (no trailing newline).
    """
    table = arch_table(spec, input_size)
    formatters = {"flops_m": "{:.1f}".format, "params_m": "{:.3f}".format}
    if latency:
        parts = dict(
            latency_table_parts(spec, input_size, threads=threads, device=device, timer=timer)
        )
        parts["total"] = sum(parts.values())  # stem + stages + head + overhead: the prediction
        table["latency_ms"] = [parts.get(layer, float("nan")) for layer in table["layer"]]
        formatters["latency_ms"] = lambda v: "-" if v != v else f"{v:.2f}"
    mdconv = ", ".join(f"stage{i}" for i in spec.mdconv_stages) or "none"
    header = [
        f"architecture {spec.canonical}  (id {spec.arch_id})",
        f"backbone {spec.backbone}, {spec.num_classes} classes, MD-Conv in: {mdconv}",
        f"input {input_size}x{input_size}x3; FLOPs = multiply-adds (conv+linear), millions, "
        f"at {input_size}x{input_size}; params in millions",
    ]
    body = table.to_string(index=False, formatters=formatters, na_rep="-")
    lines = header + ["", body]
    if latency:
        lines += ["", format_latency(spec, input_size, threads=threads, device=device, timer=timer)]
    return "\n".join(lines)


def latency_table_parts(
    spec: ArchSpec,
    input_size: int,
    *,
    threads: int | None = None,
    device: str = "cpu",
    timer: StageTimer | None = None,
) -> list[tuple[str, float]]:
    """``(row, ms per image)`` for stem, each stage, head and ``overhead`` (the whole-network
    term, see :class:`~mdsearch.mdconv.LatencyTable`) from the cached latency table."""
    table = latency_table(spec.backbone, input_size, threads=threads, device=device)
    predict_latency(spec, input_size, table, timer=timer)  # times and saves what is missing
    return [*table.parts(spec), ("overhead", table.overhead_ms)]


def format_latency(
    spec: ArchSpec,
    input_size: int = 224,
    *,
    batch_size: int = 1,
    threads: int | None = None,
    device: str = "cpu",
    runtime: str = "torch",
    measure: bool = True,
    max_seconds: float = 5.0,
    timer: StageTimer | None = None,
) -> str:
    """Latency lines for ``mdsearch show``: measured whole-network latency and the table's
    prediction, with device, threads, batch and input size.

    Args:
        spec: the architecture.
        input_size: side of the square input, pixels.
        batch_size: images per forward pass.
        threads: CPU threads (``None``: current torch setting).
        device: ``"cpu"`` or ``"cuda"``.
        runtime: ``"torch"`` or ``"onnxruntime"`` for the measured line (the table is torch).
        measure: also measure the whole network (a few seconds); else only the prediction.
        max_seconds: time budget of the measurement, seconds.
        timer: timing function for table entries not timed yet (default
            :func:`~mdsearch.mdconv.time_module`; tests inject a stub).

    Returns:
        Multi-line text (no trailing newline).
    """
    predicted = predict_latency(
        spec, input_size, batch_size=batch_size, threads=threads, device=device, timer=timer
    )
    with torch_threads(threads):
        n = torch.get_num_threads()
    runner = runner_for(device)
    lines = [
        f"latency = median ms per image, inference, {input_size}x{input_size}, batch "
        f"{batch_size}, {runner.device} [{runner.device_name()}], {n} threads, "
        f"torch {torch.__version__}"
    ]
    lines.append(
        f"  per-stage table predicts (torch): {predicted:.2f} ms/image (stem + stages + head + "
        "whole-network overhead)"
    )
    if measure:
        lat = measure_latency(
            spec,
            input_size=input_size,
            batch_size=batch_size,
            threads=threads,
            device=device,
            runtime=runtime,
            max_seconds=max_seconds,
        )
        lines.append(
            f"  measured ({runtime}): {lat.median_ms_per_image:.2f} ms/image (95% CI "
            f"{lat.ci_low_ms:.2f}-{lat.ci_high_ms:.2f}, {lat.repeats} repeats)"
        )
    return "\n".join(lines)


def _kernels_text(stage: StageSpec) -> str:
    if not stage.kernels:
        return "-"
    ks = "+".join(f"{k}x{k}" for k in stage.kernels)
    if not stage.is_mdconv:
        return ks
    return f"{ks} ({':'.join(str(p) for p in stage.split)})"


def _channels_text(stage: StageSpec, dw_channels: tuple[int, ...]) -> str:
    """Per block, the depthwise channels of each kernel group; repeated blocks run-length coded."""
    if not stage.kernels:
        return "-"
    parts = ["+".join(str(c) for c in split_channels(ch, stage.split)) for ch in dw_channels]
    runs: list[list] = []
    for p in parts:
        if runs and runs[-1][0] == p:
            runs[-1][1] += 1
        else:
            runs.append([p, 1])
    return ", ".join(p if n == 1 else f"{p} (x{n})" for p, n in runs)


def _head_text(model: nn.Module) -> str:
    """What the modules after the last stage do, in order (e.g. ``conv2d 1x1 + avgpool``)."""
    classifier = model.get_classifier()
    seen_blocks, ops = False, []
    for name, child in model.named_children():
        if name == "blocks":
            seen_blocks = True
        elif seen_blocks and child is not classifier:
            if isinstance(child, nn.Conv2d):
                k = child.kernel_size[0]
                ops.append(f"conv2d {k}x{k}")
            elif "pool" in type(child).__name__.lower() or "pool" in name:
                ops.append("avgpool")
    return " + ".join(ops) or "-"
