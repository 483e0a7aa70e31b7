"""Export a chosen architecture of a run: ``arch.json``, a model card, and the network.

``mdsearch export RUN --pick knee`` writes ``RUN/exports/<arch_id>/``:

    arch.json            the ArchSpec (``mdsearch.mdconv.build(ArchSpec.from_json(...))`` rebuilds it)
    card.md              what it is, how it was found (objectives, settings, data), how to load it
    model.safetensors    the state dict (tensors only; load into ``build(spec)``)
    model.onnx           checked with onnxruntime: outputs equal PyTorch's within 1e-4
    model.torchscript.pt traced TorchScript, checked the same way

Weights: the search keeps no weights (a proxy run is short), so the network is randomly
initialised (seeded) unless trained weights are given or ``train/weights.safetensors`` lies in
the export folder (where ``mdsearch train <export folder>/arch.json`` writes them); the card says
which.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdsearch.space import ArchSpec

from .analysis import RunAnalysis, analyse_run
from .errors import ResultsError

__all__ = ["FORMATS", "TRAINED_WEIGHTS", "export", "export_folder"]

FORMATS = ("onnx", "torchscript", "safetensors")
#: Where, inside the export folder, full training (``mdsearch train .../arch.json``) leaves the
#: best-on-validation weights.
TRAINED_WEIGHTS = Path("train") / "weights.safetensors"
_TOLERANCE = 1e-4


def export_folder(run_dir: str | Path, arch_id: str) -> Path:
    """Where the export of ``arch_id`` from a run goes: ``RUN/exports/<arch_id>``."""
    return Path(run_dir) / "exports" / arch_id


def export(
    run_dir: str | Path,
    pick: str = "knee",
    formats: Sequence[str] = FORMATS,
    *,
    out_dir: str | Path | None = None,
    weights: str | Path | None = None,
    example_size: int | None = None,
    opset: int = 17,
    seed: int = 0,
    n_resamples: int = 1000,
) -> dict[str, Path]:
    """Export the architecture a pick chooses from a run's Pareto front.

    Args:
        run_dir: the run folder.
        pick: ``knee``, ``best-auc``, ``flops<=1250``, ``auc>=0.78``... (see
            :func:`mdsearch.results.pareto.parse_pick`).
        formats: any of ``onnx``, ``torchscript``, ``safetensors`` (``arch.json`` and
            ``card.md`` are always written).
        out_dir: export folder (default ``RUN/exports/<arch_id>``).
        weights: a safetensors file of trained weights for this architecture (default: the
            folder's ``train/weights.safetensors`` if present, else random initialisation).
        example_size: input side (pixels) of the example image for tracing and the checks
            (default: the proxy's training resolution); the ONNX graph takes any batch and size.
        opset: ONNX opset.
        seed: torch seed of the random initialisation.
        n_resamples: bootstrap resamples for the AUC interval on the card (0: none).

    Returns:
        ``{"arch_json", "card", "safetensors", "onnx", "torchscript"}`` -> paths (formats asked).

    Raises:
        ResultsError: unknown format, a pick that matches nothing, weights that do not fit the
            architecture, or an exported model whose outputs differ from PyTorch's.

    Example:
        >>> files = export("runs/demo", pick="flops<=1250")  # doctest: +SKIP
        >>> files["onnx"].name  # doctest: +SKIP
        'model.onnx'
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ResultsError(f"unknown export format {', '.join(unknown)}: use {', '.join(FORMATS)}")
    analysis = analyse_run(run_dir, n_resamples=n_resamples)
    row = analysis.pick(pick)
    spec = ArchSpec.parse(str(row.name))
    out = Path(out_dir) if out_dir is not None else export_folder(analysis.run.path, spec.arch_id)
    out.mkdir(parents=True, exist_ok=True)
    files = {"arch_json": out / "arch.json", "card": out / "card.md"}
    files["arch_json"].write_text(spec.to_json() + "\n")

    import torch

    from mdsearch.mdconv import build

    proxy = analysis.run.config.get("proxy") or {}
    torch.manual_seed(seed)
    # The search's own default head init: timm's starts few-class heads with huge logits.
    net = build(spec, head_init=str(proxy.get("head_init", "small"))).eval()
    weights_path = Path(weights) if weights is not None else out / TRAINED_WEIGHTS
    if weights is not None or weights_path.is_file():
        _load_weights(net, weights_path, spec)
        weights_note = f"trained weights from {weights_path}"
    else:
        weights_note = f"random initialisation (torch seed {seed}); no trained weights yet"
    size = int(example_size or proxy.get("resolution") or 224)
    example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        reference = net(example).numpy()

    checks: list[str] = []
    if "safetensors" in formats:
        from safetensors.torch import save_file

        files["safetensors"] = out / "model.safetensors"
        state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
        save_file(state, files["safetensors"], metadata={"mdsearch.arch": spec.canonical})
    if "torchscript" in formats:
        files["torchscript"] = out / "model.torchscript.pt"
        with torch.no_grad(), warnings.catch_warnings():
            # torch 2.x marks TorchScript deprecated; it is still what many deployments load.
            warnings.simplefilter("ignore", FutureWarning)
            traced = torch.jit.trace(net, example)
            traced.save(str(files["torchscript"]))
            loaded = torch.jit.load(str(files["torchscript"]))
            checks.append(_check("TorchScript", loaded(example).numpy(), reference))
    if "onnx" in formats:
        files["onnx"] = out / "model.onnx"
        _export_onnx(net, example, files["onnx"], opset)
        checks.append(_check("ONNX (onnxruntime)", _run_onnx(files["onnx"], example), reference))

    files["card"].write_text(_card(analysis, row, spec, pick, weights_note, size, files, checks))
    return files


def _load_weights(net: Any, path: Path, spec: ArchSpec) -> None:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (OSError, SafetensorError) as exc:
        raise ResultsError(f"cannot read weights {path}: {exc}") from None
    # Files written by mdsearch name their architecture: refuse another one's weights.
    arch = meta.get("mdsearch.arch") or meta.get("arch")
    if arch and arch != spec.canonical:
        raise ResultsError(f"weights {path} are for {arch}, not {spec.canonical}")
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ResultsError(f"weights {path} do not fit this architecture ({first})") from None


def _export_onnx(net: Any, example: Any, path: Path, opset: int) -> None:
    import torch

    dims = {0: "batch", 2: "height", 3: "width"}
    # The TorchScript-based exporter: works offline for timm MobileNets with MD-Conv's
    # split/concat and keeps the graph's batch and image size dynamic.
    torch.onnx.export(
        net,
        (example,),
        str(path),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": dims, "logits": {0: "batch"}},
        opset_version=opset,
        dynamo=False,
    )


def _run_onnx(path: Path, example: Any) -> np.ndarray:
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"image": example.numpy()})[0]


