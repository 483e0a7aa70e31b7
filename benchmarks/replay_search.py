"""Which sampler and confirm fraction find the truly best front? Searches replayed against a
ground-truth table instead of training.

    python benchmarks/replay_search.py benchmarks/results/ground_truth-paper-phantom-64px.csv \
        --budgets 16,32,48 --search-seeds 5 --confirm 0,0.3

The table (``benchmarks/ground_truth.py``) holds every architecture of a small space trained with
several seeds at the proxy setting (``--short`` epochs) and at a longer one (``--long``). A
replayed search runs the real parts of ``mdsearch run`` without Ray: the Optuna sampler
``make_sampler`` gives (or Optuna's multi-objective ``GPSampler``), the repeat rule (a proposed
architecture that was trained before is trained again with a new seed), the confirmation policy
(``next_to_confirm`` after ``budget x (1 - confirm)`` trials, through ``enqueue_trial``) and the
report's analysis (``analyse_run``: stage-model shrinkage, front, knee). Each "training" returns

    AUC = mean of the architecture's short-proxy runs in the table + N(0, seed SD^2)

with the seed SD pooled over the table's short runs, so a replay sees the proxy's own bias
(short-run means) and its seed noise; the truth is the mean of the long runs. Trials run one
after another (a real run has two in flight; constant liar makes that nearly the same).

``--supernet SCORES.csv`` adds the supernet strategy (``mdsearch run --strategy supernet``) as
a row ``supernet``: its stand-alone phase replayed on the same truth, from the supernet's scores
of every architecture (a CSV with ``arch`` or ``arch_id`` and ``auc``: a supernet run's
``proxy == supernet`` rows, or bench_supernet's table). It trains the baseline and the paper's
network, then the architectures in the order ``rank_candidates`` gives (the supernet's Pareto
layers), one seed each, then confirms, as the run does; its compute is the budget plus the
supernet's training (``--supernet-cost``, in stand-alone proxy trials), printed in ``cost``.

``--inject 1:0.02`` adds a known effect (MD-Conv in stage 1 adds 0.02 AUC, in the proxy and in
the truth): does the search find an effect of that size through the proxy's noise?

Per (sampler, budget, confirm) over the search seeds it prints:

- ``HV %``: hypervolume of the *true* values of the reported front, as a share of the true
  front's (AUC reference just below the space's worst true AUC, so the share measures how much of the
  space's true gain over its worst network the front keeps; FLOPs reference 1.1 x the largest);
- ``knee>base``: share of searches whose reported knee is truly better than the baseline (a knee
  that is the baseline counts as not better);
- ``knee rank``: the knee's mean rank by true AUC among the space's architectures (1 = best);
- ``regret``: the best true AUC in the space minus the knee's, in thousandths;
- ``archs``: distinct architectures trained; ``front``: reported front size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

SAMPLERS = ("tpe", "nsga2", "random", "gp", "grid")


def _sampler(name: str, seed: int, space, budget: int):
    import optuna

    from mdsearch.search.study import make_sampler

    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=min(10, max(1, budget // 5)))
    return make_sampler(name, seed, space, budget)


class Truth:
    """The ground-truth table, per architecture: short-run mean, long-run mean, FLOPs."""

    def __init__(self, path: Path, inject: tuple[int, float] | None = None):
        table = pd.read_csv(path)
        short, long = sorted(table["epochs"].unique())[:2]
        g = table.groupby(["arch", "epochs"])["auc"]
        means = g.mean().unstack()
        self.short_mean = means[short]
        self.truth = means[long]
        self.flops = table.groupby("arch")["flops_m"].first()
        runs = table[table["epochs"] == short]
        resid = runs["auc"] - runs.groupby("arch")["auc"].transform("mean")
        dof = len(runs) - runs["arch"].nunique()
        self.seed_sd = float(np.sqrt((resid**2).sum() / dof))
        self.seeds = int(table.groupby(["arch", "epochs"]).size().min())
        self.short, self.long = int(short), int(long)
        if inject is not None:  # a known effect of MD-Conv in one stage, proxy and truth alike
            stage, effect = inject
            has = [
                str(stage) in str(m).split() for m in table.groupby("arch")["mdconv_stages"].first()
            ]
            shift = pd.Series(np.where(has, effect, 0.0), index=self.truth.index)
            self.short_mean, self.truth = self.short_mean + shift, self.truth + shift
        self.auc_ref = float(self.truth.min()) - 0.002  # HV counts only what beats the worst

    def hypervolume(self, archs) -> float:
        from mdsearch.results.pareto import hypervolume

        points = np.column_stack([-self.truth[list(archs)], self.flops[list(archs)]])
        return hypervolume(points, [-self.auc_ref, 1.1 * self.flops.max()])


def supernet_order(path: Path, truth: Truth, space) -> list[str]:
    """The supernet run's stand-alone order: the references, then ``rank_candidates``."""
    from mdsearch.results.supernet_candidates import rank_candidates
    from mdsearch.space import ArchSpec

    scores = pd.read_csv(path, dtype={"arch_id": str})
    if "arch" not in scores:  # bench_supernet's table names architectures by id
        by_id = {ArchSpec.parse(a).arch_id: a for a in truth.truth.index}
        scores["arch"] = scores["arch_id"].map(by_id)
    if "supernet_auc" in scores and "auc" not in scores:
        scores["auc"] = scores["supernet_auc"]
    if "proxy" in scores:
        scores = scores[scores["proxy"] == "supernet"]
    scores = scores.assign(status="COMPLETE", flops_m=truth.flops[scores["arch"]].to_numpy())
    num_classes = ArchSpec.parse(truth.truth.index[0]).num_classes
    refs = [r.canonical for r in space.reference_points(num_classes)]
    return refs + [a for a in rank_candidates(scores) if a not in refs]


