"""``skdice demo``: the whole pipeline on scikit-learn's bundled digits, no downloads.

The steps are the ones a user runs on a real model:

1. train a small classifier (an MLP, seeded and deterministic) on the digits
   0-5 of :func:`sklearn.datasets.load_digits`;
2. extract its penultimate features with the extraction stage
   (:func:`skdice.extract.run.extract_features` over in-memory
   :class:`~skdice.extract.data.ArraySource` data) into a Zarr feature store;
3. choose DICE's sparsity ``p`` on Gaussian noise with
   :class:`skdice.tuning.SparsitySearch` (Section 4.1 of the paper);
4. evaluate DICE against the dense energy score and other detectors of the
   catalogue on the held-out digits 6-9 (near OOD) and on three synthetic
   shifts of the ID test digits;
5. write the report and the four figures of :mod:`skdice.plotting`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DemoResult", "run_demo", "train_classifier", "DEMO_METHODS", "ID_CLASSES", "OOD_SPLITS"]

#: The digits the classifier is trained on; the others are the near-OOD set.
ID_CLASSES = (0, 1, 2, 3, 4, 5)
#: Detectors compared with DICE, in table order (those not in the catalogue are skipped).
DEMO_METHODS = ("energy", "msp", "maxlogit", "odin", "react", "knn", "mahalanobis")

# Pixel statistics of load_digits scaled to [0, 1]; the network sees
# standardised pixels, so "Gaussian noise" means N(0, 1) per pixel exactly as
# in the paper.
_PIXEL_MEAN = 0.305
_PIXEL_STD = 0.376

_MODEL_NAME = "digits-mlp"  # recorded in the store; the demo replaces only stores of this name
_N_TRAIN = 650  # of the 1,083 ID digits; then 200 validation, the rest test
_N_VAL = 200
_N_NOISE = 400
_EPOCHS = 30
_WIDTH = 64


@dataclass
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes
    ----------
    report : skdice.metrics.Report
        One block of rows per method (per OOD set and their average).
    best_p : float
        The sparsity chosen on Gaussian noise.
    search : skdice.tuning.SparsitySearch
        The fitted search (``cv_results_`` has every candidate).
    id_accuracy : dict
        ``{"original": ..., "dice": ...}`` accuracy in percent on the ID test
        digits, with the original head and with DICE's masked head.
    store : Path
        The feature store.
    files : dict
        Name to Path of everything written (``results.json``, ``results.md``,
        the four PNGs).
    """

    report: object
    best_p: float
    search: object
    id_accuracy: dict
    store: Path
    files: dict = field(default_factory=dict)

    def to_text(self) -> str:
        """The summary printed by ``skdice demo``.

        Returns
        -------
        str
        """
        acc = self.id_accuracy
        return "\n".join(
            [
                f"p chosen on Gaussian noise: {self.best_p:g}",
                f"ID accuracy (digits 0-5): {acc['original']:.2f}% original head, "
                f"{acc['dice']:.2f}% DICE-masked head",
                "",
                self.report.to_table(),
            ]
        )


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


def run_demo(
    out_dir,
    *,
    seed: int = 0,
    methods=DEMO_METHODS,
    echo: Callable[[str], None] | None = None,
    progress: bool = False,
) -> DemoResult:
    """Run the digits demo end to end and write its files under ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Output folder (created). Holds ``digits.zarr`` (the feature store),
        ``results.json``, ``results.md`` and the PNG figures. The store of an
        earlier demo run there is replaced; any other ``digits.zarr`` is
        refused (ValueError), never deleted.
    seed : int, default=0
        Seed of the data split, the synthetic OOD sets and the training.
    methods : sequence of str, default=DEMO_METHODS
        Detectors compared with DICE; names missing from the catalogue are
        skipped.
    echo : callable, default=None
        Called with a line of text at each step (the CLI passes ``typer.echo``).
    progress : bool, default=False
        Show the extraction progress bars.

    Returns
    -------
    DemoResult
    """
    import torch

    from skdice import available_detectors
    from skdice.evaluation import evaluate_store
    from skdice.plotting import plot_store
    from skdice.store import open_store
    from skdice.tuning import SparsitySearch

    from .data import ArraySource
    from .run import extract_features

    say = echo or (lambda line: None)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"the demo's output folder {out} exists and is not a folder.")
    out.mkdir(parents=True, exist_ok=True)
    store_path = out / "digits.zarr"
    if store_path.exists():
        _remove_previous_demo_store(store_path)

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
                device="cpu", progress=progress, model_name=_MODEL_NAME,
            )
    store = open_store(store_path)

    search = SparsitySearch().fit(
        store.features("train"), head=store.head,
        X_id=store.features("val"), X_noise=store.features("noise"),
    )
    best_p = search.best_params_["p"]
    say(f"SparsitySearch on Gaussian noise: p = {best_p:g} "
        f"(FPR95 on noise by p: "
        + ", ".join(f"{p:g}: {100 * f:.1f}%" for p, f in zip(search.cv_results_["param_p"], search.cv_results_["fpr95"]))
        + ")")

    catalogue = available_detectors()
    names = ["dice", *[m for m in methods if m != "dice" and m in catalogue]]
    evaluation = evaluate_store(store, "test", OOD_SPLITS, names, p=best_p, train="train")
    report = evaluation.report
    acc = evaluation.id_accuracy
    dice_acc = next(item["accuracy"] for item in acc["masked"] if item["method"] == "dice")
    id_accuracy = {"original": acc["original"], "dice": dice_acc}
    report.extra["tuning"] = {
        "grid": [float(p) for p in search.cv_results_["param_p"]],
        "fpr95_noise": [100.0 * float(f) for f in search.cv_results_["fpr95"]],
        "best_p": best_p,
    }

    say("writing figures")
    plots = plot_store(store, out, id_split="test", ood_splits=list(OOD_SPLITS),
                       train_split="train", p=best_p, class_index=0)
    result = DemoResult(report=report, best_p=best_p, search=search,
                        id_accuracy=id_accuracy, store=store_path)
    result.files = {k: plots[k] for k in ("histograms", "contributions", "p_sweep", "covariance")}
    (out / "results.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    (out / "results.md").write_text(
        "# skdice demo: digits 0-5 in distribution\n\n"
        + f"p chosen on Gaussian noise: {best_p:g}\n\n"
        + f"ID accuracy: {id_accuracy['original']:.2f}% (original head), "
        + f"{id_accuracy['dice']:.2f}% (DICE-masked head)\n\n"
        + report.to_markdown() + "\n"
    )
    result.files["results.json"] = out / "results.json"
    result.files["results.md"] = out / "results.md"
    return result


def _remove_previous_demo_store(path: Path) -> None:
    """Delete the store of an earlier demo run, and nothing else."""
    import shutil

    from skdice.exceptions import StoreError
    from skdice.store import open_store

    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()
        return
    try:
        model = open_store(path).model
    except StoreError:
        model = None
    if model != _MODEL_NAME:
        raise ValueError(
            f"{path} exists and is not a store written by `skdice demo`; the demo replaces its "
            "own store only: choose another --out."
        )
    shutil.rmtree(path)


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
