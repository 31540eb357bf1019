"""evaluate_store, fit_from_store and score_store against independent references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.metrics import average_precision_score, roc_auc_score

pytest.importorskip("zarr")

from skdice import DICEDetector, Head, available_detectors, detector_tags, load_detector, save_detector
from skdice.evaluation import (
    MethodSpec,
    evaluate_store,
    fit_from_store,
    load_train_mean,
    parse_method,
    score_store,
    write_scores,
)
from skdice.exceptions import IncompleteSplitError, StoreError
from skdice.store import open_store
from stores import never_loaded, small_blocks, write_store

M, C = 16, 4


def _class_features(rng, n, labels, shift=0.0, scale=1.0):
    prototypes = np.random.default_rng(42).gamma(1.0, 1.0, size=(C, M))
    X = prototypes[labels] + scale * rng.normal(size=(n, M)) + shift
    return np.maximum(X, 0).astype(np.float32)


def make_store(path):
    """A small store: labelled train/id, unlabelled ood_a/ood_b, a partly labelled id_mixed."""
    rng = np.random.default_rng(0)
    prototypes = np.random.default_rng(42).gamma(1.0, 1.0, size=(C, M))
    head = Head(prototypes.T - prototypes.T.mean(axis=1, keepdims=True), rng.normal(0, 0.1, C))
    splits = {}
    y_tr = np.arange(240) % C
    splits["train"] = (_class_features(rng, 240, y_tr), y_tr)
    y_id = np.arange(100) % C
    splits["id"] = (_class_features(rng, 100, y_id), y_id)
    splits["ood_a"] = (np.maximum(rng.normal(0.5, 1.5, (80, M)), 0).astype(np.float32), -np.ones(80, int))
    splits["ood_b"] = (_class_features(rng, 60, np.zeros(60, int), scale=2.5), -np.ones(60, int))
    mixed = y_id.copy()
    mixed[::3] = -1
    splits["id_mixed"] = (splits["id"][0], mixed)
    write_store(path, head, splits)
    return head, splits


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval") / "toy.zarr"
    head, splits = make_store(path)
    # 64 rows of which only the first chunk of 32 is written
    X = splits["id"][0][:64]
    write_store(path, head, {"broken": (X, np.zeros(64, int))}, chunk_rows=32, incomplete=("broken",))
    return path, head, splits


# ------------------------------------------------------------ references
def _dice_scores(X, H_train_mean, head, p):
    V = H_train_mean[:, None].astype(np.float64) * head.weight.astype(np.float64)
    keep = V > np.percentile(V, 100 * p) if p > 0 else np.ones_like(V, bool)
    logits = X.astype(np.float64) @ (head.weight * keep).astype(np.float64) + head.bias
    return logsumexp(logits, axis=1)


def _fpr95_id_positive(id_s, ood_s):
    # smallest threshold keeping >= 95% of ID: the OOD fraction at or above it
    thresholds = np.sort(np.unique(np.r_[id_s, ood_s]))[::-1]
    for t in thresholds:
        if np.mean(id_s >= t) >= 0.95:
            return np.mean(ood_s >= t)
    return 1.0


def _reference_row(id_s, ood_s):
    y = np.r_[np.ones(len(id_s)), np.zeros(len(ood_s))]
    s = np.r_[id_s, ood_s]
    return {
        "fpr95": 100 * _fpr95_id_positive(id_s, ood_s),
        "auroc": 100 * roc_auc_score(y, s),
        "aupr_in": 100 * average_precision_score(y, s),
        "aupr_out": 100 * average_precision_score(1 - y, -s),
    }


def _rows(result, method):
    return {r.ood: r for r in result.report.rows if r.method == method}


# ------------------------------------------------------------ evaluate
def test_report_matches_reference_dice_and_energy(store):
    path, head, splits = store
    result = evaluate_store(path, "id", ["ood_a", "ood_b"], train="train")
    mean = splits["train"][0].astype(np.float64).mean(axis=0)
    for method, p in (("dice", 0.9), ("energy", 0.0)):
        rows = _rows(result, method)
        assert list(rows) == ["ood_a", "ood_b", "average"]
        id_s = _dice_scores(splits["id"][0], mean, head, p)
        for ood in ("ood_a", "ood_b"):
            ref = _reference_row(id_s, _dice_scores(splits[ood][0], mean, head, p))
            for key, value in ref.items():
                assert getattr(rows[ood], key) == pytest.approx(value, abs=1e-6), (method, ood, key)
        for key in ("fpr95", "auroc", "aupr_in", "aupr_out"):
            assert getattr(rows["average"], key) == pytest.approx(
                (getattr(rows["ood_a"], key) + getattr(rows["ood_b"], key)) / 2
            )
    assert [r.p for r in result.report.rows] == [0.9] * 3 + [None] * 3


def test_id_accuracy_of_original_and_masked_head_matches_argmax(store):
    path, head, splits = store
    result = evaluate_store(path, "id", ["ood_a"], train="train", p=0.5)
    X, y = splits["id"]
    det = DICEDetector(p=0.5).fit(splits["train"][0], head=head)
    original = 100 * np.mean((X @ head.weight + head.bias).argmax(1) == y)
    masked = 100 * np.mean((X @ det.masked_weight_ + head.bias).argmax(1) == y)
    acc = result.id_accuracy
    assert acc["split"] == "id" and acc["n_labelled"] == 100
    assert acc["original"] == pytest.approx(original)
    assert acc["original"] > 50  # the toy head classifies
    assert acc["masked"] == [{"method": "dice", "p": 0.5, "accuracy": pytest.approx(masked)}]
    assert result.to_dict()["id_accuracy"] == acc


def test_id_accuracy_counts_only_labelled_rows(store):
    path, head, splits = store
    result = evaluate_store(path, "id_mixed", ["ood_a"], methods=["energy"])
    X, y = splits["id_mixed"]
    known = y >= 0
    expected = 100 * np.mean((X[known] @ head.weight + head.bias).argmax(1) == y[known])
    assert result.id_accuracy["n_labelled"] == int(known.sum())
    assert result.id_accuracy["original"] == pytest.approx(expected)
    assert result.id_accuracy["masked"] == []


def test_id_accuracy_is_none_when_id_split_has_no_labels(store):
    path, *_ = store
    result = evaluate_store(path, "ood_b", ["ood_a"], methods=["energy"])
    assert result.id_accuracy is None
    assert result.to_dict()["id_accuracy"] is None
    assert result.accuracy_lines() == ["ID accuracy: n/a (the ID split has no labels)"]


def test_json_has_the_documented_keys_and_average_rows(store):
    path, *_ = store
    out = evaluate_store(path, "id", ["ood_a", "ood_b"], train="train").to_dict()
    assert set(out) == {"results", "fpr_at_tpr", "fpr_positive", "id_accuracy"}
    assert set(out["results"][0]) == {"method", "p", "ood", "fpr95", "auroc", "aupr_in", "aupr_out"}
    assert [r["ood"] for r in out["results"]] == ["ood_a", "ood_b", "average"] * 2
    assert all(0 <= r["auroc"] <= 100 for r in out["results"])


def test_cached_train_mean_gives_the_same_dice_rows_as_the_train_split(store, tmp_path):
    path, head, splits = store
    mean_file = tmp_path / "mean.npy"
    np.save(mean_file, splits["train"][0].astype(np.float64).mean(axis=0))
    from_split = evaluate_store(path, "id", ["ood_a"], methods=["dice"], train="train")
    from_mean = evaluate_store(path, "id", ["ood_a"], methods=["dice"], train_mean=mean_file)
    for a, b in zip(from_split.report.rows, from_mean.report.rows):
        assert a.auroc == pytest.approx(b.auroc, abs=1e-9)
        assert a.fpr95 == pytest.approx(b.fpr95, abs=1e-9)


def test_energy_needs_no_training_data(store):
    path, head, splits = store
    result = evaluate_store(path, "id", ["ood_a"], methods=["energy"])
    ref = _reference_row(
        logsumexp(splits["id"][0] @ head.weight + head.bias, axis=1),
        logsumexp(splits["ood_a"][0] @ head.weight + head.bias, axis=1),
    )
    assert result.report.rows[0].auroc == pytest.approx(ref["auroc"], abs=1e-6)


def test_dice_without_training_data_says_which_option_to_pass(store):
    path, *_ = store
    with pytest.raises(ValueError, match=r"'dice' is fitted on .*train=SPLIT or train_mean=PATH"):
        evaluate_store(path, "id", ["ood_a"])


def test_feature_statistics_method_with_only_a_mean_asks_for_train(store, tmp_path):
    needy = [
        name
        for name, cls in available_detectors().items()
        if not detector_tags(cls()).accepts_train_mean and detector_tags(cls()).uses_features
    ]
    if not needy:
        pytest.skip("no registered detector needs training features beyond a mean")
    path, head, splits = store
    mean_file = tmp_path / "mean.npy"
    np.save(mean_file, splits["train"][0].mean(axis=0))
    with pytest.raises(ValueError, match=rf"'{needy[0]}' is fitted on .*pass train=SPLIT\.$"):
        evaluate_store(path, "id", ["ood_a"], methods=[needy[0]], train_mean=mean_file)


def test_positive_ood_uses_the_other_fpr_convention(store):
    path, head, splits = store
    result = evaluate_store(path, "id", ["ood_a"], methods=["energy"], positive="ood")
    id_s = logsumexp(splits["id"][0] @ head.weight + head.bias, axis=1)
    ood_s = logsumexp(splits["ood_a"][0] @ head.weight + head.bias, axis=1)
    # OOD positive = ID-positive rule applied with roles and signs swapped
    assert result.report.rows[0].fpr95 == pytest.approx(100 * _fpr95_id_positive(-ood_s, -id_s))
    assert result.positive == "ood"


def test_p_applies_to_dice_and_the_same_method_can_appear_twice(store):
    path, *_ = store
    result = evaluate_store(
        path, "id", ["ood_a"], methods=["dice", "dice:p=0.5", "energy"], p=0.7, train="train"
    )
    assert [(r.method, r.p, r.ood) for r in result.report.rows] == [
        ("dice", 0.7, "ood_a"), ("dice", 0.7, "average"),
        ("dice", 0.5, "ood_a"), ("dice", 0.5, "average"),
        ("energy", None, "ood_a"), ("energy", None, "average"),
    ]
    assert list(result.detectors) == ["dice", "dice@p=0.5", "energy"]
    assert result.detectors["dice@p=0.5"].p == 0.5


@pytest.mark.parametrize(
    "p, match",
    [(1.0, r"p must be in \[0, 1\), got 1.0\.$"), (90, r"got 90 \(p is a fraction: 0.9 for 90%\)"),
     (-0.1, r"p must be in \[0, 1\), got -0.1\.$"), ("x", r"got 'x'")],
)
def test_bad_p_is_refused_before_reading_the_store(p, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        evaluate_store(tmp_path / "nowhere", "id", ["ood"], p=p)


def test_p_for_methods_without_sparsity_is_refused(store):
    path, *_ = store
    with pytest.raises(ValueError, match="none of the methods .energy. has a sparsity parameter p"):
        evaluate_store(path, "id", ["ood_a"], methods=["energy"], p=0.5)


def test_missing_split_names_the_available_ones(store):
    path, *_ = store
    with pytest.raises(StoreError, match=r"no split 'svhn' \(splits: broken, id, id_mixed, ood_a, ood_b, train\)"):
        evaluate_store(path, "id", ["svhn"], methods=["energy"])


def test_incomplete_split_is_refused(store):
    path, *_ = store
    with pytest.raises(IncompleteSplitError, match="'broken'.*incomplete .1 of 2 chunks"):
        evaluate_store(path, "id", ["broken"], methods=["energy"])


def test_missing_store_is_refused(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        evaluate_store(tmp_path / "none.zarr", "id", ["ood"], methods=["energy"])


def test_id_split_given_as_ood_is_refused(store):
    path, *_ = store
    with pytest.raises(ValueError, match="both as the ID split and as an OOD split"):
        evaluate_store(path, "id", ["id"])


def test_repeated_ood_split_is_refused(store):
    path, *_ = store
    with pytest.raises(ValueError, match="OOD split 'ood_a' is given more than once"):
        evaluate_store(path, "id", ["ood_a", "ood_b", "ood_a"], methods=["energy"])


def test_dask_reading_gives_the_same_report(store):
    pytest.importorskip("dask")
    path, *_ = store
    eager = evaluate_store(path, "id", ["ood_a", "ood_b"], train="train")
    lazy = evaluate_store(path, "id", ["ood_a", "ood_b"], train="train", dask=True)
    for a, b in zip(lazy.report.rows, eager.report.rows, strict=True):
        assert (a.method, a.p, a.ood) == (b.method, b.p, b.ood)
        assert a.auroc == pytest.approx(b.auroc) and a.fpr95 == pytest.approx(b.fpr95)
    assert lazy.id_accuracy == eager.id_accuracy


# ------------------------------------------------------------ methods
def test_parse_method_reads_literals_and_names():
    assert parse_method("dice") == MethodSpec("dice", {})
    assert parse_method("dice:p=0.7, tpr=0.9") == MethodSpec("dice", {"p": 0.7, "tpr": 0.9})
    assert parse_method("energy:temperature=2") == MethodSpec("energy", {"temperature": 2})


@pytest.mark.parametrize(
    "spec, match",
    [("nope", r"unknown method 'nope'; choose from: .*dice"),
     ("dice:p", r"key=value pairs .* got 'p'"),
     ("dice:k=3", r"method 'dice' has no parameter 'k'; its parameters are: p, tpr")],
)
def test_parse_method_refuses_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_method(spec)


# ------------------------------------------------------------ train mean
def test_load_train_mean_accepts_row_vector_and_checks_width(tmp_path):
    np.save(tmp_path / "row.npy", np.ones((1, M), np.float32))
    assert load_train_mean(tmp_path / "row.npy", M).shape == (M,)
    with pytest.raises(ValueError, match=f"mean of {M} features but the store's head has 7"):
        load_train_mean(tmp_path / "row.npy", 7)


def test_load_train_mean_refuses_missing_npz_and_text(tmp_path):
    with pytest.raises(FileNotFoundError, match="train mean file .*absent.npy does not exist"):
        load_train_mean(tmp_path / "absent.npy")
    np.savez(tmp_path / "a.npz", x=np.ones(3))
    with pytest.raises(ValueError, match="got an .npz archive"):
        load_train_mean(tmp_path / "a.npz")
    (tmp_path / "t.npy").write_text("hello")
    with pytest.raises(ValueError, match="not a readable .npy array"):
        load_train_mean(tmp_path / "t.npy")


def test_shared_cached_mean_loads_without_pickle(shared_data):
    mean = load_train_mean(shared_data / "models" / "densenet-bc-100-cifar10.train-mean.npy", 342)
    assert mean.dtype == np.float64 and (mean >= 0).all()


# ------------------------------------------------------------ fit / score
def test_fit_save_score_writes_the_detector_scores_back(tmp_path):
    path = tmp_path / "s.zarr"
    head, splits = make_store(path)
    det = fit_from_store(path, "dice", train="train", p=0.5)
    assert det.p == 0.5
    saved = save_detector(det, tmp_path / "dice.npz")
    summary = score_store(path, "ood_a", saved)
    expected = det.score_samples(splits["ood_a"][0])
    np.testing.assert_array_equal(summary["scores"], expected)
    assert summary["written"] == "ood_a/scores/dice"
    import zarr

    stored = zarr.open_group(str(path), mode="r")["ood_a/scores/dice"][...]
    np.testing.assert_array_equal(stored, expected)
    assert summary["n"] == 80 and summary["method"] == "dice"
    assert summary["n_ood"] == int(np.sum(det.predict(splits["ood_a"][0]) == -1))
    assert summary["mean"] == pytest.approx(expected.mean())
    # the store still opens and the split still reads
    assert open_store(path).features("ood_a").shape == (80, M)


def test_score_refuses_a_detector_fitted_with_another_head_of_the_same_width(tmp_path):
    path = tmp_path / "s.zarr"
    head, splits = make_store(path)
    other = Head(head.weight[:, ::-1].copy(), head.bias)  # same shape, other model
    det = DICEDetector(p=0.5).fit(splits["train"][0], head=other)
    with pytest.raises(ValueError, match=r"fitted with another classifier head .* it belongs to another model"):
        score_store(path, "ood_a", det)
    import zarr

    assert "scores" not in zarr.open_group(str(path), mode="r")["ood_a"]
    # the store's own head passes, float64 copies of it too
    same = DICEDetector(p=0.5).fit(splits["train"][0], head=Head(head.weight.astype(np.float64), head.bias))
    assert score_store(path, "ood_a", same, write=False)["n"] == 80


def test_a_full_disk_while_scoring_is_not_called_damage(tmp_path, monkeypatch):
    import errno

    import skdice.workflows.score

    path = tmp_path / "s.zarr"
    head, splits = make_store(path)
    det = fit_from_store(path, "dice", train="train")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path / "ood_a" / "scores"))

    monkeypatch.setattr(skdice.workflows.score, "score_to_store", full)
    with pytest.raises(OSError) as info:
        score_store(path, "ood_a", det)
    assert info.value.errno == errno.ENOSPC and not isinstance(info.value, StoreError)
    assert "No space left on device (split 'ood_a' of" in str(info.value)
    assert "damaged" not in str(info.value)


def test_fit_from_train_mean_only_leaves_offset_uncalibrated(tmp_path):
    path = tmp_path / "s.zarr"
    head, splits = make_store(path)
    np.save(tmp_path / "mean.npy", splits["train"][0].mean(axis=0))
    det = fit_from_store(path, "dice", train_mean=tmp_path / "mean.npy")
    assert np.isnan(det.offset_)
    summary = score_store(path, "id", det, name="dice_mean", write=True)
    assert summary["n_ood"] is None and summary["written"] == "id/scores/dice_mean"


def test_fit_from_store_refusals(tmp_path):
    path = tmp_path / "s.zarr"
    make_store(path)
    with pytest.raises(ValueError, match="give the training data to fit on: train=SPLIT or train_mean"):
        fit_from_store(path, "dice")
    with pytest.raises(ValueError, match="'energy' has no sparsity parameter p"):
        fit_from_store(path, "energy", train="train", p=0.5)
    np.save(tmp_path / "mean.npy", np.ones(M))
    with pytest.raises(ValueError, match="'energy' cannot be fitted from a training mean"):
        fit_from_store(path, "energy", train_mean=tmp_path / "mean.npy")


def test_scoring_with_a_detector_of_another_width_is_refused(tmp_path):
    path = tmp_path / "s.zarr"
    make_store(path)
    rng = np.random.default_rng(1)
    det = DICEDetector().fit(rng.random((20, M + 1)), rng.normal(size=(M + 1, C)))
    with pytest.raises(ValueError, match=f"has {M} features but the detector was fitted on {M + 1}"):
        score_store(path, "id", det)


def test_write_scores_checks_length_and_name(tmp_path):
    path = tmp_path / "s.zarr"
    make_store(path)
    with pytest.raises(ValueError, match=r"has 100 rows but \(3,\) scores"):
        write_scores(path, "id", "x", np.zeros(3))
    with pytest.raises(ValueError, match="invalid score name 'a/b'"):
        write_scores(path, "id", "a/b", np.zeros(100))
    assert write_scores(path, "id", "x", np.arange(100.0)) == "id/scores/x"
    assert write_scores(path, "id", "x", np.ones(100)) == "id/scores/x"  # overwrite
    import zarr

    np.testing.assert_array_equal(zarr.open_group(str(path), mode="r")["id/scores/x"][...], np.ones(100))


def test_saved_detector_is_loadable_after_scoring(tmp_path):
    path = tmp_path / "s.zarr"
    make_store(path)
    det = fit_from_store(path, "energy", train="train")
    again = load_detector(save_detector(det, tmp_path / "e.npz"))
    assert score_store(path, "id", again, write=False)["written"] is None


def test_scoring_again_reuses_scores_and_another_detector_needs_overwrite(tmp_path):
    path = tmp_path / "s.zarr"
    make_store(path)
    first = fit_from_store(path, "dice", train="train", p=0.9)
    assert score_store(path, "id", first)["computed"] == 100
    again = score_store(path, "id", first)
    assert again["computed"] == 0 and again["n"] == 100
    other = fit_from_store(path, "dice", train="train", p=0.5)
    with pytest.raises(StoreError, match=r"id/scores/dice .*written by another detector.*overwrite=True"):
        score_store(path, "id", other)
    replaced = score_store(path, "id", other, overwrite=True)
    np.testing.assert_array_equal(replaced["scores"], other.score_samples(open_store(path).features("id")))


def test_evaluate_streams_the_training_mean_for_dice(store, monkeypatch):
    """DICE, Mahalanobis and ReAct are fitted block by block; only KNN's bank loads the split."""
    path, *_ = store
    import skdice.store

    loaded = []
    original = skdice.store.FeatureStore.features

    def spy(self, split, **kwargs):
        loaded.append(split)
        return original(self, split, **kwargs)

    monkeypatch.setattr(skdice.store.FeatureStore, "features", spy)
    evaluate_store(path, "id", ["ood_a"], methods=["dice", "energy"], train="train")
    assert "train" not in loaded
    # class statistics are read block by block too (tag fits_from_blocks); a bank loads
    evaluate_store(path, "id", ["ood_a"], methods=["mahalanobis", "react"], train="train")
    assert "train" not in loaded
    evaluate_store(path, "id", ["ood_a"], methods=["knn"], train="train")
    assert "train" in loaded


