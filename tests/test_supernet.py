"""The weight-sharing supernet: its layer and extract() are exact against MDConv2d / build(spec)
(shared and per-choice depthwise weights); BatchNorm recalibration touches only running
statistics, over a shuffled sample; supernet training is the shared loop and resumes from its
checkpoint (old layout too); a scored sub-network is shaped like a proxy trial."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from mdsearch.cli import main
from mdsearch.mdconv import (
    BuildError,
    ChoiceBatchNorm,
    ChoiceDepthwiseConv2d,
    MDConv2d,
    SuperDepthwiseConv2d,
    build_supernet,
    extract,
    single_kernel_depthwise,
)
from mdsearch.search import (
    ProxyResult,
    SandwichStep,
    SettingsError,
    SupernetSettings,
    TrainRecipe,
    load_dataset,
    load_supernet,
    recalibrate_batchnorm,
    score_subnet,
    train_supernet,
)
from mdsearch.search.datasets import Dataset, batches
from mdsearch.search.subnet_scoring import recalibration_batches
from mdsearch.search.training import predict
from mdsearch.space import SearchSpace, StageSpec, load_space

DEFAULT_CHOICES = load_space("default").choices[1]  # k3 and the three (3,5) splits
SMALL_SPACE = load_space("paper", backbone="mobilenetv2_035")  # the paper's stages, small net


def _standalone(layer: SuperDepthwiseConv2d, choice: StageSpec) -> nn.Module:
    """The stand-alone conv of ``choice`` holding the super layer's cropped weights."""
    crops = [c.detach().clone() for c in layer.crops(choice)]
    if len(choice.kernels) == 1:
        conv = single_kernel_depthwise(layer.channels, choice.kernels[0], stride=layer.stride)
        convs = [conv]
    else:
        conv = MDConv2d(
            layer.channels, choice.kernels, choice.split, stride=layer.stride, impl=layer.impl
        )
        convs = list(conv.convs)
    with torch.no_grad():
        for c, w in zip(convs, crops):
            c.weight.copy_(w)
    return conv


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("choice", DEFAULT_CHOICES, ids=lambda c: c.token)
@pytest.mark.parametrize("impl", ["auto", "split"])
def test_super_layer_equals_mdconv_with_cropped_weights(choice, stride, impl):
    torch.manual_seed(0)
    layer = SuperDepthwiseConv2d(24, 5, stride=stride, impl=impl)
    ref = _standalone(layer, choice)
    x = torch.randn(2, 24, 9, 9).to(memory_format=torch.channels_last).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    out = layer(x, choice)
    out_ref = ref(x_ref)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-6)
    grad = torch.randn_like(out)
    out.backward(grad)
    out_ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=0, atol=1e-6)
    # The shared kernel's gradient is the stand-alone groups' gradients placed in their crops,
    # zero on the ring a smaller kernel does not use.
    ref_grads = [c.weight.grad for c in (ref.convs if isinstance(ref, MDConv2d) else [ref])]
    expected = torch.zeros_like(layer.weight)
    for (k, lo, hi), g in zip(layer.groups(choice), ref_grads):
        c = (5 - k) // 2
        expected[lo:hi, :, c : c + k, c : c + k] = g
    torch.testing.assert_close(layer.weight.grad, expected, rtol=0, atol=1e-5)


