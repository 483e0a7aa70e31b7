"""Where one proxy trial's time goes on a device: the loader alone, then ``proxy_train`` epoch by
epoch, and optionally a ``torch.profiler`` table of a few training steps.

Not a test. Uses the search's own code path (``proxy_train`` with ``PROXY_RECIPE`` at
``PROXY_DATA``'s resolution unless flags change them) on the paper's network (MD-Conv 1:1 in stage5) or the baseline.

    python benchmarks/bench_proxy.py                          # CPU, phantom, 64 px
    python benchmarks/bench_proxy.py --device cuda --profile 8
    python benchmarks/bench_proxy.py --data kermany=../shared/data/kermany224 --arch baseline
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from mdsearch.mdconv import build
from mdsearch.search.datasets import batches
from mdsearch.search.proxy import proxy_train
from mdsearch.search.settings import PROXY_DATA, PROXY_RECIPE, DataSettings, TrainRecipe
from mdsearch.search.training import make_optimizer, train_one_epoch
from mdsearch.space import ArchSpec


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="phantom")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arch", choices=["paper", "baseline"], default="paper")
    parser.add_argument("--resolution", type=int, default=PROXY_DATA.resolution)
    parser.add_argument("--epochs", type=int, default=PROXY_RECIPE.epochs)
    parser.add_argument("--batch-size", type=int, default=PROXY_RECIPE.batch_size)
    parser.add_argument("--train-subset", type=int, default=PROXY_RECIPE.train_subset)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--cudnn-benchmark", action="store_true")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="profile this many training steps after the epochs")  # fmt: skip
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    config = dataclasses.replace(
        PROXY_RECIPE,
        epochs=args.epochs,
        batch_size=args.batch_size,
        train_subset=args.train_subset,
    )
    start = time.perf_counter()
    data = DataSettings(args.data, resolution=args.resolution).load(progress=False)
    print(
        f"dataset {args.data} at {args.resolution} px loaded in {time.perf_counter() - start:.1f} s"
    )
    spec = ArchSpec.default("mobilenetv2_100", len(data.label_names))
    if args.arch == "paper":
        spec = spec.with_stage(5, (3, 5), (1, 1))
    print(
        f"{spec.canonical}, device {args.device}, threads {torch.get_num_threads()}, "
        f"torch {torch.__version__}, batch {config.batch_size}, {config.train_subset} img/epoch"
    )

    def loader():
        return batches(
            data, "train", batch_size=config.batch_size, shuffle=True, augment=config.augment,
            generator=torch.Generator().manual_seed(0), subset=config.train_subset,
        )  # fmt: skip

    start = time.perf_counter()
    n = sum(len(x) for x, _ in loader())
    print(f"loader alone (augmented, CPU): {n / (time.perf_counter() - start):.0f} img/s")

    marks = [time.perf_counter()]
    result = proxy_train(
        spec, data, config, seed=0, device=args.device, threads=args.threads or None,
        report=lambda row: marks.append(time.perf_counter()), eval_every_epoch=True,
    )  # fmt: skip
    for epoch, (t0, t1) in enumerate(zip(marks, marks[1:]), 1):
        print(f"epoch {epoch}: {t1 - t0:.2f} s (training + validation)")
    print(
        f"proxy_train: AUC {result.auc:.3f}, {result.images_per_s:.0f} training img/s, "
        f"{marks[-1] - marks[0]:.1f} s in all"
    )
    if args.profile:
        _profile(spec, config, loader, args)


def _profile(spec: ArchSpec, config: TrainRecipe, loader, args: argparse.Namespace) -> None:
    """The top operators of ``args.profile`` training steps (after one warm-up step)."""
    from itertools import islice

    from torch.profiler import ProfilerActivity, profile

    model = build(spec, head_init=config.head_init).to(args.device)
    model = model.to(memory_format=torch.channels_last)
    opt, sched = make_optimizer(
        model, name=config.optimizer, lr=config.lr, weight_decay=config.weight_decay,
        total_steps=args.profile + 1, schedule=config.schedule,
    )  # fmt: skip
    steps = list(islice(loader(), args.profile + 1))
    train_one_epoch(model, steps[:1], opt, sched, device=args.device)
    activities = [ProfilerActivity.CPU]
    if args.device.startswith("cuda"):
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        stats = train_one_epoch(model, steps[1:], opt, sched, device=args.device)
    print(f"\nprofiled {args.profile} steps: {stats.images / stats.seconds:.0f} img/s")
    sort = "self_cuda_time_total" if args.device.startswith("cuda") else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=15, max_name_column_width=40))


if __name__ == "__main__":
    main()
