"""SparsitySearch: DICE's sparsity ``p`` chosen on ID vs Gaussian-noise validation data.

The specialisation of :class:`~skdice._hyperparameter_search.HyperparameterSearch`
to DICE's ``p`` (Section 4.1 of the paper). It overrides the one evaluation
hook, ``_run_search``: the mean training feature is computed once, the
contribution matrix sorted once (:func:`skdice._training.masked_heads`) and
every candidate's masked head scores each block of the validation rows
through the masked-head kernel (:func:`skdice._masked.masked_head_scores`)
before the next block is read.
"""

from __future__ import annotations

from time import perf_counter

import numpy as np

from ._bootstrap import DEFAULT_N_BOOTSTRAP
from ._decision import CandidateResults
from ._dice import DICEDetector
from ._hyperparameter_search import DEFAULT_MAX_ACCURACY_DROP, HyperparameterSearch, TrainingInfo
from ._masked import masked_head_scores
from ._numeric import located_errors, predicted_classes, row_blocks
from ._search_grid import DEFAULT_GRID
from ._training import masked_heads, training_mean
from ._validation import check_grid

__all__ = ["SparsitySearch"]


class SparsitySearch(HyperparameterSearch):
    """Pick DICE's sparsity ``p`` on ID vs Gaussian-noise validation data, and say when it cannot.

    For every ``p`` of ``grid`` the search scores the in-distribution
    validation features and the noise features with DICE at that ``p`` and
    computes FPR at ``tpr``, AUROC, AUPR-In and AUPR-Out. The paper
    (Section 4.1) takes the best ``p`` on Gaussian noise; skdice applies the
    rule of :class:`HyperparameterSearch` instead: the paper's p = 0.9 (or
    the grid's p nearest to it) stays unless another ``p`` beats it beyond
    sampling noise on every validation set, real OOD (``X_ood``) and
    synthetic (``X_noise``) alike; noise alone never moves it, and the search
    then warns with :class:`~skdice.exceptions.UninformativeValidationWarning`.

    Efficient by construction: the mean training feature is computed once, the
    contribution matrix ``V`` is sorted once and every threshold read from it
    (:func:`skdice.sparsify.dice_thresholds`), and each candidate costs one
    chunked scoring pass over the validation rows with a mask built afresh for
    that ``p`` (with ``y_id``, the guard's class argmax comes from the same
    logits). ``best_estimator_`` is then fitted from the same mean feature
    (no pass over any rows) and calibrated on the ID validation scores
    already computed.

    Parameters
    ----------
    grid : sequence of float, default=(0.1, 0.3, 0.5, 0.7, 0.9, 0.99)
        Candidate sparsities in [0, 1), distinct. ``cv_results_`` keeps this
        order.
    metric : {"fpr95", "auroc"}, default="fpr95"
        Selection criterion. ``"fpr95"``: FPR at ``tpr`` with ID as the positive
        class (lower is better); ``"auroc"`` (higher is better).
    tpr : float, default=0.95
        TPR for the FPR metric, and the ``tpr`` of ``best_estimator_`` (the
        fraction of ID validation rows its ``predict`` keeps).
    guard : bool, default=True
        With ``y_id``, leave out of the choice every ``p`` whose masked head
        loses more than ``max_accuracy_drop`` of ID accuracy.
    max_accuracy_drop : float, default=0.05
        The guard's tolerance, a fraction (0.05 = 5 points).
    n_bootstrap : int, default=200
        Bootstrap resamples behind the intervals.
    confidence : float, default=0.95
        Level of the intervals.
    fallback : bool, default=True
        When uninformative, return the fallback p (False: the best p by the mean metric).
    random_state : int, RandomState instance or None, default=0
        Seed of the resamples.

    Attributes
    ----------
    cv_results_ : dict of ndarray
        scikit-learn's dict-of-arrays format, one entry per candidate in grid
        order, with every key GridSearchCV's single-metric ``cv_results_``
        has (so ``pandas.DataFrame(search.cv_results_)`` works as for
        GridSearchCV): ``mean_fit_time`` (building that ``p``'s mask; the
        first candidate's includes sorting ``V`` once) and ``mean_score_time``
        (scoring both validation sets and computing the metrics), with
        ``std_fit_time`` and ``std_score_time`` (zeros: one split),
        ``params`` (list of ``{"p": p}``), ``param_p`` (masked array,
        like GridSearchCV's), ``split0_test_score`` and ``mean_test_score``
        (greater is better: ``-FPR`` for ``metric="fpr95"``, as scikit-learn's
        ``neg_*`` scores and :data:`skdice.metrics.fpr95_scorer`; AUROC for
        ``"auroc"``), ``std_test_score`` (zeros: one validation split),
        ``rank_test_score`` (1 = best, tied candidates share the smallest
        rank), ``fpr95``, ``auroc``, ``aupr_in``, ``aupr_out`` (fractions,
        every metric for every candidate), ``threshold`` (the percentile of
        ``V``) and ``n_kept`` (weights kept); and the keys of the rule and the
        guard, as in :class:`HyperparameterSearch` (``fpr95_ci_low``,
        ``fpr95_ci_high``, ``auroc_ci_low``, ``auroc_ci_high``, ``gap``,
        ``gap_ci_low``, ``gap_ci_high``, ``worse``, ``separated``,
        ``beats_defaults``, ``id_accuracy``, ``flagged``).
    best_index_ : int
        Index of the chosen candidate in ``cv_results_``.
    best_params_ : dict
        ``{"p": best_p}``.
    best_score_ : float
        ``mean_test_score`` of the chosen candidate (``-FPR`` or AUROC).
    best_estimator_ : DICEDetector
        DICE at the chosen ``p``, fitted from the same mean feature and head.
        Its ``offset_`` is calibrated on the ID validation rows: the
        ``1 - tpr`` quantile of their scores, so ``predict`` keeps the
        fraction ``tpr`` of held-out ID data (DICEDetector.fit would calibrate
        on the training rows, which the search may never see when it is given
        ``train_mean``).
    informative_, informative_reason_, decided_by_, validation_sets_, leader_index_, fallback_index_
        As in :class:`HyperparameterSearch`.
    dense_accuracy_ : float or None
        ID accuracy of the dense head on the labelled rows (None without ``y_id``).
    n_labelled_ : int
    bootstrap_time_ : float
    mean_feature_ : ndarray of shape (n_features,), float64
        The mean ID training feature used for every candidate.
    n_features_in_ : int
        Width of the features.

    See Also
    --------
    skdice.DICEDetector : the detector being tuned.
    HyperparameterSearch : the same search for any detector.
    skdice.metrics.fpr95_scorer : the scorer for the GridSearchCV route.

    Notes
    -----
    **Ties** are broken toward the smaller ``p``: among the candidates with the
    best score, the smallest ``p`` wins, whatever the grid order (less
    sparsity is the less aggressive change to the model). ``GridSearchCV``
    instead takes the first best candidate in the grid's order, so the two
    routes agree on ties whenever the grid is in ascending order, as the
    default is. When *every* candidate ties (or differs from the best only
    within sampling noise) the validation is uninformative and the fallback
    p = 0.9 is returned instead (``fallback=False`` keeps the tie rule).

    **The GridSearchCV route** gives the same choice when the validation is
    informative, with more passes over the data::

        X = np.vstack([X_train, X_id, X_noise])
        y = np.r_[np.ones(len(X_train) + len(X_id)), np.zeros(len(X_noise))]
        fold = np.r_[-np.ones(len(X_train)), np.zeros(len(X_id) + len(X_noise))]
        GridSearchCV(DICEDetector(), {"p": list(grid)}, scoring=fpr95_scorer,
                     cv=PredefinedSplit(fold)).fit(X, y, head=Head(W, b))

    (``head=`` rather than ``W=``: GridSearchCV slices any fit parameter with
    as many rows as ``X``.)

    References
    ----------
    Y. Sun and Y. Li, "DICE: Leveraging Sparsification for Out-of-Distribution
    Detection", ECCV 2022, Section 4.1 and Table 4.

    Examples
    --------
    >>> import numpy as np
    >>> from skdice.tuning import SparsitySearch
    >>> rng = np.random.default_rng(0)
    >>> W, b = rng.normal(size=(16, 4)), np.zeros(4)
    >>> X_train = rng.random((200, 16)); X_id = rng.random((50, 16))
    >>> X_noise = rng.normal(size=(50, 16))
    >>> search = SparsitySearch(fallback=False).fit(X_train, W, b, X_id=X_id, X_noise=X_noise)
    >>> sorted(search.best_params_)
    ['p']
    >>> search.cv_results_["rank_test_score"].shape
    (6,)
    """

    method = "dice"
    _tie_parameter = "p"  # the smallest p among tied candidates, whatever the grid order

    _parameter_constraints: dict = {
        **{k: v for k, v in HyperparameterSearch._parameter_constraints.items() if k != "method"},
        "grid": ["array-like"],
    }

    def __init__(
        self,
        grid=DEFAULT_GRID,
        *,
        metric="fpr95",
        tpr=0.95,
        guard=True,
        max_accuracy_drop=DEFAULT_MAX_ACCURACY_DROP,
        n_bootstrap=DEFAULT_N_BOOTSTRAP,
        confidence=0.95,
        fallback=True,
        random_state=0,
    ):
        self.grid = grid
        self.metric = metric
        self.tpr = tpr
        self.guard = guard
        self.max_accuracy_drop = max_accuracy_drop
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.fallback = fallback
        self.random_state = random_state


    def _run_search(self, data):
        """Score every ``p`` of ``grid`` from one sort of ``V``, reading each validation split once.

        Parameters
        ----------
        data : SearchData

        Returns
        -------
        candidates, results, columns
            As :meth:`HyperparameterSearch._run_search`; the columns are
            ``param_p`` (floats) and ``threshold``.
        """
        where = self._where()
        grid = check_grid(self.grid, "SparsitySearch grid")
        head, m, known = data.head, data.m, data.known
        mean = training_mean(data.train.X, data.train.given_mean, m, where)
        # best_estimator_ is fitted from the same mean, with no pass over any rows
        data.train = TrainingInfo(None, None, mean, m, where)
        self.mean_feature_ = mean
        self.skipped_params_ = []
        self.n_labelled_ = 0 if known is None else int(known.size)
        G = grid.size
        build_time, thresholds = np.empty(G), np.empty(G, dtype=np.float64)
        n_kept, probes = np.empty(G, dtype=np.int64), []
        heads = masked_heads(mean, head, grid)
        for i in range(G):
            start = perf_counter()
            thresholds[i], mask, masked_weight = next(heads)
            n_kept[i] = int(mask.sum())
            probe = DICEDetector()
            probe.masked_weight_, probe.bias_ = masked_weight, head.bias
            probes.append(probe)
            build_time[i] = perf_counter() - start
        # every block of a split is scored by every candidate before the next block is
        # read: one read of each split whatever the grid (a store split comes from disk)
        score_time = np.zeros(G)
        s_id, correct = self._score_candidates(data.X_id, probes, head, score_time, data.y_id)
        s_noise = [self._score_candidates(Xn, probes, head, score_time)[0] for Xn in data.noise]
        self.dense_accuracy_ = None if known is None else float(correct[G] / known.size)
        results = CandidateResults(len(data.noise))
        for i in range(G):
            accuracy = np.nan if known is None else float(correct[i] / known.size)
            results.add(s_id[i], [s[i] for s in s_noise], self.tpr, build_time[i], accuracy,
                        int(n_kept[i]))
            results.score_time[-1] = score_time[i]
            for s in s_noise:  # only the placements are kept: 20 bytes a row, not 8 per set
                s[i] = None
        del s_id, s_noise
        candidates = [{"p": float(p)} for p in grid]
        param_p = np.ma.MaskedArray(grid.astype(np.float64), mask=np.zeros(G, dtype=bool))
        return candidates, results, {"param_p": param_p, "threshold": thresholds}

    @staticmethod
    def _score_candidates(X, probes, head, score_time, labels=None):
        """Every candidate's scores of ``X``, reading ``X`` once, block by block.

        With ``labels`` (one per row, ``-1`` unknown), also how many labelled
        rows each masked head and, last, the dense head classify right (the
        guard), from the same blocks; only the counts are kept.
        """
        G, n = len(probes), int(X.shape[0])
        scores = [np.empty(n, dtype=np.float64) for _ in range(G)]
        correct = np.zeros(G + 1, dtype=np.int64)
        for start, block in row_blocks(X):
            rows = slice(start, start + block.shape[0])
            known = None if labels is None else np.flatnonzero(labels[rows] >= 0)
            if known is not None and known.size:
                truth = labels[rows][known]
                dense = predicted_classes(block[known], head.weight, head.bias)
                correct[G] += np.count_nonzero(dense == truth)
            for i, probe in enumerate(probes):
                began = perf_counter()
                with located_errors(X, start, block):
                    if labels is not None:
                        scores[i][rows], classes = masked_head_scores(probe, block, classes=True)
                        correct[i] += np.count_nonzero(classes[known] == truth) if known.size else 0
                    else:
                        scores[i][rows] = masked_head_scores(probe, block)
                score_time[i] += perf_counter() - began
        return scores, correct
