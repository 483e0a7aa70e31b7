"""Ground truth for a small space: every architecture trained with several seeds at the proxy
setting and at a longer one (NAS-Bench style), so searches, samplers and confirmation policies
can be replayed against it instead of against their own noisy estimates.

    python benchmarks/ground_truth.py --space paper --data phantom --seeds 3 --short 2 --long 8

Writes (and, when killed, resumes from) ``benchmarks/results/ground_truth-<space>-<data>.csv``:
one row per (architecture, seed, epochs) with the validation mean AUC, per-label AUC, FLOPs
(M multiply-adds at 448x448) and training seconds; each run's validation scores go to a
``.npz`` beside it (float16) for image-bootstrap intervals in replays. One CPU thread per run,
as a search trial trains.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from mdsearch.mdconv import cost
from mdsearch.search.proxy import proxy_train
from mdsearch.search.settings import PROXY_RECIPE, DataSettings
from mdsearch.space import atomic_write_bytes, atomic_write_text, load_space

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="paper", help="a space small enough to enumerate")
    p.add_argument("--data", default="phantom")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=1000, help="seeds no search uses by default")
    p.add_argument("--short", type=int, default=PROXY_RECIPE.epochs, help="proxy epochs")
    p.add_argument("--long", type=int, default=8, help="reference epochs")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    space = load_space(args.space)
    data = DataSettings(args.data, resolution=args.resolution)
    dataset = data.load(progress=False)
    classes = len(dataset.label_names)
    archs = list(space.enumerate(num_classes=classes))
    tag = args.data.split("=")[0].split(",")[0]
    out = Path(args.out or RESULTS / f"ground_truth-{args.space}-{tag}-{args.resolution}px.csv")
    done = pd.read_csv(out) if out.exists() else pd.DataFrame(columns=["arch", "seed", "epochs"])
    have = set(zip(done["arch"], done["seed"], done["epochs"]))
    rows = done.to_dict("records")
    scores: dict[str, np.ndarray] = {}
    npz = out.with_suffix(".npz")
    if npz.exists():
        with np.load(npz) as saved:
            scores = {k: saved[k] for k in saved.files}
    jobs = [
        (spec, seed, epochs)
        for seed in range(args.first_seed, args.first_seed + args.seeds)
        for epochs in (args.short, args.long)
        for spec in archs
        if (spec.canonical, seed, epochs) not in have
    ]
    print(f"{len(archs)} architectures x {args.seeds} seeds x epochs {args.short},{args.long}: "
          f"{len(jobs)} trainings to go -> {out}", file=sys.stderr)  # fmt: skip
    start = time.monotonic()
    for i, (spec, seed, epochs) in enumerate(jobs, 1):
        result = proxy_train(spec, dataset, replace(PROXY_RECIPE, epochs=epochs), seed)
        c = cost(spec, 448)
        rows.append({
            "arch": spec.canonical, "arch_id": spec.arch_id,
            "mdconv_stages": " ".join(str(k) for k, s in enumerate(spec.stages)
                                      if len(s.kernels) > 1),
            "flops_m": round(c.flops_m, 2), "seed": seed, "epochs": epochs, "auc": result.auc,
            "train_seconds": round(result.train_seconds, 2),
            **{f"auc__{k}": v for k, v in result.label_auc.items()},
        })  # fmt: skip
        scores[f"{spec.arch_id}-{seed}-{epochs}"] = result.y_score.astype(np.float16)
        scores["y_true"] = result.y_true.astype(np.uint8)
        atomic_write_text(out, pd.DataFrame(rows).to_csv(index=False))
        buf = io.BytesIO()
        np.savez_compressed(buf, **scores)
        atomic_write_bytes(npz, buf.getvalue())
        eta = (time.monotonic() - start) / i * (len(jobs) - i)
        print(f"[{i}/{len(jobs)}] {spec.arch_id} seed {seed} {epochs} ep: AUC {result.auc:.4f} "
              f"({result.train_seconds:.0f} s; ETA {eta / 60:.0f} min)", file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
