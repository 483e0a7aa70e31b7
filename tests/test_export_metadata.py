"""An export a stranger can use: the network files and config.json say how to feed an image and
read the output, and following only that gives mdsearch's own prediction.

The fixture does what a user does: a one-label (Kermany-layout) data folder of PNG files, weights
written as ``mdsearch train`` writes them, ``mdsearch eval``'s report next to them (which chooses
the decision threshold), then ``export``. The weights' resolution (48 px) differs from the run's
proxy (64 px) and from the files' size (120x100, tinted RGB), so the resize, the grey conversion
and the resolution the metadata names all matter.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image
from run_fixtures import arch_string, make_run_folder

from mdsearch.results import (
    EXPORT_FORMATS,
    ModelInterface,
    evaluate_saved,
    export_architecture,
    read_weights_metadata,
    save_weights,
)
from mdsearch.search.datasets import MEAN, STD, batches, load_dataset
from mdsearch.space import ArchSpec

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

RESOLUTION = 48  # the weights' training resolution (the run's proxy trained at 64)
#: Largest |ONNX probability - mdsearch's| allowed: float32 rounding, nothing else.
TOLERANCE = 1e-4


def _xray(rng: np.random.Generator, sick: bool) -> Image.Image:
    """A 120x100 tinted RGB 'radiograph': a bright body, two dark lungs, an opacity when sick."""
    yy, xx = np.mgrid[0:100, 0:120] / 100.0
    grey = 0.75 - 0.5 * (((xx - 0.38) / 0.16) ** 2 + ((yy - 0.5) / 0.3) ** 2 < 1)
    grey -= 0.5 * (((xx - 0.82) / 0.16) ** 2 + ((yy - 0.5) / 0.3) ** 2 < 1)
    if sick:
        grey += 0.4 * np.exp(-(((xx - 0.8) ** 2 + (yy - 0.6) ** 2) / 0.01))
    grey = np.clip(grey + rng.normal(0, 0.08, grey.shape), 0, 1) * 255
    rgb = np.stack([grey, grey * 0.93, grey * 0.86], axis=-1)  # not grey: convert('L') matters
    return Image.fromarray(rgb.astype(np.uint8), mode="RGB")


#: Real ChestX-ray14 files (64 px; one RGB, one RGBA) added to the test split when the shared
#: data is there.
REAL_XRAYS = ("00000001_000.png", "00000004_000.png")


def _kermany_folder(root):
    """train/ and test/ with NORMAL and PNEUMONIA PNGs, one patient per file (plus real NIH
    images in test/NORMAL when ../shared/data has them)."""
    rng = np.random.default_rng(0)
    for part, n in (("train", 10), ("test", 3)):
        for cls, prefix in (
            ("NORMAL", "IM-0{:03d}-0001.png"),
            ("PNEUMONIA", "person{}_virus_1.png"),
        ):
            folder = root / part / cls
            folder.mkdir(parents=True)
            for i in range(n):
                number = i + (100 if part == "test" else 1)
                _xray(rng, cls == "PNEUMONIA").save(folder / prefix.format(number))
    for i, name in enumerate(REAL_XRAYS):
        real = SHARED_DATA / "nih-sample" / "images" / name
        if real.is_file():
            shutil.copyfile(real, root / "test" / "NORMAL" / f"IM-0{200 + i}-0001.png")
    return root


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An export of trained-looking weights whose eval.json chose a threshold, and mdsearch's own
    predictions of the test PNGs (``mdsearch eval``'s predictions.npz)."""
    from mdsearch.mdconv import build

    tmp = tmp_path_factory.mktemp("export")
    data = _kermany_folder(tmp / "xray")
    settings = dict(cache_dir=tmp / "cache", val_fraction=0.5)
    ds = load_dataset(f"kermany={data}", resolution=RESOLUTION, progress=False, **settings)
    run = make_run_folder(tmp / "runs", labels=("Pneumonia",))
    spec = ArchSpec.parse(arch_string((5,), num_classes=1))
    out = tmp / "export"
    torch.manual_seed(0)
    net = build(spec, head_init="small").eval()
    _spread_scores(net, next(batches(ds, "train", batch_size=64, shuffle=False, augment=False))[0])
    weights = save_weights(
        net,
        out / "train" / "weights.safetensors",
        spec,
        metadata={
            "label_names": ["Pneumonia"],
            "resolution": RESOLUTION,
            "normalize": {"mean": MEAN, "std": STD},
            "data": f"kermany={data}",
        },
    )
    ev, _ = evaluate_saved(
        spec, weights, f"kermany={data}", progress=False, say=lambda *a, **k: None, **settings
    )
    files = export_architecture(
        run, spec.arch_id, ("onnx", "safetensors"), out_dir=out, n_resamples=0
    )
    test_files = [data / item for item in ds.item_ids[ds.splits["test"]]]
    return {"files": files, "spec": spec, "ev": ev, "pngs": test_files, "y_score": ev.y_score}


def _spread_scores(net, x) -> None:
    """Rescale an untrained head so that the logits of images ``x`` have mean 0 and SD 2: the
    scores then spread over (0, 1), where a preprocessing mistake shows."""
    head = net.get_classifier()
    with torch.no_grad():
        logits = net(x)
        head.weight.mul_(2 / logits.std())
        head.bias.copy_(-2 * (logits.mean() - head.bias) / logits.std())


