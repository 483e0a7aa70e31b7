"""Screen a candidate workload for an architecture effect before paying for a full ground truth.

A ground truth (``ground_truth.py``) trains every network of a space with several seeds; most
workloads tried here had no placement effect at all, so first train a few *contrasting*
architectures (no MD-Conv, MD-Conv in the high-resolution stages, larger kernel sets) with paired
seeds at a fidelity well above the proxy's, and look at the effect sizes:

    python benchmarks/workload_screen.py --data phantom --resolution 64 --epochs 8 --seeds 3 \\
        --arch base --arch 'k3.5s1:1@0,1,2' --arch 'k3.5.7.9s1:1:1:1@0,1,2'

``--arch`` is ``base`` (the backbone's own kernels) or ``TOKEN@STAGES``: the stage token put in the
listed stages. Prints, per architecture, the mean validation AUC over seeds with its SE, the
paired difference to the first architecture (same seeds: same data order) with a t interval,
per-label means, a one-way ANOVA across architectures and the between-architecture SD against
the SE of a 3-seed mean. Resumes from ``--out`` (CSV, one row per training).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from mdsearch.mdconv import cost
from mdsearch.search.proxy import proxy_train
from mdsearch.search.settings import PROXY_RECIPE, DataSettings
from mdsearch.space import ArchSpec, StageSpec, atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"


def parse_arch(text: str, backbone: str, num_classes: int) -> ArchSpec:
    """``base`` or ``TOKEN@S1,S2,..`` (several ``+``-joined) -> an ArchSpec."""
    spec = ArchSpec.default(backbone, num_classes)
    if text == "base":
        return spec
    for part in text.split("+"):
        token, stages = part.split("@")
        stage = StageSpec.parse(token)
        for s in stages.split(","):
            spec = spec.with_stage(int(s), stage.kernels, stage.split)
    return spec


def summarise(df: pd.DataFrame, names: list[str]) -> str:
    """The screen's table and tests, as text."""
    lines = []
    first = names[0]
    wide = df.pivot_table(index="seed", columns="name", values="auc")
    seeds = len(wide)
    resid = df["auc"] - df.groupby("name")["auc"].transform("mean")
    dof = len(df) - df["name"].nunique()
    seed_sd = float(np.sqrt((resid**2).sum() / dof)) if dof > 0 else float("nan")
    lines.append(f"{'architecture':<34} {'FLOPs M@448':>11} {'seeds':>5} {'mean AUC':>9} "
                 f"{'SE':>6}   paired diff vs {first} [95% t]")  # fmt: skip
    for name in names:
        sub = df[df["name"] == name]
        if sub.empty:
            continue
        mean, se = sub["auc"].mean(), sub["auc"].std(ddof=1) / np.sqrt(len(sub))
        diff = ""
        if name != first and first in wide and name in wide:
            d = (wide[name] - wide[first]).dropna()
            if len(d) > 1:
                half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
                diff = f"{d.mean():+.4f} [{d.mean() - half:+.4f}, {d.mean() + half:+.4f}]"
        lines.append(f"{name:<34} {sub['flops_m'].iloc[0]:>11.1f} {len(sub):>5} {mean:>9.4f} "
                     f"{se:>6.4f}   {diff}")  # fmt: skip
    groups = [g["auc"].to_numpy() for _, g in df.groupby("name") if len(g) > 1]
    if len(groups) > 1:
        f, p = stats.f_oneway(*groups)
        means = df.groupby("name")["auc"].mean()
        lines.append(
            f"one-way ANOVA across {len(groups)} architectures: F {f:.2f}, p {p:.2g}; "
            f"between-architecture SD of means {means.std(ddof=1):.4f} vs SE of a 3-seed mean "
            f"{seed_sd / np.sqrt(3):.4f} (seed SD {seed_sd:.4f}, pooled within architectures); "
            f"{seeds} seeds"
        )
    labels = [c for c in df.columns if c.startswith("auc__")]
    if labels:
        per = df.groupby("name")[labels].mean().reindex([n for n in names if n in set(df["name"])])
        per.columns = [c.removeprefix("auc__")[:14] for c in labels]
        lines.append("per-label mean AUC:")
        lines.append(per.round(3).to_string())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="phantom")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=2000)
    p.add_argument("--backbone", default="mobilenetv2_100")
    p.add_argument("--arch", action="append", required=True)
    p.add_argument("--out", required=True, help="CSV of the screen's trainings (resumed)")
    p.add_argument("--summary-only", action="store_true")
    args = p.parse_args(argv)

    out = Path(args.out)
    rows = pd.read_csv(out).to_dict("records") if out.exists() else []
    if not args.summary_only:
        data = DataSettings(args.data, resolution=args.resolution)
        dataset = data.load(progress=False)
        classes = len(dataset.label_names)
        specs = {a: parse_arch(a, args.backbone, classes) for a in args.arch}
        have = {(r["name"], int(r["seed"])) for r in rows}
        jobs = [
            (name, seed)
            for seed in range(args.first_seed, args.first_seed + args.seeds)
            for name in args.arch
            if (name, seed) not in have
        ]
        print(f"{len(jobs)} trainings to go -> {out}", file=sys.stderr)
        start = time.monotonic()
        for i, (name, seed) in enumerate(jobs, 1):
            spec = specs[name]
            recipe = replace(PROXY_RECIPE, epochs=args.epochs)
            result = proxy_train(spec, dataset, recipe, seed)
            rows.append({
                "name": name, "arch": spec.canonical, "data": args.data,
                "resolution": args.resolution, "epochs": args.epochs, "seed": seed,
                "flops_m": round(cost(spec, 448).flops_m, 2), "auc": result.auc,
                "train_seconds": round(result.train_seconds, 1),
                **{f"auc__{k}": v for k, v in result.label_auc.items()},
            })  # fmt: skip
            atomic_write_text(out, pd.DataFrame(rows).to_csv(index=False))
            eta = (time.monotonic() - start) / i * (len(jobs) - i)
            print(f"[{i}/{len(jobs)}] {name} seed {seed}: AUC {result.auc:.4f} "
                  f"({result.train_seconds:.0f} s; ETA {eta / 60:.0f} min)", file=sys.stderr)  # fmt: skip
    df = pd.DataFrame(rows)
    print(f"screen: {args.data} at {args.resolution} px, {args.epochs} epochs ({out.name})")
    print(summarise(df, list(dict.fromkeys(args.arch + list(df["name"])))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
