"""The classifier head as one explicit value object."""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field

import numpy as np

from ._tensors import as_numpy

__all__ = ["Head", "LAYOUTS"]

#: How a weight is laid out: "paper" is (n_features, n_classes), "torch" is
#: nn.Linear's (n_classes, n_features).
LAYOUTS = ("paper", "torch")


def _as_float_array(value, name: str, ndim: int) -> np.ndarray:
    value = as_numpy(value)  # a torch tensor: detached, on the CPU, 16-bit floats widened
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}.")
    if arr.ndim != ndim:
        raise ValueError(
            f"{name} must be {ndim}-dimensional, got an array of shape {arr.shape}."
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}).")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} contains NaN or infinity (first at index {tuple(int(i) for i in bad)})."
        )
    return arr


@dataclass(frozen=True, eq=False)
class Head:
    """A linear classification head ``logits = H @ weight + bias``.

    The weight is stored in the paper's orientation, ``(n_features, n_classes)``.
    Use :meth:`from_torch` (or ``layout="torch"``) for PyTorch's ``nn.Linear``
    layout ``(n_classes, n_features)``: the orientation is always stated, never
    guessed. A square weight (``n_features == n_classes``) reads the same
    either way round, so only the stated layout tells them apart.

    Passing a ``Head`` to ``fit(..., head=...)`` also protects the weights from
    scikit-learn's ``GridSearchCV``, which slices every array-like fit
    parameter whose length equals the number of samples. A ``Head`` is not
    array-like, so it always arrives whole.

    Parameters
    ----------
    weight : array-like of shape (n_features, n_classes)
        Final-layer weight W in the paper's orientation.
    bias : array-like of shape (n_classes,), default=None
        Final-layer bias b; ``None`` means zeros.
    layout : {"paper", "torch"}, default="paper"
        How ``weight`` is laid out: ``"paper"`` is ``(n_features, n_classes)``,
        ``"torch"`` is ``nn.Linear.weight``'s ``(n_classes, n_features)``,
        stored transposed. Torch tensors (bfloat16, on a GPU, requiring grad)
        are read as they come.

    Attributes
    ----------
    weight : ndarray of shape (n_features, n_classes), float32
    bias : ndarray of shape (n_classes,), float32

    Examples
    --------
    >>> import numpy as np
    >>> from skdice import Head
    >>> head = Head.from_torch(np.ones((10, 4)), np.zeros(10))
    >>> head.weight.shape, head.n_features, head.n_classes
    ((4, 10), 4, 10)
    >>> Head(np.eye(3), layout="torch").n_classes
    3
    """

    weight: np.ndarray
    bias: np.ndarray | None = field(default=None)
    layout: InitVar[str] = "paper"

    def __post_init__(self, layout):
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be 'paper' (n_features, n_classes) or 'torch' "
                             f"(n_classes, n_features), got {layout!r}.")
        weight = _as_float_array(self.weight, "W", 2)
        if layout == "torch":
            weight = weight.T
        if self.bias is None:
            bias = np.zeros(weight.shape[1], dtype=np.float32)
        else:
            bias = _as_float_array(self.bias, "b", 1)
            if bias.shape[0] != weight.shape[1]:
                raise ValueError(
                    f"b has {bias.shape[0]} entries but W of shape {weight.shape} has "
                    f"{weight.shape[1]} classes (columns); W must be (n_features, n_classes)."
                )
        weight = np.array(weight, dtype=np.float32, copy=True)
        bias = np.array(bias, dtype=np.float32, copy=True)
        weight.setflags(write=False)
        bias.setflags(write=False)
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "bias", bias)

    @classmethod
    def from_torch(cls, weight, bias=None) -> "Head":
        """Build a head from PyTorch's ``nn.Linear`` layout, or from the layer itself.

        Parameters
        ----------
        weight : nn.Linear, or array-like or torch.Tensor of shape (n_classes, n_features)
            The layer (its ``weight`` and ``bias`` are read), or ``fc.weight``;
            a 1x1 convolution (or its ``(C, m, 1, 1)`` kernel) is also accepted.
        bias : array-like or torch.Tensor of shape (n_classes,), default=None
            ``fc.bias``; leave it out when ``weight`` is the layer.

        Returns
        -------
        Head

        Raises
        ------
        TypeError
            When a layer and a separate ``bias`` are both given.
        """
        if not hasattr(weight, "shape") and hasattr(weight, "weight"):  # the layer itself
            if bias is not None:
                raise TypeError(
                    f"Head.from_torch got the layer {type(weight).__name__} and a bias: pass "
                    "Head.from_torch(fc) or Head.from_torch(fc.weight, fc.bias), not both."
                )
            weight, bias = weight.weight, getattr(weight, "bias", None)
        weight = np.asarray(as_numpy(weight))
        if weight.ndim == 4 and weight.shape[2:] == (1, 1):
            weight = weight[:, :, 0, 0]
        if weight.ndim != 2:
            raise ValueError(
                f"a torch head weight must be (n_classes, n_features), got shape {weight.shape}."
            )
        return cls(weight.T, bias)

    @property
    def n_features(self) -> int:
        """Width of the penultimate feature, m."""
        return self.weight.shape[0]

    @property
    def n_classes(self) -> int:
        """Number of classes, C."""
        return self.weight.shape[1]

    def logits(self, H) -> np.ndarray:
        """Dense logits ``H @ weight + bias`` in float32.

        Parameters
        ----------
        H : array-like or torch.Tensor of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        H = np.asarray(as_numpy(H), dtype=np.float32)
        if H.ndim != 2 or H.shape[1] != self.n_features:
            raise ValueError(
                f"H must have shape (n_samples, {self.n_features}), got {H.shape}."
            )
        finite = np.isfinite(H).all(axis=1)
        if not finite.all():
            raise ValueError(
                f"H contains NaN or infinity (first at row {int(np.flatnonzero(~finite)[0])})."
            )
        return H @ self.weight + self.bias

    def __repr__(self) -> str:
        return f"Head(n_features={self.n_features}, n_classes={self.n_classes})"
