"""LINe: leveraging important neurons (Ahn, Park and Kim, 2023)."""

from __future__ import annotations

import warnings
from numbers import Real

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.utils._param_validation import Interval

from .._base import BaseDetector
from .._numeric import compute_dtype, feature_blocks, logsumexp_rows, row_chunks, score_in_chunks
from .._selection import entry_percentile
from .._validation import raise_non_finite
from ..exceptions import DegenerateFitWarning

__all__ = ["LINeDetector"]


def class_codes(y, n_classes: int, detector: str) -> np.ndarray:
    """Class labels as column indices of the head, checked.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Integer class labels (integral floats are accepted).
    n_classes : int
        The head's number of classes.
    detector : str
        The detector's name, for the message.

    Returns
    -------
    ndarray of shape (n_samples,), int64

    Raises
    ------
    ValueError
        For labels that are not integers.

    Warns
    -----
    UserWarning
        For labels outside ``0 .. n_classes - 1``: those rows get the code
        -1, which :func:`class_means` leaves out.
    """
    y = np.asarray(y)
    if y.dtype.kind == "O":
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            pass  # refused below, by its dtype
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.array_equal(y, np.round(y)):
            raise ValueError(
                f"{detector} needs integer class labels y (the head's column of each row's "
                "class); got non-integral or non-finite values."
            )
    elif y.dtype.kind not in "iub":
        raise ValueError(
            f"{detector} needs integer class labels y (the head's column of each row's class); "
            f"got dtype {y.dtype}."
        )
    codes = y.astype(np.int64)
    outside = (codes < 0) | (codes >= n_classes)
    if outside.any():
        # an error would be kinder to 1-based labels, but scikit-learn's estimator
        # checks fit on labels the head has no column for; the warning says what happened
        warnings.warn(
            f"{detector}: {int(outside.sum())} fitting row(s) have class labels outside "
            f"0..{n_classes - 1} (the head's columns, 0-based) and are left out of the "
            "class means.",
            UserWarning,
            stacklevel=5,
        )
        codes = np.where(outside, -1, codes)
    return codes


