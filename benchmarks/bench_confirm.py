"""Do a run's claims survive retraining? Retrain its reported front and the baseline with seeds
the run never used (same data, same proxy), and compare.

    python benchmarks/bench_confirm.py runs/<name> --seeds 3

Prints, per front member and for the baseline: the search's estimate (the report's AUC, shrunk
when the run could shrink), its raw mean, the fresh mean over the new seeds with a t interval,
the gap (search - fresh: the winner's curse), and whether each lead over the baseline that the
report calls "distinct" holds in the fresh seeds (fresh difference > 0 by a one-sided t test at
5%). Summary: the share of claims that hold, the mean gap, and the run's seed SD for scale.
Two trainings run at a time, one thread each, as a search's trials do.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy import stats

FRESH_SEED_OFFSET = 10_000  # far above any seed a run's repeats reach


def _train(job: tuple[str, dict, int]) -> tuple[str, int, float]:
    """One fresh proxy training of ``arch`` with the run's settings and ``seed``."""
    from mdsearch.search import SearchSettings, proxy_train
    from mdsearch.space import ArchSpec

    arch, settings_dict, seed = job
    settings = SearchSettings.from_dict(settings_dict)
    dataset = settings.data.load(progress=False)
    result = proxy_train(ArchSpec.parse(arch), dataset, settings.proxy, seed, threads=1)
    return arch, seed, float(result.auc)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="run folder")
    p.add_argument("--seeds", type=int, default=3, help="fresh seeds per architecture (3)")
    p.add_argument("--workers", type=int, default=2, help="trainings at a time (2)")
    args = p.parse_args(argv)

    from mdsearch.results import analyse_run, load_run

    run = load_run(args.run)
    analysis = analyse_run(run, n_resamples=400)
    settings = run.config["settings"]
    front = analysis.front
    archs = list(dict.fromkeys([analysis.baseline, *front.index]))
    base_seed = int(settings.get("seed", 0)) + FRESH_SEED_OFFSET
    jobs = [(a, settings, base_seed + k) for a in archs for k in range(args.seeds)]
    print(f"{run.path}: {len(front)} front members + baseline, {args.seeds} fresh seeds each: "
          f"{len(jobs)} trainings", file=sys.stderr)  # fmt: skip
    start = time.monotonic()
    fresh: dict[str, list[float]] = {a: [] for a in archs}
    with ProcessPoolExecutor(args.workers) as pool:
        for i, (arch, _, auc) in enumerate(pool.map(_train, jobs), 1):
            fresh[arch].append(auc)
            print(f"  [{i}/{len(jobs)}] {time.monotonic() - start:.0f} s", file=sys.stderr)

    base = np.array(fresh[analysis.baseline])
    rows, claims, gaps = [], [], []
    for arch in archs:
        x = np.array(fresh[arch])
        mean, sem = x.mean(), x.std(ddof=1) / np.sqrt(len(x))
        t = stats.t.ppf(0.975, len(x) - 1)
        row = analysis.archs.loc[arch]
        estimate = float(row["auc"])
        raw = float(row.get("auc_mean", row["auc"]))
        claim, holds = "", ""
        if arch in front.index and arch != analysis.baseline:
            diff = front.at[arch, "vs_baseline"]
            if diff is not None and diff.distinguishable:
                claim = "distinct" if diff.mean > 0 else "distinct (worse)"
                test = stats.ttest_ind(x, base, alternative="greater" if diff.mean > 0 else "less")
                holds = "holds" if test.pvalue < 0.05 else "FAILS"
                claims.append(holds == "holds")
            gaps.append(estimate - mean)
        rows.append((row["arch_id"], "baseline" if arch == analysis.baseline else "",
                     int(row["seeds"]), estimate, raw, mean, mean - t * sem, mean + t * sem,
                     estimate - mean, claim, holds))  # fmt: skip
    print(f"{'arch id':10s} {'':8s} {'seeds':>5s} {'search':>7s} {'raw':>7s} {'fresh':>7s} "
          f"{'fresh 95% CI':>17s} {'gap':>7s}  claim vs baseline")  # fmt: skip
    for r in rows:
        print(f"{r[0]:10s} {r[1]:8s} {r[2]:5d} {r[3]:7.4f} {r[4]:7.4f} {r[5]:7.4f} "
              f"[{r[6]:.4f}, {r[7]:.4f}] {r[8]:+7.4f}  {r[9]} {r[10]}")  # fmt: skip
    sd = analysis.seed_noise.sd
    print(
        f"front: mean gap search - fresh {np.mean(gaps):+.4f} (seed SD of one run {sd:.4f}); "
        f"'distinct' claims: {len(claims)}, holding in fresh seeds: {sum(claims)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
