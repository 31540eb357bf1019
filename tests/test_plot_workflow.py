"""plot_store streams its splits: the figures' data equal the array functions on the whole
splits, each split is read a known number of times in blocks, and none is ever loaded whole."""

from __future__ import annotations

import numpy as np
import pytest

from skdice import DICEDetector, Head
from skdice.plotting import (
    contribution_covariance,
    histogram_data,
    p_sweep,
    plot_store,
    unit_contributions,
)
from stores import never_loaded, small_blocks, write_store

pytest.importorskip("matplotlib")

M, C = 16, 4
PS = (0.0, 0.5, 0.9)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(7)
    head = Head(rng.normal(size=(M, C)).astype(np.float32), 0.1 * rng.normal(size=C).astype(np.float32))
    # row counts that are no multiple of the 32-row blocks: the last block is short
    train = np.maximum(rng.normal(0.4, 1.0, (150, M)), 0).astype(np.float32)
    test = np.maximum(rng.normal(0.4, 1.0, (137, M)), 0).astype(np.float32)
    far = np.maximum(rng.normal(0.0, 1.6, (101, M)), 0).astype(np.float32)
    # a large common offset: moments summed as sum(x^2) - n mean^2 would lose every digit
    near = (1e3 + rng.normal(0.0, 1.0, (77, M))).astype(np.float32)
    labels = rng.integers(-1, C, size=len(test))  # some rows unlabelled (-1)
    splits = {"train": train, "id": (test, labels), "id_unlabelled": test, "far": far, "near": near}
    path = tmp_path_factory.mktemp("plot-stream") / "toy.zarr"
    write_store(path, head, splits, chunk_rows=32, logits=False)
    arrays = {k: v[0] if isinstance(v, tuple) else v for k, v in splits.items()}
    return path, head, arrays, labels


def _assert_same(got, want, where="data"):
    """Equal dicts of arrays and numbers, floats up to float32 scoring's rounding."""
    if isinstance(want, dict):
        assert list(got) == list(want), where
        for key in want:
            _assert_same(got[key], want[key], f"{where}[{key!r}]")
    elif want is None or isinstance(want, (bool, int, np.bool_)) or (
        isinstance(want, np.ndarray) and want.dtype.kind in "biu"
    ):
        np.testing.assert_array_equal(got, want, err_msg=where)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9, err_msg=where)


def _reference(head, arrays, id_split, chosen, class_index, p):
    """The figures' data by the array functions on the whole arrays."""
    mean = arrays["train"].astype(np.float64).mean(axis=0)
    X_id = arrays[id_split]
    ood = {name: arrays[name] for name in ("far", "near")}

    def fit(pp):
        return DICEDetector(p=pp).fit(head=head, train_mean=mean)

    panels = {}
    for label, det in (("energy (p=0)", fit(0.0)), (f"DICE (p={p:g})", fit(p))):
        panels[label] = histogram_data(det.score_samples(X_id),
                                       {k: det.score_samples(v) for k, v in ood.items()}, bins=50)
    kept = fit(p).mask_[:, class_index]
    return {
        "histograms": panels,
        "contributions": {k: unit_contributions(X_id[chosen], v, head.weight, class_index,
                                                train_mean=mean) for k, v in ood.items()},
        "p_sweep": p_sweep(X_id, ood, head, train_mean=mean, ps=PS),
        "covariance": {k: contribution_covariance(v, head.weight, class_index, train_mean=mean,
                                                  kept=kept) for k, v in ood.items()},
    }


def test_plot_reads_each_split_once_in_blocks_and_equals_the_array_functions(store, tmp_path,
                                                                             monkeypatch):
    path, head, arrays, labels = store
    reads = []
    small_blocks(monkeypatch, reads)
    never_loaded(monkeypatch)
    out = plot_store(path, tmp_path, id_split="id", ood_splits=["far", "near"],
                     train_split="train", p=0.5, ps=PS)
    # the default class is the most frequent label: the ID rows are known as they are read
    assert sorted(reads) == ["far/features", "id/features", "near/features", "train/features"]
    c = int(np.bincount(labels[labels >= 0], minlength=C).argmax())
    assert out["data"]["contributions"]["far"]["n_id"] == int((labels == c).sum())
    _assert_same(out["data"], _reference(head, arrays, "id", labels == c, c, 0.5))


def test_plot_without_labels_or_class_reads_the_id_split_twice(store, tmp_path, monkeypatch):
    """The class predicted most often is known only after the first pass over the ID split:
    a second pass collects its rows' moments; every other split is still read once."""
    path, head, arrays, _ = store
    reads = []
    small_blocks(monkeypatch, reads)
    never_loaded(monkeypatch)
    out = plot_store(path, tmp_path, id_split="id_unlabelled", ood_splits=["far", "near"],
                     train_split="train", p=0.9, ps=PS)
    assert sorted(reads) == ["far/features", "id_unlabelled/features", "id_unlabelled/features",
                             "near/features", "train/features"]
    predicted = head.logits(arrays["id_unlabelled"]).argmax(axis=1)
    c = int(np.bincount(predicted, minlength=C).argmax())
    _assert_same(out["data"], _reference(head, arrays, "id_unlabelled", predicted == c, c, 0.9))


def test_plot_with_a_class_and_no_labels_reads_the_id_split_once(store, tmp_path, monkeypatch):
    path, head, arrays, _ = store
    reads = []
    small_blocks(monkeypatch, reads)
    never_loaded(monkeypatch)
    mean_file = tmp_path / "mean.npy"
    np.save(mean_file, arrays["train"].astype(np.float64).mean(axis=0))
    predicted = head.logits(arrays["id_unlabelled"]).argmax(axis=1)
    c = int(np.bincount(predicted, minlength=C).argmin())  # a rare class: few ID rows
    if (predicted == c).sum() < 2:
        c = int(np.bincount(predicted, minlength=C).argmax())
    out = plot_store(path, tmp_path, id_split="id_unlabelled", ood_splits=["far", "near"],
                     train_mean=mean_file, p=0.5, ps=PS, class_index=c)
    assert sorted(reads) == ["far/features", "id_unlabelled/features", "near/features"]
    _assert_same(out["data"], _reference(head, arrays, "id_unlabelled", predicted == c, c, 0.5))


def test_plot_names_the_split_and_row_that_is_not_finite(tmp_path, monkeypatch):
    small_blocks(monkeypatch, [])  # row 70 is row 6 of the third block: renumbered
    rng = np.random.default_rng(1)
    head = Head(rng.normal(size=(M, C)), np.zeros(C))
    bad = np.abs(rng.normal(size=(100, M))).astype(np.float32)
    bad[70, 3] = np.nan
    write_store(tmp_path / "s.zarr", head, {"id": np.abs(rng.normal(size=(50, M))).astype(np.float32),
                                            "bad": bad}, chunk_rows=32, logits=False)
    with pytest.raises(ValueError, match=r"^split 'bad' of .*s\.zarr contains NaN or infinity "
                                         r"\(first at row 70\)"):
        plot_store(tmp_path / "s.zarr", tmp_path / "out", id_split="id", ood_splits=["bad"],
                   train_mean=np.ones(M), ps=(0.0, 0.5))
