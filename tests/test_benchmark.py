"""``benchmark_stores`` (skdice/workflows/benchmark.py) on two small synthetic stores standing for two runs."""

from __future__ import annotations

import inspect
import json
import warnings

import numpy as np
import pytest

pytest.importorskip("zarr")

from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

import skdice.workflows.benchmark as bm
from benchmark_toy import TOY_PROTOCOL, toy_store
from skdice.store import open_store
from skdice.workflows._cells import METRICS, resample_rows
from skdice.workflows._protocol import ProtocolError, load_protocol
from skdice.workflows.benchmark import benchmark_stores, split_fingerprint
from stores import never_loaded, small_blocks, write_store

METHODS = ["dice", "energy", "react"]
NEAR, FAR = ("near_a", "near_b"), ("far_a", "far_b")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    stores = [toy_store(root / f"run{s}.zarr", s) for s in (0, 1)]
    protocol = root / "toy.toml"
    protocol.write_text(TOY_PROTOCOL)
    return root, stores, protocol


@pytest.fixture(scope="module")
def result(setup):
    _, stores, protocol = setup
    with warnings.catch_warnings():  # tuning on 40 validation rows: some searches may not choose
        warnings.simplefilter("ignore")
        return benchmark_stores(stores, protocol, METHODS)


@pytest.fixture(scope="module")
def full(setup):
    _, stores, protocol = setup
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return benchmark_stores(stores, protocol, METHODS, full_spectrum=True)


def _sk_metrics(s_id, s_ood, tpr=0.95):
    """FPR at ``tpr`` (ID positive), AUROC, AUPR-In, AUPR-Out in percent, from scikit-learn alone."""
    y = np.r_[np.ones(len(s_id)), np.zeros(len(s_ood))]
    s = np.r_[s_id, s_ood]
    fpr, tpr_curve, _ = roc_curve(y, s, drop_intermediate=False)
    fpr95 = fpr[np.searchsorted(tpr_curve, tpr, side="left")]
    return 100 * np.array([fpr95, roc_auc_score(y, s), average_precision_score(y, s),
                           average_precision_score(1 - y, -s)])


def _row(res, method, ood):
    (row,) = [r for r in res.rows(method) if r["ood"] == ood]
    return row


def test_rows_per_set_then_group_then_overall(result):
    assert [r["ood"] for r in result.rows("dice")] == [*NEAR, "near", *FAR, "far", "overall"]
    assert [r["group"] for r in result.rows("dice")] == ["near"] * 3 + ["far"] * 3 + ["overall"]
    assert result.methods == METHODS and len(result.rows()) == 7 * len(METHODS)
    for row in result.rows():
        for key in METRICS:
            assert {key, f"{key}_std", f"{key}_ci_low", f"{key}_ci_high"} <= set(row)


def test_scores_are_the_fitted_detectors_scores_of_the_stores_rows(result, setup):
    _, stores, _ = setup
    for s, store in enumerate(stores):
        fs = open_store(store)
        detector = result.evaluations[s].detectors["energy"]
        for split in ("test", "near_b", "shift"):
            np.testing.assert_allclose(result.scores[s]["energy"][split],
                                       detector.score_samples(fs.features(split)), rtol=1e-6)


def test_group_rows_are_the_mean_of_their_sets_by_hand(result):
    for method in METHODS:
        per_set = {split: np.stack([_sk_metrics(run[method]["test"], run[method][split]) for run in result.scores],
                                   axis=1) for split in (*NEAR, *FAR)}
        for ood, sets in (("near", NEAR), ("far", FAR), ("overall", (*NEAR, *FAR))):
            hand = np.mean([per_set[s] for s in sets], axis=0)  # (4 metrics, 2 stores)
            row = _row(result, method, ood)
            for i, key in enumerate(METRICS):
                np.testing.assert_allclose(row["per_store"][key], hand[i], rtol=1e-12)
                np.testing.assert_allclose(row[key], np.mean([_row(result, method, s)[key] for s in sets]),
                                           rtol=1e-12)


