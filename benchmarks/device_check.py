"""The checks to run when a GPU is at hand, as one script: is MD-Conv exact there, how fast is it,
and how well does the latency table predict whole networks on that device.

1. ``MDConv2d`` fused and padded vs split on the device: outputs, input and weight gradients.
2. ``bench_mdconv.py`` on the device: layer ratios, per-block times, whole-network images/s; on
   CUDA at GPU batch sizes, then again with cuDNN autotuning, NCHW, and bf16 autocast.
3. ``bench_latency.py`` on the device: the table's prediction error over sampled architectures.
4. One proxy training of the paper's network on phantom data on the device (the search's path).

    python benchmarks/device_check.py --device cuda          # one GPU (~6 min on an H100)
    python benchmarks/device_check.py --device cpu --quick   # the same plumbing on CPU

Prints as it goes; exits 1 if the exactness check fails. Its output on an H100 (2026-11-26), which
chose ``auto = padded`` on CUDA: ``benchmarks/results/h100-2026-11-26-device_check.log``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import replace
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark scripts

import bench_latency  # noqa: E402
import bench_mdconv  # noqa: E402

from mdsearch.mdconv import MDConv2d  # noqa: E402
from mdsearch.search.proxy import proxy_train  # noqa: E402
from mdsearch.search.settings import PROXY_DATA, PROXY_RECIPE, DataSettings  # noqa: E402
from mdsearch.space import ArchSpec  # noqa: E402


def exactness(device: str) -> bool:
    """Fused and padded MD-Conv agree with split on ``device`` (float32, both memory formats,
    strides 1, 2)."""
    ok = True
    for channels, kernels, split, stride, size in [
        (96, (3, 5), (1, 1), 1, 56),
        (144, (3, 5), (1, 3), 2, 28),
        (60, (3, 5, 7), (1, 1, 1), 1, 7),
    ]:
        for channels_last, impl in itertools.product((True, False), ("fused", "padded")):
            torch.manual_seed(0)
            fused = MDConv2d(channels, kernels, split, stride, impl=impl).to(device)
            ref = MDConv2d(channels, kernels, split, stride, impl="split").to(device)
            ref.load_state_dict(fused.state_dict())
            x = torch.randn(4, channels, size, size, device=device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
            out1, out2 = fused(x1), ref(x2)
            grad = torch.randn_like(out1)
            out1.backward(grad)
            out2.backward(grad)
            pairs = [("output", out1, out2), ("input grad", x1.grad, x2.grad)]
            pairs += [
                (f"weight grad {k}x{k}", a.weight.grad, b.weight.grad)
                for k, a, b in zip(kernels, fused.convs, ref.convs)
            ]
            for name, a, b in pairs:
                err = (a - b).abs().max().item() / max(b.abs().max().item(), 1e-12)
                good = err < 1e-4
                ok &= good
                print(
                    f"  {channels}ch {kernels} {':'.join(map(str, split))} s{stride} {size}px "
                    f"{'NHWC' if channels_last else 'NCHW'} {impl} {name}: max rel. difference "
                    f"{err:.1e} {'ok' if good else 'MISMATCH'}"
                )
    return ok


def proxy(device: str, quick: bool) -> None:
    data = DataSettings(
        "phantom,n=600" if quick else "phantom", resolution=PROXY_DATA.resolution
    ).load(progress=False)
    config = replace(PROXY_RECIPE, epochs=2, train_subset=256 if quick else 1024)
    spec = ArchSpec.default("mobilenetv2_100", len(data.label_names)).with_stage(5, (3, 5), (1, 1))
    marks = [time.perf_counter()]
    result = proxy_train(
        spec, data, config, seed=0, device=device, eval_every_epoch=True,
        report=lambda row: marks.append(time.perf_counter()),
    )  # fmt: skip
    epochs = ", ".join(f"{b - a:.1f} s" for a, b in zip(marks, marks[1:]))
    print(
        f"  {spec.canonical}: AUC {result.auc:.3f}, {result.images_per_s:.0f} training img/s over "
        f"both epochs; per epoch of {config.train_subset} images + validation: {epochs} (the "
        f"first includes the process's one-time CUDA/cuDNN start-up on a GPU)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and sizes")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"no CUDA device here (torch {torch.__version__}): nothing to check", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    cuda = args.device.startswith("cuda")
    cudnn = torch.backends.cudnn.version() if cuda else None
    print(
        f"device {args.device} [{name}], torch {torch.__version__}, timm {timm.__version__}, "
        f"cuDNN {cudnn}, Python {sys.version.split()[0]}"
    )
    print("1. MD-Conv fused and padded vs split")
    ok = exactness(args.device)
    print("2. bench_mdconv")
    rounds = ["--rounds", "3", "--number", "2", "--net-rounds", "2"] if args.quick else []
    sizes = ["--net-sizes", "64"] if args.quick else ["--net-sizes", "64", "128", "224"]
    # A GPU needs larger batches than the CPU defaults to be measured at work, not at launch.
    batches = ["--batch", "64", "--net-batch", "128"] if cuda else []
    bench_mdconv.main(["--device", args.device, "--blocks", *batches, *rounds, *sizes])
    if cuda:  # the settings a GPU user would try: cuDNN autotuning, NCHW, bf16 mixed precision
        for extra in (["--cudnn-benchmark"], ["--cudnn-benchmark", "--nchw"],
                      ["--cudnn-benchmark", "--amp"]):  # fmt: skip
            bench_mdconv.main(
                ["--device", args.device, "--no-layers", *batches, *rounds, *sizes, *extra]
            )
    print("3. bench_latency")
    latency = ["--n", "3", "--rounds", "1"] if args.quick else ["--n", "8", "--rounds", "3"]
    bench_latency.main(["--device", args.device, *latency])
    print("4. one proxy training")
    proxy(args.device, args.quick)
    print("exactness: " + ("ok" if ok else "MISMATCH (see above)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
