"""The shared input checks (skdice._validation) and the chunking helpers every layer uses."""

from __future__ import annotations

import numpy as np
import pytest
from tolerances import score_atol
from sklearn import config_context

from skdice import Head
from skdice._numeric import logit_blocks, max_softmax_rows, row_chunks, score_in_chunks
from skdice._validation import (
    check_grid,
    check_head,
    check_id_mask,
    check_sparsity,
    check_train_mean,
    is_dask,
    raise_non_finite,
    resolve_head,
)


# ------------------------------------------------------------- sparsity
@pytest.mark.parametrize("p", [0, 0.0, 0.5, np.float32(0.9), 0.999])
def test_check_sparsity_accepts_fractions_in_zero_one(p):
    assert check_sparsity(p) == pytest.approx(float(p))


@pytest.mark.parametrize(
    "p, match",
    [
        (1, r"p must be in \[0, 1\), got 1\."),
        (-0.1, r"got -0\.1\."),
        (90, r"\(p is a fraction: 0\.9 for 90%\)"),
        (True, r"got True\."),
        ("0.5", r"got '0\.5'\."),
        (None, r"got None\."),
    ],
)
def test_check_sparsity_refuses_with_one_message(p, match):
    with pytest.raises(ValueError, match=match):
        check_sparsity(p)


def test_check_sparsity_passes_none_through_when_allowed():
    assert check_sparsity(None, allow_none=True) is None


def test_check_grid_refuses_empty_out_of_range_and_repeated_values():
    np.testing.assert_array_equal(check_grid([0.1, 0.9]), [0.1, 0.9])
    with pytest.raises(ValueError, match="grid is empty"):
        check_grid([])
    with pytest.raises(ValueError, match=r"every p must be in \[0, 1\), got 1\.5"):
        check_grid([0.1, 1.5])
    with pytest.raises(ValueError, match="repeated values"):
        check_grid([0.1, 0.1])
    with pytest.raises(ValueError, match="must be a sequence of numbers"):
        check_grid(["a"])


# ------------------------------------------------------ means and masks
def test_check_train_mean_flattens_a_row_and_refuses_wrong_shapes_and_nan():
    assert check_train_mean(np.ones((1, 3)), 3).shape == (3,)
    with pytest.raises(ValueError, match=r"train_mean must have shape \(4,\), got \(3,\)"):
        check_train_mean(np.ones(3), 4)
    with pytest.raises(ValueError, match="train_mean must be numeric"):
        check_train_mean(np.array(["a", "b"]), 2)
    with pytest.raises(ValueError, match="train_mean contains NaN or infinity"):
        check_train_mean([0.0, np.inf], 2)


def test_check_id_mask_keeps_nonzero_rows_and_refuses_strings_nan_and_no_id():
    np.testing.assert_array_equal(check_id_mask([1, 0, 2], 3, "X"), [True, False, True])
    with pytest.raises(ValueError, match="non-numeric values such as 'id'"):
        check_id_mask(np.array(["id", "ood"]), 2, "DICEDetector")
    with pytest.raises(ValueError, match=r"contains NaN \(first at row 1\)"):
        check_id_mask([1.0, np.nan], 2, "DICEDetector")
    with pytest.raises(ValueError, match="every row of X is marked y == 0"):
        check_id_mask([0, 0], 2, "DICEDetector")
    assert not check_id_mask([0, 0], 2, "DICEDetector", require_id=False).any()
    with pytest.raises(ValueError, match=r"one entry per row of X \(3\)"):
        check_id_mask([1, 0], 3, "DICEDetector")


# --------------------------------------------------------------- heads
def test_check_head_explains_a_transposed_torch_weight_and_a_sliced_bias():
    W = np.ones((5, 3))
    assert check_head((W, None), 5).n_features == 5
    with pytest.raises(ValueError, match="PyTorch's fc.weight layout"):
        check_head((W.T, None), 5)
    with pytest.raises(ValueError, match="b has 7 entries but W of shape"):
        check_head((W, np.zeros(7)), 5)