def replay(
    truth: Truth,
    space,
    sampler: str,
    budget: int,
    confirm: float,
    seed: int,
    folder: Path,
    plan: list[str] | None = None,
) -> dict:
    """One replayed search; returns its scores against the truth. ``plan``: architectures the
    exploration proposes first, in order, each once (the supernet strategy's)."""
    import optuna

    from mdsearch.results import LoadedRun, analyse_run
    from mdsearch.results.confirmation import next_to_confirm
    from mdsearch.space import ArchSpec

    rng = np.random.default_rng(seed)
    num_classes = ArchSpec.parse(truth.truth.index[0]).num_classes
    baseline = ArchSpec.default(space.backbone, num_classes).canonical
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=_sampler(sampler, seed, space, budget)
    )
    explore = budget - round(budget * confirm)
    rows: list[dict] = []
    proposed: dict[str, int] = {}
    for t in range(budget):
        if t >= explore and rows:
            arch = next_to_confirm(pd.DataFrame(rows), proposed, baseline=baseline)
            if arch is not None:
                study.enqueue_trial(space.encode(ArchSpec.parse(arch)))
        elif plan:
            arch = next((a for a in plan if a not in proposed), None)
            if arch is not None:
                study.enqueue_trial(space.encode(ArchSpec.parse(arch)))
        trial = study.ask(space.distributions())
        spec = space.decode(trial.params, num_classes)
        arch = spec.canonical
        auc = float(truth.short_mean[arch] + rng.normal(0.0, truth.seed_sd))
        flops = float(truth.flops[arch])
        study.tell(trial, [auc, flops])
        proposed[arch] = proposed.get(arch, 0) + 1
        rows.append({
            "trial": t, "arch": arch, "arch_id": spec.arch_id, "status": "COMPLETE",
            "fidelity": truth.short, "target_fidelity": truth.short, "auc": auc,
            "flops_m": flops, "seed": proposed[arch], "repeat": proposed[arch] - 1,
        })  # fmt: skip
    run = LoadedRun(folder, {"objectives": ["auc", "flops"]}, pd.DataFrame(rows))
    analysis = analyse_run(run, n_resamples=0)
    front = list(analysis.front.index)
    rank = truth.truth.rank(ascending=False)
    return {
        "hv": truth.hypervolume(front),
        "knee_better": bool(truth.truth[analysis.knee] > truth.truth[baseline]),
        "knee_rank": float(rank[analysis.knee]),
        "knee_regret": float(truth.truth.max() - truth.truth[analysis.knee]),
        "archs": len(proposed),
        "front": len(front),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("truth", type=Path, help="ground-truth CSV from benchmarks/ground_truth.py")
    p.add_argument("--space", default="paper")
    p.add_argument("--samplers", default=",".join(SAMPLERS))
    p.add_argument("--budgets", default="16,32,48")
    p.add_argument("--confirm", default="0,0.3", help="confirm fractions to compare")
    p.add_argument("--search-seeds", type=int, default=5)
    p.add_argument(
        "--inject",
        default=None,
        metavar="STAGE:EFFECT",
        help="add EFFECT (AUC) to every architecture with MD-Conv in STAGE, proxy and truth "
        "alike: a known effect the search should find (e.g. 1:0.02)",
    )
    p.add_argument(
        "--supernet",
        type=Path,
        default=None,
        metavar="SCORES.csv",
        help="the supernet's score of every architecture: adds the supernet strategy",
    )
    p.add_argument(
        "--supernet-cost",
        type=float,
        default=16.0,
        help="the supernet's training, in stand-alone proxy trials (default 16)",
    )
    args = p.parse_args(argv)

    import optuna

    from mdsearch.space import load_space

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    inject = None
    if args.inject:
        stage, effect = args.inject.split(":")
        inject = (int(stage), float(effect))
    truth = Truth(args.truth, inject)
    space = load_space(args.space)
    best_hv = truth.hypervolume(truth.truth.index)
    print(f"# {args.truth.name}: {len(truth.truth)} architectures, {truth.seeds} seeds each at "
          f"{truth.short} and {truth.long} epochs; short-proxy seed SD {truth.seed_sd:.4f}; "
          f"true AUC {truth.truth.min():.4f}-{truth.truth.max():.4f}")  # fmt: skip
    if inject:
        print(f"# injected: +{inject[1]} AUC for MD-Conv in stage {inject[0]} (proxy and truth)")
    print(
        f"# replay: {args.search_seeds} search seeds per cell; HV = true hypervolume of the "
        f"reported front / the true front's (AUC ref {truth.auc_ref:.4f} = worst true AUC - "
        "0.002, FLOPs ref 1.1 x max); regret = best true AUC - knee's true AUC (x1000)"
    )
    header = f"{'sampler':8} {'budget':>6} {'confirm':>7}  {'HV %':>11} {'knee>base':>9} "
    print(header + f"{'knee rank':>9} {'regret':>11} {'archs':>5} {'front':>5} {'cost':>5}")
    samplers = args.samplers.split(",")
    order = None
    if args.supernet is not None:
        order = supernet_order(args.supernet, truth, space)
        samplers.append("supernet")
    start = time.monotonic()
    folder = tempfile.mkdtemp(prefix="replay-")  # an empty run folder: no proxy-check in it
    cells = []
    for budget in (int(b) for b in args.budgets.split(",")):
        for sampler in samplers:
            strategy = sampler == "supernet"
            for confirm in (float(c) for c in args.confirm.split(",")):
                res = pd.DataFrame([
                    replay(truth, space, "random" if strategy else sampler, budget, confirm,
                           seed, Path(folder), plan=order if strategy else None)
                    for seed in range(args.search_seeds)
                ])  # fmt: skip
                cost = budget + (args.supernet_cost if strategy else 0)
                hv = 100 * res["hv"] / best_hv
                se = hv.std(ddof=1) / np.sqrt(len(hv))
                cells.append((sampler, budget, confirm, hv.mean(), res["knee_better"].mean()))
                regret = 1000 * res["knee_regret"]
                rse = regret.std(ddof=1) / np.sqrt(len(regret))
                print(f"{sampler:8} {budget:6d} {confirm:7.1f}  {hv.mean():6.1f}+-{se:4.1f} "
                      f"{res['knee_better'].mean():9.0%} {res['knee_rank'].mean():9.1f} "
                      f"{regret.mean():5.1f}+-{rse:4.1f} "
                      f"{res['archs'].mean():5.1f} {res['front'].mean():5.1f} {cost:5.0f}",
                      flush=True)  # fmt: skip
    print(f"# {time.monotonic() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
