"""``skdice verify``, and damage as ``skdice info`` and ``skdice score`` report it."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("typer")
pytest.importorskip("zarr")

from typer.testing import CliRunner  # noqa: E402

import skdice.store  # noqa: E402
from skdice import DICEDetector, Head, save_detector  # noqa: E402
from skdice.cli.app import main  # noqa: E402
from stores import write_store  # noqa: E402

M, C = 8, 3


def run(args):
    with CliRunner().isolation() as (out, err, _):
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code
        return code, out.getvalue().decode(), err.getvalue().decode()


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(0)
    X = np.maximum(rng.normal(1, 1, (40, M)), 0).astype(np.float32)
    path = tmp_path / "toy.zarr"
    write_store(path, Head(rng.normal(size=(M, C))), {"id": (X, np.arange(40) % C), "ood": X * 2}, chunk_rows=16)
    return path


def _flip(file):
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0x01
    file.write_bytes(bytes(data))


def test_verify_of_a_sound_store_prints_a_summary_and_exits_0(store):
    code, out, err = run(["verify", str(store)])
    assert code == 0, err
    # head 2 chunks; per split features, logits, labels, paths 3 chunks each + 3 flags
    assert out.splitlines() == [f"verified {store}: 12 arrays, 32 chunks decoded, no damage found"]
    assert err == ""  # no terminal: no progress drawn


def test_verify_lists_each_problem_then_one_error_line_and_exits_1(store):
    (store / "id" / "features" / "c" / "1" / "0").unlink()
    _flip(store / "ood" / "labels" / "c" / "2")
    code, out, err = run(["verify", str(store)])
    assert code == 1 and out == ""
    assert err.splitlines() == [
        "split 'id': chunk 1 (rows 16 to 31) of features missing on disk",
        "split 'ood': chunk 2 (rows 32 to 39) of labels failed its crc32c checksum",
        f"skdice: error: {store} is damaged (2 problems, listed above): delete the folder {store / 'id'} and "
        f"re-run `skdice extract` for it; delete the folder {store / 'ood'} and re-run `skdice extract` for it.",
    ]


def test_verify_reports_progress_as_chunks_done_of_total(store, monkeypatch):
    seen = []
    real = skdice.store.verify_store

    def spy(path, progress=None):
        seen.append(progress)
        return real(path, progress=progress)

    monkeypatch.setattr(skdice.store, "verify_store", spy)
    from skdice.cli._console import Progress

    calls = []
    monkeypatch.setattr(Progress, "advance", lambda self, done, total: calls.append((done, total)))
    monkeypatch.setattr(Progress, "enabled", True, raising=False)
    assert run(["verify", str(store)])[0] == 0
    assert isinstance(seen[0], Progress)
    assert calls[0] == (0, 32) and calls[-1] == (32, 32)


def test_verify_of_something_that_is_not_a_store_is_one_line(tmp_path):
    code, out, err = run(["verify", str(tmp_path / "none.zarr")])
    assert code == 1 and err.count("\n") == 1 and err.startswith("skdice: error: feature store ")


def test_verify_of_a_truncated_root_zarr_json_names_the_file(store):
    meta = store / "zarr.json"
    meta.write_text(meta.read_text()[:30])
    code, _, err = run(["verify", str(store)])
    assert code == 1 and err.count("\n") == 1
    assert f"could not be opened as a Zarr group: {meta} is damaged (not valid JSON, truncated" in err


def _info_error(store, parts):
    return (
        f"skdice: error: {store} is damaged: {parts} (each `damaged:` line above says why and how to "
        f"repair it); `skdice verify {store}` decodes every chunk and lists all the damage.\n"
    )


def test_info_of_a_sound_store_exits_0_with_nothing_on_stderr(store):
    code, out, err = run(["info", str(store)])
    assert code == 0 and err == ""
    assert re.search(r"^\s+id\s+40\s+complete\s", out, re.M), out
    assert "damaged" not in out


def test_info_marks_a_damaged_split_says_why_and_exits_1(store):
    (store / "ood" / "logits" / "c" / "0" / "0").unlink()
    code, out, err = run(["info", str(store)])
    assert code == 1
    # the whole listing first, on stdout: the sound split too
    assert re.search(r"^\s+ood\s+40\s+DAMAGED\s", out, re.M), out
    assert re.search(r"^\s+id\s+40\s+complete\s", out, re.M), out
    assert out.rstrip().splitlines()[-1] == (
        f"damaged: split 'ood' in {store} is marked complete but 1 of the 3 chunks of logits are missing "
        f"on disk (a partial copy or deleted files): delete the folder {store / 'ood'} and re-run "
        "`skdice extract` for it."
    )
    assert err == _info_error(store, "split 'ood'")


def test_info_names_a_damaged_head_and_every_damaged_split(store):
    (store / "head" / "weight" / "c" / "0" / "0").unlink()
    (store / "id" / "features" / "c" / "2" / "0").unlink()
    (store / "ood" / "zarr.json").write_text("{")
    code, out, err = run(["info", str(store)])
    assert code == 1
    assert "head     DAMAGED (see below)" in out
    assert re.search(r"^\s+id\s+40\s+DAMAGED\s", out, re.M), out
    assert sum(line.startswith("damaged: ") for line in out.splitlines()) == 3
    assert err == _info_error(store, "the head, split 'id', split 'ood'")


def test_info_of_an_incomplete_split_exits_0_and_says_how_to_resume(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "toy.zarr"
    X = rng.random((40, M))
    write_store(path, Head(rng.normal(size=(M, C))), {"id": X, "ood": X}, chunk_rows=16, incomplete=("ood",))
    code, out, err = run(["info", str(path)])
    assert code == 0 and err == ""
    assert re.search(r"^\s+ood\s+40\s+INCOMPLETE \(1 of 3 chunks\)\s", out, re.M), out
    assert out.rstrip().splitlines()[-1] == "re-run the same `skdice extract` to resume an INCOMPLETE split."
    # an incomplete split beside a damaged one: only the damaged one is named
    (path / "id" / "paths" / "c" / "0").unlink()
    code, out, err = run(["info", str(path)])
    assert code == 1 and "INCOMPLETE (1 of 3 chunks)" in out
    assert err == _info_error(path, "split 'id'")


def test_info_reads_no_head_values(store, monkeypatch):
    # the head's shape comes from its checked metadata: a 21,843-class head is never loaded to print it
    monkeypatch.setattr(skdice.store.FeatureStore, "head", property(lambda self: pytest.fail("read the head")))
    code, out, _ = run(["info", str(store)])
    assert code == 0 and f"head     W ({M}, {C}) (features x classes), b ({C},)" in out


def test_score_name_with_a_path_is_refused_and_nothing_is_written_outside(store, tmp_path):
    from skdice.store import open_store

    det = DICEDetector(p=0.5).fit(open_store(store).features("id"), head=open_store(store).head)
    save_detector(det, tmp_path / "d.npz")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = run(["score", str(store), "--split", "id", "--detector", str(tmp_path / "d.npz"),
                        "--name", "../x"])
    assert code == 1
    assert err == "skdice: error: invalid score name '../x': no slashes, no control characters.\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_score_reruns_recompute_a_deleted_chunk(store, tmp_path):
    from skdice.store import open_store, read_scores

    det = DICEDetector(p=0.5).fit(open_store(store).features("id"), head=open_store(store).head)
    save_detector(det, tmp_path / "d.npz")
    args = ["score", str(store), "--split", "ood", "--detector", str(tmp_path / "d.npz")]
    assert run(args)[0] == 0
    reference = read_scores(store, "ood", "dice")
    (store / "ood" / "scores" / "dice" / "c" / "0").unlink()
    code, out, err = run(args)
    assert code == 0, err
    np.testing.assert_array_equal(read_scores(store, "ood", "dice"), reference)


def test_verify_of_a_store_without_manifests_says_so_and_exits_0(store):
    import json
    import shutil

    shutil.rmtree(store / "manifest")
    for split in ("id", "ood"):
        shutil.rmtree(store / split / "manifest")
        meta = json.loads((store / split / "zarr.json").read_text())
        meta["attributes"].pop("manifest")
        (store / split / "zarr.json").write_text(json.dumps(meta))
    code, out, err = run(["verify", str(store)])
    assert code == 0, err
    assert out.splitlines()[1] == (
        "no manifest: split 'id', split 'ood', the store (written before manifests by an older "
        "skdice: a valid chunk in the wrong place is not found; extract again to add one)"
    )


def test_verify_names_scores_without_a_manifest_and_moved_score_chunks(store):
    import zarr

    head = skdice.store.open_store(store).head
    X = skdice.store.open_store(store).features("id")
    det = DICEDetector(p=0.5).fit(X, head=head)
    from skdice.workflows.score import score_to_store

    score_to_store(store, "id", det, block_rows=16)
    arr = zarr.open_array(str(store / "id" / "scores" / "dice"), mode="r+")
    manifest = arr.attrs["manifest"]
    del arr.attrs["manifest"]
    code, out, err = run(["verify", str(store)])
    assert code == 0, err
    assert out.splitlines()[1] == (
        "no manifest: scores id/scores/dice (written before score manifests by an older skdice: a valid chunk "
        "in the wrong place is not found; score again with --overwrite to add one)")
    arr.attrs["manifest"] = manifest
    one, two = (store / "id" / "scores" / "dice" / "c" / "0"), (store / "id" / "scores" / "dice" / "c" / "1")
    a, b = one.read_bytes(), two.read_bytes()
    one.write_bytes(b), two.write_bytes(a)
    code, out, err = run(["verify", str(store)])
    assert code == 1 and out == ""
    assert err.splitlines()[0].startswith("scores id/scores/dice: chunk 0 (rows 0 to 15) does not match its digest "
                                          "in the scores' manifest")
    assert err.splitlines()[-1].endswith("re-run the same `skdice score` command (it recomputes the missing or "
                                         "damaged chunks).")
