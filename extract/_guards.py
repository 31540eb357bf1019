"""Refusals at the source: what later reads would call damage is refused while extracting.

A label outside the head's classes, a non-finite feature or logit, a forward
that returns another number of rows than it was given, and images of several
sizes in one batch are each one line naming the cause and the fix (raised as
:class:`ValueError`), before the chunk holding them is written and before the
split is marked complete (docs/store.md, "Refused at extraction").
"""

from __future__ import annotations

import numpy as np

from skdice.exceptions import require

torch = require("torch", "extract")

__all__ = ["collate_rows", "check_classes", "check_batch"]


def _size(tensor) -> str:
    return "x".join(str(int(d)) for d in tensor.shape)


def collate_rows(batch):
    """The DataLoader's batch of ``(tensor, label, path)`` items, refusing inputs of several shapes.

    Parameters
    ----------
    batch : list of tuple (torch.Tensor, int, str)

    Returns
    -------
    tuple (torch.Tensor, torch.Tensor, list of str)
        Inputs stacked, labels (int64) and paths.

    Raises
    ------
    ValueError
        When two inputs of the batch differ in shape (images of several sizes
        with no resize in the preprocessing), naming both rows and the fix.
    """
    first = batch[0][0]
    for tensor, _label, path in batch[1:]:
        if tensor.shape != first.shape:
            raise ValueError(
                f"images of several sizes in one batch: {batch[0][2]} gives a {_size(first)} input but "
                f"{path} a {_size(tensor)} one, and the preprocessing does not resize them: give a size "
                "rule (--input-size SIZE resizes every image; in Python a preprocess that resizes) or "
                "--batch-size 1."
            )
    return torch.utils.data.default_collate(batch)


def check_classes(source, n_classes: int) -> None:
    """Refuse a source whose class folders outnumber the head's classes, before anything is written.

    Parameters
    ----------
    source : Source
        Its ``classes`` (class subfolder names), when it has any, are counted.
    n_classes : int
        C, the head's outputs.

    Raises
    ------
    ValueError
        When the labels of the source would lie outside ``[0, n_classes)``.
    """
    classes = getattr(source, "classes", None) or []
    if len(classes) > n_classes:
        raise ValueError(
            f"{source.description} has {len(classes)} class subfolders but the model's head has "
            f"{n_classes} classes, so labels {n_classes} to {len(classes) - 1} would lie outside it: "
            "extract it with the model trained on these classes, or, for out-of-distribution images, "
            "put them in one flat folder (labels -1)."
        )


def check_batch(n_inputs: int, features, logits, labels, paths, *, n_features: int, n_classes: int,
                amp: bool = False) -> None:
    """Refuse a batch whose rows a reader would call damage: wrong row count, non-finite values, bad labels.

    Parameters
    ----------
    n_inputs : int
        Rows given to the forward.
    features : ndarray of shape (n, m)
    logits : ndarray of shape (n, C)
    labels : ndarray of shape (n_inputs,)
    paths : list of str
        The rows' paths, to name the first bad row.
    n_features, n_classes : int
        m and C of the head.
    amp : bool, default=False
        Whether bf16 autocast ran (the fix then names it).

    Raises
    ------
    ValueError
        Naming the cause, the first row concerned and the fix.
    """
    if features.shape != (n_inputs, n_features) or logits.shape != (n_inputs, n_classes):
        raise ValueError(
            f"the model's forward returned {features.shape[0]} rows of {features.shape[1] if features.ndim > 1 else 0} "
            f"features and {logits.shape[0]} rows of logits for a batch of {n_inputs} inputs "
            f"(expected {n_inputs} rows of {n_features} features and {n_classes} logits): the forward must "
            "keep one row per input (no row dropped, repeated or merged); fix the model's forward."
        )
    for name, values in (("features", features), ("logits", logits)):
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            row = int(np.argmax(bad))
            hint = " or run without --amp" if amp else ""
            raise ValueError(
                f"the model gave non-finite {name} (NaN or infinity) for {int(bad.sum())} of {n_inputs} "
                f"rows of a batch, first {paths[row]}: fix the model (its weights, or the input "
                f"normalisation --mean/--std{hint}) and extract again into a new store (another --out)."
            )
    labels = np.asarray(labels)
    bad = (labels < -1) | (labels >= n_classes)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"{paths[row]} has label {int(labels[row])}, outside the model's {n_classes} classes "
            f"[0, {n_classes}) (or -1 for unknown): extract it with the model trained on these classes, "
            "or give data without labels (a flat folder, or labels -1)."
        )
