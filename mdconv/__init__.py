"""How a point of the search space becomes a network: the MD-Conv layer, the builder that puts
it into a timm backbone, and the network's cost (FLOPs = multiply-adds of conv + linear layers,
in millions, at a named input size; parameters in millions).

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
from .cost import COUNTED_OPS, Cost, StageCost, cost
from .describe import arch_table, format_arch_table
from .errors import BuildError, LatencyError
from .latency import (
    Latency,
    LatencyTable,
    build_latency_table,
    format_latency,
    latency_table,
    measure_latency,
    predict_latency,
    settle_allocator,
)
from .mdconv2d import IMPLS, MDConv2d

__all__ = [
    "BuildError",
    "COUNTED_OPS",
    "Cost",
    "HEAD_INITS",
    "IMPLS",
    "Latency",
    "LatencyError",
    "LatencyTable",
    "MDConv2d",
    "StageCost",
    "arch_table",
    "build",
    "build_latency_table",
    "cost",
    "depthwise_conv",
    "format_arch_table",
    "format_latency",
    "inherit_weights",
    "latency_table",
    "measure_latency",
    "predict_latency",
    "settle_allocator",
]
