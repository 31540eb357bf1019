"""The declared capabilities of a detector: :class:`DetectorTags`, read with :func:`detector_tags`."""

from __future__ import annotations

from dataclasses import dataclass, field

from sklearn.utils import Tags

__all__ = ["DetectorTags", "SkdiceTags", "detector_tags", "has_partial_fit"]


@dataclass(slots=True)
class DetectorTags:
    """What a detector needs to be fitted and what it supports, declared, never probed.

    Every detector returns these from ``__sklearn_tags__()`` (as
    ``tags.detector_tags``); they may depend on its parameters (DICE+ReAct is
    fitted from a mean only when its clip ``threshold`` is given). The store
    workflows (``skdice fit``, ``evaluate``, ``score``) read them to choose how
    to fit a detector; nothing makes a trial fit. Read them with
    :func:`detector_tags`.

    Parameters
    ----------
    requires_head : bool, default=True
        ``fit`` needs the classifier head (W, b).
    requires_class_labels : bool, default=False
        ``y`` holds class labels (Mahalanobis) instead of an ID mask.
    accepts_train_mean : bool, default=False
        ``fit(train_mean=...)`` is accepted (the mean then replaces the one of X).
    fits_from_mean : bool, default=False
        The fitted statistics are a function of the mean training feature
        alone: :meth:`BaseDetector.fit_from_mean` works, and so do
        ``partial_fit``, Dask arrays in ``fit`` and
        :func:`skdice.workflows.fit.fit_store` (which stream the mean).
    uses_features : bool, default=True
        The scores depend on the training features. False for detectors whose
        scores are a function of the head alone (MSP, energy, ...): only their
        ``offset_`` sees the fitting rows.
    masked_head : bool, default=False
        The detector scores through a masked head: its score of a row is a
        reduction (energy or maximum softmax) of the logits
        ``masked_head_transform(x) @ masked_weight_ + bias_``, computed by the
        one kernel :func:`skdice._masked.masked_head_scores` (the detector
        mixes in :class:`skdice._masked.MaskedHeadMixin`). The search's
        accuracy guard, evaluate's masked-head accuracy and the CLI read
        the masked head's classes and the kept weights through this tag.
    fits_from_blocks : bool, default=False
        ``fit`` accepts a block source (a store split read block by block,
        :func:`skdice._validation.is_block_source`): the statistics are sums,
        moments, class sums or exact percentiles accumulated over passes of
        the rows, so memory does not grow with them. The store workflows
        then stream the training split instead of loading it. False for
        detectors that keep training rows (KNN's bank, NNGuide, Relation).
    changes_classifier : bool, default=False
        The logits the score reads differ from the dense head's ``X @ W + b``
        (ReAct's clip, ASH's pruning, SCALE's rescaling, every masked head):
        the detector's own classifier, :meth:`BaseDetector.predict_class`,
        may lose ID accuracy. The searches' accuracy guard and evaluate's ID
        accuracy of each method read it through this tag.
    """

    requires_head: bool = True
    requires_class_labels: bool = False
    accepts_train_mean: bool = False
    fits_from_mean: bool = False
    uses_features: bool = True
    masked_head: bool = False
    changes_classifier: bool = False
    fits_from_blocks: bool = False

    @property
    def partial_fit(self) -> bool:
        """Whether ``partial_fit`` is available (the statistic is a running mean)."""
        return self.fits_from_mean

    @property
    def streamed_fit(self) -> bool:
        """Whether ``fit`` accepts a block source: ``fits_from_blocks``, ``fits_from_mean``, or no use of the features."""
        return self.fits_from_blocks or self.fits_from_mean or not self.uses_features

    @property
    def dask_fit(self) -> bool:
        """Whether ``fit`` accepts a dask array (the mean is reduced by Dask)."""
        return self.fits_from_mean


@dataclass(slots=True)
class SkdiceTags(Tags):
    """scikit-learn's :class:`~sklearn.utils.Tags` with skdice's :class:`DetectorTags` added.

    Attributes
    ----------
    detector_tags : DetectorTags
    """

    detector_tags: DetectorTags = field(default_factory=DetectorTags)


def detector_tags(detector) -> DetectorTags:
    """The declared capabilities of a detector instance (see :class:`DetectorTags`).

    Parameters
    ----------
    detector : BaseDetector
        An instance: the tags can depend on its parameters.

    Returns
    -------
    DetectorTags
    """
    if isinstance(detector, type):
        raise TypeError(
            f"detector_tags needs an instance ({detector.__name__}()), got the class: "
            "the tags can depend on the parameters."
        )
    tags = getattr(detector.__sklearn_tags__(), "detector_tags", None)
    if tags is None:
        raise TypeError(f"{type(detector).__name__} is not a skdice detector (no detector_tags).")
    return tags


def has_partial_fit(detector) -> bool:
    """Whether ``detector`` offers ``partial_fit`` (its tag ``partial_fit``).

    Parameters
    ----------
    detector : BaseDetector

    Returns
    -------
    bool
    """
    return detector_tags(detector).partial_fit
