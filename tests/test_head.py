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
