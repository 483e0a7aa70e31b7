"""Where MD-Conv pays off, from every explored architecture at once: an additive model of AUC on
the per-stage choices (the paper's Table 4 question), and estimates of each architecture shrunk
toward it.

The model (statsmodels ``MixedLM``, REML)::

    AUC(arch a, seed s) = b0 + sum over stages k of b[k, choice_k(a)] + g_s + r_a + e_as
        b0       the AUC of the baseline (every stage at the backbone's own kernel)
        b[k, c]  the effect of choice c in stage k against the backbone's own kernel there
        g_s      the seed's effect, shared by every architecture trained with it (repeat k of
                 every architecture trains with the same seed: the same data order and
                 augmentation), fitted when seeds are shared
        r_a      what the additive model misses for architecture a (interactions), variance tau^2
        e_as     seed noise, variance sigma^2

Intervals of the effects are Wald intervals from the fit, **simultaneous over the table**
(Bonferroni over its effects, so the chance that any interval of the table misses is at most
1 - level: 20 effects at 95% each would otherwise give about one false "excludes 0" per run). A
stage whose feature maps at the proxy resolution are not larger than its largest kernel (given by
the caller) gets no interval: 3x3 and 5x5 are the same function there, and an "effect" is noise.

A run with a confirmation phase is fitted on its exploration trials only. The race gives its
seeds to the members that looked best on exploration, so those rows are an adaptive sample of a
few architectures; fitted with them, the table called a null effect real in 18 of 220 replayed
searches (8% at a stated 5%), on exploration trials alone in 1 of 80, with the same power for a
planted +0.01 AUC (10 of 40 either way): the race's seeds fall on a handful of architectures
and add little to a stage contrast
(``benchmarks/results/2026-12-02-stage-table-exploration-only.txt``). Those seeds serve the verdict's claims about the members instead (:mod:`.verdict`).

Each architecture's empirical-Bayes
estimate is its model prediction plus its shrunk deviation (the best linear unbiased predictor of
r_a): an architecture seen once with a lucky run is pulled toward what its stages predict, one
seen with many seeds keeps its own mean. The leave-one-architecture-out error of the additive
part (predicting each architecture's mean from all the others) is reported beside the noise a
perfect model would still have, and a fit whose error exceeds that noise by half again is
reported as missing interactions.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mdsearch.space import ArchSpec, StageSpec

__all__ = ["StageEffect", "StageEffectModel", "choice_label", "fit_stage_effects"]

#: Leave-one-architecture-out error above this multiple of the noise-only error: interactions.
MISFIT_RATIO = 1.5


def choice_label(stage: StageSpec) -> str:
    """How a report names a stage choice: ``3x3``, ``MD-Conv (3,5) 1:3``, ``5x5``, ``none``."""
    if not stage.kernels:
        return "none"
    if len(stage.kernels) == 1:
        k = stage.kernels[0]
        return f"{k}x{k}"
    kernels = ",".join(str(k) for k in stage.kernels)
    return f"MD-Conv ({kernels}) {':'.join(str(p) for p in stage.split)}"


@dataclass(frozen=True)
class StageEffect:
    """The fitted effect of one stage choice against the backbone's own kernel in that stage.

    Attributes:
        stage: stage index (Table 1 numbering).
        token: the choice as an architecture-string token (``k3.5s1:3``).
        label: its report name (``MD-Conv (3,5) 1:3``).
        estimate, low, high: AUC difference and its simultaneous interval (NaN for a stage that
            is not identifiable).
        n_archs: architectures (with at least one completed trial) carrying this choice.
        se: standard error of the estimate.
        trials: trials carrying this choice.
        identifiable: False for a stage the proxy cannot see (see the module docstring).
    """

    stage: int
    token: str
    label: str
    estimate: float
    low: float
    high: float
    n_archs: int
    se: float = float("nan")
    trials: int = 0
    identifiable: bool = True

    @property
    def excludes_zero(self) -> bool:
        """Whether the simultaneous interval excludes 0 (a claim)."""
        return bool(self.identifiable and (self.low > 0 or self.high < 0))

    def __str__(self) -> str:
        if not self.identifiable:
            return f"{self.label} in stage {self.stage}: not identifiable"
        return (
            f"{self.label} in stage {self.stage}: {self.estimate:+.3f} "
            f"[{self.low:+.3f}, {self.high:+.3f}]"
        )


@dataclass(frozen=True)
class StageEffectModel:
    """The fitted additive model of a run.

    Attributes:
        effects: one per searched stage choice that differs from the backbone's own kernel.
        intercept: predicted AUC of the baseline.
        seed_sd: sigma, seed noise of one run (from the fit).
        arch_sd: tau, spread of architectures around the additive model.
        loao_rmse: leave-one-architecture-out RMSE of architecture means (NaN: too few).
        noise_rmse: the RMSE seed noise alone would give there (a perfect additive model).
        estimates: per architecture string: ``mean`` (raw mean over seeds), ``n`` (seeds),
            ``predicted`` (additive part), ``shrunk`` (empirical-Bayes estimate).
        level: interval coverage, simultaneous over the table's identifiable effects.
        family: how many effects share that coverage (Bonferroni).
        seed_effects: whether the fit has a shared effect per seed (common random numbers).
        shrinks: whether the mixed model was fitted, so that ``shrunk`` differs from ``mean``
            (False: least squares on the means, nothing shrunk).
        notes: what the fit could not do (e.g. fell back to least squares).
    """

    effects: tuple[StageEffect, ...]
    intercept: float
    seed_sd: float
    arch_sd: float
    loao_rmse: float
    noise_rmse: float
    estimates: pd.DataFrame
    level: float
    shrinks: bool = False
    notes: tuple[str, ...] = ()
    family: int = 1
    seed_effects: bool = False

    @property
    def misses_interactions(self) -> bool:
        """Whether architectures differ from the additive prediction by more than noise."""
        return bool(
            np.isfinite(self.loao_rmse)
            and np.isfinite(self.noise_rmse)
            and self.loao_rmse > MISFIT_RATIO * self.noise_rmse
        )

    def table(self) -> pd.DataFrame:
        """One row per effect: stage, choice, estimate, low, high, architectures."""
        return pd.DataFrame(
            [
                {
                    "stage": e.stage,
                    "choice": e.label,
                    "token": e.token,
                    "effect": e.estimate,
                    "low": e.low,
                    "high": e.high,
                    "archs": e.n_archs,
                    "identifiable": e.identifiable,
                }
                for e in self.effects
            ],
            columns=["stage", "choice", "token", "effect", "low", "high", "archs", "identifiable"],
        )

    def fit_text(self) -> str:
        """One or two sentences on how well the additive model fits."""
        if not np.isfinite(self.loao_rmse):
            return "Too few architectures to check the additive model out of sample."
        text = (
            f"Leave-one-architecture-out error of the additive model: {self.loao_rmse:.4f} AUC "
            f"(noise alone would give {self.noise_rmse:.4f}; seed SD {self.seed_sd:.4f})."
        )
        if self.misses_interactions:
            text += (
                " The stages do not add up: some architectures differ from the sum of their "
                "stage effects by more than noise (interactions), so read the effects as averages."
            )
        return text


def _design(archs: Sequence[str]) -> tuple[pd.DataFrame, list[tuple[int, str, str]]]:
    """0/1 columns, one per (stage, choice) that differs from the backbone's own kernel."""
    specs = [ArchSpec.parse(a) for a in archs]
    base = ArchSpec.default(specs[0].backbone, specs[0].num_classes)
    columns: dict[str, np.ndarray] = {}
    meta: list[tuple[int, str, str]] = []
    for k, own in enumerate(base.stages):
        tokens = sorted({s.stages[k].token for s in specs} - {own.token})
        for token in tokens:
            col = f"s{k}:{token}"
            columns[col] = np.array([s.stages[k].token == token for s in specs], dtype=float)
            meta.append((k, token, choice_label(StageSpec.parse(token))))
    return pd.DataFrame(columns, index=list(archs)), meta