def test_docstring_examples_run():
    import doctest

    import skdice.workflows.methods

    result = doctest.testmod(skdice.workflows.methods)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("name", sorted(available_detectors()))
def test_every_registered_method_evaluates_from_a_training_split(store, name):
    path, head, splits = store
    result = evaluate_store(path, "id", ["ood_a"], methods=[name], train="train")
    rows = result.report.rows
    assert [(r.method, r.ood) for r in rows] == [(name, "ood_a"), (name, "average")]
    assert all(0 <= r.auroc <= 100 and 0 <= r.fpr95 <= 100 for r in rows)
    det = result.detectors[name]
    np.testing.assert_allclose(result.scores[name]["ood_a"], det.score_samples(splits["ood_a"][0]))


def test_evaluate_reads_each_split_once_in_blocks_and_never_whole(store, monkeypatch):
    """One pass per split scores every method (and, on the ID split, classifies by every
    head); the results equal the formulas on the whole arrays."""
    path, head, splits = store
    reads = []
    small_blocks(monkeypatch, reads)
    never_loaded(monkeypatch)
    result = evaluate_store(path, "id_mixed", ["ood_a", "ood_b"], methods=["dice", "energy"],
                            train="train", p=0.5)
    assert sorted(reads) == ["id_mixed/features", "ood_a/features", "ood_b/features"]
    mean = splits["train"][0].astype(np.float64).mean(axis=0)
    X, y = splits["id_mixed"]
    for method, p in (("dice", 0.5), ("energy", 0.0)):
        for split in ("id_mixed", "ood_a", "ood_b"):
            np.testing.assert_allclose(result.scores[method][split],
                                       _dice_scores(splits[split][0], mean, head, p), rtol=1e-5)
    # energy learns nothing from features: its offset_ is the quantile of every ID row's score
    energy_id = _dice_scores(X, mean, head, 0.0)
    assert result.detectors["energy"].offset_ == pytest.approx(np.quantile(energy_id, 0.05), rel=1e-5)
    known = y >= 0
    det = DICEDetector(p=0.5).fit(splits["train"][0], head=head)
    original = 100 * np.mean((X[known] @ head.weight + head.bias).argmax(1) == y[known])
    masked = 100 * np.mean((X[known] @ det.masked_weight_ + head.bias).argmax(1) == y[known])
    assert result.id_accuracy["n_labelled"] == int(known.sum())
    assert result.id_accuracy["original"] == pytest.approx(original)
    assert result.id_accuracy["masked"][0]["accuracy"] == pytest.approx(masked)


