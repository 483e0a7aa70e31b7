"""How well the per-stage latency table predicts measured whole-network latency.

Builds a fresh table (not the user cache) for a sample of architectures of a search space, then
measures each whole network (median ms per image, inference, batch 1 by default) and prints the
table's prediction beside it with the relative error. The goal is within 10%.

    python benchmarks/bench_latency.py                        # 8 archs of the paper space, 224 px
    python benchmarks/bench_latency.py --space default --n 8 --threads 2 --runtime onnxruntime
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
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runtime", default="torch", choices=["torch", "onnxruntime"])
    parser.add_argument("--max-seconds", type=float, default=3.0, help="per whole network")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    space = load_space(args.space)
    archs = list(space.enumerate())
    rng = random.Random(args.seed)
    sample = [archs[0], *rng.sample(archs[1:], min(args.n, len(archs)) - 1)]

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
    print(
        f"latency table: {space.backbone}, {args.input_size}x{args.input_size}, batch "
        f"{args.batch}, {table.key['device']} [{table.key['device_name']}], {args.threads} "
        f"threads, torch {torch.__version__}: stem, head and {len(table.stages)} stage variants "
        f"timed in {table_s:.1f} s"
    )
    print(f"whole networks measured with runtime {args.runtime} (the table is torch eager)")
    print(
        f"{'architecture':46s} {'MFLOPs':>7s} {'measured ms':>12s} {'+-%':>5s} "
        f"{'table ms':>9s} {'error %':>8s}"
    )
    errors = []
    for spec in sample:
        lat = measure_latency(
            spec,
            input_size=args.input_size,
            batch_size=args.batch,
            threads=args.threads,
            device=args.device,
            runtime=args.runtime,
            max_seconds=args.max_seconds,
        )
        predicted = table.predict(spec)
        err = (predicted - lat.median_ms_per_image) / lat.median_ms_per_image
        errors.append(err)
        print(
            f"{spec.canonical.split(':', 2)[2]:46s} {cost(spec, args.input_size).flops_m:7.1f} "
            f"{lat.median_ms_per_image:12.2f} {100 * lat.rel_error:5.1f} {predicted:9.2f} "
            f"{100 * err:+8.1f}"
        )
    abs_err = [abs(e) for e in errors]
    print(
        f"table error over {len(errors)} architectures: mean |error| "
        f"{100 * statistics.mean(abs_err):.1f}%, max |error| {100 * max(abs_err):.1f}%, "
        f"mean signed {100 * statistics.mean(errors):+.1f}%"
    )


if __name__ == "__main__":
    main()
