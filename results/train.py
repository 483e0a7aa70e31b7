"""Full training of a chosen architecture: checkpointed, resumable, best-on-validation weights.

The same loop as a search trial (:func:`mdsearch.search.training.train`, which
:func:`mdsearch.search.proxy.proxy_train` runs too: seeded init, the small head init, AdamW +
cosine, BCE-with-logits, the shared augmentation), with :data:`~mdsearch.search.settings.FULL_RECIPE`
at :data:`~mdsearch.search.settings.FULL_DATA`'s resolution, a validation pass after every epoch
and a checkpoint after every epoch. The output folder's files are described in
:mod:`mdsearch.results.train_folder`.

``resume=True`` continues from ``checkpoint.pt`` at the next epoch with the saved RNG states; on a
CPU with the same thread count it ends with the same weights as an uninterrupted run (tested).
The settings, architecture and data must be those of the checkpoint (checked).

Defaults (why): resolution 224 (4x the proxy's side: stage5 maps are 14x14 -> 7x7, so a 5x5
kernel has room; the paper trains at 448, which costs 4x more), 30 epochs, batch 64, AdamW lr
3e-3, weight decay 1e-4, cosine to 0: the proxy's recipe, which was stable from scratch; every
image of the train split each epoch. They suit a GPU: on 2 shared CPU threads MobileNet-v2 (1.0)
trains at about 2 images/s at 224 px (measured), i.e. ~35 min per epoch of the Kermany train
split; on a CPU pass e.g. ``--resolution 96 --epochs 10`` or ``--train-subset``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mdsearch.search.settings import TrainRecipe
from mdsearch.space import ArchSpec, atomic_write_text

from .errors import ResultsError
from .saved_data import check_label_count
from .train_folder import (
    ARCH_JSON,
    CHECKPOINT,
    HISTORY_CSV,
    TRAIN_JSON,
    WEIGHTS,
    check_out_dir,
    check_resumable,
    data_key,
    save_checkpoint,
    settings_record,
    write_history,
    write_train_json,
)
from .train_progress import TrainingProgress
from .weights import save_weights

if TYPE_CHECKING:
    from torch import nn

    from mdsearch.search.datasets import Dataset
    from mdsearch.search.training import EpochResult, TrainingRun

__all__ = ["CHECKPOINT", "TrainResult", "train_architecture"]

_WEIGHTS_RULE = "best-on-validation (highest mean validation AUC; ties keep the earlier epoch)"


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


@dataclass
class _History:
    """The history and the best weights so far (what a checkpoint carries besides the state).

    ``best`` is ``{"epoch", "val_auc", "state"}``: the layout of every checkpoint version.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(
        default_factory=lambda: {"epoch": 0, "val_auc": float("nan"), "state": None}
    )

    def add(self, epoch: EpochResult, model: nn.Module) -> dict[str, Any]:
        """Record one validated epoch; keep its weights when its mean AUC is the best so far
        (NaN never beats a number; ties keep the earlier epoch). Returns its history row."""
        val = epoch.validation
        best_auc = self.best["val_auc"]
        improved = self.best["state"] is None or (
            not math.isnan(val.auc) and (math.isnan(best_auc) or val.auc > best_auc)
        )
        if improved:
            state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            self.best = {"epoch": epoch.epoch, "val_auc": val.auc, "state": state}
        row: dict[str, Any] = {
            "epoch": epoch.epoch,
            "loss": epoch.stats.loss,
            "val_auc": val.auc,
            "lr": epoch.lr,
            "seconds": round(epoch.stats.seconds, 3),
            "images_per_s": round(epoch.stats.images_per_s, 2),
            "best": bool(improved),
        }
        row.update({f"val_auc__{k}": v for k, v in val.label_auc.items()})
        self.history.append(row)
        return row


def _check_labels(spec: ArchSpec, dataset: Dataset) -> None:
    n = len(dataset.label_names)
    remedy = f"pass an arch with c{n} (e.g. from a search on this data) or data with "
    check_label_count(spec, dataset, f"{remedy}{spec.num_classes} labels")


