"""Export a chosen architecture of a run: ``arch.json``, a model card, and the network.

``mdsearch export RUN --pick knee`` writes ``RUN/exports/<arch_id>/``:

    arch.json            the ArchSpec (``mdsearch.mdconv.build(ArchSpec.from_json(...))`` rebuilds it)
    config.json          timm-style: architecture, num_classes, input_size, mean, std, label names,
                         what the output means, the decision threshold when training chose one
    card.md              what it is, how it was found (objectives, settings, data), how to feed it
                         an image and read its output, how to load it
    model.onnx           checked with onnxruntime: outputs equal PyTorch's within 1e-4
    model.torchscript.pt traced TorchScript, checked the same way
    model.safetensors    the state dict (tensors only; load into ``build(spec)``), checked too

Each network file carries the same metadata as ``config.json`` (``mdsearch.*`` keys, see
:mod:`mdsearch.results.export_metadata`), so a user with only the file can preprocess an image as
mdsearch does and read the output as meant.

The formats are :data:`mdsearch.results.export_formats.EXPORT_FORMATS`; every file is written
atomically (:func:`mdsearch.space.files.atomic_write_bytes`).

Weights: the search keeps no weights (a proxy run is short), so the network is randomly
initialised (seeded) unless trained weights are given or ``train/weights.safetensors`` lies in
the export folder (where ``mdsearch train <export folder>/arch.json`` writes them); the card says
which.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mdsearch.space import ArchSpec, atomic_write_text, removed_on_failure

from .analysis import RunAnalysis, analyse_run
from .errors import ResultsError
from .export_formats import EXPORT_FORMATS, ExportFormat, OnnxExport, check_outputs
from .export_metadata import ModelInterface, read_threshold
from .uncertainty import DEFAULT_RESAMPLES
from .weights import check_weights_arch, load_weights

__all__ = [
    "FORMATS",
    "ONNX_SNIPPET",
    "PYTORCH_SNIPPET",
    "TRAINED_WEIGHTS",
    "Say",
    "export_architecture",
    "export_folder",
]

#: Names of every export format (``--format`` choices), in the order they are written.
FORMATS = tuple(EXPORT_FORMATS)
#: Where, inside the export folder, full training (``mdsearch train .../arch.json``) leaves the
#: best-on-validation weights.
TRAINED_WEIGHTS = Path("train") / "weights.safetensors"
#: Where export progress goes: ``print``-like, called as ``say(text)`` or ``say(text, end=" ")``.
Say = Callable[..., None]


#: The card's PyTorch loading code: imports, then the three lines (tested as printed).
PYTORCH_SNIPPET = (
    "import json",
    "from safetensors.torch import load_file",
    "from mdsearch.mdconv import build",
    "from mdsearch.space import ArchSpec",
    "",
    'config = json.load(open("config.json"))',
    'net = build(ArchSpec.parse(config["architecture"])).eval()',
    'net.load_state_dict(load_file("model.safetensors"))',
)
#: The card's onnxruntime code: an image file to probabilities with only the file's metadata
#: (tested as printed, against mdsearch's own prediction of the same file).
ONNX_SNIPPET = (
    "import json",
    "import numpy as np",
    "import onnxruntime as ort",
    "from PIL import Image",
    "",
    'session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])',
    "meta = session.get_modelmeta().custom_metadata_map",
    '_, height, width = json.loads(meta["mdsearch.input_size"])',
    'mean = np.array(json.loads(meta["mdsearch.mean"]), np.float32).reshape(3, 1, 1)',
    'std = np.array(json.loads(meta["mdsearch.std"]), np.float32).reshape(3, 1, 1)',
    'grey = Image.open("xray.png").convert("L").resize((width, height), Image.Resampling.BILINEAR)',
    "x = np.repeat(np.asarray(grey, np.float32)[None] / 255, 3, axis=0)  # grey to 3 channels",
    'logits = session.run(["logits"], {"image": ((x - mean) / std)[None]})[0][0]',
    "probability = 1 / (1 + np.exp(-logits))  # sigmoid, each label on its own",
    'labels = json.loads(meta["mdsearch.label_names"])',
    'threshold = float(meta.get("mdsearch.threshold", "nan"))  # when mdsearch train chose one',
)


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
    say: Say | None = None,
) -> dict[str, Path]:
    """Export the architecture a pick chooses from a run's Pareto front.

    Everything that can fail on the user's input (format names, the pick, the weights) is checked
    before the export folder is created; should a later step fail, the files and folders this
    call created are removed again, so a failed export leaves nothing behind.

    Args:
        run_dir: the run folder.
        pick: ``knee``, ``best-auc``, an architecture id, ``flops<=1250``, ``auc>=0.78``... (see
            :func:`mdsearch.results.picks.parse_pick`).
        formats: names in :data:`~mdsearch.results.export_formats.EXPORT_FORMATS` (``onnx``,
            ``torchscript``, ``safetensors``); ``arch.json``, ``config.json`` and ``card.md`` are
            always written.
        out_dir: export folder (default ``RUN/exports/<arch_id>``).
        weights: a safetensors file of trained weights for this architecture (default: the
            folder's ``train/weights.safetensors`` if present, else random initialisation).
        example_size: input side (pixels) of the example image for tracing and the checks
            (default: the resolution the network was trained or searched at); the ONNX graph
            takes any batch and size.
        opset: ONNX opset (of :class:`~mdsearch.results.export_formats.OnnxExport`).
        seed: torch seed of the random initialisation.
        n_resamples: bootstrap resamples for the AUC interval on the card (0: none).
        say: where progress goes, ``print``-like (``say(text, end=" ")`` starts a step's line,
            ``say(text)`` ends it): one line per step, with its seconds; None: silent.

    Returns:
        ``{"arch_json", "config", "card", "onnx", "torchscript", "safetensors"}`` -> paths
        (network formats as asked).

    Raises:
        ResultsError: unknown format, a pick that matches nothing, weights that do not fit the
            architecture, or an exported model whose outputs differ from PyTorch's.

    Example:
        >>> files = export_architecture("runs/demo", pick="flops<=1250")  # doctest: +SKIP
        >>> files["onnx"].name  # doctest: +SKIP
        'model.onnx'
    """
    chosen = _chosen_formats(formats, opset)
    with _step(say, f"reading run {run_dir} ({n_resamples} bootstrap resamples)"):
        analysis = analyse_run(run_dir, n_resamples=n_resamples)
        row = analysis.pick(pick)
    spec = ArchSpec.parse(str(row.name))
    _say(say, f"picked {spec.arch_id} by {pick!r}: {spec.canonical}")
    out = Path(out_dir) if out_dir is not None else export_folder(analysis.run.path, spec.arch_id)
    weights_path = Path(weights) if weights is not None else out / TRAINED_WEIGHTS
    trained = weights is not None or weights_path.is_file()
    with _step(say, f"building {spec.arch_id} with {_weights_source(weights_path, trained, seed)}"):
        net, interface = _network(analysis, spec, weights_path if trained else None, seed)
    size = int(example_size or interface.resolution)

    import torch

    example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        reference = net(example).numpy()
    with removed_on_failure(out):
        out.mkdir(parents=True, exist_ok=True)
        files = _write_description(out, spec, interface)
        metadata = interface.metadata()
        checks: list[str] = []
        for fmt in chosen:
            path = files[fmt.name] = out / fmt.filename
            with _step(say, f"writing {path}") as notes:
                fmt.save(net, example, path, spec, metadata)
                checks.append(check_outputs(fmt.label, fmt.load(path, spec)(example), reference))
                notes.append(checks[-1].split(" on a ")[0])  # "ONNX (...): max |output - ..."
        card = _card(analysis, row, spec, pick, interface, size, chosen, checks)
        atomic_write_text(files["card"], card)
    return files


def _chosen_formats(formats: Sequence[str], opset: int) -> list[ExportFormat]:
    """The registered formats named in ``formats``, in registry order, ONNX at ``opset``."""
    unknown = [name for name in formats if name not in EXPORT_FORMATS]
    if unknown:
        raise ResultsError(f"unknown export format {', '.join(unknown)}: use {', '.join(FORMATS)}")
    chosen = [EXPORT_FORMATS[name] for name in FORMATS if name in formats]
    return [replace(f, opset=opset) if isinstance(f, OnnxExport) else f for f in chosen]


def _weights_source(path: Path, trained: bool, seed: int) -> str:
    """How the progress line names the weights."""
    return f"weights {path}" if trained else f"random weights (torch seed {seed})"


def _network(
    analysis: RunAnalysis, spec: ArchSpec, weights: Path | None, seed: int
) -> tuple[Any, ModelInterface]:
    """The network to export (eval mode) and how to use it.

    With ``weights`` (checked against ``spec`` before anything is written): the label names,
    resolution and data their header records, and the threshold ``mdsearch train`` chose when
    its ``eval.json`` lies next to them. Without: a seeded random initialisation with the
    search's head init, at the proxy's resolution and the run's labels.
    """
    import torch

    from mdsearch.mdconv import build

    run = analysis.run
    proxy = run.config.get("proxy") or {}
    data = str((run.config.get("data") or {}).get("source", ""))
    labels, resolution = tuple(run.label_names), int(proxy.get("resolution") or 224)
    if len(labels) != spec.num_classes:  # a run folder too old to name its labels
        labels = tuple(f"output{i}" for i in range(spec.num_classes))
    threshold = rule = None
    if weights is None:
        torch.manual_seed(seed)
        # The search's own default head init: timm's starts few-class heads with huge logits.
        net = build(spec, head_init=str(proxy.get("head_init", "small")))
        note = f"random initialisation (torch seed {seed}); no trained weights yet"
    else:
        meta = check_weights_arch(spec, weights)
        net = load_weights(spec, weights)
        labels = tuple(meta.get("label_names") or labels)
        resolution = int(meta.get("resolution") or resolution)
        data = str(meta.get("data") or data)
        threshold, rule = read_threshold(weights, spec)
        note = f"trained weights from {weights}" + _trained_note(meta)
    interface = ModelInterface(
        arch=spec.canonical,
        label_names=labels,
        resolution=resolution,
        threshold=threshold,
        threshold_rule=rule,
        weights=note,
        data=data,
    )
    return net.eval(), interface


def _trained_note(meta: dict[str, Any]) -> str:
    """`` (epoch 12, validation AUC 0.8312)`` from a weights header, when it says."""
    parts = []
    if meta.get("epoch") is not None:
        parts.append(f"epoch {meta['epoch']}")
    if isinstance(meta.get("val_auc"), int | float):
        parts.append(f"validation AUC {meta['val_auc']:.4f}")
    return f" ({', '.join(parts)})" if parts else ""


def _write_description(out: Path, spec: ArchSpec, interface: ModelInterface) -> dict[str, Path]:
    """``arch.json`` and the timm-style ``config.json``; the card's path, written last."""
    files = {"arch_json": out / "arch.json", "config": out / "config.json", "card": out / "card.md"}
    atomic_write_text(files["arch_json"], spec.to_json() + "\n")
    atomic_write_text(files["config"], json.dumps(interface.config(), indent=2) + "\n")
    return files


def _say(say: Say | None, text: str) -> None:
    if say is not None:
        say(text)


@contextmanager
def _step(say: Say | None, what: str) -> Iterator[list[str]]:
    """One progress line: ``what ...`` when the step starts, ``done in 3.1 s`` (and any notes
    the step appends to the yielded list) when it ends, ``failed`` when it raises."""
    notes: list[str] = []
    if say is None:
        yield notes
        return
    say(f"{what} ...", end=" ")
    start = time.perf_counter()
    try:
        yield notes
    except BaseException:
        say("failed")
        raise
    say(f"done in {time.perf_counter() - start:.1f} s" + "".join(f"; {n}" for n in notes))


def _card(
    analysis: RunAnalysis,
    row: Any,
    spec: ArchSpec,
    pick: str,
    interface: ModelInterface,
    size: int,
    formats: Sequence[ExportFormat],
    checks: list[str],
) -> str:
    """The model card: what the network is, how it was found, how to feed it, how to load it."""
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
        f"- weights: {interface.weights}",
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
    lines += [
        "- `config.json`: timm-style description of the network, its input and its output",
    ]
    lines += [f"- {fmt.card_line(spec, size)}" for fmt in formats]
    lines += ["", "Checks:", ""] + [f"- {c}" for c in checks]
    lines += ["", *interface.card_lines()]
    names = {fmt.name for fmt in formats}
    if "safetensors" in names:
        lines += ["## Load in PyTorch", "", "```python", *PYTORCH_SNIPPET, "```", ""]
    if "onnx" in names:
        lines += [
            "## Predict an image file with onnxruntime (no mdsearch needed)",
            "",
            "```python",
            *ONNX_SNIPPET,
            "```",
            "",
        ]
    return "\n".join(line for line in lines if line is not None)
