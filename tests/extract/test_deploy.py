"""to_torch_head: the fitted DICE head inside a copy of the torch model."""

from __future__ import annotations

import importlib.util
import io
import warnings

import numpy as np
import pytest

pytest.importorskip("torch")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from torch import nn  # noqa: E402

from skdice import DICEDetector  # noqa: E402
from skdice.extract.deploy import ClippedConv2d, ClippedLinear, to_torch_head  # noqa: E402
from skdice.extract.hooked import HookedExtractor  # noqa: E402
from skdice.extract.models.bit import ResNetV2  # noqa: E402


class _Net(nn.Module):
    def __init__(self, n_classes=7):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.classifier = nn.Sequential(nn.Dropout(0.0), nn.Linear(16, n_classes))

    def forward(self, x):
        h = F.relu(self.conv(x)).mean(dim=(2, 3))
        return self.classifier(h)


def _fit(model, x, detector=None, head=None):
    extractor = HookedExtractor(model, head=head)
    features, _ = extractor(x)
    H = features.numpy()
    detector = detector if detector is not None else DICEDetector(p=0.7)
    detector.fit(H, extractor.head_weight(), extractor.head_bias())
    return detector, H


def _scores(model, x):
    with torch.inference_mode():
        return torch.logsumexp(model(x).double(), dim=1).numpy()


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def linear_case():
    torch.manual_seed(0)
    net = _Net().eval()
    x = torch.randn(40, 3, 8, 8)
    before = _snapshot(net)
    detector, H = _fit(net, x)
    return net, x, detector, H, before


def test_deployed_logsumexp_equals_score_samples(linear_case):
    net, x, detector, H, _ = linear_case
    dice_net = to_torch_head(detector, net)
    np.testing.assert_allclose(_scores(dice_net, x), detector.score_samples(H), rtol=1e-5)
    # and the masked logits themselves are the detector's
    with torch.inference_mode():
        np.testing.assert_allclose(dice_net(x).numpy(), detector.logits(H), rtol=1e-5, atol=1e-5)


def test_deployed_head_holds_the_masked_weight(linear_case):
    net, _, detector, _, _ = linear_case
    dice_net = to_torch_head(detector, net)
    weight = dice_net.classifier[1].weight.detach().numpy()
    np.testing.assert_array_equal(weight, detector.masked_weight_.T)
    assert np.array_equal(weight == 0, ~detector.mask_.T | (detector.weight_.T == 0))
    assert not dice_net.training  # mode carried over


def test_original_model_is_untouched(linear_case):
    net, x, detector, _, before = linear_case
    dice_net = to_torch_head(detector, net)
    with torch.no_grad():
        dice_net.classifier[1].weight.add_(1.0)  # the copy shares no storage with the original
    after = net.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    assert dice_net.classifier[1].weight.data_ptr() != net.classifier[1].weight.data_ptr()


def test_deploy_conv_head_of_reduced_bit():
    torch.manual_seed(1)
    model = ResNetV2(units=(1, 1, 1, 1), base_width=32, num_classes=10).eval()
    x = torch.randn(12, 3, 32, 32)
    detector, H = _fit(model, x, DICEDetector(p=0.9))
    dice_model = to_torch_head(detector, model)
    assert dice_model.head.conv.weight.shape == (10, 1024, 1, 1)
    np.testing.assert_allclose(_scores(dice_model, x), detector.score_samples(H), rtol=1e-5)


def test_deploy_head_named_explicitly():
    torch.manual_seed(2)
    net = _Net().eval()
    x = torch.randn(20, 3, 6, 6)
    detector, H = _fit(net, x, head="classifier.1")
    dice_net = to_torch_head(detector, net, head="classifier.1")
    np.testing.assert_allclose(_scores(dice_net, x), detector.score_samples(H), rtol=1e-5)


