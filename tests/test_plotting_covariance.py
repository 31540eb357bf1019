"""The covariance figure of unit contributions (the paper's Figure 6).

``contribution_covariance`` is checked against ``numpy.cov`` of the explicit
contributions ``h_i w_ic``, reordered by ``numpy.argsort`` of the ID
contribution; its two variances against ``numpy.var`` of the logits, dense and
masked. The drawing is checked for what it writes; ``plot_store`` for the
figure it adds and the data it draws.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sklearn import config_context

from skdice import DICEDetector, Head
from skdice.plotting import contribution_covariance, plot_contribution_covariance
from skdice.theory import variance_decomposition

from stores import write_store
from strategies import bounded_floats, heads_and_features, kept_masks

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _reference(H, W, c, train_mean, kept):
    w = np.asarray(W, dtype=np.float64)[:, c]
    V = np.asarray(H, dtype=np.float64) * w
    order = np.argsort(np.asarray(train_mean) * w, kind="stable")
    C = np.atleast_2d(np.cov(V, rowvar=False, ddof=1))
    return {
        "order": order,
        "cov": C[np.ix_(order, order)],
        "var_dense": np.var(V.sum(axis=1), ddof=1),
        "var_masked": np.var(V[:, kept].sum(axis=1), ddof=1),
    }


def test_contribution_covariance_example():
    H = np.array([[1.0, 0.0, 2.0], [3.0, 2.0, 2.0], [2.0, 4.0, 5.0]])
    W = np.array([[1.0, 0.0], [-1.0, 0.0], [0.5, 0.0]])
    d = contribution_covariance(H, W, 0, train_mean=[1.0, 1.0, 1.0], kept=np.array([True, False, True]))
    # ID contributions 1, -1, 0.5: unit 1 first, then 2, then 0
    assert d["order"].tolist() == [1, 2, 0]
    assert d["key"].tolist() == [-1.0, 0.5, 1.0]
    # v_0 = (1, 3, 2), v_1 = (0, -2, -4), v_2 = (1, 1, 2.5): by hand, ddof=1
    expected = np.array([[4.0, -1.5, -1.0], [-1.5, 0.75, 0.0], [-1.0, 0.0, 1.0]])
    np.testing.assert_allclose(d["cov"], expected, rtol=1e-12)
    assert d["kept"].tolist() == [False, True, True]
    assert d["n_dropped"] == 1
    assert d["var_dense"] == pytest.approx(np.var([2.0, 2.0, 0.5], ddof=1), rel=1e-12)
    assert d["var_masked"] == pytest.approx(np.var([2.0, 4.0, 4.5], ddof=1), rel=1e-12)
    assert (d["n"], d["class_index"]) == (3, 0)


@given(heads_and_features(max_rows=30, max_features=10), st.data())
def test_contribution_covariance_is_numpy_cov_of_contributions_in_id_order(case, data):
    H, W, _ = case
    assume(H.shape[0] >= 2)
    m = H.shape[1]
    c = data.draw(st.integers(0, W.shape[1] - 1))
    train_mean = data.draw(hnp.arrays(np.float64, (m,), elements=bounded_floats(0, 5)))
    kept = data.draw(kept_masks(m))
    d = contribution_covariance(H, W, c, train_mean=train_mean, kept=kept)
    ref = _reference(H, W, c, train_mean, kept)
    np.testing.assert_array_equal(d["order"], ref["order"])
    scale = float(np.abs(ref["cov"]).sum()) + 1.0
    np.testing.assert_allclose(d["cov"], ref["cov"], rtol=1e-9, atol=1e-12 * scale)
    assert d["var_dense"] == pytest.approx(ref["var_dense"], rel=1e-9, abs=1e-10 * scale)
    assert d["var_masked"] == pytest.approx(ref["var_masked"], rel=1e-9, abs=1e-10 * scale)
    np.testing.assert_array_equal(d["kept"], kept[ref["order"]])
    in_order = kept[ref["order"]]
    t = int((~kept).sum())
    assert d["n_dropped"] == (t if in_order[t:].all() else None)


def test_dice_kept_units_come_last_and_match_the_masked_logit_variance():
    rng = np.random.default_rng(6)
    m, C = 30, 4
    W = rng.normal(size=(m, C))
    H_train = np.maximum(rng.normal(0.5, 1.0, (200, m)), 0)
    X = np.abs(rng.normal(0.0, 1.5, (150, m)))
    det = DICEDetector(p=0.8).fit(H_train, W, np.zeros(C))
    c = 2
    d = contribution_covariance(X, W, c, train_mean=det.mean_feature_, kept=det.mask_[:, c])
    t = int((~det.mask_[:, c]).sum())
    assert d["n_dropped"] == t and d["kept"][t:].all() and not d["kept"][:t].any()
    # the same numbers as the theory module and as DICE's own (float32) logits
    vd = variance_decomposition(X, det.mask_[:, c], weight=det.weight_[:, c])
    assert d["var_masked"] == pytest.approx(vd.var_masked, rel=1e-5)
    assert d["var_dense"] == pytest.approx(vd.var_dense, rel=1e-5)
    assert d["var_masked"] == pytest.approx(np.var(det.logits(X)[:, c], ddof=1), rel=1e-4)


def test_contribution_covariance_without_kept_has_no_boundary():
    d = contribution_covariance(np.eye(3), np.ones((3, 2)), 1, train_mean=np.ones(3))
    assert d["kept"] is d["n_dropped"] is d["var_dense"] is d["var_masked"] is None
    np.testing.assert_allclose(d["cov"], np.cov(np.eye(3)), rtol=1e-12)


def test_contribution_covariance_invariant_to_chunk_size():
    rng = np.random.default_rng(2)
    X, W = rng.random((257, 9)), rng.normal(size=(9, 3))
    whole = contribution_covariance(X, W, 1, train_mean=np.ones(9))["cov"]
    with config_context(working_memory=5 * 8 * 2 * 9 / 2**20):  # 5-row chunks
        chunked = contribution_covariance(X, W, 1, train_mean=np.ones(9))["cov"]
    np.testing.assert_allclose(chunked, whole, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"weight": np.ones(4)}, r"weight must be 2-D \(n_features, n_classes\)"),
        ({"class_index": 3}, "class_index 3 is out of range for 3 classes"),
        ({"features": np.ones((5, 3))}, r"features has shape \(5, 3\); expected \(n, 4\)"),
        ({"features": np.ones((1, 4))}, "features needs at least 2 rows for a covariance, got 1"),
        ({"train_mean": np.ones(5)}, r"train_mean must have shape \(4,\)"),
        ({"kept": np.ones(4)}, r"kept must be a boolean mask of shape \(4,\), got dtype float64"),
        ({"kept": np.ones(3, dtype=bool)}, r"kept must be a boolean mask of shape \(4,\)"),
        ({"features": np.full((5, 4), np.nan)}, "features contain NaN or infinity"),
    ],
)
def test_contribution_covariance_rejects_bad_arguments(kwargs, match):
    args = {"features": np.ones((5, 4)), "weight": np.ones((4, 3)), "class_index": 0,
            "train_mean": np.ones(4), **kwargs}
    features, weight, c = args.pop("features"), args.pop("weight"), args.pop("class_index")
    with pytest.raises(ValueError, match=match):
        contribution_covariance(features, weight, c, **args)


def _panel(seed=0, kept=True):
    rng = np.random.default_rng(seed)
    X, W = rng.random((40, 6)), rng.normal(size=(6, 2))
    mask = np.array([False, True] * 3) if kept else None
    return contribution_covariance(X, W, 0, train_mean=np.ones(6), kept=mask)


def test_plot_contribution_covariance_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = plot_contribution_covariance(
        {"a": _panel(0), "b": _panel(1, kept=False)}, tmp_path / "sub" / "cov.png", title="t"
    )
    assert path == tmp_path / "sub" / "cov.png"
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    # fixed metadata and data: the same bytes twice
    again = plot_contribution_covariance({"a": _panel(0), "b": _panel(1, kept=False)}, tmp_path / "again.png",
                                         title="t")
    assert again.read_bytes() == path.read_bytes()
    # an all-zero matrix still gets a colour scale
    zero = dict(_panel(0), cov=np.zeros((6, 6)))
    assert plot_contribution_covariance({"z": zero}, tmp_path / "z.png").read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize(
    "data, kwargs, match",
    [
        ({}, {}, "data is empty: give at least one data set"),
        (None, {"vmax": 0.0}, "vmax must be a positive number, got 0.0"),
        (None, {"vmax": float("nan")}, "vmax must be a positive number"),
    ],
)
def test_plot_contribution_covariance_rejects_bad_arguments(tmp_path, data, kwargs, match):
    data = {"a": _panel()} if data is None else data
    with pytest.raises(ValueError, match=match):
        plot_contribution_covariance(data, tmp_path / "x.png", **kwargs)


# ---------------------------------------------------------------- plot_store
@pytest.fixture(scope="module")
def toy_store(tmp_path_factory):
    rng = np.random.default_rng(0)
    m, C = 12, 3
    head = Head(rng.normal(size=(m, C)), np.zeros(C))
    H_train = np.maximum(rng.normal(0.5, 1.0, (96, m)), 0).astype(np.float32)
    H_id = np.maximum(rng.normal(0.5, 1.0, (64, m)), 0).astype(np.float32)
    far = np.abs(rng.normal(0.0, 2.0, (64, m))).astype(np.float32)
    near = np.maximum(rng.normal(0.3, 1.2, (64, m)), 0).astype(np.float32)
    path = tmp_path_factory.mktemp("cov") / "toy.zarr"
    write_store(path, head, {"train": H_train, "id": (H_id, head.logits(H_id).argmax(axis=1)),
                             "far": far, "near": near})
    return path, head, {"train": H_train, "far": far, "near": near}


def test_plot_store_writes_the_covariance_figure_of_each_ood_split(toy_store, tmp_path):
    pytest.importorskip("matplotlib")
    from skdice.plotting import plot_store

    path, head, splits = toy_store
    out = plot_store(path, tmp_path, id_split="id", ood_splits=["far", "near"], train_split="train",
                     p=0.5, class_index=2, ps=(0, 0.5), prefix="x-")
    assert out["covariance"] == tmp_path / "x-covariance.png"
    assert out["covariance"].read_bytes()[:8] == PNG_SIGNATURE
    assert list(out) == ["histograms", "contributions", "p_sweep", "covariance", "data"]
    mean = splits["train"].astype(np.float64).mean(axis=0)
    det = DICEDetector(p=0.5).fit(head=head, train_mean=mean)
    for name in ("far", "near"):
        drawn = out["data"]["covariance"][name]
        ref = _reference(splits[name], head.weight, 2, mean, det.mask_[:, 2])
        np.testing.assert_array_equal(drawn["order"], ref["order"])
        np.testing.assert_allclose(drawn["cov"], ref["cov"], rtol=1e-6, atol=1e-9)
        assert drawn["n_dropped"] == int((~det.mask_[:, 2]).sum())
        assert drawn["var_masked"] == pytest.approx(ref["var_masked"], rel=1e-6)
