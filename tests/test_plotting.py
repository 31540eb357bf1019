"""Tests of skdice.plotting: the figure data against NumPy references, and the PNG files."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from skdice import Head
from skdice.exceptions import MissingExtraError
from skdice.plotting import (
    PAPER_PS,
    histogram_data,
    p_sweep,
    plot_p_sweep,
    plot_score_histograms,
    plot_unit_contributions,
    unit_contributions,
)
from stores import write_store

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _problem(seed=0, m=24, C=5):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(m, C)).astype(np.float32)
    b = rng.normal(size=C).astype(np.float32) * 0.1
    H_train = np.maximum(rng.normal(0.4, 1.0, size=(400, m)), 0).astype(np.float32)
    H_id = np.maximum(rng.normal(0.4, 1.0, size=(300, m)), 0).astype(np.float32)
    H_ood = {
        "far": np.maximum(rng.normal(0.0, 1.6, size=(250, m)), 0).astype(np.float32),
        "near": np.maximum(rng.normal(0.3, 1.1, size=(200, m)), 0).astype(np.float32),
    }
    return W, b, H_train, H_id, H_ood


# --------------------------------------------------------- reference code
def _ref_density(x, lo, hi, bins):
    """Equal-width histogram density by explicit bin indices (last bin closed)."""
    width = (hi - lo) / bins
    idx = np.minimum(((x - lo) / width).astype(int), bins - 1)
    return np.bincount(idx, minlength=bins) / (x.size * width)


def _ref_energy(H, W, b):
    from scipy.special import logsumexp

    return logsumexp(H.astype(np.float64) @ W.astype(np.float64) + b, axis=1)


def _ref_fpr95(id_s, ood_s):
    """Accept the top 95% of ID scores (no ties): the fraction of OOD accepted."""
    s = np.sort(id_s)
    k = int(np.floor(0.05 * s.size + 1e-9))
    return float(np.mean(ood_s >= s[k]))


def _ref_masked_weight(mean, W, p):
    V = mean[:, None] * W.astype(np.float64)
    if p == 0:
        return W.astype(np.float64)
    flat = np.sort(V.ravel())
    pos = p * (flat.size - 1)
    lo = int(np.floor(pos))
    thr = flat[lo] + (pos - lo) * (flat[min(lo + 1, flat.size - 1)] - flat[lo])
    return np.where(V > thr, W.astype(np.float64), 0.0)


# ------------------------------------------------------------ histograms
def test_histogram_densities_match_explicit_binning():
    rng = np.random.default_rng(1)
    id_s = rng.normal(5, 1, 500)
    ood = {"a": rng.normal(3, 2, 300), "b": rng.normal(4, 0.5, 100)}
    d = histogram_data(id_s, ood, bins=17)
    lo = min(id_s.min(), ood["a"].min(), ood["b"].min())
    hi = max(id_s.max(), ood["a"].max(), ood["b"].max())
    np.testing.assert_allclose(d["edges"], np.linspace(lo, hi, 18))
    np.testing.assert_allclose(d["id"], _ref_density(id_s, lo, hi, 17), rtol=1e-12)
    for k in ood:
        np.testing.assert_allclose(d["ood"][k], _ref_density(ood[k], lo, hi, 17), rtol=1e-12)
        assert d["ood_std"][k] == pytest.approx(np.sqrt(np.mean((ood[k] - ood[k].mean()) ** 2)))
    assert np.sum(d["id"] * np.diff(d["edges"])) == pytest.approx(1.0)


def test_histogram_of_constant_scores_gets_a_unit_wide_bin():
    d = histogram_data([2.0, 2.0], {"o": [2.0]}, bins=1)
    np.testing.assert_allclose(d["edges"], [1.5, 2.5])
    np.testing.assert_allclose(d["id"], [1.0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"ood_scores": {}}, "ood_scores is empty"),
        ({"ood_scores": {"o": [1.0]}, "bins": 0}, "bins must be a positive integer"),
        ({"ood_scores": {"o": [np.nan]}}, r"ood_scores\['o'\] contains NaN"),
    ],
)
def test_histogram_rejects_bad_input_with_message(kwargs, match):
    with pytest.raises(ValueError, match=match):
        histogram_data([1.0, 2.0], **kwargs)


# ------------------------------------------------------- contributions
def test_unit_contributions_match_elementwise_reference():
    W, _, _, H_id, H_ood = _problem()
    c = 3
    d = unit_contributions(H_id, H_ood["far"], W, c)
    V_id = H_id.astype(np.float64) * W[:, c].astype(np.float64)
    V_ood = H_ood["far"].astype(np.float64) * W[:, c].astype(np.float64)
    order = np.argsort(V_id.mean(axis=0))
    np.testing.assert_array_equal(d["order"], order)
    np.testing.assert_allclose(d["id_mean"], V_id.mean(axis=0)[order], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(d["id_var"], V_id.var(axis=0, ddof=1)[order], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(d["ood_mean"], V_ood.mean(axis=0)[order], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(d["ood_var"], V_ood.var(axis=0, ddof=1)[order], rtol=1e-10, atol=1e-12)
    assert np.all(np.diff(d["id_mean"]) >= 0)
    # the unit means sum to the bias-free logit's mean (Eq. 6)
    assert d["id_mean"].sum() == pytest.approx((H_id.astype(np.float64) @ W[:, c]).mean())


def test_unit_contributions_sorted_by_the_train_mean_contribution():
    W, _, H_train, H_id, H_ood = _problem()
    mean = H_train.astype(np.float64).mean(axis=0)
    d = unit_contributions(H_id, H_ood["near"], W, 0, train_mean=mean)
    key = mean * W[:, 0].astype(np.float64)
    np.testing.assert_array_equal(d["order"], np.argsort(key, kind="stable"))
    np.testing.assert_allclose(d["key"], np.sort(key), rtol=1e-12)


def test_unit_contributions_independent_of_chunking():
    from sklearn import config_context

    W, _, _, H_id, H_ood = _problem()
    full = unit_contributions(H_id, H_ood["far"], W, 1)
    with config_context(working_memory=0.001):  # a few rows per chunk
        small = unit_contributions(H_id, H_ood["far"], W, 1)
    np.testing.assert_allclose(small["id_var"], full["id_var"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(small["ood_mean"], full["ood_mean"], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "c, X_ood, match",
    [
        (9, None, "class_index 9 is out of range for 5 classes"),
        (0, np.zeros((3, 7)), r"ood_features has shape \(3, 7\); expected \(n, 24\)"),
        (0, np.zeros((1, 24)), "ood_features needs at least 2 rows, got 1"),
    ],
)
def test_unit_contributions_reject_bad_input_with_message(c, X_ood, match):
    W, _, _, H_id, H_ood = _problem()
    with pytest.raises(ValueError, match=match):
        unit_contributions(H_id, H_ood["far"] if X_ood is None else X_ood, W, c)


# -------------------------------------------------------------- p sweep
@pytest.mark.parametrize("use_mean", [True, False])
def test_p_sweep_matches_reference_energy_and_fpr(use_mean):
    W, b, H_train, H_id, H_ood = _problem()
    mean = H_train.astype(np.float64).mean(axis=0)
    ps = (0.0, 0.5, 0.9)
    kw = {"train_mean": mean} if use_mean else {"train_features": H_train}
    d = p_sweep(H_id, H_ood, Head(W, b), ps=ps, **kw)
    np.testing.assert_array_equal(d["p"], ps)
    for i, p in enumerate(ps):
        Wm = _ref_masked_weight(mean, W, p)
        id_s = _ref_energy(H_id, Wm, b)
        assert d["id_mean"][i] == pytest.approx(id_s.mean(), rel=1e-5)
        fprs, stds = [], []
        for name, X in H_ood.items():
            ood_s = _ref_energy(X, Wm, b)
            fprs.append(_ref_fpr95(id_s, ood_s))
            stds.append(ood_s.std() / id_s.mean())
            assert d["fpr"][name][i] == pytest.approx(fprs[-1], abs=1e-12)
            assert d["ood_std"][name][i] == pytest.approx(stds[-1], rel=1e-4)
        assert d["fpr"]["average"][i] == pytest.approx(np.mean(fprs))
        assert d["ood_std"]["average"][i] == pytest.approx(np.mean(stds), rel=1e-4)


def test_p_sweep_defaults_to_the_paper_grid():
    W, b, H_train, H_id, H_ood = _problem()
    d = p_sweep(H_id, {"far": H_ood["far"]}, Head(W, b), train_features=H_train)
    np.testing.assert_array_equal(d["p"], PAPER_PS)
    assert set(d["auroc"]) == {"far", "average"}


def test_p_sweep_needs_a_mask_source():
    W, b, _, H_id, H_ood = _problem()
    with pytest.raises(ValueError, match="needs train_mean or train_features"):
        p_sweep(H_id, H_ood, Head(W, b))


# --------------------------------------------------------------- drawing
def _check_png(path, size):
    from PIL import Image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size == size
        # not a blank canvas
        assert len(set(np.asarray(img.convert("L")).ravel().tolist())) > 10


def test_plots_are_valid_pngs_of_the_expected_size(tmp_path):
    W, b, H_train, H_id, H_ood = _problem()
    mean = H_train.mean(axis=0)
    panels = {
        "energy": histogram_data(_ref_energy(H_id, W, b), {k: _ref_energy(v, W, b) for k, v in H_ood.items()}),
        "dice": histogram_data(_ref_energy(H_id, W * 0.5, b), {k: _ref_energy(v, W * 0.5, b) for k, v in H_ood.items()}),
    }
    _check_png(plot_score_histograms(panels, tmp_path / "h.png", title="t"), (840, 520))
    contrib = {k: unit_contributions(H_id, v, W, 2) for k, v in H_ood.items()}
    # ID and two OOD sets: three panels in one row, no empty fourth one
    _check_png(plot_unit_contributions(contrib, tmp_path / "sub" / "c.png"), (1350, 260))
    sweep = p_sweep(H_id, H_ood, Head(W, b), train_mean=mean, ps=(0, 0.5, 0.9))
    _check_png(plot_p_sweep(sweep, tmp_path / "p.png"), (900, 340))


def test_plot_bytes_are_identical_across_runs(tmp_path):
    W, b, _, H_id, H_ood = _problem()
    contrib = {"far": unit_contributions(H_id, H_ood["far"], W, 0)}
    a = plot_unit_contributions(contrib, tmp_path / "a.png").read_bytes()
    b_ = plot_unit_contributions(contrib, tmp_path / "b.png").read_bytes()
    assert a == b_


def test_missing_matplotlib_names_the_plot_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    W, _, _, H_id, H_ood = _problem()
    contrib = {"far": unit_contributions(H_id, H_ood["far"], W, 0)}
    with pytest.raises(MissingExtraError, match=r'pip install "skdice\[plot\]"'):
        plot_unit_contributions(contrib, tmp_path / "a.png")


def test_import_skdice_plotting_does_not_import_matplotlib():
    import subprocess

    code = "import skdice.plotting, sys; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------- from a store
def _write_store(path, seed=0):
    W, b, H_train, H_id, H_ood = _problem(seed)
    head = Head(W, b)
    y_train = (H_train @ W + b).argmax(axis=1)
    y_id = (H_id @ W + b).argmax(axis=1)
    splits = {"train": (H_train, y_train), "id": (H_id, y_id)}
    splits.update({k: (v, -np.ones(len(v), dtype=np.int64)) for k, v in H_ood.items()})
    write_store(path, head, splits, chunk_rows=64)
    return head, splits


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("plot") / "toy.zarr"
    head, splits = _write_store(path)
    return path, head, splits


def test_plot_store_writes_three_pngs_from_the_store_data(toy_store, tmp_path):
    from skdice.plotting import plot_store

    path, head, splits = toy_store
    mean_file = tmp_path / "mean.npy"
    np.save(mean_file, splits["train"][0].astype(np.float64).mean(axis=0))
    by_split = plot_store(path, tmp_path / "a", id_split="id", ood_splits=["far", "near"],
                          train_split="train", p=0.5, class_index=1, ps=(0, 0.5))
    by_file = plot_store(path, tmp_path / "b", id_split="id", ood_splits=["far", "near"],
                         train_mean=mean_file, p=0.5, class_index=1, ps=(0, 0.5))
    for key in ("histograms", "contributions", "p_sweep"):
        assert by_split[key].read_bytes()[:8] == PNG_SIGNATURE
        assert by_split[key].parent == tmp_path / "a"
    # the split's mean and the cached mean are the same numbers: same figures' data
    np.testing.assert_allclose(by_split["data"]["p_sweep"]["fpr"]["average"],
                               by_file["data"]["p_sweep"]["fpr"]["average"])
    # ID rows of the contribution figure are the rows labelled with the class
    contrib = by_split["data"]["contributions"]["far"]
    assert contrib["n_id"] == int((splits["id"][1] == 1).sum())
    ref = unit_contributions(splits["id"][0][splits["id"][1] == 1], splits["far"][0], head.weight, 1,
                             train_mean=splits["train"][0].astype(np.float64).mean(axis=0))
    np.testing.assert_allclose(contrib["id_mean"], ref["id_mean"], rtol=1e-10)
    # the histogram panels: dense energy and DICE at the given p
    assert list(by_split["data"]["histograms"]) == ["energy (p=0)", "DICE (p=0.5)"]
    dense = _ref_energy(splits["id"][0], head.weight, head.bias)
    assert by_split["data"]["histograms"]["energy (p=0)"]["id_mean"] == pytest.approx(dense.mean(), rel=1e-5)


def test_plot_store_defaults_to_the_most_predicted_class(toy_store, tmp_path):
    from skdice.plotting import plot_store

    path, head, splits = toy_store
    out = plot_store(path, tmp_path, id_split="id", ood_splits=["far"], train_split="train", ps=(0, 0.9))
    expected = int(np.bincount(splits["id"][1], minlength=head.n_classes).argmax())
    assert out["data"]["contributions"]["far"]["class_index"] == expected


def test_plot_store_default_class_is_the_most_frequent_label_not_prediction(tmp_path):
    # When labels and predictions disagree, the default class must be one the
    # labelled rows hold: the contribution figure selects its ID rows by label.
    from skdice.plotting import plot_store

    W, b, H_train, H_id, H_ood = _problem(0)
    head = Head(W, b)
    predicted = (H_id.astype(np.float64) @ W + b).argmax(axis=1)
    rare = int(np.bincount(predicted, minlength=head.n_classes).argmin())
    labels = np.full(len(H_id), rare, dtype=np.int64)
    splits = {"train": H_train, "id": (H_id, labels), "far": H_ood["far"]}
    write_store(tmp_path / "s.zarr", head, splits, chunk_rows=len(H_train))  # the longest: one chunk each
    out = plot_store(tmp_path / "s.zarr", tmp_path, id_split="id", ood_splits=["far"],
                     train_split="train", ps=(0, 0.9))
    contrib = out["data"]["contributions"]["far"]
    assert contrib["class_index"] == rare
    assert contrib["n_id"] == len(H_id)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"ood_splits": []}, "give at least one OOD split"),
        ({"ood_splits": ["far", "far"]}, "OOD split 'far' is given more than once"),
        ({"ood_splits": ["id"]}, "split 'id' is given both as the ID split and as an OOD split"),
        ({"train_split": None}, r"give exactly one of train_split=SPLIT or train_mean=FILE\.npy"),
        ({"train_mean": "m.npy"}, r"give exactly one of train_split=SPLIT or train_mean=FILE\.npy"),
        ({"p": 1.0}, r"p must be in \[0, 1\)"),
        ({"class_index": 7}, "class 7 is out of range for 5 classes"),
        ({"ood_splits": ["missing"]}, "no split 'missing'"),
    ],
)
def test_plot_store_rejects_bad_arguments_with_message(toy_store, tmp_path, kwargs, match):
    from skdice.plotting import plot_store

    path, _, _ = toy_store
    args = {"id_split": "id", "ood_splits": ["far"], "train_split": "train", **kwargs}
    with pytest.raises(ValueError, match=match):
        plot_store(path, tmp_path, **args)


def test_plot_store_uses_predicted_classes_when_the_id_split_has_no_labels(toy_store, tmp_path):
    from skdice.plotting import plot_store

    path, head, splits = toy_store
    X = splits["near"][0]
    predicted = (X.astype(np.float64) @ head.weight + head.bias).argmax(axis=1)
    c = int(np.bincount(predicted).argmax())
    out = plot_store(path, tmp_path, id_split="near", ood_splits=["far"], train_split="train", ps=(0, 0.9))
    contrib = out["data"]["contributions"]["far"]
    assert contrib["class_index"] == c
    assert contrib["n_id"] == int((predicted == c).sum())
    absent = [k for k in range(head.n_classes) if not (predicted == k).any()]
    if absent:
        with pytest.raises(ValueError, match=f"no row of split 'near' belongs to class {absent[0]}"):
            plot_store(path, tmp_path, id_split="near", ood_splits=["far"], train_split="train",
                       class_index=absent[0], ps=(0, 0.9))
