"""The latency-runner contract, run over every runner in ``RUNNERS`` (a runner for a device this
machine lacks is skipped with the reason), and how a device string picks its runner."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mdsearch.mdconv import (
    RUNNERS,
    CpuRunner,
    CudaRunner,
    LatencyError,
    LatencyRunner,
    inference_call,
    median_ci,
    runner_for,
    time_module,
)

AVAILABLE = {"cpu": True, "cuda": torch.cuda.is_available()}


@pytest.fixture(params=sorted(RUNNERS))
def runner(request) -> LatencyRunner:
    device_type = request.param
    if not AVAILABLE.get(device_type, False):
        pytest.skip(f"this machine has no {device_type} device to time on")
    return RUNNERS[device_type]()


class TickClock:
    """A clock that advances by the next of ``steps`` (seconds, cycled) on every read."""

    def __init__(self, steps: list[float]) -> None:
        self.now, self.steps, self.reads = 0.0, steps, 0

    def __call__(self) -> float:
        self.now += self.steps[self.reads % len(self.steps)]
        self.reads += 1
        return self.now


def test_runner_names_its_device(runner):
    assert isinstance(runner, LatencyRunner)
    assert runner.device.type == runner.device_type
    assert isinstance(runner.device_name(), str) and runner.device_name()
    runner.synchronize()  # returns once the device is idle; nothing queued here


def test_runner_obeys_warmup_and_min_repeats(runner):
    calls = []
    seconds = runner.time_calls(
        lambda: calls.append(1), warmup=2, min_repeats=5, clock=TickClock([0.001])
    )
    # Constant 1 ms calls: the CI is zero-width, so the minimum count suffices.
    assert len(calls) == 2 + 5 and seconds == pytest.approx([0.001] * 5)


def test_runner_stops_at_max_repeats(runner):
    # Reads advance 1, 1, 9, 9 ms: calls alternate 9 ms / 1 ms, so the median's CI never
    # narrows to 3%, and the time budget is never spent.
    seconds = runner.time_calls(
        lambda: None,
        warmup=0,
        min_repeats=3,
        max_repeats=11,
        max_seconds=1e12,
        clock=TickClock([0.001, 0.001, 0.009, 0.009]),
    )
    assert len(seconds) == 11


def test_runner_times_a_module_on_its_device(runner):
    module = nn.Conv2d(3, 4, 3).to(runner.device).train()
    x = torch.randn(2, 3, 16, 16, device=runner.device)
    seconds = runner.time_calls(inference_call(module, x), warmup=1, min_repeats=3)
    assert len(seconds) >= 3 and all(s > 0 for s in seconds)
    ms = time_module(module, x, warmup=1, min_repeats=3, max_seconds=0.1)  # picks this runner
    assert ms > 0 and not module.training  # timed in eval mode


def test_runner_for_picks_the_device_type():
    assert type(runner_for("cpu")) is CpuRunner and runner_for("cpu").device == torch.device("cpu")
    with pytest.raises(LatencyError, match="not supported"):
        runner_for("meta")
    with pytest.raises(LatencyError, match="not a torch device"):
        runner_for("tpu")
    with pytest.raises(LatencyError, match="times on cpu"):
        CpuRunner("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_runner_without_cuda_is_one_clear_error():
    with pytest.raises(LatencyError, match="CUDA is not available"):
        CudaRunner()
    with pytest.raises(LatencyError, match="CUDA is not available"):
        runner_for("cuda:1")


def test_median_ci_brackets_the_median():
    ordered = [float(v) for v in range(1, 102)]
    lo, hi = median_ci(ordered)
    assert lo < 51.0 < hi and (lo, hi) == (ordered[40], ordered[60])
