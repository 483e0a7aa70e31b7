"""ArchSpec / StageSpec forms, normalisation, validation, and search spaces."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mdsearch.space import (
    BACKBONES,
    ArchSpec,
    ArchSpecError,
    SpaceError,
    StageSpec,
    load_space,
)

PAPER_ARCH = "mobilenetv2_100:c14:k3,k3,k3,k3,k3,k3.5s1:1,k3"


@st.composite
def stage_specs(draw, has_dw: bool) -> StageSpec:
    if not has_dw:
        return StageSpec(())
    kernels = draw(st.lists(st.sampled_from([3, 5, 7, 9]), min_size=1, max_size=3, unique=True))
    split = draw(st.lists(st.integers(0, 6), min_size=len(kernels), max_size=len(kernels)))
    assume(any(split))
    return StageSpec(tuple(kernels), tuple(split))


@st.composite
def arch_specs(draw) -> ArchSpec:
    backbone = draw(st.sampled_from(sorted(BACKBONES)))
    layout = BACKBONES[backbone]
    stages = tuple(draw(stage_specs(bool(s.dw_channels))) for s in layout.stages)
    num_classes = draw(st.integers(1, 20))
    try:
        return ArchSpec(backbone, num_classes, stages)
    except ArchSpecError:
        assume(False)  # a split leaving an empty group at this width: not a valid spec


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(arch_specs())
def test_canonical_and_json_round_trip(spec):
    assert ArchSpec.parse(spec.canonical) == spec
    assert ArchSpec.parse(spec.canonical).canonical == spec.canonical
    assert ArchSpec.from_json(spec.to_json()) == spec
    assert ArchSpec.load(spec.canonical) == spec
    assert ArchSpec.load(spec.to_json(indent=None)) == spec
    data = json.loads(spec.to_json())
    assert data["arch"] == spec.canonical and data["id"] == spec.arch_id
    for stage in spec.stages:
        assert StageSpec.parse(stage.token) == stage


def test_load_from_path(tmp_path):
    spec = ArchSpec.parse(PAPER_ARCH)
    path = tmp_path / "arch.json"
    path.write_text(spec.to_json())
    assert ArchSpec.load(path) == spec
    assert ArchSpec.load(str(path)) == spec
    with pytest.raises(ArchSpecError, match="cannot read"):
        ArchSpec.load(tmp_path / "missing.json")
    path.write_text("{not json")
    with pytest.raises(ArchSpecError, match="not valid JSON"):
        ArchSpec.load(path)


def test_from_dict_rejects_inconsistent_or_incomplete_json():
    data = ArchSpec.parse(PAPER_ARCH).to_dict()
    data["arch"] = ArchSpec.default("mobilenetv2_100").canonical
    with pytest.raises(ArchSpecError, match="inconsistent"):
        ArchSpec.from_dict(data)
    with pytest.raises(ArchSpecError, match="lacks or mistypes"):
        ArchSpec.from_dict({"backbone": "mobilenetv2_100", "num_classes": 14})


@pytest.mark.parametrize(
    "given_kernels,given_split,kernels,split,token",
    [
        ((3, 5), (2, 2), (3, 5), (1, 1), "k3.5s1:1"),
        ((5, 3), (1, 3), (3, 5), (3, 1), "k3.5s3:1"),
        ((3, 5), (0, 1), (5,), (1,), "k5"),
        ((3, 5), (4, 0), (3,), (1,), "k3"),
        ((7, 3, 5), (2, 4, 6), (3, 5, 7), (2, 3, 1), "k3.5.7s2:3:1"),
        ((3, 5), (), (3, 5), (1, 1), "k3.5s1:1"),
    ],
)
def test_stage_normalisation(given_kernels, given_split, kernels, split, token):
    stage = StageSpec(given_kernels, given_split)
    assert (stage.kernels, stage.split, stage.token) == (kernels, split, token)
    assert StageSpec.parse(token) == stage


def test_parse_normalises_too():
    assert StageSpec.parse("k5.3s2:4").token == "k3.5s2:1"
    assert StageSpec.parse("k3.5s0:1") == StageSpec((5,))
    base = ArchSpec.default("mobilenetv2_100")
    assert ArchSpec.parse("mobilenetv2_100:c14:k3,k3,k3,k3,k3,k5.3s2:2,k3").canonical == PAPER_ARCH
    assert base.with_stage(5, (5, 3), (3, 3)).canonical == PAPER_ARCH


def test_arch_id_is_stable():
    # Pinned: run folders, trial tables and exports are keyed by it.
    assert ArchSpec.parse(PAPER_ARCH).arch_id == "cfcfd0fd2e"
    assert ArchSpec.default("mobilenetv2_100").arch_id == ArchSpec.default().arch_id
    assert ArchSpec.default().arch_id != ArchSpec.parse(PAPER_ARCH).arch_id
    assert len({ArchSpec.default(b).arch_id for b in BACKBONES}) == len(BACKBONES)


@pytest.mark.parametrize(
    "text,message",
    [
        ("resnet50:c14:k3,k3,k3,k3,k3,k3,k3", "unknown backbone"),
        ("mobilenetv2_100:c14:k3,k3,k3", "has 7 stages"),
        ("mobilenetv2_035:c14:k3.5.7s1:1:30,k3,k3,k3,k3,k3,k3", "0 of its 16"),
        ("mobilenetv2_100:c14:k1.3s1:1,k3,k3,k3,k3,k3,k3", "kernel size 1"),
        ("mobilenetv2_100:c14:k3,k4,k3,k3,k3,k3,k3", "kernel size 4"),
        ("mobilenetv2_100:c14:k3,k3,x3,k3,k3,k3,k3", "not of the form"),
        ("mobilenetv2_100:c14:k3,k3,k3.5s1,k3,k3,k3,k3", "has 1 parts"),
        ("mobilenetv2_100:c14:k3,k3,k3s2,k3,k3,k3,k3", "single kernel"),
        ("mobilenetv2_100:c14:k3,k3,k3.3s1:1,k3,k3,k3,k3", "repeat"),
        ("mobilenetv2_100:c14:k3,k3,k3,k3,k3,k3,-", "has a depthwise conv"),
        ("mobilenetv3_large_100:c14:k3,k3,k5,k3,k3,k5,k3", "no depthwise conv"),
        ("mobilenetv2_100:c0:k3,k3,k3,k3,k3,k3,k3", "positive integer"),
        ("mobilenetv2_100:14:k3,k3,k3,k3,k3,k3,k3", "not an architecture string"),
    ],
)
def test_invalid_specs_raise_one_line_errors(text, message):
    with pytest.raises(ArchSpecError, match=message) as info:
        ArchSpec.load(text)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_with_stage_rejects_missing_stage():
    with pytest.raises(ArchSpecError, match="stage9"):
        ArchSpec.default().with_stage(9, (3, 5))


# -- search spaces --------------------------------------------------------------------------
def test_presets():
    paper = load_space("paper")
    assert paper.size == 16 and paper.searched_stages == (1, 2, 3, 5)
    assert list(paper.distributions()) == ["stage1", "stage2", "stage3", "stage5"]
    default = load_space("default")
    n_dw = sum(1 for s in BACKBONES["mobilenetv2_100"].stages if s.dw_channels)
    assert default.size == 4**n_dw
    small = load_space("default", backbone="mobilenetv3_small_100")
    assert small.backbone == "mobilenetv3_small_100" and small.size == 4**5


def test_the_default_space_searches_only_the_stages_its_proxy_can_see():
    """At 64 px stages 3-6 run on 4x4 or 2x2 maps, no larger than a 5x5 kernel: the default
    space holds them at 3x3 and says why; a space file keeps every stage unless it asks."""
    at64 = load_space("default", resolution=64)
    assert at64.searched_stages == (0, 1, 2) and at64.size == 64
    assert [stage for stage, _ in at64.held] == [3, 4, 5, 6]
    assert "4x4, not larger than its 5x5" in dict(at64.held)[3]
    assert "held     k3   (at 64 px its maps are 2x2" in at64.describe()
    assert load_space("default", resolution=96).searched_stages == (0, 1, 2, 3, 4)
    assert load_space("default", resolution=224).size == 4**7
    assert load_space("every-stage", resolution=64).size == 4**7  # asked for: every stage
    with pytest.raises(SpaceError, match="use a larger --resolution"):
        load_space("default", resolution=4)


def test_paper_space_decode_encode_round_trip():
    paper = load_space("paper")
    archs = list(paper)
    assert len({a.canonical for a in archs}) == 16
    for arch in archs:
        params = paper.encode(arch)
        assert paper.decode(params) == arch
        for name, value in params.items():
            assert value in paper.distributions()[name].choices
    assert ArchSpec.parse(PAPER_ARCH) in archs
    with pytest.raises(SpaceError, match="not in space"):
        paper.encode(ArchSpec.default().with_stage(4, (3, 5)))
    with pytest.raises(SpaceError, match="not in space"):
        paper.decode({"stage1": "k3", "stage2": "k3", "stage3": "k3", "stage5": "k3.5s1:3"})


def test_reference_points():
    base, md = ArchSpec.default(), ArchSpec.parse(PAPER_ARCH)
    assert load_space("paper").reference_points() == [base, md]
    assert load_space("default").reference_points() == [base, md]
    assert load_space("paper").reference_points(num_classes=2)[1].num_classes == 2


@pytest.mark.parametrize(
    "text,message",
    [
        ("stages: {5: [base, k3.5s1:1]}\nkernels: [3]\n", "unknown key"),
        ("stages: {9: [base, k3.5s1:1]}\n", "do not exist"),
        ("stages: {5: [base, k3.5x1:1]}\n", "stage5"),
        ("stages: {5: k3.5s1:1}\n", "non-empty list"),
        ("stages: {5: [base]}\n", "nothing to search"),
        ("stages: {5: [base, k3]}\n", "nothing to search"),
        ("- base\n- k3.5s1:1\n", "must be a mapping"),
        ("stages: [5, [base]]\n", "must map stage numbers"),
        ("backbone: resnet50\nevery_stage: [base, k5]\n", "unknown backbone"),
        ("stages: {5: [base, k3.5s1:1]\n", "not valid YAML"),
    ],
)
def test_invalid_space_files(tmp_path, text, message):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError, match=message) as info:
        load_space(path)
    assert "\n" not in str(info.value)


def test_unknown_preset_and_missing_file(tmp_path):
    with pytest.raises(SpaceError, match="unknown space 'papr'"):
        load_space("papr")
    with pytest.raises(SpaceError, match="cannot read"):
        load_space(tmp_path / "nope.yaml")


def test_json_space_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"stages": {"stage2": ["base", "k5"], "3": ["k3", "k3.5s1:3"]}}))
    space = load_space(path)
    assert space.searched_stages == (2, 3) and space.size == 4
    assert space.name == "s.json"
