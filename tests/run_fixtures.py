"""Hand-made run folders for the results tests: config.json, trials.csv and predictions/*.npz.

The predictions are simulated (positives score higher by an amount set from the wanted AUC, plus
per-image noise shared by all trials so that architectures are compared on the same images), and
the table's AUC columns are computed from them, so the table and the predictions agree like those
written by ``mdsearch.search``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from mdsearch.space import ArchSpec

__all__ = ["LABELS", "FixtureTrial", "DEFAULT_TRIALS", "arch_string", "make_run_folder"]

LABELS = ("Atelectasis", "Effusion", "Nodule")
BACKBONE = "mobilenetv2_100"


def arch_string(mdconv_stages: Sequence[int] = (), num_classes: int = len(LABELS)) -> str:
    """Canonical string of MobileNet-v2 with MD-Conv (3, 5) 1:1 in ``mdconv_stages``."""
    spec = ArchSpec.default(BACKBONE, num_classes)
    for stage in mdconv_stages:
        spec = spec.with_stage(stage, (3, 5), (1, 1))
    return spec.canonical


@dataclass(frozen=True)
class FixtureTrial:
    """One simulated trial: MD-Conv stages, the AUC it should reach, its FLOPs and outcome."""

    stages: tuple[int, ...]
    quality: float  # population AUC of the simulated scores
    flops_m: float
    status: str = "COMPLETE"
    fidelity: float = 2.0
    error: str = ""


# Table 4's FLOPs; qualities chosen so the front is: baseline (cheapest), stage5 (paper),
# stages 1,5; stage 1 and stages 1,2,3,5 are dominated; the stopped trial (best AUC) and the
# failed one must stay off the front.
DEFAULT_TRIALS = (
    FixtureTrial((), 0.66, 1223.0),
    FixtureTrial((5,), 0.80, 1228.0),
    FixtureTrial((1,), 0.72, 1235.0),
    FixtureTrial((1, 5), 0.84, 1241.0),
    FixtureTrial(
        (2,),
        float("nan"),
        1247.0,
        status="FAILED",
        fidelity=0.0,
        error="RuntimeError: out of memory",
    ),
    FixtureTrial((3,), 0.95, 1236.0, status="STOPPED", fidelity=1.0),
    FixtureTrial((1, 2, 3, 5), 0.79, 1278.0),
    FixtureTrial((), 0.66, 1223.0),  # a second seed of the baseline
    FixtureTrial((1, 5), 0.84, 1241.0),  # a second seed of stages 1,5
)


def make_run_folder(
    root: Path,
    trials: Sequence[FixtureTrial] = DEFAULT_TRIALS,
    *,
    name: str = "demo",
    n_images: int = 400,
    labels: Sequence[str] = LABELS,
    synthetic: bool = True,
    target_fidelity: float = 2.0,
    predictions: bool = True,
    seed: int = 0,
) -> Path:
    """Write a run folder under ``root`` and return its path.

    Args:
        root: parent folder (e.g. pytest's ``tmp_path``).
        trials: the trials, in trial order.
        name: run name (folder name).
        n_images: validation images per trial's predictions.
        labels: finding names.
        synthetic: the config's ``data.synthetic`` flag.
        target_fidelity: the proxy's epochs.
        predictions: write ``predictions/*.npz`` for trials that did not fail.
        seed: seed of the simulation.
    """
    run = Path(root) / name
    (run / "predictions").mkdir(parents=True, exist_ok=True)
    n_labels = len(labels)
    rng = np.random.default_rng(seed)
    y_true = (rng.random((n_images, n_labels)) < 0.3).astype(np.uint8)
    y_true[:2] = [[0] * n_labels, [1] * n_labels]  # both classes present in every label
    shared = rng.normal(0.0, 0.7, (n_images, n_labels))
    config = {
        "name": name,
        "created": "2025-01-01T00:00:00",
        "data": {
            "source": "phantom" if synthetic else "kermany",
            "name": "phantom" if synthetic else "kermany224",
            "synthetic": synthetic,
            "label_names": list(labels),
            "fingerprint": "abc123",
            "notes": ["simulated for tests"],
        },
        "space": {"name": "paper", "backbone": BACKBONE, "size": 16},
        "proxy": {
            "resolution": 64,
            "epochs": target_fidelity,
            "batch_size": 32,
            "train_subset": 1000,
            "lr": 0.01,
        },
        "input_size": 448,
        "objectives": ["auc", "flops"],
        "sampler": "tpe",
        "seed": seed,
        "budget": len(trials),
        "versions": {"mdsearch": "0.1.0"},
    }
    (run / "config.json").write_text(json.dumps(config, indent=2))
    rows, seen = [], {}
    for number, trial in enumerate(trials):
        arch = arch_string(trial.stages, n_labels)
        repeat = seen.get(arch, 0)
        seen[arch] = repeat + 1
        row = {
            "trial": number,
            "arch": arch,
            "arch_id": ArchSpec.parse(arch).arch_id,
            "status": trial.status,
            "fidelity": trial.fidelity,
            "target_fidelity": target_fidelity,
            "auc": np.nan,
            **{f"auc__{label}": np.nan for label in labels},
            "flops_m": trial.flops_m,
            "input_size": 448,
            "params_m": round(2.23 + 0.01 * len(trial.stages), 3),
            "resolution": 64,
            "seed": repeat,
            "repeat": repeat,
            "train_seconds": 30.0 + number,
            "images_per_s": 100.0 - len(trial.stages),
            "error": trial.error,
            "node_id": "node0",
            "finished_at": f"2025-01-01T00:{number:02d}:00",
            "predictions": "",
        }
        if trial.status != "FAILED":
            # Positive minus negative score ~ N(d, 1.4^2): population AUC = Phi(d / 1.4).
            d = 1.4 * NormalDist().inv_cdf(trial.quality)
            own = np.random.default_rng([seed, number]).normal(0.0, 0.7, y_true.shape)
            score = 1.0 / (1.0 + np.exp(-(d * y_true + shared + own)))
            per_label = [roc_auc_score(y_true[:, j], score[:, j]) for j in range(n_labels)]
            row["auc"] = float(np.mean(per_label))
            row.update({f"auc__{label}": a for label, a in zip(labels, per_label)})
            if predictions:
                rel = f"predictions/{number:05d}.npz"
                np.savez(
                    run / rel,
                    y_true=y_true,
                    y_score=score.astype(np.float32),
                    label_names=np.array(labels),
                )
                row["predictions"] = rel
        rows.append(row)
    pd.DataFrame(rows).to_csv(run / "trials.csv", index=False)
    return run
