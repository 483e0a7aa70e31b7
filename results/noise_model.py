"""Proxy-run noise fitted to a real ground-truth table, for simulated searches whose claims can
be scored against a known truth (calibration tests, ``benchmarks/bench_power.py``).

A claim rule checked only on data drawn from its own assumptions (normal seed noise of one SD
for every architecture, seeds independent between architectures) cannot fail where real runs
differ. The ground-truth tables (``benchmarks/ground_truth.py``: every network of a space trained
with the same seeds) show how they differ: the noise is larger for some networks than others, a
seed's data order moves every architecture's AUC together (30-35% of the seed variance), and AUC
lives below a ceiling. This model keeps all three, on the logit scale::

    logit AUC(a, s) = loc_a + g_s + sd_a * r_as
        g_s    the seed's main effect, shared by every architecture, N(0, seed_sd^2)
        sd_a   architecture a's own residual SD: sd_a^2 log-normal around the pooled residual
               variance, with the spread the table's per-architecture variances show beyond their
               own sampling spread (a variance from S seeds scatters on the log scale by
               trigamma((S - 1) / 2) even when every architecture is equally noisy; that part is
               taken out, as limma's moderated variances do)
        r_as   standard normal (the table's 48 standardised residuals are too few and too
               constrained, 3 per architecture, to resample: a discrete pool makes ties that no
               real run has)
        loc_a  set so that the expected AUC is exactly mu_a: noise on the logit scale pulls the
               mean AUC toward 0.5, more for a noisier architecture, so a planted null stays null

``mu_a`` is the truth the simulation plants (a null, or known stage effects).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, special, stats
from scipy.special import expit, logit

__all__ = ["NoiseModel"]


@dataclass(frozen=True)
class NoiseModel:
    """Seed noise of one proxy run, fitted to a ground-truth table (see the module docstring).

    Attributes:
        seed_sd: SD of the seed main effect (logit scale).
        arch_sds: per-architecture residual SDs of the table (logit scale).
        residuals: standardised residuals of the table (mean 0, SD 1), kept for reference.
        centre: the table's mean AUC at the fitted epochs.
        source: what it was fitted to, in words.
    """

    seed_sd: float
    arch_sds: np.ndarray
    residuals: np.ndarray
    centre: float
    source: str = ""
    resid_var: float = 0.0
    log_var_spread: float = 0.0

    @classmethod
    def fit(cls, table: pd.DataFrame | str | Path, epochs: int | None = None) -> NoiseModel:
        """Fit to a ground-truth table's runs at ``epochs`` (default: the shortest, the proxy).

        The table needs ``arch``, ``seed``, ``auc`` (and ``epochs`` when it has several); every
        architecture trained with the same seeds (two-way layout).
        """
        source = str(Path(table).name) if not isinstance(table, pd.DataFrame) else "table"
        t = pd.read_csv(table) if not isinstance(table, pd.DataFrame) else table
        if "epochs" in t:
            epochs = int(t["epochs"].min()) if epochs is None else int(epochs)
            t = t[t["epochs"] == epochs]
        x = t.pivot_table(index="arch", columns="seed", values="auc").dropna()
        if x.shape[0] < 2 or x.shape[1] < 2:
            raise ValueError("a noise model needs at least 2 architectures x 2 common seeds")
        z = logit(np.clip(x.to_numpy(dtype=float), 1e-4, 1 - 1e-4))
        n_arch, n_seed = z.shape
        resid = z - z.mean(axis=1, keepdims=True) - z.mean(axis=0, keepdims=True) + z.mean()
        resid_var = (resid**2).sum() / ((n_arch - 1) * (n_seed - 1))
        seed_means = z.mean(axis=0) - z.mean()
        seed_var = max(0.0, float(seed_means.var(ddof=1)) - resid_var / n_arch)
        # Per-architecture SDs, scaled so that their mean square is the pooled residual variance.
        sds = np.sqrt((resid**2).sum(axis=1) / (n_seed - 1) * n_arch / (n_arch - 1))
        standard = (resid / np.where(sds > 0, sds, 1.0)[:, None]).ravel()
        standard = standard[np.isfinite(standard) & (standard != 0)]
        standard = (standard - standard.mean()) / standard.std()
        label = f"{source} at {epochs} epochs" if epochs is not None else source
        # Spread of the true per-architecture variances: the observed log-variances' spread
        # minus what S seeds' sampling alone gives (trigamma of half the degrees of freedom).
        dof = (n_seed - 1) * (n_arch - 1) / n_arch
        logs = np.log(sds[sds > 0] ** 2)
        spread = max(0.0, float(logs.var(ddof=1)) - float(special.polygamma(1, dof / 2)))
        return cls(
            float(np.sqrt(seed_var)), sds, standard, float(x.to_numpy().mean()), label,
            float(resid_var), spread,
        )  # fmt: skip

    @property
    def total_sd(self) -> float:
        """SD of one run's AUC around its architecture's mean, on the AUC scale at the table's
        centre (seed effect and residual together)."""
        slope = self.centre * (1 - self.centre)
        return float(slope * np.sqrt(self.seed_sd**2 + self.resid_var))

    @property
    def shared_share(self) -> float:
        """Share of a run's seed variance that the seed main effect carries."""
        total = self.seed_sd**2 + self.resid_var
        return float(self.seed_sd**2 / total) if total > 0 else 0.0

    def describe(self) -> str:
        """One line: ``seed SD 0.024 AUC (shared seed effect 31%; ...)``."""
        return (
            f"{self.source}: one run's seed SD {self.total_sd:.4f} AUC at AUC {self.centre:.3f}, "
            f"{self.shared_share:.0%} of its variance a seed effect shared by every "
            f"architecture; architectures' own SDs vary by x{np.exp(np.sqrt(self.log_var_spread) / 2):.2f} "
            "(1 SD, beyond sampling)"
        )

    def simulator(self, n_archs: int, rng: np.random.Generator) -> RunSimulator:
        """A simulated search's noise: each architecture draws its own residual SD once."""
        mean = np.log(self.resid_var) - self.log_var_spread / 2  # E[sd^2] = the pooled variance
        var = rng.normal(mean, np.sqrt(self.log_var_spread), size=n_archs)
        return RunSimulator(self, np.exp(var / 2), rng)


