"""``phantom``: a synthetic chest-radiograph-like data set, generated here, labelled synthetic.

For a first run with no download and for tests. Deterministic from ``(n, seed)``; rendered with
vectorised numpy at 128 px (or at the requested side when that is larger) and cached like any
other source. It is NOT a chest X-ray: AUCs on it say nothing about real findings, and every
label name, the dataset name and its notes say "synthetic".

What it draws: a torso with two dark lung fields, ribs, spine, mediastinum and a heart shadow on
the image's right (the patient's left), with per-patient anatomy and per-image pose, exposure and
noise. Findings differ in size by two orders of magnitude, as the paper's Grad-CAM boxes do for
real findings, so kernel size and receptive field matter:

=========================  ===================================================  ==========
label                      look                                                 prevalence
=========================  ===================================================  ==========
Nodule (synthetic)         1-2 small round opacities (3-6 px across at 128 px)  30%
Mass (synthetic)           one soft-edged disk, 10-19 px across                 25%
Effusion (synthetic)       white fluid filling a lung base, meniscus at wall    30%
Consolidation (synthetic)  large irregular mottled opacity, ~1/4 of a lung      30%
Cardiomegaly (synthetic)   wider, taller heart shadow (per patient)             30%
=========================  ===================================================  ==========

About 18% of the images have no finding. Distractors keep it from being trivial: vessel-like
dots in every image (faint cousins of nodules), normal and enlarged heart widths that overlap,
per-patient anatomy, pose, exposure and noise. Learnable but not trivial (measured: MobileNet-v2
from scratch, 2 epochs at 64 px, AdamW 3e-3 cosine, small head init; batch 64 over the whole
train split, seeds 0/1/2: mean validation AUC 0.75 / 0.72 / 0.73, effusion ~0.93 and
cardiomegaly ~0.9 easy, mass and consolidation ~0.7, the small nodules near 0.5 that early;
batch 32 with 1,024 images per epoch, seed 0: 0.65). Patients have 1-3 images sharing their anatomy and heart
size, so a split that ignores patients would leak.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from .cache import resize_array
from .catalog import TEST_SPLIT_FRACTION, TEST_SPLIT_SEED, Catalog, DataSource, patient_split
from .errors import DataError
from .phantom_scale import SCALE_LABELS, draw_scale_findings, sample_scale_findings
from .spec import DataSpec

__all__ = [
    "LABEL_NAMES",
    "DEFAULT_IMAGES",
    "LESION_LEVEL",
    "NATIVE_SIZE",
    "phantom_lesion_masks",
    "scan_phantom",
    "SOURCE",
]

LABEL_NAMES = (
    "Nodule (synthetic)",
    "Mass (synthetic)",
    "Effusion (synthetic)",
    "Consolidation (synthetic)",
    "Cardiomegaly (synthetic)",
)
_PREVALENCE = np.array([0.30, 0.25, 0.30, 0.30, 0.30])
DEFAULT_IMAGES = 3000
NATIVE_SIZE = 128
_VERSION = 2  # bump when the drawing changes: it is part of the cache key
_NODULES, _DOTS, _BLOBS = 2, 3, 4  # slots per image (unused slots have zero amplitude)
#: A finding's ground-truth mask is where it adds at least this share of its own amplitude.
LESION_LEVEL = 0.5


def scan_phantom(
    spec: DataSpec,
    *,
    task: str | None,
    cache_dir: str | os.PathLike | None,
    resolution: int,
) -> Catalog:
    """Catalog of the phantom set described by ``spec`` (options ``n`` and ``seed``)."""
    n = int(spec.option("n", str(DEFAULT_IMAGES)))
    seed = int(spec.option("seed", "0"))
    variant = spec.option("variant", "v2")
    if n < 20:
        raise DataError(f"--data {spec.value!r}: n={n} is too few images; use n=20 or more")
    params = _sample(n, seed, variant)
    tag = "" if variant == "v2" else f"/variant={variant}"
    key = hashlib.sha256(f"phantom/v{_VERSION}/n={n}/seed={seed}{tag}".encode()).hexdigest()
    patient_ids = np.array([f"phantom-{p:05d}" for p in params["patient"]])
    train_val, test = patient_split(
        np.arange(n), patient_ids, TEST_SPLIT_FRACTION, seed=TEST_SPLIT_SEED
    )

    def render(start: int, stop: int, resolution: int) -> np.ndarray:
        native = max(NATIVE_SIZE, resolution)
        block = _render(params, seed, start, stop, native)
        if native == resolution:
            return block
        return np.stack([resize_array(img, resolution) for img in block])

    return Catalog(
        name="phantom",
        label_names=LABEL_NAMES + (SCALE_LABELS if variant == "screen" else ()),
        labels=params["labels"]
        if variant == "v2"
        else np.concatenate([params["labels"], params["scale_labels"]], axis=1),
        patient_ids=patient_ids,
        item_ids=np.array([f"phantom-{i:06d}" for i in range(n)]),
        splits={"train_val": train_val, "test": test},
        image_key=key,
        fingerprint=key,
        notes=(
            f"synthetic: phantom data generated by mdsearch ({n:,} images, seed {seed}), not "
            "chest X-rays; its AUCs say nothing about real findings",
        ),
        synthetic=True,
        render=render,
        native_size=NATIVE_SIZE,
    )


def phantom_lesion_masks(
    data: str | DataSpec, item_ids, resolution: int, *, chunk: int = 256
) -> np.ndarray:
    """Where each finding of each phantom image is: the ground truth for localisation scores.

    Computed from the generator's own parameters (the same geometry :func:`scan_phantom`'s images
    are drawn with), not from the pixels. A finding's mask is where it adds at least
    :data:`LESION_LEVEL` of its amplitude to the image as drawn, i.e. where it shows: nodules,
    mass, effusion and consolidation only inside the lungs' air (a nodule drawn behind the heart
    does not show, so its mask is empty); cardiomegaly is the heart shadow. A finding an image
    does not have has an empty mask; so may one it has, when it does not show (left out of
    scores).

    Args:
        data: the ``--data`` value of the phantom set (``phantom,n=...,seed=...``) or its spec.
        item_ids: which images: ``Dataset.item_ids`` entries (``phantom-000017``) or integers.
        resolution: mask side in pixels (the images' resolution).
        chunk: images computed at a time (memory only).

    Returns:
        bool (len(item_ids), 5, resolution, resolution), labels in :data:`LABEL_NAMES` order.

    Raises:
        DataError: ``data`` is not a phantom set or an item id is not one of its images.

    Example:
        >>> masks = phantom_lesion_masks("phantom,n=200", ["phantom-000003"], 64)  # doctest: +SKIP
        >>> masks.shape, masks[0].sum(axis=(1, 2)).tolist()  # doctest: +SKIP
        ((1, 5, 64, 64), [0, 0, 412, 0, 0])
    """
    from .spec import parse_data_spec

    spec = data if isinstance(data, DataSpec) else parse_data_spec(data)
    if spec.source != "phantom":
        raise DataError(f"--data {spec.value!r} is not a phantom set: it has no generator masks")
    n = int(spec.option("n", str(DEFAULT_IMAGES)))
    seed = int(spec.option("seed", "0"))
    index = np.array(
        [int(str(i).removeprefix("phantom-")) for i in item_ids], dtype=np.int64
    ).reshape(-1)
    if index.size and (index.min() < 0 or index.max() >= n):
        raise DataError(
            f"--data {spec.value!r}: item {int(index.max())} is not one of its {n} images"
        )
    params = _sample(n, seed)
    out = np.zeros((index.size, len(LABEL_NAMES), resolution, resolution), dtype=bool)
    for start in range(0, index.size, chunk):
        part = index[start : start + chunk]
        p = {key: value[part] for key, value in params.items()}
        out[start : start + part.size] = _lesion_masks(p, resolution)
    return out


def _lesion_masks(p: dict[str, np.ndarray], size: int) -> np.ndarray:
    """bool (B, 5, size, size) masks of the items in ``p`` (see :func:`phantom_lesion_masks`)."""
    sl = slice(0, len(p["labels"]))
    col = _columns(p, sl)
    g = _geometry(p, sl, size)
    lungs, level = g["lungs"], LESION_LEVEL
    shown = np.zeros((len(p["labels"]), len(LABEL_NAMES), size, size), dtype=bool)
    for k in range(_NODULES):  # each slot against its own amplitude (a slot may be unused: 0)
        amp = col("nod_a", k)
        shown[:, 0] |= (amp > 0) & (_nodule(col, g, k) * lungs >= level * amp)
    shown[:, 1] = (col("mass_a") > 0) & (_mass_shape(col, g) * lungs >= level)
    fluid = sum(
        _effusion(p, sl, col, g, side, lung)
        for side, lung in ((-1.0, g["lung_r"]), (1.0, g["lung_l"]))
    )
    shown[:, 2] = (col("eff_a") > 0) & (fluid * lungs >= level * col("eff_a"))
    shown[:, 3] = (col("con_a") > 0) & (_consolidation_shape(col, g) * lungs >= level)
    shown[:, 4] = (p["labels"][:, 4][:, None, None] > 0) & (g["heart"] >= level)
    return shown & (p["labels"][:, :, None, None] > 0)


def _lung_points(rng: np.random.Generator, size):
    """Points inside a random lung (side, x, y), in lung-relative units."""
    side = rng.choice([-1.0, 1.0], size=size)
    r = np.sqrt(rng.random(size)) * 0.75
    t = rng.uniform(0, 2 * np.pi, size)
    return side, side * 0.40 + r * np.cos(t) * 0.26, -0.05 + r * np.sin(t) * 0.52


def _sample(n: int, seed: int, variant: str = "v2") -> dict[str, np.ndarray]:
    """All per-patient and per-image parameters (cheap; rendering is separate)."""
    rng = np.random.default_rng([seed, 1])
    counts = rng.choice([1, 2, 3], size=n, p=[0.6, 0.3, 0.1])
    patient = np.repeat(np.arange(n), counts)[:n]
    n_patients = int(patient[-1]) + 1

    # Per patient: anatomy and heart size (cardiomegaly is a property of the patient).
    cardio_p = rng.random(n_patients) < _PREVALENCE[4]
    heart_w = np.where(
        cardio_p, rng.normal(0.40, 0.03, n_patients), rng.normal(0.25, 0.025, n_patients)
    )
    anatomy = {
        "body_w": rng.normal(0.86, 0.04, n_patients),
        "lung_w": rng.normal(1.0, 0.05, n_patients),
        "lung_h": rng.normal(1.0, 0.06, n_patients),
        "rib_phase": rng.random(n_patients),
        "rib_period": rng.normal(0.17, 0.01, n_patients),
    }
    p = {k: v[patient] for k, v in anatomy.items()}
    p["patient"] = patient
    p["heart_w"] = np.clip(heart_w, 0.16, 0.46)[patient]

    labels = (rng.random((n, 5)) < _PREVALENCE).astype(np.uint8)
    labels[:, 4] = cardio_p[patient]

    # Per image: pose, exposure, noise.
    p["dx"] = rng.normal(0, 0.03, n)
    p["dy"] = rng.normal(0, 0.03, n)
    p["contrast"] = rng.uniform(0.98, 1.02, n)
    p["brightness"] = rng.normal(0, 0.005, n)
    p["noise"] = rng.uniform(0.01, 0.02, n)
    p["wave_fx"], p["wave_fy"] = rng.uniform(0.5, 2.0, (2, n))
    p["wave_px"], p["wave_py"] = rng.uniform(0, 2 * np.pi, (2, n))
    p["wave_amp"] = rng.uniform(0.0, 0.02, n)

    def lung_point(size):
        return _lung_points(rng, size)

    # Nodules: 1-2 small opacities; vessel-like dots: faint, smaller, in every image.
    _, p["nod_x"], p["nod_y"] = lung_point((n, _NODULES))
    p["nod_s"] = rng.uniform(0.02, 0.04, (n, _NODULES))
    amp = rng.uniform(0.30, 0.60, (n, _NODULES))
    amp[:, 1] *= rng.random(n) < 0.4
    p["nod_a"] = amp * labels[:, [0]]
    _, p["dot_x"], p["dot_y"] = lung_point((n, _DOTS))
    p["dot_s"] = rng.uniform(0.008, 0.016, (n, _DOTS))
    p["dot_a"] = rng.uniform(0.0, 0.12, (n, _DOTS))

    _, p["mass_x"], p["mass_y"] = lung_point(n)
    p["mass_r"] = rng.uniform(0.16, 0.30, n)
    p["mass_e"] = rng.uniform(0.8, 1.25, n)
    p["mass_a"] = rng.uniform(0.35, 0.55, n) * labels[:, 1]

    p["eff_side"] = rng.choice([-1.0, 1.0], size=n)
    p["eff_both"] = rng.random(n) < 0.3
    p["eff_h"] = rng.uniform(0.20, 0.50, n)
    p["eff_a"] = rng.uniform(0.40, 0.60, n) * labels[:, 2]

    side, cx, cy = lung_point(n)
    p["con_x"] = cx[:, None] + rng.normal(0, 0.07, (n, _BLOBS))
    p["con_y"] = cy[:, None] + rng.normal(0, 0.12, (n, _BLOBS))
    p["con_s"] = rng.uniform(0.08, 0.14, (n, _BLOBS))
    p["con_a"] = rng.uniform(0.35, 0.55, n) * labels[:, 3]
    if variant == "screen":
        extra = np.random.default_rng([seed, 3])
        p.update(sample_scale_findings(extra, n, lambda size: _lung_points(extra, size)))
    p = {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in p.items()}
    p["labels"] = labels
    return p


def _soft(d: np.ndarray, edge: float) -> np.ndarray:
    """Soft inside-test: 1 where d < 1 - edge, 0 where d > 1 + edge, a linear ramp between."""
    return np.clip((1.0 - d) / (2 * edge) + 0.5, 0.0, 1.0)


def _step(v: np.ndarray, width: float) -> np.ndarray:
    """Soft step: 0 where v < -width, 1 where v > width, a linear ramp between."""
    return np.clip(v / (2 * width) + 0.5, 0.0, 1.0)


def _gauss(x, y, cx, cy, sigma):
    """Isotropic Gaussian bump; ``x`` (B, 1, S) and ``y`` (B, S, 1) make it an outer product."""
    return np.exp(-((x - cx) ** 2) / (2 * sigma**2)) * np.exp(-((y - cy) ** 2) / (2 * sigma**2))


def _columns(p: dict[str, np.ndarray], sl: slice):
    """``col(name, k=None)``: the parameter ``name`` (slot ``k``) of items ``sl`` as (B, 1, 1)."""

    def col(name, k=None):
        v = p[name][sl] if k is None else p[name][sl, k]
        return v[:, None, None]

    return col


def _geometry(p: dict[str, np.ndarray], sl: slice, size: int) -> dict[str, np.ndarray]:
    """Coordinates and anatomy of items ``sl`` at ``size`` px: ``x`` (B, 1, S), ``y`` (B, S, 1) in
    [-1, 1] (pixel centres, after the pose shift), and the soft [0, 1] maps ``body``, ``lung_r``,
    ``lung_l``, ``heart``, ``tissue``, ``lungs`` (air: lungs minus heart and mediastinum)."""
    col = _columns(p, sl)
    axis = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1).astype(np.float32)
    # Row (y) and column (x) coordinates kept separate, (B, S, 1) and (B, 1, S): every Gaussian is
    # then an outer product, which is what makes rendering a few seconds for thousands of images.
    x = axis[None, None, :] - col("dx")
    y = axis[None, :, None] - col("dy")

    lw, lh, hw = col("lung_w"), col("lung_h"), col("heart_w")
    body = _soft(np.sqrt((x / col("body_w")) ** 2 + ((y - 0.15) / 1.25) ** 2), 0.04)
    lung_r = _soft(
        np.sqrt(((x + 0.40 * lw) / (0.27 * lw)) ** 2 + ((y + 0.05) / (0.58 * lh)) ** 2), 0.08
    )
    lung_l = _soft(
        np.sqrt(((x - 0.40 * lw) / (0.25 * lw)) ** 2 + ((y + 0.05) / (0.55 * lh)) ** 2), 0.08
    )
    # The heart sits left of the midline (image right); its width is the cardiomegaly cue. Heart
    # and mediastinum are soft tissue where the lungs would be: they hide the lungs' air.
    heart_h = 0.22 * np.sqrt(hw / 0.25)  # an enlarged heart is also taller
    heart = _soft(np.sqrt(((x - 0.02 - 0.45 * hw) / hw) ** 2 + ((y - 0.30) / heart_h) ** 2), 0.06)
    mediastinum = _soft(np.abs(x) / 0.13, 0.2) * _step(0.35 - y, 0.05)
    tissue = np.maximum(heart, mediastinum)
    lungs = np.maximum(lung_r, lung_l) * (1 - tissue)
    return {
        "x": x, "y": y, "body": body, "lung_r": lung_r, "lung_l": lung_l,
        "heart": heart, "tissue": tissue, "lungs": lungs,
    }  # fmt: skip


def _nodule(col, g, k: int) -> np.ndarray:
    """Nodule slot ``k``: a Gaussian opacity of its amplitude (zero when the slot is unused)."""
    return col("nod_a", k) * _gauss(
        g["x"], g["y"], col("nod_x", k), col("nod_y", k), col("nod_s", k)
    )


def _mass_shape(col, g) -> np.ndarray:
    """The mass's soft-edged disk, [0, 1] (drawn with amplitude ``mass_a``)."""
    x, y = g["x"], g["y"]
    mass_d = np.sqrt(
        ((x - col("mass_x")) * col("mass_e")) ** 2 + ((y - col("mass_y")) / col("mass_e")) ** 2
    )
    return _soft(mass_d / (0.5 * col("mass_r")), 0.15)


def _effusion(p, sl: slice, col, g, side: float, lung: np.ndarray) -> np.ndarray:
    """Fluid in the lung on ``side`` (-1 image left, +1 image right) with amplitude ``eff_a``."""
    x, y = g["x"], g["y"]
    lw, lh = col("lung_w"), col("lung_h")
    on = ((p["eff_side"][sl] == side) | p["eff_both"][sl])[:, None, None]
    # Fluid up to a level above the lung base, rising towards the lateral wall (meniscus).
    lateral = np.clip(side * (x - side * 0.40 * lw) / (0.27 * lw), -1, 1)
    level = 0.53 * lh - col("eff_h") - 0.05 * (lateral + 1) ** 2
    return on * col("eff_a") * _step(y - level, 0.03) * lung


def _consolidation_shape(col, g) -> np.ndarray:
    """Where the consolidation's blobs are, [0, 1], before its mottle (drawn with ``con_a``)."""
    con = sum(
        _gauss(g["x"], g["y"], col("con_x", k), col("con_y", k), col("con_s", k))
        for k in range(_BLOBS)
    )
    return np.clip(1.5 * con, 0, 1)


def _render(p: dict[str, np.ndarray], seed: int, start: int, stop: int, size: int) -> np.ndarray:
    """uint8 (stop - start, size, size) images of items ``start..stop``, coordinates in [-1, 1]."""
    sl = slice(start, stop)
    col = _columns(p, sl)
    g = _geometry(p, sl, size)
    x, y, lungs = g["x"], g["y"], g["lungs"]
    spine = _soft(np.abs(x) / 0.06, 0.25)
    rib = 0.5 + 0.5 * np.cos(2 * np.pi * ((y - 0.35 * x**2) / col("rib_period") + col("rib_phase")))
    rib *= rib
    ribs = lungs * rib * rib * rib  # cos**6: narrow bright bands
    img = 0.08 + 0.50 * g["body"] - 0.34 * lungs + 0.05 * g["tissue"] + 0.08 * spine + 0.07 * ribs

    # Findings: opacities inside the lungs, from 2 px nodules to half-lung effusions.
    lesion = np.zeros_like(img)
    for k in range(_NODULES):
        lesion += _nodule(col, g, k)
    for k in range(_DOTS):
        lesion += col("dot_a", k) * _gauss(x, y, col("dot_x", k), col("dot_y", k), col("dot_s", k))
    lesion += col("mass_a") * _mass_shape(col, g)
    for side, lung in ((-1.0, g["lung_r"]), (1.0, g["lung_l"])):
        lesion += _effusion(p, sl, col, g, side, lung)
    rngs = [np.random.default_rng([seed, 2, i]) for i in range(start, stop)]
    mottle = np.stack([_low_pass(r.standard_normal((8, 8), dtype=np.float32), size) for r in rngs])
    lesion += col("con_a") * _consolidation_shape(col, g) * (0.75 + 0.25 * mottle)
    if "scale_labels" in p:
        lesion += draw_scale_findings(p, sl, col, g, _gauss, _soft)
    img += lesion * lungs

    # Exposure and noise: low-frequency waves, per-pixel noise, contrast and brightness.
    img += (
        col("wave_amp")
        * np.cos(2 * np.pi * col("wave_fx") * x + col("wave_px"))
        * np.cos(2 * np.pi * col("wave_fy") * y + col("wave_py"))
    )
    img += col("noise") * np.stack(
        [r.standard_normal((size, size), dtype=np.float32) for r in rngs]
    )
    img = (img - 0.35) * col("contrast") + 0.35 + col("brightness")
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _low_pass(coarse: np.ndarray, size: int) -> np.ndarray:
    """Smooth noise in about [-1, 1]: a coarse random grid upsampled bicubically to ``size``."""
    from PIL import Image

    fine = Image.fromarray(coarse, mode="F").resize((size, size), Image.Resampling.BICUBIC)
    return np.tanh(np.asarray(fine, dtype=np.float32))


SOURCE = DataSource(
    name="phantom",
    summary="synthetic chest-radiograph-like images generated by mdsearch (no download)",
    example="phantom,n=3000,seed=0",
    path="forbidden",
    scan=scan_phantom,
    options={"n": (), "seed": (), "variant": ("v2", "screen")},
)
