"""Small synthetic stores and a protocol for the benchmark tests (tests/test_benchmark*.py, tests/cli/).

Two stores stand for two runs: the same head, rows drawn with other seeds.
Each holds a labelled training, ID test and ID validation split, an OOD
validation split, two near and two far OOD splits of different difficulty,
and a labelled covariate-shifted split (the ID classes with more noise).
"""

from __future__ import annotations

import numpy as np

from skdice import Head
from stores import write_store

M, C = 12, 3

TOY_PROTOCOL = """\
name = "toy"
[id]
test = "test"
val = "val"
train = "train"
[ood]
val = ["oodval"]
near = ["near_a", "near_b"]
far = ["far_a", "far_b"]
[csid]
test = ["shift"]
[metrics]
n_bootstrap = 40
"""

#: (split, rows, kind): "id" and "shift" are labelled, the rest -1
_SPLITS = (("train", 90, "id"), ("test", 60, "id"), ("val", 40, "id"), ("oodval", 40, "wide"),
           ("near_a", 50, "wide"), ("near_b", 45, "shifted"), ("far_a", 40, "low"), ("far_b", 35, "wide"),
           ("shift", 50, "shift"))


def toy_store(path, seed: int):
    """A store of the toy protocol's splits, rows drawn with ``seed`` (the head never changes)."""
    protos = np.random.default_rng(0).gamma(1.0, 1.0, size=(C, M))
    head = Head(protos.T - protos.T.mean(1, keepdims=True), np.zeros(C))
    rng = np.random.default_rng(seed)
    splits = {}
    for name, n, kind in _SPLITS:
        y = np.arange(n) % C if kind in ("id", "shift") else -np.ones(n, int)
        noise = {"id": 0.5, "shift": 1.2}.get(kind)
        if noise is not None:
            X = protos[y] + noise * rng.normal(size=(n, M))
        else:
            loc, scale = {"wide": (0.3, 1.5), "shifted": (0.5, 1.0), "low": (0.0, 0.4)}[kind]
            X = rng.normal(loc, scale, (n, M))
        splits[name] = (np.maximum(X, 0).astype(np.float32), y)
    write_store(path, head, splits, chunk_rows=32)
    return path
