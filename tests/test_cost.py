"""FLOPs (multiply-adds of conv + linear, millions) and parameters: reference points, per-stage
rows, and the Table-1-like description."""

from __future__ import annotations

import pytest
import torch

from mdsearch.mdconv import arch_table, cost, format_arch_table
from mdsearch.space import ArchSpec, get_backbone

BASE = ArchSpec.default("mobilenetv2_100", num_classes=14)
PAPER = BASE.with_stage(5, (3, 5), (1, 1))
ALL_STRIDE2 = (
    PAPER.with_stage(1, (3, 5), (1, 1)).with_stage(2, (3, 5), (1, 1)).with_stage(3, (3, 5), (1, 1))
)


def test_mobilenetv2_reference_points():
    c448 = cost(BASE, 448)
    assert c448.flops_m == pytest.approx(1198, rel=0.01)
    assert c448.params_m == pytest.approx(2.24, rel=0.01)
    assert c448.input_size == 448 and c448.arch == BASE.canonical
    assert cost(BASE, 224).flops_m == pytest.approx(300, rel=0.01)


def test_mdconv_added_flops_match_the_paper_formula():
    """(25 - 9) * i5 * H * W extra multiply-adds per block, i5 = half the channels (1:1)."""
    base = cost(BASE, 448)
    layout = get_backbone("mobilenetv2_100")
    sizes = layout.map_sizes(448)

    def extra(stage: int) -> float:
        lay = layout.stages[stage]
        return sum(16 * (ch // 2) * sizes[stage] ** 2 for ch in lay.dw_channels) / 1e6

    added5 = cost(PAPER, 448).flops_m - base.flops_m
    assert added5 == pytest.approx(3.9, rel=0.01)
    assert added5 == pytest.approx(extra(5), abs=1e-6)
    added_all = cost(ALL_STRIDE2, 448).flops_m - base.flops_m
    assert added_all == pytest.approx(49.7, rel=0.01)
    assert added_all == pytest.approx(sum(extra(i) for i in (1, 2, 3, 5)), abs=1e-6)
    # Extra weights: (25 - 9) per 5x5 channel.
    assert cost(PAPER).params_m - base.params_m == pytest.approx(
        16 * (288 + 480 + 480) / 1e6, abs=1e-9
    )


@pytest.mark.parametrize("spec", [BASE, PAPER, ArchSpec.default("mobilenetv3_large_100", 3)])
def test_stage_rows_sum_to_totals(spec):
    c = cost(spec, 224)
    names = [r.name for r in c.stages]
    n = len(get_backbone(spec.backbone).stages)
    assert names == ["stem", *[f"stage{i}" for i in range(n)], "head", "classifier"]
    assert sum(r.flops_m for r in c.stages) == pytest.approx(c.flops_m, abs=1e-6)
    assert sum(r.params_m for r in c.stages) == pytest.approx(c.params_m, abs=1e-9)
    assert all(r.flops_m > 0 for r in c.stages if r.params_m > 0)
    # Linear classifier: in_features * classes multiply-adds.
    assert c.stage("classifier").flops_m == pytest.approx(1280 * spec.num_classes / 1e6)


def test_cost_leaves_the_torch_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    cost(ArchSpec.default("mobilenetv2_035", 7), 64)  # not cached yet: builds a network
    arch_table(ArchSpec.default("mobilenetv2_035", 7), 64)
    assert torch.equal(torch.rand(3), expected)


def test_cost_is_cached_and_rejects_bad_sizes():
    assert cost(BASE, 224) is cost(ArchSpec.parse(BASE.canonical), 224)
    with pytest.raises(ValueError, match="input size"):
        cost(BASE, 0)


def test_format_arch_table_for_the_paper_architecture():
    text = format_arch_table(PAPER, 448)
    assert PAPER.canonical in text and PAPER.arch_id in text
    assert "multiply-adds (conv+linear), millions, at 448x448" in text
    stage5 = next(line for line in text.splitlines() if line.strip().startswith("stage5"))
    assert "3x3+5x5 (1:1)" in stage5 and "288+288, 480+480 (x2)" in stage5
    total = next(line for line in text.splitlines() if line.strip().startswith("total"))
    assert f"{cost(PAPER, 448).flops_m:.1f}" in total and "1201.9" in total

    table = arch_table(PAPER, 448).set_index("layer")
    assert table.loc["stage3", "kernels"] == "3x3"
    assert table.loc["stage5", "n"] == 3 and table.loc["stage5", "out_channels"] == 160
    assert table.loc["total", "params_m"] == pytest.approx(cost(PAPER).params_m)
