"""Does a briefly trained network point at the phantom's lesions? Train, then score Grad-CAM.

    python benchmarks/bench_explain.py --out /tmp/bench-explain --epochs 3 --resolution 64

Runs the two user commands, ``mdsearch train ARCH --data phantom ...`` and then, per target
layer, ``mdsearch explain arch.json --weights weights.safetensors --boxes`` on the test split
(ground truth: the generator's lesion masks), and prints the pointing-game hit rate per finding
against chance (the mean lesion area fraction), the one-sided exact p-value, the fixed-point
baseline (always pointing at the pixel most often inside the finding) and the mean IoU, with the
wall time of each step. A finished training folder is reused (delete it to retrain).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

ARCH = "mobilenetv2_035:c5:k3,k3,k3,k3,k3,k3,k3"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="/tmp/bench-explain", help="work folder (/tmp/bench-explain)")
    p.add_argument("--arch", default=ARCH, help=f"architecture ({ARCH})")
    p.add_argument("--data", default="phantom", help="phantom set (phantom: 3,000 images)")
    p.add_argument("--resolution", type=int, default=64, help="input side in px (64)")
    p.add_argument("--epochs", type=int, default=3, help="training epochs (3)")
    p.add_argument("--layers", default="bn2,blocks.4", help="target layers (bn2,blocks.4)")
    p.add_argument("--threads", type=int, default=2, help="torch threads for training (2)")
    p.add_argument("--cache-dir", default=None, help="image cache folder")
    args = p.parse_args(argv)

    from mdsearch.cli.main import main as cli

    def mdsearch(command: list[str]) -> int:
        """Run one mdsearch command, its own output on stderr (stdout is the benchmark's table)."""
        with contextlib.redirect_stdout(sys.stderr):
            return cli(command)

    out = Path(args.out)
    train_dir = out / "train"
    cache = ["--cache-dir", args.cache_dir] if args.cache_dir else []
    start = time.monotonic()
    if not (train_dir / "eval.json").is_file():
        command = [
            "train", args.arch, "--data", args.data, "--resolution", str(args.resolution),
            "--epochs", str(args.epochs), "--threads", str(args.threads), "--out", str(train_dir),
            "--quiet", *cache,
        ]  # fmt: skip
        print("mdsearch " + " ".join(command), file=sys.stderr)
        if mdsearch(command) != 0:
            return 1
    train_s = time.monotonic() - start
    auc = json.loads((train_dir / "eval.json").read_text())
    print(f"# python benchmarks/bench_explain.py {' '.join(argv or sys.argv[1:])}")
    print(
        f"# trained {args.arch} on --data {args.data} at {args.resolution} px for {args.epochs} "
        f"epoch(s) ({train_s:.0f} s; 0 when reused); test mean AUC {auc.get('auc', float('nan')):.3f}"
    )
    for layer in args.layers.split(","):
        layer_dir = out / f"explain-{layer}"
        command = [
            "explain", str(train_dir / "arch.json"), "--weights", str(train_dir / "weights.safetensors"),
            "--boxes", "--layer", layer, "--out", str(layer_dir), "--images", "12", "--quiet", *cache,
        ]  # fmt: skip
        print("mdsearch " + " ".join(command), file=sys.stderr)
        start = time.monotonic()
        if mdsearch(command) != 0:
            return 1
        seconds = time.monotonic() - start
        saved = json.loads((layer_dir / "explain.json").read_text())
        side = saved["feature_side"]
        print(
            f"\n## layer {layer}: {side}x{side} cells at {saved['resolution']} px, "
            f"{len(saved['cases'])} cases of the {saved['split']} split, {seconds:.0f} s"
        )
        print(f"{'finding':28s} {'cases':>5s} {'hit rate':>8s} {'95% CI':>13s} {'chance':>7s} "
              f"{'ratio':>6s} {'p':>8s} {'fixed':>5s} {'IoU':>5s} {'flat':>4s}")  # fmt: skip
        for s in saved["scores"]:
            ratio = s["hit_rate"] / s["chance"] if s["chance"] else float("nan")
            print(
                f"{s['finding']:28s} {s['cases']:5d} {s['hit_rate']:8.3f} "
                f"[{s['hit_low']:.2f}, {s['hit_high']:.2f}] {s['chance']:7.3f} {ratio:6.1f} "
                f"{s['p_value']:8.2g} {s['fixed_point']:5.2f} {s['mean_iou']:5.2f} "
                f"{s['flat_maps']:4d}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
