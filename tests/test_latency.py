"""Latency measurement plumbing (stub clock, no timing assertions) and the per-stage latency table
(stub timing function: the prediction is exactly the sum of the stubbed parts)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from mdsearch.mdconv import (
    LatencyError,
    LatencyTable,
    build_latency_table,
    latency_table,
    measure_latency,
    predict_latency,
)
from mdsearch.space import ArchSpec, StageSpec

BACKBONE = "mobilenetv2_035"  # the smallest backbone: builds fast
SIZE = 32


class CountingNet(nn.Module):
    """A tiny network that counts its forward passes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.conv(x)


class TickClock:
    """A clock that advances by the next step on every read (seconds)."""

    def __init__(self, steps: list[float]) -> None:
        self.now, self.steps, self.i = 0.0, steps, 0

    def __call__(self) -> float:
        self.now += self.steps[self.i % len(self.steps)]
        self.i += 1
        return self.now


def test_measure_obeys_warmup_and_min_repeats_and_fills_fields():
    net = CountingNet()
    lat = measure_latency(
        net, input_size=16, batch_size=4, warmup=3, min_repeats=7, clock=TickClock([0.002])
    )
    # Every timed pass reads 2 ms, so the CI is zero-width and the minimum count suffices.
    assert net.calls == 3 + 7
    assert lat.repeats == 7 and lat.warmup == 3
    assert lat.median_ms_per_image == pytest.approx(2.0 / 4)
    assert lat.median_ms_per_batch == pytest.approx(2.0)
    assert lat.rel_error == pytest.approx(0, abs=1e-9) and lat.iqr_ms == pytest.approx(0, abs=1e-9)
    assert lat.ci_low_ms <= lat.median_ms_per_image <= lat.ci_high_ms
    assert (lat.batch_size, lat.input_size, lat.device, lat.runtime) == (4, 16, "cpu", "torch")
    assert lat.threads == torch.get_num_threads()
    assert lat.torch_version == torch.__version__ and lat.device_name
    assert lat.arch is None
    assert "ms/image" in lat.describe()
    assert lat.to_dict()["repeats"] == 7
    assert not net.training  # measured in eval mode


def test_measure_stops_at_max_repeats_or_max_seconds_when_noisy():
    # Clock reads advance 1, 1, 9, 9 ms: passes alternate 9 ms / 1 ms, so the median's CI never
    # gets within 5%.
    net = CountingNet()
    lat = measure_latency(
        net,
        input_size=16,
        warmup=0,
        min_repeats=4,
        max_repeats=25,
        max_seconds=1e9,
        clock=TickClock([0.001, 0.001, 0.009, 0.009]),
    )
    assert lat.repeats == 25 and net.calls == 25
    assert lat.rel_error > 0.05
    # Time budget: passes take 5 s then 1 s (a wide CI); the budget is spent after the 2nd.
    net = CountingNet()
    lat = measure_latency(
        net,
        input_size=16,
        warmup=1,
        min_repeats=2,
        max_seconds=5.0,
        clock=TickClock([1.0, 1.0, 5.0]),
    )
    assert lat.repeats == 2 and net.calls == 1 + 2


def test_measure_sets_and_restores_threads():
    before = torch.get_num_threads()
    lat = measure_latency(
        CountingNet(), input_size=16, threads=1, min_repeats=2, clock=TickClock([0.001])
    )
    assert lat.threads == 1
    assert torch.get_num_threads() == before


def test_measure_builds_a_spec_and_records_it():
    spec = ArchSpec.default(BACKBONE, 2).with_stage(5, (3, 5), (1, 1))
    state = torch.random.get_rng_state()
    lat = measure_latency(spec, input_size=SIZE, warmup=1, min_repeats=2, max_seconds=0.2)
    assert torch.equal(torch.random.get_rng_state(), state)  # caller's seed stream untouched
    assert lat.arch == spec.canonical and lat.repeats >= 2 and lat.median_ms_per_image > 0


def test_onnxruntime_path_runs():
    pytest.importorskip("onnxruntime")
    spec = ArchSpec.default(BACKBONE, 2).with_stage(5, (3, 5), (1, 1))
    lat = measure_latency(
        spec, input_size=SIZE, runtime="onnxruntime", threads=1, min_repeats=3, max_seconds=0.2
    )
    assert lat.runtime == "onnxruntime" and lat.threads == 1
    assert lat.repeats >= 3 and lat.median_ms_per_image > 0


