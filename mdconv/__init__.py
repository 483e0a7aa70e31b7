"""How a point of the search space becomes a network: the MD-Conv layer, the builder that puts
it into a timm backbone, the network's cost (FLOPs = multiply-adds of conv + linear layers,
in millions, at a named input size; parameters in millions) and its latency (median ms per image
of an inference forward pass: measured, or predicted from the per-stage lookup table).

Modules, one job each: :mod:`.mdconv2d` (the layer), :mod:`.builder` (spec -> network),
:mod:`.cost` (FLOPs, parameters), :mod:`.latency_runners` (how calls are timed on a CPU or GPU),
:mod:`.latency_timing` (whole-network latency), :mod:`.stage_table` (the per-stage lookup table),
:mod:`.describe` (the ``mdsearch show`` tables), :mod:`.supernet` (every architecture of a space
in one weight-sharing network), :mod:`.choice_layers` (its per-choice depthwise layers).

Never imports ``mdsearch.search``, Ray or Optuna.

Example:
    >>> from mdsearch.space import ArchSpec
    >>> from mdsearch.mdconv import build, cost
    >>> spec = ArchSpec.parse("mobilenetv2_100:c14:k3,k3,k3,k3,k3,k3.5s1:1,k3")
    >>> net = build(spec, head_init="small")
    >>> round(cost(spec, input_size=448).flops_m)
    1202
"""

from .builder import HEAD_INITS, build, depthwise_conv, inherit_weights
from .choice_layers import ChoiceBatchNorm, ChoiceDepthwiseConv2d
from .cost import COUNTED_OPS, Cost, StageCost, cost
from .describe import arch_table, format_arch_table, format_latency, latency_table_parts
from .errors import BuildError, LatencyError
from .latency_runners import (
    RUNNERS,
    CpuRunner,
    CudaRunner,
    LatencyRunner,
    device_name,
    inference_call,
    median_ci,
    runner_for,
)
from .latency_timing import (
    RUNTIMES,
    Latency,
    StageTimer,
    measure_latency,
    settle_allocator,
    time_module,
    torch_threads,
)
from .mdconv2d import IMPLS, MDConv2d, init_depthwise_, mdconv_forward, single_kernel_depthwise
from .stage_table import (
    LatencyTable,
    build_latency_table,
    head_module,
    latency_table,
    predict_latency,
    stem_module,
    table_key,
)
from .supernet import SuperDepthwiseConv2d, Supernet, build_supernet, extract

__all__ = [
    "BuildError",
    "COUNTED_OPS",
    "ChoiceBatchNorm",
    "ChoiceDepthwiseConv2d",
    "Cost",
    "CpuRunner",
    "CudaRunner",
    "HEAD_INITS",
    "IMPLS",
    "Latency",
    "LatencyError",
    "LatencyRunner",
    "LatencyTable",
    "MDConv2d",
    "RUNNERS",
    "RUNTIMES",
    "StageCost",
    "StageTimer",
    "SuperDepthwiseConv2d",
    "Supernet",
    "arch_table",
    "build",
    "build_latency_table",
    "build_supernet",
    "cost",
    "depthwise_conv",
    "device_name",
    "extract",
    "format_arch_table",
    "format_latency",
    "head_module",
    "inference_call",
    "inherit_weights",
    "init_depthwise_",
    "latency_table",
    "latency_table_parts",
    "measure_latency",
    "mdconv_forward",
    "median_ci",
    "predict_latency",
    "runner_for",
    "settle_allocator",
    "single_kernel_depthwise",
    "stem_module",
    "table_key",
    "time_module",
    "torch_threads",
]