def test_resolve_head_takes_w_and_b_or_a_head_but_not_both():
    head = Head(np.ones((4, 2)))
    assert resolve_head(head, None, None, "f") is head
    assert resolve_head(None, None, head, "f") is head
    assert resolve_head(np.ones((4, 2)), None, None, "f").n_classes == 2
    with pytest.raises(TypeError, match="f: pass either head=Head"):
        resolve_head(np.ones((4, 2)), None, head, "f")
    with pytest.raises(ValueError, match="f needs the classifier head"):
        resolve_head(None, None, None, "f")


def test_raise_non_finite_blames_the_input_or_the_overflow():
    block = np.array([[1.0, 2.0], [np.nan, 0.0]], dtype=np.float32)
    with pytest.raises(ValueError, match=r"Input X contains NaN or infinity \(first at row 11\)"):
        raise_non_finite(block, np.array([0.0, np.nan]), 10)
    with pytest.raises(ValueError, match=r"score of row 10 is not finite: its features overflow"):
        raise_non_finite(block, np.array([np.inf, 0.0]), 10)


def test_is_dask_tells_dask_collections_without_importing_dask():
    assert not is_dask(np.ones(3))
    da = pytest.importorskip("dask.array")
    assert is_dask(da.ones(3))


# ------------------------------------------------------------ chunking
def test_row_chunks_cover_every_row_once_within_the_working_memory_budget():
    with config_context(working_memory=100 * 8 / 2**20):  # 100 rows of 8 bytes
        slices = list(row_chunks(1234, 8))
    assert [s.stop - s.start for s in slices[:-1]] == [100] * 12 and slices[-1] == slice(1200, 1234)
    assert list(row_chunks(0, 8)) == []


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_logit_blocks_equal_the_whole_product_in_the_inputs_precision(dtype):
    rng = np.random.default_rng(0)
    X, W, b = rng.normal(size=(257, 6)).astype(dtype), rng.normal(size=(6, 3)), rng.normal(size=3)
    with config_context(working_memory=10 * 8 * 9 / 2**20):
        blocks = list(logit_blocks(X, W, b))
    assert len(blocks) > 1
    out = np.concatenate([Z for _, Z in blocks])
    # float64 stays float64 (scikit-learn's preserves_dtype), the rest runs in float32
    assert out.dtype == (np.float64 if dtype == np.float64 else np.float32)
    W_used = W.astype(out.dtype).astype(np.float64)
    reference = X.astype(np.float64) @ W_used + b.astype(out.dtype)
    np.testing.assert_allclose(out, reference, rtol=0, atol=score_atol(out.dtype, X, W, reference))


def test_score_in_chunks_applies_the_function_row_block_by_row_block():
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    with config_context(working_memory=3 * 4 * 6 / 2**20):
        scores = score_in_chunks(X, lambda block: block.sum(axis=1), 2)
    np.testing.assert_array_equal(scores, X.sum(axis=1))
    X[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"first at row 7"):
        score_in_chunks(X, lambda block: block.sum(axis=1), 2)


def test_max_softmax_rows_equals_the_softmax_maximum():
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(50, 7)) * 5
    expected = (np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)).max(axis=1)
    np.testing.assert_allclose(max_softmax_rows(Z.copy()), expected, rtol=1e-12)
    expected_t = (np.exp(Z / 2) / np.exp(Z / 2).sum(axis=1, keepdims=True)).max(axis=1)
    np.testing.assert_allclose(max_softmax_rows(Z.copy(), 2.0), expected_t, rtol=1e-12)