def test_evaluate_names_the_split_and_row_whose_score_overflows(tmp_path, monkeypatch):
    small_blocks(monkeypatch, [])  # row 70 is row 6 of the third block: renumbered
    rng = np.random.default_rng(1)
    head = Head(np.abs(rng.normal(size=(M, C))), np.zeros(C))
    bad = np.abs(rng.normal(size=(100, M))).astype(np.float32)
    bad[70] = 1e38  # finite, but its logits overflow float32
    write_store(tmp_path / "s.zarr", head, {"id": np.abs(rng.normal(size=(50, M))).astype(np.float32),
                                            "bad": bad}, chunk_rows=32, logits=False)
    with pytest.raises(ValueError, match=r"^split 'bad' of .*s\.zarr: the score of row 70 is not finite"):
        evaluate_store(tmp_path / "s.zarr", "id", ["bad"], methods=["energy"])


def test_random_ablations_are_seeded_so_that_a_run_is_reproducible(store):
    path, *_ = store
    methods = ["unit-dropout", "weight-dropout"]
    first = evaluate_store(path, "id", ["ood_a"], methods=methods, train="train", p=0.5)
    again = evaluate_store(path, "id", ["ood_a"], methods=methods, train="train", p=0.5)
    for name in methods:
        assert first.detectors[name].random_state == 0
        np.testing.assert_array_equal(first.detectors[name].mask_, again.detectors[name].mask_)
        np.testing.assert_array_equal(first.scores[name]["ood_a"], again.scores[name]["ood_a"])
    other = evaluate_store(path, "id", ["ood_a"], methods=["unit-dropout:random_state=3"],
                           train="train", p=0.5)
    det = other.detectors["unit-dropout:random_state=3"]
    assert det.random_state == 3 and not np.array_equal(det.mask_, first.detectors["unit-dropout"].mask_)