def test_the_kernel_transform_is_exact_and_learns():
    """Once-for-All's kernel transformation: with a choice fixed, the layer still equals a
    stand-alone MDConv2d holding its (transformed) crops; the transforms start as the identity
    (the bare centre crops) and receive gradients; extract() carries them into build(spec)."""
    torch.manual_seed(0)
    plain = SuperDepthwiseConv2d(24, 7)
    layer = SuperDepthwiseConv2d(24, 7, transform=True)
    assert sorted(layer.transforms) == ["1", "3", "5"]
    layer.weight.data.copy_(plain.weight.data)
    choice = StageSpec((3, 5, 7), (1, 1, 1))
    x = torch.randn(2, 24, 9, 9)
    torch.testing.assert_close(layer(x, choice), plain(x, choice), rtol=0, atol=1e-6)
    with torch.no_grad():  # a trained, non-identity transform
        for t in layer.transforms.values():
            t.add_(0.1 * torch.randn_like(t))
    out = layer(x, choice)
    assert not torch.allclose(out, plain(x, choice), atol=1e-3)
    torch.testing.assert_close(out, _standalone(layer, choice)(x), rtol=0, atol=1e-5)
    out.square().sum().backward()
    assert layer.transforms["3"].grad.abs().sum() > 0 and layer.transforms["5"].grad.abs().sum() > 0

    net = build_supernet(SMALL_SPACE, num_classes=3, kernel_transform=True).eval()
    with torch.no_grad():
        for layer in (m for ls in net.super_layers.values() for m in ls):
            layer.transforms["3"].add_(0.05 * torch.randn_like(layer.transforms["3"]))
    spec = net.smallest().with_stage(2, (3, 5), (1, 1))
    with torch.no_grad(), net.active(spec):
        expected = net(torch.ones(1, 3, 32, 32))
    got = extract(net, spec)(torch.ones(1, 3, 32, 32))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_super_layer_refuses_choices_that_do_not_fit():
    layer = SuperDepthwiseConv2d(4, 5)
    with pytest.raises(BuildError, match="does not fit"):
        layer(torch.zeros(1, 4, 5, 5), StageSpec((3, 7)))
    with pytest.raises(BuildError, match="empty"):
        layer.groups(StageSpec((3, 5), (9, 1)))


def _random_bn_stats(net: nn.Module) -> None:
    """Non-trivial running statistics, so eval-mode equality covers the BatchNorm copies."""
    gen = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def test_extract_equals_supernet_with_spec_active():
    torch.manual_seed(0)
    space = SMALL_SPACE
    net = build_supernet(space, num_classes=3, head_init="small").eval()
    assert sorted(net.super_layers) == [1, 2, 3, 5]
    assert all(layer.kernel == 5 for ls in net.super_layers.values() for layer in ls)
    _random_bn_stats(net)
    x = torch.randn(2, 3, 32, 32)
    archs = list(space.enumerate(num_classes=3))
    # largest, smallest and two mixed ones (stage5 maps are 1x1 at 32 px: vary stages 1-3)
    specs = [net.largest(), net.smallest(), archs[2], archs[12]]
    outputs = set()
    for spec in specs:
        standalone = extract(net, spec)
        with torch.no_grad(), net.active(spec):
            expected = net(x)
            assert net.active_spec == spec
        with torch.no_grad():
            got = standalone(x)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        outputs.add(round(float(expected.sum()), 4))
    assert len(outputs) == len(specs)  # the sub-networks compute different things
    assert net.active_spec == net.largest()  # the context manager restored it


def test_per_choice_depthwise_is_exact_and_shares_only_the_rest():
    """Each choice owns its depthwise conv and the BatchNorm after it: a sub-network computes
    what build(spec) holding the extracted weights computes; a step of one choice leaves the
    other's depthwise weights alone while the pointwise layers (shared) learn."""
    torch.manual_seed(0)
    net = build_supernet(SMALL_SPACE, num_classes=3, per_choice_depthwise=True).eval()
    layers = [m for ls in net.super_layers.values() for m in ls]
    assert all(isinstance(m, ChoiceDepthwiseConv2d) for m in layers)
    norms = [n for ns in net.choice_norms.values() for n in ns]
    assert len(norms) == len(layers) and all(isinstance(n, ChoiceBatchNorm) for n in norms)
    _random_bn_stats(net)  # every choice's norm its own statistics
    x = torch.randn(2, 3, 32, 32)
    archs = list(SMALL_SPACE.enumerate(num_classes=3))
    outputs = set()
    for spec in [net.largest(), net.smallest(), archs[2], archs[12]]:
        with torch.no_grad(), net.active(spec):
            expected = net(x)
        torch.testing.assert_close(extract(net, spec)(x), expected, rtol=1e-5, atol=1e-5)
        outputs.add(round(float(expected.sum()), 4))
    assert len(outputs) == 4

    block = net.model.blocks[1][0]
    net.train()
    with net.active(net.smallest()):  # k3 everywhere: choice 0 of each stage
        net(x).sum().backward()
    assert block.conv_dw.convs[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in block.conv_dw.convs[1].parameters())
    assert all(p.grad is None for p in block.bn2.norms[1].parameters())
    assert block.conv_pw.weight.grad.abs().sum() > 0 and block.conv_pwl.weight.grad is not None

    with pytest.raises(BuildError, match="exclude each other"):
        build_supernet(SMALL_SPACE, num_classes=3, per_choice_depthwise=True, kernel_transform=True)
    with pytest.raises(SettingsError, match="exclude each other"):
        SupernetSettings(kernel_transform=True, per_choice_depthwise=True).check()


