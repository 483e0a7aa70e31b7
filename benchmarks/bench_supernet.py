"""Does the weight-sharing supernet rank a space's architectures as stand-alone training does?

Trains the supernet of a small space (``paper``: 16 architectures) on the proxy data with the
sandwich rule (mdsearch.search.train_supernet), at most at the compute of one stand-alone proxy
trial per architecture (counted in images: forward + backward, every sub-network of every step),
scores every architecture (BatchNorm recalibrated per sub-network, validation AUC), and compares
the supernet's ranking with the stand-alone ground truth (benchmarks/ground_truth.py's table:
mean validation AUC over seeds at ``--long`` epochs) by Kendall's tau-b with a percentile
bootstrap interval over architectures, beside the short stand-alone proxy's tau (mean over the
same seeds at ``--short`` epochs) on the same architectures.

    python benchmarks/bench_supernet.py --data phantom --resolution 64 \\
        --out benchmarks/results/2026-11-30-bench_supernet-phantom.txt

The AUC compared is the mean over the labels with both classes in the validation split (the
definition the ground-truth table was written with); the run's label rule's mean is printed
beside it. Without a ground-truth table (``--ground-truth none``) only the supernet's scores,
costs and times are reported.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mdsearch.mdconv import cost
from mdsearch.results import kendall_tau_ci
from mdsearch.search import (
    PROXY_RECIPE,
    SUPERNET_RECIPE,
    DataSettings,
    SupernetSettings,
    score_subnet,
    train_supernet,
)
from mdsearch.space import atomic_write_text, load_space

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="paper", help="a space small enough to enumerate")
    p.add_argument("--data", default="phantom")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="the supernet training's seed")
    p.add_argument("--epochs", type=int, default=SUPERNET_RECIPE.epochs, help="supernet epochs")
    p.add_argument("--random-subnets", type=int, default=2, help="sandwich N")
    p.add_argument("--distill", action="store_true", help="in-place distillation (BigNAS)")
    p.add_argument("--kernel-transform", action="store_true",
                   help="Once-for-All's learned kernel transformation")  # fmt: skip
    p.add_argument("--per-choice-depthwise", action="store_true",
                   help="each kernel choice of a stage owns its depthwise weights and the "
                        "BatchNorm after them (pointwise layers shared)")  # fmt: skip
    p.add_argument("--recalibration-images", type=int, default=512)
    p.add_argument("--sample-seed", type=int, default=None,
                   help="recalibrate on another shuffled sample, drawn with this seed (default: "
                        "the fixed sample every sub-network gets)")  # fmt: skip
    p.add_argument("--stored-order-recalibration", action="store_true",
                   help="for comparison: recalibrate as before 2026-12-02, on the fixed subset "
                        "in stored order (class-sorted batches on Kermany)")  # fmt: skip
    p.add_argument("--budget", type=float, default=None,
                   help="refuse a training costing more stand-alone proxy trials than this "
                        "(default: the space's size)")  # fmt: skip
    p.add_argument("--ground-truth", default=None,
                   help="ground-truth CSV (default: benchmarks/results/ground_truth-<space>-"
                        "<data>-<res>px.csv; 'none': no comparison)")  # fmt: skip
    p.add_argument("--short", type=int, default=PROXY_RECIPE.epochs)
    p.add_argument("--long", type=int, default=8)
    p.add_argument("--checkpoint", default=None, help="supernet checkpoint (resumed if present)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="also write the report to this file")
    p.add_argument("--from-run", default=None, metavar="RUN",
                   help="take the scores of a `mdsearch run --strategy supernet` run folder "
                        "(its proxy=supernet rows) instead of training a supernet here")  # fmt: skip
    p.add_argument("--from-scores", default=None, metavar="CSV",
                   help="take the scores this script wrote beside an --out report (its .csv) "
                        "and compare them with the ground truth again (e.g. once it has more "
                        "seeds)")  # fmt: skip
    args = p.parse_args(argv)
    if args.from_run or args.from_scores:
        return _from_run(args)

    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    torch.set_num_threads(args.threads)
    space = load_space(args.space)
    data = DataSettings(args.data, resolution=args.resolution)
    dataset = data.load(progress=True)
    classes = len(dataset.label_names)
    archs = list(space.enumerate(num_classes=classes))
    recipe = replace(SUPERNET_RECIPE, epochs=args.epochs)
    settings = SupernetSettings(
        random_subnets=args.random_subnets,
        distill=args.distill,
        recalibration_images=args.recalibration_images,
        kernel_transform=args.kernel_transform,
        per_choice_depthwise=args.per_choice_depthwise,
    )
    tag = args.data.split("=")[0].split(",")[0]
    variant = f"e{args.epochs}-n{args.random_subnets}" + ("-distill" if args.distill else "")
    variant += "-kt" if args.kernel_transform else ""
    variant += "-pc" if args.per_choice_depthwise else ""
    checkpoint = Path(
        args.checkpoint or f"/tmp/mdsearch-bench-supernet-{args.space}-{tag}-{variant}.pt"
    )
    n_train = len(dataset.splits["train"])
    say(f"# bench_supernet {time.strftime('%Y-%m-%d %H:%M')} UTC, torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads (machine shared with other jobs)")  # fmt: skip
    say(f"space {space.name} ({space.size} architectures), data {dataset.source} "
        f"({'synthetic' if dataset.synthetic else 'real'}), {args.resolution} px, "
        f"train split {n_train} images, validation {len(dataset.splits['val'])}")  # fmt: skip
    say(f"supernet: {recipe.epochs} epochs x {recipe.images_per_epoch(n_train)} images, batch "
        f"{recipe.batch_size}, sandwich = largest + smallest + {settings.random_subnets} random"
        f"{', in-place distillation' if settings.distill else ''}"
        f"{', learned kernel transform' if settings.kernel_transform else ''}"
        f"{', per-choice depthwise weights' if settings.per_choice_depthwise else ''}, seed "
        f"{args.seed}, BN recalibration on {settings.recalibration_images} training images ("
        + ("in stored order, as before 2026-12-02)" if args.stored_order_recalibration else
           f"a shuffled sample, seed {args.sample_seed})" if args.sample_seed is not None else
           "the fixed shuffled sample)"))  # fmt: skip

    # -- train ---------------------------------------------------------------------------------
    budget = args.budget if args.budget is not None else float(space.size)
    started = time.perf_counter()

    def progress(training, stats) -> None:
        print(f"  epoch {training.epochs_done}/{recipe.epochs}: loss {stats.loss:.4f}, "
              f"{stats.images} images in {stats.seconds:.1f} s ({stats.images_per_s:.0f} img/s)",
              file=sys.stderr, flush=True)  # fmt: skip

    from mdsearch.search import proxy_equivalents

    planned = proxy_equivalents(recipe, settings, n_train)
    if planned > budget + 1e-9:
        say(f"refused: the training would cost {planned:g} stand-alone proxy trials > {budget:g}")
        return 2
    training = train_supernet(
        space, dataset, recipe, args.seed, settings=settings, checkpoint=checkpoint,
        on_epoch=progress,
    )  # fmt: skip
    wall = time.perf_counter() - started
    say(f"training: {training.images} images processed in {training.seconds:.0f} s of training "
        f"({training.images_per_s:.0f} images/s, every sub-network counted; this call "
        f"{wall:.0f} s wall, resumed from epoch {training.resumed_from}); cost "
        f"{training.proxy_equivalents:g} stand-alone proxy trials ({PROXY_RECIPE.epochs} x "
        f"{PROXY_RECIPE.images_per_epoch(n_train)} images each), budget {budget:g}")  # fmt: skip

    # -- score ---------------------------------------------------------------------------------
    rows = []
    for i, spec in enumerate(archs, 1):
        if args.stored_order_recalibration:
            result = _score_in_stored_order(training.supernet, spec, dataset, recipe, settings)
        else:
            result = score_subnet(training.supernet, spec, dataset, recipe, settings=settings,
                                  sample_seed=args.sample_seed)  # fmt: skip
        all_labels = float(np.nanmean(list(result.label_auc.values())))
        rows.append({
            "arch": spec.canonical, "arch_id": spec.arch_id,
            "mdconv": " ".join(str(s) for s in spec.mdconv_stages) or "-",
            "flops_m": round(cost(spec, 448).flops_m, 1), "supernet_auc": all_labels,
            "supernet_auc_rule": result.auc, "score_seconds": result.train_seconds,
        })  # fmt: skip
        print(f"  scored {i}/{len(archs)} {spec.arch_id}: AUC {all_labels:.4f} "
              f"({result.train_seconds:.1f} s)", file=sys.stderr, flush=True)  # fmt: skip
    table = pd.DataFrame(rows)
    secs = table["score_seconds"]
    say(f"scoring: {secs.mean():.1f} s per sub-network on CPU (median {secs.median():.1f}, "
        f"{settings.recalibration_images} recalibration + {len(dataset.splits['val'])} "
        f"validation images each; {secs.sum():.0f} s for all {len(archs)})")  # fmt: skip

    # -- compare with stand-alone training --------------------------------------------------------
    gt_path = args.ground_truth or str(
        RESULTS / f"ground_truth-{args.space}-{tag}-{args.resolution}px.csv"
    )
    if gt_path != "none" and Path(gt_path).exists():
        _compare(table, pd.read_csv(gt_path), gt_path, args.short, args.long, say)
    else:
        say(f"no ground-truth table ({gt_path}): ranking agreement not measured")
        say(table.drop(columns=["arch"]).to_string(index=False, float_format="%.4f"))
    if args.out:
        atomic_write_text(Path(args.out), "\n".join(lines) + "\n")
        # the scores at full precision, beside the report (ties in rounded AUCs change tau)
        scores = Path(args.out).with_suffix(".csv")
        atomic_write_text(scores, table.to_csv(index=False))
        print(f"wrote {args.out}, {scores}", file=sys.stderr)
    return 0


def _score_in_stored_order(supernet, spec, dataset, recipe, settings):
    """score_subnet as it was before 2026-12-02: the recalibration sample is the fixed subset of
    the evaluation index served in stored order (on Kermany, batches of one class)."""
    from mdsearch.search import ProxyResult, recalibrate_batchnorm
    from mdsearch.search.datasets import batches
    from mdsearch.search.training import validation_scores

    start = time.perf_counter()
    supernet.set_active(spec)
    stored = batches(dataset, "train", batch_size=settings.recalibration_batch, shuffle=False,
                     augment=False, subset=settings.recalibration_images, drop_last=True)  # fmt: skip
    recalibrate_batchnorm(supernet, stored, channels_last=recipe.channels_last)
    scores = validation_scores(supernet, dataset, recipe, device="cpu", deadline=None)
    seconds = time.perf_counter() - start
    return ProxyResult(auc=scores.auc, label_auc=scores.label_auc, y_true=scores.y_true,
                       y_score=scores.y_score, fidelity=float(recipe.epochs),
                       train_seconds=seconds, images_per_s=math.nan, history=[])  # fmt: skip


def _compare(table, gt, gt_path, short, long, say) -> None:
    """Kendall tau of the supernet and of the short stand-alone proxy against the long one."""
    long_runs = gt[gt["epochs"] == long]
    seeds = sorted(long_runs["seed"].unique())
    label_cols = [c for c in gt.columns if c.startswith("auc__")]

    def auc_matrix(epochs: int) -> np.ndarray:
        runs = gt[gt["epochs"] == epochs].set_index(["arch", "seed"])
        out = np.full((len(table), len(seeds)), math.nan)
        for i, arch in enumerate(table["arch"]):
            for j, seed in enumerate(seeds):
                # only the seeds this architecture has at the long setting: the same runs
                if (arch, seed) in runs.index and (
                    (long_runs["arch"] == arch) & (long_runs["seed"] == seed)
                ).any():
                    row = runs.loc[(arch, seed)]
                    out[i, j] = float(np.nanmean(row[label_cols].to_numpy(dtype=float)))
        return out

    long_auc, short_auc = auc_matrix(long), auc_matrix(short)
    have = np.isfinite(long_auc).any(axis=1)
    counts = np.isfinite(long_auc).sum(axis=1)
    say(f"ground truth {Path(gt_path).name}: {long}-epoch stand-alone runs, seeds "
        f"{', '.join(str(s) for s in seeds)}; {int(have.sum())}/{len(table)} architectures have "
        f"at least one ({int(counts.min())}-{int(counts.max())} seeds each)")  # fmt: skip
    table["gt_long"] = np.nanmean(np.where(have[:, None], long_auc, 0.0), axis=1)
    table.loc[~have, "gt_long"] = math.nan
    with np.errstate(all="ignore"):
        table["gt_short"] = [np.nanmean(r) if np.isfinite(r).any() else math.nan
                             for r in short_auc]  # fmt: skip
    table["seeds"] = counts
    ok = have & np.isfinite(table["gt_short"].to_numpy())
    sn = table["supernet_auc"].to_numpy()[ok, None]
    gl = table["gt_long"].to_numpy()[ok, None]
    gs = table["gt_short"].to_numpy()[ok, None]
    tau_sn = kendall_tau_ci(sn, gl, over="archs", n_resamples=2000)
    tau_short = kendall_tau_ci(gs, gl, over="archs", n_resamples=2000)
    say("")
    say(table.drop(columns=["arch"]).to_string(index=False, float_format="%.4f"))
    say("")
    say(f"Kendall tau-b vs the {long}-epoch stand-alone mean AUC over {int(ok.sum())} "
        f"architectures (95% percentile bootstrap over architectures, 2000 resamples):")  # fmt: skip
    say(f"  supernet          tau {tau_sn.tau:+.3f} [{tau_sn.low:+.3f}, {tau_sn.high:+.3f}] "
        f"p={tau_sn.p_value:.3f}")  # fmt: skip
    say(f"  {short}-epoch proxy   tau {tau_short.tau:+.3f} [{tau_short.low:+.3f}, "
        f"{tau_short.high:+.3f}] p={tau_short.p_value:.3f} (same seeds)")  # fmt: skip
    goal = tau_sn.tau >= 0.6 and tau_sn.low > 0
    say(f"goal tau >= 0.6 with the interval's lower end > 0: {'met' if goal else 'missed'}"
        + ("" if goal else f" (tau short of 0.6 by {max(0.0, 0.6 - tau_sn.tau):.3f}, "
                           f"lower end {tau_sn.low:+.3f})"))  # fmt: skip
    spread = np.nanstd(table["gt_long"], ddof=1)
    with np.errstate(all="ignore"):
        seed_sd = float(np.sqrt(np.nanmean(np.nanvar(long_auc[ok], axis=1, ddof=1))))
    say(f"spread of the {long}-epoch means over architectures: SD {spread:.4f} AUC (seed SD "
        f"{seed_sd:.4f}, so one mean of {len(seeds)} seeds is known to +-"
        f"{seed_sd / math.sqrt(len(seeds)):.4f}); of the supernet scores: SD "
        f"{np.nanstd(table['supernet_auc'], ddof=1):.4f}")  # fmt: skip
    # Where the rankings differ: per searched stage, the mean AUC of the architectures with
    # MD-Conv there minus those without (a balanced design in the paper space), by the supernet
    # and by the ground truth. Weight coupling shows as a supernet effect the truth lacks.
    stages = sorted({int(x) for m in table["mdconv"] for x in str(m).split() if x.isdigit()})
    effects = []
    for st in stages:
        has = table["mdconv"].map(lambda m, st=st: str(st) in str(m).split()).to_numpy()
        sn_eff = table["supernet_auc"][has].mean() - table["supernet_auc"][~has].mean()
        gt_eff = table["gt_long"][has].mean() - table["gt_long"][~has].mean()
        effects.append(f"stage {st}: supernet {sn_eff:+.4f}, {long}-epoch truth {gt_eff:+.4f}")
    say("MD-Conv effect per stage (mean AUC with it - without): " + "; ".join(effects))
    # How well the ground truth agrees with itself: each seed's long ranking against the mean
    # of the other seeds' (a ceiling for any proxy measured against this table).
    if len(seeds) >= 2:
        selfs = []
        for j in range(len(seeds)):
            rest = np.nanmean(np.delete(long_auc[ok], j, axis=1), axis=1)
            selfs.append(kendall_tau_ci(long_auc[ok][:, [j]], rest[:, None], n_resamples=0).tau)
        say(f"ground truth against itself: tau of one seed's {long}-epoch ranking vs the other "
            f"seeds' mean: {', '.join(f'{t:+.3f}' for t in selfs)} (mean {np.mean(selfs):+.3f})")  # fmt: skip


def _from_run(args: argparse.Namespace) -> int:
    """Compare a supernet run's own scores, or scores written before, with the ground truth
    (no training here)."""
    import json

    from mdsearch.search import proxy_kind

    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    if args.from_scores:
        table = pd.read_csv(args.from_scores, dtype={"arch_id": str})
        say(f"# bench_supernet --from-scores {args.from_scores} "
            f"({time.strftime('%Y-%m-%d %H:%M')} UTC)")  # fmt: skip
        return _compare_and_write(table, args, say, lines)
    run = Path(args.from_run)
    trials = pd.read_csv(run / "trials.csv", dtype={"proxy": str, "arch_id": str})
    rows = trials[(proxy_kind(trials) == "supernet") & (trials["status"] == "COMPLETE")]
    record = json.loads((run / "supernet.json").read_text())
    labels = [c for c in rows.columns if c.startswith("auc__")]
    table = pd.DataFrame({
        "arch": rows["arch"], "arch_id": rows["arch_id"],
        "mdconv": rows["mdconv_stages"].fillna("-").astype(str).replace("", "-"),
        "flops_m": rows["flops_m"].round(1),
        "supernet_auc": rows[labels].mean(axis=1), "supernet_auc_rule": rows["auc"],
        "score_seconds": rows["train_seconds"],
    }).groupby("arch", as_index=False).agg({
        "arch_id": "first", "mdconv": "first", "flops_m": "first", "supernet_auc": "mean",
        "supernet_auc_rule": "mean", "score_seconds": "median",
    })  # fmt: skip
    say(f"# bench_supernet --from-run {run} ({time.strftime('%Y-%m-%d %H:%M')} UTC)")
    say(f"supernet of the run: {record['epochs_done']} epochs, sandwich largest + smallest + "
        f"{record['random_subnets']} random, {record['train_seconds']:.0f} s of training "
        f"({record['images_per_s']:.0f} images/s on {record['threads']} {record['device']} "
        f"thread(s)), cost {record['proxy_equivalents']:g} stand-alone proxy trials; "
        f"{len(rows)} scores of {len(table)} architectures, median "
        f"{table['score_seconds'].median():.1f} s each")  # fmt: skip
    return _compare_and_write(table, args, say, lines)


def _compare_and_write(table: pd.DataFrame, args: argparse.Namespace, say, lines) -> int:
    gt_path = args.ground_truth or str(
        RESULTS / f"ground_truth-{args.space}-{args.data.split('=')[0]}-{args.resolution}px.csv"
    )
    _compare(table, pd.read_csv(gt_path), gt_path, args.short, args.long, say)
    if args.out:
        atomic_write_text(Path(args.out), "\n".join(lines) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
