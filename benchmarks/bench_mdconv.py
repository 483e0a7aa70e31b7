"""Forward + backward time of MDConv2d against a plain 3x3 depthwise conv and timm's MixedConv2d.

One run, side by side, same input (default 8 x 192 x 56 x 56, channels_last), reported as
milliseconds per fwd+bwd and as ratios to the plain 3x3 conv. Why it matters: FLOPs are not speed
(DESIGN.md: MD-Conv in all stride-2 stages trained at 0.72-0.79x the baseline's images/s although
its FLOPs are only 4% higher), and the split-convolve-concatenate layer is what costs.

    python benchmarks/bench_mdconv.py                # CPU
    python benchmarks/bench_mdconv.py --device cuda  # GPU, if present
"""

from __future__ import annotations

import argparse

import torch
from timm.layers import create_conv2d
from torch import nn
from torch.utils import benchmark

from mdsearch.mdconv import MDConv2d


def _plain(channels: int, k: int) -> nn.Module:
    return nn.Conv2d(channels, channels, k, padding=k // 2, groups=channels, bias=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--channels", type=int, default=192)
    parser.add_argument("--size", type=int, default=56, help="feature map side, pixels")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--number", type=int, default=5, help="fwd+bwd steps per round")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    c = args.channels
    layers = {
        "dw 3x3 (nn.Conv2d)": _plain(c, 3),
        "dw 5x5 (nn.Conv2d)": _plain(c, 5),
        "MDConv2d 3+5 1:1": MDConv2d(c, (3, 5), (1, 1)),
        "MDConv2d 3+5 1:3": MDConv2d(c, (3, 5), (1, 3)),
        "timm MixedConv2d 3+5": create_conv2d(c, c, [3, 5], depthwise=True),
    }
    x = torch.randn(args.batch, c, args.size, args.size, device=args.device)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)

    def step(layer: nn.Module) -> None:
        layer(x).sum().backward()

    prepared = {}
    for name, layer in layers.items():
        layer = layer.to(args.device).to(memory_format=torch.channels_last)
        step(layer)  # warm-up (cuDNN algorithm choice, allocator)
        prepared[name] = benchmark.Timer("step(layer)", globals={"step": step, "layer": layer})
    # Interleave the layers over several rounds and keep each layer's best round: on a shared
    # machine, load drifts during a run, and the minimum is the least disturbed estimate.
    times: dict[str, list[float]] = {name: [] for name in prepared}
    for _ in range(args.rounds):
        for name, timer in prepared.items():
            times[name].append(timer.timeit(args.number).median * 1e3)

    base = min(times["dw 3x3 (nn.Conv2d)"])
    print(
        f"fwd+bwd, input {args.batch}x{c}x{args.size}x{args.size} channels_last, "
        f"device {args.device}, threads {torch.get_num_threads()}, torch {torch.__version__}, "
        f"best of {args.rounds} interleaved rounds of {args.number}"
    )
    print(f"{'layer':24s} {'best ms':>9s} {'median ms':>10s} {'x dw3x3':>8s}")
    for name, ts in times.items():
        ts = sorted(ts)
        print(f"{name:24s} {ts[0]:9.3f} {ts[len(ts) // 2]:10.3f} {ts[0] / base:8.2f}")


if __name__ == "__main__":
    main()
