"""Feature shaping before the head: VRA's two-sided clip, BATS's typical set, OptFS's optimal shaping."""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from .._array_api import device_of, namespace
from .._numeric import column_mean, feature_blocks, logsumexp_rows
from .._selection import entry_percentile, entry_quantile
from ._common import _flag_non_finite_rows, _HeadDetector

__all__ = ["BATSDetector", "OptFSDetector", "VRADetector"]


class _ShapedEnergy(_HeadDetector):
    """Energy of the head on features clipped to ``[lower_, upper_]`` (scalars or per unit)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.detector_tags.uses_features = True  # the bounds come from the fitting rows
        tags.detector_tags.fits_from_blocks = True  # percentiles or moments, over passes
        tags.detector_tags.changes_classifier = True  # the head reads shaped features
        tags.array_api_support = True  # the bounds on the host, the scores in X's namespace
        return tags

    def _shaped(self, X):
        if isinstance(X, np.ndarray):
            lower = np.asarray(self.lower_, dtype=X.dtype)
            upper = np.asarray(self.upper_, dtype=X.dtype)
            return np.minimum(np.maximum(X, lower), upper)
        xp = namespace(X)
        return xp.minimum(xp.maximum(X, _bound(self.lower_, X, xp)), _bound(self.upper_, X, xp))

    def classifier_block(self, X):
        """The logits the score reads: the head on the shaped features."""
        return self._logits(self._shaped(X))

    def score_block(self, X):
        scores = logsumexp_rows(self._logits(self._shaped(X)))
        # the clip maps +-inf to a bound: mark such rows for the caller's error
        return _flag_non_finite_rows(X, scores)


def _bound(value, X, xp):
    """A clip bound (a float, or a per-unit array already on X's device) in X's dtype."""
    if isinstance(value, float):
        return xp.asarray(value, dtype=X.dtype, device=device_of(X))
    return xp.astype(value, X.dtype)


class VRADetector(_ShapedEnergy):
    """VRA: energy of the head on features clipped from below and from above.

    ``S(x) = logsumexp(W^T clip(h(x), a, c) + b)``, where ``a`` and ``c``
    are the ``percentile_low``-th and ``percentile_high``-th percentiles of
    all activations of the fitting features (every entry of ``X``): ReAct's
    clip from above with a second clip from below.

    Parameters
    ----------
    percentile_high : float, default=90
        Percentile (0-100) of the fitting activations used as the upper clip
        ``c`` (OpenOOD's ``vra.yml``).
    percentile_low : float, default=10
        Percentile (0-100) used as the lower clip ``a``; at most
        ``percentile_high`` (OpenOOD's ``vra.yml``).
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.

    Attributes
    ----------
    lower_ : float
        The lower clip ``a``.
    upper_ : float
        The upper clip ``c``.
    weight_ : ndarray of shape (n_features, n_classes), float32
    bias_ : ndarray of shape (n_classes,), float32
    n_features_in_ : int
    offset_ : float
        The ``1 - tpr`` quantile of the fitting samples' scores.

    Notes
    -----
    This is OpenOOD's ``VRAPostprocessor`` (``feature.clip(min=threshold_low,
    max=threshold_high)`` with both thresholds ``numpy.percentile`` of the
    flattened activations, then ``logsumexp`` of the logits): the same score
    and sign. OpenOOD takes the percentiles on its ID ``val`` split, this
    detector on the rows it is fitted on (fit on an ID validation split to
    follow it). The VRA authors' ``ood_eval.py`` (``--case clip2``) takes
    **per-unit** quantiles of the training features instead
    (``torch.quantile(feat, q, dim=0)``, q1 = 0.6, q2 = 0.9 on CIFAR-10) or
    absolute bounds (0.5 and 1 for ImageNet ResNet-50); their model code that
    applies the bounds was not available to check, so the scalar rule of
    OpenOOD is the one implemented. The bounds are exact percentiles of all
    fitting activations; fitted on a block source (a store split), they are
    selected over passes without a copy of the split
    (:func:`skdice._selection.entry_percentile`).

    References
    ----------
    M. Xu, Z. Lian, B. Liu and J. Tao. VRA: Variational rectified activation
    for out-of-distribution detection. NeurIPS 2023.
    """

    name = "vra"
    summary = "VRA: energy after clipping features from below and above at training percentiles (Xu et al., 2023)"
    #: the search grid (skdice.tuning.default_grid), 2-D: OpenOOD's sweep (vra.yml)
    search_grid = {"percentile_high": (85, 90, 95, 99), "percentile_low": (1, 5, 10, 15)}

    _parameter_constraints: dict = {
        **_HeadDetector._parameter_constraints,
        "percentile_high": [Interval(Real, 0, 100, closed="both")],
        "percentile_low": [Interval(Real, 0, 100, closed="both")],
    }

    def __init__(self, percentile_high=90, percentile_low=10, *, tpr=0.95):
        self.percentile_high = percentile_high
        self.percentile_low = percentile_low
        self.tpr = tpr

    def effective_params(self, n_features, n_classes=None, n_samples=None):
        """As :meth:`BaseDetector.effective_params`; the lower percentile may not exceed the upper."""
        if self.percentile_low > self.percentile_high:
            raise ValueError(
                f"percentile_low={self.percentile_low} exceeds percentile_high={self.percentile_high}"
            )
        return self.get_params()

    def fit_statistics(self, X, y, head, train_mean):
        if self.percentile_low > self.percentile_high:
            raise ValueError(
                f"VRADetector: percentile_low={self.percentile_low} exceeds percentile_high="
                f"{self.percentile_high}; the lower clip must not lie above the upper one."
            )
        low, high = entry_percentile(X, [self.percentile_low, self.percentile_high])
        self.lower_ = float(low)
        self.upper_ = float(high)


class BATSDetector(_ShapedEnergy):
    """BATS on pooled features: energy after clipping each unit to its typical set.

    ``S(x) = logsumexp(W^T clip(h(x), mu - lambda sigma, mu + lambda sigma) + b)``
    with ``mu`` and ``sigma`` the per-unit mean and standard deviation of
    the fitting features.

    Parameters
    ----------
    lam : float, default=1.25
        Width ``lambda > 0`` of the typical set in standard deviations; the
        BATS authors' ImageNet (ResNet-50) setting.
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,), float64
        ``mu``, the mean fitting feature.
    std_ : ndarray of shape (n_features,), float64
        ``sigma``, the per-unit standard deviation (divided by n).
    lower_ : ndarray of shape (n_features,), float64
        ``mu - lambda sigma``.
    upper_ : ndarray of shape (n_features,), float64
        ``mu + lambda sigma``.
    weight_ : ndarray of shape (n_features, n_classes), float32
    bias_ : ndarray of shape (n_classes,), float32
    n_features_in_ : int
    offset_ : float
        The ``1 - tpr`` quantile of the fitting samples' scores.

    Notes
    -----
    **How this differs from the original.** The BATS authors truncate the
    *feature maps* at the output of the network's last batch-normalisation
    layer (``layer4``'s last ``bn3`` in ResNet-50, ``bn1`` in the CIFAR
    DenseNet and WideResNet), channel by channel and at every spatial
    position, to ``[beta - lambda gamma, beta + lambda gamma]`` with
    ``beta`` and ``gamma`` that layer's learnt shift and scale (the BN output's
    per-channel mean and standard deviation under the BN assumption); the
    ReLU (and ResNet's residual addition) and the average pooling come
    after. Stored penultimate features are pooled and after the ReLU, so
    neither the spatial positions nor the pre-ReLU values exist any more.
    This detector applies the same rule where it can: on the pooled feature,
    with the empirical per-unit mean and standard deviation of the fitting
    features in place of ``beta`` and ``gamma``, both sides clipped with the
    authors' two ``torch.where`` (equal to ``numpy.clip`` for ``lambda >
    0``), then the energy (``bats_iterate_data_energy``, temperature 1). It
    is therefore not the authors' score on any model; it is the pooled-feature
    variant third-party code also uses (e.g. the CoP/CoRP code's
    ``bats-feat-info`` mean and std of pooled features). Equal clips for a
    unit with ``sigma = 0`` pin it to its mean. Not streamed: the
    statistics are a mean and a variance, which the mean-streaming
    protocol does not carry.

    References
    ----------
    Y. Zhu, Y. Chen, C. Xie, X. Li, R. Zhang, H. Xue, X. Tian, B. Zheng and
    Y. Chen. Boosting out-of-distribution detection with typical features.
    NeurIPS 2022.
    """

    name = "bats"
    summary = "BATS on pooled features: energy after clipping to mean +- lambda std (Zhu et al., 2022)"
    #: the search grid (skdice.tuning.default_grid): the authors' settings of lambda
    #: (ImageNet 1.25; CIFAR-10 DenseNet 1.0, ResNet-18 3.3; CIFAR-100 DenseNet 0.8,
    #: ResNet-18 1.35) and values between them
    search_grid = {"lam": (0.5, 0.8, 1.0, 1.25, 1.35, 1.5, 2.0, 3.3)}

    _parameter_constraints: dict = {
        **_HeadDetector._parameter_constraints,
        "lam": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, lam=1.25, *, tpr=0.95):
        self.lam = lam
        self.tpr = tpr

    def fit_statistics(self, X, y, head, train_mean):
        mean = column_mean(X)
        sq = np.zeros_like(mean)
        for _, block in feature_blocks(X, 8 * X.shape[1]):
            block = np.asarray(block, dtype=np.float64) - mean
            sq += np.einsum("ij,ij->j", block, block)
        std = np.sqrt(sq / X.shape[0])
        self.mean_ = mean
        self.std_ = std
        self.lower_ = mean - self.lam * std
        self.upper_ = mean + self.lam * std


def _ceil_to(values: np.ndarray, dtype) -> np.ndarray:
    """The least ``dtype`` numbers not below ``values``: ``x >= v`` iff ``x >= _ceil_to(v)`` for ``x`` in ``dtype``."""
    out = values.astype(dtype)
    low = out < values
    out[low] = np.nextafter(out[low], dtype.type(np.inf))
    return out


def _segments(lower, upper, dtype):
    """The bins ``[lower, upper)`` cut into segments between consecutive edges, in ``dtype``.

    Returns the sorted distinct edges (rounded up to ``dtype``, so that
    comparing a ``dtype`` entry with them is comparing it with the float64
    edges) and which bins hold each segment ``[edges[s], edges[s + 1])``.
    Consecutive bins can overlap or leave a gap by a rounding, as the
    authors' ``b + width``: a segment then lies in two bins or in none.
    """
    lo, up = _ceil_to(lower, dtype), _ceil_to(upper, dtype)
    edges = np.unique(np.concatenate([lo, up]))
    member = (lo[:, None] <= edges[None, :-1]) & (up[:, None] >= edges[None, 1:])
    return edges, member


def _bin_weights(X, lower, upper, theta):
    """The shaping weight of each entry: the sum of ``theta`` over the bins ``[lower, upper)`` holding it.

    One ``searchsorted`` per entry against the bins' edges in the features'
    precision, then a table lookup; entries outside every bin weigh 0.
    """
    edges, member = _segments(lower, upper, X.dtype)
    table = np.zeros(edges.size + 1, dtype=X.dtype)
    table[1:-1] = theta @ member
    return table[_segment_index(edges, X)]


def _segment_index(edges, X, cells_per_edge=4):
    """``numpy.searchsorted(edges, X, side="right")``, exactly, by a table of cells (faster).

    The range of ``edges`` is cut into evenly spaced cells by ``cell(v) =
    trunc(clip((v - edges[0]) * scale))``, computed alike for the entries and
    the edges. ``cell`` never decreases with ``v``, so an edge in a lower
    cell than ``x`` lies below it and one in a higher cell above it: the
    count of edges up to ``x`` is the count of edges in lower cells plus a
    comparison with each edge of ``x``'s own cell (at most a few). About
    twice as fast as a binary search per entry.
    """
    n_edges = edges.size
    if n_edges < 2:
        return np.searchsorted(edges, X, side="right")
    n_cells = cells_per_edge * n_edges
    origin = edges[0]
    scale = edges.dtype.type(n_cells / (float(edges[-1]) - float(origin)))

    def cell(values):
        c = values - origin
        c *= scale
        np.clip(c, 0, n_cells - 1, out=c)
        with np.errstate(invalid="ignore"):
            c = c.astype(np.int32)
        return np.clip(c, 0, n_cells - 1, out=c)  # NaN entries: anywhere; they are reported

    edge_cells = cell(edges)
    below = np.searchsorted(edge_cells, np.arange(n_cells), side="left").astype(np.int32)
    rank = np.arange(n_edges) - below[edge_cells]
    in_cell = np.full((rank.max() + 1, n_cells), np.nan, dtype=edges.dtype)  # NaN: never <= x
    in_cell[rank, edge_cells] = edges
    cells = cell(X)
    index = below[cells]
    for row in in_cell:
        index += X >= row[cells]
    return index


class OptFSDetector(_HeadDetector):
    """OptFS: the optimal piecewise-constant feature shaping of Zhao et al.

    The activation range is cut into bins ``[b_i, b_i + width)``, 100 of
    them between the 0.1% and 99.9% quantiles of all fitting activations.
    Each bin gets a weight proportional to the mean over the fitting rows of
    the logit of their predicted class ``c(x)`` carried by the activations
    in that bin,

        ``I_i = mean_x sum_j [h_j in bin i] W[j, c(x)] h_j``,  ``theta = 1000 I / ||I||_2``,

    and a feature is shaped entry by entry: ``h'_j = theta_i h_j`` for
    ``h_j`` in bin ``i``, 0 outside every bin. The score is the shaped
    feature's logit for the class the dense head predicts, without the bias
    (``ood_score="vanilla"``), or the energy of the head on the shaped
    feature (``ood_score="energy"``).

    Parameters
    ----------
    ood_score : {"vanilla", "energy"}, default="vanilla"
        The authors' ``use_ood_score`` (their default ``"vanilla"``).
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.

    Attributes
    ----------
    bin_lower_ : ndarray of shape (n_bins,), float64
        The bins' left edges ``b_i``: the authors' ``numpy.arange(left_b,
        right_b, width)`` from quantiles and width in the fitting features'
        precision.
    bin_upper_ : ndarray of shape (n_bins,), float64
        Their right edges ``b_i + width`` (excluded).
    theta_ : ndarray of shape (n_bins,), float64
        The shaping weight of each bin.
    weight_ : ndarray of shape (n_features, n_classes), float32
    bias_ : ndarray of shape (n_classes,), float32
    n_features_in_ : int
    offset_ : float
        The ``1 - tpr`` quantile of the fitting samples' scores.

    Notes
    -----
    The authors' postprocessor (``Qinyu-Allen-Zhao/OptFSOOD``, class
    ``Ours``, fixed weights): boundaries ``numpy.arange(left_b, right_b,
    width)`` with ``left_b, right_b = numpy.quantile(feature, 1e-3), 1 -
    1e-3)`` over all training activations and ``width = (right_b - left_b) /
    100``; ``get_lc_fv_list`` averages ``sum(mask * w[pred] * feature)`` per
    bin, ``theta = lc_fv_list / norm * 1000``; ``postprocess`` shapes with
    ``mask * feature * theta[i]`` summed over the bins and scores
    ``sum(w[pred] * feat_p)`` with ``pred`` the dense head's argmax (or
    ``logsumexp(fc(feat_p))``). This is the same score and sign. The class
    of a fitting row is the dense head's prediction (the authors'
    ``get_feature_train`` returns ``pred``; its code was not available to
    check that it is the prediction rather than the label). The bin sums
    run in float64 (the authors' in float32: theta agrees to float32
    rounding). Entries are compared with the float64 edges in float64, as
    numpy does in the authors' fit; their torch ``postprocess`` may compare
    float32 features with the edges rounded to float32, which can move an
    entry lying within one float32 rounding of an edge into the next bin. Their iterated "dynamic weight" variant (an appendix) is not
    implemented. OpenOOD has no OptFS. Not streamed: the bins are quantiles
    of all fitting activations. Nothing to tune (the method's point): the
    grid holds the authors' two scores.

    References
    ----------
    Q. Zhao, M. Xu, K. Gupta, A. Asthana, L. Zheng and S. Gould. Towards
    optimal feature-shaping methods for out-of-distribution detection. ICLR 2024.
    """

    name = "optfs"
    summary = "OptFS: optimal piecewise-constant feature shaping, fitted on ID features (Zhao et al., 2024)"
    #: the search grid (skdice.tuning.default_grid): the authors' two scores; the
    #: shaping itself has no hyperparameter
    search_grid = {"ood_score": ("vanilla", "energy")}

    _parameter_constraints: dict = {
        **_HeadDetector._parameter_constraints,
        "ood_score": [StrOptions({"vanilla", "energy"})],
    }

    #: bins between the 0.1% and 99.9% quantiles (the authors' width = range / 100)
    n_bins = 100

    def __init__(self, ood_score="vanilla", *, tpr=0.95):
        self.ood_score = ood_score
        self.tpr = tpr

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.detector_tags.uses_features = True  # the bins and their weights
        tags.detector_tags.fits_from_blocks = True  # two exact quantiles, then the bins' sums
        # the energy reads the head on shaped features; vanilla, the dense head's class
        tags.detector_tags.changes_classifier = self.ood_score == "energy"
        return tags

    def fit_statistics(self, X, y, head, train_mean):
        # as the authors: two scalar quantiles (in the features' precision), their
        # difference over 100, and numpy.arange's float64 edges from them
        left, right = entry_quantile(X, 1e-3), entry_quantile(X, 1 - 1e-3)
        if not right > left:
            raise ValueError(
                "OptFSDetector needs activations that vary: the 0.1% and 99.9% quantiles of the "
                f"fitting activations are both {float(left):g}, so there is no bin to shape with."
            )
        width = (right - left) / float(self.n_bins)
        lower = np.arange(left, right, width)
        upper = lower + width
        edges, member = _segments(lower, upper, X.dtype)
        segment_totals = np.zeros(edges.size + 1, dtype=np.float64)
        W = head.weight.astype(np.float64)
        for _, block in feature_blocks(X, 16 * (X.shape[1] + head.n_classes)):
            logits = block @ head.weight.astype(block.dtype)
            logits += head.bias.astype(block.dtype)
            contribution = W[:, logits.argmax(axis=1)].T * block  # lc = w[pred] * feature
            segment = _segment_index(edges, block)
            segment_totals += np.bincount(segment.ravel(), contribution.ravel(), edges.size + 1)
        totals = member @ segment_totals[1:-1]
        mean = totals / X.shape[0]
        norm = np.linalg.norm(mean)
        self.bin_lower_ = lower.astype(np.float64)
        self.bin_upper_ = upper.astype(np.float64)
        self.theta_ = mean / norm * 1000.0 if norm > 0 else mean
        # the head's rows in torch's layout, to read each row's predicted-class weights
        self._weight_rows = np.ascontiguousarray(head.weight.T)

    @property
    def block_width(self):
        # the shaped copy and its segment indices beside the features, then the logits
        return max(3 * self.n_features_in_ // 2, self.weight_.shape[1])

    def _shaped(self, X):
        return X * _bin_weights(X, self.bin_lower_, self.bin_upper_, self.theta_)

    def classifier_block(self, X):
        """The logits the score reads: the head on the shaped features (``"energy"``), else the dense head's."""
        if self.ood_score == "energy":
            return self._logits(self._shaped(X))
        return self._logits(X)

    def score_block(self, X):
        shaped = self._shaped(X)
        if self.ood_score == "energy":
            scores = logsumexp_rows(self._logits(shaped))
        else:
            classes = self._logits(X).argmax(axis=1)
            rows = self._weight_rows[classes]  # w[pred], row by row
            scores = np.einsum("ij,ij->i", shaped, rows, dtype=np.float64)
        scores[~np.isfinite(X).all(axis=1)] = np.nan
        return scores