class RunSimulator:
    """Draws proxy AUCs for one simulated search (architectures indexed 0..A-1)."""

    def __init__(self, model: NoiseModel, sds: np.ndarray, rng: np.random.Generator) -> None:
        self.model, self.sds, self.rng = model, sds, rng
        self._seed_effects: dict[int, float] = {}
        self._locations: dict[tuple[float, int], float] = {}

    def seed_effect(self, seed: int) -> float:
        """The seed's shared effect (logit), drawn once per seed per search."""
        if seed not in self._seed_effects:
            self._seed_effects[seed] = float(self.rng.normal(0.0, self.model.seed_sd))
        return self._seed_effects[seed]

    def location(self, truth: float, arch: int) -> float:
        """The logit location whose expected AUC (over seeds and residuals) is ``truth`` for
        architecture ``arch``: noise on the logit scale pulls the mean AUC toward 0.5, more for a
        noisier architecture, so a planted null stays exactly null."""
        key = (round(float(truth), 12), int(arch))
        if key not in self._locations:
            q = stats.norm.ppf((np.arange(15) + 0.5) / 15)
            noise = (q[:, None] * self.model.seed_sd + self.sds[arch] * q[None, :]).ravel()

            def gap(loc: float) -> float:
                return float(expit(loc + noise).mean()) - truth

            self._locations[key] = float(optimize.brentq(gap, -20.0, 20.0, xtol=1e-10))
        return self._locations[key]

    def run(self, truth: float, arch: int, seed: int) -> float:
        """One proxy run's AUC of architecture ``arch`` (true mean AUC ``truth``) with ``seed``."""
        r = float(self.rng.standard_normal())
        z = self.location(truth, arch) + self.seed_effect(seed) + self.sds[arch] * r
        return float(expit(z))