def test_mean_and_std_are_numpys_over_the_stores(result):
    for row in result.rows():
        for key in METRICS:
            values = np.asarray(row["per_store"][key])
            assert len(values) == 2
            assert row[key] == pytest.approx(np.mean(values), rel=1e-12, abs=1e-12)
            assert row[f"{key}_std"] == pytest.approx(np.std(values), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("method, ood", [("dice", "near_a"), ("energy", "far"), ("react", "overall")])
def test_intervals_match_scikit_learn_on_the_redrawn_resamples(result, method, ood):
    protocol = result.protocol
    sets = {"far": FAR, "near": NEAR, "overall": protocol.ood}.get(ood, (ood,))
    B, seed = protocol.n_bootstrap, protocol.seed
    reps = np.zeros((4, B))
    for s, run in enumerate(result.scores):
        s_id = run[method]["test"]
        for b in range(B):
            id_b = s_id[resample_rows(seed, s, 0, b, len(s_id))]
            for split in sets:
                j = protocol.ood.index(split)
                s_ood = run[method][split]
                ood_b = s_ood[resample_rows(seed, s, j + 1, b, len(s_ood))]
                reps[:, b] += _sk_metrics(id_b, ood_b) / len(sets) / len(result.scores)
    row = _row(result, method, ood)
    for i, key in enumerate(METRICS):
        low, high = np.quantile(reps[i], [0.025, 0.975])
        assert row[f"{key}_ci_low"] == pytest.approx(low, rel=1e-9, abs=1e-9)
        assert row[f"{key}_ci_high"] == pytest.approx(high, rel=1e-9, abs=1e-9)
        assert low <= row[key] + 1e-9 or high >= row[key] - 1e-9


def test_full_spectrum_counts_the_csid_rows_as_id(result, full):
    for method in METHODS:
        for ood in (*NEAR, "near", *FAR, "far", "overall"):
            before, after = _row(result, method, ood), _row(full, method, ood)
            assert after["auroc"] != before["auroc"]  # every OOD row changes: its ID set does
        for split in (*NEAR, *FAR):
            per_store = [
                _sk_metrics(np.r_[run[method]["test"], run[method]["shift"]], run[method][split])
                for run in full.scores
            ]
            np.testing.assert_allclose(_row(full, method, split)["auroc"], np.mean([m[1] for m in per_store]),
                                       rtol=1e-12)


def test_full_spectrum_keeps_the_accuracy_records_and_pools_acc(result, full):
    assert full.record["accuracy"] == result.record["accuracy"]
    acc = {(a["method"], a["split"]): a["per_store"] for a in full.record["accuracy"]}
    for method in METHODS:
        pooled = [(60 * i + 50 * c) / 110 for i, c in zip(acc[(method, "test")], acc[(method, "shift")])]
        assert _row(full, method, "near")["acc"] == pytest.approx(np.mean(pooled), rel=1e-12)
        assert _row(result, method, "near")["acc"] == pytest.approx(np.mean(acc[(method, "test")]), rel=1e-12)


def test_full_spectrum_without_csid_changes_nothing(setup, tmp_path):
    _, stores, _ = setup
    plain = tmp_path / "plain.toml"
    plain.write_text('name = "plain"\n[id]\ntest = "test"\n[ood]\nnear = ["near_a"]\nfar = ["far_a"]\n'
                     '[metrics]\nn_bootstrap = 20\n')
    a = benchmark_stores(stores, plain, ["energy"]).to_dict()
    b = benchmark_stores(stores, plain, ["energy"], full_spectrum=True).to_dict()
    assert a.pop("full_spectrum") is False and b.pop("full_spectrum") is True
    assert a == b


@pytest.mark.parametrize("split", ["test", "shift"])
def test_id_and_csid_accuracy_is_each_classifiers_share_right(result, setup, split):
    _, stores, _ = setup
    for s, store in enumerate(stores):
        fs = open_store(store)
        X, y = fs.features(split), fs.labels(split)
        head = (X @ fs.head.weight + fs.head.bias).argmax(1)
        detectors = dict(zip(METHODS, result.evaluations[s].detectors.values()))  # evaluate's keys carry tuned values
        acc = {(a["method"], a["split"]): a["per_store"][s] for a in result.record["accuracy"]}
        assert acc[(None, split)] == pytest.approx(100 * np.mean(head == y))
        assert acc[("energy", split)] == pytest.approx(100 * np.mean(head == y))
        for method in ("dice", "react"):  # a masked head, and clipped features through the dense head
            assert acc[(method, split)] == pytest.approx(100 * np.mean(detectors[method].predict_class(X) == y))


def test_each_test_split_is_read_once_for_all_methods(setup, tmp_path, monkeypatch):
    _, stores, _ = setup
    plain = tmp_path / "plain.toml"
    plain.write_text('name = "plain"\n[id]\ntest = "test"\n[ood]\nnear = ["near_a", "near_b"]\nfar = ["far_a"]\n'
                     '[csid]\ntest = ["shift"]\n[metrics]\nn_bootstrap = 0\n')
    reads = []
    small_blocks(monkeypatch, reads)
    never_loaded(monkeypatch)
    benchmark_stores(stores[:1], plain, ["energy", "msp", "maxlogit"])
    splits = [path.split("/")[-2] for path in reads]
    assert sorted(splits) == ["far_a", "near_a", "near_b", "shift", "test"]


def test_tuning_goes_through_evaluate_stores_search(setup, monkeypatch):
    _, stores, protocol = setup
    calls = []
    real = bm.evaluate_store

    def recorder(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(bm, "evaluate_store", recorder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = benchmark_stores(stores[:1], protocol, ["dice"], n_bootstrap=0)
    (call,) = calls
    if "tune_ood" in inspect.signature(bm.evaluate_store).parameters:  # real and synthetic sets told apart
        assert call["tune_ood"] == ["oodval"] and call["tune_noise"] == []
    else:
        assert call["tune_noise"] == ["oodval"]
    assert call["tune_id"] == "val"
    assert call["tune_metric"] == "fpr95" and call["random_state"] == 0 and call["train"] == "train"
    tuned = res.record["stores"][0]["methods"]["dice"]
    assert set(tuned["tuned"]["params"]) == {"p"} and tuned["params"]["p"] == tuned["tuned"]["params"]["p"]


def test_the_record_says_how_to_run_it_again(result, setup):
    _, stores, protocol = setup
    rec = result.record
    assert rec["protocol"] == {**load_protocol(protocol).to_dict(), "source": str(protocol)}
    assert rec["skdice_version"] and rec["bootstrap"]["seed"] == 0 and rec["bootstrap"]["n_resamples"] == 40
    assert [s["path"] for s in rec["stores"]] == [str(open_store(s).path.resolve()) for s in stores]
    for s, store in enumerate(stores):
        splits = rec["stores"][s]["splits"]
        assert set(splits) == {"test", "val", "oodval", *NEAR, *FAR, "shift", "train"}
        assert splits["test"]["fingerprint"] == split_fingerprint(open_store(store), "test")
        assert rec["stores"][s]["methods"]["react"]["params"]["percentile"] is not None
    assert rec["stores"][0]["splits"]["test"]["fingerprint"] != rec["stores"][1]["splits"]["test"]["fingerprint"]
    json.loads(result.to_json())


def test_fingerprint_follows_the_content_not_the_name(setup, tmp_path):
    _, stores, _ = setup
    fs = open_store(stores[0])
    X, y = fs.features("near_a"), fs.labels("near_a")
    copy = write_store(tmp_path / "copy.zarr", fs.head, {"renamed": (X, y), "other": (X[::-1].copy(), y)})
    copy = open_store(tmp_path / "copy.zarr")
    assert split_fingerprint(copy, "renamed") == split_fingerprint(fs, "near_a")
    assert split_fingerprint(copy, "other") != split_fingerprint(fs, "near_a")


def test_a_store_without_a_protocol_split_is_refused_before_any_fit(setup, tmp_path):
    _, stores, _ = setup
    other = tmp_path / "p.toml"
    other.write_text('name = "p"\n[id]\ntest = "test"\n[ood]\nnear = ["near_a"]\nfar = ["svhn"]\n')
    with pytest.raises(ProtocolError, match=r"has no split 'svhn' \(the protocol's ood.far\).*Extract or import it into the store"):
        benchmark_stores(stores, other, ["energy"])


@pytest.mark.parametrize("kwargs, words", [
    (dict(stores=[]), "give at least one store"),
    (dict(methods=[]), "give at least one method"),
    (dict(n_bootstrap=-1), r"n_bootstrap must be in \[0, 100000\], got -1"),
])
def test_argument_errors(setup, kwargs, words):
    _, stores, protocol = setup
    args = {"stores": stores, "methods": ["energy"], **kwargs}
    with pytest.raises(ValueError, match=words):
        benchmark_stores(args.pop("stores"), protocol, args.pop("methods"), **args)


def test_check_refuses_a_file_that_is_not_a_benchmark(tmp_path):
    (tmp_path / "r.json").write_text('{"results": []}')
    with pytest.raises(ProtocolError, match=r"is not a benchmark result.s JSON \(no \"skdice_benchmark\": "):
        bm.check_benchmark(tmp_path / "r.json")
    (tmp_path / "s.json").write_text("{")
    with pytest.raises(ProtocolError, match=r"s.json is not JSON"):
        bm.check_benchmark(tmp_path / "s.json")


def test_check_names_other_code_first(setup, tmp_path):
    _, stores, _ = setup
    plain = tmp_path / "plain.toml"
    plain.write_text('name = "plain"\n[id]\ntest = "test"\n[ood]\nnear = ["near_a"]\nfar = ["far_a"]\n'
                     '[metrics]\nn_bootstrap = 10\n')
    record = benchmark_stores(stores[:1], plain, ["energy"]).to_dict()
    assert record["skdice_source"] == bm.source_fingerprint() and record["skdice_source"].startswith("blake2b:")
    path = tmp_path / "r.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    same = bm.check_benchmark(path)
    assert same.identical and same.differences == []
    record["skdice_source"] = "blake2b:" + "0" * 32
    path.write_text(json.dumps(record, indent=2) + "\n")
    found = bm.check_benchmark(path)
    assert not found.identical and found.differences[0].startswith("skdice_source: 'blake2b:000")
