"""Out-of-distribution detection metrics, with higher score = more in-distribution.

Two conventions for FPR at 95% TPR are in use, and they give different numbers:

* ``positive="id"`` (the default; the DICE paper, its official code and the
  ODIN / energy line of work): in-distribution is the positive class. The
  threshold keeps 95% of ID inputs; the metric is the fraction of OOD inputs
  that are still accepted as ID.
* ``positive="ood"`` (OpenOOD since v1.5, pytorch-ood): OOD is the positive
  class. The threshold catches 95% of OOD inputs; the metric is the fraction of
  ID inputs wrongly rejected as OOD.

All metrics are computed from the exact ROC / precision-recall curves of
scikit-learn (every distinct score is a threshold), so ties are handled
exactly. Values are fractions in [0, 1]; :class:`Report` shows percentages.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.metrics import average_precision_score, make_scorer, roc_auc_score, roc_curve

# the metrics' one Array API boundary: scores of any namespace (torch on a GPU, CuPy) are read to the host
from ._array_api import to_numpy

__all__ = [
    "fpr_at_tpr",
    "auroc",
    "aupr_in",
    "aupr_out",
    "detection_error",
    "ood_report",
    "Report",
    "ReportRow",
    "fpr95_score",
    "fpr95_scorer",
    "auroc_scorer",
]

_METRIC_KEYS = ("fpr95", "auroc", "aupr_in", "aupr_out")


def _scores(values, name):
    arr = np.asarray(to_numpy(values))
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}.")
    arr = arr.astype(np.float64).reshape(-1) if arr.ndim <= 1 else None
    if arr is None:
        raise ValueError(f"{name} must be 1-D, got shape {np.shape(values)}.")
    if arr.size == 0:
        raise ValueError(f"{name} is empty.")
    if not np.isfinite(arr).all():
        raise ValueError(
            f"{name} contains NaN or infinity (first at index {int(np.flatnonzero(~np.isfinite(arr))[0])})."
        )
    return arr


def _labelled(id_scores, ood_scores):
    id_s = _scores(id_scores, "id_scores")
    ood_s = _scores(ood_scores, "ood_scores")
    y = np.r_[np.ones(id_s.size, dtype=np.int8), np.zeros(ood_s.size, dtype=np.int8)]
    return y, np.r_[id_s, ood_s]


def _check_positive(positive):
    if positive not in ("id", "ood"):
        raise ValueError(f"positive must be 'id' or 'ood', got {positive!r}.")


def fpr_at_tpr(id_scores, ood_scores, tpr=0.95, positive="id"):
    """False positive rate at a given true positive rate (FPR95 by default).

    Parameters
    ----------
    id_scores : array-like of shape (n_id,)
        Scores of in-distribution inputs (higher = more ID).
    ood_scores : array-like of shape (n_ood,)
        Scores of out-of-distribution inputs.
    tpr : float, default=0.95
        Target true positive rate in (0, 1].
    positive : {"id", "ood"}, default="id"
        ``"id"``: the fraction of OOD inputs accepted when the threshold keeps
        at least ``tpr`` of the ID inputs (the DICE paper). ``"ood"``: the
        fraction of ID inputs rejected when the threshold catches at least
        ``tpr`` of the OOD inputs (OpenOOD v1.5, pytorch-ood).

    Returns
    -------
    float
        The smallest false positive rate over the thresholds whose true
        positive rate reaches ``tpr``.

    Notes
    -----
    Computed on scikit-learn's exact ROC curve (``drop_intermediate=False``), so
    tied scores move together across a threshold; no sampled thresholds.

    Examples
    --------
    >>> fpr_at_tpr([3, 4, 5, 6], [1, 2, 3.5, 7], tpr=0.75)
    0.25
    """
    _check_positive(positive)
    if not 0 < tpr <= 1:
        raise ValueError(f"tpr must be in (0, 1], got {tpr!r}.")
    y, s = _labelled(id_scores, ood_scores)
    if positive == "ood":
        y, s = 1 - y, -s
    fpr, tpr_curve, _ = roc_curve(y, s, drop_intermediate=False)
    idx = int(np.searchsorted(tpr_curve, tpr, side="left"))
    return float(fpr[min(idx, fpr.size - 1)])


def auroc(id_scores, ood_scores):
    """Area under the ROC curve, ID as the positive class.

    Symmetric: taking OOD as positive with negated scores gives the same value.

    Parameters
    ----------
    id_scores, ood_scores : array-like of shape (n_id,), (n_ood,)

    Returns
    -------
    float
    """
    y, s = _labelled(id_scores, ood_scores)
    return float(roc_auc_score(y, s))


def aupr_in(id_scores, ood_scores):
    """Area under the precision-recall curve with ID as the positive class.

    Average precision (``sklearn.metrics.average_precision_score``) with
    ``y = 1`` for ID inputs and the scores as they are.

    Parameters
    ----------
    id_scores, ood_scores : array-like of shape (n_id,), (n_ood,)

    Returns
    -------
    float
    """
    y, s = _labelled(id_scores, ood_scores)
    return float(average_precision_score(y, s))


def aupr_out(id_scores, ood_scores):
    """Area under the precision-recall curve with OOD as the positive class.

    Average precision with ``y = 1`` for OOD inputs and negated scores.

    Parameters
    ----------
    id_scores, ood_scores : array-like of shape (n_id,), (n_ood,)

    Returns
    -------
    float
    """
    y, s = _labelled(id_scores, ood_scores)
    return float(average_precision_score(1 - y, -s))


def detection_error(id_scores, ood_scores):
    """Minimum misclassification probability over thresholds, equal priors.

    ``min_t 0.5 (1 - TPR(t)) + 0.5 FPR(t)`` with ID as positive (the detection
    error of the ODIN paper).

    Parameters
    ----------
    id_scores, ood_scores : array-like of shape (n_id,), (n_ood,)

    Returns
    -------
    float
    """
    y, s = _labelled(id_scores, ood_scores)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return float(np.min(0.5 * (1 - tpr) + 0.5 * fpr))


@dataclass(frozen=True)
class ReportRow:
    """One row of an OOD report; metric values in percent.

    Attributes
    ----------
    method : str
    p : float or None
        Sparsity, for methods that have one.
    ood : str
        Name of the OOD set, or ``"average"``.
    fpr95, auroc, aupr_in, aupr_out : float
        Metrics in percent.
    """

    method: str
    p: float | None
    ood: str
    fpr95: float
    auroc: float
    aupr_in: float
    aupr_out: float


@dataclass
class Report:
    """Rows of OOD metrics that render to a table, Markdown, CSV or JSON.

    Attributes
    ----------
    rows : list of ReportRow
    extra : dict
        Anything else to carry into JSON (for example ``id_accuracy``).
    """

    rows: list[ReportRow]
    extra: dict = field(default_factory=dict)

    @classmethod
    def concat(cls, reports: Sequence["Report"]) -> "Report":
        """Join reports, rows in order; ``extra`` dicts are merged.

        Parameters
        ----------
        reports : sequence of Report

        Returns
        -------
        Report
        """
        rows, extra = [], {}
        for report in reports:
            rows.extend(report.rows)
            extra.update(report.extra)
        return cls(rows, extra)

    def _header(self):
        # the FPR column is at 95% TPR unless ood_report was given another tpr
        tpr = self.extra.get("fpr_at_tpr", 0.95)
        fpr = "FPR95" if tpr == 0.95 else f"FPR@{100 * tpr:g}TPR"
        return ("method", "p", "ood", fpr, "AUROC", "AUPR-In", "AUPR-Out")

    def _cells(self):
        for r in self.rows:
            yield (
                r.method,
                "" if r.p is None else f"{r.p:g}",
                r.ood,
                *(f"{getattr(r, k):.2f}" for k in _METRIC_KEYS),
            )

    def to_table(self) -> str:
        """Plain-text table with aligned columns.

        Returns
        -------
        str
        """
        header = self._header()
        cells = [header, *self._cells()]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
        lines = []
        for j, row in enumerate(cells):
            parts = [
                c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))
            ]
            lines.append("  ".join(parts).rstrip())
            if j == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown table.

        Returns
        -------
        str
        """
        lines = [
            "| " + " | ".join(self._header()) + " |",
            "|" + "|".join(["---"] * 3 + ["---:"] * 4) + "|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self._cells()]
        return "\n".join(lines)

    def to_csv(self) -> str:
        """CSV with a header row; metrics in percent, full precision.

        Returns
        -------
        str
        """
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["method", "p", "ood", *_METRIC_KEYS])
        for r in self.rows:
            writer.writerow(
                [r.method, "" if r.p is None else r.p, r.ood, *(getattr(r, k) for k in _METRIC_KEYS)]
            )
        return buf.getvalue()

    def to_dict(self) -> dict:
        """``{"results": [row dicts], **extra}``.

        Returns
        -------
        dict
        """
        return {"results": [asdict(r) for r in self.rows], **self.extra}

    def to_json(self, indent: int | None = 2) -> str:
        """JSON of :meth:`to_dict`.

        Parameters
        ----------
        indent : int or None, default=2

        Returns
        -------
        str
        """
        return json.dumps(self.to_dict(), indent=indent)


