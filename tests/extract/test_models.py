"""Model presets, BiT / DenseNet architectures and weight loading, and the hooked extractor."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

from skdice.extract.hooked import HookedExtractor, find_head  # noqa: E402
from skdice.extract.models import PRESETS, WeightsMismatchError, load_preset  # noqa: E402
from skdice.extract.models.bit import (  # noqa: E402
    R101_UNITS,
    PreActBottleneck,
    ResNetV2,
    StdConv2d,
    load_bit_npz,
    save_bit_npz,
)
from skdice.extract.models.densenet import DenseNetBC, load_densenet_checkpoint  # noqa: E402

CIFAR10_CKPT = "models/densenet-bc-100-cifar10.pth.tar"
CIFAR10_SHA256 = "deaefd082911a1c6c92aacdcfecf03c71b932acc5c08b779c85c44eccdc0c817"


def _perturbed(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter (norm affines included) non-trivial values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model.eval()


@pytest.fixture(scope="module")
def small_bit():
    torch.manual_seed(0)
    return _perturbed(ResNetV2(units=(1, 1, 1, 1), base_width=32, num_classes=10))


@pytest.fixture(scope="module")
def small_bit_npz(small_bit, tmp_path_factory):
    return save_bit_npz(small_bit, tmp_path_factory.mktemp("bit") / "bit-small.npz")


# -- presets ---------------------------------------------------------------------------------------


def test_presets_are_the_papers_two_models():
    assert sorted(PRESETS) == ["bit-s-r101", "densenet-bc-100"]
    assert PRESETS["bit-s-r101"].input_size == (3, 480, 480)
    assert PRESETS["densenet-bc-100"].input_size == (3, 32, 32)


def test_load_preset_unknown_name():
    with pytest.raises(ValueError, match="unknown model preset 'resnet50'; available: bit-s-r101"):
        load_preset("resnet50")


@pytest.mark.parametrize("name", ["bit-s-r101", "densenet-bc-100"])
def test_load_preset_refuses_to_run_without_weights(name):
    with pytest.raises(ValueError, match=f"model '{name}' needs its weights file.*never downloads"):
        load_preset(name)


def test_load_preset_argument_conflicts(tmp_path):
    with pytest.raises(ValueError, match="either weights or random_init"):
        load_preset("densenet-bc-100", tmp_path / "x.pth", random_init=True)
    with pytest.raises(ValueError, match="num_classes is only for random_init"):
        load_preset("densenet-bc-100", tmp_path / "x.pth", num_classes=10)
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        load_preset("densenet-bc-100", tmp_path / "absent.pth.tar")


def test_bit_preset_random_init_spec():
    spec = load_preset("bit-s-r101", random_init=True)
    assert spec.module.units == R101_UNITS and spec.num_features == 2048
    assert spec.head is spec.module.head.conv and spec.num_classes == 1000
    assert spec.feature_layer == "head.conv:input" and spec.weights_sha256 is None
    assert not spec.module.training
    x = spec.preprocess(Image.new("RGB", (50, 30), color=(255, 0, 128)))
    assert x.shape == spec.input_size and x.dtype == torch.float32
    np.testing.assert_allclose(x[:, 0, 0].numpy(), [1.0, -1.0, 128 / 255 * 2 - 1], atol=1e-6)
    steps = json.loads(json.dumps(spec.preprocessing))["steps"]
    assert [s["name"] for s in steps] == ["ConvertRGB", "Resize", "ToTensor", "Normalize"]
    assert steps[1]["size"] == [480, 480]
    # the hooked extractor finds the same head; a small input keeps the R101 forward quick
    extractor = HookedExtractor(spec.module)
    assert extractor.head is spec.head and extractor.head_name == spec.head_name
    features, logits = extractor(torch.randn(1, 3, 64, 64))
    assert features.shape == (1, 2048) and logits.shape == (1, 1000)
    assert extractor.head_weight().shape == (2048, 1000)


def test_bit_preset_refuses_a_reduced_file(small_bit_npz):
    # the preset is R101: a file with one unit per stage lacks unit02 ... unit23
    with pytest.raises(WeightsMismatchError, match=r"missing keys: resnet/block1/unit02/"):
        load_preset("bit-s-r101", small_bit_npz)


# -- DenseNet-BC-100 -------------------------------------------------------------------------------


def test_densenet_channel_counts_and_key_layout():
    model = DenseNetBC()
    state = model.state_dict()
    assert len(state) == 596
    assert model.num_features == 342 and model.fc.in_features == 342
    assert state["conv1.weight"].shape == (24, 3, 3, 3)
    assert state["block1.layer.15.conv2.weight"].shape == (12, 48, 3, 3)
    assert state["trans1.conv1.weight"].shape == (108, 216, 1, 1)
    assert state["block2.layer.0.bn1.weight"].shape == (108,)
    assert state["trans2.conv1.weight"].shape == (150, 300, 1, 1)
    assert state["bn1.weight"].shape == (342,)
    assert "block3.layer.15.bn2.running_var" in state


def test_densenet_rejects_bad_depth():
    with pytest.raises(ValueError, match="depth must be 6 n \\+ 4, got 99"):
        DenseNetBC(depth=99)


def test_densenet_checkpoint_round_trip_reads_classes(tmp_path):
    torch.manual_seed(1)
    model = _perturbed(DenseNetBC(num_classes=100))
    path = tmp_path / "ckpt.pth.tar"
    torch.save({"epoch": 3, "state_dict": model.state_dict()}, path)
    loaded = load_densenet_checkpoint(path)
    assert loaded.fc.out_features == 100 and not loaded.training
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model(x))


def test_densenet_mismatched_file_names_missing_and_unexpected_keys(tmp_path):
    state = DenseNetBC().state_dict()
    state["block1.layer.0.bn_one.weight"] = state.pop("block1.layer.0.bn1.weight")
    state["classifier.bias"] = torch.zeros(10)
    path = tmp_path / "bad.pth.tar"
    torch.save({"epoch": 1, "state_dict": state}, path)
    with pytest.raises(WeightsMismatchError) as info:
        load_densenet_checkpoint(path)
    message = str(info.value)
    assert "bad.pth.tar does not match DenseNet-BC-100" in message
    assert "1 missing keys: block1.layer.0.bn1.weight" in message
    assert "2 unexpected keys: block1.layer.0.bn_one.weight, classifier.bias" in message


def test_densenet_mismatched_shapes_are_named(tmp_path):
    state = DenseNetBC().state_dict()
    state["trans1.conv1.weight"] = torch.zeros(100, 216, 1, 1)
    path = tmp_path / "shape.pth"
    torch.save(state, path)  # a bare state_dict is accepted too
    with pytest.raises(WeightsMismatchError, match=r"trans1.conv1.weight \(100, 216, 1, 1\) != "
                       r"\(108, 216, 1, 1\)"):
        load_densenet_checkpoint(path)


class _NotATensor:
    pass


def test_densenet_loading_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": DenseNetBC().state_dict(), "extra": _NotATensor()}, path)
    expected = r"objects other than tensors .*_NotATensor.*save a state_dict"
    with pytest.raises(WeightsMismatchError, match=expected):
        load_densenet_checkpoint(path)


def test_densenet_loading_refuses_non_checkpoints(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(WeightsMismatchError, match="neither a state_dict nor"):
        load_densenet_checkpoint(path)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(WeightsMismatchError, match="not a readable torch checkpoint"):
        load_densenet_checkpoint(junk)


def _cifar10_sample(root, per_class_rank=7, total=64):
    """The first images of every class, interleaved, cut to ``total``; labels = sorted folders."""
    classes = sorted(p.name for p in (root / "images" / "cifar10-test").iterdir() if p.is_dir())
    items = []
    for rank in range(per_class_rank):
        for label, cls in enumerate(classes):
            items.append((root / "images" / "cifar10-test" / cls / f"{rank:04d}.jpg", label))
    return items[:total]


@pytest.fixture(scope="module")
def cifar10_run(shared_data):
    spec = load_preset("densenet-bc-100", shared_data / CIFAR10_CKPT)
    items = _cifar10_sample(shared_data)
    batch = torch.stack([spec.preprocess(Image.open(path)) for path, _ in items])
    labels = np.array([label for _, label in items])
    extractor = HookedExtractor(spec.module)
    features, logits = extractor(batch)
    with torch.inference_mode():
        direct_features = spec.module.forward_features(batch)
    return spec, extractor, features.numpy(), logits.numpy(), labels, direct_features.numpy()


@pytest.mark.shared_data
def test_densenet_shared_checkpoint_spec(cifar10_run):
    spec, extractor, *_ = cifar10_run
    assert spec.weights_sha256 == CIFAR10_SHA256
    assert spec.head is spec.module.fc and spec.feature_layer == "fc:input"
    assert spec.num_classes == 10 and spec.num_features == 342
    assert extractor.head is spec.head


@pytest.mark.shared_data
def test_densenet_shared_checkpoint_features_are_the_penultimate_layer(cifar10_run):
    spec, extractor, features, logits, labels, direct = cifar10_run
    assert features.shape == (64, 342) and logits.shape == (64, 10)
    assert (features >= 0).all()  # after the final ReLU
    np.testing.assert_allclose(features, direct, rtol=1e-5, atol=1e-6)
    W, b = extractor.head_weight(), extractor.head_bias()
    assert W.shape == (342, 10) and W.dtype == np.float32
    reference = features.astype(np.float64) @ W.astype(np.float64) + b
    np.testing.assert_allclose(logits, reference, rtol=1e-4, atol=1e-4)


@pytest.mark.shared_data
def test_densenet_shared_checkpoint_classifies_cifar10(cifar10_run):
    *_, logits, labels, _ = cifar10_run
    accuracy = float((logits.argmax(axis=1) == labels).mean())
    assert accuracy >= 0.6, accuracy


# -- BiT ResNet-v2 ------------------------------------------------------------


def test_std_conv_standardises_each_filter():
    torch.manual_seed(2)
    conv = StdConv2d(4, 6, 3, padding=1, bias=False)
    w = conv.weight.detach().numpy().astype(np.float64)
    mean = w.mean(axis=(1, 2, 3), keepdims=True)
    var = ((w - mean) ** 2).mean(axis=(1, 2, 3), keepdims=True)  # biased
    w_std = torch.from_numpy(((w - mean) / np.sqrt(var + 1e-10)).astype(np.float32))
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        np.testing.assert_allclose(
            conv(x).numpy(), F.conv2d(x, w_std, padding=1).numpy(), rtol=1e-4, atol=1e-5
        )


def _reference_unit(unit, x):
    """Pre-activation bottleneck written out with functional calls."""

    def std(w):
        m = w.mean(dim=(1, 2, 3), keepdim=True)
        v = ((w - m) ** 2).mean(dim=(1, 2, 3), keepdim=True)
        return (w - m) / torch.sqrt(v + 1e-10)

    def gn(t, norm):
        return F.relu(F.group_norm(t, 32, norm.weight, norm.bias, eps=1e-5))

    stride = unit.conv2.stride
    pre = gn(x, unit.gn1)
    shortcut = F.conv2d(pre, std(unit.downsample.weight), stride=stride) if unit.downsample else x
    out = F.conv2d(pre, std(unit.conv1.weight))
    out = F.conv2d(gn(out, unit.gn2), std(unit.conv2.weight), stride=stride, padding=1)
    out = F.conv2d(gn(out, unit.gn3), std(unit.conv3.weight))
    return out + shortcut


@pytest.mark.parametrize("cin, cout, cmid, stride", [(64, 128, 32, 2), (128, 128, 32, 1)])
def test_preact_bottleneck_matches_functional_reference(cin, cout, cmid, stride):
    torch.manual_seed(3)
    unit = _perturbed(PreActBottleneck(cin, cout, cmid, stride))
    assert (unit.downsample is None) == (stride == 1 and cin == cout)
    x = torch.randn(2, cin, 8, 8)
    with torch.no_grad():
        np.testing.assert_allclose(
            unit(x).numpy(), _reference_unit(unit, x).numpy(), rtol=1e-4, atol=1e-4
        )


def test_bit_stem_and_stage_shapes():
    model = ResNetV2(units=(1, 1, 1, 1), base_width=32, num_classes=10).eval()
    with torch.no_grad():
        # 480 -> conv 7x7/2 pad 3 -> 240 -> pad 1 -> 242 -> max-pool 3/2 -> 120
        assert model.root(torch.zeros(1, 3, 480, 480)).shape == (1, 32, 120, 120)
        out = model.root(torch.zeros(1, 3, 64, 64))
        widths = []
        for block in model.body:
            out = block(out)
            widths.append(tuple(out.shape[1:]))
    assert widths == [(128, 16, 16), (256, 8, 8), (512, 4, 4), (1024, 2, 2)]
    assert model.num_features == 1024


def test_bit_r101_has_the_official_key_count():
    model = ResNetV2()
    from skdice.extract.models.bit import _npz_layout

    keys = _npz_layout(model)
    # stem + 33 units x (3 convs + 3 gammas + 3 betas) + 4 projections + final GN (2) + head (2)
    assert len(keys) == 1 + 33 * 9 + 4 + 2 + 2
    assert "resnet/block3/unit23/c/group_norm/beta" in keys
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(44.5e6, rel=0.01)


def test_bit_rejects_bad_width():
    with pytest.raises(ValueError, match="multiple of 32"):
        ResNetV2(units=(1, 1, 1, 1), base_width=48)


def test_bit_npz_uses_official_names_and_hwio(small_bit, small_bit_npz):
    with np.load(small_bit_npz, allow_pickle=False) as archive:
        files = dict(archive.items())
    assert files["resnet/root_block/standardized_conv2d/kernel"].shape == (7, 7, 3, 32)
    assert files["resnet/block2/unit01/a/proj/standardized_conv2d/kernel"].shape == (1, 1, 128, 256)
    assert files["resnet/head/conv2d/kernel"].shape == (1, 1, 1024, 10)
    assert files["resnet/head/conv2d/bias"].shape == (10,)
    assert files["resnet/group_norm/gamma"].shape == (1024,)
    assert all(k.startswith("resnet/") for k in files)
    # HWIO[h, w, i, o] is OIHW[o, i, h, w]
    kernel = files["resnet/block1/unit01/b/standardized_conv2d/kernel"]
    torch_kernel = small_bit.body.block1.unit01.conv2.weight.detach().numpy()
    assert kernel[2, 0, 5, 7] == torch_kernel[7, 5, 2, 0]


def test_bit_npz_round_trip_gives_identical_outputs(small_bit, small_bit_npz):
    loaded = load_bit_npz(small_bit_npz, units=None, base_width=None)
    assert loaded.units == (1, 1, 1, 1) and loaded.base_width == 32 and loaded.num_classes == 10
    assert not loaded.training
    x = torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(loaded(x), small_bit(x))
    explicit = load_bit_npz(small_bit_npz, units=(1, 1, 1, 1), base_width=32)
    for (k, a), (_, b) in zip(explicit.state_dict().items(), small_bit.state_dict().items()):
        assert torch.equal(a, b), k


def test_bit_npz_accepts_gamma_stored_as_1x1x1xC(small_bit, small_bit_npz, tmp_path):
    with np.load(small_bit_npz) as archive:
        files = dict(archive.items())
    files["resnet/group_norm/gamma"] = files["resnet/group_norm/gamma"].reshape(1, 1, 1, -1)
    np.savez(tmp_path / "shaped.npz", **files)
    loaded = load_bit_npz(tmp_path / "shaped.npz", units=None, base_width=None)
    assert torch.equal(loaded.head.gn.weight, small_bit.head.gn.weight)


def test_bit_npz_mismatch_names_missing_and_unexpected_keys(small_bit_npz, tmp_path):
    with np.load(small_bit_npz) as archive:
        files = dict(archive.items())
    del files["resnet/block3/unit01/b/group_norm/gamma"]
    files["resnet/block3/unit01/b/group_norm/scale"] = np.ones(128, dtype=np.float32)
    np.savez(tmp_path / "bad.npz", **files)
    with pytest.raises(WeightsMismatchError) as info:
        load_bit_npz(tmp_path / "bad.npz", units=None, base_width=None)
    message = str(info.value)
    assert "bad.npz does not match BiT ResNet-v2 (units [1, 1, 1, 1], width 32)" in message
    assert "1 missing keys: resnet/block3/unit01/b/group_norm/gamma" in message
    assert "1 unexpected keys: resnet/block3/unit01/b/group_norm/scale" in message


def test_bit_npz_refuses_object_arrays_and_junk(tmp_path):
    np.savez(tmp_path / "obj.npz", **{"resnet/x": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(WeightsMismatchError, match="obj.npz is not a BiT weights file"):
        load_bit_npz(tmp_path / "obj.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK junk")
    with pytest.raises(WeightsMismatchError, match="npz"):
        load_bit_npz(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError, match="BiT weights file not found"):
        load_bit_npz(tmp_path / "absent.npz")


def test_bit_npz_without_units_is_refused_when_inferring(tmp_path):
    np.savez(tmp_path / "empty.npz", other=np.zeros(3, dtype=np.float32))
    with pytest.raises(WeightsMismatchError, match="does not hold the units of all four stages"):
        load_bit_npz(tmp_path / "empty.npz", units=None)


# -- HookedExtractor ------------------------------------------------------------


class _TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.proj = nn.Conv2d(8, 8, 1)  # a 1x1 conv that is not the head
        self.fc = nn.Linear(8, 5)

    def features(self, x):
        return F.relu(self.proj(F.relu(self.conv(x)))).mean(dim=(2, 3))

    def forward(self, x):
        return self.fc(self.features(x))


class _ConvHeadNet(nn.Module):
    def __init__(self, pool=True):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3)
        self.classifier = nn.Conv2d(6, 4, 1)
        self.pool = pool

    def features(self, x):
        return F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1)

    def forward(self, x):
        h = self.features(x) if self.pool else F.relu(self.conv(x))
        return self.classifier(h).flatten(1)


def test_hooked_linear_head_features_and_logits():
    torch.manual_seed(4)
    net = _TinyNet().eval()
    extractor = HookedExtractor(net)
    assert extractor.head_name == "fc" and extractor.head is net.fc
    assert (extractor.n_features, extractor.n_classes) == (8, 5)
    x = torch.randn(6, 3, 7, 7)
    features, logits = extractor(x)
    with torch.no_grad():
        np.testing.assert_allclose(features.numpy(), net.features(x).numpy(), rtol=1e-6)
        np.testing.assert_allclose(logits.numpy(), net(x).numpy(), rtol=1e-6)
    W, b = extractor.head_weight(), extractor.head_bias()
    np.testing.assert_array_equal(W, net.fc.weight.detach().numpy().T)
    np.testing.assert_allclose(features.numpy() @ W + b, logits.numpy(), rtol=1e-5, atol=1e-6)
    head = extractor.to_head()
    assert head.weight.shape == (8, 5)
    assert not net.fc._forward_hooks  # the hook lives only during a call


def test_hooked_conv_head_flattens_pooled_input():
    torch.manual_seed(5)
    net = _ConvHeadNet().eval()
    extractor = HookedExtractor(net)
    assert extractor.head_name == "classifier"
    x = torch.randn(3, 3, 6, 6)
    features, logits = extractor(x)
    assert features.shape == (3, 6) and logits.shape == (3, 4)
    W = extractor.head_weight()
    assert W.shape == (6, 4)
    np.testing.assert_allclose(
        features.numpy() @ W + extractor.head_bias(), logits.numpy(), rtol=1e-5, atol=1e-6
    )


def test_hooked_conv_head_on_feature_map_is_refused():
    extractor = HookedExtractor(_ConvHeadNet(pool=False).eval())
    with pytest.raises(RuntimeError, match="received a 4x4 feature map"):
        extractor(torch.randn(1, 3, 6, 6))


def test_hooked_head_by_name_or_module():
    net = _TinyNet().eval()
    assert HookedExtractor(net, head="proj").head is net.proj
    assert HookedExtractor(net, head=net.proj).head_name == "proj"
    with pytest.raises(ValueError, match="has no submodule 'classifier'.*fc"):
        HookedExtractor(net, head="classifier")
    with pytest.raises(ValueError, match="is not a submodule of _TinyNet"):
        HookedExtractor(net, head=nn.Linear(8, 5))
    with pytest.raises(ValueError, match="'conv' is a Conv2d; it must be an nn.Linear or a 1x1"):
        HookedExtractor(net, head="conv")
    with pytest.raises(TypeError, match="head must be an nn.Module"):
        HookedExtractor(net, head=3)


def test_find_head_prefers_the_last_linear():
    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3), nn.Conv2d(3, 3, 1))
    assert find_head(net) == ("1", net[1])
    with pytest.raises(ValueError, match="has no nn.Linear or 1x1 nn.Conv2d"):
        find_head(nn.Sequential(nn.Conv2d(3, 3, 3), nn.ReLU()))


def test_hooked_refuses_a_head_called_twice():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            return self.fc(self.fc(x))

    with pytest.raises(RuntimeError, match="ran 2 times in one forward pass"):
        HookedExtractor(Twice())(torch.randn(2, 3))


def test_hooked_head_without_bias_gives_zero_bias():
    net = nn.Sequential(nn.Linear(4, 3, bias=False))
    assert HookedExtractor(net).head_bias().tolist() == [0.0, 0.0, 0.0]


def test_hooked_on_reduced_bit(small_bit):
    extractor = HookedExtractor(small_bit)
    assert extractor.head_name == "head.conv"
    x = torch.randn(2, 3, 64, 64)
    features, logits = extractor(x)
    with torch.inference_mode():
        np.testing.assert_allclose(
            features.numpy(), small_bit.forward_features(x).numpy(), rtol=1e-5, atol=1e-6
        )
        assert torch.equal(logits, small_bit(x))
    W, b = extractor.head_weight(), extractor.head_bias()
    assert W.shape == (1024, 10)
    np.testing.assert_allclose(features.numpy() @ W + b, logits.numpy(), rtol=1e-4, atol=1e-5)


def test_hooked_on_densenet_preset():
    spec = load_preset("densenet-bc-100", random_init=True)
    extractor = HookedExtractor(spec.module)
    assert extractor.head is spec.head and extractor.head_name == spec.head_name
    x = torch.randn(2, 3, 32, 32)
    features, logits = extractor(x)
    assert features.shape == (2, 342) and logits.shape == (2, 10)
    with torch.inference_mode():
        assert torch.equal(logits, spec.module(x))


def test_a_text_file_as_densenet_weights_is_one_clear_error(tmp_path):
    from skdice.extract.models import load_preset
    from skdice.extract.models._weights import WeightsMismatchError

    path = tmp_path / "weights.pth"
    path.write_text("hello, not a checkpoint\n")
    with pytest.raises(WeightsMismatchError, match=r"weights.pth is not a readable torch checkpoint"):
        load_preset("densenet-bc-100", path)


def test_a_zip_of_other_files_as_bit_weights_is_one_clear_error(tmp_path):
    import zipfile

    from skdice.extract.models import load_preset
    from skdice.extract.models._weights import WeightsMismatchError

    path = tmp_path / "weights.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not an array")
    with pytest.raises(WeightsMismatchError, match=r"is not a BiT .npz of numeric arrays \(member 'readme.txt'"):
        load_preset("bit-s-r101", path)
