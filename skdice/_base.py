"""The detector template every skdice estimator shares."""

from __future__ import annotations

import warnings
from dataclasses import fields
from numbers import Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ._array_api import array_space, weight_as
from ._dispatch import (
    check_namespace,
    fit_in_namespace,
    predict_class_in_namespace,
    score_in_namespace,
    validate_rows,
)
from ._head import Head
from ._numeric import RunningMean, score_in_chunks
from ._registry import _REGISTRY, available_detectors, get_detector, register  # noqa: F401
from ._tags import DetectorTags, SkdiceTags, detector_tags, has_partial_fit
from ._streamed_fit import fit_block_source
from ._validation import (
    FLOAT_DTYPES, as_numpy, check_head, check_id_mask, check_train_mean, is_block_source, is_dask,
    missing_head_error, validate_data,
)

__all__ = [
    "BaseDetector",
    "DetectorTags",
    "SkdiceTags",
    "available_detectors",
    "detector_tags",
    "get_detector",
]


class BaseDetector(OutlierMixin, BaseEstimator):
    """Template for post hoc OOD detectors on penultimate features and a linear head.

    Subclasses set the class attribute ``name`` (the registry and CLI name) and
    implement two extension points: :meth:`fit_statistics` (what the detector
    learns from the in-distribution features and the head) and
    :meth:`score_block` (the score of one chunk of rows, float64 for float64
    input and float32 otherwise). They declare
    what they need in :class:`DetectorTags` (override ``__sklearn_tags__``).
    The public ``fit`` validates input, calls the hook, and calibrates
    :attr:`offset_`; ``score_samples`` validates input and runs the hook chunk
    by chunk so that memory does not grow with the number of rows. A worked
    example of a new detector is in docs/api.md.

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

    #: registry and CLI name; None for abstract bases (not registered)
    name: ClassVar[str | None] = None
    #: one line for ``skdice methods`` and docs/detectors.md
    summary: ClassVar[str] = ""
    #: columns of float32 scratch one row needs besides its features while it is
    #: scored (its logits, say); sizes the scoring chunks. None: the feature width.
    #: Detectors whose width is known only once fitted make it a property.
    block_width = None

    _parameter_constraints: dict = {
        "tpr": [Interval(Real, 0, 1, closed="neither")],
    }

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for old, new in (("_fit_statistics", "fit_statistics"), ("_score_block", "score_block")):
            # detectors written against skdice 0.1's private hook names keep working
            if old in cls.__dict__ and new not in cls.__dict__:
                warnings.warn(
                    f"{cls.__qualname__}.{old} is deprecated: name the hook {new}.",
                    DeprecationWarning,
                    stacklevel=2,
                )
                setattr(cls, new, cls.__dict__[old])
        if cls.__dict__.get("name") is not None:
            register(cls)

    # ------------------------------------------------------- extension points
    def fit_statistics(self, X, y, head, train_mean):
        """Learn the detector's statistics (extension point; called by ``fit``).

        Set fitted attributes (names ending in ``_``) here. ``fit`` has
        already validated everything and set ``weight_``, ``bias_`` and
        ``n_features_in_``; it calibrates ``offset_`` afterwards.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features) or None
            The in-distribution rows (rows with ``y == 0`` already removed).
            None when fitted from a mean alone (``train_mean`` or
            :meth:`fit_from_mean`; only for detectors with
            ``accepts_train_mean``).
        y : ndarray of shape (n_samples,) or None
            Class labels, for detectors with ``requires_class_labels``.
        head : Head or None
            The classifier head.
        train_mean : ndarray of shape (n_features,), float64, or None
            A given mean training feature, checked.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement fit_statistics.")

    def score_block(self, X):
        """Score one chunk of rows (extension point; called by ``score_samples``).

        Parameters
        ----------
        X : ndarray of shape (n_rows, n_features), float32 or float64
            A chunk of validated rows in the precision of the products
            (:func:`skdice._numeric.compute_dtype`: float64 input stays
            float64); the detector may not keep it. Compute in ``X.dtype``:
            a float32 constant or weight mixed in must not lower a float64
            block's precision.

        Returns
        -------
        ndarray of shape (n_rows,)
            Higher = more in-distribution. Non-finite values are reported by
            the caller as one clear error.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement score_block.")

    def calibration_scores(self, X) -> np.ndarray:
        """Scores of the fitting rows from which ``offset_`` is taken (extension point).

        By default the rows are scored like any input. Detectors whose
        statistics contain the fitting rows themselves (KNN) override this to
        score each row without itself, like a new ID input.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return self._score_all(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return SkdiceTags(
            **{f.name: getattr(tags, f.name) for f in fields(tags)},
            detector_tags=DetectorTags(),
        )

    # ------------------------------------------------------------ public API
    def fit(self, X=None, *args, y=None, W=None, b=None, head=None, train_mean=None, calibrate=True):
        """Fit the detector on in-distribution features and a classifier head.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), block source, default=None
            In-distribution training features (the penultimate layer). May be
            ``None`` only for detectors that can fit from ``train_mean``; then
            ``offset_`` is NaN and ``predict`` refuses to run. A block source
            (a store split's ``SplitFeatures``: rows read block by block) is
            accepted by detectors with the tag ``fits_from_blocks`` or
            ``fits_from_mean``, read in passes so that memory does not grow
            with its rows (``y`` then holds class labels only).
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
        calibrate : bool, default=True
            Calibrate ``offset_`` on the fitting rows (one scoring pass over
            them). False leaves ``offset_`` NaN, for callers that calibrate it
            on other rows (the searches, on the ID validation scores).

        Returns
        -------
        self : object
            The fitted detector.
        """
        self._validate_params()
        y, head = self._parse_fit_arguments(args, y, W, b, head)
        self._stream_reset()
        if is_block_source(X):  # a split larger than memory, read in passes (tag fits_from_blocks)
            return fit_block_source(self, X, y, head, train_mean, calibrate)
        space = array_space(X, self)
        if space is not None:  # everything follows X (scikit-learn's Array API dispatch)
            return fit_in_namespace(self, X, y, head, train_mean, calibrate, space)
        tags = detector_tags(self)
        if is_dask(X):
            from ._dask import fit_dask

            if not tags.dask_fit:
                raise ValueError(
                    f"{type(self).__name__} cannot be fitted out of core (on a dask array): its "
                    "statistics are not a mean feature. Compute the array (X.compute()) and call fit."
                )
            return fit_dask(self, X, y, head, train_mean)
        if X is None:
            if train_mean is None or not tags.accepts_train_mean:
                raise ValueError(
                    f"{type(self).__name__}.fit needs the training features X"
                    + (" (or train_mean=...)." if tags.accepts_train_mean else ".")
                )
            if head is None:
                raise missing_head_error(type(self).__name__)
            # the mean fixes the width when W fits it either way round, so that a
            # transposed W (torch's (C, m) fc.weight) meets check_head's hint
            shape = np.shape(head.weight if isinstance(head, Head) else head[0])
            n_features = int(np.size(as_numpy(train_mean)))
            if len(shape) != 2 or n_features not in shape:
                n_features = shape[0] if shape else n_features
            self.__dict__.pop("feature_names_in_", None)
            self.n_features_in_ = n_features
        else:
            X = validate_data(self, X, dtype=FLOAT_DTYPES, ensure_min_samples=1)
            n_features = X.shape[1]
        if train_mean is not None:
            if not tags.accepts_train_mean:
                raise ValueError(f"{type(self).__name__} does not accept train_mean.")
            train_mean = check_train_mean(train_mean, n_features)
        if head is not None:
            head = check_head(head, n_features, "X" if X is not None else "train_mean")
        elif tags.requires_head:
            raise missing_head_error(type(self).__name__)
        if X is not None and y is not None:
            if tags.requires_class_labels:
                y = np.asarray(y)
                if y.ndim != 1 or y.shape[0] != X.shape[0]:
                    raise ValueError(
                        f"y must be 1-D with one entry per row of X ({X.shape[0]}), "
                        f"got shape {y.shape}."
                    )
            else:
                X, y = X[check_id_mask(y, X.shape[0], type(self).__name__)], None
        elif tags.requires_class_labels:
            raise ValueError(f"{type(self).__name__}.fit needs class labels y.")
        if head is not None:
            self.weight_ = head.weight
            self.bias_ = head.bias
        self.fit_statistics(X, y, head, train_mean)
        if X is None or not calibrate:
            self.offset_ = np.nan
        else:
            self.offset_ = float(np.quantile(self.calibration_scores(X), 1.0 - self.tpr))
        return self

    def fit_from_mean(self, head, mean, n_samples=None):
        """Fit from the mean training feature alone: the mean-streaming protocol.

        For detectors whose statistics are a function of the mean training
        feature (tag ``fits_from_mean``: DICE and its variants). Whoever
        computes the mean (a float64 running sum over a store's blocks,
        :func:`skdice.workflows.fit.fit_store`; a Dask reduction; the
        chunks of :meth:`partial_fit`) hands it over here; the result equals
        ``fit(X, head=head)`` on the rows whose mean it is, except for
        ``offset_``, which stays NaN until it is calibrated
        (:func:`skdice.workflows.fit.calibrate_offset`).

        Parameters
        ----------
        head : Head or tuple (W, b)
            The classifier head.
        mean : array-like of shape (n_features,)
            The mean in-distribution training feature.
        n_samples : int, default=None
            How many rows the mean is over; recorded as ``n_samples_seen_``
            when given.

        Returns
        -------
        self : object

        Raises
        ------
        ValueError
            For a detector without ``fits_from_mean``, or a mean or head of
            the wrong shape.
        """
        self._validate_params()
        if not detector_tags(self).fits_from_mean:
            raise ValueError(
                f"{type(self).__name__} with these parameters cannot be fitted from a mean "
                "feature alone: its statistics need the training features. Call fit(X, ...)."
            )
        n_features = int(np.size(mean))
        mean = check_train_mean(mean, n_features)
        head = check_head(head, n_features, "train_mean")
        self._stream_reset()
        self.__dict__.pop("feature_names_in_", None)
        self.n_features_in_ = n_features
        self.weight_, self.bias_ = head.weight, head.bias
        self.fit_statistics(None, None, head, mean)
        self.offset_ = np.nan
        if n_samples is not None:
            if int(n_samples) < 1:
                raise ValueError(f"n_samples must be >= 1, got {n_samples!r}.")
            self.n_samples_seen_ = int(n_samples)
        return self

    @available_if(has_partial_fit)
    def partial_fit(self, X, *args, y=None, W=None, b=None, head=None):
        """Update the fit with one chunk of in-distribution rows (out-of-core fitting).

        Available for detectors whose statistic is the mean training feature
        (tag ``fits_from_mean``, such as DICE). The detector keeps a
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
        :func:`skdice.workflows.fit.calibrate_offset` (a second pass over the
        chunks, or over a sample of them); :func:`skdice.workflows.fit.fit_store`
        does both passes for a feature-store split.
        """
        first = "_feature_sum" not in self.__dict__
        if first:
            self._validate_params()
        y, head = self._parse_fit_arguments(args, y, W, b, head)
        X = validate_data(self, X, dtype=FLOAT_DTYPES, reset=first, ensure_min_samples=1)
        if first:
            if head is None:
                raise ValueError(
                    f"the first {type(self).__name__}.partial_fit call needs the classifier "
                    "head: pass W (n_features, n_classes) and b, or head=Head(W, b)."
                )
            head = check_head(head, X.shape[1])
            self._feature_sum = np.zeros(head.n_features, dtype=np.float64)
            self._stream_head = head
            self.n_samples_seen_ = 0
        elif head is not None:
            raise ValueError(
                "partial_fit takes the head on its first call only (a stream's head is "
                "fixed); call fit, or clone the detector, to start a new stream."
            )
        if y is not None:
            X = X[check_id_mask(y, X.shape[0], type(self).__name__, require_id=False)]
        # the stream's float64 sum lives on the detector (saved with it), summed in place
        stream = RunningMean(len(self._feature_sum), self._feature_sum, self.n_samples_seen_)
        stream.update(X)
        if stream.n == 0:
            raise ValueError(
                f"{type(self).__name__}.partial_fit has seen no in-distribution rows yet "
                "(every row so far was marked y == 0)."
            )
        total, head = stream.total, self._stream_head
        names = self.__dict__.get("feature_names_in_")
        self.fit_from_mean(head, stream.mean, n_samples=stream.n)
        # fit_from_mean starts afresh; the stream (and its column names) goes on
        self._feature_sum, self._stream_head = total, head
        if names is not None:
            self.feature_names_in_ = names
        return self

    def score_samples(self, X):
        """Score inputs: higher means more in-distribution.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Penultimate features. float16, float32 and float64 are accepted;
            the products run chunk by chunk in float64 for float64 input and
            in float32 otherwise, so a row's score does not depend on the
            batch it is scored in (to float64 rounding for float64 input;
            docs/api.md "Same row, same score" gives the float32 bound). A
            dask array returns a lazy dask array of scores. Under
            ``sklearn.set_config(array_api_dispatch=True)``, a detector with
            the tag ``array_api_support`` scores a torch (CuPy, ...) array on
            its device (docs/api.md "Arrays from any framework (Array API)").

        Returns
        -------
        scores : ndarray of shape (n_samples,), float64
            In ``X``'s namespace and on its device under Array API dispatch.
        """
        check_is_fitted(self)
        if is_dask(X):
            from ._dask import score_dask

            return score_dask(self, X)
        check_namespace(self, X, "score_samples")
        space = array_space(X, self)
        if space is not None:
            return self._score_all(validate_rows(self, X, space, reset=False))
        X = validate_data(
            self, X, reset=False, dtype=FLOAT_DTYPES, ensure_all_finite=False
        )
        return self._score_all(X)

    def predict_class(self, X):
        """The class of each row by the classifier this detector scores with.

        The argmax of the logits its score reads (:meth:`classifier_block`;
        the dense head's unless the tag ``changes_classifier`` is set). The
        searches' guard and ``skdice evaluate``'s ID accuracy read it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), int64
        """
        check_is_fitted(self)
        check_namespace(self, X, "predict_class")
        space = array_space(X, self)
        if space is not None:
            return predict_class_in_namespace(self, validate_rows(self, X, space, reset=False))
        X = validate_data(self, X, reset=False, dtype=FLOAT_DTYPES, ensure_all_finite=False)
        classes = score_in_chunks(
            X, lambda block: self.classifier_block(block).argmax(axis=1).astype(np.float64),
            self.block_width or X.shape[1],
        )
        return classes.astype(np.int64)

    def classifier_block(self, X):
        """The logits of one chunk of rows by the classifier this detector scores with (extension point).

        The dense head's; a detector that changes it returns what its score reads.

        Parameters
        ----------
        X : ndarray of shape (n_rows, n_features), float32 or float64

        Returns
        -------
        ndarray of shape (n_rows, n_classes)
        """
        weight = self.weight_ if isinstance(X, np.ndarray) else weight_as(self.weight_, X.dtype)
        Z = X @ weight
        Z += self.bias_
        return Z

    def effective_params(self, n_features, n_classes=None, n_samples=None):
        """The parameters as they act on data of this shape (extension point of the searches).

        The searches drop, before scoring, a candidate that cannot apply
        (ValueError) and repeats of one that acts alike (GEN's ``M > C``).

        Parameters
        ----------
        n_features : int
        n_classes : int or None
            None when there is no head.
        n_samples : int or None
            Fitting rows (None: unknown).

        Returns
        -------
        dict
            ``get_params()``, with the values that act differently replaced.

        Raises
        ------
        ValueError
            When a parameter cannot apply to data of this shape.
        """
        return self.get_params()

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
        check_namespace(self, X, "decision_function")
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
            int64 in ``X``'s namespace under Array API dispatch.
        """
        check_is_fitted(self)
        check_namespace(self, X, "predict")
        decision = self.decision_function(X)
        if isinstance(decision, np.ndarray):
            return np.where(decision >= 0, 1, -1)
        xp = array_space(decision)[0]  # +1 / -1 as int64 in X's namespace
        return xp.astype(decision >= 0, xp.int64) * 2 - 1

    # -------------------------------------------------------------- helpers
    # The running state of partial_fit: a float64 sum and the stream's head.
    def _stream_reset(self):
        for key in ("_feature_sum", "_stream_head", "n_samples_seen_"):
            self.__dict__.pop(key, None)

    def _check_calibrated(self):
        if np.isnan(self.offset_):
            how = (
                "partial_fit, so offset_ is not calibrated: run "
                "skdice.workflows.fit.calibrate_offset(detector, chunks) over ID rows"
                if "n_samples_seen_" in self.__dict__
                else "train_mean only or with calibrate=False, so offset_ is not calibrated: "
                "call fit with in-distribution features X"
            )
            raise ValueError(
                f"{type(self).__name__} was fitted from {how} to use decision_function "
                "or predict (score_samples works as is)."
            )

    def _score_all(self, X) -> np.ndarray:
        if not isinstance(X, np.ndarray) and array_space(X) is not None:
            return score_in_namespace(X, self.score_block, self.block_width or X.shape[1])
        return score_in_chunks(X, self.score_block, self.block_width or X.shape[1])

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

    @staticmethod
    def _take(value, current, name):
        if current is not None:
            raise TypeError(f"{name} was given both positionally and by keyword.")
        return value

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