def ood_report(
    id_scores,
    ood_scores: Mapping[str, object],
    *,
    method: str = "score",
    p: float | None = None,
    tpr: float = 0.95,
    positive: str = "id",
    average: bool = True,
) -> Report:
    """Per-OOD-set metrics and their average, as in the paper's tables.

    Parameters
    ----------
    id_scores : array-like of shape (n_id,)
        Scores of the in-distribution test set.
    ood_scores : mapping of str to array-like
        Scores of each named OOD set.
    method : str, default="score"
        Method name written in every row.
    p : float, default=None
        Sparsity written in every row.
    tpr : float, default=0.95
        TPR for the FPR column.
    positive : {"id", "ood"}, default="id"
        FPR convention, see :func:`fpr_at_tpr`.
    average : bool, default=True
        Append a row named ``"average"`` with the mean of each metric.

    Returns
    -------
    Report
        ``extra`` records ``fpr_at_tpr`` (the TPR of the FPR column) and
        ``fpr_positive`` (the convention, ``"id"`` or ``"ood"``), so a JSON
        report says which FPR it holds. With a ``tpr`` other than 0.95 the
        ``fpr95`` fields hold the FPR at that TPR and the table headers say
        ``FPR@<tpr>TPR``.

    Examples
    --------
    >>> r = ood_report([2, 3, 4], {"noise": [0, 1, 2.5]}, method="dice", p=0.9)
    >>> [row.ood for row in r.rows]
    ['noise', 'average']
    """
    if not isinstance(ood_scores, Mapping):
        raise TypeError(
            "ood_scores must map each OOD set's name to its scores, e.g. {'svhn': scores}; "
            f"got {type(ood_scores).__name__}."
        )
    if not ood_scores:
        raise ValueError("ood_scores is empty: give at least one named OOD set.")
    rows = []
    for name, scores in ood_scores.items():
        rows.append(
            ReportRow(
                method=method,
                p=None if p is None else float(p),
                ood=str(name),
                fpr95=100 * fpr_at_tpr(id_scores, scores, tpr=tpr, positive=positive),
                auroc=100 * auroc(id_scores, scores),
                aupr_in=100 * aupr_in(id_scores, scores),
                aupr_out=100 * aupr_out(id_scores, scores),
            )
        )
    if average:
        means = {k: float(np.mean([getattr(r, k) for r in rows])) for k in _METRIC_KEYS}
        rows.append(ReportRow(method=method, p=rows[0].p, ood="average", **means))
    return Report(rows, {"fpr_at_tpr": float(tpr), "fpr_positive": positive})


