"""The paper's analysis of why DICE works, as functions on your own features.

Section 6 of the paper writes the logit of class ``c`` as a sum of *unit
contributions* ``v_i = W_ic h_i(x)`` (Eq. 6) and DICE's logit as the sum over
the kept ("top") units only (Eq. 7), and shows that for independent units
dropping units lowers the output variance by the dropped units' variances
(Proposition 1, Lemma 2); for correlated units the reduction gains covariance
terms (Remark 1, Appendix E) and is negative when the dropped units are
anti-correlated with the kept ones. This module computes those quantities from
samples:

- :func:`unit_contributions`: the mean and variance of every ``v_i`` over a
  data set, in the order of the ID mean contribution (Figures 1 and 5);
- :func:`variance_decomposition`: the exact sample decomposition of
  ``Var[f_c] - Var[f_c^DICE]`` of Appendix E;
- :func:`sparsity_profile` (with :func:`ood_score_std` and
  :func:`output_mean_gap`): Table 4's normalised OOD score STD and Table 6's
  ID - OOD mean output gap as functions of ``p``.

All accumulations are in float64 and run over row chunks, so memory does not
grow with the number of samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np
from sklearn.utils import check_array

from ._head import Head
from ._numeric import column_mean, logit_blocks, logsumexp_rows, row_chunks
from ._search_grid import DEFAULT_GRID
from ._training import masked_heads, training_mean
from ._validation import (
    FLOAT_DTYPES,
    check_features,
    check_grid,
    check_train_mean,
    resolve_head,
)

__all__ = [
    "UnitContributions",
    "VarianceDecomposition",
    "unit_contributions",
    "variance_decomposition",
    "sparsity_profile",
    "ood_score_std",
    "output_mean_gap",
]


# ------------------------------------------------------------------ helpers
def _as_samples(X, name):
    X = check_array(X, dtype=FLOAT_DTYPES, ensure_min_samples=1, input_name=name)
    return X


def _check_ddof(n, ddof, name):
    if not isinstance(ddof, Integral) or ddof < 0:
        raise ValueError(f"ddof must be a non-negative integer, got {ddof!r}.")
    if n - ddof <= 0:
        raise ValueError(
            f"{name} has {n} rows: a variance with ddof={ddof} needs more than {ddof}."
        )


def _check_class(c, n_classes):
    if not isinstance(c, Integral) or isinstance(c, bool):
        raise ValueError(f"c must be a class index (int), got {c!r}.")
    if not -n_classes <= c < n_classes:
        raise ValueError(f"class index c={c} is out of range for {n_classes} classes.")
    return int(c) % n_classes


def _weight_matrix(W):
    if isinstance(W, Head):
        return W.weight
    return Head(W).weight


def _check_kept(kept, m):
    """A boolean mask of shape (m,) from a boolean mask or distinct unit indices."""
    arr = np.asarray(kept)
    if arr.dtype == bool:
        if arr.shape != (m,):
            raise ValueError(
                f"kept must be a boolean mask of shape ({m},) or unit indices, got shape {arr.shape}."
            )
        return arr.copy()
    if arr.size == 0:
        return np.zeros(m, dtype=bool)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise ValueError(
            f"kept must be a boolean mask of shape ({m},) or a 1-D array of unit "
            f"indices, got dtype {arr.dtype} and shape {arr.shape}."
        )
    if arr.min() < 0 or arr.max() >= m:
        raise ValueError(f"kept has unit indices outside [0, {m}): {arr.min()}..{arr.max()}.")
    if np.unique(arr).size != arr.size:
        raise ValueError("kept has repeated unit indices.")
    mask = np.zeros(m, dtype=bool)
    mask[arr] = True
    return mask


def _centred_moments(X, weight, kept, ddof):
    """Two-pass float64 moments of the contributions ``v = X * weight``.

    Returns the per-unit variances, the variance of the sum over all units and
    the variance of the sum over the kept units.
    """
    n, m = X.shape
    mean = column_mean(X)
    if weight is not None:
        mean = mean * weight
    unit_ss = np.zeros(m)
    dense_ss = kept_ss = 0.0
    for rows in row_chunks(n, 8 * 3 * m):
        # a fresh float64 block: never centre the caller's array in place
        D = np.array(X[rows], dtype=np.float64)
        if weight is not None:
            D *= weight
        D -= mean
        unit_ss += np.einsum("ij,ij->j", D, D)
        if kept is not None:
            s_all = D.sum(axis=1)
            s_kept = D[:, kept].sum(axis=1)
            dense_ss += float(s_all @ s_all)
            kept_ss += float(s_kept @ s_kept)
    denom = n - ddof
    return mean, unit_ss / denom, dense_ss / denom, kept_ss / denom


# ------------------------------------------------------- unit contributions
@dataclass(frozen=True)
class UnitContributions:
    """Per-unit contribution statistics for one class, sorted by the ID mean.

    Attributes
    ----------
    c : int
        The class.
    order : ndarray of shape (n_features,), int
        Unit indices sorted by their ID mean contribution ``V[i, c]``, from
        the most negative to the most positive (ties by unit index).
    id_mean : ndarray of shape (n_features,)
        The ID mean contribution of each unit, in ``order`` (the sort key).
    mean : ndarray of shape (n_features,)
        Mean of ``W_ic h_i(x)`` over the data set, in ``order``.
    var : ndarray of shape (n_features,)
        Variance of ``W_ic h_i(x)`` over the data set, in ``order``.
    """

    c: int
    order: np.ndarray
    id_mean: np.ndarray
    mean: np.ndarray
    var: np.ndarray


def unit_contributions(X, W, c, *, id_mean=None, ddof=1):
    """Mean and variance of every unit's contribution to class ``c``.

    The unit contribution is ``v_i(x) = W_ic h_i(x)`` (Section 6, the summands
    of Eq. 6). Units are sorted by their mean contribution on ID data, so that
    ID and OOD data sets plot on the same axis: the data of Figures 1 and 5
    (solid line: ``mean``; shade: ``var``).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Penultimate features of the data set to describe (ID or OOD).
    W : array-like of shape (n_features, n_classes) or Head
        Head weight in the paper's orientation.
    c : int
        Class index.
    id_mean : array-like of shape (n_features,), default=None
        Mean ID training feature, which defines the order (``V[:, c] =
        id_mean * W[:, c]``). ``None`` uses the mean of ``X``, i.e. ``X`` is the
        ID data. Pass it when ``X`` is OOD data.
    ddof : int, default=1
        Delta degrees of freedom of the variance.

    Returns
    -------
    UnitContributions

    Notes
    -----
    Since ``W`` is fixed, ``E[v_i] = W_ic E[h_i]`` and ``Var[v_i] = W_ic^2
    Var[h_i]``: one float64 two-pass over ``X`` serves every class.

    Examples
    --------
    >>> import numpy as np
    >>> from skdice.theory import unit_contributions
    >>> X = np.array([[1.0, 0.0], [3.0, 2.0]])
    >>> uc = unit_contributions(X, np.array([[1.0], [-1.0]]), 0)
    >>> uc.order.tolist(), uc.mean.tolist(), uc.var.tolist()
    ([1, 0], [-1.0, 2.0], [2.0, 2.0])
    """
    weight = _weight_matrix(W)
    m, n_classes = weight.shape
    c = _check_class(c, n_classes)
    X = check_features(X, "X", m, "unit_contributions")
    _check_ddof(X.shape[0], ddof, "X")
    mean_h, var_h, _, _ = _centred_moments(X, None, None, ddof)
    if id_mean is None:
        id_feature = mean_h
    else:
        id_feature = check_train_mean(id_mean, m)
    w = weight[:, c].astype(np.float64)
    key = id_feature * w
    order = np.argsort(key, kind="stable")
    return UnitContributions(
        c=c,
        order=order,
        id_mean=key[order],
        mean=(w * mean_h)[order],
        var=(w * w * var_h)[order],
    )


# ---------------------------------------------------- variance decomposition
@dataclass(frozen=True)
class VarianceDecomposition:
    """The terms of Appendix E's variance reduction, from samples.

    ``var_dense - var_masked == dropped_variance + all_pairs_covariance -
    kept_pairs_covariance`` up to rounding. The reduction is reported as it
    is: negative when the masked output varies more than the dense one.

    Attributes
    ----------
    var_dense : float
        ``Var[f_c]``, the sample variance of the sum over all units (Eq. 6).
    var_masked : float
        ``Var[f_c^DICE]``, the sample variance of the sum over the kept units (Eq. 7).
    dropped_variance : float
        ``sum_{dropped i} sigma_i^2``: the whole reduction under Lemma 2.
    all_pairs_covariance : float
        ``2 sum_{i<j} Cov(v_i, v_j)`` over all pairs of units.
    kept_pairs_covariance : float
        ``2 sum_{i<j} Cov(v_i, v_j)`` over pairs of kept units.
    unit_variance : ndarray of shape (n_units,)
        ``sigma_i^2`` of every unit, in the input's column order.
    kept : ndarray of shape (n_units,), bool
        The kept units.
    """

    var_dense: float
    var_masked: float
    dropped_variance: float
    all_pairs_covariance: float
    kept_pairs_covariance: float
    unit_variance: np.ndarray
    kept: np.ndarray

    @property
    def reduction(self) -> float:
        """``var_dense - var_masked``."""
        return self.var_dense - self.var_masked

    @property
    def decomposed_reduction(self) -> float:
        """The right-hand side of Appendix E: dropped + all pairs - kept pairs."""
        return self.dropped_variance + self.all_pairs_covariance - self.kept_pairs_covariance


def variance_decomposition(X, kept, *, weight=None, ddof=1):
    """Split the variance reduction of the masked output into Appendix E's terms.

    With unit contributions ``v_i`` (columns of the sample matrix), the dense
    output ``f_c = sum_i v_i`` (Eq. 6) and the masked output ``f_c^DICE =
    sum_{kept i} v_i`` (Eq. 7), the sample variances satisfy exactly

    ``Var[f_c] - Var[f_c^DICE] = sum_{dropped i} sigma_i^2
    + 2 sum_{i<j} Cov(v_i, v_j) - 2 sum_{kept i<j} Cov(v_i, v_j)``

    (Appendix E; Lemma 2 is the case where the covariances vanish). With
    ``d`` and ``k`` the sums of the dropped and of the kept contributions the
    reduction is also ``Var(d) + 2 Cov(d, k)`` (Remark 1): negative when
    ``Cov(d, k) < -Var(d) / 2``, and then reported as it is.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_units)
        Samples of the unit contributions ``v``, one row per input; or, with
        ``weight``, penultimate features ``h`` and ``v = h * weight`` is formed
        chunk by chunk.
    kept : array-like of shape (n_units,) bool, or array-like of int
        The kept units, as a mask or as indices. For DICE and class ``c``:
        ``detector.mask_[:, c]``. Any set is allowed, not only top units.
    weight : array-like of shape (n_units,), default=None
        The head's column ``W[:, c]`` for class ``c`` when ``X`` holds features.
    ddof : int, default=1
        Delta degrees of freedom of every variance and covariance.

    Returns
    -------
    VarianceDecomposition

    Notes
    -----
    No ``m x m`` covariance matrix is formed: the covariance sums come from
    Appendix E's first equation, ``Var[sum_S v] = sum_S sigma_i^2 + 2
    sum_{S, i<j} Cov(v_i, v_j)`` read backwards, with every variance a
    float64 two-pass over centred rows. The cost is O(n m) and the identity
    above holds to rounding; the tests check every term against explicit
    covariance-matrix sums.

    Examples
    --------
    >>> import numpy as np
    >>> from skdice.theory import variance_decomposition

    Two anti-correlated units: dropping the first one raises the variance,
    although Lemma 2's formula (the dropped variance) would predict a drop.

    >>> V = np.array([[1.0, -0.9], [-1.0, 1.1], [1.0, -1.1], [-1.0, 0.9]])
    >>> d = variance_decomposition(V, [False, True])
    >>> round(d.var_dense, 4), round(d.var_masked, 4), round(d.reduction, 4)
    (0.0133, 1.3467, -1.3333)
    >>> round(d.dropped_variance, 4), round(d.all_pairs_covariance - d.kept_pairs_covariance, 4)
    (1.3333, -2.6667)
    """
    X = _as_samples(X, "X")
    n, m = X.shape
    _check_ddof(n, ddof, "X")
    if weight is not None:
        weight = np.asarray(weight, dtype=np.float64).reshape(-1)
        if weight.shape != (m,):
            raise ValueError(
                f"weight must be the head column W[:, c] of shape ({m},), got {weight.shape}."
            )
        if not np.isfinite(weight).all():
            raise ValueError("weight contains NaN or infinity.")
    mask = _check_kept(kept, m)
    _, unit_var, var_dense, var_masked = _centred_moments(X, weight, mask, ddof)
    total = float(unit_var.sum())
    kept_total = float(unit_var[mask].sum())
    return VarianceDecomposition(
        var_dense=var_dense,
        var_masked=var_masked,
        dropped_variance=float(unit_var[~mask].sum()),
        all_pairs_covariance=var_dense - total,
        kept_pairs_covariance=var_masked - kept_total,
        unit_variance=unit_var,
        kept=mask,
    )


# --------------------------------------------------------- sparsity profile
def _profile_pass(X, masked_weight, bias, c):
    """Energy scores and the chosen output (max logit or logit c), chunk by chunk."""
    n = X.shape[0]
    energy = np.empty(n)
    output = np.empty(n)
    for rows, logits in logit_blocks(X, masked_weight, bias):
        output[rows] = logits.max(axis=1) if c is None else logits[:, c]
        energy[rows] = logsumexp_rows(logits)
    return energy, output


def sparsity_profile(
    X_train=None,
    W=None,
    b=None,
    *,
    head=None,
    train_mean=None,
    X_id,
    X_ood,
    ps=DEFAULT_GRID,
    output="max",
):
    """DICE's effect on ID and OOD outputs over a grid of sparsities (Tables 4 and 6).

    For every ``p``, DICE's head is built from the mean training feature (V
    sorted once) and both data sets are scored in one chunked pass.

    Parameters
    ----------
    X_train : array-like of shape (n_train, n_features), default=None
        ID training features (only their mean is used); or give ``train_mean``.
    W : array-like of shape (n_features, n_classes) or Head, default=None
    b : array-like of shape (n_classes,), default=None
    head : Head, default=None
        The head as one object, instead of ``W`` and ``b``.
    train_mean : array-like of shape (n_features,), default=None
        Precomputed mean training feature.
    X_id : array-like of shape (n_id, n_features)
        ID test features.
    X_ood : array-like of shape (n_ood, n_features)
        OOD features.
    ps : sequence of float in [0, 1), default=(0.1, 0.3, 0.5, 0.7, 0.9, 0.99)
        Sparsities; include 0 for the dense (energy) baseline.
    output : "max" or int, default="max"
        The output ``f_c^DICE`` of Table 6: ``"max"`` for the largest masked
        logit (the energy score's smooth counterpart), or a class index ``c``
        for the masked logit of that class.

    Returns
    -------
    dict of ndarray, one entry per p in the order of ``ps``
        ``p``, ``threshold`` (percentile of V), ``n_kept`` (weights kept),
        ``id_score_mean``, ``ood_score_mean``, ``ood_score_std`` (energy
        scores ``logsumexp`` of the masked logits; STD with ddof=0),
        ``ood_std_normalised`` (``ood_score_std / id_score_mean``, Table 4's
        "OOD STD"), ``id_output_mean``, ``ood_output_mean`` and
        ``output_gap`` (``E_in[f_c^DICE] - E_out[f_c^DICE]``, Table 6).

    Notes
    -----
    Table 4 reports "the standard deviation of energy score for OOD data
    (normalized by the mean of ID data's scores in each setting)"; Table 6 the
    difference of mean outputs, averaged by the paper over six OOD sets (call
    once per set and average). Section 5, Figure 4 and Remark 3.

    Examples
    --------
    >>> import numpy as np
    >>> from skdice.theory import sparsity_profile
    >>> rng = np.random.default_rng(0)
    >>> W = rng.normal(size=(8, 3))
    >>> prof = sparsity_profile(rng.random((50, 8)), W, X_id=rng.random((20, 8)),
    ...                         X_ood=rng.random((20, 8)) * 2, ps=[0, 0.5])
    >>> prof["ood_std_normalised"].shape
    (2,)
    """
    where = "sparsity_profile"
    ps = check_grid(ps, "ps")
    head = resolve_head(W, b, head, where)
    m = head.n_features
    if isinstance(output, str):
        if output != "max":
            raise ValueError(f"output must be 'max' or a class index, got {output!r}.")
        c = None
    else:
        c = _check_class(output, head.n_classes)
    mean = training_mean(X_train, train_mean, m, where)
    X_id = check_features(X_id, "X_id", m, where)
    X_ood = check_features(X_ood, "X_ood", m, where)

    k = ps.size
    out = {
        name: np.empty(k)
        for name in (
            "threshold",
            "id_score_mean",
            "ood_score_mean",
            "ood_score_std",
            "ood_std_normalised",
            "id_output_mean",
            "ood_output_mean",
            "output_gap",
        )
    }
    n_kept = np.empty(k, dtype=np.int64)
    for i, (threshold, mask, masked_weight) in enumerate(masked_heads(mean, head, ps)):
        e_id, o_id = _profile_pass(X_id, masked_weight, head.bias, c)
        e_ood, o_ood = _profile_pass(X_ood, masked_weight, head.bias, c)
        out["threshold"][i] = threshold
        n_kept[i] = int(mask.sum())
        out["id_score_mean"][i] = e_id.mean()
        out["ood_score_mean"][i] = e_ood.mean()
        out["ood_score_std"][i] = e_ood.std()
        out["ood_std_normalised"][i] = out["ood_score_std"][i] / out["id_score_mean"][i]
        out["id_output_mean"][i] = o_id.mean()
        out["ood_output_mean"][i] = o_ood.mean()
        out["output_gap"][i] = out["id_output_mean"][i] - out["ood_output_mean"][i]
    return {"p": ps, "n_kept": n_kept, **out}


def ood_score_std(X_train=None, W=None, b=None, **kwargs):
    """Table 4's "OOD STD": STD of the OOD energy scores over the mean ID score, per p.

    Parameters
    ----------
    X_train, W, b, **kwargs
        As for :func:`sparsity_profile` (``X_id``, ``X_ood`` and ``ps`` by keyword).

    Returns
    -------
    ndarray of shape (len(ps),)
        ``std(S_ood) / mean(S_id)`` with ``S`` the DICE score at each p.

    Examples
    --------
    >>> import numpy as np
    >>> from skdice.theory import ood_score_std
    >>> rng = np.random.default_rng(0)
    >>> W = rng.normal(size=(8, 3))
    >>> ood_score_std(rng.random((50, 8)), W, X_id=rng.random((20, 8)),
    ...               X_ood=rng.random((20, 8)), ps=[0, 0.5]).shape
    (2,)
    """
    return sparsity_profile(X_train, W, b, **kwargs)["ood_std_normalised"]


def output_mean_gap(X_train=None, W=None, b=None, **kwargs):
    """Table 6's gap ``E_in[f_c^DICE] - E_out[f_c^DICE]`` per p.

    Parameters
    ----------
    X_train, W, b, **kwargs
        As for :func:`sparsity_profile` (``X_id``, ``X_ood``, ``ps`` and
        ``output`` by keyword).

    Returns
    -------
    ndarray of shape (len(ps),)

    Examples
    --------
    >>> import numpy as np
    >>> from skdice.theory import output_mean_gap
    >>> rng = np.random.default_rng(0)
    >>> W = rng.normal(size=(8, 3))
    >>> output_mean_gap(rng.random((50, 8)), W, X_id=rng.random((20, 8)),
    ...                 X_ood=rng.random((20, 8)), ps=[0.5], output=1).shape
    (1,)
    """
    return sparsity_profile(X_train, W, b, **kwargs)["output_gap"]

