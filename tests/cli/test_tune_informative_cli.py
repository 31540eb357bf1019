"""``skdice tune``: the verdict, the intervals, the guard, several noise splits, any method, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("typer")
pytest.importorskip("zarr")

from skdice import Head  # noqa: E402
from skdice.cli.app import main  # noqa: E402
from skdice.tuning import HyperparameterSearch, SparsitySearch, tune_store  # noqa: E402
from stores import write_store  # noqa: E402

def _splits(seed=0, m=24, C=4):
    """ID rows on half the units with a head that classifies them; noise on the other half."""
    rng = np.random.default_rng(seed)
    live = m // 2
    centres = np.zeros((C, m))
    centres[:, :live] = np.maximum(rng.normal(0, 1, (C, live)), 0) * 3
    centres[:, live:] = 0.05
    W = np.zeros((m, C))
    W[:live] = centres[:, :live].T / 3
    W[live:] = rng.normal(0, 1, (m - live, C))

    def id_rows(n):
        y = rng.integers(0, C, n)
        return (centres[y] + np.abs(rng.normal(0, 0.5, (n, m))) * (np.arange(m) < live)).astype(np.float32), y

    def noise(n, scale):
        X = np.abs(rng.normal(0, 0.5, (n, m)))
        X[:, live:] = np.abs(rng.normal(0, scale, (n, m - live)))
        return X.astype(np.float32)

    train, val, test = id_rows(200), id_rows(300), id_rows(100)
    splits = {
        "train": train, "val": val, "test": test,
        "val-unlabelled": val[0],
        "noise": noise(300, 1.0), "noise2": noise(200, 2.0),
        "real": noise(300, 1.0),  # another draw of the outliers, given as the real OOD set
        "inside": (1.5 * val[0]).astype(np.float32),  # scored above ID: uninformative
    }
    return splits, Head(W, np.zeros(C))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    splits, head = _splits()
    path = tmp_path_factory.mktemp("tune-informative") / "s.zarr"
    write_store(path, head, splits, chunk_rows=64)
    return path, head, splits


def _run(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def _tune(capsys, store, *extra):
    return _run(capsys, "tune", str(store[0]), "--train", "train", "--id", "val", *extra)


# ------------------------------------------------------------- the verdict
def test_json_has_informative_and_every_candidates_intervals(store, capsys):
    code, out, err = _tune(capsys, store, "--noise", "noise", "--ood-val", "real", "--grid", "0.1,0.3,0.5",
                           "--format", "json")
    assert code == 0 and err == ""  # informative: no warning
    data = json.loads(out)
    splits, head = store[2], store[1]
    ref = SparsitySearch(grid=[0.1, 0.3, 0.5]).fit(
        splits["train"][0], head=head, X_id=splits["val"][0], X_noise={"noise": splits["noise"]},
        X_ood={"real": splits["real"]}, y_id=splits["val"][1])
    assert data["informative"] is True and ref.informative_
    assert data["informative_reason"] == ref.informative_reason_
    assert data["validation_sets"] == [{"name": "noise", "kind": "synthetic"}, {"name": "real", "kind": "real"}]
    assert data["decided_by"] == {"set": ref.decided_by_, "kind": "synthetic" if ref.decided_by_ == "noise" else "real"}
    assert data["ood_val_splits"] == ["real"] and data["noise_splits"] == ["noise"]
    assert data["best_p"] == ref.best_params_["p"] and data["best_params"] == ref.best_params_
    res = ref.cv_results_
    for i, row in enumerate(data["results"]):
        assert row["p"] == row["params"]["p"] == res["params"][i]["p"]
        for key in ("fpr95", "auroc", "gap"):
            assert row[key] == pytest.approx(100 * res[key][i])
        for key in ("fpr95", "auroc", "gap"):
            assert row[f"{key}_ci"] == pytest.approx([100 * res[f"{key}_ci_low"][i], 100 * res[f"{key}_ci_high"][i]])
        assert row["worse"] == bool(res["worse"][i]) and row["separated"] == bool(res["separated"][i])
        assert row["beats_defaults"] == bool(res["beats_defaults"][i])
        assert row["id_accuracy"] == pytest.approx(100 * res["id_accuracy"][i])
        assert row["flagged"] == bool(res["flagged"][i]) and row["chosen"] == (i == ref.best_index_)
    assert data["guard"]["applied"] and data["guard"]["dense_accuracy"] == pytest.approx(100 * ref.dense_accuracy_)
    assert data["n_bootstrap"] == 200 and data["confidence"] == 0.95


@pytest.mark.parametrize("args, reason, decided_by", [
    # noise alone, however clearly it separates, never moves the defaults
    (["--noise", "noise"], "no real OOD validation set was given", None),
    (["--ood-val", "real"], "no synthetic outlier set was given", None),
])
def test_uninformative_validation_gives_one_warning_line_and_the_papers_p(store, capsys, args, reason, decided_by):
    code, out, err = _tune(capsys, store, *args, "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["informative"] is False and data["best_p"] == 0.9 and data["fallback_params"] == {"p": 0.9}
    lines = err.strip().splitlines()
    assert data["decided_by"] is decided_by
    assert len(lines) == 1
    assert lines[0].startswith(f"warning: validation cannot choose: {reason}")
    assert "returning the fallback p=0.9" in lines[0]


def test_table_shows_intervals_verdicts_the_guard_and_the_choice(store, capsys):
    code, out, err = _tune(capsys, store, "--noise", "noise", "--ood-val", "real")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["p", "FPR95", "CI", "AUROC", "CI", "AUPR-In", "AUPR-Out", "kept", "acc", "verdict",
                                "moves", "rank"]
    rows = [line.split() for line in lines[2:8]]
    ref = tune_store(store[0], id_split="val", noise_split="noise", ood_val_split="real", train="train")
    res = ref.cv_results_
    for i, row in enumerate(rows):
        assert row[2] == f"{100 * res['fpr95_ci_low'][i]:.2f}-{100 * res['fpr95_ci_high'][i]:.2f}"
        assert row[8] == f"{100 * res['id_accuracy'][i]:.2f}"
        verdict = ("flagged" if res["flagged"][i] else "best" if i == ref.leader_index_
                   else "worse" if res["worse"][i] else "tied")
        assert row[9] == verdict
        assert row[10] == ("defaults" if i == ref.fallback_index_ else "yes" if res["beats_defaults"][i] else "no")
    assert [r[0] for r in rows].count(f"{ref.best_params_['p']:g}*") == 1
    assert "validation sets: 'noise' (synthetic), 'real' (real); the defaults stay unless" in out
    assert any(line.startswith("ID accuracy of the dense head: ") and "5 points below" in line for line in lines)
    verdict = "yes" if ref.informative_ else "no"
    assert f"informative: {verdict} ({ref.informative_reason_})" in lines
    assert lines[-1].startswith(f"chosen: p = {ref.best_params_['p']:g} (FPR95 ")


def test_a_set_scored_above_id_confirms_no_move(store, capsys):
    code, out, err = _tune(capsys, store, "--noise", "inside", "--ood-val", "real", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["best_p"] == 0.9 and not any(r["beats_defaults"] for r in data["results"])
    assert data["decided_by"]["set"] in ("inside", "real")
    assert f"on {data['decided_by']['set']!r} (95% interval of the improvement" in data["informative_reason"]


# ---------------------------------------------------------------- the guard
def test_guard_flags_and_no_guard_only_reports(store, capsys):
    args = ("--noise", "noise", "--grid", "0.1,0.5,0.99", "--format", "json")
    _, out, _ = _tune(capsys, store, *args)
    _, out_off, _ = _tune(capsys, store, *args, "--no-guard")
    on, off = json.loads(out), json.loads(out_off)
    assert [r["flagged"] for r in on["results"]] == [False, False, True]
    assert on["best_p"] != 0.99 and off["best_p"] == 0.99
    assert off["guard"]["enforced"] is False and off["results"][2]["flagged"] is True
    _, out_loose, _ = _tune(capsys, store, *args, "--max-accuracy-drop", "100")
    assert not any(r["flagged"] for r in json.loads(out_loose)["results"])


def test_a_split_without_labels_skips_the_guard_with_one_warning_line(store, capsys):
    code, out, err = _run(capsys, "tune", str(store[0]), "--train", "train", "--id", "val-unlabelled",
                          "--noise", "noise", "--format", "json")
    assert code == 0
    warnings = [line for line in err.splitlines() if "class labels" in line]
    assert warnings == ["warning: split 'val-unlabelled' has no class labels (every row is -1): "
                        "the ID-accuracy guard is skipped."]
    assert json.loads(out)["guard"]["applied"] is False


# -------------------------------------------------------- several --noise
def test_several_noise_splits_are_averaged(store, capsys):
    _, both, _ = _tune(capsys, store, "--noise", "noise", "--noise", "noise2", "--format", "json")
    _, a, _ = _tune(capsys, store, "--noise", "noise", "--format", "json")
    _, b, _ = _tune(capsys, store, "--noise", "noise2", "--format", "json")
    both, a, b = json.loads(both), json.loads(a), json.loads(b)
    assert both["noise_splits"] == ["noise", "noise2"] and both["noise"] == "noise+noise2"
    for rb, ra, rr in zip(both["results"], a["results"], b["results"]):
        assert rb["fpr95"] == pytest.approx((ra["fpr95"] + rr["fpr95"]) / 2)
        assert rb["auroc"] == pytest.approx((ra["auroc"] + rr["auroc"]) / 2)


# --------------------------------------------------------- any method
def test_method_and_named_grids_reach_hyperparameter_search(store, capsys):
    code, out, err = _tune(capsys, store, "--noise", "noise", "--method", "dice-react",
                           "--grid", "p=0.1,0.5", "--grid", "percentile=80,99", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    splits, head = store[2], store[1]
    ref = HyperparameterSearch("dice-react", {"p": [0.1, 0.5], "percentile": [80, 99]}).fit(
        splits["train"][0], head=head, X_id=splits["val"][0], X_noise={"noise": splits["noise"]},
        y_id=splits["val"][1])
    assert data["method"] == "dice-react"
    assert [r["params"] for r in data["results"]] == ref.cv_results_["params"]
    assert data["best_params"] == ref.best_params_ and data["informative"] == ref.informative_
    assert data["best_p"] == ref.best_params_["p"]
    _, out, _ = _tune(capsys, store, "--noise", "noise", "--method", "odin", "--grid", "1,10,1000",
                      "--format", "json")
    assert [r["temperature"] for r in json.loads(out)["results"]] == [1, 10, 1000]
    assert json.loads(out)["best_p"] is None
    # head-only methods need no training data
    code, out, err = _run(capsys, "tune", str(store[0]), "--id", "val", "--noise", "noise", "--method", "scale")
    assert code == 0 and out.splitlines()[0].split()[0] == "percentile"


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "args, message",
    [
        (["--id", "val"], "give at least one OOD validation split: synthetic (--noise SPLIT) or real (--ood-val SPLIT)."),
        (["--id", "val", "--noise", "val"], "split 'val' is given both as the ID validation split and as an OOD validation split"),
        (["--id", "val", "--noise", "noise", "--noise", "noise"], "validation split 'noise' is given more than once"),
        (["--id", "val", "--noise", "noise", "--method", "react", "--grid", "percentile=90,150"],
         "grid value 150 of 'percentile' is out of range: The 'percentile' parameter of ReActDetector must be "
         "a float in the range [0.0, 100.0]"),
        (["--id", "val", "--noise", "noise", "--method", "react", "--grid", "clip=1,2"],
         "method 'react' has no parameter 'clip'"),
        (["--id", "val", "--noise", "noise", "--method", "dice-react", "--grid", "p=0.1", "--grid", "0.5"],
         "--grid: name every parameter"),
        (["--id", "val", "--noise", "noise", "--method", "nope"], "unknown --method 'nope'"),
        (["--id", "val", "--noise", "noise", "--method", "energy"], "method 'energy' declares no hyperparameter"),
        (["--id", "val", "--noise", "noise", "--max-accuracy-drop", "-1"], "--max-accuracy-drop must be in [0, 100]"),
    ],
)
def test_bad_input_is_one_line_in_flag_words(store, capsys, args, message):
    code, out, err = _run(capsys, "tune", str(store[0]), "--train", "train", *args)
    assert code == 1 and out == ""
    assert err.startswith("skdice: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_a_method_fitted_on_features_needs_train(store, capsys):
    code, _, err = _run(capsys, "tune", str(store[0]), "--id", "val", "--noise", "noise", "--method", "knn")
    assert code == 1 and "--method knn needs --train SPLIT" in err and len(err.strip().splitlines()) == 1
