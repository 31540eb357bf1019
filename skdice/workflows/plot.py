"""The paper's four figures for the splits of a feature store (``skdice plot``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._dice import DICEDetector
from .._numeric import column_mean
from .._plotting import (
    PAPER_PS,
    contribution_covariance,
    histogram_data,
    p_sweep,
    plot_contribution_covariance,
    plot_p_sweep,
    plot_score_histograms,
    plot_unit_contributions,
    unit_contributions,
)
from .._validation import check_sparsity
from .resolve import check_split_lists, open_feature_store, read_features, resolve_train_mean

__all__ = ["check_file_prefix", "plot_store"]

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
            f"prefix {prefix!r} (--prefix) may hold letters, digits, '.', '_' and '-' only, "
            "no folder part: the figures are written inside --out."
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
        The mean training feature itself, or a ``.npy`` file holding it
        (used when ``train_split`` is None).
    p : float, default=0.9
        DICE sparsity for the histograms and for the kept units marked on the
        covariance figure.
    class_index : int, default=None
        Class of the unit-contribution and covariance figures; default: the
        most frequent label of the ID split (the class the head predicts most
        often when the split has no labels). ID rows are those labelled with this class
        (or predicted as it, when the split has no labels).
    ps : sequence of float, default=PAPER_PS
        Sparsities of the sweep.
    bins : int, default=50
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
    """
    ood_splits = check_split_lists(id_split, ood_splits)
    p = check_sparsity(p)
    check_file_prefix(prefix)
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ValueError(f"the output folder {out_dir} exists and is not a folder.")
    fs = open_feature_store(store)
    head = fs.head
    H_id = read_features(fs, id_split)
    H_ood = {name: read_features(fs, name) for name in ood_splits}
    H_train = None
    if train_split is not None:
        H_train = read_features(fs, train_split)
        mean = None
    elif train_mean is not None:
        mean = resolve_train_mean(train_mean, head.n_features)
    else:
        raise ValueError("give train_split (a store split) or train_mean (a .npy file).")

    def fitted(pp):
        det = DICEDetector(p=pp)
        return det.fit(head=head, train_mean=mean) if mean is not None else det.fit(H_train, head=head)

    dice = fitted(p)
    panels = {}
    for label, det in (("energy (p=0)", fitted(0.0)), (f"DICE (p={p:g})", dice)):
        panels[label] = histogram_data(
            det.score_samples(H_id), {k: det.score_samples(v) for k, v in H_ood.items()}, bins=bins
        )

    dense = fitted(0.0)
    predicted = dense.predict_class(H_id, masked=False)
    labels = fs.labels(id_split)
    labelled = (labels >= 0).any()
    if class_index is None:
        # the class the rows are then selected by: the labels when there are any
        by = labels[labels >= 0] if labelled else predicted
        class_index = int(np.bincount(by, minlength=head.n_classes).argmax())
    if not 0 <= class_index < head.n_classes:
        raise ValueError(f"class {class_index} is out of range for {head.n_classes} classes.")
    chosen = labels == class_index if labelled else predicted == class_index
    if not chosen.any():
        raise ValueError(f"no row of split {id_split!r} belongs to class {class_index}.")
    sort_mean = column_mean(H_train) if mean is None else mean
    contrib = {
        name: unit_contributions(H_id[chosen], X, head.weight, class_index, train_mean=sort_mean)
        for name, X in H_ood.items()
    }
    sweep = p_sweep(H_id, H_ood, head, train_mean=mean, train_features=H_train, ps=ps)
    covariance = {
        name: contribution_covariance(
            X, head.weight, class_index, train_mean=sort_mean, kept=dice.mask_[:, class_index]
        )
        for name, X in H_ood.items()
    }

    out_dir = Path(out_dir)
    model = fs.model or "model"
    paths = {
        "histograms": plot_score_histograms(
            panels, out_dir / f"{prefix}histograms.png",
            title=f"{model}: ID {id_split} (blue) vs OOD (grey)",
        ),
        "contributions": plot_unit_contributions(
            contrib, out_dir / f"{prefix}contributions.png",
            title=f"{model}: unit contributions to class {class_index}, ID {id_split}",
        ),
        "p_sweep": plot_p_sweep(sweep, out_dir / f"{prefix}p_sweep.png",
                                title=f"{model}: DICE over p, ID {id_split}"),
        "covariance": plot_contribution_covariance(
            covariance, out_dir / f"{prefix}covariance.png",
            title=f"{model}: covariance of unit contributions to class {class_index} "
            f"(units by ID contribution; dashed: DICE p={p:g} boundary)",
        ),
    }
    paths["data"] = {
        "histograms": panels, "contributions": contrib, "p_sweep": sweep, "covariance": covariance,
    }
    return paths
