"""Features in memory: from a torch model and a DataLoader to arrays a detector fits, without a store.

The store path (:func:`skdice.extract.run.extract_features`) is for data sets
that are large, shared or extracted once for many runs; this is the short path
for a model and a loader already in hand, as pytorch-ood's and OpenOOD's users
expect (``Energy(model)``, ``.fit(loader)``)::

    from skdice import DICEDetector
    from skdice.extract.memory import features_in_memory

    train = features_in_memory(model, train_loader)
    det = DICEDetector(p=0.9).fit(train.features, head=train.head)
    scores = det.score_samples(features_in_memory(model, test_loader).features)

Memory is the features themselves (``n x m`` float32): fine for tens of
thousands of rows, the store for more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .hooked import HookedExtractor

__all__ = ["InMemoryFeatures", "features_in_memory"]


@dataclass(frozen=True)
class InMemoryFeatures:
    """Penultimate features, logits and labels of every row of a loader, with the model's head.

    Attributes
    ----------
    features : ndarray of shape (n_samples, n_features), float32
    logits : ndarray of shape (n_samples, n_classes), float32
        The unmodified head's output.
    labels : ndarray of shape (n_samples,), int64
        The loader's labels, -1 where a batch had none.
    head : skdice.Head
        The classifier head in the paper's orientation.
    """

    features: np.ndarray
    logits: np.ndarray
    labels: np.ndarray
    head: object


def _split_batch(batch):
    """``(inputs, labels or None)`` from what a DataLoader yields: a tensor, or a pair/list."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        labels = batch[1] if len(batch) > 1 and isinstance(batch[1], torch.Tensor) else None
        return batch[0], labels
    raise TypeError(
        "the loader must yield tensors or (inputs, labels, ...) tuples of tensors, got "
        f"{type(batch).__name__}."
    )


def features_in_memory(model, loader, *, head=None, device=None) -> InMemoryFeatures:
    """Run ``model`` over ``loader`` and keep its penultimate features, logits and labels in memory.

    The model is put in eval mode for the run (and back as it was after);
    features are the input of its head, captured by a forward hook
    (:class:`~skdice.extract.hooked.HookedExtractor`).

    Parameters
    ----------
    model : torch.nn.Module
        The classifier.
    loader : iterable
        A ``torch.utils.data.DataLoader`` (or any iterable) yielding input
        tensors, or ``(inputs, labels, ...)`` tuples.
    head : nn.Module or str, default=None
        The head, as a submodule or its dotted name; the last ``nn.Linear``
        (or 1x1 conv) by default.
    device : str or torch.device, default=None
        Where to run; the model's own device by default.

    Returns
    -------
    InMemoryFeatures

    Raises
    ------
    ValueError
        When the loader yields no rows, or the model gives NaN or infinity.
    TypeError
        When the loader yields something other than tensors.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> loader = DataLoader(TensorDataset(torch.randn(10, 5), torch.arange(10) % 3), batch_size=4)
    >>> got = features_in_memory(net, loader)
    >>> got.features.shape, got.logits.shape, got.labels.tolist()[:4]
    ((10, 8), (10, 3), [0, 1, 2, 0])
    """
    extractor = HookedExtractor(model, head)
    if device is None:
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    features, logits, labels = [], [], []
    try:
        for batch in loader:
            inputs, batch_labels = _split_batch(batch)
            h, z = extractor(inputs.to(device))
            features.append(h.to("cpu", torch.float32).numpy())
            logits.append(z.to("cpu", torch.float32).numpy())
            labels.append(np.full(len(inputs), -1, np.int64) if batch_labels is None
                          else batch_labels.to("cpu").numpy().astype(np.int64))
    finally:
        model.train(was_training)
    if not features:
        raise ValueError("the loader yielded no rows.")
    H, Z = np.concatenate(features), np.concatenate(logits)
    if not (np.isfinite(H).all() and np.isfinite(Z).all()):
        raise ValueError("the model gave NaN or infinity in its features or logits: fix the model "
                         "(or its input) before fitting a detector.")
    return InMemoryFeatures(H, Z, np.concatenate(labels), extractor.to_head())