def _metadata_preprocess(png, meta) -> np.ndarray:
    """An image file to the network's input, from the ONNX metadata alone (numpy + Pillow)."""
    channels, height, width = json.loads(meta["mdsearch.input_size"])
    assert meta["mdsearch.interpolation"] == "bilinear" and meta["mdsearch.gray_to_3ch"] == "true"
    mean = np.array(json.loads(meta["mdsearch.mean"]), np.float32).reshape(channels, 1, 1)
    std = np.array(json.loads(meta["mdsearch.std"]), np.float32).reshape(channels, 1, 1)
    grey = Image.open(png).convert("L").resize((width, height), Image.Resampling.BILINEAR)
    x = np.repeat(np.asarray(grey, np.float32)[None] / 255.0, channels, axis=0)
    return ((x - mean) / std)[None].astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def test_every_file_carries_the_input_recipe_labels_output_and_threshold(exported):
    files, spec, ev = exported["files"], exported["spec"], exported["ev"]
    session = ort.InferenceSession(str(files["onnx"]), providers=["CPUExecutionProvider"])
    onnx_meta = session.get_modelmeta().custom_metadata_map
    interface = ModelInterface.from_metadata(onnx_meta)
    assert interface.arch == spec.canonical and interface.label_names == ("Pneumonia",)
    assert interface.resolution == RESOLUTION  # the weights', not the run's proxy (64)
    assert (interface.mean, interface.std) == (MEAN, STD)  # the loader's constants
    assert ev.threshold is not None and interface.threshold == pytest.approx(ev.threshold)
    assert (
        "sigmoid" in onnx_meta["mdsearch.output"] and onnx_meta["mdsearch.activation"] == "sigmoid"
    )
    # The safetensors header holds the same (read as its clients read it), and so does config.json.
    header = read_weights_metadata(files["safetensors"])
    assert EXPORT_FORMATS["safetensors"].read_metadata(files["safetensors"]).items() >= (
        onnx_meta.items()
    )
    assert header["input_size"] == [3, RESOLUTION, RESOLUTION]
    config = json.loads(files["config"].read_text())
    assert config["architecture"] == spec.canonical and config["num_classes"] == 1
    assert config["input_size"] == [3, RESOLUTION, RESOLUTION]
    assert config["mean"] == [MEAN] * 3 and config["std"] == [STD] * 3
    assert config["label_names"] == ["Pneumonia"]
    assert config["threshold"] == pytest.approx(ev.threshold)
    card = files["card"].read_text()
    assert f"{ev.threshold:.6g}" in card and f"(N, 3, {RESOLUTION}, {RESOLUTION})" in card


def test_a_png_through_onnxruntime_with_only_the_metadata_gives_mdsearchs_prediction(exported):
    files, pngs, want = exported["files"], exported["pngs"], exported["y_score"]
    session = ort.InferenceSession(str(files["onnx"]), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    x = np.concatenate([_metadata_preprocess(png, meta) for png in pngs])
    got = _sigmoid(session.run(["logits"], {"image": x})[0])
    assert got.shape == want.shape == (len(pngs), 1)
    if SHARED_DATA.is_dir():  # real ChestX-ray14 files (RGB and RGBA) are among them
        assert sum(png.name.startswith("IM-020") for png in pngs) == len(REAL_XRAYS)
    assert np.ptp(want) > 0.2  # the scores differ between images: the check can see mistakes
    assert np.max(np.abs(got - want)) <= TOLERANCE
    threshold = float(meta["mdsearch.threshold"])
    assert np.array_equal(got >= threshold, want >= threshold)
    # The check fails when a step of the recipe is skipped (here: the normalisation).
    raw = x * STD + MEAN
    assert np.max(np.abs(_sigmoid(session.run(["logits"], {"image": raw})[0]) - want)) > 0.01


def _card_code(card: str, heading: str) -> str:
    """The ```python block under a card heading, verbatim."""
    match = re.search(rf"## {re.escape(heading)}\n\n```python\n(.*?)```", card, re.S)
    assert match, heading
    return match.group(1)


def test_the_cards_three_pytorch_lines_load_the_network(exported, monkeypatch):
    files = exported["files"]
    code = _card_code(files["card"].read_text(), "Load in PyTorch")
    assert (
        len(
            [line for line in code.splitlines() if line and not line.startswith(("import", "from"))]
        )
        == 3
    )
    monkeypatch.chdir(files["card"].parent)
    scope: dict = {}
    exec(code, scope)  # the card's code, as printed
    x = torch.randn(2, 3, RESOLUTION, RESOLUTION)
    session = ort.InferenceSession(str(files["onnx"]), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        got = scope["net"](x).numpy()
    assert np.max(np.abs(got - session.run(["logits"], {"image": x.numpy()})[0])) <= TOLERANCE


def test_the_cards_onnxruntime_code_predicts_a_file_as_mdsearch_does(exported, monkeypatch):
    files, pngs, want = exported["files"], exported["pngs"], exported["y_score"]
    code = _card_code(
        files["card"].read_text(), "Predict an image file with onnxruntime (no mdsearch needed)"
    )
    folder = files["card"].parent
    monkeypatch.chdir(folder)
    for png, score in zip(pngs[:2], want[:2]):
        (folder / "xray.png").write_bytes(png.read_bytes())
        scope: dict = {}
        exec(code, scope)
        assert scope["labels"] == ["Pneumonia"]
        assert np.max(np.abs(scope["probability"] - score)) <= TOLERANCE
        assert scope["threshold"] == pytest.approx(exported["ev"].threshold)
