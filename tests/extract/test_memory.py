"""From a torch model and a DataLoader to a fitted detector, without a store (skdice.extract.memory)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from skdice import DICEDetector  # noqa: E402
from skdice.extract.memory import features_in_memory  # noqa: E402


def _net():
    torch.manual_seed(0)
    # the dropout makes train mode visible: the features must come from eval mode
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 4))


def test_features_are_the_heads_input_and_fit_a_detector_like_an_independent_forward():
    net = _net().train()
    X = torch.randn(50, 6)
    loader = DataLoader(TensorDataset(X, torch.arange(50) % 4), batch_size=7)
    got = features_in_memory(net, loader)
    with torch.no_grad():  # the reference: the layers by hand
        H = torch.relu(net[0](X)).numpy()
        Z = net[3](torch.relu(net[0](X))).numpy()
    np.testing.assert_allclose(got.features, H, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got.logits, Z, rtol=1e-6, atol=1e-6)
    assert got.labels.tolist() == (np.arange(50) % 4).tolist()
    np.testing.assert_array_equal(got.head.weight, net[3].weight.detach().numpy().T)
    assert net.training  # left as it was
    det = DICEDetector(p=0.5).fit(got.features, head=got.head)
    np.testing.assert_allclose(det.mean_feature_, H.astype(np.float64).mean(axis=0), rtol=1e-6)


def test_a_loader_of_bare_tensors_gives_unknown_labels():
    loader = DataLoader(torch.randn(9, 6), batch_size=4)
    got = features_in_memory(_net(), loader)
    assert got.features.shape == (9, 16) and got.labels.tolist() == [-1] * 9


def test_bad_loaders_and_models_get_one_clear_error():
    with pytest.raises(ValueError, match="the loader yielded no rows"):
        features_in_memory(_net(), [])
    with pytest.raises(TypeError, match="the loader must yield tensors or .* got str"):
        features_in_memory(_net(), ["x"])
    net = _net()
    with torch.no_grad():
        net[3].bias[0] = float("nan")
    with pytest.raises(ValueError, match="the model gave NaN or infinity"):
        features_in_memory(net, [torch.randn(3, 6)])


@pytest.mark.parametrize(("model", "hint"), [
    ("resnet18", "write a factory that returns it, e.g. def build(): return resnet18(...) in mynet.py, "
                 "and give --model mynet.py:build."),
    ("densenet", "Did you mean 'densenet-bc-100'?"),
])
def test_a_model_zoo_name_suggests_the_factory_spelling_or_the_preset(model, hint):
    from skdice.extract.models import load_model

    with pytest.raises(ValueError) as info:
        load_model(model)
    assert str(info.value).startswith(f"unknown model {model!r}: give a preset")
    assert str(info.value).endswith(hint)
