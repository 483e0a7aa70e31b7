"""``mdsearch explain``: Grad-CAM maps, localisation scores against ground truth (the phantom's
lesion masks, the NIH sample's radiologist boxes), the grid and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from mdsearch.cli import main
from mdsearch.mdconv import build
from mdsearch.results import (
    EXPLAIN_FILES,
    Explanation,
    ResultsError,
    box_mask,
    cam_target_layer,
    confident_cases,
    decision_thresholds,
    evaluate_weights,
    grid_caption,
    map_iou,
    map_peak,
    pointing_hit,
    poisson_binomial_tail,
    save_weights,
    score_localisation,
    with_explain_section,
    youden_threshold,
)
from mdsearch.search.datasets import (
    FINDINGS,
    Dataset,
    load_bboxes,
    load_dataset,
    phantom_lesion_masks,
)
from mdsearch.space import ArchSpec

PHANTOM = "phantom,n=120"
RESOLUTION = 64
SPEC = ArchSpec.default("mobilenetv2_035", 5)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One CPU thread: kind to the shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _untrained_weights(folder: Path, spec: ArchSpec, labels, resolution: int) -> Path:
    """weights.safetensors of ``build(spec)`` as initialised (seeded), in mdsearch train's layout."""
    torch.manual_seed(0)
    model = build(spec, head_init="small")
    meta = {"label_names": list(labels), "resolution": resolution}
    return save_weights(model, folder / "weights.safetensors", spec, metadata=meta)


def _kermany_copy(shared_data: Path, root: Path, per_class: dict[str, int]) -> Path:
    """A small Kermany folder: per split, the next ``per_class[split]`` images of each class of
    the shared training split (linked, not copied). Its splits are read class by class, so the
    first images of each are all NORMAL, as in the real test folder."""
    used = 0
    for split, n in per_class.items():
        for cls in ("NORMAL", "PNEUMONIA"):
            (root / split / cls).mkdir(parents=True)
            for f in sorted((shared_data / "kermany224" / "train" / cls).iterdir())[
                used : used + n
            ]:
                (root / split / cls / f.name).symlink_to(f)
        used += n
    return root


def _blank_kermany(folder: Path, splits: dict[str, list[int]]) -> Dataset:
    """A two-class dataset in memory: black 8 px images, no pneumonia, one patient per image."""
    n = sum(len(rows) for rows in splits.values())
    return Dataset(
        name="kermany",
        source=f"kermany={folder}",
        images=np.zeros((n, 8, 8), np.uint8),
        labels=np.zeros((n, 1), np.uint8),
        label_names=("Pneumonia",),
        patient_ids=np.array([f"p{i}" for i in range(n)]),
        splits={name: np.array(rows) for name, rows in splits.items()},
        synthetic=False,
        fingerprint="x",
        resolution=8,
        notes=(),
    )


