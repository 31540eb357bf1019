"""Array API dispatch: the detectors on torch tensors, and the operations of skdice/_array_api.py.

With ``sklearn.set_config(array_api_dispatch=True)`` a detector declaring
``array_api_support`` is fitted and scored in its input's namespace; these
tests compare it with the NumPy path for every such detector (torch on the
CPU here, and on CUDA where a GPU is present), check that the precision of
the input is kept on the way (float32 stays float32, float64 stays float64),
and check the operations the standard lacks against NumPy and SciPy.
scikit-learn's own Array API checks run in tests/test_registry_sklearn.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import sklearn
from scipy.special import logsumexp
from sklearn.utils import get_tags

from skdice import available_detectors, detector_tags
from skdice._array_api import (
    active_units,
    array_space,
    logsumexp_rows,
    max_softmax_rows,
    to_namespace,
    to_numpy,
    top_k_mask,
    weight_as,
)
from skdice.detectors._common import _top_k_mask

torch = pytest.importorskip("torch", reason="the Array API tests run on torch tensors")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

#: parameters that make two fits comparable (seeded random masks)
_PARAMS = {
    "weight-dropout": {"random_state": 0},
    "unit-dropout": {"random_state": 0},
    "dice-random-k": {"random_state": 0},
    "gen": {"M": 4},  # below the 10 classes: the top-M selection runs
}


def _supported():
    return sorted(
        name for name, cls in available_detectors().items()
        if get_tags(cls(**_PARAMS.get(name, {}))).array_api_support
    )


def _problem(seed=0, n=400, m=48, C=10):
    rng = np.random.default_rng(seed)
    # continuous positive features: no ties within a row (top-k masks agree)
    H = np.abs(rng.normal(size=(n, m))) + rng.random((n, 1))
    W = rng.normal(size=(m, C)) / np.sqrt(m)
    b = rng.normal(size=C)
    y = rng.integers(0, 4, size=n)
    return H, W.astype(np.float32), b.astype(np.float32), y


def _fit_args(name, X, W, b, y):
    tags = detector_tags(available_detectors()[name](**_PARAMS.get(name, {})))
    kwargs = {"y": y} if tags.requires_class_labels else {}
    return ((X, W, b) if tags.requires_head else (X,)), kwargs


def _tensor(a, device):
    return torch.asarray(np.ascontiguousarray(a), device=device)


def test_every_existing_detector_but_knn_declares_support():
    expected = {
        "ash-b", "ash-p", "ash-s", "dice", "dice-bottom-k", "dice-msp", "dice-random-k",
        "dice-react", "dice-top-bottom-k", "energy", "gen", "mahalanobis", "maxlogit", "msp",
        "odin", "react", "scale", "unit-dropout", "unit-pruning", "vim", "weight-dropout",
        "weight-pruning",
    }
    assert expected <= set(_supported())
    assert not get_tags(available_detectors()["knn"]()).array_api_support


def test_the_methods_after_dice_that_score_in_any_namespace():
    # the three banks search on the host; KLM's zero-template rule, OptFS's bins and
    # LINe's per-class heads keep NumPy kernels (docs/api.md)
    unsupported = set(available_detectors()) - set(_supported())
    assert unsupported == {"klm", "knn", "line", "nnguide", "optfs", "relation"}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", _supported())
def test_torch_scores_equal_numpy_scores(name, dtype, device):
    H, W, b, y = _problem()
    X = H.astype(dtype)
    cls = available_detectors()[name]
    args, kwargs = _fit_args(name, X, W, b, y)
    ref = cls(**_PARAMS.get(name, {})).fit(*args, **kwargs)
    expected = ref.score_samples(X)
    with sklearn.config_context(array_api_dispatch=True):
        targs = tuple(_tensor(a, device) for a in args)
        tkwargs = {k: _tensor(v, device) for k, v in kwargs.items()}
        det = cls(**_PARAMS.get(name, {})).fit(*targs, **tkwargs)
        Xt = _tensor(X, device)
        scores = det.score_samples(Xt)
        decision = det.decision_function(Xt)
        labels = det.predict(Xt)
        # a detector without a head (Mahalanobis) has no classifier
        classes = det.predict_class(Xt) if hasattr(ref, "weight_") else labels
    for out in (scores, decision, labels, classes):
        assert isinstance(out, torch.Tensor) and out.device.type == device
    assert scores.dtype == torch.float64 and labels.dtype == torch.int64
    rtol = 1e-5 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(to_numpy(scores), expected, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(det.offset_, ref.offset_, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(to_numpy(decision), ref.decision_function(X), rtol=rtol, atol=rtol)
    # a label may flip only for a row whose score sits at the offset within the tolerance
    flipped = to_numpy(labels) != ref.predict(X)
    assert np.all(np.abs(expected[flipped] - ref.offset_) <= rtol * (1 + abs(ref.offset_)))
    if hasattr(ref, "weight_"):
        assert np.mean(to_numpy(classes) == ref.predict_class(X)) > 0.99
    for key, value in vars(ref).items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            fitted = getattr(det, key)
            assert isinstance(fitted, torch.Tensor) and fitted.device.type == device, key
            assert to_numpy(fitted).dtype == value.dtype, key


@pytest.mark.parametrize("name", ["dice", "energy", "react", "ash-s", "mahalanobis", "vim"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_input_precision_is_kept_on_the_way(name, dtype):
    """float32 rows are scored in float32 and float64 rows in float64, never silently the other."""
    H, W, b, y = _problem(n=120)
    X = H.astype(dtype)
    cls = available_detectors()[name]
    args, kwargs = _fit_args(name, X, W, b, y)
    seen = []
    with sklearn.config_context(array_api_dispatch=True):
        det = cls().fit(*(_tensor(a, "cpu") for a in args), **{k: _tensor(v, "cpu") for k, v in kwargs.items()})
        block = det.score_block
        det.score_block = lambda Z: (seen.append(Z.dtype), block(Z))[1]
        det.score_samples(_tensor(X, "cpu"))
    assert seen and set(seen) == {getattr(torch, dtype)}
    ref = cls().fit(*args, **kwargs)
    for key, value in vars(ref).items():
        if isinstance(value, np.ndarray):
            assert to_numpy(getattr(det, key)).dtype == value.dtype, key


def test_dice_logits_are_float32_in_the_input_namespace():
    H, W, b, _ = _problem(n=50)
    with sklearn.config_context(array_api_dispatch=True):
        det = available_detectors()["dice"](p=0.5).fit(_tensor(H, "cpu"), _tensor(W, "cpu"), _tensor(b, "cpu"))
        logits = det.logits(_tensor(H, "cpu"))
        dense = det.predict_class(_tensor(H, "cpu"), masked=False)
    ref = available_detectors()["dice"](p=0.5).fit(H, W, b)
    assert logits.dtype == torch.float32
    np.testing.assert_allclose(to_numpy(logits), ref.logits(H), rtol=1e-5, atol=1e-5)
    assert dense.dtype == torch.int64
    np.testing.assert_array_equal(to_numpy(dense), ref.predict_class(H, masked=False))


def test_chunks_follow_working_memory_on_tensors():
    H, W, b, _ = _problem(n=300)
    sizes = []
    with sklearn.config_context(array_api_dispatch=True):
        det = available_detectors()["dice"]().fit(_tensor(H, "cpu"), _tensor(W, "cpu"), _tensor(b, "cpu"))
        block = det.score_block
        det.score_block = lambda Z: (sizes.append(Z.shape[0]), block(Z))[1]
        with sklearn.config_context(working_memory=0.01):  # 10 KiB: a few rows per chunk
            det.score_samples(_tensor(H, "cpu"))
    assert len(sizes) > 1 and sum(sizes) == 300 and max(sizes) < 300


def test_another_namespace_than_the_fit_is_refused():
    H, W, b, _ = _problem(n=60)
    with sklearn.config_context(array_api_dispatch=True):
        det = available_detectors()["dice"]().fit(_tensor(H, "cpu"), _tensor(W, "cpu"), _tensor(b, "cpu"))
        with pytest.raises(ValueError, match=r"DICEDetector.predict\(\) must use the same namespace.*fitted in array_api_compat.torch on cpu, given NumPy"):
            det.predict(H)
        ref = available_detectors()["dice"]().fit(H, W, b)
        with pytest.raises(ValueError, match=r"score_samples\(\) must use the same namespace.*fitted in NumPy"):
            ref.score_samples(_tensor(H, "cpu"))


def test_non_finite_rows_are_reported_by_row_on_tensors():
    H, W, b, _ = _problem(n=60)
    X = H.astype(np.float32)
    X[17, 3] = np.nan
    with sklearn.config_context(array_api_dispatch=True):
        for name in ("dice", "react"):
            det = available_detectors()[name]().fit(_tensor(H[:40], "cpu"), _tensor(W, "cpu"), _tensor(b, "cpu"))
            with pytest.raises(ValueError, match=r"Input X contains NaN or infinity \(first at row 17\)"):
                det.score_samples(_tensor(X, "cpu"))


def test_detectors_without_support_keep_the_numpy_path():
    H, W, b, _ = _problem(n=80)
    with sklearn.config_context(array_api_dispatch=True):
        det = available_detectors()["knn"](n_neighbors=3, backend="sklearn").fit(_tensor(H, "cpu"), _tensor(W, "cpu"), _tensor(b, "cpu"))
        scores = det.score_samples(_tensor(H, "cpu"))
    assert isinstance(scores, np.ndarray)


def test_array_space_only_for_dispatch_and_other_namespaces():
    t, a = torch.ones((2, 2)), np.ones((2, 2))
    assert array_space(t) is None  # dispatch off
    with sklearn.config_context(array_api_dispatch=True):
        assert array_space(a) is None
        xp, device = array_space(t)
        assert xp.__name__.endswith("torch") and str(device) == "cpu"
        assert array_space(t, available_detectors()["knn"]()) is None


# ------------------------------------------------------------ the operations


@pytest.mark.parametrize("temperature", [1.0, 1000.0])
@pytest.mark.parametrize("n", [1, 5, 130])
def test_logsumexp_rows_matches_scipy(n, temperature):
    Z = np.random.default_rng(n).normal(scale=30, size=(n, 7))
    got = logsumexp_rows(torch.asarray(Z.copy()), temperature)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), temperature * logsumexp(Z / temperature, axis=1), rtol=1e-12)
    top = max_softmax_rows(torch.asarray(Z.copy()), temperature).numpy()
    P = np.exp(Z / temperature - logsumexp(Z / temperature, axis=1, keepdims=True))
    np.testing.assert_allclose(top, P.max(axis=1), rtol=1e-12)


def test_logsumexp_rows_float32_sums_in_float64():
    Z = np.random.default_rng(1).normal(size=(64, 1000)).astype(np.float32)
    got = logsumexp_rows(torch.asarray(Z.copy()))
    np.testing.assert_allclose(got.numpy(), logsumexp(Z.astype(np.float64), axis=1), rtol=1e-6)


@pytest.mark.parametrize("k", [1, 3, 9, 10, 12])
def test_top_k_mask_keeps_exactly_k_entries(k):
    X = np.random.default_rng(k).normal(size=(40, 10))
    mask = top_k_mask(torch.asarray(X), k).numpy()
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask.sum(axis=1), min(k, 10))
    np.testing.assert_array_equal(mask, _top_k_mask(X, k))  # no ties: NumPy's mask


def test_top_k_mask_breaks_ties_towards_the_lower_index():
    X = torch.asarray([[0.0, 2.0, 1.0, 1.0, 1.0]])
    assert top_k_mask(X, 2).tolist() == [[False, True, True, False, False]]


def test_active_units_drops_all_zero_rows_and_is_cached():
    w = np.zeros((10, 3), dtype=np.float32)
    w[[1, 4], :] = 1.0
    W = torch.asarray(w)
    units, packed = active_units(W, 0.8, torch.float64)
    assert units.tolist() == [1, 4] and packed.dtype == torch.float64 and packed.shape == (2, 3)
    assert active_units(W, 0.8, torch.float64)[1] is packed
    dense = torch.ones((10, 3))
    assert active_units(dense, 0.8, torch.float32) == (None, dense)


def test_weight_as_casts_once_and_keeps_a_matching_weight():
    W = torch.ones((4, 2), dtype=torch.float32)
    assert weight_as(W, torch.float32) is W
    cast = weight_as(W, torch.float64)
    assert cast.dtype == torch.float64 and weight_as(W, torch.float64) is cast


def test_to_namespace_copies_and_keeps_dtype():
    for value in (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([True, False]), np.arange(3)):
        moved = to_namespace(value, array_space_xp(), "cpu")
        assert to_numpy(moved).dtype == value.dtype
        np.testing.assert_array_equal(to_numpy(moved), value)
        if value.dtype.kind == "f":
            moved[0, 0] = 99  # a copy, not a view of the NumPy array
            assert value[0, 0] == 0


def array_space_xp():
    with sklearn.config_context(array_api_dispatch=True):
        return array_space(torch.ones(1))[0]


# ------------------------------------------------- the searches and the metrics


@pytest.mark.filterwarnings("ignore::skdice.exceptions.UninformativeValidationWarning")
def test_searches_read_tensors_on_the_host_and_choose_as_on_numpy():
    """The searches' boundary: their input checks read tensors as NumPy; the chosen detector is NumPy."""
    from skdice.tuning import HyperparameterSearch, SparsitySearch

    H, W, b, _ = _problem(n=200)
    rng = np.random.default_rng(3)
    X_id, X_noise = H[:80] + 0.01, np.abs(rng.normal(scale=3, size=(80, H.shape[1])))
    ref = SparsitySearch().fit(H, W, b, X_id=X_id, X_noise=X_noise)
    t = torch.asarray
    with sklearn.config_context(array_api_dispatch=True):
        got = SparsitySearch().fit(t(H), t(W), t(b), X_id=t(X_id), X_noise=t(X_noise))
        other = HyperparameterSearch("react").fit(t(H), t(W), t(b), X_id=t(X_id), X_noise=t(X_noise))
    assert got.best_params_ == ref.best_params_
    assert isinstance(got.best_estimator_.masked_weight_, np.ndarray)
    assert isinstance(other.best_estimator_.weight_, np.ndarray)


