"""The paper's four figures for the splits of a feature store (``skdice plot``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._dice import DICEDetector
from .._numeric import Moments, located_errors
from .._plotting import (
    PAPER_PS,
    contribution_covariance_from_moments,
    histogram_data,
    p_sweep_from_scores,
    plot_contribution_covariance,
    plot_p_sweep,
    plot_score_histograms,
    plot_unit_contributions,
    unit_contributions_from_moments,
)
from .._validation import check_grid, check_sparsity
from .resolve import (
    SplitFeatures,
    check_split_lists,
    open_feature_store,
    resolve_train_mean,
    stream_mean,
)

__all__ = ["MAX_BINS", "MAX_SWEEP", "check_file_prefix", "plot_store"]

#: The most histogram bins (docs/cli.md, "Ranges"): more draws nothing finer and allocates without bound.
MAX_BINS = 10000
#: The most sparsities of the p sweep: each is one DICE head scoring every block of every split.
MAX_SWEEP = 100

_PREFIX = re.compile(r"[A-Za-z0-9_.-]*")


def check_file_prefix(prefix: str) -> str:
    """Check a file-name prefix before any path is built: nothing may leave the output folder.

    Parameters
    ----------
    prefix : str

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For a prefix with a path separator, ``..`` or other characters than
        letters, digits, ``.``, ``_`` and ``-``.
    """
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix) or ".." in prefix:
        raise ValueError(
            f"prefix={prefix!r} may hold letters, digits, '.', '_' and '-' only, "
            "no folder part: the figures are written inside out_dir."
        )
    return prefix


def plot_store(
    store,
    out_dir,
    *,
    id_split: str,
    ood_splits: Sequence[str],
    train_split: str | None = None,
    train_mean=None,
    p: float = 0.9,
    class_index: int | None = None,
    ps: Sequence[float] = PAPER_PS,
    bins: int = 50,
    prefix: str = "",
) -> dict:
    """Write the four figures for the splits of a feature store.

    Parameters
    ----------
    store : str, Path or FeatureStore
        A feature store written by ``skdice extract`` (or one already open).
    out_dir : str or Path
        Folder for the PNG files (created if needed).
    id_split : str
        The in-distribution test split.
    ood_splits : sequence of str
        OOD splits.
    train_split : str, default=None
        Split whose mean feature defines the DICE mask.
    train_mean : array-like or str or Path, default=None
        The mean training feature itself, or a ``.npy`` file holding it.
        Give exactly one of ``train_split`` and ``train_mean``.
    p : float, default=0.9
        DICE sparsity for the histograms and for the kept units marked on the
        covariance figure.
    class_index : int, default=None
        Class of the unit-contribution and covariance figures, 0 to
        ``n_classes - 1`` (a negative one is refused before the store is
        opened, one past the head's classes before any row is read); default: the
        most frequent label of the ID split (the class the head predicts most
        often when the split has no labels). ID rows are those labelled with this class
        (or predicted as it, when the split has no labels).
    ps : sequence of float, default=PAPER_PS
        Sparsities of the sweep: distinct, each in [0, 1), at most
        :data:`MAX_SWEEP` (100).
    bins : int, default=50
        Histogram bins, 1 to :data:`MAX_BINS` (10000).
    prefix : str, default=""
        Prepended to the file names: letters, digits, ``.``, ``_``, ``-``
        only (no folder part), so every file lands in ``out_dir``.

    Returns
    -------
    dict
        ``{"histograms": Path, "contributions": Path, "p_sweep": Path,
        "covariance": Path}`` and ``"data"``: the four data dicts. The
        covariance figure (Figure 6) has one panel per OOD split: the
        covariance matrix of the contributions to ``class_index`` over that
        split, units sorted by their ID contribution, DICE's dropped units
        (at ``p``) first.

    Notes
    -----
    No split is loaded whole: each is read block by block
    (:class:`~skdice.workflows.resolve.SplitFeatures`). The training split
    is read once for its mean; the ID split and every OOD split once, every
    DICE head (``p = 0``, ``p`` and each of ``ps``) scoring a block before
    the next is read, while the same blocks add to the float64 moments of
    the figures (one pass, Chan et al.'s pairwise merge of each block's mean,
    centred sums of squares and, over an OOD split, co-moment matrix). Only
    when the ID split has no labels and ``class_index`` is None is it read a
    second time, for the moments of the rows predicted as the class chosen
    by the first pass. Memory: a few blocks, 8 bytes a row per distinct
    ``p`` and split (the scores) and one ``n_features x n_features`` matrix
    per OOD split.
    """
    ood_splits = check_split_lists(id_split, ood_splits)
    p = check_sparsity(p)
    ps = check_grid(ps, "ps").tolist()
    if len(ps) > MAX_SWEEP:
        raise ValueError(f"ps holds {len(ps)} sparsities; the sweep takes at most {MAX_SWEEP} "
                         "(each is one DICE head scoring every row).")
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or not 1 <= bins <= MAX_BINS:
        raise ValueError(f"bins must be an integer from 1 to {MAX_BINS}, got {bins!r}.")
    if class_index is not None and (isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer))
                                    or class_index < 0):
        raise ValueError(f"class {class_index!r} is out of range: a class is an integer from 0 to the number "
                         "of classes - 1.")
    check_file_prefix(prefix)
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ValueError(f"the output folder {out_dir} exists and is not a folder.")
    if (train_split is None) == (train_mean is None):
        raise ValueError("give exactly one of train_split=SPLIT or train_mean=FILE.npy.")
    fs = open_feature_store(store)
    head = fs.head
    if class_index is not None and not 0 <= class_index < head.n_classes:
        raise ValueError(f"class {class_index} is out of range for {head.n_classes} classes.")
    # Opened first, so that a missing or incomplete split fails before any row is read.
    id_X = SplitFeatures(fs, id_split)
    ood_X = {name: SplitFeatures(fs, name) for name in ood_splits}
    if train_split is not None:
        mean = stream_mean(fs, train_split)
    else:
        mean = resolve_train_mean(train_mean, head.n_features)

    # One DICE head per distinct p: the histograms' p = 0 and p, and the sweep's.
    detectors = {}
    for pp in (0.0, p, *ps):
        if pp not in detectors:
            detectors[pp] = DICEDetector(p=pp).fit(head=head, train_mean=mean)
    read = _read_id_split(fs, id_split, id_X, detectors, class_index)
    for name, X in ood_X.items():
        read.ood_moments[name] = Moments(head.n_features, cross=True)
        read.ood_scores[name], _ = _read_split(X, detectors, read.ood_moments[name])
    data = _figures_data(read, head, mean, p, ps, bins, kept=detectors[p].mask_[:, read.class_index])
    paths = _draw(data, Path(out_dir), prefix, model=fs.model or "model", id_split=id_split,
                  class_index=read.class_index, p=p)
    paths["data"] = data
    return paths


class _StreamedSplits:
    """What the one pass over the ID and OOD splits gives the figures."""

    def __init__(self, class_index, id_scores, id_moments):
        self.class_index = class_index
        self.id_scores = id_scores
        self.id_moments = id_moments
        self.ood_scores = {}
        self.ood_moments = {}


def _read_id_split(fs, id_split, id_X, detectors, class_index):
    """The ID split read once (twice when unlabelled and no class is given): scores and class moments."""
    head = fs.head
    dense = detectors[0.0]
    labels = fs.labels(id_split)
    labelled = bool((labels >= 0).any())
    if class_index is None and labelled:
        class_index = int(np.bincount(labels[labels >= 0], minlength=head.n_classes).argmax())
    # The ID rows of the contribution figure are those labelled with the class (predicted
    # as it when the split has no labels). Known during the read unless the class is the
    # one predicted most often: then a second pass over the ID split collects them.
    id_moments = Moments(head.n_features)
    id_scores, predicted = _read_split(
        id_X, detectors, None if class_index is None else id_moments,
        predict=None if labelled else lambda block: dense.predict_class(block, masked=False),
        labels=labels if labelled else None, class_index=class_index,
    )
    if class_index is None:
        class_index = int(np.bincount(predicted, minlength=head.n_classes).argmax())
        chosen = predicted == class_index
        for start, block in id_X.iter_blocks():
            id_moments.update(block[chosen[start : start + block.shape[0]]])
    if id_moments.n == 0:
        raise ValueError(f"no row of split {id_split!r} belongs to class {class_index}.")
    return _StreamedSplits(class_index, id_scores, id_moments)


def _figures_data(read, head, mean, p, ps, bins, *, kept):
    """The four figures' data from the streamed scores and moments."""
    ood_splits = list(read.ood_scores)
    panels = {}
    for label, pp in (("energy (p=0)", 0.0), (f"DICE (p={p:g})", p)):
        panels[label] = histogram_data(
            read.id_scores[pp], {k: v[pp] for k, v in read.ood_scores.items()}, bins=bins
        )
    contrib = {
        name: unit_contributions_from_moments(read.id_moments, read.ood_moments[name], head.weight,
                                              read.class_index, train_mean=mean)
        for name in ood_splits
    }
    sweep = p_sweep_from_scores(
        ps, [read.id_scores[pp] for pp in ps], {k: [v[pp] for pp in ps] for k, v in read.ood_scores.items()}
    )
    covariance = {
        name: contribution_covariance_from_moments(
            read.ood_moments[name], head.weight, read.class_index, train_mean=mean, kept=kept,
        )
        for name in ood_splits
    }
    return {"histograms": panels, "contributions": contrib, "p_sweep": sweep, "covariance": covariance}


def _draw(data, out_dir, prefix, *, model, id_split, class_index, p):
    """The four PNG files of the figures' data, named ``<prefix><figure>.png`` in ``out_dir``."""
    return {
        "histograms": plot_score_histograms(
            data["histograms"], out_dir / f"{prefix}histograms.png",
            title=f"{model}: ID {id_split} (blue) vs OOD (grey)",
        ),
        "contributions": plot_unit_contributions(
            data["contributions"], out_dir / f"{prefix}contributions.png",
            title=f"{model}: unit contributions to class {class_index}, ID {id_split}",
        ),
        "p_sweep": plot_p_sweep(data["p_sweep"], out_dir / f"{prefix}p_sweep.png",
                                title=f"{model}: DICE over p, ID {id_split}"),
        "covariance": plot_contribution_covariance(
            data["covariance"], out_dir / f"{prefix}covariance.png",
            title=f"{model}: covariance of unit contributions to class {class_index} "
            f"(units by ID contribution; dashed: DICE p={p:g} boundary)",
        ),
    }


def _read_split(X, detectors, moments=None, *, predict=None, labels=None, class_index=None):
    """Read a split once: every detector scores a block (and ``predict`` classifies it)
    before the next block is read, then the block's rows join ``moments``: all of them,
    or with ``class_index`` those labelled (by ``labels``, else predicted) as that class.

    Returns the scores by detector key (float64, one per row) and the predictions (or None).
    """
    n = X.shape[0]
    scores = {key: np.empty(n) for key in detectors}
    predicted = np.empty(n, dtype=np.int64) if predict is not None else None
    by = labels if labels is not None else predicted
    for start, block in X.iter_blocks():
        stop = start + block.shape[0]
        # scoring checks that every row is finite, so the moments only see finite rows
        with located_errors(X, start, block):
            for key, det in detectors.items():
                scores[key][start:stop] = det.score_samples(block)
            if predict is not None:
                predicted[start:stop] = predict(block)
        if moments is not None:
            moments.update(block if class_index is None else block[by[start:stop] == class_index])
    return scores, predicted
