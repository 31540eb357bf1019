"""Head: orientation, validation and immunity to GridSearchCV slicing."""

import numpy as np
import pytest
from sklearn.utils.validation import _is_arraylike

from skdice import Head


def test_from_torch_transposes_and_accepts_1x1_conv():
    W_cm = np.arange(12, dtype=np.float32).reshape(3, 4)
    head = Head.from_torch(W_cm, [1, 2, 3])
    np.testing.assert_array_equal(head.weight, W_cm.T)
    conv = Head.from_torch(W_cm[:, :, None, None])
    np.testing.assert_array_equal(conv.weight, W_cm.T)
    np.testing.assert_array_equal(conv.bias, np.zeros(3))
    assert (head.n_features, head.n_classes) == (4, 3)


def test_logits_are_the_affine_map():
    rng = np.random.default_rng(0)
    W, b, H = rng.normal(size=(5, 2)), rng.normal(size=2), rng.normal(size=(7, 5))
    np.testing.assert_allclose(Head(W, b).logits(H), H @ W + b, rtol=1e-5)
    with pytest.raises(ValueError, match=r"H must have shape \(n_samples, 5\)"):
        Head(W, b).logits(H.T)
    H[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"H contains NaN or infinity \(first at row 3\)"):
        Head(W, b).logits(H)


def test_head_is_not_array_like_so_gridsearch_never_slices_it():
    assert not _is_arraylike(Head(np.ones((3, 2))))


def test_weights_are_read_only_copies():
    W = np.ones((3, 2), dtype=np.float32)
    head = Head(W)
    W[0, 0] = 5
    assert head.weight[0, 0] == 1
    with pytest.raises(ValueError, match="read-only"):
        head.weight[0, 0] = 2


@pytest.mark.parametrize(
    "W, b, match",
    [
        (np.ones(3), None, "W must be 2-dimensional"),
        (np.ones((0, 2)), None, "W is empty"),
        (np.ones((3, 2)), np.ones(3), "b has 3 entries but W of shape"),
        (np.ones((3, 2)), np.ones((2, 1)), "b must be 1-dimensional"),
        (np.full((3, 2), np.nan), None, "W contains NaN or infinity"),
        (np.array([["a", "b"]]), None, "W must be numeric"),
        ([[1.0, 2.0], [3.0]], None, "W could not be converted to an array"),
    ],
)
def test_bad_heads(W, b, match):
    with pytest.raises(ValueError, match=match):
        Head(W, b)


def test_from_torch_rejects_other_shapes():
    with pytest.raises(ValueError, match=r"must be \(n_classes, n_features\)"):
        Head.from_torch(np.ones((2, 3, 3, 3)))


# ------------------------------------------------ torch tensors as they come
def test_from_torch_takes_the_nn_linear_itself():
    torch = pytest.importorskip("torch")
    fc = torch.nn.Linear(4, 3)
    head = Head.from_torch(fc)
    np.testing.assert_array_equal(head.weight, fc.weight.detach().numpy().T)
    np.testing.assert_array_equal(head.bias, fc.bias.detach().numpy())
    no_bias = Head.from_torch(torch.nn.Linear(4, 3, bias=False))
    np.testing.assert_array_equal(no_bias.bias, np.zeros(3))
    with pytest.raises(TypeError, match=r"got the layer Linear and a bias: pass Head.from_torch\(fc\)"):
        Head.from_torch(fc, fc.bias)


def test_bfloat16_and_grad_tensors_are_read_as_float32():
    torch = pytest.importorskip("torch")
    fc = torch.nn.Linear(4, 3).to(torch.bfloat16)  # parameters require grad
    head = Head.from_torch(fc.weight, fc.bias)
    assert head.weight.dtype == np.float32
    np.testing.assert_array_equal(head.weight, fc.weight.detach().float().numpy().T)
    H = torch.ones(2, 4, dtype=torch.bfloat16, requires_grad=True)
    np.testing.assert_allclose(head.logits(H), np.ones((2, 4)) @ head.weight + head.bias, rtol=1e-6)


def test_layout_states_the_orientation():
    W_cm = np.arange(6, dtype=np.float32).reshape(2, 3)  # torch's (n_classes, n_features)
    np.testing.assert_array_equal(Head(W_cm, [1, 2], layout="torch").weight, Head.from_torch(W_cm, [1, 2]).weight)
    with pytest.raises(ValueError, match=r"layout must be 'paper' \(n_features, n_classes\) or 'torch'"):
        Head(W_cm, layout="columns")


def test_a_square_head_is_read_in_the_layout_stated():
    # n_features == n_classes: the shape cannot tell the orientation, the spelling does
    torch = pytest.importorskip("torch")
    fc = torch.nn.Linear(3, 3)
    stated = Head.from_torch(fc)
    np.testing.assert_array_equal(stated.weight, fc.weight.detach().numpy().T)
    np.testing.assert_array_equal(Head(fc.weight, fc.bias, layout="torch").weight, stated.weight)
    np.testing.assert_array_equal(Head(fc.weight.detach().numpy()).weight, stated.weight.T)  # paper's, as given