def test_supernet_on_mobilenetv3_with_a_7x7_choice():
    space = SearchSpace.from_dict(
        {"backbone": "mobilenetv3_small_050", "stages": {2: ["base", "k3", "k3.5.7s1:1:1"]}},
        "test",
    )
    torch.manual_seed(0)
    net = build_supernet(space, num_classes=2).eval()
    assert [layer.kernel for layer in net.super_layers[2]] == [7] * len(net.super_layers[2])
    assert net.largest().stages[2].token == "k3.5.7s1:1:1"
    assert net.smallest().stages[2].token == "k3"
    _random_bn_stats(net)
    x = torch.randn(1, 3, 64, 64)
    for spec in space.enumerate(num_classes=2):
        with torch.no_grad(), net.active(spec):
            torch.testing.assert_close(extract(net, spec)(x), net(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(BuildError, match="not in space"):
        net.set_active(load_space("paper").reference_points(2)[1])


# -- training and scoring (search/supernet.py) -------------------------------------------------
TINY = TrainRecipe(epochs=2, batch_size=16, train_subset=32)
TINY_SETTINGS = SupernetSettings(random_subnets=1, recalibration_images=32, recalibration_batch=16)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One CPU thread: bitwise-reproducible training (and kind to the shared machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return load_dataset("phantom,n=200", resolution=32, cache_dir=str(cache), progress=False)


def _weights(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_the_recalibration_sample_mixes_classes_on_a_class_sorted_split():
    """Kermany's splits are stored NORMAL first: the sample must be shuffled, or its batches
    hold one class each and the running variances miss the variance between the classes. The
    fixed sample is the same on every call; a further score's seed draws another, alike."""
    n, half = 400, 200
    labels = np.zeros((n, 1), np.uint8)
    labels[half:] = 1  # the split in class order, as Kermany's catalogue lists it
    dataset = Dataset(
        name="sorted", source="test", images=np.zeros((n, 8, 8), np.uint8), labels=labels,
        label_names=("Pneumonia",), patient_ids=np.arange(n).astype(str),
        splits={"train": np.arange(n), "val": np.arange(0)}, synthetic=True, fingerprint="x",
        resolution=8, notes=(),
    )  # fmt: skip
    settings = SupernetSettings(recalibration_images=128, recalibration_batch=32)

    def sample(seed=None):
        return [y[:, 0].numpy() for _, y in recalibration_batches(dataset, settings, seed)]

    fixed = sample()
    assert len(fixed) == 4 and all(len(b) == 32 for b in fixed)
    assert all(0.2 < b.mean() < 0.8 for b in fixed)  # both classes in every batch
    assert [b.tolist() for b in sample()] == [b.tolist() for b in fixed]
    repeat = sample(1)
    assert all(0.2 < b.mean() < 0.8 for b in repeat) and len(repeat) == len(fixed)
    assert [b.tolist() for b in repeat] != [b.tolist() for b in fixed]


def test_recalibration_changes_only_running_statistics(phantom):
    torch.manual_seed(0)
    net = build_supernet(SMALL_SPACE, num_classes=5)
    net.train()
    net.model.classifier.eval()  # a mixed mode must come back as it was
    before = _weights(net)
    momenta = [m.momentum for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    images = recalibrate_batchnorm(
        net, batches(phantom, "train", batch_size=16, shuffle=False, augment=False, subset=32)
    )
    assert images == 32
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "recalibration changed no statistic"
    assert all(k.endswith(("running_mean", "running_var")) for k in changed)
    assert [m.momentum for m in net.modules() if isinstance(m, nn.BatchNorm2d)] == momenta
    assert net.training and not net.model.classifier.training
    # Per choice: the norms of the other choices (not run) keep their statistics.
    net = build_supernet(SMALL_SPACE, num_classes=5, per_choice_depthwise=True)
    _random_bn_stats(net)
    idle = net.choice_norms[1][0].norms[0]  # k3's norm; the largest runs k3.5s1:1
    before = _weights(idle)
    recalibrate_batchnorm(
        net, batches(phantom, "train", batch_size=16, shuffle=False, augment=False, subset=32)
    )
    assert all(torch.equal(before[k], v) for k, v in idle.state_dict().items())


def test_the_supernet_trains_in_the_shared_loop_without_a_host_sync_per_subnetwork(
    phantom, monkeypatch
):
    import mdsearch.search.training as training

    calls = []
    shared = training.train
    monkeypatch.setattr(training, "train", lambda *a, **k: calls.append(a[0]) or shared(*a, **k))
    one = TrainRecipe(epochs=1, batch_size=16, train_subset=16)
    train_supernet(SMALL_SPACE, phantom, one, seed=0, settings=TINY_SETTINGS, proxy=one)
    assert len(calls) == 1 and isinstance(calls[0], SandwichStep)

    # One sandwich step reads no loss or output back to the host (the loop sums the losses on
    # the device and reads the sum once per epoch); the sampler's integer draws come from its
    # own CPU generator.
    step = SandwichStep(SMALL_SPACE, 5, SupernetSettings(random_subnets=2, distill=True), seed=0)
    net = step.build(one).train()
    x, y = next(batches(phantom, "train", batch_size=8, shuffle=False, augment=False))
    reads = []

    def counted(name):
        original = getattr(torch.Tensor, name)

        def read(t, *args):
            if t.dtype.is_floating_point:
                reads.append(name)
            return original(t, *args)

        return read

    for name in ("item", "tolist", "__float__", "__int__", "__bool__", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, counted(name))
    loss, images = step(net, x, y)
    monkeypatch.undo()
    assert reads == [] and images == 8 * 4 and loss.ndim == 0 and float(loss) > 0
    assert net.active_spec == net.largest()


def test_killed_training_resumes_from_its_last_checkpoint(phantom, tmp_path):
    whole = train_supernet(SMALL_SPACE, phantom, TINY, seed=3, settings=TINY_SETTINGS, proxy=TINY)
    assert whole.epochs_done == 2 and whole.images == 2 * 32 * 3  # largest, smallest, 1 random
    assert whole.proxy_equivalents == 3.0  # a TINY proxy trial trains on 2 * 32 images

    class Killed(Exception):
        pass

    def kill_after_first_epoch(training, _stats):
        if training.epochs_done == 1:
            raise Killed

    checkpoint = tmp_path / "supernet.pt"
    with pytest.raises(Killed):
        train_supernet(
            SMALL_SPACE, phantom, TINY, seed=3, settings=TINY_SETTINGS, checkpoint=checkpoint,
            on_epoch=kill_after_first_epoch,
        )  # fmt: skip
    # One checkpoint format: the training loop's state (as mdsearch train's checkpoint.pt holds
    # it), the supernet's record beside it.
    state = torch.load(checkpoint, weights_only=True)
    assert {"epoch", "model", "optimizer", "scheduler", "rng", "step"} <= set(state)
    assert state["format"] == "mdsearch.supernet/2" and len(state["history"]) == 1
    # A checkpoint written before the loop was shared (mdsearch.supernet/1) resumes the same.
    old = tmp_path / "old.pt"
    torch.save({"meta": {**state["meta"], "format": "mdsearch.supernet/1"},
                "run": {k: state[k] for k in ("epoch", "model", "optimizer", "scheduler", "rng")},
                "arch_rng": state["step"]["arch"], "epochs": state["history"]}, old)  # fmt: skip
    for path in (checkpoint, old):
        resumed = train_supernet(
            SMALL_SPACE, phantom, TINY, seed=3, settings=TINY_SETTINGS, checkpoint=path
        )
        assert resumed.resumed_from == 1 and resumed.epochs_done == 2
        assert len(resumed.epochs) == 2  # the first epoch's record came from the checkpoint
        expected, got = _weights(whole.supernet), _weights(resumed.supernet)
        assert all(torch.equal(expected[k], got[k]) for k in expected)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": {}}, foreign)
    with pytest.raises(SettingsError, match="is not a supernet checkpoint") as err:
        load_supernet(foreign)
    assert "\n" not in str(err.value)
    # another training's checkpoint is refused, not silently continued
    with pytest.raises(SettingsError, match="another training"):
        train_supernet(
            SMALL_SPACE, phantom, TINY, seed=4, settings=TINY_SETTINGS, checkpoint=checkpoint
        )


@pytest.mark.parametrize("per_choice", [False, True], ids=["shared", "per-choice"])
def test_scored_subnetwork_is_a_proxy_result_and_extracts_exactly(phantom, tmp_path, per_choice):
    checkpoint = tmp_path / "supernet.pt"
    settings = replace(TINY_SETTINGS, per_choice_depthwise=per_choice)
    training = train_supernet(
        SMALL_SPACE, phantom, TINY, seed=0, settings=settings, checkpoint=checkpoint
    )
    spec = list(SMALL_SPACE.enumerate(num_classes=5))[5]
    result = score_subnet(training.supernet, spec, phantom, TINY, settings=settings)
    assert isinstance(result, ProxyResult)
    assert result.y_score.shape == result.y_true.shape == (len(phantom.splits["val"]), 5)
    assert 0 <= result.auc <= 1 and result.fidelity == TINY.epochs and result.train_seconds > 0
    # the stand-alone network inherits the recalibrated weights and predicts the same
    val = batches(phantom, "val", batch_size=128, shuffle=False, augment=False)
    _, standalone = predict(extract(training.supernet, spec), val)
    np.testing.assert_allclose(standalone, result.y_score, atol=1e-5)
    # scoring is order-independent (statistics are recomputed per sub-network) and a supernet
    # loaded from the checkpoint in another process scores the same
    score_subnet(training.supernet, SMALL_SPACE.reference_points(5)[0], phantom, TINY,
                 settings=settings)  # fmt: skip
    loaded = load_supernet(checkpoint)
    assert loaded.recipe == TINY and loaded.settings == settings
    assert bool(loaded.supernet.choice_norms) == per_choice
    again = score_subnet(loaded.supernet, spec, phantom, loaded.recipe, settings=loaded.settings)
    np.testing.assert_allclose(again.y_score, result.y_score, atol=1e-6)
    assert loaded.epochs_done == 2 and loaded.meta["seed"] == 0


@pytest.mark.slow  # 6 tiny trainings and a supernet: ~20 s of CPU
def test_proxy_check_ranks_by_the_supernet_too(tmp_path, capsys):
    out = tmp_path / "check"
    argv = [
        "proxy-check", "--data", "phantom,n=200", "--resolution", "32", "--space", "paper",
        "--backbone", "mobilenetv2_035", "--archs", "3", "--seeds", "1", "--short", "1",
        "--long", "2", "--train-subset", "32", "--batch-size", "16", "--resamples", "50",
        "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--supernet", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    assert re.search(r"Supernet \(\d+ epochs, cost .*\): tau ", capsys.readouterr().out)
    result = json.loads((out / "proxy_check.json").read_text())
    assert result["parameters"]["supernet"] is True
    supernet = result["supernet"]
    assert len(supernet["auc"]) == 3 and all(0 <= a <= 1 for a in supernet["auc"])
    # 8 epochs x 2 steps x 16 images x 4 sub-networks over a 2-epoch x 32-image proxy trial
    assert supernet["proxy_equivalents"] == 16.0 and supernet["proxy_epochs"] == 2
    assert set(result["supernet_tau"]) >= {"tau", "low", "high"}