def _separable(x: np.ndarray) -> np.ndarray:
    """Which columns of ``x`` (beside an intercept) add to the rank, taken in order: a choice
    that always comes with the same others cannot be told apart from them."""
    keep = np.zeros(x.shape[1], dtype=bool)
    basis = np.ones((x.shape[0], 1))
    for j in range(x.shape[1]):
        trial = np.column_stack([basis, x[:, j]])
        if np.linalg.matrix_rank(trial) > basis.shape[1]:
            basis, keep[j] = trial, True
    return keep


def _loao(means: np.ndarray, noise: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """Leave-one-architecture-out RMSE of weighted least squares on architecture means
    (hat-matrix form), and the RMSE expected from ``noise`` (each mean's variance) alone.

    Returns:
        ``(observed, expected)``; NaN when an architecture alone defines an effect.
    """
    n, p = x.shape
    if n <= p + 1:
        return float("nan"), float("nan")
    w = 1.0 / np.sqrt(noise)
    xw, yw = x * w[:, None], means * w
    beta, *_ = np.linalg.lstsq(xw, yw, rcond=None)
    hat = np.einsum("ij,jk,ik->i", xw, np.linalg.pinv(xw.T @ xw), xw)
    if np.any(hat > 1 - 1e-9):
        return float("nan"), float("nan")
    resid = (means - x @ beta) / (1 - hat)
    return float(np.sqrt(np.mean(resid**2))), float(np.sqrt(np.mean(noise / (1 - hat))))


def _seed_columns(seeds: pd.Series) -> np.ndarray:
    """0/1 columns of the seeds shared by several trials (all but the first): the seed's effect
    when trials are paired on seeds; (n, 0) when no seed repeats across trials."""
    values = pd.to_numeric(seeds, errors="coerce")
    counts = values.value_counts()
    shared = sorted(counts.index[counts > 1])
    if len(shared) < 2:
        return np.zeros((len(values), 0))
    return np.column_stack([(values == s).to_numpy(dtype=float) for s in shared[1:]])


def fit_stage_effects(
    trials: pd.DataFrame,
    *,
    level: float = 0.95,
    metric: str = "auc",
    unidentifiable: Mapping[int, str] | None = None,
) -> StageEffectModel:
    """Fit the additive stage model to a run's completed trials.

    Args:
        trials: one row per completed trial with columns ``arch`` (canonical string),
            ``metric`` and, when trials are paired on seeds, ``seed``.
        level: coverage of the effects' intervals, simultaneous over the table (Bonferroni).
        metric: the column modelled.
        unidentifiable: stage -> why the proxy cannot see it; its choices stay in the model (they
            vary) but get no interval and do not count in the family.

    Rows with ``phase`` = ``confirm`` are left out (see the module docstring) and a note says so.

    Raises:
        ValueError: fewer than two architectures, or no stage choice varies.
    """
    from scipy import stats

    notes: list[str] = []
    if "phase" in trials and (confirm := trials["phase"] == "confirm").any():
        trials = trials[~confirm]
        notes.append(
            f"fitted on the {len(trials)} exploration trials: the {int(confirm.sum())} "
            "confirmation trials repeat the members the race picked on exploration results "
            "and serve the verdict's claims about them"
        )
    cols = ["arch", metric] + (["seed"] if "seed" in trials else [])
    data = trials[cols].dropna(subset=[metric])
    data = data.rename(columns={metric: "y"}).reset_index(drop=True)
    archs = sorted(data["arch"].unique())
    if len(archs) < 2:
        raise ValueError("stage effects need at least two architectures")
    design, meta = _design(archs)
    keep = _separable(design.to_numpy())
    for j in np.flatnonzero(~keep):
        stage, _, label = meta[j]
        notes.append(
            f"{label} in stage {stage} is not separable from the other choices in these trials "
            "(it always comes with the same others): not estimated"
        )
    design, meta = design.loc[:, keep], [m for m, k in zip(meta, keep) if k]
    if design.shape[1] == 0:
        raise ValueError("no stage choice varies between the trials")
    grouped = data.groupby("arch")["y"]
    means = grouped.mean().reindex(archs).to_numpy()
    counts = grouped.size().reindex(archs).to_numpy()
    x_arch = np.column_stack([np.ones(len(archs)), design.to_numpy()])
    x_seed = _seed_columns(data["seed"]) if "seed" in data else np.zeros((len(data), 0))
    x_trial = np.column_stack([x_arch[[archs.index(a) for a in data["arch"]]], x_seed])
    if np.linalg.matrix_rank(x_trial) < x_trial.shape[1]:  # seeds confounded with choices
        x_seed = np.zeros((len(data), 0))
        x_trial = x_trial[:, : x_arch.shape[1]]
    hidden = dict(unidentifiable or {})
    family = max(1, sum(stage not in hidden for stage, _, _ in meta))
    # t quantile on the trials' residual degrees of freedom: Wald z intervals of a mixed model
    # fitted to ~100 trials were measured a little too narrow (family-wise error 5-8% at a
    # stated 5%, tests/test_verdict.py); with t it was 3%.
    dof = max(1, len(data) - x_trial.shape[1])
    z = stats.t.ppf(1 - (1 - level) / (2 * family), dof)

    fit = None
    if counts.max() > 1 and len(archs) > x_arch.shape[1]:
        import statsmodels.api as sm

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fit = sm.MixedLM(data["y"].to_numpy(), x_trial, groups=data["arch"]).fit(reml=True)
            except (np.linalg.LinAlgError, ValueError):
                fit = None
            # A singular fit's standard errors are NaN (numpy warns computing them, inside
            # this block so the run's progress display stays clean): fall back as below.
            if fit is not None and not np.all(np.isfinite(fit.bse_fe)):
                fit = None
    if fit is not None:
        beta = np.asarray(fit.fe_params)[: x_arch.shape[1]]
        se = np.asarray(fit.bse_fe)[: x_arch.shape[1]]
        seed_var = float(fit.scale)
        arch_var = float(np.asarray(fit.cov_re)[0, 0])
        blup = np.array([float(np.asarray(fit.random_effects[a])[0]) for a in archs])
    else:
        # No repeats (or too few architectures for a variance split): least squares on the
        # means; seed noise and the spread around the model cannot be told apart.
        why = (
            "the mixed model did not converge"
            if counts.max() > 1 and len(archs) > x_arch.shape[1]
            else "without enough repeated architectures seed noise and interactions cannot be "
            "separated"
        )
        notes.append(f"fitted by least squares on architecture means ({why}); nothing is shrunk")
        beta, *_ = np.linalg.lstsq(x_arch, means, rcond=None)
        resid = means - x_arch @ beta
        dof = max(1, len(archs) - x_arch.shape[1])
        var = float(resid @ resid) / dof
        cov = var * np.linalg.pinv(x_arch.T @ x_arch)
        se = np.sqrt(np.clip(np.diag(cov), 0, None))
        seed_var, arch_var = var, 0.0
    predicted = x_arch @ beta
    if fit is None:
        blup = means - predicted  # nothing to shrink with: each architecture keeps its mean
    carries = x_trial[:, 1 : x_arch.shape[1]].sum(axis=0)
    nan = float("nan")
    effects = tuple(
        StageEffect(
            stage,
            token,
            label,
            float(beta[j + 1]),
            nan if stage in hidden else float(beta[j + 1] - z * se[j + 1]),
            nan if stage in hidden else float(beta[j + 1] + z * se[j + 1]),
            int(design.iloc[:, j].sum()),
            float(se[j + 1]),
            int(carries[j]),
            stage not in hidden,
        )
        for j, (stage, token, label) in enumerate(meta)
    )
    loao, expected = _loao(means, seed_var / counts, x_arch)
    estimates = pd.DataFrame(
        {"mean": means, "n": counts, "predicted": predicted, "shrunk": predicted + blup},
        index=pd.Index(archs, name="arch"),
    )
    return StageEffectModel(
        effects=effects,
        intercept=float(beta[0]),
        seed_sd=float(np.sqrt(seed_var)),
        arch_sd=float(np.sqrt(arch_var)),
        loao_rmse=loao,
        noise_rmse=expected,
        estimates=estimates,
        level=level,
        shrinks=fit is not None,
        notes=tuple(notes),
        family=family,
        seed_effects=x_seed.shape[1] > 0,
    )
