"""Export of a picked architecture: arch.json rebuilds the same network; every export format
(one contract test over the registry) writes a file that computes what PyTorch computes."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
from run_fixtures import arch_string, make_run_folder

from mdsearch.results import (
    EXPORT_FORMATS,
    ExportFormat,
    ResultsError,
    check_outputs,
    export_architecture,
)
from mdsearch.space import ArchSpec

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    run = make_run_folder(tmp_path_factory.mktemp("runs"))
    return run, export_architecture(run, pick="flops<=1230", n_resamples=100, example_size=64)


def _rebuilt(files):
    from safetensors.torch import load_file

    from mdsearch.mdconv import build

    net = build(ArchSpec.from_json(files["arch_json"])).eval()
    net.load_state_dict(load_file(str(files["safetensors"])))
    return net


def test_export_writes_every_file_under_exports_arch_id(exported):
    run, files = exported
    spec = ArchSpec.from_json(files["arch_json"])
    assert spec.canonical == arch_string((5,))  # flops<=1230: the best AUC is the paper's arch
    assert files["arch_json"].parent == run / "exports" / spec.arch_id
    assert json.loads(files["arch_json"].read_text())["id"] == spec.arch_id
    for key in ("card", "config", "safetensors", "onnx", "torchscript"):
        assert files[key].stat().st_size > 0
        # Readable by everyone, like the rest of the run folder (as far as the umask allows).
        assert stat.S_IMODE(files[key].stat().st_mode) == 0o644 & ~_umask(), key
    assert sorted(p.name for p in files["card"].parent.iterdir()) == sorted(
        p.name for p in files.values()
    )  # nothing else, no temporary file left
    card = files["card"].read_text()
    assert spec.canonical in card and "random initialisation" in card
    assert "synthetic data" in card and "1228.0 M multiply-adds at 448x448" in card


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_help_lists_the_formats_and_the_defaults(capsys):
    from mdsearch.cli import main
    from mdsearch.results import DEFAULT_RESAMPLES

    for command in ("export", "report", "pareto"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert f"default {DEFAULT_RESAMPLES})" in text, command
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"of {', '.join(EXPORT_FORMATS)} (default {','.join(EXPORT_FORMATS)})" in text


def test_arch_json_rebuilds_the_same_network(exported):
    from safetensors.torch import load_file

    _, files = exported
    saved = load_file(str(files["safetensors"]))
    net = _rebuilt(files)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == {
        k: tuple(v.shape) for k, v in saved.items()
    }
    x = torch.randn(3, 3, 64, 64)
    scripted = torch.jit.load(str(files["torchscript"]))
    with torch.no_grad():
        assert torch.allclose(net(x), scripted(x), atol=1e-5)


def test_onnx_matches_pytorch_at_another_batch_and_size(exported):
    _, files = exported
    net = _rebuilt(files)
    x = torch.randn(1, 3, 96, 80)  # the graph keeps batch and image size dynamic
    with torch.no_grad():
        want = net(x).numpy()
    session = ort.InferenceSession(str(files["onnx"]), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"image": x.numpy()})[0]
    assert np.max(np.abs(got - want)) <= 1e-4 * max(1.0, np.abs(want).max())


def test_given_trained_weights_are_exported(exported, tmp_path):
    from safetensors.torch import load_file, save_file

    run, files = exported
    trained = {
        k: v + 0.01 if v.is_floating_point() else v
        for k, v in load_file(str(files["safetensors"])).items()
    }
    save_file(trained, tmp_path / "w.safetensors")
    out = _export_safetensors(run, tmp_path / "x", tmp_path / "w.safetensors")
    again = load_file(str(out["safetensors"]))
    assert all(torch.equal(again[k], trained[k]) for k in trained)
    key = next(iter(trained))
    assert "trained weights from" in out["card"].read_text()
    assert "onnx" not in out
    # Without weights=, what `mdsearch train <export>/arch.json` left in train/ is used.
    (tmp_path / "d" / "train").mkdir(parents=True)
    save_file(trained, tmp_path / "d" / "train" / "weights.safetensors")
    out = _export_safetensors(run, tmp_path / "d")
    assert torch.equal(load_file(str(out["safetensors"]))[key], trained[key])


def test_bad_exports_are_refused(exported, tmp_path):
    from safetensors.torch import save_file

    run, _ = exported
    with pytest.raises(ResultsError, match="unknown export format"):
        export_architecture(run, formats=("tflite",))
    save_file({"nope": torch.zeros(2)}, tmp_path / "bad.safetensors")
    with pytest.raises(ResultsError, match="do not fit"):
        _export_safetensors(run, tmp_path / "y", tmp_path / "bad.safetensors")
    save_file({"x": torch.zeros(2)}, tmp_path / "other.safetensors", {"mdsearch.arch": "m:c3:k3"})
    with pytest.raises(ResultsError, match="trained for m:c3:k3"):
        _export_safetensors(run, tmp_path / "z", tmp_path / "other.safetensors")
    with pytest.raises(ResultsError, match="nearest"):
        export_architecture(run, pick="flops<=100", n_resamples=0)
    # Refused before anything was written: no export folder.
    assert not any((tmp_path / name).exists() for name in ("y", "z"))


def test_a_failed_export_leaves_nothing_behind(tmp_path, capsys):
    from safetensors.torch import save_file

    from mdsearch.cli import main

    run = make_run_folder(tmp_path / "runs")
    other = ArchSpec.parse(arch_string((1,)))  # weights of another architecture
    save_file({"x": torch.zeros(2)}, tmp_path / "w.safetensors", {"mdsearch.arch": other.canonical})
    argv = ["export", str(run), "--pick", "knee", "--resamples", "0"]
    assert main([*argv, "--weights", str(tmp_path / "w.safetensors"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mdsearch export: error: --weights")
    assert other.canonical in err
    assert not (run / "exports").exists()
    # Without --quiet the progress lines come first; the error is still one line, the last.
    assert main([*argv, "--weights", str(tmp_path / "w.safetensors")]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[-2].endswith("... failed") and lines[-1].startswith("mdsearch export: error:")
    assert not (run / "exports").exists()


def test_a_step_that_fails_after_writing_removes_what_this_export_created(tmp_path, monkeypatch):
    run = make_run_folder(tmp_path / "runs")
    out = tmp_path / "exports" / "x"
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("the user's")

    def broken(*args, **kwargs):
        raise ResultsError("simulated failure")

    monkeypatch.setattr(type(EXPORT_FORMATS["safetensors"]), "load", broken)
    with pytest.raises(ResultsError, match="simulated"):
        export_architecture(run, "knee", ("safetensors",), out_dir=out, n_resamples=0)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # a folder it did not make
    with pytest.raises(ResultsError, match="simulated"):
        export_architecture(run, "knee", ("safetensors",), out_dir=out / "a" / "b", n_resamples=0)
    assert not (out / "a").exists()  # folders it made are gone


def _export_safetensors(run, out_dir, weights=None):
    return export_architecture(
        run, "flops<=1230", ("safetensors",), out_dir=out_dir, weights=weights, n_resamples=0
    )


# -- the contract every export format keeps --------------------------------------------------
@pytest.fixture(scope="module")
def small_net():
    from mdsearch.mdconv import build

    spec = ArchSpec.parse(arch_string((5,)))
    torch.manual_seed(0)
    return spec, build(spec).eval()


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("name", list(EXPORT_FORMATS))
def test_every_format_writes_one_file_that_computes_what_pytorch_computes(
    name, small_net, tmp_path
):
    spec, net = small_net
    fmt = EXPORT_FORMATS[name]
    assert isinstance(fmt, ExportFormat) and fmt.name == name
    example = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    path = tmp_path / fmt.filename
    metadata = {"mdsearch.arch": spec.canonical, "mdsearch.label_names": '["a", "b", "c"]'}
    fmt.save(net, example, path, spec, metadata)
    # Written atomically: the file and nothing else (no temporary file left behind).
    assert [p.name for p in tmp_path.iterdir()] == [fmt.filename]
    assert path.stat().st_size > 0
    # The metadata comes back as the format's own clients read it.
    assert fmt.read_metadata(path).items() >= metadata.items()
    run = fmt.load(path, spec)
    for x in (example, torch.randn(3, 3, 64, 64)):  # the traced batch and another
        with torch.no_grad():
            want = net(x).numpy()
        line = check_outputs(fmt.label, run(x), want)
        assert line.startswith(fmt.label) and f"{len(x)}-image" in line
    assert fmt.filename in fmt.card_line(spec, 64)


def test_outputs_unlike_pytorchs_are_refused():
    want = np.zeros((2, 14))
    assert "bound 0.0001" in check_outputs("X", want + 1e-5, want)
    with pytest.raises(ResultsError, match="X export differs from PyTorch"):
        check_outputs("X", want + 1e-3, want)
    with pytest.raises(ResultsError, match="differs"):
        check_outputs("X", np.zeros((2, 13)), want)
