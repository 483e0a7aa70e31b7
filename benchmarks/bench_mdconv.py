"""Forward + backward time of MDConv2d against a plain 3x3 depthwise conv and timm's MixedConv2d,
and whole-network training images/s of MobileNet-v2 with MD-Conv in stages 1,2,3,5 vs baseline.

One run, side by side, same input (default 8 x 192 x 56 x 56, channels_last; the output gradient
is a channels_last tensor, as a following BatchNorm hands back), reported as milliseconds per
fwd+bwd and as ratios to the plain 3x3 conv; layers are interleaved over rounds, best and median
round shown. MDConv2d runs both implementations: ``fused`` (what ``auto``, the default, picks on
CPU) and ``split`` (the split/convolve/concatenate reference, what timm's MixedConv2d does).
``--compile`` adds torch.compile'd rows (inductor; the first call compiles, excluded). Why it matters: FLOPs are not
speed (measured with this script: MD-Conv in all stride-2 stages trained at 0.72-0.79x the
baseline's images/s although its FLOPs are only 4% higher).

    python benchmarks/bench_mdconv.py                # CPU
    python benchmarks/bench_mdconv.py --device cuda  # GPU, if present
    python benchmarks/bench_mdconv.py --no-network   # layer ratios only (about 1 minute)
    python benchmarks/bench_mdconv.py --blocks       # + each MD-Conv block of the network
"""

from __future__ import annotations

import argparse
import time

import torch
from timm.layers import create_conv2d
from torch import nn
from torch.utils import benchmark

from mdsearch.mdconv import MDConv2d, build, settle_allocator
from mdsearch.space import ArchSpec, get_backbone

#: multiply-adds of a (3, 5) 1:1 MD-Conv over those of a 3x3 depthwise conv
FLOPS_RATIO = (9 + 25) / 2 / 9


def _plain(channels: int, k: int) -> nn.Module:
    return nn.Conv2d(channels, channels, k, padding=k // 2, groups=channels, bias=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--channels", type=int, default=192)
    parser.add_argument("--size", type=int, default=56, help="feature map side, pixels")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds")
    parser.add_argument("--number", type=int, default=3, help="fwd+bwd steps per round")
    parser.add_argument("--no-network", action="store_true", help="skip the whole-network part")
    parser.add_argument("--compile", action="store_true", help="add torch.compile'd layers")
    parser.add_argument(
        "--blocks", action="store_true", help="time each MD-Conv block's layer at the net sizes"
    )
    parser.add_argument("--net-sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--net-batch", type=int, default=32)
    parser.add_argument("--net-rounds", type=int, default=5)
    parser.add_argument("--net-steps", type=int, default=2, help="training steps per round")
    parser.add_argument(
        "--amp", action="store_true", help="network part under bf16 autocast (mixed precision)"
    )
    parser.add_argument("--nchw", action="store_true", help="NCHW tensors instead of channels_last")
    parser.add_argument("--no-layers", action="store_true", help="skip the single-layer table")
    parser.add_argument(
        "--cudnn-benchmark", action="store_true", help="let cuDNN time its algorithms (CUDA)"
    )
    args = parser.parse_args(argv)
    args.memory_format = torch.contiguous_format if args.nchw else torch.channels_last
    args.format_name = "NCHW" if args.nchw else "channels_last"
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    settle_allocator()  # else glibc's adaptive thresholds make repeated runs bimodal (see there)
    if args.threads:
        torch.set_num_threads(args.threads)

    if not args.no_layers:
        _layers(args)
    block_totals = _blocks(args) if args.blocks else {}
    if not args.no_network:
        _network(args, block_totals)


def _layers(args: argparse.Namespace) -> None:
    """fwd+bwd of one layer of each kind on the same input, interleaved rounds."""
    c = args.channels
    layers = {
        "dw 3x3 (nn.Conv2d)": _plain(c, 3),
        "dw 5x5 (nn.Conv2d)": _plain(c, 5),
        "MDConv2d 3+5 1:1 fused": MDConv2d(c, (3, 5), (1, 1), impl="fused"),
        "MDConv2d 3+5 1:1 split": MDConv2d(c, (3, 5), (1, 1), impl="split"),
        "MDConv2d 3+5 1:1 padded": MDConv2d(c, (3, 5), (1, 1), impl="padded"),
        "MDConv2d 3+5 1:3 fused": MDConv2d(c, (3, 5), (1, 3), impl="fused"),
        "timm MixedConv2d 3+5": create_conv2d(c, c, [3, 5], depthwise=True),
    }
    if args.compile:
        layers["dw 3x3 compiled"] = torch.compile(_plain(c, 3))
        layers["MDConv2d split compiled"] = torch.compile(MDConv2d(c, (3, 5), (1, 1), impl="split"))
    x = torch.randn(args.batch, c, args.size, args.size, device=args.device)
    x = x.contiguous(memory_format=args.memory_format).requires_grad_(True)
    grad = torch.randn_like(x)  # stride 1: the output has the input's shape and memory format

    def step(layer: nn.Module) -> None:
        layer(x).backward(grad)

    prepared = {}
    for name, layer in layers.items():
        layer = layer.to(args.device).to(memory_format=args.memory_format)
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
        f"fwd+bwd, input {args.batch}x{c}x{args.size}x{args.size} {args.format_name}, "
        f"device {args.device}, threads {torch.get_num_threads()}, torch {torch.__version__}, "
        f"best of {args.rounds} interleaved rounds of {args.number}"
    )
    print(f"FLOPs ratio of a 3+5 1:1 split to a 3x3: {FLOPS_RATIO:.2f}")
    print(f"{'layer':26s} {'best ms':>9s} {'median ms':>10s} {'x dw3x3':>8s}")
    for name, ts in times.items():
        ts = sorted(ts)
        print(f"{name:26s} {ts[0]:9.3f} {ts[len(ts) // 2]:10.3f} {ts[0] / base:8.2f}")


