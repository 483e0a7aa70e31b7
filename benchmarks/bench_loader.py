"""Images/s served by the cached loader vs decoding the image files every epoch.

Not a test. Runs on the Kermany folder in ../shared/data when present, else on a generated
Kermany-layout fixture of 224 px JPEGs. Both sides produce the same batches (normalised float32
(B, 3, R, R) tensors and targets) from the train split, in shuffled order, one torch thread:

- cached:  ``batches(...)`` over the memory-mapped uint8 cache (built once, build time shown)
- decode:  per image ``PIL.Image.open`` + grayscale + antialiased resize, every epoch (what a
           plain ``torch.utils.data.Dataset`` over the files does)

    python benchmarks/bench_loader.py [--data kermany=PATH] [--resolution 64] [--epochs 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED_KERMANY = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kermany224"


def make_fixture(root: Path, n: int = 2000, size: int = 224) -> Path:
    """A Kermany-layout folder of ``n`` smooth random JPEGs (``size`` px)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        cls, name = (
            ("NORMAL", f"IM-{i:04d}-0001.jpeg")
            if i % 3 == 0
            else (
                "PNEUMONIA",
                f"person{i}_bacteria_{i}.jpeg",
            )
        )
        coarse = rng.integers(0, 255, (size // 16, size // 16), dtype=np.uint8)
        img = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
        (root / "train" / cls).mkdir(parents=True, exist_ok=True)
        img.convert("RGB").save(root / "train" / cls / name, quality=90)
    return root


def decode_epoch(files, labels, resolution, batch_size, rng):
    """One epoch of batches decoded from the files (the baseline)."""
    import torch
    from PIL import Image

    from mdsearch.search.datasets import MEAN, STD

    order = rng.permutation(len(files))
    for start in range(0, len(order) - len(order) % batch_size, batch_size):
        chunk = order[start : start + batch_size]
        pixels = np.empty((len(chunk), resolution, resolution), dtype=np.uint8)
        for k, i in enumerate(chunk):
            with Image.open(files[i]) as img:
                gray = img.convert("L").resize((resolution, resolution), Image.Resampling.BILINEAR)
                pixels[k] = np.asarray(gray)
        x = torch.from_numpy(pixels).unsqueeze(1).float().div_(255).sub_(MEAN).div_(STD)
        yield x.expand(-1, 3, -1, -1), torch.from_numpy(labels[chunk].astype(np.float32))


def rate(batch_iter) -> tuple[float, int]:
    start, images = time.perf_counter(), 0
    for x, _ in batch_iter:
        images += len(x)
    return images / (time.perf_counter() - start), images


def main() -> None:
    import torch

    from mdsearch.search.datasets import batches, load_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default=None, help="kermany=PATH (default: shared copy or fixture)"
    )
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        if args.data is None:
            if SHARED_KERMANY.is_dir():
                args.data = f"kermany={SHARED_KERMANY}"
            else:
                print("../shared/data/kermany224 absent: generating a 2,000-image fixture")
                args.data = f"kermany={make_fixture(Path(tmp) / 'kermany')}"
        root = Path(args.data.split("=", 1)[1].split(",")[0])
        cache = Path(tmp) / "cache"

        start = time.perf_counter()
        ds = load_dataset(args.data, resolution=args.resolution, cache_dir=cache, progress=False)
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        load_dataset(args.data, resolution=args.resolution, cache_dir=cache, progress=False)
        reload_s = time.perf_counter() - start

        train = ds.splits["train"]
        files = [root / item for item in ds.item_ids[train]]
        labels = ds.labels[train]
        gen = torch.Generator().manual_seed(0)
        rng = np.random.default_rng(0)
        rows = []
        for name, make in [
            (
                "cached (batches)",
                lambda: batches(
                    ds,
                    "train",
                    batch_size=args.batch_size,
                    shuffle=True,
                    augment=False,
                    generator=gen,
                ),
            ),
            (
                "cached + augment",
                lambda: batches(
                    ds,
                    "train",
                    batch_size=args.batch_size,
                    shuffle=True,
                    augment=True,
                    generator=gen,
                ),
            ),
            (
                "decode files each epoch",
                lambda: decode_epoch(files, labels, args.resolution, args.batch_size, rng),
            ),
        ]:
            rates = [rate(make())[0] for _ in range(args.epochs)]
            rows.append((name, float(np.median(rates))))

    print(
        f"data: {args.data}  ({len(train):,} train images, {args.resolution} px, "
        f"batch {args.batch_size}, {args.epochs} epochs each, 1 torch thread)"
    )
    print(
        f"cache build (first load, decode + resize all {len(ds):,}): {build_s:.1f} s "
        f"({len(ds) / build_s:,.0f} img/s); later loads map it in {reload_s:.2f} s"
    )
    baseline = rows[-1][1]
    print(f"{'loader':26s} {'images/s':>10s} {'vs decode':>10s}")
    for name, value in rows:
        print(f"{name:26s} {value:10,.0f} {value / baseline:9.1f}x")


if __name__ == "__main__":
    main()