def test_scoring_without_writing_reads_the_split_in_blocks_and_equals_the_reference(tmp_path, monkeypatch):
    path = tmp_path / "s.zarr"
    head, splits = make_store(path)
    reads = []
    small_blocks(monkeypatch, reads)
    never_loaded(monkeypatch)
    det = DICEDetector(p=0.5).fit(splits["train"][0], head=head)
    summary = score_store(path, "ood_a", det, write=False)
    assert reads == ["ood_a/features"] and summary["written"] is None
    mean = splits["train"][0].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(summary["scores"], _dice_scores(splits["ood_a"][0], mean, head, 0.5),
                               rtol=1e-5)


# ------------------------------------------------------------ the report (skdice/workflows/_report.py)
ID_POSITIVE = ("FPR95 with ID positive (DICE paper): % of OOD inputs accepted when 95% of ID inputs "
               "are kept; metrics in %.")


@pytest.fixture(scope="module")
def evaluated(store):
    path, *_ = store
    # energy first: DICE's average FPR95 is lower on this store, so the leaderboard reorders them
    return evaluate_store(path, "id", ["ood_a", "ood_b"], methods=["energy", "dice"], train="train")


def test_report_table_is_the_leaderboard_then_convention_hyperparameters_and_accuracy(evaluated):
    from skdice.workflows.evaluate import EvaluationReport

    averages = {r.method: r.fpr95 for r in evaluated.report.rows if r.ood == "average"}
    assert averages["dice"] < averages["energy"]  # the order given is not the leaderboard's
    calls = []

    def render(columns, rows, *, justify, bold_rows):
        calls.append((columns, rows, justify))
        return "TABLE"

    lines = EvaluationReport(evaluated).to_table(render).split("\n")
    ((columns, rows, justify),) = calls
    assert columns == ("method", "p", "ood", "FPR95", "AUROC", "AUPR-In", "AUPR-Out")
    assert justify == ["left"] * 3 + ["right"] * 4
    assert [(row[0], row[2]) for row in rows] == [
        ("dice", "ood_a"), ("dice", "ood_b"), ("dice", "average"),
        ("energy", "ood_a"), ("energy", "ood_b"), ("energy", "average")]
    assert rows[2][1:4] == ("0.9", "average", f"{averages['dice']:.2f}")
    assert lines[:5] == ["TABLE", "", ID_POSITIVE, "hyperparameters:", "  energy: temperature=1"]
    assert lines[5] == "  dice: p=0.9"
    assert lines[6:] == evaluated.accuracy_lines()
    # without a renderer: the same cells, aligned with spaces
    plain = EvaluationReport(evaluated).to_table().split("\n")
    assert [line.split() for line in plain[2:8]] == [[c for c in row if c] for row in rows]
    assert plain[8:] == lines[1:]




