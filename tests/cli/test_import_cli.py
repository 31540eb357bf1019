"""``skdice import``: NumPy files from any framework into a store, then the other commands on it."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("typer")
pytest.importorskip("zarr")

from typer.testing import CliRunner  # noqa: E402

from skdice.cli.app import main  # noqa: E402

M, C = 16, 4


def run(args):
    with CliRunner().isolation() as (out, err, _):
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code
        return code, out.getvalue().decode(), err.getvalue().decode()


@pytest.fixture
def files(tmp_path):
    """A JAX-style export: features of three splits, labels, and the head as (C, m) in an .npz."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(M, C)).astype(np.float32)
    np.savez(tmp_path / "head.npz", kernel_t=W.T, bias=rng.normal(size=C).astype(np.float32))
    # OOD rows fire the units ID rows leave idle: the detectors can tell them apart
    idle = np.zeros(M, np.float32)
    idle[M // 2:] = 1
    for name, n, ood in (("train", 400, False), ("test", 200, False), ("noise", 200, True)):
        H = np.abs(rng.normal(size=(n, M))).astype(np.float32) * (1 - idle)
        if ood:
            H = H * 0.2 + 3 * idle * np.abs(rng.normal(size=(n, M)))
        np.save(tmp_path / f"{name}.npy", H.astype(np.float32))
        np.save(tmp_path / f"{name}_y.npy", rng.integers(0, C, n))
    return tmp_path


def _import(files, store, split, *extra):
    return run(["import", str(store), "--split", split, "--features", str(files / f"{split}.npy"), *extra])


def test_import_then_evaluate_and_verify_end_to_end(files):
    store = files / "jax.zarr"
    head = ["--weight", f"{files / 'head.npz'}:kernel_t", "--bias", f"{files / 'head.npz'}:bias",
            "--weight-layout", "classes-features", "--model", "my-jax-net"]
    code, out, err = _import(files, store, "train", "--labels", str(files / "train_y.npy"), *head)
    assert code == 0, err
    assert out.strip() == f"{store}: split 'train' complete, 400 rows of {M} features and {C} logits (imported)."
    assert _import(files, store, "test", "--labels", str(files / "test_y.npy"))[0] == 0
    assert _import(files, store, "noise")[0] == 0
    code, out, err = _import(files, store, "noise")  # again: already complete, nothing rewritten
    assert code == 0, err
    code, out, err = run(["evaluate", str(store), "--id", "test", "--ood", "noise", "--train", "train",
                          "--format", "json"])
    assert code == 0, err
    results = {(r["method"], r["ood"]): r for r in json.loads(out)["results"]}
    assert results["dice", "noise"]["auroc"] > 95  # the imported features and head, read as extracted ones
    assert ("energy", "noise") in results and json.loads(out)["id_accuracy"] is not None
    code, out, err = run(["verify", str(store)])
    assert code == 0 and "no damage found" in out, err


@pytest.mark.parametrize("extra, message", [
    ([], "is a new store: give its head (--weight W.npy --bias b.npy --weight-layout "
         "features-classes|classes-features) and --model NAME with its first split."),
    (["--weight", "W", "--model", "x"], "a weight needs its layout stated: --weight-layout features-classes "
                                        "(n_features, n_classes) or classes-features (n_classes, n_features)."),
    (["--weight", "W", "--weight-layout", "features-classes", "--model", "x"],
     f"as features-classes has {C} features, but the features have {M} (its shape is what "
     "--weight-layout classes-features describes)."),
    (["--bias", "B"], "--bias and --weight-layout describe a weight: give --weight too."),
])
def test_errors_name_the_flags(files, extra, message):
    extra = [str(files / "head.npz") + ":kernel_t" if a == "W" else str(files / "head.npz") + ":bias"
             if a == "B" else a for a in extra]
    code, out, err = _import(files, files / "new.zarr", "train", *extra)
    assert code == 1 and out == ""
    assert err.startswith("skdice: error: ") and err.strip().endswith(message), err
    assert len(err.strip().splitlines()) == 1 and not (files / "new.zarr").exists()


def test_another_model_name_is_refused_naming_the_flag(files):
    store = files / "s.zarr"
    _import(files, store, "train", "--weight", f"{files / 'head.npz'}:kernel_t", "--weight-layout",
            "classes-features", "--model", "a")
    code, _, err = _import(files, store, "test", "--model", "b")
    assert code == 1 and err.strip().endswith("holds features of model 'a', not 'b': import into another "
                                              "store, or leave --model out.")


def test_an_unknown_layout_is_a_usage_error(files):
    code, _, err = _import(files, files / "s.zarr", "train", "--weight-layout", "sideways")
    assert code == 2 and "'sideways' is not one of 'features-classes', 'classes-features'" in err


def test_given_logits_that_agree_with_the_head_are_stored_as_given(files):
    # a framework's own logits (its float32 GEMM) differ from skdice's product by rounding:
    # they are accepted and stored bit for bit, not recomputed
    store = files / "own.zarr"
    W = np.load(files / "head.npz")["kernel_t"].T
    b = np.load(files / "head.npz")["bias"]
    H = np.load(files / "test.npy")
    logits = (H.astype(np.float64) @ W + b).astype(np.float32)
    logits[0, 0] = np.nextafter(logits[0, 0], np.float32(np.inf))  # one ulp off the product
    np.save(files / "test_logits.npy", logits)
    code, _, err = _import(files, store, "test", "--logits", str(files / "test_logits.npy"),
                           "--weight", f"{files / 'head.npz'}:kernel_t", "--bias", f"{files / 'head.npz'}:bias",
                           "--weight-layout", "classes-features", "--model", "my-jax-net")
    assert code == 0, err
    from skdice.store import open_store

    np.testing.assert_array_equal(open_store(store).logits("test"), logits)
    code, out, err = run(["verify", str(store)])
    assert code == 0 and "no damage found" in out, out + err
