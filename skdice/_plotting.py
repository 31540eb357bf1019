"""The paper's figures from features, data first, then pictures (the core's part).

The figures, what each shows and how data and drawing are split are described
in :mod:`skdice.plotting`, the public module users import them from; the
store-driven :func:`skdice.workflows.plot.plot_store` runs all four.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "PAPER_PS",
    "histogram_data",
    "unit_contributions",
    "p_sweep",
    "contribution_covariance",
    "unit_contributions_from_moments",
    "p_sweep_from_scores",
    "contribution_covariance_from_moments",
    "plot_score_histograms",
    "plot_unit_contributions",
    "plot_p_sweep",
    "plot_contribution_covariance",
]

# the drawing half of each figure (matplotlib, imported when a figure is drawn)
from ._drawing import (  # noqa: E402
    plot_contribution_covariance,
    plot_p_sweep,
    plot_score_histograms,
    plot_unit_contributions,
)

#: The sparsities of the paper's Tables 4 and 7 (``0`` is the dense energy score).
PAPER_PS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99)

def _scores_1d(values, name):
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity.")
    return arr


def histogram_data(id_scores, ood_scores: Mapping[str, object], *, bins: int = 50) -> dict:
    """Densities of ID and OOD scores on one shared set of bins.

    Parameters
    ----------
    id_scores : array-like of shape (n_id,)
        Scores of the in-distribution set.
    ood_scores : mapping of str to array-like of shape (n_ood,)
        Scores of each named OOD set.
    bins : int, default=50
        Number of equal-width bins spanning the smallest to the largest score
        over all sets.

    Returns
    -------
    dict
        ``edges``: ndarray of shape (bins + 1,); ``id``: ndarray of shape
        (bins,), the ID density (integrates to 1 over the edges); ``ood``:
        dict of name to density; ``id_mean``, ``id_std`` and ``ood_std``
        (dict) for the captions.

    Examples
    --------
    >>> d = histogram_data([0.0, 1.0], {"noise": [0.5]}, bins=2)
    >>> d["edges"].tolist(), d["id"].tolist(), d["ood"]["noise"].tolist()
    ([0.0, 0.5, 1.0], [1.0, 1.0], [0.0, 2.0])
    """
    if int(bins) < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}.")
    if not ood_scores:
        raise ValueError("ood_scores is empty: give at least one named OOD set.")
    id_s = _scores_1d(id_scores, "id_scores")
    ood = {str(k): _scores_1d(v, f"ood_scores[{k!r}]") for k, v in ood_scores.items()}
    lo = min(id_s.min(), *(v.min() for v in ood.values()))
    hi = max(id_s.max(), *(v.max() for v in ood.values()))
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, int(bins) + 1)
    return {
        "edges": edges,
        "id": np.histogram(id_s, bins=edges, density=True)[0],
        "ood": {k: np.histogram(v, bins=edges, density=True)[0] for k, v in ood.items()},
        "id_mean": float(id_s.mean()),
        "id_std": float(id_s.std()),
        "ood_std": {k: float(v.std()) for k, v in ood.items()},
    }


def _weight_and_class(weight, class_index, dtype=None):
    """The head weight as a 2-D array and ``class_index`` as a valid column index."""
    W = np.asarray(weight, dtype=dtype)
    if W.ndim != 2:
        raise ValueError(f"weight must be 2-D (n_features, n_classes), got shape {W.shape}.")
    c = int(class_index)
    if not 0 <= c < W.shape[1]:
        raise ValueError(f"class_index {class_index} is out of range for {W.shape[1]} classes.")
    return W, c


def unit_contributions(
    id_features,
    ood_features,
    weight,
    class_index: int,
    *,
    train_mean=None,
) -> dict:
    """Per-unit contributions ``h_i(x) w_ic`` to one class, ID and OOD, for plotting.

    A thin wrapper over :func:`skdice.theory.unit_contributions` that puts
    the ID and OOD statistics on the same unit order.

    Parameters
    ----------
    id_features : array-like of shape (n_id, n_features)
        In-distribution features (typically only the rows of class
        ``class_index``, as in the paper's Figure 1).
    ood_features : array-like of shape (n_ood, n_features)
        Out-of-distribution features.
    weight : array-like of shape (n_features, n_classes)
        Head weight in the paper's orientation.
    class_index : int
        The class ``c`` whose output ``f_c`` the units contribute to.
    train_mean : array-like of shape (n_features,), default=None
        Mean ID feature that orders the units (by ``train_mean * W[:, c]``,
        DICE's ``V[:, c]``). Default: the mean of ``id_features``.

    Returns
    -------
    dict
        ``order``: ndarray of shape (n_features,), the unit indices in plot
        order (ascending sort key); ``key``: the sort key in that order;
        ``id_mean``, ``id_var``, ``ood_mean``, ``ood_var``: ndarrays of shape
        (n_features,) in that order (float64, variances with ``ddof=1``);
        ``class_index``, ``n_id``, ``n_ood``.

    Notes
    -----
    Section 6 of the paper, Eq. (6)-(7): ``f_c = sum_i v_i`` with
    ``v_i = h_i(x) w_ic``. Summing ``id_mean`` over the units gives the mean
    bias-free logit of class ``c``.
    """
    from .theory import unit_contributions as _theory_contributions

    W, c = _weight_and_class(weight, class_index)
    stats = {}
    for name, X in (("id", id_features), ("ood", ood_features)):
        X = X if hasattr(X, "ndim") else np.asarray(X)
        if X.ndim != 2 or X.shape[1] != W.shape[0]:
            raise ValueError(
                f"{name}_features has shape {X.shape}; expected (n, {W.shape[0]}) to match weight."
            )
        if X.shape[0] < 2:
            raise ValueError(f"{name}_features needs at least 2 rows, got {X.shape[0]}.")
        stats[name] = X
    if train_mean is None:
        from ._numeric import column_mean

        train_mean = column_mean(np.asarray(stats["id"]))
    id_uc = _theory_contributions(stats["id"], W, c, id_mean=train_mean)
    ood_uc = _theory_contributions(stats["ood"], W, c, id_mean=train_mean)
    return {
        "order": id_uc.order,
        "key": id_uc.id_mean,
        "id_mean": id_uc.mean,
        "id_var": id_uc.var,
        "ood_mean": ood_uc.mean,
        "ood_var": ood_uc.var,
        "class_index": c,
        "n_id": int(stats["id"].shape[0]),
        "n_ood": int(stats["ood"].shape[0]),
    }


def unit_contributions_from_moments(id_moments, ood_moments, weight, class_index: int, *,
                                    train_mean) -> dict:
    """:func:`unit_contributions` from streamed feature moments instead of the features.

    For features read block by block (a store split): accumulate each set's
    :class:`skdice._numeric.Moments` over its blocks, then build the figure's
    data from them. Equals :func:`unit_contributions` on the same rows up to
    rounding.

    Parameters
    ----------
    id_moments, ood_moments : Moments
        Moments of the ID rows (typically those of class ``class_index``) and
        of the OOD rows, each over at least 2 rows.
    weight : array-like of shape (n_features, n_classes)
        Head weight in the paper's orientation.
    class_index : int
    train_mean : array-like of shape (n_features,)
        Mean ID feature that orders the units.

    Returns
    -------
    dict
        As :func:`unit_contributions`.
    """
    from ._validation import check_train_mean

    W, c = _weight_and_class(weight, class_index)
    for name, acc in (("id", id_moments), ("ood", ood_moments)):
        if acc.mean.shape != (W.shape[0],):
            raise ValueError(
                f"{name}_moments are of {acc.mean.shape[0]} features; expected {W.shape[0]} "
                "to match weight."
            )
        if acc.n < 2:
            raise ValueError(f"{name}_features needs at least 2 rows, got {acc.n}.")
    # the formulas of skdice.theory.unit_contributions: E[v_i] = w_i E[h_i], Var[v_i] = w_i^2 Var[h_i]
    w = W[:, c].astype(np.float64)
    key = check_train_mean(train_mean, W.shape[0]) * w
    order = np.argsort(key, kind="stable")
    return {
        "order": order,
        "key": key[order],
        "id_mean": (w * id_moments.mean)[order],
        "id_var": (w * w * id_moments.variance(1))[order],
        "ood_mean": (w * ood_moments.mean)[order],
        "ood_var": (w * w * ood_moments.variance(1))[order],
        "class_index": c,
        "n_id": int(id_moments.n),
        "n_ood": int(ood_moments.n),
    }


def p_sweep(
    id_features,
    ood_features: Mapping[str, object],
    head,
    *,
    train_mean=None,
    train_features=None,
    ps: Sequence[float] = PAPER_PS,
    tpr: float = 0.95,
) -> dict:
    """DICE's FPR, AUROC and normalised OOD score spread for each sparsity ``p``.

    Parameters
    ----------
    id_features : array-like of shape (n_id, n_features)
        In-distribution test features.
    ood_features : mapping of str to array-like of shape (n_ood, n_features)
        Features of each named OOD set.
    head : skdice.Head
        The classifier head.
    train_mean : array-like of shape (n_features,), default=None
        Mean training feature that defines the mask.
    train_features : array-like of shape (n_train, n_features), default=None
        Training features, used instead of ``train_mean`` when that is None.
    ps : sequence of float in [0, 1), default=PAPER_PS
        Sparsities; ``p = 0`` is the dense energy score.
    tpr : float, default=0.95
        TPR at which the FPR is read (ID as the positive class).

    Returns
    -------
    dict
        ``p``: ndarray of shape (n_p,); ``fpr``, ``auroc``, ``ood_std``: dicts
        of OOD name to ndarray of shape (n_p,), plus the key ``"average"``
        (the mean over the OOD sets). Metrics are fractions, not percent.
        ``id_mean``: ndarray of shape (n_p,), the mean ID score.

    Notes
    -----
    The spread is the paper's Table 4 column "OOD STD": the standard deviation
    of the OOD scores divided by the mean ID score under the same ``p``
    (:func:`skdice.theory.sparsity_profile`), so that settings whose scores
    have different scales compare.
    """
    from ._dice import DICEDetector
    from .metrics import auroc, fpr_at_tpr

    if train_mean is None and train_features is None:
        raise ValueError("p_sweep needs train_mean or train_features to build the mask.")
    if not ood_features:
        raise ValueError("ood_features is empty: give at least one named OOD set.")
    ps = np.asarray([float(p) for p in ps], dtype=np.float64)
    if ps.size == 0:
        raise ValueError("ps is empty.")
    names = [str(k) for k in ood_features]
    out = {
        "p": ps,
        "fpr": {k: np.empty(ps.size) for k in names},
        "auroc": {k: np.empty(ps.size) for k in names},
        "ood_std": {k: np.empty(ps.size) for k in names},
        "id_mean": np.empty(ps.size),
    }
    from .theory import sparsity_profile

    mask_source = {"train_mean": train_mean} if train_mean is not None else {"X_train": train_features}
    for name, X in zip(names, ood_features.values()):
        out["ood_std"][name][:] = sparsity_profile(
            head=head, X_id=id_features, X_ood=X, ps=ps, **mask_source
        )["ood_std_normalised"]
    for i, p in enumerate(ps):
        det = DICEDetector(p=float(p))
        if train_mean is not None:
            det.fit(head=head, train_mean=train_mean)
        else:
            det.fit(train_features, head=head)
        id_s = det.score_samples(id_features)
        out["id_mean"][i] = float(id_s.mean())
        for name, X in zip(names, ood_features.values()):
            ood_s = det.score_samples(X)
            out["fpr"][name][i] = fpr_at_tpr(id_s, ood_s, tpr=tpr)
            out["auroc"][name][i] = auroc(id_s, ood_s)
    for key in ("fpr", "auroc", "ood_std"):
        out[key]["average"] = np.mean([out[key][k] for k in names], axis=0)
    return out


def p_sweep_from_scores(ps, id_scores, ood_scores: Mapping[str, object], *, tpr: float = 0.95) -> dict:
    """:func:`p_sweep` from the DICE scores of every ``p`` instead of the features.

    For features read block by block: score every block by the detectors of
    all sparsities before reading the next, then build the figure's data from
    the scores. Equals :func:`p_sweep` on the same rows up to rounding.

    Parameters
    ----------
    ps : sequence of float in [0, 1)
        Sparsities, distinct.
    id_scores : sequence of array-like of shape (n_id,)
        DICE's scores of the ID set, one array per ``p``, in the order of ``ps``.
    ood_scores : mapping of str to sequence of array-like of shape (n_ood,)
        For each named OOD set, its scores per ``p``.
    tpr : float, default=0.95

    Returns
    -------
    dict
        As :func:`p_sweep`; ``ood_std`` is ``std(OOD scores, ddof=0) / mean(ID
        scores)`` under the same ``p`` (the definition of
        :func:`skdice.theory.sparsity_profile`'s ``ood_std_normalised``).
    """
    from ._validation import check_grid
    from .metrics import auroc, fpr_at_tpr

    if not ood_scores:
        raise ValueError("ood_scores is empty: give at least one named OOD set.")
    ps = check_grid(ps, "ps")
    names = [str(k) for k in ood_scores]
    if len(id_scores) != ps.size or any(len(v) != ps.size for v in ood_scores.values()):
        raise ValueError(f"give one score array per p ({ps.size}) for the ID and every OOD set.")
    out = {
        "p": ps,
        "fpr": {k: np.empty(ps.size) for k in names},
        "auroc": {k: np.empty(ps.size) for k in names},
        "ood_std": {k: np.empty(ps.size) for k in names},
        "id_mean": np.empty(ps.size),
    }
    for i in range(ps.size):
        id_s = _scores_1d(id_scores[i], "id_scores")
        out["id_mean"][i] = float(id_s.mean())
        for name, per_p in zip(names, ood_scores.values()):
            ood_s = _scores_1d(per_p[i], f"ood_scores[{name!r}]")
            out["fpr"][name][i] = fpr_at_tpr(id_s, ood_s, tpr=tpr)
            out["auroc"][name][i] = auroc(id_s, ood_s)
            out["ood_std"][name][i] = ood_s.std() / out["id_mean"][i]
    for key in ("fpr", "auroc", "ood_std"):
        out[key]["average"] = np.mean([out[key][k] for k in names], axis=0)
    return out


def contribution_covariance(features, weight, class_index: int, *, train_mean, kept=None) -> dict:
    """Covariance matrix of the unit contributions to one class, units in ID order.

    The data of the paper's Figure 6: ``Cov(v_i, v_j)`` of the contributions
    ``v_i = h_i(x) w_ic`` over a data set (OOD in the paper), rows and columns
    sorted by the units' mean contribution on ID data, so that DICE's dropped
    units come first and its kept ("top") units last.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        Features of the data set whose covariance is drawn.
    weight : array-like of shape (n_features, n_classes)
        Head weight in the paper's orientation.
    class_index : int
        The class ``c`` whose output ``f_c`` the units contribute to.
    train_mean : array-like of shape (n_features,)
        Mean ID training feature; it orders the units by ``train_mean *
        W[:, c]`` (DICE's ``V[:, c]``), as in :func:`unit_contributions`.
    kept : array-like of shape (n_features,), bool, default=None
        The kept units of class ``c``, in the input's unit order; for DICE
        ``detector.mask_[:, c]``. Adds the boundary and the two variances.

    Returns
    -------
    dict
        ``order``: ndarray of shape (n_features,), the unit indices in plot
        order; ``key``: the sort key in that order; ``cov``: ndarray of shape
        (n_features, n_features), float64, the covariance (``ddof=1``) with
        rows and columns in ``order``; ``class_index``; ``n``: the number of
        rows. With ``kept``: ``kept`` (bool, in ``order``), ``n_dropped``
        (the number of dropped units when they all precede the kept ones in
        ``order``, as DICE's are, else None), ``var_dense`` (the sum of all
        entries, ``Var[f_c]`` without bias) and ``var_masked`` (the sum over
        the kept block, ``Var[f_c^DICE]``); otherwise these four are None.

    Notes
    -----
    Appendix E: ``Var[f_c] - Var[f_c^DICE]`` is the dropped diagonal plus
    twice the covariances of all pairs minus twice those of kept pairs; the
    paper reports that this matrix "primarily consists of elements of 0".
    :func:`skdice.theory.variance_decomposition` gives the same terms without
    forming the matrix. Accumulated in float64 over row chunks; memory is
    ``O(n_features^2)``.

    Examples
    --------
    >>> import numpy as np
    >>> d = contribution_covariance([[1.0, 0.0], [3.0, 2.0]], [[1.0], [-1.0]], 0,
    ...                             train_mean=[1.0, 1.0], kept=[True, False])
    >>> d["order"].tolist(), d["cov"].tolist(), d["n_dropped"], d["var_masked"]
    ([1, 0], [[2.0, -2.0], [-2.0, 2.0]], 1, 2.0)
    """
    from ._numeric import column_mean, row_chunks
    from ._validation import check_train_mean

    W, c = _weight_and_class(weight, class_index, np.float64)
    m = W.shape[0]
    X = features if hasattr(features, "ndim") else np.asarray(features, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != m:
        raise ValueError(f"features has shape {X.shape}; expected (n, {m}) to match weight.")
    n = X.shape[0]
    if n < 2:
        raise ValueError(f"features needs at least 2 rows for a covariance, got {n}.")
    mean_id = check_train_mean(train_mean, m)
    w = W[:, c]
    mean = column_mean(X)
    scatter = np.zeros((m, m))
    for rows in row_chunks(n, 8 * 2 * m):
        D = np.array(X[rows], dtype=np.float64)
        D -= mean
        D *= w
        scatter += D.T @ D
    return _covariance_data(scatter, n, w, c, mean_id, kept)


def contribution_covariance_from_moments(moments, weight, class_index: int, *, train_mean,
                                         kept=None) -> dict:
    """:func:`contribution_covariance` from streamed feature moments instead of the features.

    For features read block by block (a store split): accumulate a
    :class:`skdice._numeric.Moments` with ``cross=True`` over the blocks (one
    pass, Chan et al.'s merge of the blocks' co-moments), then build the
    figure's data. The contributions' covariance is the features' scaled by
    ``W[:, c]`` on both sides. Equals :func:`contribution_covariance` on the
    same rows up to rounding.

    Parameters
    ----------
    moments : Moments
        Moments of the features (with the co-moment matrix), over at least 2 rows.
    weight : array-like of shape (n_features, n_classes)
    class_index : int
    train_mean : array-like of shape (n_features,)
    kept : array-like of shape (n_features,), bool, default=None

    Returns
    -------
    dict
        As :func:`contribution_covariance`.
    """
    from ._validation import check_train_mean

    W, c = _weight_and_class(weight, class_index, np.float64)
    m = W.shape[0]
    if moments.comoment is None or moments.comoment.shape != (m, m):
        raise ValueError(f"moments need the co-moment matrix of {m} features (cross=True).")
    if moments.n < 2:
        raise ValueError(f"features needs at least 2 rows for a covariance, got {moments.n}.")
    mean_id = check_train_mean(train_mean, m)
    w = W[:, c]
    return _covariance_data(moments.comoment * np.outer(w, w), moments.n, w, c, mean_id, kept)


def _covariance_data(scatter, n, w, c, mean_id, kept) -> dict:
    """The dict of :func:`contribution_covariance` from the contributions' scatter matrix."""
    m = w.shape[0]
    key = mean_id * w
    order = np.argsort(key, kind="stable")
    cov = (scatter / (n - 1))[np.ix_(order, order)]
    if not np.isfinite(cov).all():
        raise ValueError("features contain NaN or infinity.")

    out = {"order": order, "key": key[order], "cov": cov, "class_index": c, "n": int(n),
           "kept": None, "n_dropped": None, "var_dense": None, "var_masked": None}
    if kept is not None:
        mask = np.asarray(kept)
        if mask.dtype != bool or mask.shape != (m,):
            raise ValueError(
                f"kept must be a boolean mask of shape ({m},), got dtype {mask.dtype} and shape {mask.shape}."
            )
        in_order = mask[order]
        t = int((~in_order).sum())
        out["kept"] = in_order
        out["n_dropped"] = t if in_order[t:].all() else None
        out["var_dense"] = float(cov.sum())
        out["var_masked"] = float(cov[np.ix_(in_order, in_order)].sum())
    return out
