"""Export a chosen architecture of a run: ``arch.json``, a model card, and the network.

``mdsearch export RUN --pick knee`` writes ``RUN/exports/<arch_id>/``:

    arch.json            the ArchSpec (``mdsearch.mdconv.build(ArchSpec.from_json(...))`` rebuilds it)
    card.md              what it is, how it was found (objectives, settings, data), how to load it
    model.onnx           checked with onnxruntime: outputs equal PyTorch's within 1e-4
    model.torchscript.pt traced TorchScript, checked the same way
    model.safetensors    the state dict (tensors only; load into ``build(spec)``), checked too

The formats are :data:`mdsearch.results.export_formats.EXPORT_FORMATS`; every file is written
atomically (:func:`mdsearch.space.files.atomic_write_bytes`).

Weights: the search keeps no weights (a proxy run is short), so the network is randomly
initialised (seeded) unless trained weights are given or ``train/weights.safetensors`` lies in
the export folder (where ``mdsearch train <export folder>/arch.json`` writes them); the card says
which.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mdsearch.space import ArchSpec
from mdsearch.space.files import atomic_write_text

from .analysis import RunAnalysis, analyse_run
from .errors import ResultsError
from .export_formats import EXPORT_FORMATS, ExportFormat, OnnxExport, check_outputs
from .uncertainty import DEFAULT_RESAMPLES

__all__ = ["FORMATS", "TRAINED_WEIGHTS", "export_architecture", "export_folder"]

#: Names of every export format (``--format`` choices), in the order they are written.
FORMATS = tuple(EXPORT_FORMATS)
#: Where, inside the export folder, full training (``mdsearch train .../arch.json``) leaves the
#: best-on-validation weights.
TRAINED_WEIGHTS = Path("train") / "weights.safetensors"


def export_folder(run_dir: str | Path, arch_id: str) -> Path:
    """Where the export of ``arch_id`` from a run goes: ``RUN/exports/<arch_id>``."""
    return Path(run_dir) / "exports" / arch_id


def export_architecture(
    run_dir: str | Path,
    pick: str = "knee",
    formats: Sequence[str] = FORMATS,
    *,
    out_dir: str | Path | None = None,
    weights: str | Path | None = None,
    example_size: int | None = None,
    opset: int = 17,
    seed: int = 0,
    n_resamples: int = DEFAULT_RESAMPLES,
) -> dict[str, Path]:
    """Export the architecture a pick chooses from a run's Pareto front.

    Args:
        run_dir: the run folder.
        pick: ``knee``, ``best-auc``, ``flops<=1250``, ``auc>=0.78``... (see
            :func:`mdsearch.results.picks.parse_pick`).
        formats: names in :data:`~mdsearch.results.export_formats.EXPORT_FORMATS` (``onnx``,
            ``torchscript``, ``safetensors``); ``arch.json`` and ``card.md`` are always written.
        out_dir: export folder (default ``RUN/exports/<arch_id>``).
        weights: a safetensors file of trained weights for this architecture (default: the
            folder's ``train/weights.safetensors`` if present, else random initialisation).
        example_size: input side (pixels) of the example image for tracing and the checks
            (default: the proxy's training resolution); the ONNX graph takes any batch and size.
        opset: ONNX opset (of :class:`~mdsearch.results.export_formats.OnnxExport`).
        seed: torch seed of the random initialisation.
        n_resamples: bootstrap resamples for the AUC interval on the card (0: none).

    Returns:
        ``{"arch_json", "card", "onnx", "torchscript", "safetensors"}`` -> paths (formats asked).

    Raises:
        ResultsError: unknown format, a pick that matches nothing, weights that do not fit the
            architecture, or an exported model whose outputs differ from PyTorch's.

    Example:
        >>> files = export_architecture("runs/demo", pick="flops<=1250")  # doctest: +SKIP
        >>> files["onnx"].name  # doctest: +SKIP
        'model.onnx'
    """
    unknown = [name for name in formats if name not in EXPORT_FORMATS]
    if unknown:
        raise ResultsError(f"unknown export format {', '.join(unknown)}: use {', '.join(FORMATS)}")
    chosen = [EXPORT_FORMATS[name] for name in FORMATS if name in formats]
    chosen = [replace(f, opset=opset) if isinstance(f, OnnxExport) else f for f in chosen]
    analysis = analyse_run(run_dir, n_resamples=n_resamples)
    row = analysis.pick(pick)
    spec = ArchSpec.parse(str(row.name))
    out = Path(out_dir) if out_dir is not None else export_folder(analysis.run.path, spec.arch_id)
    out.mkdir(parents=True, exist_ok=True)
    files = {"arch_json": out / "arch.json", "card": out / "card.md"}
    atomic_write_text(files["arch_json"], spec.to_json() + "\n")

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
    for fmt in chosen:
        path = files[fmt.name] = out / fmt.filename
        fmt.save(net, example, path, spec)
        checks.append(check_outputs(fmt.label, fmt.load(path, spec)(example), reference))

    card = _card(analysis, row, spec, pick, weights_note, size, chosen, checks)
    atomic_write_text(files["card"], card)
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


def _card(
    analysis: RunAnalysis,
    row: Any,
    spec: ArchSpec,
    pick: str,
    weights_note: str,
    size: int,
    formats: Sequence[ExportFormat],
    checks: list[str],
) -> str:
    run = analysis.run
    data = run.config.get("data") or {}
    proxy = run.config.get("proxy") or {}
    input_size = run.input_size
    stages = ", ".join(f"stage{i}" for i in spec.mdconv_stages) or "none (the baseline)"
    auc = f"{row['auc']:.4f}"
    if not np.isnan(row.get("auc_ci_low", np.nan)):
        auc += (
            f" [{row['auc_ci_low']:.4f}, {row['auc_ci_high']:.4f}] ({analysis.level:.0%} CI over "
            + (
                f"the validation images and training seeds: {analysis.seed_noise.describe()})"
                if analysis.seed_noise.known
                else "the validation images only: seed noise unknown)"
            )
        )
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
    lines += [f"- {fmt.card_line(spec, size)}" for fmt in formats]
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