def class_means(X, codes: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Float64 class means of the rows of ``X`` (zero for a class without rows) and the counts.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) or block source
    codes : ndarray of shape (n_samples,), int64
        Each row's class, in ``0 .. n_classes - 1``; rows coded -1 are left out.
    n_classes : int

    Returns
    -------
    means : ndarray of shape (n_classes, n_features), float64
    counts : ndarray of shape (n_classes,), int64
    """
    sums = np.zeros((n_classes, X.shape[1]), dtype=np.float64)
    for rows, block in feature_blocks(X, 8 * X.shape[1]):
        block = np.asarray(block, dtype=np.float64)
        kept = np.flatnonzero(codes[rows] >= 0)
        onehot = csr_matrix(
            (np.ones(kept.size), (codes[rows][kept], kept)), shape=(n_classes, block.shape[0])
        )
        sums += onehot @ block
    counts = np.bincount(codes[codes >= 0], minlength=n_classes)
    return sums / np.maximum(counts, 1)[:, None], counts


class LINeDetector(BaseDetector):
    """LINe: energy of a class-specific pruned head on clipped features.

    With ``h`` the penultimate feature, ``W`` the head (``n_features x
    n_classes``) and ``mu_c`` the mean training feature of class ``c``:

    1. **Shapley importance** (first-order Taylor, exact for a linear head):
       ``V[j, c] = mu_c[j] W[j, c]``, the mean over class ``c``'s training
       rows of ``h_j * d f_c / d h_j``.
    2. **Clip** (ReAct): ``h' = min(h, t)``.
    3. **Predicted class** ``c = argmax(W^T h' + b)`` (the dense head).
    4. **Activation pruning** for class ``c``: keep unit ``j`` when
       ``V[j, c] > percentile_j(V[:, c], 100 p_a)``.
    5. **Weight pruning** (DICE-style) for class ``c``: keep ``W[j, k]``
       when ``|V[j, c]| W[j, k] > percentile_{j,k}(|V[j, c]| W[j, k], 100
       p_w)`` (over all ``n_features x n_classes`` entries).
    6. ``S(x) = logsumexp_k(sum_j a_c[j] h'_j M_c[j, k] W[j, k] + b_k)``.

    Parameters
    ----------
    p_w : float, default=0.1
        Weight sparsity in [0, 1) (the authors' ``--p-w`` / 100); the
        authors' ImageNet setting (10; CIFAR-10 and CIFAR-100: 90).
    p_a : float, default=0.1
        Activation sparsity in [0, 1) (``--p-a`` / 100); the authors'
        ImageNet setting (10; CIFAR-10: 90, CIFAR-100: 10).
    percentile : float, default=90
        Percentile (0-100) of all fitting activations used as the clip
        ``t``, ReAct's rule (:class:`skdice.detectors.react.ReActDetector`).
    threshold : float or None, default=None
        Absolute clip, overriding ``percentile``: the authors' settings are
        1.0 (CIFAR-10, CIFAR-100) and 0.8 (ImageNet ResNet-50).
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.

    Attributes
    ----------
    threshold_ : float
        The clip ``t`` in use.
    class_means_ : ndarray of shape (n_classes, n_features), float64
        ``mu_c``, the mean unclipped fitting feature of each class (zero for
        a class without fitting rows, whose rows keep every unit and weight).
    contribution_ : ndarray of shape (n_features, n_classes), float64
        The importance ``V[j, c] = mu_c[j] W[j, c]``.
    activation_mask_ : ndarray of shape (n_features, n_classes), bool
        Column ``c``: the units kept for rows predicted as class ``c``.
    weight_thresholds_ : ndarray of shape (n_classes,), float64
        Entry ``c``: the ``100 p_w``-th percentile of ``|V[:, c]| * W``
        (``-inf`` at ``p_w = 0``); class ``c``'s head keeps the weights above it.
    weight_ : ndarray of shape (n_features, n_classes), float32
    bias_ : ndarray of shape (n_classes,), float32
    n_features_in_ : int
    offset_ : float
        The ``1 - tpr`` quantile of the fitting samples' scores.

    Notes
    -----
    The authors' code (``models/route.py``, ``RouteLUNCH``) builds the
    importance from per-sample first-order Taylor scores at the pooled
    feature, ``h * grad_h f_y`` for each training image's *label* ``y``,
    averaged per class (``get_LINE_info``): for a linear head that is
    ``mu_c ⊙ W[:, c]``, computed here from the class means (float64; the
    authors average float32 products in float64: the same up to float32
    rounding of each product). ``fit`` therefore needs the class labels
    ``y`` (integers indexing the head's columns). The features are the
    unclipped ones (``_forward`` has no clip); the clip applies at scoring
    (``forward_LINE``), before the predicted class is taken. Both masks use
    ``numpy.percentile`` (linear) and a strict ``>``, as the authors; as in
    DICE, ``p = 0`` keeps everything (the strict rule alone would drop the
    minimum). The score is the energy (``temperature * logsumexp(logits /
    temperature)`` at temperature 1, ``iterate_data_LINE``), the same sign as
    the authors' and as OpenOOD's energy-based scores (OpenOOD has no LINe).
    The authors' absolute clips are model-specific; the default takes
    ReAct's percentile of the fitting activations instead (pass
    ``threshold=`` for theirs).

    Each predicted class has its own masked head: the rows are grouped by
    class, and each class's head is built once per call of
    ``score_samples`` (once per chunk through the chunked paths: Dask, the
    store workflows, ``predict_class``), from the kept units only. The
    dense product for the predicted class comes on top of the masked one,
    so the scoring cost is about two products plus one masked head per class
    (docs/performance.md). A class without fitting rows has no importance
    (the authors' mean over no row is NaN, which prunes every unit and
    weight): its rows are scored by the clipped dense head, as ReAct, with
    a :class:`~skdice.exceptions.DegenerateFitWarning`. Not streamed: the statistics are class
    means, and the streaming protocol carries one mean feature.

    References
    ----------
    Y. H. Ahn, G.-M. Park and S. T. Kim. LINe: Out-of-distribution detection
    by leveraging important neurons. CVPR 2023 (official code,
    ``YongHyun-Ahn/LINe-Out-of-Distribution-Detection-by-Leveraging-Important-Neurons``).
    """

    name = "line"
    summary = "LINe: energy of a class-wise Shapley-pruned head on clipped features (Ahn et al., 2023)"
    #: the search grid (skdice.tuning.default_grid), 2-D: the authors' settings of
    #: p_w and p_a (10 and 90, CIFAR-10/100 and ImageNet) and the values between
    search_grid = {"p_w": (0.1, 0.3, 0.5, 0.7, 0.9), "p_a": (0.1, 0.3, 0.5, 0.7, 0.9)}

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "p_w": [Interval(Real, 0, 1, closed="left")],
        "p_a": [Interval(Real, 0, 1, closed="left")],
        "percentile": [Interval(Real, 0, 100, closed="both")],
        "threshold": [Real, None],
    }

    def __init__(self, p_w=0.1, p_a=0.1, *, percentile=90, threshold=None, tpr=0.95):
        self.p_w = p_w
        self.p_a = p_a
        self.percentile = percentile
        self.threshold = threshold
        self.tpr = tpr

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.detector_tags.requires_class_labels = True  # the class-wise importance
        tags.detector_tags.changes_classifier = True  # class-wise pruned heads on clipped features
        tags.detector_tags.fits_from_blocks = True  # an exact percentile and class means, over passes
        return tags

    # ------------------------------------------------------------------ fit
    def fit_statistics(self, X, y, head, train_mean):
        n_classes = head.n_classes
        codes = class_codes(y, n_classes, type(self).__name__)
        self.threshold_ = (
            float(self.threshold) if self.threshold is not None
            else float(entry_percentile(X, self.percentile))
        )
        means, counts = class_means(X, codes, n_classes)
        W64 = head.weight.astype(np.float64)
        V = means.T * W64
        self.class_means_ = means
        self.contribution_ = V
        self.activation_mask_ = _activation_mask(V, float(self.p_a))
        self.weight_thresholds_ = _weight_thresholds(V, W64, float(self.p_w))
        # each unit's weights in increasing order: the bounds of the class heads
        self._sorted_weight = np.sort(W64, axis=1)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            # no importance to prune by (the authors' mean over no row is NaN, which
            # prunes everything and scores every such row alike): the dense head
            self.activation_mask_[:, empty] = True
            self.weight_thresholds_[empty] = -np.inf
            warnings.warn(
                f"LINeDetector: class(es) {empty[:10].tolist()} have no fitting rows, so there is "
                "no importance to prune by: rows predicted as them are scored by the clipped "
                "dense head (ReAct); fit on rows of every class.",
                DegenerateFitWarning,
                stacklevel=4,
            )

    # -------------------------------------------------------------- scoring
    @property
    def block_width(self):
        return 2 * self.weight_.shape[1] + self.n_features_in_

    def _dense_classes(self, X):
        """The predicted class of each row: the dense head on the clipped features."""
        Z = np.minimum(X, X.dtype.type(self.threshold_)) @ self.weight_
        Z += self.bias_
        return Z.argmax(axis=1)

    def _class_head(self, c, weight, out=None):
        """Class ``c``'s pruned head at full width: ``weight`` where kept, 0 elsewhere.

        A unit's kept weights are those with ``|V[j, c]| W[j, k]`` above the
        class's threshold, which (``|V[j, c]| >= 0``, rounding monotone) are
        exactly the weights at or above the unit's least kept one: one
        comparison of the head with a bound per unit (``+inf`` for the
        class's inactive units and for units that keep nothing), written into
        ``out`` when given, so that scoring reuses one buffer for every class.
        Rows of inactive units are zero, which equals leaving them out of the
        product.
        """
        out = np.empty(weight.shape, dtype=weight.dtype) if out is None else out
        bound = self._unit_bounds(c).astype(weight.dtype)
        return np.multiply(weight, weight >= bound[:, None], out=out)

    def _unit_bounds(self, c):
        """Per unit, the least weight class ``c`` keeps (float64; ``+inf``: none, ``-inf``: all)."""
        n_units, n_classes = self.weight_.shape
        bound = np.full(n_units, np.inf)
        units = np.flatnonzero(self.activation_mask_[:, c])
        threshold = self.weight_thresholds_[c]
        if not np.isfinite(threshold):  # no weight pruning for this class
            bound[units] = -np.inf
            return bound
        # the first place in each unit's sorted weights where |V[j, c]| W > threshold
        # (float64, as the authors' float64 importance times the float32 weight)
        cut = _first_above(np.abs(self.contribution_[units, c]), self._sorted_weight, threshold, units)
        keeps = cut < n_classes
        bound[units[keeps]] = self._sorted_weight[units[keeps], cut[keeps]]
        return bound

    def _class_logits(self, X, classes, dtype):
        """Yield ``(rows, logits)``: each class's rows of ``X``, clipped, through its pruned head.

        Each class's head is built once, into one buffer shared by the classes.
        """
        n_classes = self.weight_.shape[1]
        bias = self.bias_.astype(dtype, copy=False)
        threshold = dtype.type(self.threshold_)
        weight = self.weight_.astype(dtype, copy=False)
        head = np.empty(weight.shape, dtype=dtype)
        for c in np.unique(classes):
            rows = np.flatnonzero(classes == c)
            self._class_head(int(c), weight, out=head)
            for chunk in row_chunks(rows.size, dtype.itemsize * (weight.shape[0] + 2 * n_classes)):
                sel = rows[chunk]
                Z = np.minimum(np.asarray(X[sel], dtype=dtype), threshold) @ head
                Z += bias
                yield sel, Z

    def classifier_block(self, X):
        """LINe's logits: each row's clipped features through its predicted class's pruned head."""
        classes = self._dense_classes(X)
        out = np.empty((X.shape[0], self.weight_.shape[1]), dtype=X.dtype)
        for sel, Z in self._class_logits(X, classes, X.dtype):
            out[sel] = Z
        return out

    def score_block(self, X):
        scores = logsumexp_rows(self.classifier_block(X))
        # np.minimum maps +inf to the clip: the caller reports the row
        scores[~np.isfinite(X).all(axis=1)] = np.nan
        return scores

    def _score_all(self, X):
        # each class's head built once over all rows, not once per chunk: the
        # classes first, chunk by chunk (non-finite rows are reported there),
        # then each class's rows scored together
        def classes_block(block):
            classes = self._dense_classes(block)
            out = classes.astype(np.float64)
            out[~np.isfinite(block).all(axis=1)] = np.nan
            return out

        classes = score_in_chunks(X, classes_block, self.block_width).astype(np.int64)
        dtype = compute_dtype(X)
        scores = np.empty(X.shape[0], dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            for sel, Z in self._class_logits(X, classes, dtype):
                scores[sel] = logsumexp_rows(Z)
        if not np.isfinite(scores).all():
            bad = int(np.flatnonzero(~np.isfinite(scores))[0])
            raise_non_finite(np.asarray(X[bad:bad + 1], dtype=dtype), scores[bad:bad + 1], bad)
        return scores


def _first_above(scale, sorted_rows, threshold, rows) -> np.ndarray:
    """Per row ``j`` of ``rows``, the first place ``r`` with ``scale * sorted_rows[j, r] > threshold``.

    ``scale >= 0`` (one entry per row of ``rows``) and each row sorted in
    increasing order make the product non-decreasing along the row
    (rounding is monotone), so the places that pass form a suffix; a
    vectorised binary search finds where it starts (the row's length when
    none passes), reading only the entries it probes.
    """
    n_cols = sorted_rows.shape[1]
    lo = np.zeros(rows.size, dtype=np.int64)
    hi = np.full(rows.size, n_cols, dtype=np.int64)
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        above = scale * sorted_rows[rows, np.minimum(mid, n_cols - 1)] > threshold
        hi = np.where(active & above, mid, hi)
        lo = np.where(active & ~above, mid + 1, lo)


def _activation_mask(V, p_a: float) -> np.ndarray:
    """Column-wise ``V[:, c] > percentile(V[:, c], 100 p_a)``; everything at ``p_a = 0``."""
    if p_a == 0:
        return np.ones(V.shape, dtype=bool)
    return V > np.percentile(V, 100.0 * p_a, axis=0)


def _weight_thresholds(V, W64, p_w: float) -> np.ndarray:
    """For each class ``c``, the ``100 p_w``-th percentile of ``|V[:, c]| * W`` (``-inf`` at 0)."""
    n_classes = V.shape[1]
    if p_w == 0:
        return np.full(n_classes, -np.inf)
    out = np.empty(n_classes, dtype=np.float64)
    for c in range(n_classes):
        out[c] = np.percentile(np.abs(V[:, c])[:, None] * W64, 100.0 * p_w)
    return out
