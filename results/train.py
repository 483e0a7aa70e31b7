"""Full training of a chosen architecture: checkpointed, resumable, best-on-validation weights.

The same loop as a search trial (:mod:`mdsearch.search.training`, as in
:func:`mdsearch.search.proxy.proxy_train`: seeded init, the small head init, AdamW + cosine,
BCE-with-logits, the shared augmentation), run longer and at a higher resolution, with a
validation pass after every epoch.

Output folder (``mdsearch train`` default: ``<folder of arch.json>/train/``)::

    checkpoint.pt        after every epoch, written atomically: model, optimizer, scheduler,
                         epoch, RNG states (torch, data order/augmentation generator, CUDA), the
                         best weights so far, the history, the settings it was started with
    history.csv          per epoch: training loss, mean validation AUC (and per label), learning
                         rate, seconds, images/s, best
    train.json           settings, data, device, best epoch (rewritten when training ends)
    weights.safetensors  the BEST-ON-VALIDATION weights (highest mean validation AUC over the
                         epochs; ties keep the earlier epoch), header metadata as in
                         :mod:`mdsearch.results.weights`
    arch.json            the architecture (``ArchSpec.load`` / ``build`` rebuild the network)

``resume=True`` continues from ``checkpoint.pt`` at the next epoch with the saved RNG states; on a
CPU with the same thread count it ends with the same weights as an uninterrupted run (tested).
The settings, architecture and data must be those of the checkpoint (checked).

Defaults (:class:`TrainConfig`, why): resolution 224 (4x the proxy's side: stage5 maps are 14x14
-> 7x7, so a 5x5 kernel has room; the paper trains at 448, which costs 4x more), 30 epochs,
batch 64, AdamW lr 3e-3, weight decay 1e-4, cosine to 0: the proxy's recipe, which was stable from
scratch; every image of the train split each epoch. They suit a GPU: on 2 shared CPU threads
MobileNet-v2 (1.0) trains at about 2 images/s at 224 px (measured), i.e. ~35 min per epoch of
the Kermany train split; on a CPU pass e.g. ``--resolution 96 --epochs 10`` or ``--train-subset``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mdsearch.space import ArchSpec

from .errors import ResultsError
from .weights import atomic_write_bytes, save_weights

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "CHECKPOINT",
    "TrainConfig",
    "TrainResult",
    "saved_settings",
    "train_and_evaluate",
    "train_architecture",
]

CHECKPOINT = "checkpoint.pt"
_FORMAT = 1


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a full training run (everything that changes the resulting weights).

    Args:
        resolution: square input side in pixels.
        epochs: training epochs.
        batch_size: images per optimizer step.
        train_subset: images per epoch drawn from the train split (None: all of them).
        lr: peak learning rate.
        weight_decay: weight decay on conv/linear weights.
        optimizer: ``adamw`` or ``sgd``.
        schedule: ``cosine`` (per step, to 0) or ``constant``.
        augment: random shift/scale/rotation of training images.
        head_init: ``small`` (re-initialised classifier, as in the search) or ``timm``.
        seed: seeds the initialisation, the data order and the augmentation.
        channels_last: NHWC memory format (faster depthwise convs on CPU).
    """

    resolution: int = 224
    epochs: int = 30
    batch_size: int = 64
    train_subset: int | None = None
    lr: float = 3e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    schedule: str = "cosine"
    augment: bool = True
    head_init: str = "small"
    seed: int = 0
    channels_last: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for the checkpoint and train.json)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class TrainResult:
    """What :func:`train_architecture` produced.

    Attributes:
        model: the network with the best-on-validation weights loaded (eval mode).
        best_epoch: epoch of those weights (1-based).
        best_val_auc: their mean validation AUC.
        history: one dict per epoch (``epoch``, ``loss``, ``val_auc``, ``lr``, ...).
        resumed_from: epochs already done when this call started (0 for a fresh run).
        files: ``checkpoint``, ``history``, ``train_json``, ``weights``, ``arch`` paths.
    """

    model: nn.Module
    best_epoch: int
    best_val_auc: float
    history: list[dict[str, Any]]
    resumed_from: int
    files: dict[str, Path] = field(default_factory=dict)