@dataclass
class _Folder:
    """The output folder of one training call: where each epoch and the end are written.

    Attributes:
        files: ``checkpoint``, ``history``, ``train_json``, ``weights``, ``arch`` paths.
        spec: the architecture.
        config: the settings record (recipe, resolution, seed) stored in every file.
        data: the data key a resume must match.
        header: the train.json entries that stay the same for the whole run.
        done: the history and the best weights (from the checkpoint when resuming).
        checkpoint: the checkpoint resumed (None for a fresh run).
    """

    files: dict[str, Path]
    spec: ArchSpec
    config: dict[str, Any]
    data: dict[str, Any]
    header: dict[str, Any]
    done: _History
    checkpoint: dict[str, Any] | None

    @classmethod
    def open(
        cls,
        out: Path,
        spec: ArchSpec,
        dataset: Dataset,
        config: dict[str, Any],
        *,
        resume: bool,
        header: dict[str, Any],
    ) -> _Folder:
        """Check the folder (a checkpoint only with ``resume``, of the same arch, settings and
        data), create it, write arch.json and a train.json saying training started."""
        data = data_key(dataset)
        ckpt = check_out_dir(out, resume, spec, config)
        if ckpt is not None:
            check_resumable(ckpt, spec, config, data)
        out.mkdir(parents=True, exist_ok=True)
        files = {
            "checkpoint": out / CHECKPOINT,
            "history": out / HISTORY_CSV,
            "train_json": out / TRAIN_JSON,
            "weights": out / WEIGHTS,
            "arch": out / ARCH_JSON,
        }
        atomic_write_text(files["arch"], spec.to_json() + "\n")
        done = _History() if ckpt is None else _History(list(ckpt["history"]), dict(ckpt["best"]))
        folder = cls(files, spec, config, data, header, done, ckpt)
        folder.write_status("training", epochs_done=folder.start_epoch)
        return folder

    @property
    def start_epoch(self) -> int:
        """Epochs done before this call (the checkpoint's)."""
        return 0 if self.checkpoint is None else int(self.checkpoint["epoch"])

    def write_status(self, status: str, **more: Any) -> None:
        """Rewrite train.json with ``status`` (``training`` or ``done``) and ``more``."""
        write_train_json(self.files["train_json"], {**self.header, "status": status, **more})

    def save_epoch(self, run: TrainingRun, epoch: EpochResult) -> dict[str, Any]:
        """Record ``epoch``, write the checkpoint, history.csv and train.json; returns the
        epoch's history row."""
        row = self.done.add(epoch, run.model)
        save_checkpoint(
            self.files["checkpoint"],
            {
                "arch": self.spec.canonical,
                "config": self.config,
                "data": self.data,
                **run.state(),
                "best": self.done.best,
                "history": self.done.history,
            },
        )
        write_history(self.files["history"], self.done.history)
        self.write_status("training", epochs_done=epoch.epoch)
        return row

    def finish(self, epochs: int) -> None:
        """train.json says done, with the best epoch; history.csv exists even when a resume
        found every epoch done."""
        if not self.files["history"].is_file():
            write_history(self.files["history"], self.done.history)
        best_auc = self.done.best["val_auc"]
        self.write_status(
            "done",
            epochs_done=epochs,
            best_epoch=self.done.best["epoch"],
            best_val_auc=None if math.isnan(best_auc) else best_auc,
        )


