"""The store's own API for the rest of skdice: block sources, widths, layouts, one package of names."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from skdice import Head
from skdice.exceptions import StoreError
from skdice.store import SplitFeatures, open_store

from stores import write_store

pytest.importorskip("zarr")

STORE = Path(__file__).resolve().parents[1] / "skdice" / "store"


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(0)
    head = Head(rng.normal(size=(6, 3)).astype(np.float32), np.zeros(3, np.float32))
    X = rng.normal(size=(100, 6)).astype(np.float32)
    write_store(tmp_path / "s.zarr", head, {"train": X}, chunk_rows=16)
    return open_store(tmp_path / "s.zarr"), X


def test_block_source_reads_the_split_again_on_every_pass(store):
    fs, X = store
    source = fs.block_source("train")
    assert isinstance(source, SplitFeatures)
    assert (len(source), source.shape, source.dtype) == (100, (100, 6), np.float32)
    assert source.name == f"split 'train' of {fs.path}"
    for _ in range(2):
        starts, blocks = zip(*source.iter_blocks())
        np.testing.assert_array_equal(np.concatenate(blocks), X)
        assert starts[0] == 0


def test_block_source_refuses_an_unknown_split(store):
    fs, _ = store
    with pytest.raises(StoreError, match="has no split 'trian': did you mean 'train'"):
        fs.block_source("trian")


def test_the_workflows_names_of_the_block_source_stay_importable():
    import skdice.store
    from skdice.workflows import resolve

    for name in ("SplitFeatures", "damaged_store_error", "explained_reads"):
        assert getattr(resolve, name) is getattr(skdice.store, name)


def test_widths_layout_and_split_group_are_public(store):
    fs, _ = store
    assert fs.widths() == (6, 3)
    layout = fs.layout("train")
    assert layout == {"count": 100, "chunk_rows": 16, "n_chunks": 7, "n_features": 6,
                      "n_classes": 3, "checksum": True}
    assert fs.layout("train", fs.split_group("train")) == layout
    assert "train" in dict(fs.group.groups())


def test_widths_refuse_damaged_root_attributes(store):
    fs, _ = store
    fs.attrs["n_features"] = 0
    with pytest.raises(StoreError, match="records n_features 0 and n_classes 3, not positive integers"):
        fs.widths()


def test_store_modules_share_no_private_name():
    """zarr.core's rule: private modules, public names inside them; no module reaches into another's privates."""
    crossings = []
    for path in sorted(STORE.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                crossings += [f"{path.name}: {a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in ("fs", "store") and node.attr.startswith("_"):
                crossings.append(f"{path.name}: {node.value.id}.{node.attr}")
    assert not crossings, crossings
