"""Any torch classifier by import string: ``skdice extract --model path/to/file.py:factory``.

The model is a torchvision-style ResNet written here (torchvision does not
import beside this torch build): the features the CLI stores must equal a
direct forward pass of the same network on the same preprocessing, computed
independently below.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zarr")
from typer.testing import CliRunner  # noqa: E402

from skdice.cli.app import app, main  # noqa: E402
from skdice.store import open_store  # noqa: E402

runner = CliRunner()


def run_main(args):
    """``main`` with its error mapping: (exit code, stderr)."""
    with CliRunner().isolation() as (_, err, _):
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code
        return code, err.getvalue().decode()

RESNET = textwrap.dedent(
    '''
    import torch
    from torch import nn


    class BasicBlock(nn.Module):
        expansion = 1

        def __init__(self, inplanes, planes, stride=1):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or inplanes != planes:
                self.downsample = nn.Sequential(
                    nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
                )

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + identity)


    class ResNet(nn.Module):
        """torchvision's ResNet layout: conv1, bn1, relu, maxpool, layer1-4, avgpool, fc."""

        def __init__(self, layers=(1, 1, 1, 1), widths=(8, 16, 16, 32), num_classes=5):
            super().__init__()
            self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(widths[0])
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            blocks, inplanes = [], widths[0]
            for i, (n, width) in enumerate(zip(layers, widths)):
                stage = []
                for j in range(n):
                    stage.append(BasicBlock(inplanes, width, 2 if (j == 0 and i > 0) else 1))
                    inplanes = width
                blocks.append(nn.Sequential(*stage))
            self.layer1, self.layer2, self.layer3, self.layer4 = blocks
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(inplanes, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))


    def resnet_tiny():
        torch.manual_seed(123)
        return ResNet()


    def broken():
        raise RuntimeError("no GPU here")


    def not_a_model():
        return 42


    def headless():
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    '''
)


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "my_models.py"
    path.write_text(RESNET)
    return path


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(12, 24, 24, 3), dtype=np.uint8)
    path = tmp_path / "images.npz"
    np.savez(path, images=pixels, labels=np.arange(12) % 5)
    return path, pixels


def _reference_model(model_file, weights=None):
    import importlib.util

    spec = importlib.util.spec_from_file_location("reference_models", model_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.ResNet()
    if weights is not None:
        net.load_state_dict(torch.load(weights, weights_only=True))
    return net.eval()


def _penultimate(net, x):
    with torch.no_grad():
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
        return torch.flatten(net.avgpool(x), 1).numpy()


def test_a_file_factory_extracts_what_a_direct_forward_pass_gives(model_file, images, tmp_path):
    data, pixels = images
    # weights saved from another initialisation: the factory's own are replaced by them
    torch.manual_seed(7)
    trained = _reference_model(model_file)
    for module in trained.modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # non-trivial running statistics
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    weights = tmp_path / "w.pt"
    torch.save(trained.state_dict(), weights)
    out = tmp_path / "s.zarr"
    result = runner.invoke(app, [
        "extract", "--model", f"{model_file}:resnet_tiny", "--weights", str(weights),
        "--data", str(data), "--out", str(out), "--split", "test", "--batch-size", "5",
        "--mean", "0.5,0.4,0.3", "--std", "0.25", "--device", "cpu",
    ])
    assert result.exit_code == 0, result.output
    store = open_store(out)
    x = torch.from_numpy(pixels.astype(np.float32) / 255).permute(0, 3, 1, 2)
    x = (x - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / 0.25
    reference = _penultimate(_reference_model(model_file, weights), x)
    np.testing.assert_allclose(store.features("test"), reference, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(store.labels("test"), np.arange(12) % 5)
    np.testing.assert_allclose(store.head.weight, trained.fc.weight.detach().numpy().T)
    assert store.model == f"{model_file}:resnet_tiny"
    assert store.attrs["feature_layer"] == "fc:input" and store.attrs["weights_sha256"]
    steps = [step["name"] for step in store.attrs["preprocessing"]["steps"]]
    assert steps == ["ConvertRGB", "ToTensor", "Normalize"]


def test_a_module_factory_with_input_size_resizes_first(model_file, images, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(model_file.parent))
    data, _ = images
    out = tmp_path / "s.zarr"
    result = runner.invoke(app, [
        "extract", "--model", "my_models:resnet_tiny", "--data", str(data), "--out", str(out),
        "--split", "test", "--input-size", "16", "--device", "cpu",
    ])
    assert result.exit_code == 0, result.output
    steps = open_store(out).attrs["preprocessing"]["steps"]
    assert [s["name"] for s in steps] == ["ConvertRGB", "Resize", "ToTensor"]
    # noise needs a fixed input size; with it the model runs on noise too
    result = runner.invoke(app, [
        "extract", "--model", "my_models:resnet_tiny", "--data", "noise:6", "--out", str(out),
        "--split", "noise", "--input-size", "16", "--device", "cpu",
    ])
    assert result.exit_code == 0, result.output
    assert open_store(out).features("noise").shape == (6, 32)


def test_extending_a_store_with_another_preprocessing_is_refused(model_file, images, tmp_path):
    data, _ = images
    out = tmp_path / "s.zarr"
    base = ["extract", "--model", f"{model_file}:resnet_tiny", "--data", str(data), "--out", str(out),
            "--device", "cpu"]
    assert runner.invoke(app, [*base, "--split", "a", "--mean", "0.5", "--std", "0.5"]).exit_code == 0
    code, err = run_main([*base, "--split", "b", "--mean", "0.4", "--std", "0.5"])
    assert code == 1
    assert "that this run" in err and "would not reproduce" in err and "write to another --out" in err
    assert 'what differs: preprocessing ({"name": "Compose"' in err and '"mean": [0.4]' in err
    assert "parameters fingerprint" not in err and "feature layer" not in err  # the same network, read alike
    assert open_store(out).splits == ["a"]


@pytest.mark.parametrize(
    "model, extra, message",
    [
        ("{file}:broken", [], "the factory raised RuntimeError: no GPU here"),
        ("{file}:not_a_model", [], "the factory returned a int, not a torch nn.Module"),
        ("{file}:headless", [], "has no nn.Linear or 1x1 nn.Conv2d to use as the head; pass --head NAME"),
        ("{file}:missing", [], "has no attribute 'missing'"),
        ("{dir}/nope.py:f", [], "the file {dir}/nope.py does not exist"),
        ("no_such_module_xyz:f", [], "cannot import the module 'no_such_module_xyz'"),
        ("{file}:resnet_tiny", ["--head", "layer9"], "has no submodule 'layer9'"),
        ("{file}:resnet_tiny", ["--head", "avgpool"], "is a AdaptiveAvgPool2d; it must be an nn.Linear"),
        ("{file}:resnet_tiny", ["--input-size", "big"], "--input-size must be one size or HxW"),
        ("{file}:resnet_tiny", ["--mean", "0.5"], "give --mean and --std together"),
        ("{file}:resnet_tiny", ["--mean", "0.5", "--std", "0,1,1"], "--std must be positive"),
        ("{file}:resnet_tiny", ["--weights", "{dir}/text.pt"], "is not a torch state dict file"),
        ("{file}:resnet_tiny", ["--weights", "{dir}/other.pt"], "does not fit the model of"),
        ("densenet-bc-100", ["--input-size", "32"], "--input-size apply to models given by import string"),
        ("densenet-bc-10", [], "Did you mean 'densenet-bc-100'?"),
    ],
)
def test_every_model_error_is_one_line(model, extra, message, model_file, images, tmp_path):
    (tmp_path / "text.pt").write_text("not a torch file")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    data, _ = images
    fill = {"file": model_file, "dir": tmp_path}
    args = ["extract", "--model", model.format(**fill), "--data", str(data), "--out", str(tmp_path / "s.zarr"),
            "--split", "test", "--device", "cpu", *[a.format(**fill) for a in extra]]
    code, err = run_main(args)
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("skdice: error:"), err
    assert message.format(**fill) in lines[0]
    assert not (tmp_path / "s.zarr").exists()
