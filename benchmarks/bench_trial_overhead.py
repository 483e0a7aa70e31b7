"""Per-trial overhead of running proxies through Ray Tune vs calling the trial function directly.

Both sides train the same tiny proxies (MobileNet-v2, phantom data, one trial at a time, the same
two architectures) in one run of this script, so machine noise hits both. Ray's fixed start-up is separated from its
per-trial cost by running the search at two budgets: marginal = (T(2N) - T(N)) / N.

    python benchmarks/bench_trial_overhead.py [--trials 4] [--resolution 32]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mdsearch.mdconv import cost
from mdsearch.search import (
    DataSettings,
    SearchSettings,
    TrainRecipe,
    prepare,
    proxy_train,
    run_search,
)
from mdsearch.space import load_space


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--data", default="phantom,n=300")
    args = ap.parse_args()
    proxy = TrainRecipe(epochs=1, train_subset=64, batch_size=32)
    with tempfile.TemporaryDirectory() as tmp:
        settings_data = DataSettings(
            args.data, resolution=args.resolution, cache_dir=str(Path(tmp) / "cache")
        )
        data = settings_data.load(progress=False)
        # Two architectures on both sides, so FLOPs counts are cached alike after their first use.
        space_file = Path(tmp) / "space.yaml"
        space_file.write_text("stages:\n  5: [base, k3.5s1:1]\n")
        space = load_space(str(space_file))
        specs = list(space.enumerate(len(data.label_names)))
        # Direct: the same work a trial does (FLOPs count + proxy), in this process, after one
        # warm-up call per architecture (Ray's marginal figure excludes its warm-up too).
        for spec in specs:
            cost(spec, 448)
            proxy_train(spec, data, proxy, seed=0)
        t0 = time.perf_counter()
        for i in range(args.trials):
            spec = specs[i % len(specs)]
            cost(spec, 448)
            proxy_train(spec, data, proxy, seed=i)
        direct = (time.perf_counter() - t0) / args.trials

        def search(budget: int) -> float:
            settings = SearchSettings(data=settings_data, space=str(space_file), budget=budget,
                                      sampler="random", proxy=proxy, max_concurrent=1)  # fmt: skip
            out = Path(tmp) / f"run{budget}"
            t = time.perf_counter()
            run_search(prepare(settings, out), quiet=True)
            return time.perf_counter() - t

        t_n = search(args.trials)
        t_2n = search(2 * args.trials)
    marginal = (t_2n - t_n) / args.trials
    startup = t_n - marginal * args.trials
    print(f"trials per side: {args.trials} (and {2 * args.trials} for the marginal), one at a time")
    print(f"direct call        : {direct:7.2f} s/trial")
    print(
        f"through Ray Tune   : {marginal:7.2f} s/trial marginal, plus {startup:5.1f} s start-up per run"
    )
    print(
        f"Ray's cost per trial: {marginal - direct:+7.2f} s (marginal - direct; start-up jitter of"
    )
    print(f"  ~1 s spread over {args.trials} trials limits the resolution to about 0.1 s)")


if __name__ == "__main__":
    main()
