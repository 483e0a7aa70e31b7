"""Pareto front, hypervolume, knee and picks: checked against brute force on random tables."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from run_fixtures import FixtureTrial, make_run_folder

from mdsearch.results import (
    Objective,
    ResultsError,
    analyse_run,
    hypervolume,
    hypervolume_history,
    knee_index,
    non_dominated,
    parse_pick,
    resolve_objectives,
    select_pick,
)
from mdsearch.search import front_size, pareto_layers

AUC_FLOPS = resolve_objectives(["auc", "flops"])


def brute_non_dominated(p: np.ndarray) -> np.ndarray:
    """O(n^2) definition: no other point is <= everywhere and < somewhere."""
    le = np.all(p[None, :, :] <= p[:, None, :], axis=2)  # [i, j]: p[j] <= p[i]
    lt = np.any(p[None, :, :] < p[:, None, :], axis=2)
    return ~np.any(le & lt, axis=1)


def brute_hypervolume(p: np.ndarray, ref: np.ndarray) -> float:
    """Sum of the grid cells (cut at every coordinate) whose lower corner a point dominates."""
    p = p[np.all(p < ref, axis=1)]
    if len(p) == 0:
        return 0.0
    axes = [np.unique(np.append(p[:, j], ref[j])) for j in range(p.shape[1])]
    total = 0.0
    for cell in itertools.product(*[range(len(a) - 1) for a in axes]):
        low = np.array([a[i] for a, i in zip(axes, cell)])
        if np.any(np.all(p <= low, axis=1)):
            total += float(np.prod([a[i + 1] - a[i] for a, i in zip(axes, cell)]))
    return total


points_2d = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=60).map(
    lambda rows: np.array(rows, dtype=float)
)


@given(points_2d)
@settings(max_examples=200, deadline=None)
def test_front_2d_matches_brute_force_with_ties_and_duplicates(p):
    assert np.array_equal(non_dominated(p), brute_non_dominated(p))


@pytest.mark.parametrize("k", [3, 4])
def test_front_nd_matches_brute_force(k):
    rng = np.random.default_rng(k)
    for n in (1, 2, 7, 50, 600):  # 600 > one block of the n-D method
        p = rng.integers(0, 8, size=(n, k)).astype(float)  # small range: ties and duplicates
        assert np.array_equal(non_dominated(p), brute_non_dominated(p))
        c = rng.random((n, k))
        assert np.array_equal(non_dominated(c), brute_non_dominated(c))


def test_duplicates_of_a_front_point_all_stay_and_nan_rows_never_enter():
    p = np.array([[1.0, 1.0], [1.0, 1.0], [0.5, np.nan], [2.0, 0.5]])
    assert non_dominated(p).tolist() == [True, True, False, True]


@given(points_2d)
@settings(max_examples=100, deadline=None)
def test_pareto_layers_peel_fronts_in_order(p):
    """Layer 0 is the front; layer d the front of what layers < d leave; every row has one."""
    layer = pareto_layers(p)
    assert (layer >= 0).all()
    for d in range(layer.max() + 1):
        left = layer >= d
        assert np.array_equal(layer[left] == d, brute_non_dominated(p[left]))


def test_the_live_front_size_counts_the_front_of_the_objectives_as_optimised():
    values = [(0.70, 300.0), (0.80, 310.0), (0.60, 320.0), (0.80, 310.0)]
    assert front_size(values, ["max", "min"]) == 3  # the duplicate counts, (0.6, 320) is beaten
    assert front_size(values, ["min", "max"]) == 1  # other directions: (0.6, 320) beats all
    assert front_size([], ["max", "min"]) == 0
    assert pareto_layers(np.array([[np.nan, 1.0], [1.0, 1.0]])).tolist() == [-1, 0]


@given(points_2d)
@settings(max_examples=100, deadline=None)
def test_hypervolume_2d_matches_brute_force(p):
    ref = np.array([5.5, 7.0])  # some points lie beyond it and must add nothing
    assert hypervolume(p, ref) == pytest.approx(brute_hypervolume(p, ref))


def test_hypervolume_3d_matches_brute_force():
    rng = np.random.default_rng(3)
    for n in (1, 3, 8, 12):
        p = rng.integers(0, 5, size=(n, 3)).astype(float)
        ref = np.array([5.0, 4.5, 5.0])
        assert hypervolume(p, ref) == pytest.approx(brute_hypervolume(p, ref))
        q = rng.random((n, 3))
        assert hypervolume(q, np.ones(3)) == pytest.approx(brute_hypervolume(q, np.ones(3)))


def test_hypervolume_of_auc_and_flops_in_their_units():
    # Maximised AUC is negated: the box from (AUC 0.8, 1000 M) to the reference (0.5, 1500 M).
    table = pd.DataFrame({"auc": [0.8], "flops_m": [1000.0]})
    from mdsearch.results import default_reference, minimisation_matrix

    points = minimisation_matrix(table, AUC_FLOPS)
    ref = default_reference(points, AUC_FLOPS)
    assert ref.tolist() == pytest.approx([-0.5, 1100.0])
    assert hypervolume(points, [-0.5, 1500.0]) == pytest.approx(0.3 * 500)


def test_hypervolume_history_is_the_prefix_hypervolume_and_pools_groups():
    rng = np.random.default_rng(0)
    p = rng.random((30, 2))
    p[[4, 9]] = np.nan  # ineligible trials keep the previous value
    ref = np.array([1.1, 1.1])
    history = hypervolume_history(p, ref)
    for t in range(len(p)):
        assert history[t] == pytest.approx(hypervolume(p[: t + 1], ref))
    # Two rows of one group count as their mean: a bad second seed lowers the value.
    pooled = hypervolume_history(np.array([[0.0, 0.0], [1.0, 1.0]]), [2.0, 2.0], groups=["a", "a"])
    assert pooled.tolist() == pytest.approx([4.0, 2.25])
    # Many repeats (front members re-evaluated too) against a groupby of every prefix.
    q = rng.integers(0, 6, size=(80, 2)).astype(float)
    groups = rng.integers(0, 15, size=80)
    history = hypervolume_history(q, [7.0, 7.0], groups=groups)
    for t in range(len(q)):
        means = pd.DataFrame(q[: t + 1]).groupby(groups[: t + 1]).mean().to_numpy()
        assert history[t] == pytest.approx(hypervolume(means, [7.0, 7.0]))


def test_knee_is_the_corner_of_a_convex_front_and_ignores_units():
    front = np.array([[0.0, 10.0], [1.0, 2.0], [2.0, 1.0], [6.0, 0.5], [10.0, 0.0]])
    assert knee_index(front) == 1
    assert knee_index(front * [1000.0, 0.001]) == 1  # normalised axes: scale does not matter
    assert knee_index(np.vstack([front, [[5.0, 5.0]]])) == 1  # dominated points are no knee


def test_knee_without_a_bulge_is_the_member_nearest_the_ideal():
    assert knee_index(np.array([[0.0, 1.0], [1.0, 0.0]])) == 0  # tie: the first
    line = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])
    assert knee_index(line) == 1


def test_knee_in_three_objectives_lies_on_the_front():
    rng = np.random.default_rng(1)
    p = rng.random((200, 3))
    k = knee_index(p)
    assert non_dominated(p)[k]


def _front_table(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {
            "auc": rng.uniform(0.7, 0.8, 60).round(3),
            "flops_m": rng.uniform(1200, 1300, 60).round(0),
            "arch_id": [f"id{i:02d}" for i in range(60)],
        }
    )
    return table[non_dominated(table[["auc", "flops_m"]].to_numpy() * [-1, 1])]


@pytest.mark.parametrize("seed", range(5))
def test_constrained_picks_match_a_filter_of_the_front(seed):
    front = _front_table(seed)
    bound = float(front["flops_m"].median())
    chosen = front.loc[select_pick(front, f"flops<={bound:g}", AUC_FLOPS)]
    allowed = front[front["flops_m"] <= bound]
    assert chosen["auc"] == allowed["auc"].max() and chosen["flops_m"] <= bound
    target = float(front["auc"].median())
    chosen = front.loc[select_pick(front, f"auc >= {target:g}", AUC_FLOPS)]
    allowed = front[front["auc"] >= target]
    assert chosen["flops_m"] == allowed["flops_m"].min() and chosen["auc"] >= target


def test_pick_knee_and_combined_bounds():
    front = pd.DataFrame(
        {"auc": [0.70, 0.78, 0.79, 0.80], "flops_m": [1000, 1100, 1400, 2000]},
        index=["a", "b", "c", "d"],
    )
    assert select_pick(front, "knee", AUC_FLOPS) == "b"
    assert select_pick(front, "auc>=0.785, flops<1500", AUC_FLOPS) == "c"
    assert select_pick(front, "flops<=1500,best-flops", AUC_FLOPS) == "a"
    assert select_pick(front, "best-auc", AUC_FLOPS) == "d"


def test_pick_with_no_match_names_the_nearest_member():
    front = pd.DataFrame(
        {"auc": [0.70, 0.78], "flops_m": [1223.0, 1241.0], "arch_id": ["aaa", "bbb"]}
    )
    with pytest.raises(ResultsError, match=r"flops_m <= 1000.*nearest is aaa.*1223"):
        select_pick(front, "flops<=1000", AUC_FLOPS)
    with pytest.raises(ResultsError, match=r"nearest is bbb"):
        select_pick(front, "auc>=0.9", AUC_FLOPS)


@pytest.mark.parametrize(
    "text", ["", "flops=<1250", "flops<=", "flops<=12a", "auc>=0.7,", "size<=3", "knee,best-auc"]
)
def test_malformed_picks_raise_a_results_error(text):
    with pytest.raises(ResultsError):
        parse_pick(text, AUC_FLOPS)


def test_pick_parses_bounds_on_short_and_column_names():
    pick = parse_pick("FLOPS_M <= 1.25e3", AUC_FLOPS)
    assert (pick.constraints[0].column, pick.constraints[0].op) == ("flops_m", "<=")
    assert pick.constraints[0].value == 1250.0 and pick.target.column == "auc"
    assert parse_pick("auc>=0.78", AUC_FLOPS).target.column == "flops_m"


def test_unknown_or_too_few_objectives_are_refused():
    with pytest.raises(ResultsError, match="unknown objective"):
        resolve_objectives(["auc", "speed"])
    with pytest.raises(ResultsError, match="at least 2"):
        resolve_objectives(["auc"])


def test_a_third_objective_latency_enters_the_front(tmp_path):
    run = make_run_folder(
        tmp_path,
        [
            FixtureTrial((), 0.70, 1223.0),
            FixtureTrial((5,), 0.85, 1228.0),
            FixtureTrial((1,), 0.60, 1235.0),  # dominated in AUC and FLOPs, but fastest
        ],
    )
    table = pd.read_csv(run / "trials.csv")
    table["latency_ms"] = [5.0, 6.0, 3.0]
    table.to_csv(run / "trials.csv", index=False)
    two = analyse_run(run, n_resamples=0)
    three = analyse_run(run, objectives=["auc", "flops", "latency"], n_resamples=0)
    assert len(two.front) == 2 and len(three.front) == 3
    assert three.reference["latency_ms"] == pytest.approx(6.6)
    assert three.hypervolume > 0
    custom = Objective("latency_ms", "min", reference=10.0)
    assert analyse_run(run, objectives=["auc", custom], n_resamples=0).reference[
        "latency_ms"
    ] == pytest.approx(10.0)


def test_a_given_reference_point_is_used(tmp_path):
    run = make_run_folder(
        tmp_path, [FixtureTrial((), 0.70, 1223.0), FixtureTrial((5,), 0.85, 1228.0)]
    )
    default = analyse_run(run, n_resamples=0)
    assert default.reference == pytest.approx({"auc": 0.5, "flops_m": 1228.0 * 1.1})
    given = analyse_run(run, reference={"auc": 0.6, "flops": 1500}, n_resamples=0)
    assert given.reference == pytest.approx({"auc": 0.6, "flops_m": 1500.0})
    front = given.front
    want = hypervolume(np.column_stack([-front["auc"], front["flops_m"]]), [-0.6, 1500.0])
    assert given.hypervolume == pytest.approx(want)
    assert analyse_run(run, reference=[0.6, 1500], n_resamples=0).hypervolume == pytest.approx(want)
    with pytest.raises(ResultsError, match="3 values for 2 objectives"):
        analyse_run(run, reference=[0.6, 1500, 3], n_resamples=0)
