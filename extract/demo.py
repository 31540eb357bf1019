"""The extraction half of ``skdice demo``: the digits, a small classifier, its features in a store.

:func:`extract_digits` does what a user does with a real model before any
detector runs:

1. train a small classifier (an MLP, seeded and deterministic) on the digits
   0-5 of :func:`sklearn.datasets.load_digits`;
2. extract its penultimate features with the extraction stage
   (:func:`skdice.extract.run.extract_features` over in-memory
   :class:`~skdice.extract.data.ArraySource` data) into a Zarr feature store,
   one split per set of :data:`SPLITS`.

The rest of the demo (the p search, the evaluation, the figures) reads that
store: it is a workflow, :func:`skdice.workflows.demo.run_demo`. The names
``run_demo``, ``DemoResult`` and ``DEMO_METHODS`` that lived here moved there;
asking this module for one raises an AttributeError that says where.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["extract_digits", "train_classifier", "ID_CLASSES", "OOD_SPLITS", "SPLITS", "DEMO_MODEL_NAME"]

#: The digits the classifier is trained on; the others are the near-OOD set.
ID_CLASSES = (0, 1, 2, 3, 4, 5)
#: The model name recorded in the demo's store; the demo replaces only stores of this name.
DEMO_MODEL_NAME = "digits-mlp"

# Pixel statistics of load_digits scaled to [0, 1]; the network sees
# standardised pixels, so "Gaussian noise" means N(0, 1) per pixel exactly as
# in the paper.
_PIXEL_MEAN = 0.305
_PIXEL_STD = 0.376

_N_TRAIN = 650  # of the 1,083 ID digits; then 200 validation, the rest test
_N_VAL = 200
_N_NOISE = 400
_EPOCHS = 30
_WIDTH = 64

# moved to the workflows layer (skdice.workflows.demo). Not forwarded: a forward would be an
# import of the workflows by extract, the layer breach and cycle the move removes.
_MOVED = ("run_demo", "DemoResult", "DEMO_METHODS")


def __getattr__(name):
    if name in _MOVED:
        raise AttributeError(
            f"skdice.extract.demo.{name} moved to skdice.workflows.demo.{name} (the demo's workflow "
            f"belongs to the workflows layer): import it from there."
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _standardise(images):
    return ((images - _PIXEL_MEAN) / _PIXEL_STD).astype(np.float32)


def _digits_splits(seed: int) -> dict:
    """Named (images, labels) in standardised pixel space; labels -1 for OOD rows."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    is_id = np.isin(y, ID_CLASSES)
    order = rng.permutation(np.flatnonzero(is_id))
    train, val, test = np.split(order, [_N_TRAIN, _N_TRAIN + _N_VAL])
    test_images = X[test]
    permutation = rng.permutation(64)
    unknown = np.full(test.size, -1, dtype=np.int64)
    return {
        "train": (_standardise(X[train]), y[train]),
        "val": (_standardise(X[val]), y[val]),
        "test": (_standardise(test_images), y[test]),
        "noise": (rng.standard_normal((_N_NOISE, 8, 8)).astype(np.float32),
                  np.full(_N_NOISE, -1, dtype=np.int64)),
        # near OOD: the classes the model never saw
        "digits-6-9": (_standardise(X[~is_id]), np.full(int((~is_id).sum()), -1, dtype=np.int64)),
        # the ID test digits with their pixels shuffled by one fixed permutation
        "permuted": (_standardise(test_images.reshape(-1, 64)[:, permutation].reshape(-1, 8, 8)), unknown),
        # the ID test digits, ink and paper swapped
        "inverted": (_standardise(1.0 - test_images), unknown),
        "uniform": (_standardise(rng.random((test.size, 8, 8), dtype=np.float32)), unknown),
    }


#: Splits evaluated as OOD, in table order.
OOD_SPLITS = ("digits-6-9", "permuted", "inverted", "uniform")
#: Every split :func:`extract_digits` writes, in order.
SPLITS = ("train", "val", "test", "noise", *OOD_SPLITS)


def _build_model(n_classes: int):
    import torch
    from torch import nn

    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 128),
        nn.ReLU(),
        nn.Linear(128, _WIDTH),
        nn.ReLU(),
        nn.Linear(_WIDTH, n_classes),
    ).to(torch.float32)


def train_classifier(images, labels, *, seed: int = 0, epochs: int = _EPOCHS):
    """Train the demo's MLP on standardised 8 × 8 digits, deterministically.

    Parameters
    ----------
    images : ndarray of shape (n, 8, 8), float32
    labels : ndarray of shape (n,), int
        Class indices in ``[0, n_classes)``.
    seed : int, default=0
    epochs : int, default=30

    Returns
    -------
    torch.nn.Sequential
        The trained network in eval mode; its last layer is the head.
    """
    import torch

    n_classes = int(labels.max()) + 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _build_model(n_classes)
        generator = torch.Generator().manual_seed(seed)
        X = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(X.shape[0], generator=generator)
            for start in range(0, X.shape[0], 64):
                batch = perm[start : start + 64]
                optimiser.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(X[batch]), y[batch])
                loss.backward()
                optimiser.step()
    model.eval()
    return model


def extract_digits(
    store_path,
    *,
    seed: int = 0,
    echo: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
):
    """Train the demo's classifier and extract the features of every split of :data:`SPLITS`.

    Parameters
    ----------
    store_path : str or Path
        The feature store to write (created; it must not hold other splits of
        the same names written with other settings).
    seed : int, default=0
        Seed of the data split, the synthetic OOD sets and the training.
    echo : callable, default=None
        Called with a line of text at each step.
    progress : callable, default=None
        Called as ``progress(rows_done, rows_total)`` while each split is
        extracted (see :func:`skdice.extract.run.extract_features`).

    Returns
    -------
    pathlib.Path
        The store's folder, its model named :data:`DEMO_MODEL_NAME`.
    """
    import torch

    from .data import ArraySource
    from .run import extract_features

    say = echo or (lambda line: None)
    store_path = Path(store_path)
    splits = _digits_splits(seed)
    say(f"training an MLP on digits {ID_CLASSES[0]}-{ID_CLASSES[-1]} "
        f"({splits['train'][0].shape[0]} images, {_EPOCHS} epochs)")
    with _deterministic_torch():
        model = train_classifier(*splits["train"], seed=seed)
        say(f"extracting penultimate features of {len(splits)} splits into {store_path}")
        for name, (images, labels) in splits.items():
            # named, so `skdice info` and the row paths say where each split came from
            source = ArraySource(torch.from_numpy(images[:, None]), labels, name=f"digits-demo:{name}")
            extract_features(
                model, source, store_path, name, head=model[-1], batch_size=256,
                device="cpu", progress=progress, model_name=DEMO_MODEL_NAME,
            )
    return store_path


class _deterministic_torch:
    """Deterministic kernels for the duration of the block, restored afterwards."""

    def __enter__(self):
        import torch

        self._previous = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True)
        return self

    def __exit__(self, *exc):
        import torch

        torch.use_deterministic_algorithms(self._previous)
        return False