def test_deploy_dice_react_clips_before_the_head():
    DICEReActDetector = pytest.importorskip("skdice.detectors.react").DICEReActDetector

    torch.manual_seed(3)
    net = _Net().eval()
    x = torch.randn(30, 3, 6, 6)
    detector, H = _fit(net, x, DICEReActDetector(p=0.5, percentile=80))
    dice_net = to_torch_head(detector, net)
    head = dice_net.classifier[1]
    assert isinstance(head, ClippedLinear) and head.clip == pytest.approx(detector.threshold_)
    assert set(dice_net.state_dict()) == set(net.state_dict())
    np.testing.assert_allclose(_scores(dice_net, x), detector.score_samples(H), rtol=1e-5)
    assert type(net.classifier[1]) is nn.Linear


def test_deploy_dice_react_on_conv_head():
    DICEReActDetector = pytest.importorskip("skdice.detectors.react").DICEReActDetector

    torch.manual_seed(4)
    model = ResNetV2(units=(1, 1, 1, 1), base_width=32, num_classes=5).eval()
    x = torch.randn(10, 3, 32, 32)
    detector, H = _fit(model, x, DICEReActDetector(p=0.5, percentile=70))
    dice_model = to_torch_head(detector, model)
    assert isinstance(dice_model.head.conv, ClippedConv2d)
    np.testing.assert_allclose(_scores(dice_model, x), detector.score_samples(H), rtol=1e-5)


def test_deploy_refuses_a_detector_fitted_on_another_head(linear_case):
    _, x, detector, _, _ = linear_case
    torch.manual_seed(5)
    other = _Net().eval()
    with pytest.raises(ValueError, match="fitted on a different head: its weight differs"):
        to_torch_head(detector, other)
    dice_other = to_torch_head(detector, other, check_head=False)
    np.testing.assert_array_equal(
        dice_other.classifier[1].weight.detach().numpy(), detector.masked_weight_.T
    )


def test_deploy_refuses_a_head_of_another_shape(linear_case):
    _, _, detector, _, _ = linear_case
    with pytest.raises(ValueError, match=r"detector's head is \(16, 7\).*maps 16 features to 3"):
        to_torch_head(detector, _Net(n_classes=3))


def test_deploy_refuses_unfitted_and_non_masked_detectors():
    from skdice.detectors.baselines import EnergyDetector

    net = _Net().eval()
    with pytest.raises(NotFittedError):
        to_torch_head(DICEDetector(), net)
    extractor = HookedExtractor(net)
    features, _ = extractor(torch.randn(5, 3, 4, 4))
    energy = EnergyDetector().fit(features.numpy(), extractor.head_weight(), extractor.head_bias())
    with pytest.raises(TypeError, match="EnergyDetector has none"):
        to_torch_head(energy, net)
    with pytest.raises(TypeError, match="needs a fitted skdice detector, got dict"):
        to_torch_head({}, net)


def test_deploy_head_without_bias():
    torch.manual_seed(6)
    net = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 4, bias=False)).eval()
    x = torch.randn(25, 5)
    detector, H = _fit(net, x)
    dice_net = to_torch_head(detector, net)
    assert dice_net[2].bias is None
    np.testing.assert_allclose(_scores(dice_net, x), detector.score_samples(H), rtol=1e-5)


def _export_onnx(model, example):
    """Export with the dynamo exporter when onnxscript is there, else the TorchScript one."""
    buffer = io.BytesIO()
    if importlib.util.find_spec("onnxscript") is not None:
        program = torch.onnx.export(model, (example,), dynamo=True)
        return program.model_proto
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), buffer, dynamo=False,
                              input_names=["x"], output_names=["logits"])
    except (ModuleNotFoundError, ImportError) as exc:
        pytest.skip(f"torch.onnx.export needs onnxscript here, which is not installed ({exc})")
    import onnx

    return onnx.load_from_string(buffer.getvalue())


def test_deployed_model_exports_to_onnx(linear_case):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    net, x, detector, H, _ = linear_case
    dice_net = to_torch_head(detector, net)
    proto = _export_onnx(dice_net, x[:4])
    onnx.checker.check_model(proto)
    (logits,) = ReferenceEvaluator(proto).run(None, {proto.graph.input[0].name: x[:4].numpy()})
    scores = np.log(np.exp(logits.astype(np.float64)).sum(axis=1))
    np.testing.assert_allclose(scores, detector.score_samples(H[:4]), rtol=1e-5)
