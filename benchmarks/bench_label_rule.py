"""What labels with few validation positives do to the searched mean AUC, on the NIH sample.

    python benchmarks/bench_label_rule.py [--data chestxray14=../shared/data/nih-sample]

Trains the default proxy (64 px, 2 epochs) of the baseline and the paper's architecture with two
seeds each, and prints per training the mean validation AUC over every label with both classes
(the rule before issue 15) and over the labels with at least 10 positives and 10 negatives
(:data:`mdsearch.search.LABEL_RULE`), with the left-out labels' own AUCs. One thread.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mdsearch.search import (
    BOTH_CLASSES,
    LABEL_RULE,
    PROXY_DATA,
    PROXY_RECIPE,
    DataSettings,
    proxy_train,
    scored_validation_labels,
)
from mdsearch.search.training import label_aucs
from mdsearch.space import ArchSpec

NIH_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "nih-sample"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=f"chestxray14={NIH_SAMPLE}")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    data = DataSettings(args.data, resolution=PROXY_DATA.resolution, cache_dir=args.cache_dir)
    ds = data.load(progress=False)
    print("splits", {k: len(v) for k, v in ds.splits.items()})
    print(scored_validation_labels(ds).warning())
    archs = {
        "baseline": ArchSpec.default("mobilenetv2_100", len(ds.label_names)),
        "paper": ArchSpec.paper("mobilenetv2_100", len(ds.label_names)),
    }
    for name, spec in archs.items():
        for seed in (0, 1):
            start = time.time()
            r = proxy_train(spec, ds, PROXY_RECIPE, seed, threads=1)
            before, per_label = label_aucs(r.y_true, r.y_score, ds.label_names, BOTH_CLASSES)
            now, _ = label_aucs(r.y_true, r.y_score, ds.label_names, LABEL_RULE)
            left_out = LABEL_RULE.apply(r.y_true, ds.label_names).excluded
            own = {n: round(per_label[n], 3) for n in left_out}
            print(
                f"{name} seed {seed}: mean AUC over labels with both classes {before:.4f}, "
                f"with the rule {now:.4f}; left out {own}; {time.time() - start:.0f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
