"""Every user error is one clear line on stderr and exit code 1; --debug adds the traceback."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("typer")
pytest.importorskip("zarr")

from typer.testing import CliRunner

from skdice import Head
from skdice.cli.app import main
from stores import write_store

M, C = 8, 3


def run(args: list[str]):
    """Run ``main`` (with its error mapping) inside CliRunner's isolation."""
    runner = CliRunner()
    with runner.isolation() as (out, err, _):
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code
        return code, out.getvalue().decode(), err.getvalue().decode()


def error_line(args, match):
    code, out, err = run(args)
    assert code == 1, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skdice: error: "), err
    assert "Traceback" not in err
    import re

    assert re.search(match, lines[0]), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("errors")
    path = root / "toy.zarr"
    rng = np.random.default_rng(0)
    head = Head(rng.normal(size=(M, C)))
    splits = {}
    for name, n in (("train", 40), ("id", 30), ("ood", 30), ("half", 40)):
        splits[name] = (np.maximum(rng.normal(1, 1, (n, M)), 0).astype(np.float32), np.zeros(n, int))
    write_store(path, head, splits, chunk_rows=16, incomplete=("half",))
    return path


EVAL = ["evaluate", "--id", "id", "--ood", "ood", "--method", "energy"]


def _eval(store, *extra):
    return [EVAL[0], str(store), *EVAL[1:], *extra]


# ------------------------------------------------------------------ stores
def test_missing_store(tmp_path):
    error_line(_eval(tmp_path / "absent.zarr"), r"feature store .*absent.zarr does not exist; create it by extracting features into it \(`skdice extract`")


def test_folder_that_is_not_a_store(tmp_path):
    error_line(_eval(tmp_path), r"is not a feature store \(no zarr.json\)")


def test_corrupt_store_metadata(tmp_path):
    bad = tmp_path / "bad.zarr"
    bad.mkdir()
    (bad / "zarr.json").write_text("{not json")
    error_line(_eval(bad), r"bad.zarr could not be opened as a Zarr group")