def test_metrics_read_scores_of_any_namespace():
    from skdice.metrics import auroc, fpr95_score, fpr_at_tpr

    rng = np.random.default_rng(0)
    s_id, s_ood = rng.normal(1, 1, 300), rng.normal(0, 1, 300)
    device = DEVICES[-1]
    t = lambda a: torch.asarray(a, device=device)  # noqa: E731
    assert auroc(t(s_id), t(s_ood)) == auroc(s_id, s_ood)
    assert fpr_at_tpr(t(s_id), t(s_ood)) == fpr_at_tpr(s_id, s_ood)
    y = np.r_[np.ones(300), np.zeros(300)]
    assert fpr95_score(t(y), t(np.r_[s_id, s_ood])) == fpr95_score(y, np.r_[s_id, s_ood])


def test_mahalanobis_string_labels_stay_numpy_and_scoring_follows_x():
    H, _, _, y = _problem(n=120)
    labels = np.array(["cat", "dog", "eel", "fox"])[y]
    with sklearn.config_context(array_api_dispatch=True):
        det = available_detectors()["mahalanobis"]().fit(_tensor(H, "cpu"), labels)
        scores = det.score_samples(_tensor(H, "cpu"))
    assert isinstance(det.classes_, np.ndarray) and isinstance(det.means_, torch.Tensor)
    ref = available_detectors()["mahalanobis"]().fit(H, labels)
    np.testing.assert_allclose(to_numpy(scores), ref.score_samples(H), rtol=1e-10)


def test_tensors_that_require_grad_and_bfloat16_are_read_as_on_the_numpy_path():
    H, W, b, _ = _problem(n=64)
    ref = available_detectors()["dice"]().fit(H.astype(np.float32), W, b)
    with sklearn.config_context(array_api_dispatch=True):
        det = available_detectors()["dice"]().fit(_tensor(H.astype(np.float32), "cpu"), _tensor(W, "cpu"), _tensor(b, "cpu"))
        grad = det.score_samples(_tensor(H.astype(np.float32), "cpu").requires_grad_(True))
        half = det.score_samples(_tensor(H, "cpu").to(torch.bfloat16))
    assert not grad.requires_grad
    np.testing.assert_allclose(grad.numpy(), ref.score_samples(H.astype(np.float32)), rtol=1e-5)
    widened = torch.asarray(H).to(torch.bfloat16).float().numpy()
    np.testing.assert_allclose(half.numpy(), ref.score_samples(widened), rtol=1e-5)