def test_report_markdown_keeps_the_given_order_and_lists_accuracy(evaluated):
    from skdice.workflows.evaluate import EvaluationReport

    text = EvaluationReport(evaluated).to_markdown()
    table, rest = text.split("\n\n", 1)
    assert table == evaluated.report.to_markdown()
    assert [line.split(" | ")[0] for line in table.split("\n")[2:]] == ["| energy"] * 3 + ["| dice"] * 3
    bullets = [f"- {line.strip()}" for line in evaluated.accuracy_lines()]
    assert rest.split("\n") == [ID_POSITIVE, "", *bullets]
    assert not text.endswith("\n")


def test_report_csv_has_every_row_in_the_given_order_at_full_precision(evaluated):
    import csv
    import io

    from skdice.workflows.evaluate import EvaluationReport

    text = EvaluationReport(evaluated).to_csv()
    assert text.endswith("\n") and not text.endswith("\n\n")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["method"], r["ood"]) for r in rows] == [(r.method, r.ood) for r in evaluated.report.rows]
    assert [float(r["fpr95"]) for r in rows] == [r.fpr95 for r in evaluated.report.rows]


def test_report_json_is_the_evaluation_dict(evaluated):
    import json

    from skdice.workflows.evaluate import EvaluationReport

    text = EvaluationReport(evaluated).to_json()
    assert json.loads(text) == json.loads(json.dumps(evaluated.to_dict()))
    assert text.startswith('{\n  "results": [')


def test_leaderboard_orders_methods_by_average_fpr_and_keeps_ties_in_order():
    from skdice.metrics import Report, ReportRow
    from skdice.workflows._report import leaderboard

    def rows(method, fpr):
        return [ReportRow(method, None, name, fpr, 50.0, 50.0, 50.0) for name in ("ood", "average")]

    report = Report([*rows("a", 30.0), *rows("b", 10.0), *rows("c", 30.0),
                     ReportRow("no-average", None, "ood", 0.0, 50.0, 50.0, 50.0)], {"k": 1})
    board = leaderboard(report)
    assert [(r.method, r.ood) for r in board.rows] == [
        ("b", "ood"), ("b", "average"), ("a", "ood"), ("a", "average"),
        ("c", "ood"), ("c", "average"), ("no-average", "ood")]
    assert board.extra == {"k": 1} and board.extra is not report.extra