@pytest.fixture(scope="module")
def phantom_weights(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("phantom-weights")
    return _untrained_weights(folder, SPEC, [f"label{i}" for i in range(5)], RESOLUTION)


# --- scores ------------------------------------------------------------------------------------


def test_box_mask_rescales_a_1024_px_box_to_the_input():
    mask = box_mask(256, 512, 128, 64, 64)  # 1024 px -> 64 px: divide by 16
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (32, 35, 16, 23)
    assert mask.sum() == (128 // 16) * (64 // 16)
    # A box smaller than a pixel still covers the pixel it is in; one past the edge is clipped.
    assert box_mask(1000, 1000, 2, 2, 64).sum() == 1
    assert box_mask(900, 0, 400, 1024, 64)[:, -1].all()


def test_pointing_game_and_iou_on_maps_with_a_known_peak():
    yy, xx = np.mgrid[:32, :32]
    cam = np.exp(-((yy - 8) ** 2 + (xx - 20) ** 2) / 20.0).astype(np.float32)
    inside = np.zeros((32, 32), bool)
    inside[4:12, 16:24] = True
    assert map_peak(cam) == (8, 20)
    assert pointing_hit(cam, inside) and not pointing_hit(cam, ~inside)
    on = cam >= 0.5 * cam.max()
    assert map_iou(cam, inside) == pytest.approx((on & inside).sum() / (on | inside).sum())
    assert map_iou(cam, on) == 1.0
    flat = np.zeros((32, 32), np.float32)  # Grad-CAM's ReLU left nothing: points nowhere
    assert map_peak(flat) is None and not pointing_hit(flat, np.ones((32, 32), bool))
    assert map_iou(flat, inside) == 0.0
    # A 2x2 map upsampled has flat tops out to the border: the peak is the cell's centre, the
    # top's pixel nearest the image centre (not the corner that comes first in reading order).
    coarse = np.zeros((32, 32), np.float32)
    coarse[16:32, 16:32] = 1
    assert map_peak(coarse) == (16, 16)


def test_poisson_binomial_tail_is_the_binomial_tail_for_equal_chances():
    for n, p, k in [(10, 0.1, 3), (200, 0.03, 12), (50, 0.5, 25)]:
        assert poisson_binomial_tail([p] * n, k) == pytest.approx(stats.binom.sf(k - 1, n, p))
    assert poisson_binomial_tail([0.2, 0.5], 0) == 1.0
    assert poisson_binomial_tail([0.2, 0.5], 2) == pytest.approx(0.1)


def test_random_maps_hit_at_chance_and_peaked_maps_far_above():
    rng = np.random.default_rng(0)
    n, side = 400, 32
    masks = np.zeros((n, side, side), bool)
    for i in range(n):
        r, c, h, w = rng.integers(0, 24, 2).tolist() + rng.integers(2, 8, 2).tolist()
        masks[i, r : r + h, c : c + w] = True
    findings = ["A"] * (n // 2) + ["B"] * (n // 2)
    noise = rng.random((n, side, side)).astype(np.float32)
    scores, cases = score_localisation(noise, masks, findings)
    overall = scores[-1]
    assert [s.finding for s in scores] == ["A", "B", "all findings"]
    assert overall.cases == n == len(cases)
    assert overall.chance == pytest.approx(masks.mean())
    assert overall.hit_low <= overall.chance <= overall.hit_high  # a random point hits at chance
    assert overall.p_value > 0.01
    # Always pointing at the pixel most often inside the boxes beats a random point.
    assert overall.fixed_point > overall.chance
    peaked = noise * 0.1 + masks  # the maximum always inside the mask
    scores, _ = score_localisation(peaked, masks, findings)
    assert scores[-1].hit_rate == 1.0 and scores[-1].p_value < 1e-100
    assert scores[-1].mean_iou > 0.9
    with pytest.raises(ValueError, match="at least one pixel"):
        score_localisation(noise[:1], np.zeros((1, side, side), bool), ["A"])


# --- ground truth ------------------------------------------------------------------------------


def test_phantom_masks_cover_the_drawn_lesions(cache_dir):
    ds = load_dataset(PHANTOM, resolution=RESOLUTION, cache_dir=cache_dir, progress=False)
    masks = phantom_lesion_masks(PHANTOM, ds.item_ids, RESOLUTION)
    assert masks.shape == (len(ds), 5, RESOLUTION, RESOLUTION)
    shows = masks.any(axis=(2, 3))
    assert not (shows & (ds.labels == 0)).any()  # no mask for a finding the image lacks
    assert (shows[ds.labels == 1]).mean() > 0.9  # most labelled findings show
    healthy = ds.labels.sum(1) == 0
    images = ds.images.astype(np.float32)
    for k in (1, 2, 3):  # mass, effusion, consolidation: opacities brighter than the healthy lung
        for i in np.flatnonzero(shows[:, k])[:5]:
            inside = images[i][masks[i, k]].mean()
            normal = images[healthy][:, masks[i, k]].mean()
            assert inside > normal + 25, (ds.label_names[k], i, inside, normal)
    # The same lesion at another resolution covers about the same share of the image.
    fine = phantom_lesion_masks(PHANTOM, ds.item_ids[:20], 2 * RESOLUTION)
    coarse, fine_share = masks[:20].mean(axis=(2, 3)), fine.mean(axis=(2, 3))
    big = coarse > 0.01
    assert np.allclose(coarse[big], fine_share[big], rtol=0.3)
    with pytest.raises(Exception, match="not a phantom set"):
        phantom_lesion_masks("chestmnist:28", ["x"], RESOLUTION)


def test_nih_sample_boxes_are_found_and_rescaled(shared_data):
    """The NIH sample's 1,000 images hold 9 of the 984 boxes (5 Atelectasis, 2 Infiltration,
    2 Pneumonia): each becomes a case with the box rescaled from 1024 px."""
    from mdsearch.results import ground_truth_cases

    nih = shared_data / "nih-sample"
    boxes = load_bboxes(nih)
    ds = load_dataset(f"chestxray14={nih}", resolution=RESOLUTION, progress=False)
    on_sample = boxes[boxes["Image Index"].isin(set(ds.item_ids))]
    assert len(boxes) == 984 and len(on_sample) == 9
    assert sorted(on_sample["Finding Label"].value_counts().items()) == [
        ("Atelectasis", 5),
        ("Infiltration", 2),
        ("Pneumonia", 2),
    ]
    cases, source, notes = ground_truth_cases(ds, np.arange(len(ds)))
    assert len(cases) == 9 and "BBox_List_2017" in source
    assert "984 boxes" in notes[0] and "9 on 9 image(s)" in notes[0]
    for row, k, mask in cases:
        box = on_sample[on_sample["Image Index"] == ds.item_ids[row]].iloc[0]
        assert FINDINGS[k] == box["Finding Label"]
        expected = box["w"] * box["h"] * (RESOLUTION / 1024) ** 2
        assert expected <= mask.sum() <= (np.sqrt(expected) + 2) ** 2 + 2


def test_boxes_on_data_without_locations_are_refused(tmp_path):
    from mdsearch.results import ground_truth_cases

    ds = _blank_kermany(tmp_path, {"train": [0], "val": [1]})
    with pytest.raises(ResultsError, match="no known finding locations"):
        ground_truth_cases(ds, np.arange(2))


# --- the command -------------------------------------------------------------------------------


def test_target_layer_is_the_last_spatial_feature_map():
    v2 = build(SPEC)
    assert cam_target_layer(v2)[0] == "bn2"
    v3 = build(ArchSpec.default("mobilenetv3_small_100", 5))
    assert cam_target_layer(v3)[0] == "blocks.5"  # its last block: the head pools first
    x = torch.zeros(1, 3, 64, 64)
    for net in (v2, v3):  # the chosen layer still has a 2x2 map at 64 px (stride 32)
        shapes = []
        name, layer = cam_target_layer(net)
        hook = layer.register_forward_hook(lambda m, i, o, seen=shapes: seen.append(o.shape))
        net.eval()(x)
        hook.remove()
        assert tuple(shapes[0][-2:]) == (2, 2), name
    with pytest.raises(ResultsError, match="--layer 'nope'"):
        cam_target_layer(v2, "nope")


def test_explain_on_phantom_end_to_end(phantom_weights, cache_dir, capsys):
    folder = phantom_weights.parent
    (folder / "eval.md").write_text("# Evaluation of x\n\nAUC table\n")
    command = [
        "explain", SPEC.canonical, "--weights", str(phantom_weights), "--data", PHANTOM,
        "--boxes", "--images", "6", "--cache-dir", str(cache_dir), "--quiet",
    ]  # fmt: skip
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "pointing game:" in out and "chance" in out
    saved = json.loads((folder / EXPLAIN_FILES["json"]).read_text())
    # Every labelled finding of the test split that shows in its image is one case.
    ds = load_dataset(PHANTOM, resolution=RESOLUTION, cache_dir=cache_dir, progress=False)
    test = ds.splits["test"]
    shows = phantom_lesion_masks(PHANTOM, ds.item_ids[test], RESOLUTION).any(axis=(2, 3))
    assert len(saved["cases"]) == int(shows.sum()) == saved["scores"][-1]["cases"]
    assert saved["layer"] == "bn2" and saved["feature_side"] == 2
    rows = (folder / EXPLAIN_FILES["cases"]).read_text().splitlines()
    hits = sum(line.split(",")[4] == "True" for line in rows[1:])
    assert len(rows) == 1 + len(saved["cases"]) and hits == saved["scores"][-1]["hits"]
    for case in saved["cases"]:
        assert 0 <= case["score"] <= 1 and case["present"]
    png = Image.open(folder / EXPLAIN_FILES["png"])
    assert png.size[0] > 800 and png.size[1] > 200  # 4 cases x 2 panels per row, 2 rows
    text = (folder / EXPLAIN_FILES["md"]).read_text()
    assert "| **all findings** |" in text and "chance" in text and "64x64 px" in text
    # The training report links the maps; a second run replaces the section, not adds one.
    assert main(command) == 0
    report = (folder / "eval.md").read_text()
    assert report.startswith("# Evaluation of x") and report.count("## Grad-CAM") == 1
    assert "[explain.md](explain.md)" in report
    assert with_explain_section("# Evaluation of x\n", folder).count("## Grad-CAM") == 1
    assert "## Grad-CAM" not in with_explain_section("# E\n", folder / "elsewhere")


def test_confident_cases_are_each_labels_extremes_in_turn():
    # A split read class by class, as a Kermany test folder is: the first rows are all normal,
    # so the first N images (the old choice) show no pneumonia at all.
    labels = np.array([[0, 1]] * 6 + [[1, 0]] * 6, np.uint8)
    pneumonia = [0.1, 0.2, 0.7, 0.3, 0.9, 0.05, 0.8, 0.4, 0.95, 0.2, 0.6, 0.55]
    other = [0.9, 0.8, 0.1, 0.2, 0.3, 0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    scores = np.array([pneumonia, other]).T
    cases = confident_cases(labels, scores, [0.5, 0.5], 7)
    assert cases == [
        (8, 0, "true positive"),  # present, called positive (>= 0.5), highest score
        (4, 0, "false positive"),  # absent, called positive, highest score
        (9, 0, "false negative"),  # present, called negative, lowest score
        (0, 1, "true positive"),  # every label's first of each kind before any second one
        (2, 1, "false negative"),  # label 1 has no false positive: none is shown
        (6, 0, "true positive"),
        (2, 0, "false positive"),
    ]
    assert {pos for pos, _, _ in cases} != set(range(7))
    # Fewer cases than asked: all there are, each once (true negatives are never shown).
    assert confident_cases(labels[:2], scores[:2], [0.5, 0.5], 50) == [
        (0, 1, "true positive"),
        (1, 1, "true positive"),
    ]


def test_decision_thresholds_are_youdens_on_validation():
    rng = np.random.default_rng(0)
    labels = np.stack([rng.integers(0, 2, 40), np.zeros(40, int)], axis=1).astype(np.uint8)
    scores = rng.random((40, 2)).astype(np.float32)
    thresholds, notes = decision_thresholds(labels, scores, ["Pneumonia", "Mass"])
    assert thresholds[0] == youden_threshold(labels[:, 0], scores[:, 0])
    assert thresholds[1] == 0.5  # one class in validation: no ROC to choose on
    assert "Youden" in notes[0] and "one class of Mass" in notes[1]


def test_a_split_of_true_negatives_only_is_refused_with_a_reason(tmp_path):
    from mdsearch.results import most_confident_cases

    ds = _blank_kermany(tmp_path, {"train": [0, 1], "val": [2], "test": [3]})
    low = np.full((1, 1), 0.1, np.float32)  # below any threshold: all called negative
    with pytest.raises(ResultsError, match="every image is a true negative"):
        most_confident_cases(ds, ds.splits["test"], low, low, "test", 8)


def test_explain_without_boxes_shows_the_cases_a_reader_checks(shared_data, tmp_path, capsys):
    root = _kermany_copy(shared_data, tmp_path / "kermany", {"train": 30, "test": 8})
    spec = ArchSpec.default("mobilenetv2_035", 1)
    weights = _untrained_weights(tmp_path, spec, ["Pneumonia"], 32)
    out = tmp_path / "grid"
    command = [
        "explain", spec.canonical, "--weights", str(weights), "--data", f"kermany={root}",
        "--images", "4", "--out", str(out), "--cache-dir", str(tmp_path / "c"), "--quiet",
    ]  # fmt: skip
    assert main(command) == 0
    saved = json.loads((out / EXPLAIN_FILES["json"]).read_text())
    cases, threshold = saved["cases"], saved["thresholds"]["Pneumonia"]
    assert len(cases) == 4 and saved["scores"] is None
    assert all(c["image"].startswith("test/") for c in cases)
    assert any(c["present"] for c in cases)  # the first 4 test images are all NORMAL
    # The threshold is the one mdsearch eval chooses on the validation split.
    ds = load_dataset(f"kermany={root}", resolution=32, cache_dir=tmp_path / "c", progress=False)
    assert threshold == pytest.approx(evaluate_weights(spec, weights, ds, n_resamples=20).threshold)
    for c in cases:
        called = c["score"] >= threshold - 1e-6
        expected = {
            (True, True): "true positive",
            (False, True): "false positive",
            (True, False): "false negative",
        }
        assert c["kind"] == expected[(c["present"], called)], c
    kinds = [c["kind"] for c in cases]
    assert kinds[: len(set(kinds))] == [
        k for k in ("true positive", "false positive", "false negative") if k in kinds
    ]
    text = (out / EXPLAIN_FILES["md"]).read_text()
    assert "most confident true positive" in text and "Youden" in text
    # The grid's title says which cases it shows.
    shown = Explanation(**{k: v for k, v in saved.items() if k != "scores"})
    assert "most confident true positives, false positives and false negatives" in grid_caption(
        shown
    )


def test_explain_without_boxes_on_phantom_maps_each_cases_own_label(
    phantom_weights, cache_dir, tmp_path
):
    out = tmp_path / "grid"
    command = [
        "explain", SPEC.canonical, "--weights", str(phantom_weights), "--data", PHANTOM,
        "--images", "5", "--split", "val", "--out", str(out), "--cache-dir", str(cache_dir),
        "--quiet",
    ]  # fmt: skip
    assert main(command) == 0
    saved = json.loads((out / EXPLAIN_FILES["json"]).read_text())
    assert len(saved["cases"]) == 5 and saved["scores"] is None
    assert not (out / EXPLAIN_FILES["cases"]).exists()
    ds = load_dataset(PHANTOM, resolution=RESOLUTION, cache_dir=cache_dir, progress=False)
    assert list(saved["thresholds"]) == list(ds.label_names)
    ids = list(ds.item_ids)
    for c in saved["cases"]:
        row = ids.index(c["image"])
        k = ds.label_names.index(c["finding"])
        assert row in ds.splits["val"] and c["present"] == bool(ds.labels[row, k])
        assert (c["score"] >= saved["thresholds"][c["finding"]] - 1e-6) == (
            c["kind"] != "false negative"
        )
    assert any("chosen on images of the val split" in n for n in saved["notes"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layer", "nope"], "--layer 'nope' is not a module"),
        (["--images", "0"], "--images 0"),
        (["--level", "1.5"], "--level 1.5"),
        (["--split", "sideways"], "'sideways' is not one of test, val, train, all"),
        (["--data", "chestmnist:28"], "chestmnist"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    phantom_weights, cache_dir, tmp_path, capsys, extra, message
):
    out = tmp_path / "never"
    command = [
        "explain", SPEC.canonical, "--weights", str(phantom_weights), "--data", PHANTOM,
        "--boxes", "--out", str(out), "--cache-dir", str(cache_dir), "--quiet", *extra,
    ]  # fmt: skip
    try:
        status = main(command)
    except SystemExit as exc:  # argparse's own checks exit from the parser
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_weights_of_another_architecture_are_refused(phantom_weights, tmp_path, capsys):
    other = ArchSpec.default("mobilenetv2_050", 5).canonical
    out = tmp_path / "never"
    assert main(["explain", other, "--weights", str(phantom_weights), "--out", str(out)]) == 2
    assert "were trained for" in capsys.readouterr().err and not out.exists()


def test_explain_boxes_on_the_nih_sample(shared_data, tmp_path, capsys):
    nih = shared_data / "nih-sample"
    spec = ArchSpec.default("mobilenetv2_035", 14)
    weights = _untrained_weights(tmp_path, spec, FINDINGS, RESOLUTION)
    out = tmp_path / "nih"
    command = [
        "explain", spec.canonical, "--weights", str(weights), "--data", f"chestxray14={nih}",
        "--boxes", "--split", "all", "--out", str(out), "--quiet",
    ]  # fmt: skip
    assert main(command) == 0
    saved = json.loads((out / EXPLAIN_FILES["json"]).read_text())
    assert len(saved["cases"]) == 9
    assert {s["finding"] for s in saved["scores"]} == {
        "Atelectasis",
        "Infiltration",
        "Pneumonia",
        "all findings",
    }
    assert "radiologists' boxes" in (out / EXPLAIN_FILES["md"]).read_text()


def test_boxes_on_kermany_are_refused_before_writing(shared_data, tmp_path, capsys):
    root = _kermany_copy(shared_data, tmp_path / "kermany", {"train": 12})
    spec = ArchSpec.default("mobilenetv2_035", 1)
    weights = _untrained_weights(tmp_path, spec, ["Pneumonia"], 32)
    out = tmp_path / "never"
    command = [
        "explain", spec.canonical, "--weights", str(weights), "--data", f"kermany={root}",
        "--boxes", "--split", "all", "--out", str(out), "--cache-dir", str(tmp_path / "c"),
        "--quiet",
    ]  # fmt: skip
    assert main(command) == 2
    assert "no known finding locations" in capsys.readouterr().err
    assert not out.exists()