def train_architecture(
    spec: ArchSpec,
    dataset: Dataset,
    recipe: TrainRecipe,
    seed: int,
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
        dataset: the data, loaded at the training resolution (e.g. ``FULL_DATA.load()``).
        recipe: how to train (:data:`~mdsearch.search.settings.FULL_RECIPE` by default in
            ``mdsearch train``).
        seed: seeds the initialisation, the data order and the augmentation.
        out_dir: the output folder (see :mod:`mdsearch.results.train_folder`); created if needed.
        resume: continue from ``out_dir/checkpoint.pt`` (required when it exists).
        device: ``cpu`` or ``cuda``.
        threads: torch intra-op threads on CPU (None: torch's default).
        progress: on a terminal, a tqdm bar (stderr) over all steps with epoch, loss and val
            AUC; otherwise (a log file, a pipe) one line per epoch with the same and an ETA.
        on_epoch: called after each epoch's checkpoint is written, with the history row.
        record: more entries for train.json (the command line stores the data settings there,
            so ``--resume`` and ``mdsearch eval`` can reload the same data).

    Returns:
        The :class:`TrainResult` (best-on-validation weights loaded).

    Raises:
        SettingsError: a recipe no training can use, or a train split too small for one batch.
        ResultsError: labels vs outputs mismatch, a checkpoint present without ``resume`` (or
            absent with it), a checkpoint from other settings/arch/data, or a diverged loss.

    Example:
        >>> ds = DataSettings("phantom,n=200", resolution=32).load(progress=False)  # doctest: +SKIP
        >>> spec = ArchSpec.default("mobilenetv2_035", num_classes=5)  # doctest: +SKIP
        >>> res = train_architecture(spec, ds, TrainRecipe(epochs=2), 0, "out")  # doctest: +SKIP
        >>> res.best_epoch in (1, 2)  # doctest: +SKIP
        True
    """
    recipe.check()
    _check_labels(spec, dataset)
    n_train = len(dataset.splits["train"])
    recipe.check_train_split(n_train)
    config = settings_record(recipe, resolution=dataset.resolution, seed=seed)
    header = _train_json_header(spec, dataset, config, device, threads, record)
    folder = _Folder.open(Path(out_dir), spec, dataset, config, resume=resume, header=header)
    display = TrainingProgress(
        spec.arch_id,
        epochs=recipe.epochs,
        steps_per_epoch=recipe.steps_per_epoch(n_train),
        history=folder.done.history,
        enabled=progress,
    )

    def after_epoch(run: TrainingRun, epoch: EpochResult) -> None:
        row = folder.save_epoch(run, epoch)
        display.epoch(row)
        if on_epoch is not None:
            on_epoch(dict(row))

    run = _run_loop(spec, dataset, recipe, seed, folder, display, after_epoch, device, threads)
    model = _save_best(run.model, folder.done, spec, dataset, folder.files["weights"])
    folder.finish(recipe.epochs)
    return TrainResult(
        model=model,
        best_epoch=int(folder.done.best["epoch"]),
        best_val_auc=float(folder.done.best["val_auc"]),
        history=folder.done.history,
        resumed_from=folder.start_epoch,
        files=folder.files,
    )


def _train_json_header(
    spec: ArchSpec,
    dataset: Dataset,
    config: Mapping[str, Any],
    device: str,
    threads: int | None,
    record: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The entries of train.json that stay the same for the whole run."""
    import torch

    return {
        "arch": spec.canonical,
        "config": dict(config),
        "data": dataset.describe(),
        "device": device,
        "threads": (threads or torch.get_num_threads()) if device == "cpu" else None,
        "weights": _WEIGHTS_RULE,
        **dict(record or {}),
    }


def _run_loop(
    spec: ArchSpec,
    dataset: Dataset,
    recipe: TrainRecipe,
    seed: int,
    folder: _Folder,
    display: TrainingProgress,
    after_epoch: Callable[[TrainingRun, EpochResult], None],
    device: str,
    threads: int | None,
) -> TrainingRun:
    """The shared loop (:func:`mdsearch.search.training.train`), validating every epoch and
    continuing from the folder's checkpoint; a diverged loss becomes a one-line error."""
    from mdsearch.search.training import Diverged, train

    try:
        return train(
            spec,
            dataset,
            recipe,
            seed,
            device=device,
            threads=threads,
            on_epoch=after_epoch,
            on_step=display.step,
            resume=folder.checkpoint,
        )
    except Diverged as exc:
        epoch = len(folder.done.history) + 1
        raise ResultsError(
            f"{exc} (epoch {epoch}); start again in a fresh --out with a lower --lr"
        ) from None
    finally:
        display.close()


def _save_best(
    model: nn.Module,
    done: _History,
    spec: ArchSpec,
    dataset: Dataset,
    path: Path,
) -> nn.Module:
    """Load the best-on-validation weights into ``model`` and write them to ``path``."""
    from mdsearch.search.datasets import MEAN, STD

    model.load_state_dict(done.best["state"])
    model.eval()
    best_auc = done.best["val_auc"]
    save_weights(
        model,
        path,
        spec,
        metadata={
            "label_names": list(dataset.label_names),
            "resolution": int(dataset.resolution),
            "normalize": {"mean": MEAN, "std": STD},
            "epoch": done.best["epoch"],
            "val_auc": None if math.isnan(best_auc) else best_auc,
            "data": dataset.source,
        },
    )
    return model