def fpr95_score(y_true, y_score, *, positive="id"):
    """FPR at 95% TPR from labelled scores (``y_true``: 1 = ID, 0 = OOD).

    The function behind :data:`fpr95_scorer`; lower is better.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        1 for in-distribution, 0 for out-of-distribution.
    y_score : array-like of shape (n_samples,)
        Scores, higher = more ID.
    positive : {"id", "ood"}, default="id"

    Returns
    -------
    float
    """
    y_true, y_score = to_numpy(y_true), to_numpy(y_score)
    is_id = y_true == 1
    if is_id.all() or not is_id.any():
        raise ValueError(
            "fpr95 needs both ID (y == 1) and OOD (y == 0) rows in the evaluation fold."
        )
    return fpr_at_tpr(y_score[is_id], y_score[~is_id], positive=positive)


def _auroc_score(y_true, y_score):
    return roc_auc_score(to_numpy(y_true) == 1, to_numpy(y_score))


# The scorers read decision_function (= score_samples - offset_): make_scorer has
# no score_samples response, and a constant shift changes no rank-based metric.

#: GridSearchCV scorer: FPR95 (ID positive), y = 1 for ID rows and 0 for OOD
#: rows; lower is better, so scikit-learn reports its negation.
fpr95_scorer = make_scorer(fpr95_score, greater_is_better=False, response_method="decision_function")

#: GridSearchCV scorer: AUROC with y = 1 for ID rows and 0 for OOD rows.
auroc_scorer = make_scorer(_auroc_score, response_method="decision_function")
