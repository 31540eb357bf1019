"""The paper's figures from features, data first, then pictures (the core's part).

The figures, what each shows and how data and drawing are split are described
in :mod:`skdice.plotting`, the public module users import them from; the
store-driven :func:`skdice.workflows.plot.plot_store` runs all four.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

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

#: The sparsities of the paper's Tables 4 and 7 (``0`` is the dense energy score).
PAPER_PS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99)

_ID_COLOUR = "#1f77b4"
_OOD_COLOUR = "#7f7f7f"


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


# ---------------------------------------------------------------- drawing
def _pyplot():
    from .exceptions import require

    matplotlib = require("matplotlib", "plot")
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path, plt) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Fixed metadata keeps the bytes identical from run to run.
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


def plot_score_histograms(panels: Mapping[str, dict], path, *, title: str | None = None) -> Path:
    """Draw score histograms: one row per OOD set, one column per method.

    Parameters
    ----------
    panels : mapping of str to dict
        Method label (for example ``"energy"``, ``"DICE p=0.9"``) to the output
        of :func:`histogram_data` for that method's scores. All must name the
        same OOD sets.
    path : str or Path
        PNG file to write.
    title : str, default=None
        Figure title.

    Returns
    -------
    Path
        ``path``.
    """
    if not panels:
        raise ValueError("panels is empty: give at least one method.")
    plt = _pyplot()
    methods = list(panels)
    ood_names = list(next(iter(panels.values()))["ood"])
    fig, axes = plt.subplots(
        len(ood_names), len(methods), figsize=(4.2 * len(methods), 2.6 * len(ood_names)),
        squeeze=False,
    )
    for j, method in enumerate(methods):
        data = panels[method]
        edges = data["edges"]
        for i, ood in enumerate(ood_names):
            ax = axes[i, j]
            ax.stairs(data["id"], edges, fill=True, alpha=0.55, color=_ID_COLOUR, label="ID")
            ax.stairs(data["ood"][ood], edges, fill=True, alpha=0.55, color=_OOD_COLOUR, label=ood)
            ax.set_title(
                f"{method} | {ood}: OOD std / ID mean = {data['ood_std'][ood] / data['id_mean']:.3f}",
                fontsize=8,
            )
            ax.legend(fontsize=7, loc="upper left")
            ax.tick_params(labelsize=7)
            if i == len(ood_names) - 1:
                ax.set_xlabel("score (higher = more in-distribution)", fontsize=8)
            if j == 0:
                ax.set_ylabel("density", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_unit_contributions(data: Mapping[str, dict], path, *, title: str | None = None) -> Path:
    """Draw unit contributions: the ID panel, then one panel per OOD set.

    Each panel shows the mean contribution of every unit (line) and a band of
    one standard deviation around it, units in the order of ``data``.

    Parameters
    ----------
    data : mapping of str to dict
        OOD name to the output of :func:`unit_contributions`, all for the same
        class, ID data and unit order (the ID panel is drawn from the first).
    path : str or Path
        PNG file to write.
    title : str, default=None

    Returns
    -------
    Path
    """
    if not data:
        raise ValueError("data is empty: give at least one OOD set.")
    plt = _pyplot()
    first = next(iter(data.values()))
    panels = [("id", first, _ID_COLOUR, f"ID (n={first['n_id']})")]
    panels += [("ood", d, _OOD_COLOUR, f"{name} (n={d['n_ood']})") for name, d in data.items()]
    n_rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(n_rows, 2, figsize=(9, 2.6 * n_rows), squeeze=False, sharey=True)
    for ax, (who, d, colour, label) in zip(axes.ravel(), panels):
        x = np.arange(d[f"{who}_mean"].size)
        mean, std = d[f"{who}_mean"], np.sqrt(d[f"{who}_var"])
        ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.3, linewidth=0)
        ax.plot(x, mean, color=colour, linewidth=1.0)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_title(f"{label}: contribution to class {d['class_index']}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("unit (sorted by mean ID contribution)", fontsize=8)
        ax.set_ylabel("weight × activation", fontsize=8)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_p_sweep(data: dict, path, *, title: str | None = None) -> Path:
    """Draw FPR95 and the normalised OOD score std against ``p``.

    Parameters
    ----------
    data : dict
        Output of :func:`p_sweep`.
    path : str or Path
        PNG file to write.
    title : str, default=None

    Returns
    -------
    Path
    """
    plt = _pyplot()
    ps = np.asarray(data["p"])
    x = np.arange(ps.size)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, label in ((axes[0], "fpr", "FPR95 (%)"), (axes[1], "ood_std", "OOD score std / ID score mean")):
        scale = 100.0 if key == "fpr" else 1.0
        for name, values in data[key].items():
            avg = name == "average"
            ax.plot(x, scale * np.asarray(values), marker="o", markersize=3,
                    linewidth=2.0 if avg else 1.0, color="black" if avg else None,
                    linestyle="-" if avg else "--", label=name)
        ax.set_xticks(x, [f"{p:g}" for p in ps], fontsize=7)
        ax.set_xlabel("sparsity p (0 = dense energy)", fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_contribution_covariance(
    data: Mapping[str, dict], path, *, title: str | None = None, vmax: float | None = None
) -> Path:
    """Draw covariance matrices of unit contributions, one panel per data set (Figure 6).

    Blue is negative, red positive, white zero, on one symmetric colour scale
    for all panels. Dashed lines mark DICE's boundary: dropped units above and
    left of it, kept units below and right.

    Parameters
    ----------
    data : mapping of str to dict
        Data set name (for example the OOD split) to the output of
        :func:`contribution_covariance`.
    path : str or Path
        PNG file to write.
    title : str, default=None
        Figure title.
    vmax : float, default=None
        End of the colour scale (``-vmax`` to ``vmax``). Default: the 99.9th
        percentile of the absolute off-diagonal entries over all panels, so
        that the few large variances on the diagonal do not wash out the
        covariances (they saturate instead).

    Returns
    -------
    Path
        ``path``.
    """
    if not data:
        raise ValueError("data is empty: give at least one data set.")
    if vmax is not None and not (np.isfinite(vmax) and vmax > 0):
        raise ValueError(f"vmax must be a positive number, got {vmax!r}.")
    if vmax is None:
        off = [np.abs(d["cov"][~np.eye(d["cov"].shape[0], dtype=bool)]) for d in data.values()]
        off = np.concatenate(off) if off else np.zeros(0)
        vmax = float(np.percentile(off, 99.9)) if off.size else 0.0
        if not vmax > 0:
            vmax = max(float(max(np.abs(d["cov"]).max() for d in data.values())), 1.0)
    plt = _pyplot()
    names = list(data)
    fig, axes = plt.subplots(
        1, len(names), figsize=(4.4 * len(names) + 1.2, 5.0), squeeze=False, layout="constrained"
    )
    image = None
    for ax, name in zip(axes[0], names):
        d = data[name]
        image = ax.imshow(d["cov"], cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        if d.get("n_dropped") is not None:
            edge = d["n_dropped"] - 0.5
            ax.axhline(edge, color="black", linewidth=0.8, linestyle="--")
            ax.axvline(edge, color="black", linewidth=0.8, linestyle="--")
        caption = f"{name} (n={d['n']}): Cov of contributions to class {d['class_index']}"
        if d.get("var_dense") is not None:
            caption += f"\nVar f = {d['var_dense']:.3g}, Var f^DICE = {d['var_masked']:.3g}"
        ax.set_title(caption, fontsize=8)
        ax.set_xlabel("unit (sorted by mean ID contribution)", fontsize=8)
        ax.set_ylabel("unit", fontsize=8)
        ax.tick_params(labelsize=7)
    cbar = fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    cbar.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path, plt)