def _blocks(args: argparse.Namespace) -> dict[int, dict[str, float]]:
    """fwd+bwd of the depthwise layer of every block of stages 1, 2, 3, 5 of mobilenetv2_100 at
    the network's batch and input sizes: where the whole-network difference comes from. Returns
    the summed ms per input size and layer kind."""
    layout = get_backbone("mobilenetv2_100")
    strides = layout.output_strides()
    print(
        f"\nper block, fwd+bwd of the depthwise layer, batch {args.net_batch}, {args.format_name}; "
        f"best of {args.rounds} interleaved rounds of {args.number}"
    )
    print(f"{'input':>5s} {'stage':>5s} {'ch':>4s} {'map':>5s} {'s':>2s} "
          f"{'dw3x3 ms':>9s} {'fused ms':>9s} {'split ms':>9s} {'padded ms':>9s} "
          f"{'fused/dw3':>9s}")  # fmt: skip
    all_totals = {}
    for size in args.net_sizes:
        totals = all_totals[size] = {"dw3x3": 0.0, "fused": 0.0, "split": 0.0, "padded": 0.0}
        for stage in (1, 2, 3, 5):
            lay = layout.stages[stage]
            side = -(-size // (strides[stage] // lay.stride))  # the block's input map
            for i, c in enumerate(lay.dw_channels):
                stride = lay.stride if i == 0 else 1
                side_in = side if i == 0 else -(-side // lay.stride)
                layers = {
                    "dw3x3": nn.Conv2d(c, c, 3, stride, 1, groups=c, bias=False),
                    "fused": MDConv2d(c, (3, 5), (1, 1), stride, impl="fused"),
                    "split": MDConv2d(c, (3, 5), (1, 1), stride, impl="split"),
                    "padded": MDConv2d(c, (3, 5), (1, 1), stride, impl="padded"),
                }
                x = torch.randn(args.net_batch, c, side_in, side_in, device=args.device)
                x = x.contiguous(memory_format=args.memory_format).requires_grad_(True)
                best = {}
                for name, ms in _interleaved(layers, x, args).items():
                    best[name] = min(ms)
                    totals[name] += best[name]
                print(
                    f"{size:5d} {stage:5d} {c:4d} {side_in:5d} {stride:2d} {best['dw3x3']:9.3f} "
                    f"{best['fused']:9.3f} {best['split']:9.3f} {best['padded']:9.3f} "
                    f"{best['fused'] / best['dw3x3']:9.2f}"
                )
        print(
            f"{size:5d} {'all':>5s} {'':4s} {'':5s} {'':2s} {totals['dw3x3']:9.3f} "
            f"{totals['fused']:9.3f} {totals['split']:9.3f} {totals['padded']:9.3f} "
            f"{totals['fused'] / totals['dw3x3']:9.2f}"
        )
    return all_totals


def _interleaved(layers: dict, x: torch.Tensor, args: argparse.Namespace) -> dict:
    """ms per fwd+bwd of each layer over interleaved rounds (a list per layer)."""
    timers = {}
    for name, layer in layers.items():
        layer = layer.to(args.device).to(memory_format=args.memory_format)
        grad = torch.randn_like(layer(x))

        def step(layer=layer, grad=grad) -> None:
            layer(x).backward(grad)

        step()  # warm-up
        timers[name] = benchmark.Timer("step()", globals={"step": step})
    times: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(args.rounds):
        for name, timer in timers.items():
            times[name].append(timer.timeit(args.number).median * 1e3)
    return times


def _network(args: argparse.Namespace, block_totals: dict[int, dict[str, float]]) -> None:
    """Training images/s, MobileNet-v2 with MD-Conv 1:1 in stages 1,2,3,5 vs the baseline; with
    ``block_totals`` (from ``--blocks``), what the ratio would be if the MD-Conv layers cost their
    FLOPs ratio (1.89x their 3x3 layers' time) or their measured sum, all else equal."""
    base = ArchSpec.default("mobilenetv2_100", 14)
    md = base
    for i in (1, 2, 3, 5):
        md = md.with_stage(i, (3, 5), (1, 1))
    variants = {"baseline": (base, "auto"), "MD-Conv fused": (md, "fused")}
    variants["MD-Conv split"] = (md, "split")
    variants["MD-Conv padded"] = (md, "padded")
    print(
        f"\ntraining images/s (SGD step: fwd+bwd+update), mobilenetv2_100, batch "
        f"{args.net_batch}, {args.format_name}, device {args.device}, threads "
        f"{torch.get_num_threads()}{', bf16 autocast' if args.amp else ''}"
        f"{', cudnn.benchmark' if args.cudnn_benchmark else ''}; "
        f"MD-Conv 1:1 in stages 1,2,3,5 ({md.canonical}); best of "
        f"{args.net_rounds} interleaved rounds of {args.net_steps} steps"
    )
    print(f"{'input':>5s} {'network':16s} {'best img/s':>11s} {'median img/s':>13s} {'x base':>7s}")
    for size in args.net_sizes:
        x = torch.randn(args.net_batch, 3, size, size, device=args.device)
        x = x.contiguous(memory_format=args.memory_format)
        y = torch.randint(0, 14, (args.net_batch,), device=args.device)
        runs = {}
        for name, (spec, impl) in variants.items():
            torch.manual_seed(0)
            model = build(spec).to(args.device, memory_format=args.memory_format).train()
            for m in model.modules():
                if isinstance(m, MDConv2d):
                    m.impl = impl
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            runs[name] = (model, opt)
            _train_steps(model, opt, x, y, 1, args.amp)  # warm-up
        rates: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.net_rounds):
            for name, (model, opt) in runs.items():
                seconds = _train_steps(model, opt, x, y, args.net_steps, args.amp)
                rates[name].append(args.net_batch * args.net_steps / seconds)
        best_base = max(rates["baseline"])
        for name, rs in rates.items():
            rs = sorted(rs)
            print(
                f"{size:5d} {name:16s} {rs[-1]:11.1f} {rs[len(rs) // 2]:13.1f} "
                f"{rs[-1] / best_base:7.2f}"
            )
        if size in block_totals:
            step = 1e3 * args.net_batch / best_base  # ms per baseline training step
            t = block_totals[size]
            flops = step / (step + (FLOPS_RATIO - 1) * t["dw3x3"])
            fused = step / (step + t["fused"] - t["dw3x3"])
            print(
                f"{size:5d} the MD-Conv blocks' 3x3 layers take {t['dw3x3']:.1f} of the baseline's "
                f"{step:.1f} ms/step: at {FLOPS_RATIO:.2f}x (their FLOPs ratio) the network would "
                f"run at {flops:.2f}x, at the fused layers' measured sum at {fused:.2f}x"
            )


def _train_steps(
    model: nn.Module, opt, x: torch.Tensor, y: torch.Tensor, steps: int, amp: bool = False
) -> float:
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        torch.nn.functional.cross_entropy(logits.float(), y).backward()
        opt.step()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
