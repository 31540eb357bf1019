"""The store-driven searches: make_search, run_search, tune_store, and the split checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("zarr")

from skdice import Head  # noqa: E402
from skdice.exceptions import UnlabelledValidationWarning  # noqa: E402
from skdice.store import open_store  # noqa: E402
from skdice.tuning import HyperparameterSearch, SparsitySearch, tune_store  # noqa: E402
from skdice.workflows.resolve import TrainingData, check_validation_splits  # noqa: E402
from skdice.workflows.tune import make_search, run_search  # noqa: E402
from stores import never_loaded, small_blocks, write_store  # noqa: E402


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(2)
    m, C = 10, 3
    centres = np.maximum(rng.normal(0, 1, (C, m)), 0) * 2
    W = rng.normal(size=(m, C))

    def rows(n):
        y = rng.integers(0, C, n)
        return np.maximum(centres[y] + rng.normal(0, 0.6, (n, m)), 0).astype(np.float32), y

    splits = {"train": rows(120), "val": rows(80), "bare": rows(80)[0],
              "a": np.abs(rng.normal(0.5, 1, (60, m))).astype(np.float32),
              "b": np.abs(rng.normal(0.2, 2, (60, m))).astype(np.float32)}
    path = tmp_path_factory.mktemp("tune-workflow") / "s.zarr"
    write_store(path, Head(W, np.zeros(C)), splits, chunk_rows=32)
    return path, splits


def test_make_search_picks_the_search_of_the_method():
    assert isinstance(make_search(), SparsitySearch)
    assert make_search("dice", {"p": [0.1, 0.2]}).grid == [0.1, 0.2]
    assert make_search("dice", [0.3]).grid == [0.3]
    generic = make_search("react", {"percentile": [80]}, guard=False, n_bootstrap=50)
    assert isinstance(generic, HyperparameterSearch) and not isinstance(generic, SparsitySearch)
    assert generic.get_params()["guard"] is False and generic.n_bootstrap == 50


def test_run_search_equals_the_search_on_the_arrays(store):
    path, splits = store
    fs = open_store(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = run_search(make_search("react", {"percentile": [50, 90]}), fs, TrainingData(fs, "train"),
                         id_split="val", noise_splits=["a", "b"])
        ref = HyperparameterSearch("react", {"percentile": [50, 90]}).fit(
            splits["train"][0], head=fs.head, X_id=splits["val"][0], X_noise=[splits["a"], splits["b"]],
            y_id=splits["val"][1])
    for key in ("fpr95", "auroc", "fpr95_ci_low", "gap_ci_high"):
        np.testing.assert_allclose(got.cv_results_[key], ref.cv_results_[key])
    assert got.best_params_ == ref.best_params_


def test_tune_store_streams_the_training_mean_for_dice_and_reads_the_labels(store):
    path, splits = store
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = tune_store(path, id_split="val", noise_split="a", train="train")
        ref = SparsitySearch().fit(splits["train"][0], head=open_store(path).head, X_id=splits["val"][0],
                                   X_noise=splits["a"], y_id=splits["val"][1])
    np.testing.assert_allclose(got.mean_feature_, ref.mean_feature_)
    np.testing.assert_allclose(got.cv_results_["id_accuracy"], ref.cv_results_["id_accuracy"])
    assert got.dense_accuracy_ == ref.dense_accuracy_ is not None


def test_a_split_without_labels_warns_that_the_guard_is_skipped(store):
    path, _ = store
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = tune_store(path, id_split="bare", noise_split="a", train="train")
    skipped = [w for w in caught if issubclass(w.category, UnlabelledValidationWarning)]
    assert len(skipped) == 1 and "split 'bare' has no class labels" in str(skipped[0].message)
    assert s.dense_accuracy_ is None
    with warnings.catch_warnings(record=True) as caught:  # nothing to guard: no warning
        warnings.simplefilter("always")
        tune_store(path, id_split="bare", noise_split="a", method="odin", grid={"temperature": [1, 1000]})
    assert not [w for w in caught if issubclass(w.category, UnlabelledValidationWarning)]


@pytest.mark.parametrize(
    "args, message",
    [
        (("val", "val"), "split 'val' is given both as the ID validation split and as an OOD validation split"),
        (("val", ["a", "val"]), "given both as the ID validation split and as an OOD validation split"),
        (("val", ["a", "a"]), "validation split 'a' is given more than once"),
        (("val", []), "give at least one OOD validation split"),
        (("val", "a", ["test", "a"]), "split 'a' is both a validation split and a test split"),
        (("test", "a", ["test"]), "split 'test' is both a validation split and a test split"),
    ],
)
def test_check_validation_splits_refuses_overlaps(args, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        check_validation_splits(*args)


def test_check_validation_splits_returns_the_noise_list():
    assert check_validation_splits("val", "a") == ["a"]
    assert check_validation_splits("val", ("a", "b"), ["test"]) == ["a", "b"]


def test_tune_store_refuses_an_id_split_that_is_a_noise_split(store):
    with pytest.raises(ValueError, match="both as the ID validation split and as an OOD validation split"):
        tune_store(store[0], id_split="val", noise_split=["a", "val"], train="train")


def test_tune_store_reads_each_validation_split_once_in_blocks_and_never_whole(store, monkeypatch):
    """DICE's search scores every candidate block by block: one read of each validation
    split (the training mean is streamed too), none loaded into memory."""
    path, splits = store
    reads = []
    small_blocks(monkeypatch, reads)
    never_loaded(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = tune_store(path, id_split="val", noise_split=["a", "b"], train="train")
        fs = open_store(path)
        ref = SparsitySearch().fit(splits["train"][0], head=fs.head, X_id=splits["val"][0],
                                   X_noise=[splits["a"], splits["b"]], y_id=splits["val"][1])
    assert sorted(reads) == ["a/features", "b/features", "train/features", "val/features"]
    for key in ("fpr95", "auroc", "id_accuracy", "n_kept", "fpr95_ci_low", "gap_ci_high"):
        np.testing.assert_allclose(got.cv_results_[key], ref.cv_results_[key], rtol=1e-6)
    assert got.best_params_ == ref.best_params_


def test_search_report_renders_every_candidate_and_records_the_context_first(store):
    from skdice.workflows.tune import SearchReport
    import json

    path, _ = store
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = tune_store(path, id_split="val", noise_split="a", train="train", grid=[0.1, 0.5])
    report = SearchReport(search, noise="a", id_split="val", context={"store": "s.zarr"})
    lines = report.to_table().splitlines()
    assert lines[0].split()[:3] == ["p", "FPR95", "CI"] and set(lines[1]) <= {"-", " "}
    assert [line.split()[0].rstrip("*") for line in lines[2:4]] == ["0.1", "0.5"]
    assert f"{search.best_params_['p']:g}*" in lines[2 + search.best_index_]
    assert "metrics in % on ID validation 'val' vs OOD validation split 'a'" in report.to_table()
    data = json.loads(report.to_json())
    assert list(data)[:2] == ["store", "method"] and data["best_params"] == search.best_params_
    assert [row["p"] for row in data["results"]] == [0.1, 0.5]
