"""The additive stage-effect model recovers known effects, its intervals cover them, and it
says when architectures do not add up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mdsearch.results import choice_label, fit_stage_effects
from mdsearch.space import ArchSpec, StageSpec, load_space

ARCHS = [a.canonical for a in load_space("paper").enumerate(num_classes=3)]
EFFECTS = {1: 0.012, 5: -0.006}  # MD-Conv (3,5) 1:1 in stage 1 helps, in stage 5 hurts


def _trials(rng, *, seeds=2, seed_sd=0.01, interaction=0.0):
    rows = []
    for arch in ARCHS:
        stages = ArchSpec.parse(arch).stages
        md = [k for k, s in enumerate(stages) if len(s.kernels) > 1]
        mu = 0.75 + sum(EFFECTS.get(k, 0.0) for k in md)
        if interaction and {2, 3} <= set(md):
            mu += interaction
        rows += [{"arch": arch, "auc": mu + rng.normal(0, seed_sd)} for _ in range(seeds)]
    return pd.DataFrame(rows)


def test_choice_labels():
    assert choice_label(StageSpec.parse("k3.5s1:3")) == "MD-Conv (3,5) 1:3"
    assert choice_label(StageSpec.parse("k5")) == "5x5"


def test_recovers_known_effects_and_intervals_cover():
    rng = np.random.default_rng(0)
    covered = []
    for _ in range(30):
        model = fit_stage_effects(_trials(rng))
        for effect in model.effects:
            covered.append(effect.low <= EFFECTS.get(effect.stage, 0.0) <= effect.high)
    assert 0.88 <= np.mean(covered) <= 1.0
    table = model.table().set_index("stage")
    assert table.loc[1, "effect"] == pytest.approx(0.012, abs=0.008)
    assert table.loc[1, "archs"] == 8
    assert "in stage 1: +0.0" in str(model.effects[0])
    assert not model.misses_interactions


def test_shrinks_a_lucky_single_run_toward_its_stages():
    rng = np.random.default_rng(1)
    trials = _trials(rng, seeds=3)
    lucky = ArchSpec.parse(ARCHS[3]).canonical
    trials = pd.concat(
        [trials[trials["arch"] != lucky], pd.DataFrame([{"arch": lucky, "auc": 0.80}])]
    )
    est = fit_stage_effects(trials).estimates.loc[lucky]
    assert est["mean"] == pytest.approx(0.80)
    assert est["predicted"] < est["shrunk"] < est["mean"]


def test_says_when_stages_do_not_add_up():
    rng = np.random.default_rng(2)
    model = fit_stage_effects(_trials(rng, seeds=3, seed_sd=0.003, interaction=0.04))
    assert model.misses_interactions
    assert "do not add up" in model.fit_text()


def test_without_repeats_falls_back_to_least_squares():
    model = fit_stage_effects(_trials(np.random.default_rng(3), seeds=1))
    assert not model.shrinks and "least squares" in model.notes[0]
    assert np.allclose(model.estimates["shrunk"], model.estimates["mean"])


def test_a_choice_that_always_comes_with_another_is_not_estimated():
    # Stage 2 carries MD-Conv exactly when stage 3 does: their effects cannot be told apart.
    rng = np.random.default_rng(4)
    trials = _trials(rng, seeds=2)
    stages = trials["arch"].map(lambda a: ArchSpec.parse(a).stages)
    together = stages.map(lambda s: len(s[2].kernels) == len(s[3].kernels))
    model = fit_stage_effects(trials[together])
    assert model.shrinks
    assert [e.stage for e in model.effects] == [1, 2, 5]
    assert any("stage 3 is not separable" in n for n in model.notes)


def test_confirmation_trials_are_left_out_of_the_table():
    """The race repeats the members that looked best on exploration; the table is fitted on the
    exploration trials only, and says so (benchmarks/results/2026-12-02-stage-table-...)."""
    rng = np.random.default_rng(4)
    explored = _trials(rng).assign(phase="explore")
    raced = pd.DataFrame([{"arch": ARCHS[5], "auc": 0.95, "phase": "confirm"}] * 6)
    both = fit_stage_effects(pd.concat([explored, raced]))
    alone = fit_stage_effects(explored)
    assert [e.estimate for e in both.effects] == pytest.approx([e.estimate for e in alone.effects])
    assert any("exploration trials" in n for n in both.notes)
    assert not any("exploration trials" in n for n in alone.notes)