def test_measure_errors():
    with pytest.raises(LatencyError, match="runtime"):
        measure_latency(CountingNet(), runtime="tensorrt")
    with pytest.raises(LatencyError, match="device"):
        measure_latency(CountingNet(), device="tpu")
    with pytest.raises(LatencyError, match="batch_size"):
        measure_latency(CountingNet(), batch_size=0)


# -- the table ------------------------------------------------------------------------------
class StubTimer:
    """'Times' a part as its parameter count plus its input side, in ms; records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[int, ...]]] = []

    def __call__(self, module: nn.Module, x: torch.Tensor) -> float:
        self.calls.append((type(module).__name__, tuple(x.shape)))
        return float(sum(p.numel() for p in module.parameters()) + x.shape[-1])


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_table_prediction_is_the_sum_of_stubbed_parts():
    from mdsearch.mdconv import build

    base = ArchSpec.default(BACKBONE)  # 14 classes, as the table times the head
    spec = base.with_stage(1, (3, 5), (1, 1)).with_stage(5, (3, 5), (1, 3))
    timer = StubTimer()
    table = build_latency_table(BACKBONE, SIZE, variants=[base, spec], batch_size=2, timer=timer)
    # stem + head + 7 default stages + 2 MD-Conv variants + the default network whole, once each.
    assert len(timer.calls) == 2 + 7 + 2 + 1
    assert all(shape[0] == 2 for _, shape in timer.calls)  # the stated batch
    assert timer.calls[-1] == (type(build(base)).__name__, (2, 3, SIZE, SIZE))
    model = build(spec)
    sides = [SIZE // 2, SIZE // 2, SIZE // 4, SIZE // 8, SIZE // 16, SIZE // 16, SIZE // 32]
    expected_stages = [(_params(model.blocks[i]) + sides[i]) / 2 for i in range(7)]
    stem = (_params(model.conv_stem) + _params(model.bn1) + SIZE) / 2
    head_params = _params(model) - _params(model.blocks) - _params(model.conv_stem)
    head = (head_params - _params(model.bn1) + SIZE // 32) / 2
    parts = table.parts(spec)
    assert [name for name, _ in parts] == ["stem", *[f"stage{i}" for i in range(7)], "head"]
    assert [ms for _, ms in parts] == [stem, *expected_stages, head]
    # The overhead term: the default network timed whole minus the sum of its parts.
    whole = (_params(build(base)) + SIZE) / 2
    assert table.overhead_ms == pytest.approx(whole - sum(ms for _, ms in table.parts(base)))
    assert table.predict(spec) == pytest.approx(
        sum([stem, *expected_stages, head]) + table.overhead_ms
    )
    assert table.predict(base) == pytest.approx(whole)  # exact for the network it was measured on
    assert table.stages["stage5:k3.5s1:3"] == expected_stages[5]
    assert table.predict(base) < table.predict(spec)  # 5x5 taps add parameters in the stub


def test_table_missing_entries_and_errors():
    table = build_latency_table(BACKBONE, SIZE, timer=StubTimer())
    spec = ArchSpec.default(BACKBONE).with_stage(3, (3, 5), (1, 1))
    assert table.missing(ArchSpec.default(BACKBONE)) == []
    assert table.missing(spec) == ["stage3:k3.5s1:1"]
    with pytest.raises(LatencyError, match="stage3:k3.5s1:1"):
        table.predict(spec)
    with pytest.raises(LatencyError, match="mobilenetv2_100"):
        table.predict(ArchSpec.default("mobilenetv2_100"))
    with pytest.raises(LatencyError, match="not .*mobilenetv2_100 at"):
        build_latency_table("mobilenetv2_100", SIZE, timer=StubTimer(), table=table)


def test_table_accepts_a_stage_mapping_and_extends_in_place():
    timer = StubTimer()
    choices = {5: [StageSpec.parse("k3"), StageSpec.parse("k3.5s1:1"), "k3.5s3:1"]}
    table = build_latency_table(BACKBONE, SIZE, variants=choices, timer=timer)
    # The asked variants, and the default network's stages (its whole time calibrates the table).
    assert sorted(table.stages) == sorted(
        [*(f"stage{i}:k3" for i in range(7)), "stage5:k3.5s1:1", "stage5:k3.5s3:1"]
    )
    n = len(timer.calls)
    build_latency_table(BACKBONE, SIZE, variants=choices, timer=timer, table=table)
    assert len(timer.calls) == n  # nothing re-timed


def test_predict_latency_fills_and_caches_the_table(tmp_path, monkeypatch):
    monkeypatch.setenv("MDSEARCH_CACHE_DIR", str(tmp_path))
    spec = ArchSpec.default(BACKBONE, 2).with_stage(5, (3, 5), (1, 1))
    timer = StubTimer()
    ms = predict_latency(spec, SIZE, timer=timer, threads=1)
    assert (
        len(timer.calls) == 2 + 7 + 1 + 1
    )  # stem, head, the spec's 7 stages, default stage5, whole
    files = list((tmp_path / "latency").glob("*.json"))
    assert len(files) == 1 and f"{BACKBONE}-{SIZE}px-b1-cpu-t1" in files[0].name
    data = json.loads(files[0].read_text())
    assert data["key"]["threads"] == 1 and data["key"]["torch_version"] == torch.__version__
    # A second process (fresh load) predicts the same without timing anything.
    table = latency_table(BACKBONE, SIZE, threads=1)
    assert table.path == files[0] and table.predict(spec) == ms
    assert predict_latency(spec, SIZE, table, timer=timer) == ms
    assert len(timer.calls) == 2 + 7 + 1 + 1
    # Another thread count is another table.
    assert latency_table(BACKBONE, SIZE, threads=2).stem_ms is None


def test_table_save_merges_entries_of_parallel_writers(tmp_path):
    path = tmp_path / "t.json"
    a = build_latency_table(BACKBONE, SIZE, timer=StubTimer())
    b = LatencyTable.from_dict(a.to_dict())
    a.stages["stage5:k3.5s1:1"] = 1.0
    b.stages["stage1:k3.5s1:1"] = 2.0
    a.save(path)
    b.save(path)
    merged = LatencyTable.from_dict(json.loads(path.read_text()))
    assert {"stage5:k3.5s1:1", "stage1:k3.5s1:1"} <= set(merged.stages)
    with pytest.raises(LatencyError, match="version"):
        LatencyTable.from_dict({**a.to_dict(), "version": 0})
    # A version-1 table (an older run's config.json) predicted the plain sum of parts: resuming
    # that run keeps its numbers.
    old = {k: v for k, v in a.to_dict().items() if k != "overhead_ms"}
    v1 = LatencyTable.from_dict({**old, "version": 1})
    base = ArchSpec.default(BACKBONE)
    assert v1.overhead_ms == 0.0
    assert v1.predict(base) == pytest.approx(sum(ms for _, ms in a.parts(base)))


@pytest.mark.parametrize("backbone", [BACKBONE, "mobilenetv3_large_100"])
def test_table_parts_compose_the_whole_network(backbone):
    """What the table times (stem, each stage, head) is the whole network, nothing left out."""
    from mdsearch.mdconv import build, head_module, stem_module

    torch.manual_seed(0)
    model = build(ArchSpec.default(backbone)).eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        parts = head_module(model)(model.blocks(stem_module(model)(x)))
        torch.testing.assert_close(parts, model(x))


def test_format_arch_table_prints_latency_beside_flops(tmp_path, monkeypatch):
    from mdsearch.mdconv import format_arch_table

    monkeypatch.setenv("MDSEARCH_CACHE_DIR", str(tmp_path))
    spec = ArchSpec.default(BACKBONE, 2).with_stage(5, (3, 5), (1, 1))
    text = format_arch_table(spec, SIZE, latency=True, threads=1, timer=StubTimer())
    table = latency_table(BACKBONE, SIZE, threads=1)
    assert "latency_ms" in text and "flops_m" in text
    assert f"table predicts (torch): {table.predict(spec):.2f} ms/image" in text
    assert "measured (torch):" in text and "1 threads" in text
    stage5 = next(line for line in text.splitlines() if line.lstrip().startswith("stage5"))
    assert stage5.split()[-1] == f"{table.stages['stage5:k3.5s1:1']:.2f}"
    # The total row is the prediction (parts + overhead); rows without a time show "-".
    total = next(line for line in text.splitlines() if line.lstrip().startswith("total"))
    assert total.split()[-1] == f"{table.predict(spec):.2f}"
    classifier = next(line for line in text.splitlines() if line.lstrip().startswith("classif"))
    assert classifier.split()[-1] == "-" and "NaN" not in text
    assert "latency" not in format_arch_table(spec, SIZE)


def test_show_latency_on_a_missing_gpu_is_one_line_exit_2(capsys):
    from mdsearch.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["show", "paper", "--latency", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--device cuda: torch sees no CUDA" in err
