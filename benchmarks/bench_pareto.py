"""Pareto front + hypervolume of random trial tables: mdsearch.results vs a brute-force O(n^2).

For 1e3, 1e4 and 1e5 random trials (AUC in [0.70, 0.80] and FLOPs in [1200, 1300] M, rounded so
ties and duplicates occur, like a real search revisiting architectures) it times, in one run:

- ``sort``: :func:`mdsearch.results.non_dominated` (2 objectives: O(n log n)) + exact hypervolume;
- ``nd``: the 3-objective method on the same points plus a random latency column;
- ``brute``: every pair compared (numpy, in blocks), then the same hypervolume, only where n^2
  is feasible (n <= --brute-max);

and prints the best of --repeat timings (milliseconds) with brute / sort ratios. The fronts are
checked to agree before anything is printed.

    python benchmarks/bench_pareto.py [--sizes 1000 10000 100000] [--brute-max 10000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mdsearch.results import hypervolume, non_dominated


def brute_non_dominated(p: np.ndarray, block: int = 512) -> np.ndarray:
    """The definition, O(n^2): no other point is <= everywhere and < somewhere."""
    keep = np.empty(len(p), dtype=bool)
    for start in range(0, len(p), block):
        rows = p[start : start + block]
        le = np.all(p[None, :, :] <= rows[:, None, :], axis=2)
        lt = np.any(p[None, :, :] < rows[:, None, :], axis=2)
        keep[start : start + block] = ~np.any(le & lt, axis=1)
    return keep


def _best_ms(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3, out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--brute-max", type=int, default=10_000, help="largest n for O(n^2)")
    parser.add_argument("--repeat", type=int, default=3, help="timings per cell (best is shown)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    print(
        f"{'n':>8} {'front':>6} {'sort ms':>9} {'nd(3) ms':>9} {'brute ms':>10} {'brute/sort':>11}"
    )
    for n in args.sizes:
        auc = rng.uniform(0.70, 0.80, n).round(4)
        flops = rng.uniform(1200, 1300, n).round(1)
        points = np.column_stack([-auc, flops])  # minimisation: AUC negated
        ref = np.array([-0.5, flops.max() * 1.1])
        latency = rng.uniform(3, 8, n).round(2)
        points3 = np.column_stack([points, latency])

        def fast(points=points, ref=ref):
            mask = non_dominated(points)
            return mask, hypervolume(points[mask], ref)

        sort_ms, (mask, hv) = _best_ms(fast, args.repeat)
        nd_ms, _ = _best_ms(lambda points3=points3: non_dominated(points3), args.repeat)
        brute = "-"
        ratio = "-"
        if n <= args.brute_max:

            def slow(points=points, ref=ref):
                m = brute_non_dominated(points)
                return m, hypervolume(points[m], ref)

            brute_ms, (brute_mask, brute_hv) = _best_ms(slow, max(1, args.repeat // 3))
            assert np.array_equal(mask, brute_mask) and np.isclose(hv, brute_hv)
            brute, ratio = f"{brute_ms:.1f}", f"{brute_ms / sort_ms:.0f}x"
        print(f"{n:>8} {int(mask.sum()):>6} {sort_ms:>9.2f} {nd_ms:>9.1f} {brute:>10} {ratio:>11}")


if __name__ == "__main__":
    main()