def test_corrupt_chunk(store, tmp_path):
    import shutil

    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    chunk = next(p for p in (copy / "id" / "features").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(b"garbage")
    error_line(_eval(copy), r"split 'id' of .*could not be read .*the store is damaged; .*re-run `skdice extract`")


def test_incomplete_split(store):
    error_line(
        ["evaluate", str(store), "--id", "id", "--ood", "half", "--method", "energy"],
        r"split 'half' .* is incomplete \(1 of 3 chunks written\).*re-run the same `skdice extract`",
    )


@pytest.mark.parametrize(
    "args",
    [
        ["evaluate", "{s}", "--id", "half", "--ood", "ood", "--method", "energy"],
        ["evaluate", "{s}", "--id", "id", "--ood", "ood", "--train", "half"],
        ["evaluate", "{s}", "--id", "id", "--ood", "ood", "--train", "half", "--method", "knn"],
        ["fit", "{s}", "--train", "half", "--out", "{tmp}/d.npz"],
        ["fit", "{s}", "--train", "half", "--method", "mahalanobis", "--out", "{tmp}/d.npz"],
        ["tune", "{s}", "--id", "half", "--noise", "ood", "--train", "train"],
        ["tune", "{s}", "--id", "id", "--noise", "half", "--train", "train"],
        ["tune", "{s}", "--id", "id", "--noise", "ood", "--train", "half"],
        ["plot", "{s}", "--id", "id", "--ood", "half", "--train", "train", "--out", "{tmp}"],
        ["plot", "{s}", "--id", "id", "--ood", "ood", "--train", "half", "--out", "{tmp}"],
    ],
    ids=lambda a: " ".join(x for x in a if not x.startswith("{")),
)
def test_every_reader_refuses_the_incomplete_split(store, tmp_path, args):
    args = [a.format(s=store, tmp=tmp_path) for a in args]
    error_line(args, r"split 'half' .* is incomplete .*re-run the same `skdice extract`")


def test_score_refuses_the_incomplete_split(store, tmp_path):
    code, _, err = run(["fit", str(store), "--train", "train", "--out", str(tmp_path / "d.npz")])
    assert code == 0, err
    error_line(["score", str(store), "--split", "half", "--detector", str(tmp_path / "d.npz")],
               r"split 'half' .* is incomplete .*re-run the same `skdice extract`")


def test_missing_split(store):
    error_line(
        ["evaluate", str(store), "--id", "id", "--ood", "svhn", "--method", "energy"],
        r"has no split 'svhn' \(splits: half, id, ood, train\)",
    )


def test_missing_split_in_score(store, tmp_path):
    code, _, err = run(["fit", str(store), "--train", "train", "--out", str(tmp_path / "d.npz")])
    assert code == 0, err
    error_line(["score", str(store), "--split", "nope", "--detector", str(tmp_path / "d.npz")],
               r"has no split 'nope'")


# ------------------------------------------------------------------ options
def test_p_out_of_range(store):
    error_line(_eval(store, "--method", "dice", "--p", "1.5", "--train", "train"),
               r"p must be in \[0, 1\), got 1.5\.$")


def test_p_given_in_percent_gets_a_hint(store):
    error_line(["fit", str(store), "--train", "train", "--p", "90", "--out", "x.npz"],
               r"got 90.0 \(p is a fraction: 0.9 for 90%\)")


def test_p_not_a_number_is_a_usage_error(store):
    code, _, err = run(_eval(store, "--p", "abc"))
    assert code == 2
    assert "Invalid value for '--p'" in err and "Traceback" not in err


def test_p_for_a_method_without_sparsity(store):
    error_line(_eval(store, "--p", "0.5"), r"none of the methods \(energy\) has a sparsity parameter p")


def test_unknown_method(store):
    error_line(_eval(store, "--method", "dcie"), r"unknown method 'dcie'; did you mean 'dice'\? choose from: .*dice")
    error_line(_eval(store, "--method", "zzz"), r"unknown method 'zzz'; choose from: .*dice")


def test_a_mistyped_split_gets_did_you_mean(store):
    error_line(
        ["evaluate", str(store), "--id", "id", "--ood", "odo", "--method", "energy"],
        r"has no split 'odo': did you mean 'ood'\? \(splits: half, id, ood, train\)$",
    )


def test_dice_without_training_data(store):
    error_line(["evaluate", str(store), "--id", "id", "--ood", "ood"],
               r"method 'dice' is fitted on in-distribution training features: pass --train SPLIT or --train-mean PATH")


def test_train_and_train_mean_together_are_accepted(store, tmp_path):
    # each method gets what it needs: the mean-based ones the mean, the others the split
    np.save(tmp_path / "m.npy", np.ones(M))
    code, _, err = run(_eval(store, "--train", "train", "--train-mean", str(tmp_path / "m.npy")))
    assert code == 0, err


def test_train_mean_of_another_model(store, tmp_path):
    np.save(tmp_path / "m.npy", np.ones(M + 2))
    error_line(["evaluate", str(store), "--id", "id", "--ood", "ood", "--train-mean", str(tmp_path / "m.npy")],
               rf"holds a mean of {M + 2} features but the store's head has {M}")


# ------------------------------------------------------------------ detectors
def test_file_that_is_not_a_saved_detector(store, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a detector")
    error_line(["score", str(store), "--split", "id", "--detector", str(text)],
               r"notes.txt is not a saved skdice detector: it is not an .npz archive")


def test_npz_that_is_not_a_saved_detector(store, tmp_path):
    np.savez(tmp_path / "arrays.npz", x=np.arange(3))
    error_line(["score", str(store), "--split", "id", "--detector", str(tmp_path / "arrays.npz")],
               r"arrays.npz is an .npz archive but not a saved skdice detector")


def test_missing_detector_file(store, tmp_path):
    error_line(["score", str(store), "--split", "id", "--detector", str(tmp_path / "gone.npz")],
               r"no saved detector at .*gone.npz: the file does not exist")


def test_detector_from_another_format_version(store, tmp_path):
    import json

    code, _, err = run(["fit", str(store), "--train", "train", "--out", str(tmp_path / "d.npz")])
    assert code == 0, err
    with np.load(tmp_path / "d.npz", allow_pickle=False) as archive:
        members = {k: archive[k] for k in archive.files}
    header = json.loads(members["__skdice__"].tobytes())
    header["format_version"] = 7
    members["__skdice__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(tmp_path / "d.npz", **members)
    error_line(["score", str(store), "--split", "id", "--detector", str(tmp_path / "d.npz")],
               r"saved in skdice detector format version 7 .*reads format version 1 only")


# ------------------------------------------------------------------ output paths
def test_fit_out_is_a_folder(store, tmp_path):
    error_line(["fit", str(store), "--train", "train", "--out", str(tmp_path)],
               r"cannot save the detector to .*: it is a folder; give a file name")


def test_fit_out_in_a_missing_folder(store, tmp_path):
    error_line(["fit", str(store), "--train", "train", "--out", str(tmp_path / "no" / "d.npz")],
               r"cannot save the detector to .*: the folder .*no does not exist")


def test_plot_out_is_a_file(store, tmp_path):
    pytest.importorskip("matplotlib")
    (tmp_path / "f").write_text("x")
    error_line(["plot", str(store), "--id", "id", "--ood", "ood", "--train", "train",
                "--out", str(tmp_path / "f")],
               r"the output folder .*f exists and is not a folder")


def test_file_system_refusals_are_one_line(store, tmp_path):
    pytest.importorskip("matplotlib")
    (tmp_path / "f").write_text("x")
    # a folder below a file: the operating system refuses, the CLI says so in one line
    error_line(["plot", str(store), "--id", "id", "--ood", "ood", "--train", "train",
                "--class", "0", "--out", str(tmp_path / "f" / "sub")],
               r"Not a directory|File exists")


def test_a_bug_keeps_its_traceback(store, monkeypatch):
    # Only user errors become one line; a KeyError from inside is a bug to report.
    import skdice.store

    def broken(path):
        raise KeyError("internal")

    monkeypatch.setattr(skdice.store, "open_store", broken)
    with pytest.raises(KeyError, match="internal"):
        main(["info", str(store)])


# ------------------------------------------------------------------ debug, entry points
def test_debug_shows_the_traceback(tmp_path):
    code, _, err = run(["--debug", *_eval(tmp_path / "absent.zarr")])
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert "StoreError" in err
    assert err.strip().splitlines()[-1].startswith("skdice: error: feature store")


def test_python_dash_m_skdice_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "skdice", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("skdice ")


def test_python_dash_m_error_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "skdice", *_eval(tmp_path / "absent.zarr")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("skdice: error: feature store")


def test_library_keywords_reach_the_user_as_flags():
    from skdice.cli.errors import COMMAND_FLAGS, in_flag_words

    # every command: the store's overwrite=True is --overwrite
    assert in_flag_words("exists: pass overwrite=True to replace it.") == "exists: pass --overwrite to replace it."
    assert in_flag_words("pass weights=FILE, or", COMMAND_FLAGS["extract"]) == "pass --weights FILE, or"
    # each command its own flags: the same library phrase, two commands' words
    message = ("give at least one OOD validation split: synthetic (noise_splits=[SPLIT, ...]) or real "
               "(ood_val_splits=[SPLIT, ...]).")
    assert in_flag_words(message, COMMAND_FLAGS["tune"]).endswith("(--noise SPLIT) or real (--ood-val SPLIT).")
    assert in_flag_words(message, COMMAND_FLAGS["evaluate"]).endswith(
        "(--tune-noise SPLIT) or real (--tune-ood SPLIT).")
    # a keyword no table names (a method spec's parameter) stays as written
    assert in_flag_words("pass threshold=... (the percentile needs X).", COMMAND_FLAGS["fit"]) == (
        "pass threshold=... (the percentile needs X)."
    )


def test_no_library_message_names_a_flag():
    """The library speaks in parameters; a `--flag` in a message string is the CLI's word in the core."""
    import ast
    import re
    from pathlib import Path

    import skdice

    flag = re.compile(r"--[a-z]")
    found = []
    for path in sorted(Path(skdice.__file__).parent.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.value) for node in ast.walk(tree)
                      if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
        found += [f"{path.name}:{node.lineno}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and id(node) not in docstrings and flag.search(node.value)]
    assert found == []


def test_a_preset_without_weights_is_told_the_flag(tmp_path):
    pytest.importorskip("torch")
    line = error_line(["extract", "--model", "densenet-bc-100", "--data", "noise:2", "--out",
                       str(tmp_path / "s.zarr"), "--split", "a"], r"needs its weights file: pass --weights FILE")
    assert "=" not in line.split("pass", 1)[1].split(",")[0]


def test_overwrite_is_named_as_a_flag(store, tmp_path):
    code, _, err = run(["fit", str(store), "--train", "train", "--out", str(tmp_path / "a.npz")])
    assert code == 0, err
    code, _, err = run(["fit", str(store), "--train", "train", "--out", str(tmp_path / "b.npz"), "--p", "0.5"])
    assert code == 0, err
    assert run(["score", str(store), "--split", "id", "--detector", str(tmp_path / "a.npz"), "--name", "s"])[0] == 0
    line = error_line(["score", str(store), "--split", "id", "--detector", str(tmp_path / "b.npz"), "--name", "s"],
                      r"pass --overwrite to replace it")
    assert "overwrite=True" not in line


def test_the_stores_remedies_read_as_extract_and_demo_flags():
    from skdice.cli.errors import COMMAND_FLAGS, in_flag_words

    extract = COMMAND_FLAGS["extract"]
    assert in_flag_words("x.zarr holds a head of other values: write to another store path.", extract) == (
        "x.zarr holds a head of other values: write to another --out.")
    assert in_flag_words("started with other settings: use another split name, or delete it", extract) == (
        "started with other settings: use another --split, or delete it")
    assert in_flag_words("the demo replaces its own store only: choose another out_dir.",
                         COMMAND_FLAGS["demo"]) == "the demo replaces its own store only: choose another --out."
    # Python users read the parameters' words
    assert in_flag_words("write to another store path.", COMMAND_FLAGS["evaluate"]) == "write to another store path."
