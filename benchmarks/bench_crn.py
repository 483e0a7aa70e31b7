"""How much of one proxy run's seed noise do architectures share when they train with the same
seed (common random numbers), and so how much does pairing comparisons on seeds remove?

    python benchmarks/bench_crn.py --data phantom --archs 4 --seeds 6 --out crn.csv
    python benchmarks/bench_crn.py --table benchmarks/results/ground_truth-paper-phantom-64px.csv

Repeat k of every architecture trains with the same seed: the same data order, subset and
augmentation (one generator), and, since the classifier head is initialised before MD-Conv
replaces any depthwise conv, the same initial weights in every layer the networks share. The
seed's effect on AUC is then partly common to all architectures: a two-way decomposition of
AUC(arch, seed) gives the seed's share of a run's variance, and the variance of a paired
difference, 2 sigma^2 (1 - share), against an unpaired one, 2 sigma^2.

With ``--out`` it trains ``--archs`` architectures of ``--space`` (baseline, paper, then seeded
samples) x ``--seeds`` seeds at the proxy setting (resumed from the CSV); with ``--table`` it
reads a ground-truth table (the proxy's epochs) instead.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def decompose(table: pd.DataFrame) -> dict[str, float]:
    """Two-way (architecture x seed) decomposition of AUC: the seed effect's variance and the
    residual's, the seed's share, and paired vs unpaired variance of a difference."""
    x = table.pivot_table(index="arch", columns="seed", values="auc").dropna().to_numpy()
    a, s = x.shape
    resid = x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + x.mean()
    resid_var = float((resid**2).sum() / ((a - 1) * (s - 1)))
    seed_var = max(0.0, float((x.mean(axis=0) - x.mean()).var(ddof=1)) - resid_var / a)
    # Paired differences to the first architecture, over seeds, vs unpaired (seeds shuffled).
    d = x[1:] - x[0]
    paired = float(np.mean(d.var(axis=1, ddof=1)))
    unpaired = 2 * (seed_var + resid_var)
    return {
        "archs": a,
        "seeds": s,
        "seed_sd": float(np.sqrt(seed_var + resid_var)),
        "shared_share": seed_var / (seed_var + resid_var) if seed_var + resid_var else 0.0,
        "paired_var": paired,
        "unpaired_var": unpaired,
    }


def train(args) -> pd.DataFrame:
    from mdsearch.search.proxy import proxy_train
    from mdsearch.search.settings import PROXY_RECIPE, DataSettings
    from mdsearch.space import atomic_write_text, load_space

    out = Path(args.out)
    rows = pd.read_csv(out).to_dict("records") if out.exists() else []
    dataset = DataSettings(args.data, resolution=args.resolution).load(progress=False)
    classes = len(dataset.label_names)
    space = load_space(args.space, resolution=args.resolution)
    archs = [r.canonical for r in space.reference_points(classes)]
    rng = np.random.default_rng(0)
    everything = list(space.enumerate(classes)) if space.size <= 4096 else []
    for i in rng.permutation(len(everything)):
        if len(archs) >= args.archs:
            break
        if everything[i].canonical not in archs:
            archs.append(everything[i].canonical)
    have = {(r["arch"], int(r["seed"])) for r in rows}
    jobs = [(a, s) for s in range(args.seeds) for a in archs if (a, s) not in have]
    start = time.monotonic()
    from mdsearch.space import ArchSpec

    for i, (arch, seed) in enumerate(jobs, 1):
        result = proxy_train(ArchSpec.parse(arch), dataset, PROXY_RECIPE, seed)
        rows.append({"arch": arch, "seed": seed, "auc": result.auc})
        atomic_write_text(out, pd.DataFrame(rows).to_csv(index=False))
        eta = (time.monotonic() - start) / i * (len(jobs) - i)
        print(f"[{i}/{len(jobs)}] seed {seed} AUC {result.auc:.4f} (ETA {eta / 60:.0f} min)",
              file=sys.stderr)  # fmt: skip
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", type=Path, default=None, help="a ground-truth table to decompose")
    p.add_argument("--out", default=None, help="CSV of this script's own trainings (resumed)")
    p.add_argument("--data", default="phantom")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--space", default="default")
    p.add_argument("--archs", type=int, default=4)
    p.add_argument("--seeds", type=int, default=6)
    args = p.parse_args(argv)
    if args.table is not None:
        t = pd.read_csv(args.table)
        table = t[t["epochs"] == t["epochs"].min()] if "epochs" in t else t
        source = f"{args.table.name} (its proxy epochs)"
    elif args.out:
        table = train(args)
        source = f"{args.data} at {args.resolution} px, proxy recipe ({args.out})"
    else:
        p.error("give --table or --out")
    r = decompose(table)
    print(f"{source}: {r['archs']} architectures x {r['seeds']} common seeds; one run's seed SD "
          f"{r['seed_sd']:.4f}; the seed effect shared by every architecture carries "
          f"{r['shared_share']:.0%} of it; variance of a difference: paired on seeds "
          f"{r['paired_var']:.2e} vs unpaired {r['unpaired_var']:.2e} "
          f"({1 - r['paired_var'] / r['unpaired_var']:.0%} removed)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
