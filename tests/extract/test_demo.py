"""Tests of the digits demo: it runs end to end, deterministically, with the expected table."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from skdice import available_detectors  # noqa: E402
from skdice.extract.demo import OOD_SPLITS, SPLITS, extract_digits, train_classifier  # noqa: E402
from skdice.workflows.demo import DEMO_METHODS, run_demo  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    lines = []
    first = run_demo(tmp_path_factory.mktemp("demo_a"), echo=lines.append)
    second = run_demo(tmp_path_factory.mktemp("demo_b"))
    return first, second, lines


def test_demo_table_has_a_block_per_method_and_ood_set(two_runs):
    result, _, _ = two_runs
    expected_methods = ["dice", *[m for m in DEMO_METHODS if m in available_detectors()]]
    rows = [(r.method, r.ood) for r in result.report.rows]
    assert rows == [(m, o) for m in expected_methods for o in (*OOD_SPLITS, "average")]
    assert {"energy", "msp", "maxlogit"} <= {m for m, _ in rows}
    dice_rows = [r for r in result.report.rows if r.method == "dice"]
    assert all(r.p == result.best_p for r in dice_rows)
    for line in ("dice", "energy", "digits-6-9", "average", "FPR95"):
        assert line in result.to_text()


def test_demo_output_is_identical_across_runs(two_runs):
    first, second, _ = two_runs
    assert first.to_text() == second.to_text()
    assert first.files["results.json"].read_text() == second.files["results.json"].read_text()
    from skdice.store import open_store

    a, b = open_store(first.store), open_store(second.store)
    for split in ("train", "test", "noise", "digits-6-9"):
        np.testing.assert_array_equal(a.features(split), b.features(split))


def test_demo_doc_shows_what_the_demo_prints(two_runs):
    # docs/demo.md quotes the demo's output and reasons about its numbers: it
    # must change when the demo's numbers do.
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "demo.md").read_text()
    quoted = doc.split("## What it prints", 1)[1].split("```text\n", 1)[1].split("\n```", 1)[0]
    result, _, _ = two_runs
    assert quoted == result.to_text()


def test_demo_chooses_p_from_the_paper_grid_on_noise(two_runs):
    result, _, lines = two_runs
    assert result.best_p in (0.1, 0.3, 0.5, 0.7, 0.9, 0.99)
    grid = result.search.cv_results_["param_p"].tolist()
    assert grid == [0.1, 0.3, 0.5, 0.7, 0.9, 0.99]
    assert any(line.startswith("SparsitySearch on Gaussian noise: p = ") for line in lines)


def test_demo_classifier_is_accurate_and_dice_keeps_most_of_it(two_runs):
    result, _, _ = two_runs
    assert result.id_accuracy["original"] > 95.0
    assert result.id_accuracy["dice"] > 90.0


def test_demo_writes_results_and_valid_pngs(two_runs):
    from PIL import Image

    result, _, _ = two_runs
    data = json.loads(result.files["results.json"].read_text())
    assert {"results", "id_accuracy", "tuning"} <= set(data)
    assert data["tuning"]["best_p"] == result.best_p
    assert "| dice |" in result.files["results.md"].read_text()
    for key in ("histograms", "contributions", "p_sweep", "covariance"):
        path = result.files[key]
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(path) as img:
            assert img.size[0] > 100 and img.size[1] > 100


def test_demo_store_records_the_trained_head(two_runs):
    from skdice.store import open_store

    result, _, _ = two_runs
    store = open_store(result.store)
    assert store.model == "digits-mlp"
    assert set(OOD_SPLITS) | {"train", "val", "test", "noise"} == set(store.splits)
    assert store.head.weight.shape == (64, 6)
    # each split names where it came from (shown by `skdice info`)
    assert store.split_info("digits-6-9")["source"] == "array:digits-demo:digits-6-9"
    assert store.paths("test")[0] == "digits-demo:test#0"
    # the stored logits are the head applied to the stored features
    X = store.features("test")
    np.testing.assert_allclose(store.logits("test"), store.head.logits(X), rtol=1e-4, atol=1e-4)


def test_train_classifier_is_seeded():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 8, 8)).astype(np.float32)
    y = np.arange(40) % 3
    a = train_classifier(X, y, seed=1, epochs=2)
    b = train_classifier(X, y, seed=1, epochs=2)
    c = train_classifier(X, y, seed=2, epochs=2)
    wa, wb, wc = (m[-1].weight.detach().numpy() for m in (a, b, c))
    np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(wa, wc)
    assert not a.training


def test_demo_refuses_a_file_as_output_folder(tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        run_demo(target)


def test_demo_never_deletes_a_digits_zarr_it_did_not_write(tmp_path):
    import numpy as np

    from skdice import Head
    from stores import write_store

    write_store(tmp_path / "digits.zarr", Head(np.ones((3, 2)), np.zeros(2)), {}, model="my-model")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "digits.zarr").mkdir()
    (tmp_path / "other" / "digits.zarr" / "notes.txt").write_text("mine")
    for out in (tmp_path, tmp_path / "other"):
        with pytest.raises(ValueError, match="is not a store written by `skdice demo`; .*choose another out_dir"):
            run_demo(out)
    assert (tmp_path / "digits.zarr" / "zarr.json").is_file()
    assert (tmp_path / "other" / "digits.zarr" / "notes.txt").read_text() == "mine"


def test_demo_replaces_its_own_store(two_runs, tmp_path):
    import shutil

    from skdice.store import open_store

    result, _, _ = two_runs
    shutil.copytree(result.store, tmp_path / "digits.zarr")  # an earlier run's store
    (tmp_path / "digits.zarr" / "stale").mkdir()
    again = run_demo(tmp_path, methods=("energy",))
    assert open_store(again.store).model == "digits-mlp"
    assert not (tmp_path / "digits.zarr" / "stale").exists()
    assert [r.method for r in again.report.rows][-1] == "energy"


def test_extract_digits_writes_every_split_of_the_demo_model(two_runs, tmp_path):
    from skdice.store import open_store

    lines, calls = [], []
    path = extract_digits(tmp_path / "d.zarr", echo=lines.append, progress=lambda done, total: calls.append(total))
    store = open_store(path)
    assert store.model == "digits-mlp" and set(store.splits) == set(SPLITS)
    assert lines[0].startswith("training an MLP on digits 0-5 (650 images")
    assert sorted(set(calls)) == sorted({store.split_info(s)["count"] for s in SPLITS})
    # the demo's workflow reads the very features this step writes
    np.testing.assert_array_equal(store.features("test"), open_store(two_runs[0].store).features("test"))


@pytest.mark.parametrize("name", ["run_demo", "DemoResult", "DEMO_METHODS"])
def test_demo_names_moved_to_the_workflows_say_where_they_went(name):
    import skdice.extract.demo

    with pytest.raises(AttributeError, match=f"skdice.extract.demo.{name} moved to skdice.workflows.demo.{name}"):
        getattr(skdice.extract.demo, name)
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        skdice.extract.demo.nothing


def test_demo_says_why_p_is_what_it_is(two_runs):
    # noise alone cannot move p (the search's rule), and the default 0.9 fails the
    # accuracy guard on this 64-unit MLP: the summary says both, with the guard's figures
    result, _, _ = two_runs
    search = result.search
    assert not search.informative_ and result.best_p == 0.7
    accuracy = search.cv_results_["id_accuracy"][search.cv_results_["param_p"].tolist().index(0.9)]
    assert search.dense_accuracy_ - accuracy > search.max_accuracy_drop
    assert result.p_reason == (
        f"validation cannot choose ({search.informative_reason_}); the default p = 0.9 keeps "
        f"{100 * accuracy:.1f}% ID validation accuracy against {100 * search.dense_accuracy_:.1f}% dense "
        "(the guard allows a drop of 5 points), so the nearest p within it")
    assert result.to_text().splitlines()[0] == f"p = 0.7: {result.p_reason}"


def test_search_reason_of_an_informative_search_is_validation_s_verdict():
    from types import SimpleNamespace

    from skdice.workflows.demo import p_line, search_reason

    search = SimpleNamespace(informative_=True, informative_reason_="jigsaw and tin agree")
    assert search_reason(search) == "chosen on validation (jigsaw and tin agree)"
    assert p_line(0.5, "") == "p = 0.5"
