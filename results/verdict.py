"""What a run found, in claims that survive selection: each front member, the knee and the
paper's network against the baseline, and each stage choice against the backbone's own kernel.

A search selects: the front members are the architectures that looked best, and on a proxy whose
seed noise is as large as the differences between placements, the best-looking of many single
runs is mostly lucky. A per-comparison interval applied to such a member is wrong far more often
than its stated 5% (the best of 16 single-seed networks with no real difference is called
"distinct" from the baseline about 13% of the time, the best of 60 about 26%). So a claim here is
estimated where the selection cannot bias it, and its interval covers every comparison made at
once:

- **Held-out seeds** (when the run has a confirmation phase): a front member's difference to the
  baseline is estimated on the seeds it was given *after* exploration (the ``confirm`` phase),
  never on the exploration seed(s) that put it on the front. The baseline and the paper's
  network are fixed in advance, so all their seeds count.
- **Paired on seeds** (common random numbers): repeat k of every architecture trains with the
  same seed (the same data order and augmentation), so AUC(arch, seed) = arch + seed + noise is
  fitted by least squares with both as fixed effects (statsmodels OLS); the shared seed effect
  (30-35% of the seed variance in the ground-truth tables) drops out of every difference.
- **Simultaneous intervals**: Bonferroni over the comparisons of one family (the architectures
  compared; the stage choices), so the chance that *any* interval of the family misses its true
  value is at most 5%, whichever member the search picked.
- **Without held-out seeds** (no confirmation phase, or an older run), the family is every
  evaluated architecture, all seeds counted: selection among them is then covered by the
  simultaneous level, at the price of wider intervals.

A difference whose interval excludes 0 is a claim ("beats the baseline by X [lo, hi]"); one
whose interval spans 0 is "no difference found", said with the size it excludes (the larger end
of the interval: effects beyond it are excluded at the family's level) and with the seeds per
side that would detect an effect of a given size (normal approximation, power 80%).

The intervals are over training seeds; the validation images' sampling noise of a paired
difference can be added per comparison (``image_var``), as the report does from the saved
predictions. ``tests/test_verdict.py`` checks the error rate on searches generated from noise
fitted to the real ground-truth tables (:mod:`mdsearch.results.noise_model`), with the claimed
member chosen because it looked best.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .stage_effects import StageEffect, StageEffectModel, fit_stage_effects

__all__ = [
    "Claim",
    "ArchVerdict",
    "arch_verdict",
    "family_critical",
    "paired_differences",
    "pooled_paired_sd",
    "run_verdict",
    "seeds_needed",
    "Verdict",
]

#: Power at which :func:`seeds_needed` sizes a comparison.
POWER = 0.8
#: Paired seeds a comparison needs before it can be judged (a t interval on fewer is fragile:
#: two differences that happen to agree make a narrow interval).
MIN_PAIRED = 3


@dataclass(frozen=True)
class Claim:
    """One comparison against the reference (the baseline, or the backbone's own kernel).

    Attributes:
        subject: what is compared (``knee``, ``front member``, ``paper's network``,
            ``MD-Conv (3,5) 1:1 in stage 1``).
        arch: the architecture's canonical string (None for a stage choice).
        estimate, low, high: the difference in AUC and its simultaneous interval (NaN when not
            estimated).
        seeds: the seeds the estimate uses on the compared side (held-out ones when the family
            is held out); trials carrying the choice, for a stage choice.
        outcome: ``better``, ``worse``, ``no difference``, ``untested`` (no held-out seed yet),
            ``unknown`` (no estimate of seed noise) or ``not identifiable`` (a stage whose maps at
            the proxy resolution are not larger than its kernels).
        reason: why it was not estimated (for ``untested``, ``unknown``, ``not identifiable``).
    """

    subject: str
    arch: str | None
    estimate: float = float("nan")
    low: float = float("nan")
    high: float = float("nan")
    seeds: int = 0
    outcome: str = "untested"
    reason: str = ""

    @property
    def decided(self) -> bool:
        """Whether the interval excludes 0 (a claim)."""
        return self.outcome in ("better", "worse")

    @property
    def excluded(self) -> float:
        """Effects beyond this size are excluded at the family's level (NaN: no interval)."""
        return float(max(abs(self.low), abs(self.high)))

    def interval_text(self) -> str:
        """``+0.012 [+0.003, +0.021]``."""
        return f"{self.estimate:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


@dataclass(frozen=True)
class ArchVerdict:
    """The architecture comparisons of one run.

    Attributes:
        claims: one per compared architecture (the knee first).
        heldout: whether the front members were estimated on held-out seeds.
        family: comparisons in the Bonferroni family.
        level: the family's coverage.
        paired_sd: SD of one paired seed difference (sqrt 2 x the two-way model's residual SD);
            NaN when unknown.
        df: residual degrees of freedom of the two-way model.
        notes: what could not be done.
    """

    claims: tuple[Claim, ...]
    heldout: bool
    family: int
    level: float
    paired_sd: float
    df: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    def method(self) -> str:
        """One sentence: how the claims were estimated."""
        if self.heldout:
            how = (
                "front members estimated on their held-out confirmation seeds only (the seeds "
                "that put them on the front are left out)"
            )
        else:
            how = (
                "no held-out seeds, so every evaluated architecture is in the family and all "
                "seeds count"
            )
        return (
            f"differences to the baseline paired on training seeds (least squares with "
            f"architecture and seed effects); {how}; simultaneous {self.level:.0%} intervals "
            f"(Bonferroni over {self.family} comparison{'s' * (self.family != 1)})"
        )


def family_critical(level: float, family: int, df: float | None = None) -> float:
    """Two-sided critical value of one comparison in a Bonferroni family of ``family``.

    Example:
        >>> round(family_critical(0.95, 1), 2), round(family_critical(0.95, 10), 2)
        (1.96, 2.81)
    """
    q = 1 - (1 - level) / (2 * max(1, family))
    return float(stats.norm.ppf(q) if df is None or not np.isfinite(df) else stats.t.ppf(q, df))


def seeds_needed(
    effect: float, paired_sd: float, *, level: float = 0.95, family: int = 1
) -> int | None:
    """Seeds per side (paired) to detect ``effect`` with power :data:`POWER` at the family's
    level: ``((z_level + z_power) * paired_sd / effect)^2``; None when ``paired_sd`` is unknown.

    Example:
        >>> seeds_needed(0.01, 0.024)
        46
    """
    if not np.isfinite(paired_sd) or paired_sd <= 0 or effect <= 0:
        return None
    z = family_critical(level, family) + stats.norm.ppf(POWER)
    return max(2, math.ceil((z * paired_sd / effect) ** 2))


def paired_differences(trials: pd.DataFrame, arch: str, baseline: str) -> pd.Series:
    """AUC(arch, seed) - AUC(baseline, seed) over the seeds both were trained with (a seed
    trained twice counts its mean), indexed by seed."""
    table = _seed_table(trials)
    if arch not in table.index or baseline not in table.index:
        return pd.Series(dtype=float)
    return (table.loc[arch] - table.loc[baseline]).dropna()


def _seed_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Mean AUC per architecture (rows) and seed (columns)."""
    return trials.pivot_table(index="arch", columns="seed", values="auc", aggfunc="mean")


def _outcome(low: float, high: float) -> str:
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "no difference"


def arch_verdict(
    trials: pd.DataFrame,
    *,
    baseline: str,
    compared: Mapping[str, str],
    fixed: Sequence[str] = (),
    level: float = 0.95,
    image_var: Mapping[str, float] | None = None,
) -> ArchVerdict:
    """Compare architectures with the baseline, honest about how they were selected.

    Each comparison is a paired t interval over the seeds both sides were trained with, on the
    larger of the differences' own spread (an architecture noisier than the rest, as the
    best-looking one often is, gets the wider interval it needs) and the run's pooled paired-seed
    SD (three differences that happen to agree do not make a narrow interval); degrees of freedom
    are the comparison's own (seeds - 1).

    Args:
        trials: one row per finished stand-alone trial: ``arch``, ``seed``, ``auc`` and, when the
            run had a confirmation phase, ``phase`` (``explore`` / ``confirm``).
        baseline: the baseline's canonical string.
        compared: architecture -> subject (``knee``, ``front member``...), in report order.
        fixed: the compared architectures chosen before the search (the paper's network): all
            their seeds count, as the baseline's do.
        level: the family's coverage.
        image_var: architecture -> variance of its paired difference to the baseline over the
            validation images (added to the seed part).

    Returns:
        An :class:`ArchVerdict`; a claim is ``untested`` when its architecture has no held-out
        seed paired with the baseline yet and ``unknown`` with one only (no spread to judge by).

    Example:
        >>> t = pd.DataFrame({"arch": ["b", "a"] * 3, "seed": [0, 0, 1, 1, 2, 2],
        ...                   "auc": [0.70, 0.75, 0.71, 0.77, 0.69, 0.74]})
        >>> v = arch_verdict(t, baseline="b", compared={"a": "knee"})
        >>> v.claims[0].outcome, v.claims[0].interval_text()
        ('better', '+0.053 [+0.039, +0.068]')
    """
    data = trials[["arch", "seed", "auc"] + (["phase"] if "phase" in trials else [])].copy()
    data["auc"] = pd.to_numeric(data["auc"], errors="coerce")
    data["seed"] = pd.to_numeric(data["seed"], errors="coerce")
    data = data.dropna(subset=["auc", "seed"])
    heldout = "phase" in data and bool((data["phase"] == "confirm").any())
    fixed_set = set(fixed) | {baseline}
    notes: list[str] = []
    if baseline not in set(data["arch"]):
        notes.append("the baseline was not evaluated: nothing is compared with it")
    everything = _seed_table(data)
    confirmed = _seed_table(data[data["phase"] == "confirm"]) if heldout else everything
    base = everything.loc[baseline] if baseline in everything.index else None
    diffs: dict[str, pd.Series] = {}
    for arch in compared:
        if arch == baseline:
            continue
        own = everything if not heldout or arch in fixed_set else confirmed
        if base is None or arch not in own.index:
            diffs[arch] = pd.Series(dtype=float)
        else:
            diffs[arch] = (own.loc[arch] - base).dropna()
    if heldout:
        family = max(1, sum(len(d) >= MIN_PAIRED for d in diffs.values()))
    else:
        family = max(1, data["arch"].nunique() - 1)
    pooled = pooled_paired_sd(everything, baseline)
    claims = []
    for arch, subject in compared.items():
        if arch == baseline:
            continue
        d = diffs[arch]
        n = len(d)
        if n == 0:
            claims.append(Claim(subject, arch, reason="no seed paired with the baseline yet"))
            continue
        if n < MIN_PAIRED:
            claims.append(
                Claim(
                    subject,
                    arch,
                    float(d.mean()),
                    seeds=n,
                    outcome="unknown",
                    reason=f"{n} paired seed{'s' * (n > 1)}: a claim needs {MIN_PAIRED}",
                )  # fmt: skip
            )
            continue
        est = float(d.mean())
        # A few differences that happen to agree make a narrow interval: the spread used is at
        # least the run's pooled paired-seed SD (a noisier member keeps its own, larger one).
        sd = max(float(d.std(ddof=1)), pooled if np.isfinite(pooled) else 0.0)
        var = sd**2 / n + float((image_var or {}).get(arch, 0.0))
        half = family_critical(level, family, n - 1) * np.sqrt(var)
        claims.append(
            Claim(subject, arch, est, est - half, est + half, n, _outcome(est - half, est + half))
        )
    return ArchVerdict(
        tuple(claims),
        heldout,
        family,
        level,
        pooled,
        0,
        tuple(notes),
    )


def pooled_paired_sd(table: pd.DataFrame, baseline: str) -> float:
    """SD of one paired seed difference to the baseline, pooled over every architecture with
    at least two seeds in common with it (NaN when none has).

    Args:
        table: mean AUC per architecture (rows) and seed (columns), or a trial table.
    """
    if "arch" in table.columns:
        table = _seed_table(table)
    if baseline not in table.index:
        return float("nan")
    d = table.drop(index=baseline) - table.loc[baseline]
    n = d.notna().sum(axis=1)
    d = d[n > 1]
    if d.empty:
        return float("nan")
    ss = float(((d.sub(d.mean(axis=1), axis=0)) ** 2).sum().sum())
    df = int((n[n > 1] - 1).sum())
    return float(np.sqrt(ss / df))


@dataclass(frozen=True)
class Verdict:
    """What a run found: its front on raw means, the architecture claims and the stage table.

    Attributes:
        archs: the knee, the other front members and the paper's network against the baseline.
        stages: the stage-effect model (simultaneous intervals; None when it cannot be fitted).
        front: the front's architectures, cheapest first (ranked on raw means over seeds: the
            estimate the claims use too).
        knee: the knee's architecture (None without a front).
        baseline, paper: canonical strings ("" when not evaluated).
        trials: stand-alone trials the verdict rests on.
        costs: architecture -> its cost (FLOPs in M multiply-adds at the run's input size).
    """

    archs: ArchVerdict
    stages: StageEffectModel | None
    front: tuple[str, ...]
    knee: str | None
    baseline: str
    paper: str
    trials: int
    costs: Mapping[str, float] = field(default_factory=dict)

    def claim(self, arch: str) -> Claim | None:
        """The claim about ``arch`` (None when it was not compared)."""
        return next((c for c in self.archs.claims if c.arch == arch), None)

    def stage_claims(self) -> list[StageEffect]:
        """The stage choices whose simultaneous interval excludes 0."""
        return [e for e in (self.stages.effects if self.stages else ()) if e.excludes_zero]


def run_verdict(
    trials: pd.DataFrame,
    *,
    baseline: str,
    paper: str = "",
    cost: str = "flops_m",
    unidentifiable: Mapping[int, str] | None = None,
    level: float = 0.95,
    image_var: Mapping[str, float] | None = None,
) -> Verdict:
    """The verdict of a run's finished stand-alone trials.

    Args:
        trials: ``arch``, ``seed``, ``auc``, the ``cost`` column and (with a confirmation phase)
            ``phase``, one row per finished trial.
        baseline, paper: canonical strings of the references (``paper`` may be absent).
        cost: the cost objective's column.
        unidentifiable: stage -> why the proxy cannot see it (no interval for its choices).
        level: coverage of each family's simultaneous intervals.
        image_var: architecture -> image-sampling variance of its difference to the baseline.
    """
    from .pareto import knee_index, non_dominated

    pooled = trials.groupby("arch").agg(auc=("auc", "mean"), cost=(cost, "first"))
    points = np.column_stack([-pooled["auc"].to_numpy(float), pooled["cost"].to_numpy(float)])
    on_front = non_dominated(points)
    front = pooled[on_front].sort_values(["cost", "auc"], ascending=[True, False])
    knee = str(pooled.index[on_front][knee_index(points[on_front])]) if on_front.any() else None
    compared: dict[str, str] = {}
    if knee is not None and knee != baseline:
        compared[knee] = "knee"
    for arch in front.index:
        if arch not in compared and arch != baseline:
            compared[arch] = "front member"
    if "phase" in trials:  # every raced candidate gets its claim, on the front or not
        for arch in dict.fromkeys(trials.loc[trials["phase"] == "confirm", "arch"]):
            if arch != baseline:
                compared.setdefault(arch, "candidate")
    if paper and paper in pooled.index and paper != baseline:
        compared.setdefault(paper, "paper's network")
    archs = arch_verdict(
        trials,
        baseline=baseline,
        compared=compared,
        fixed=[paper] if paper else [],
        level=level,
        image_var=image_var,
    )
    stages = None
    if pooled.shape[0] > 2:
        try:
            stages = fit_stage_effects(trials, level=level, unidentifiable=unidentifiable)
        except ValueError:
            stages = None
    return Verdict(
        archs,
        stages,
        tuple(str(a) for a in front.index),
        knee,
        baseline if baseline in pooled.index else "",
        paper if paper in pooled.index else "",
        len(trials),
        {str(a): float(c) for a, c in pooled["cost"].items()},
    )