def test_a_float64_value_beyond_float32_is_scored_in_float64():
    from skdice import DICEDetector

    rng = np.random.default_rng(0)
    H = rng.random((20, 4))
    W = rng.normal(size=(4, 3))
    det = DICEDetector(p=0.0).fit(H, W)
    X = H.copy()
    X[3, 2] = 1e39  # finite in float64, inf in float32: never rounded to float32
    logits = X @ W.astype(np.float32).astype(np.float64) + det.bias_
    top = logits.max(axis=1)
    reference = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
    np.testing.assert_allclose(det.score_samples(X), reference, rtol=1e-12)
    X[3] = np.finfo(np.float64).max  # the product overflows float64 itself
    assert (np.abs(W) > 1).any()
    with pytest.raises(ValueError, match=r"score of row 3 is not finite: its features overflow float64"):
        det.score_samples(X)
    X[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"Input X contains NaN or infinity \(first at row 3\)"):
        det.score_samples(X)


# ------------------------------------------------ torch tensors as they come
def test_as_numpy_detaches_moves_and_widens_16_bit_floats():
    torch = pytest.importorskip("torch")
    from skdice._tensors import as_numpy

    for dtype in (torch.bfloat16, torch.float16):
        out = as_numpy(torch.ones(2, 3, dtype=dtype, requires_grad=True))
        assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert as_numpy(torch.ones(2, dtype=torch.float64)).dtype == np.float64
    marker = [1, 2]
    assert as_numpy(marker) is marker  # anything else passes through


def test_detectors_take_bfloat16_and_grad_tensors_as_they_come():
    torch = pytest.importorskip("torch")
    from skdice import DICEDetector, Head

    torch.manual_seed(0)
    fc = torch.nn.Linear(8, 3)
    H = torch.relu(torch.randn(60, 8, requires_grad=True) @ torch.eye(8))  # has a grad_fn
    H_bf16 = H.to(torch.bfloat16)
    as_array = H_bf16.detach().float().numpy()
    det = DICEDetector(p=0.5).fit(H_bf16, head=Head.from_torch(fc))
    reference = DICEDetector(p=0.5).fit(as_array, head=Head.from_torch(fc))
    np.testing.assert_array_equal(det.mask_, reference.mask_)
    np.testing.assert_allclose(det.score_samples(H_bf16), reference.score_samples(as_array), rtol=1e-6)
    np.testing.assert_array_equal(det.predict(H), reference.predict(H.detach().numpy()))
    streamed = DICEDetector(p=0.5).partial_fit(H_bf16, head=Head.from_torch(fc))
    np.testing.assert_array_equal(streamed.mask_, reference.mask_)
    from_mean = DICEDetector(p=0.5).fit(head=Head.from_torch(fc), train_mean=torch.tensor(as_array.mean(0)))
    np.testing.assert_array_equal(from_mean.mask_, reference.mask_)


def test_a_bare_square_torch_weight_is_refused_with_the_spellings_that_state_it():
    torch = pytest.importorskip("torch")
    from skdice import DICEDetector
    from skdice.tuning import SparsitySearch

    fc = torch.nn.Linear(4, 4)
    H = np.abs(np.random.default_rng(0).normal(size=(30, 4)))
    match = (r"W is a square torch tensor \(4, 4\): its shape cannot tell .* skdice does not guess\. "
             r"State it: head=Head.from_torch\(fc\)")
    with pytest.raises(ValueError, match=match):
        DICEDetector().fit(H, fc.weight, fc.bias)
    with pytest.raises(ValueError, match=match):
        SparsitySearch().fit(H, fc.weight, fc.bias, X_id=H, X_noise=H)
    DICEDetector().fit(H, fc.weight.detach().numpy(), fc.bias.detach().numpy())  # numpy: as documented, (m, C)


def test_missing_head_error_names_the_detector_and_both_spellings():
    from skdice._validation import missing_head_error

    error = missing_head_error("ReActDetector")
    assert isinstance(error, ValueError)
    assert str(error) == (
        "ReActDetector.fit needs the classifier head: pass W (n_features, n_classes) and b, "
        "or head=Head(W, b)."
    )