def _data_key(dataset: Any) -> dict[str, Any]:
    """What must not change between a checkpoint and its resume."""
    return {
        "fingerprint": dataset.fingerprint,
        "resolution": int(dataset.resolution),
        "label_names": list(dataset.label_names),
        "splits": {k: int(len(v)) for k, v in dataset.splits.items()},
    }


def _load_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which and what to do
        raise ResultsError(
            f"{path} is not a readable mdsearch checkpoint ({type(exc).__name__}): delete it to "
            "start over, or choose another --out"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != _FORMAT:
        raise ResultsError(f"{path} is not an mdsearch training checkpoint (format {_FORMAT})")
    return ckpt


def _check_out_dir(
    out: Path, resume: bool, spec: ArchSpec, config: TrainConfig
) -> dict[str, Any] | None:
    """The checkpoint to resume (arch and settings checked), None for a fresh run."""
    path = out / CHECKPOINT
    if resume:
        if not path.is_file():
            raise ResultsError(
                f"--resume: no {CHECKPOINT} in {out}; start without --resume (or give the --out "
                "of the run to continue)"
            )
        ckpt = _load_checkpoint(path)
        _check_resumable(ckpt, spec, config, None)
        return ckpt
    if path.is_file():
        ckpt = _load_checkpoint(path)
        raise ResultsError(
            f"{out} already holds a training checkpoint (epoch {ckpt['epoch']} of "
            f"{ckpt['config']['epochs']}): pass --resume to continue it, or another --out for a "
            "fresh run"
        )
    return None


def _check_resumable(
    ckpt: Mapping[str, Any], spec: ArchSpec, config: TrainConfig, data: dict | None
) -> None:
    if ckpt["arch"] != spec.canonical:
        raise ResultsError(
            f"--resume: the checkpoint trains {ckpt['arch']}, not {spec.canonical}: pass the same "
            "arch, or another --out for a fresh run"
        )
    saved = ckpt["config"]
    for key, value in config.to_dict().items():
        if saved.get(key) != value:
            raise ResultsError(
                f"--resume: the checkpoint was started with {key}={saved.get(key)!r}, now "
                f"{value!r}: resume with the same settings, or another --out for a fresh run"
            )
    for key, value in (data or {}).items():
        if ckpt["data"].get(key) != value:
            raise ResultsError(
                f"--resume: the data differ from the checkpoint's ({key}): pass the same --data, "
                "--seed and --val-fraction, or another --out for a fresh run"
            )


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_bytes(path, buf.getvalue().encode())


def train_architecture(
    spec: ArchSpec,
    dataset: Any,
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    device: str = "cpu",
    threads: int | None = None,
    progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    record: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train ``spec`` from scratch on ``dataset``'s train split, checkpointing every epoch.

    The test split is never touched: weights are chosen by mean validation AUC.

    Args:
        spec: the architecture; its ``num_classes`` must equal the dataset's label count.
        dataset: a :class:`mdsearch.search.datasets.Dataset` at ``config.resolution``.
        config: training settings.
        out_dir: the output folder (see the module docstring); created if needed.
        resume: continue from ``out_dir/checkpoint.pt`` (required when it exists).
        device: ``cpu`` or ``cuda``.
        threads: torch intra-op threads on CPU (None: torch's default).
        progress: on a terminal, a tqdm bar (stderr) over all steps with epoch, loss and val
            AUC; otherwise (a log file, a pipe) one line per epoch with the same and an ETA.
        on_epoch: called after each epoch's checkpoint is written, with the history row.
        record: more entries for train.json (the CLI stores the ``--data`` value and split
            settings there, so ``--resume`` can reload the same data).

    Returns:
        The :class:`TrainResult` (best-on-validation weights loaded).

    Raises:
        ResultsError: labels vs outputs mismatch, a checkpoint present without ``resume`` (or
            absent with it), a checkpoint from other settings/arch/data, a split too small for
            one batch, or a diverged loss.

    Example:
        >>> ds = load_dataset("phantom,n=200", resolution=32, progress=False)  # doctest: +SKIP
        >>> spec = ArchSpec.default("mobilenetv2_035", num_classes=5)  # doctest: +SKIP
        >>> res = train_architecture(spec, ds, TrainConfig(resolution=32, epochs=2), "out")  # doctest: +SKIP
        >>> res.best_epoch in (1, 2)  # doctest: +SKIP
        True
    """
    import torch
    from tqdm.auto import tqdm

    from mdsearch.mdconv import build
    from mdsearch.search.datasets import MEAN, STD, batches
    from mdsearch.search.training import (
        Diverged,
        label_aucs,
        make_optimizer,
        predict,
        train_one_epoch,
    )

    if config.epochs < 1 or config.batch_size < 1:
        raise ResultsError(
            f"epochs {config.epochs}, batch size {config.batch_size}: both must be 1 or more"
        )
    n_labels = len(dataset.label_names)
    if spec.num_classes != n_labels:
        raise ResultsError(
            f"{spec.canonical} has {spec.num_classes} outputs, --data {dataset.source!r} has "
            f"{n_labels} label(s) ({', '.join(dataset.label_names)}): pass an arch with "
            f"c{n_labels} (e.g. from a search on this data) or data with {spec.num_classes} labels"
        )
    if dataset.resolution != config.resolution:
        raise ResultsError(
            f"the data are at {dataset.resolution} px, the settings say --resolution "
            f"{config.resolution}: load the data at the training resolution"
        )
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT
    data_key = _data_key(dataset)
    ckpt = _check_out_dir(out, resume, spec, config)
    if ckpt is not None:
        _check_resumable(ckpt, spec, config, data_key)
    out.mkdir(parents=True, exist_ok=True)

    n_train = len(dataset.splits["train"])
    per_epoch = min(n_train, config.train_subset or n_train)
    steps_per_epoch = per_epoch // config.batch_size  # training drops a final partial batch
    if steps_per_epoch < 1:
        raise ResultsError(
            f"the train split has {per_epoch} images per epoch, fewer than --batch-size "
            f"{config.batch_size}: lower --batch-size"
        )
    if device == "cpu" and threads:
        torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    model = build(spec, head_init=config.head_init).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer, scheduler = make_optimizer(
        model,
        name=config.optimizer,
        lr=config.lr,
        weight_decay=config.weight_decay,
        total_steps=config.epochs * steps_per_epoch,
        schedule=config.schedule,
    )
    gen = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, Any]] = []
    best = {"epoch": 0, "val_auc": float("nan"), "state": None}
    start_epoch = 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        gen.set_state(ckpt["rng"]["data"])
        if ckpt["rng"].get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        history = list(ckpt["history"])
        best = dict(ckpt["best"])
        start_epoch = int(ckpt["epoch"])

    settings = {
        "arch": spec.canonical,
        "config": config.to_dict(),
        "data": dataset.describe(),
        "device": device,
        "threads": torch.get_num_threads() if device == "cpu" else None,
        "weights": "best-on-validation (highest mean validation AUC; ties keep the earlier epoch)",
        **dict(record or {}),
    }
    files = {
        "checkpoint": ckpt_path,
        "history": out / "history.csv",
        "train_json": out / "train.json",
        "weights": out / "weights.safetensors",
        "arch": out / "arch.json",
    }
    atomic_write_bytes(files["arch"], (spec.to_json() + "\n").encode())

    def write_train_json(extra: Mapping[str, Any]) -> None:
        payload = {**settings, **extra}
        atomic_write_bytes(files["train_json"], (json.dumps(payload, indent=2) + "\n").encode())

    write_train_json({"status": "training", "epochs_done": start_epoch})
    eval_batch = max(config.batch_size, 128)
    interactive = progress and sys.stderr.isatty()  # no carriage-return updates in log files
    started, epochs_this_run = time.monotonic(), 0
    bar = tqdm(
        total=config.epochs * steps_per_epoch,
        initial=start_epoch * steps_per_epoch,
        desc=f"train {spec.arch_id}",
        unit="step",
        file=sys.stderr,
        disable=not interactive,
        dynamic_ncols=True,
    )
    if history:
        bar.set_postfix(_postfix(history[-1], config.epochs), refresh=False)
    try:
        for epoch in range(start_epoch + 1, config.epochs + 1):
            lr = optimizer.param_groups[0]["lr"]
            try:
                stats = train_one_epoch(
                    model,
                    batches(
                        dataset,
                        "train",
                        batch_size=config.batch_size,
                        shuffle=True,
                        augment=config.augment,
                        generator=gen,
                        subset=config.train_subset,
                    ),
                    optimizer,
                    scheduler,
                    device=device,
                    channels_last=config.channels_last,
                    on_step=lambda _n: bar.update(1),
                )
            except Diverged as exc:
                raise ResultsError(
                    f"{exc} (epoch {epoch}); start again in a fresh --out with a lower --lr"
                ) from None
            y_true, y_score = predict(
                model,
                batches(dataset, "val", batch_size=eval_batch, shuffle=False, augment=False),
                device=device,
                channels_last=config.channels_last,
            )
            val_auc, per_label = label_aucs(y_true, y_score, dataset.label_names)
            improved = best["state"] is None or (
                not math.isnan(val_auc)
                and (math.isnan(best["val_auc"]) or val_auc > best["val_auc"])
            )
            if improved:
                best = {
                    "epoch": epoch,
                    "val_auc": val_auc,
                    "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                }
            row: dict[str, Any] = {
                "epoch": epoch,
                "loss": stats.loss,
                "val_auc": val_auc,
                "lr": lr,
                "seconds": round(stats.seconds, 3),
                "images_per_s": round(stats.images_per_s, 2),
                "best": bool(improved),
            }
            row.update({f"val_auc__{k}": v for k, v in per_label.items()})
            history.append(row)
            _save_checkpoint(
                ckpt_path,
                {
                    "format": _FORMAT,
                    "arch": spec.canonical,
                    "config": config.to_dict(),
                    "data": data_key,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": {
                        "torch": torch.get_rng_state(),
                        "data": gen.get_state(),
                        "cuda": torch.cuda.get_rng_state_all()
                        if torch.cuda.is_available()
                        else None,
                    },
                    "best": best,
                    "history": history,
                },
            )
            _write_history(files["history"], history)
            write_train_json({"status": "training", "epochs_done": epoch})
            bar.set_postfix(_postfix(row, config.epochs))
            epochs_this_run += 1
            if progress and not interactive:
                per_epoch = (time.monotonic() - started) / epochs_this_run
                print(
                    f"train {spec.arch_id}: "
                    + ", ".join(f"{k} {v}" for k, v in _postfix(row, config.epochs).items())
                    + (" (best)" if improved else "")
                    + f", {row['images_per_s']:.0f} img/s, ETA "
                    + _duration(per_epoch * (config.epochs - epoch)),
                    file=sys.stderr,
                    flush=True,
                )
            if on_epoch is not None:
                on_epoch(dict(row))
    finally:
        bar.close()

    model.load_state_dict(best["state"])
    model.eval()
    save_weights(
        model,
        files["weights"],
        spec,
        metadata={
            "label_names": list(dataset.label_names),
            "resolution": config.resolution,
            "normalize": {"mean": MEAN, "std": STD},
            "epoch": best["epoch"],
            "val_auc": None if math.isnan(best["val_auc"]) else best["val_auc"],
            "data": dataset.source,
        },
    )
    if not files["history"].is_file():
        _write_history(files["history"], history)
    write_train_json(
        {
            "status": "done",
            "epochs_done": config.epochs,
            "best_epoch": best["epoch"],
            "best_val_auc": None if math.isnan(best["val_auc"]) else best["val_auc"],
        }
    )
    return TrainResult(
        model=model,
        best_epoch=int(best["epoch"]),
        best_val_auc=float(best["val_auc"]),
        history=history,
        resumed_from=start_epoch,
        files=files,
    )


def _duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _postfix(row: Mapping[str, Any], epochs: int) -> dict[str, str]:
    return {
        "epoch": f"{row['epoch']}/{epochs}",
        "loss": f"{row['loss']:.4f}",
        "val_auc": f"{row['val_auc']:.4f}",
    }


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def saved_settings(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The settings a training folder was started with (its ``train.json``), for ``--resume``.

    Returns:
        ``{"config": TrainConfig dict, "data_settings": {"data", "val_fraction", ...}}``.

    Raises:
        ResultsError: no train.json in ``out_dir``.
    """
    path = Path(out_dir) / "train.json"
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        raise ResultsError(
            f"--resume: no readable train.json in {out_dir}; give the --out of the training run "
            "to continue, or start without --resume"
        ) from None
    return {"config": payload.get("config", {}), "data_settings": payload.get("data_settings", {})}


def train_and_evaluate(
    spec: ArchSpec,
    data: str,
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    device: str = "cpu",
    threads: int | None = None,
    val_fraction: float = 0.2,
    cache_dir: str | os.PathLike | None = None,
    eval_on_val: bool = False,
    progress: bool = True,
    say: Callable[[str], None] = print,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[TrainResult, Any, dict[str, Path]]:
    """``mdsearch train``: load the data, train (or resume), then evaluate once on the test split.

    The evaluation (see :mod:`mdsearch.results.evaluate`) runs on the test split; data without
    one get no test metrics (``say`` tells why) unless ``eval_on_val``, which reports the
    validation split under that name, with a warning.

    Args:
        spec: the architecture.
        data: a ``--data`` value (see :func:`mdsearch.search.datasets.parse_data_spec`).
        config: training settings (``config.seed`` also seeds the validation split).
        out_dir: output folder (see the module docstring); eval.json, eval.md and
            predictions.npz are added to it.
        resume, device, threads, progress, on_epoch: as in :func:`train_architecture`.
        val_fraction: share of train patients held out for validation.
        cache_dir: image cache folder (None: the default).
        eval_on_val: without a test split, report validation metrics (labelled as such).
        say: where one-line messages go.

    Returns:
        ``(train_result, evaluation or None, files)``.
    """
    from mdsearch.search.datasets import load_dataset, parse_data_spec

    from .evaluate import evaluate_model, format_evaluation, write_evaluation

    parse_data_spec(data)  # a bad --data fails before anything is built or loaded
    _check_out_dir(Path(out_dir), resume, spec, config)
    dataset = load_dataset(
        data,
        resolution=config.resolution,
        cache_dir=cache_dir,
        seed=config.seed,
        val_fraction=val_fraction,
        progress=progress,
    )
    say(f"data: {dataset.summary()}")
    for note in dataset.notes:
        say(f"  note: {note}")
    split = "test"
    if "test" not in dataset.splits:
        if eval_on_val:
            split = "val"
            say(
                "  no test split: --eval-on-val given, so the evaluation reports the VALIDATION "
                "split, labelled as such (optimistic: it also chose the weights)"
            )
        else:
            say(
                "  no test split: training only; no test metrics will be reported (add the test "
                "images, or pass --eval-on-val for validation metrics labelled as such)"
            )
    result = train_architecture(
        spec,
        dataset,
        config,
        out_dir,
        resume=resume,
        device=device,
        threads=threads,
        progress=progress,
        on_epoch=on_epoch,
        record={
            "data_settings": {
                "data": data,
                "val_fraction": val_fraction,
                "seed": config.seed,
                "cache_dir": None if cache_dir is None else str(cache_dir),
            }
        },
    )
    files = dict(result.files)
    say(
        f"weights: {files['weights']} (best on validation: epoch {result.best_epoch}, "
        f"val AUC {result.best_val_auc:.4f})"
    )
    if split not in dataset.splits:
        say("no test metrics: the data has no test split (see above)")
        return result, None, files
    ev = evaluate_model(
        result.model,
        dataset,
        split=split,
        device=device,
        batch_size=max(config.batch_size, 128),
        channels_last=config.channels_last,
    )
    settings = {
        "weights": f"{files['weights'].name}, best on validation (epoch {result.best_epoch} of "
        f"{config.epochs})",
        **{k: v for k, v in config.to_dict().items()},
        "val_fraction": val_fraction,
        "device": device,
    }
    files.update(write_evaluation(ev, out_dir, arch=spec, settings=settings))
    say("")
    say(format_evaluation(ev, arch=spec.canonical))
    return result, ev, files