def _check(what: str, got: np.ndarray, want: np.ndarray) -> str:
    diff = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("inf")
    # float32 rounding grows with the logits' size: the bound is 1e-4 of their scale (>= 1).
    scale = max(1.0, float(np.max(np.abs(want))))
    if not diff <= _TOLERANCE * scale:
        raise ResultsError(
            f"{what} export differs from PyTorch by {diff:.2e} (> {_TOLERANCE:g} x {scale:.3g}): "
            "do not use this file; report the architecture string"
        )
    return (
        f"{what}: max |output - PyTorch| = {diff:.1e} on a 2-image example "
        f"(logits up to {scale:.3g}; bound {_TOLERANCE:g} x that)"
    )


def _card(
    analysis: RunAnalysis,
    row: Any,
    spec: ArchSpec,
    pick: str,
    weights_note: str,
    size: int,
    files: dict[str, Path],
    checks: list[str],
) -> str:
    run = analysis.run
    data = run.config.get("data") or {}
    proxy = run.config.get("proxy") or {}
    input_size = run.input_size
    stages = ", ".join(f"stage{i}" for i in spec.mdconv_stages) or "none (the baseline)"
    auc = f"{row['auc']:.4f}"
    if not np.isnan(row.get("auc_ci_low", np.nan)):
        auc += f" [{row['auc_ci_low']:.4f}, {row['auc_ci_high']:.4f}] ({analysis.level:.0%} CI)"
    lines: list[str | None] = [f"# {spec.arch_id}: {spec.backbone} with MD-Conv in {stages}", ""]
    if run.synthetic:
        lines += [
            "> **Found on synthetic data** (generated phantom images, not chest X-rays): the "
            "numbers below check the pipeline and say nothing about real findings.",
            "",
        ]
    lines += [
        f"- architecture: `{spec.canonical}`",
        f"- chosen from run `{run.name}` by pick `{pick}`"
        + (" (the knee of the front)" if row.name == analysis.knee else ""),
        f"- mean validation AUC (proxy): {auc}, over {int(row['seeds'])} seed(s)",
        f"- FLOPs: {row['flops_m']:.1f} M multiply-adds at {input_size}x{input_size}"
        if input_size
        else f"- FLOPs: {row['flops_m']:.1f} M multiply-adds",
        f"- parameters: {row['params_m']:.3f} M" if "params_m" in row else None,
        f"- weights: {weights_note}",
        "",
        "## How it was found",
        "",
        f"- objectives: {', '.join(f'{o.column} ({o.direction})' for o in analysis.objectives)}",
        f"- data: {data.get('name', '?')} (source {data.get('source', '?')}), labels: "
        + ", ".join(run.label_names),
        f"- proxy training: {json.dumps(proxy, sort_keys=True)}",
        f"- search: sampler {run.config.get('sampler', '?')}, budget "
        f"{run.config.get('budget', '?')}, seed {run.config.get('seed', '?')}; "
        f"{analysis.counts['eligible']} of {analysis.counts['total']} trials finished the proxy, "
        f"{len(analysis.front)} architectures on the front",
        "",
        "## Files",
        "",
        "- `arch.json`: the architecture (mdsearch ArchSpec)",
    ]
    if "safetensors" in files:
        lines.append("- `model.safetensors`: state dict")
    if "onnx" in files:
        lines.append(
            f"- `model.onnx`: input `image` (N, 3, H, W), output `logits` (N, {spec.num_classes})"
        )
    if "torchscript" in files:
        lines.append(f"- `model.torchscript.pt`: traced at {size}x{size}")
    lines += ["", "Checks:", ""] + [f"- {c}" for c in checks]
    lines += [
        "",
        "## Load",
        "",
        "```python",
        "from mdsearch.space import ArchSpec",
        "from mdsearch.mdconv import build",
        "from safetensors.torch import load_file",
        "",
        'net = build(ArchSpec.from_json("arch.json"))',
        'net.load_state_dict(load_file("model.safetensors"))',
        "```",
        "",
    ]
    return "\n".join(line for line in lines if line is not None)
