"""The detector template every skdice estimator shares."""

from __future__ import annotations

from numbers import Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from ._head import Head
from ._numeric import chunk_rows

__all__ = ["BaseDetector", "available_detectors", "get_detector"]

_REGISTRY: dict[str, type["BaseDetector"]] = {}

_FLOAT_DTYPES = [np.float32, np.float64, np.float16]


def _is_dask(X) -> bool:
    return type(X).__module__.split(".")[0] == "dask"


def _streams_a_mean(detector) -> bool:
    # partial_fit exists only where the fitted statistic is the mean feature
    return detector._accepts_train_mean


class BaseDetector(OutlierMixin, BaseEstimator):
    """Template for post hoc OOD detectors on penultimate features and a linear head.

    Subclasses set the class attribute ``name`` (the registry and CLI name) and
    implement two hooks: ``_fit_statistics`` (what the detector learns from the
    in-distribution features and the head) and ``_score_block`` (the score of
    one float32 chunk of rows). The public ``fit`` validates input, calls the
    hook, and calibrates :attr:`offset_`; ``score_samples`` validates input and
    runs the hook chunk by chunk so that memory does not grow with the number
    of rows.

    Sign convention, for every detector: ``score_samples`` is higher for more
    in-distribution inputs; ``decision_function = score_samples - offset_`` is
    negative for inputs flagged OOD; ``predict`` returns +1 (ID) or -1 (OOD).

    Calling ``fit``
    ---------------
    All spellings below are equivalent::

        det.fit(H, W, b)                 # the design card
        det.fit(H, W=W, b=b)
        det.fit(H, head=Head(W, b))      # immune to GridSearchCV's slicing
        det.fit(X, y, W=W, b=b)          # what GridSearchCV calls
        det.fit(W=W, b=b, train_mean=mu) # only a cached training mean (DICE)

    A second positional argument that is 2-D is the weight ``W`` (then the
    third is ``b`` and a fourth ``y``); one that is 1-D is ``y``.

    Parameters
    ----------
    tpr : float, default=0.95
        Fraction of the fitting (ID) samples that ``predict`` keeps as ID:
        ``offset_`` is their ``1 - tpr`` score quantile.
    """

    name: ClassVar[str | None] = None
    summary: ClassVar[str] = ""
    #: whether ``fit`` needs the classifier head (W, b)
    _requires_head: ClassVar[bool] = True
    #: whether ``y`` holds class labels (Mahalanobis) instead of an ID/OOD mask
    _requires_class_labels: ClassVar[bool] = False
    #: whether the detector can be fitted from a training mean without features
    _accepts_train_mean: ClassVar[bool] = False

    _parameter_constraints: dict = {
        "tpr": [Interval(Real, 0, 1, closed="neither")],
    }

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is not None:
            if name in _REGISTRY and _REGISTRY[name] is not cls:
                raise RuntimeError(
                    f"detector name {name!r} is taken by {_REGISTRY[name].__qualname__}"
                )
            _REGISTRY[name] = cls

    # ------------------------------------------------------------------ hooks
    def _fit_statistics(self, X, y, head, train_mean):  # pragma: no cover
        raise NotImplementedError

    def _score_block(self, X):  # pragma: no cover
        raise NotImplementedError

    # ------------------------------------------------------------ public API
    def fit(self, X=None, *args, y=None, W=None, b=None, head=None, train_mean=None):
        """Fit the detector on in-distribution features and a classifier head.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), default=None
            In-distribution training features (the penultimate layer). May be
            ``None`` only for detectors that can fit from ``train_mean``; then
            ``offset_`` is NaN and ``predict`` refuses to run.
        *args
            Positional ``W, b, y`` (the design card's ``fit(H, W, b)``) or
            ``y`` alone (scikit-learn's ``fit(X, y)``); see the class docstring.
        y : array-like of shape (n_samples,), default=None
            For most detectors an ID mask of numbers or booleans: rows with
            ``y == 0`` are left out of the statistics and of the calibration
            (GridSearchCV passes its OOD training rows this way); strings and
            NaN are refused. Class-conditional detectors take class
            labels here instead.
        W : array-like of shape (n_features, n_classes), default=None
            Final-layer weight in the paper's orientation. PyTorch's ``fc.weight``
            is ``(n_classes, n_features)``: pass ``fc.weight.T`` or
            ``head=Head.from_torch(fc.weight, fc.bias)``.
        b : array-like of shape (n_classes,), default=None
            Final-layer bias; zeros when omitted.
        head : Head, default=None
            The head as one object, instead of ``W`` and ``b``.
        train_mean : array-like of shape (n_features,), default=None
            A precomputed mean training feature (detectors that support it).

        Returns
        -------
        self : object
            The fitted detector.
        """
        self._validate_params()
        y, head = self._parse_fit_arguments(args, y, W, b, head)
        self._stream_reset()
        if _is_dask(X):
            from .streaming import _fit_dask

            return _fit_dask(self, X, y, head, train_mean)
        if X is None:
            if train_mean is None or not self._accepts_train_mean:
                raise ValueError(
                    f"{type(self).__name__}.fit needs the training features X"
                    + (" (or train_mean=...)." if self._accepts_train_mean else ".")
                )
            if head is None:
                raise ValueError(
                    f"{type(self).__name__}.fit needs the classifier head: "
                    "pass W (n_features, n_classes) and b, or head=Head(W, b)."
                )
            # the mean fixes the width when W fits it either way round, so that a
            # transposed W (torch's (C, m) fc.weight) meets _build_head's hint
            shape = np.shape(head.weight if isinstance(head, Head) else head[0])
            n_features = int(np.size(train_mean))
            if len(shape) != 2 or n_features not in shape:
                n_features = shape[0] if shape else n_features
            self.n_features_in_ = n_features
        else:
            X = validate_data(self, X, dtype=_FLOAT_DTYPES, ensure_min_samples=1)
            n_features = X.shape[1]
        if train_mean is not None:
            if not self._accepts_train_mean:
                raise ValueError(f"{type(self).__name__} does not accept train_mean.")
            train_mean = self._check_train_mean(train_mean, n_features)
        if head is not None:
            head = self._build_head(
                head, n_features, "X" if X is not None else "train_mean"
            )
        elif self._requires_head:
            raise ValueError(
                f"{type(self).__name__}.fit needs the classifier head: "
                "pass W (n_features, n_classes) and b, or head=Head(W, b)."
            )
        if X is not None and y is not None:
            y = np.asarray(y)
            if y.ndim != 1 or y.shape[0] != X.shape[0]:
                raise ValueError(
                    f"y must be 1-D with one entry per row of X ({X.shape[0]}), "
                    f"got shape {y.shape}."
                )
            if not self._requires_class_labels:
                y = self._check_id_mask(y)
                keep = y != 0
                if not keep.any():
                    raise ValueError(
                        "every row of X is marked y == 0 (OOD); fit needs in-distribution rows."
                    )
                X, y = X[keep], None
        elif self._requires_class_labels:
            raise ValueError(f"{type(self).__name__}.fit needs class labels y.")
        if head is not None:
            self.weight_ = head.weight
            self.bias_ = head.bias
        self._fit_statistics(X, y, head, train_mean)
        if X is None:
            self.offset_ = np.nan
        else:
            self.offset_ = float(np.quantile(self._calibration_scores(X), 1.0 - self.tpr))
        return self

    @available_if(_streams_a_mean)
    def partial_fit(self, X, *args, y=None, W=None, b=None, head=None):
        """Update the fit with one chunk of in-distribution rows (out-of-core fitting).

        Available for detectors whose statistic is the mean training feature
        (those that accept ``train_mean``, such as DICE). The detector keeps a
        running float64 sum of the rows and their count (``n_samples_seen_``);
        after every call it is fitted exactly as ``fit(head=..., train_mean=
        sum / count)`` would fit it, so the order and size of the chunks do not
        matter beyond float64 rounding. ``fit`` discards the running sum and
        starts afresh.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One chunk of in-distribution training features.
        *args
            ``W, b`` (and ``y``) positionally, as for :meth:`fit`.
        y : array-like of shape (n_samples,), default=None
            ID mask: rows with ``y == 0`` are skipped.
        W, b, head
            The classifier head, as for :meth:`fit`. Required on the first
            call, refused on later ones (the head of a stream is fixed).

        Returns
        -------
        self : object

        Notes
        -----
        ``offset_`` is NaN after ``partial_fit``: it is a quantile of the
        fitting rows' scores under the *final* mask, which is unknown until the
        last chunk has been seen. Calibrate it afterwards with
        :func:`skdice.streaming.calibrate_offset` (a second pass over the
        chunks, or over a sample of them); :func:`skdice.streaming.fit_store`
        does both passes for a feature-store split.
        """
        first = "_feature_sum" not in self.__dict__
        if first:
            self._validate_params()
        y, head = self._parse_fit_arguments(args, y, W, b, head)
        X = validate_data(self, X, dtype=_FLOAT_DTYPES, reset=first, ensure_min_samples=1)
        if first:
            if head is None:
                raise ValueError(
                    f"the first {type(self).__name__}.partial_fit call needs the classifier "
                    "head: pass W (n_features, n_classes) and b, or head=Head(W, b)."
                )
            self._stream_start(self._build_head(head, X.shape[1]))
        elif head is not None:
            raise ValueError(
                "partial_fit takes the head on its first call only (a stream's head is "
                "fixed); call fit, or clone the detector, to start a new stream."
            )
        if y is not None:
            y = np.asarray(y)
            if y.ndim != 1 or y.shape[0] != X.shape[0]:
                raise ValueError(
                    f"y must be 1-D with one entry per row of X ({X.shape[0]}), "
                    f"got shape {y.shape}."
                )
            X = X[self._check_id_mask(y) != 0]
        self._stream_add(X)
        self._stream_finish()
        return self

    def score_samples(self, X):
        """Score inputs: higher means more in-distribution.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Penultimate features. float16, float32 and float64 are accepted;
            the heavy products run in float32, chunk by chunk. A dask array
            returns a lazy dask array of scores.

        Returns
        -------
        scores : ndarray of shape (n_samples,), float64
        """
        check_is_fitted(self)
        if _is_dask(X):
            return self._score_dask(X)
        X = validate_data(
            self, X, reset=False, dtype=_FLOAT_DTYPES, ensure_all_finite=False
        )
        return self._score_all(X)

    def decision_function(self, X):
        """Shifted scores: ``score_samples(X) - offset_``; negative means OOD.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        self._check_calibrated()
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """Label inputs +1 (in-distribution) or -1 (out-of-distribution).

        A decision value of exactly 0 counts as in-distribution.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), int
        """
        decision = self.decision_function(X)
        return np.where(decision >= 0, 1, -1)

    # -------------------------------------------------------------- helpers
    # Streaming state of partial_fit (and skdice.streaming): a float64 sum and a count.
    # The head of a stream is weight_ and bias_ (set on its first call).
    def _stream_reset(self):
        self.__dict__.pop("_feature_sum", None)
        self.__dict__.pop("n_samples_seen_", None)

    def _stream_start(self, head: Head):
        self._stream_reset()
        self._feature_sum = np.zeros(head.n_features, dtype=np.float64)
        self.weight_, self.bias_ = head.weight, head.bias
        self.n_samples_seen_ = 0
        self.n_features_in_ = head.n_features

    def _stream_add(self, X):
        if X.shape[0]:
            self._feature_sum += X.sum(axis=0, dtype=np.float64)
            self.n_samples_seen_ += int(X.shape[0])

    def _stream_finish(self):
        if self.n_samples_seen_ == 0:
            raise ValueError(
                f"{type(self).__name__}.partial_fit has seen no in-distribution rows yet "
                "(every row so far was marked y == 0)."
            )
        head = Head(self.weight_, self.bias_)
        self._fit_statistics(None, None, head, self._feature_sum / self.n_samples_seen_)
        self.offset_ = np.nan

    def _check_calibrated(self):
        if np.isnan(self.offset_):
            how = (
                "partial_fit, so offset_ is not calibrated: run "
                "skdice.streaming.calibrate_offset(detector, chunks) over ID rows"
                if "n_samples_seen_" in self.__dict__
                else "train_mean only, so offset_ is not calibrated: call fit with "
                "in-distribution features X"
            )
            raise ValueError(
                f"{type(self).__name__} was fitted from {how} to use decision_function "
                "or predict (score_samples works as is)."
            )

    def _calibration_scores(self, X) -> np.ndarray:
        # Scores of the fitting rows for offset_. Detectors whose statistics
        # contain the fitting rows themselves (KNN) override this to score each
        # row without itself, like a new ID input.
        return self._score_all(X)

    def _score_all(self, X) -> np.ndarray:
        n, m = X.shape
        width = max(m, getattr(self, "_block_width", m))
        step = chunk_rows(n, 4 * (m + 2 * width))
        out = np.empty(n, dtype=np.float64)
        for start in range(0, n, step):
            # overflow and NaN are reported below, as one clear error
            with np.errstate(over="ignore", invalid="ignore"):
                block = np.asarray(X[start : start + step], dtype=np.float32)
                scores = self._score_block(block)
            if not np.isfinite(scores).all():
                self._raise_non_finite(block, scores, start)
            out[start : start + step] = scores
        return out

    def _score_dask(self, X):
        from .streaming import score_dask

        return score_dask(self, X)

    @staticmethod
    def _raise_non_finite(block, scores, start):
        bad_row = int(np.flatnonzero(~np.isfinite(scores))[0])
        if not np.isfinite(block[bad_row]).all():
            raise ValueError(
                f"Input X contains NaN or infinity (first at row {start + bad_row})."
            )
        raise ValueError(
            f"the score of row {start + bad_row} is not finite: its features overflow "
            "float32 in the head's product; rescale the features."
        )

    def _parse_fit_arguments(self, args, y, W, b, head):
        args = list(args)
        if len(args) > 3:
            raise TypeError(
                "fit takes at most X, W, b, y positionally; got "
                f"{len(args) + 1} positional arguments."
            )
        if args and isinstance(args[0], Head):
            head, args = args[0], args[1:]
            if args:
                y = self._take(args.pop(0), y, "y")
        elif args and args[0] is not None and np.ndim(args[0]) >= 2:
            W = self._take(args.pop(0), W, "W")
            if args:
                b = self._take(args.pop(0), b, "b")
            if args:
                y = self._take(args.pop(0), y, "y")
        elif args:
            y = self._take(args.pop(0), y, "y")
            if args:
                raise TypeError(
                    "after a 1-D y, pass the head by keyword: fit(X, y, W=W, b=b)."
                )
        if head is not None:
            if W is not None or b is not None:
                raise TypeError("pass either head=Head(W, b) or W and b, not both.")
            if not isinstance(head, Head):
                raise TypeError(f"head must be a skdice.Head, got {type(head).__name__}.")
            return y, head
        if W is None and b is not None:
            raise ValueError("b was given without W.")
        return y, (W, b) if W is not None else None

    def _check_id_mask(self, y):
        # "id"/"ood" strings or NaN would all compare != 0 and silently count as ID
        if y.dtype.kind not in "biuf":
            try:
                y = y.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(
                    f"y is the ID mask of {type(self).__name__} (1 = ID, 0 = OOD, left "
                    f"out); got non-numeric values such as {str(y[0])!r}."
                ) from None
        if y.dtype.kind == "f" and np.isnan(y).any():
            raise ValueError(
                f"y, the ID mask of {type(self).__name__} (1 = ID, 0 = OOD), contains NaN "
                f"(first at row {int(np.flatnonzero(np.isnan(y))[0])})."
            )
        return y

    @staticmethod
    def _take(value, current, name):
        if current is not None:
            raise TypeError(f"{name} was given both positionally and by keyword.")
        return value

    @staticmethod
    def _build_head(head, n_features: int, source: str = "X") -> Head:
        """Make a Head from ``(W, b)`` (or check a given Head) against the feature count.

        ``source`` names what gave ``n_features`` in the error messages.
        """
        has = f"{source} has {n_features} " + ("features" if source == "X" else "entries")
        if isinstance(head, Head):
            W, b = head.weight, head.bias
        else:
            W, b = head
        shape = np.shape(W)
        if len(shape) == 2 and shape[0] != n_features:
            if shape[1] == n_features:
                raise ValueError(
                    f"W has shape {shape} but {has}: W must be "
                    f"(n_features, n_classes) = ({n_features}, {shape[0]}). This looks "
                    "like PyTorch's fc.weight layout (n_classes, n_features): pass W.T "
                    "or head=Head.from_torch(fc.weight, fc.bias)."
                )
            raise ValueError(
                f"W has shape {shape} but {has}: W must be "
                f"(n_features, n_classes) with n_features = {n_features}. If W went "
                "through GridSearchCV's fit params and has as many rows as there are "
                "samples, GridSearchCV slices it: pass head=Head(W, b) instead."
            )
        if isinstance(head, Head):
            return head
        if len(shape) == 2 and b is not None and np.ndim(b) == 1 and len(b) != shape[1]:
            raise ValueError(
                f"b has {len(b)} entries but W of shape {shape} has {shape[1]} classes. "
                "If b went through GridSearchCV's fit params and has as many entries "
                "as there are samples, GridSearchCV slices it: pass head=Head(W, b) instead."
            )
        return Head(W, b)

    @staticmethod
    def _check_train_mean(train_mean, n_features):
        mean = np.asarray(train_mean)
        if mean.dtype.kind not in "fiu":
            raise ValueError(f"train_mean must be numeric, got dtype {mean.dtype}.")
        mean = mean.astype(np.float64).reshape(-1) if mean.ndim == 2 and 1 in mean.shape else mean.astype(np.float64)
        if mean.shape != (n_features,):
            raise ValueError(
                f"train_mean must have shape ({n_features},), got {np.shape(train_mean)}."
            )
        if not np.isfinite(mean).all():
            raise ValueError("train_mean contains NaN or infinity.")
        return mean

    def __setstate__(self, state):
        super().__setstate__(state)
        self._freeze_cached_arrays()

    def _freeze_cached_arrays(self):
        # Arrays restored from a pickle or a saved file come back writable; scoring
        # caches work derived from these (active rows, a faiss index), so they
        # stay read-only as fit left them.
        for key in ("masked_weight_", "train_features_"):
            value = self.__dict__.get(key)
            if isinstance(value, np.ndarray):
                value.setflags(write=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


def available_detectors() -> dict[str, type[BaseDetector]]:
    """All registered detectors, by registry name, sorted by name.

    Returns
    -------
    dict of str to type
        The mapping the CLI, the docs and the tests read.
    """
    from . import detectors  # noqa: F401  (importing registers the catalogue)

    return dict(sorted(_REGISTRY.items()))


def get_detector(name: str, **params) -> BaseDetector:
    """Instantiate a registered detector by its registry name.

    Parameters
    ----------
    name : str
        Registry name, for example ``"dice"`` or ``"energy"``.
    **params
        Constructor parameters.

    Returns
    -------
    BaseDetector
    """
    registry = available_detectors()
    if name not in registry:
        raise ValueError(
            f"unknown detector {name!r}; choose one of: {', '.join(registry)}."
        )
    return registry[name](**params)
