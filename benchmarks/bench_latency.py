"""How well the per-stage latency table predicts measured whole-network latency.

For a sample of architectures of a search space, each round builds a fresh table (not the user
cache: stem, head and every stage variant timed on its own) and then measures every whole network
(median ms per image, inference, batch 1 by default), architectures in a new order each round.
Table parts and whole networks are thus timed close together, round after round; the summary
compares per-architecture medians over rounds and shows the spread of the per-round errors. The
goal is within 10%.

One thread by default: with 2 threads on a 2-vCPU virtual machine the same network measured 12,
18 or 24 ms from one minute to the next (the second vCPU is not always there), which no table can
predict; pass ``--threads 2`` to see it.

    python benchmarks/bench_latency.py                        # 8 archs of the paper space, 224 px
    python benchmarks/bench_latency.py --space default --n 8 --rounds 5 --runtime onnxruntime
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from mdsearch.mdconv import build_latency_table, cost, measure_latency
from mdsearch.space import load_space


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="paper", help="search space preset or file")
    parser.add_argument("--n", type=int, default=8, help="architectures to sample")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="table + whole-network rounds")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runtime", default="torch", choices=["torch", "onnxruntime"])
    parser.add_argument("--max-seconds", type=float, default=2.0, help="per whole network")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    space = load_space(args.space)
    archs = list(space.enumerate())
    rng = random.Random(args.seed)
    sample = [archs[0], *rng.sample(archs[1:], min(args.n, len(archs)) - 1)]

    print(
        f"{space.backbone}, {args.input_size}x{args.input_size}, batch {args.batch}, "
        f"{args.threads} threads, torch {torch.__version__}; whole networks with runtime "
        f"{args.runtime} (the table is torch eager); {args.rounds} rounds"
    )
    measured: dict[str, list[float]] = {s.canonical: [] for s in sample}
    predicted: dict[str, list[float]] = {s.canonical: [] for s in sample}
    for r in range(args.rounds):
        start = time.perf_counter()
        table = build_latency_table(
            space.backbone,
            args.input_size,
            variants=sample,
            batch_size=args.batch,
            threads=args.threads,
            device=args.device,
        )
        table_s = time.perf_counter() - start
        order = sample[r % len(sample) :] + sample[: r % len(sample)]
        for spec in order:
            lat = measure_latency(
                spec,
                input_size=args.input_size,
                batch_size=args.batch,
                threads=args.threads,
                device=args.device,
                runtime=args.runtime,
                max_seconds=args.max_seconds,
            )
            measured[spec.canonical].append(lat.median_ms_per_image)
            predicted[spec.canonical].append(table.predict(spec))
        round_errors = [
            predicted[c][-1] / measured[c][-1] - 1 for c in measured
        ]  # this round's table vs this round's measurements
        print(
            f"round {r + 1}: table ({len(table.stages)} stage variants, stem, head) timed in "
            f"{table_s:.1f} s [{table.key['device_name']}]; errors "
            f"{100 * min(round_errors):+.1f}% .. {100 * max(round_errors):+.1f}%"
        )
    print(
        f"{'architecture':46s} {'MFLOPs':>7s} {'measured ms':>12s} {'range':>13s} "
        f"{'table ms':>9s} {'error %':>8s}"
    )
    errors = []
    for spec in sample:
        m, p = (
            statistics.median(measured[spec.canonical]),
            statistics.median(predicted[spec.canonical]),
        )
        err = (p - m) / m
        errors.append(err)
        lo, hi = min(measured[spec.canonical]), max(measured[spec.canonical])
        print(
            f"{spec.canonical.split(':', 2)[2]:46s} {cost(spec, args.input_size).flops_m:7.1f} "
            f"{m:12.2f} {lo:6.2f}-{hi:6.2f} {p:9.2f} {100 * err:+8.1f}"
        )
    if args.runtime != "torch":
        print(
            f"(the table predicts eager PyTorch; against {args.runtime} the 'error' is the ratio "
            "of the two runtimes, not the table's error)"
        )
    abs_err = [abs(e) for e in errors]
    print(
        f"table error over {len(errors)} architectures (medians over {args.rounds} rounds): mean "
        f"|error| {100 * statistics.mean(abs_err):.1f}%, max |error| {100 * max(abs_err):.1f}%, "
        f"mean signed {100 * statistics.mean(errors):+.1f}%"
    )


if __name__ == "__main__":
    main()
