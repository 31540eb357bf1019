"""The report of an evaluation: the table, Markdown, CSV and JSON ``skdice evaluate`` prints.

:class:`EvaluationReport` turns an :class:`~skdice.workflows.evaluate.Evaluation`
into text, as :class:`~skdice.workflows.tune.SearchReport` does for a search:
the CLI chooses the format and passes its rich table renderer to
:meth:`EvaluationReport.to_table`; Python users call the same methods. It
lives in its own module so that :mod:`~skdice.workflows.evaluate` keeps the
computation and this module the words; both are re-exported from
:mod:`skdice.workflows.evaluate`.
"""

from __future__ import annotations

import numpy as np

from ..metrics import Report

__all__ = ["CONVENTIONS", "EvaluationReport", "dropped_note", "dropped_records", "leaderboard"]

#: one sentence per FPR95 convention (docs/metrics.md), closing the text formats
CONVENTIONS = {
    "id": "FPR95 with ID positive (DICE paper): % of OOD inputs accepted when 95% of ID inputs are kept",
    "ood": "FPR95 with OOD positive (OpenOOD v1.5): % of ID inputs rejected when 95% of OOD inputs are caught",
}


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def dropped_records(search) -> list[dict]:
    """The candidates a fitted search dropped before scoring, as JSON records.

    Parameters
    ----------
    search : HyperparameterSearch or SparsitySearch
        Fitted; its ``dropped_params_`` (empty for DICE's p, whose every
        value applies).

    Returns
    -------
    list of dict
        ``[{"params": {...}, "reason": str}, ...]`` in grid order.
    """
    return [{"params": {k: _plain(v) for k, v in params.items()}, "reason": reason}
            for params, reason in getattr(search, "dropped_params_", [])]


def dropped_note(records) -> str:
    """The one line that names the dropped candidates and why (``skdice tune`` and ``evaluate --tune-id``).

    Parameters
    ----------
    records : list of dict
        :func:`dropped_records`; not empty.

    Returns
    -------
    str

    Examples
    --------
    >>> dropped_note([{"params": {"dim": 512}, "reason": "dim=512 is not below the feature width 342"}])
    'dropped before the search (1 candidate): dim=512 (dim=512 is not below the feature width 342).'
    """
    n = len(records)
    items = "; ".join(
        ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["params"].items())
        + f" ({r['reason']})"
        for r in records
    )
    return f"dropped before the search ({n} candidate{'s' if n != 1 else ''}): {items}."


def leaderboard(report: Report) -> Report:
    """The report with its methods ordered by average FPR95, best first (rows kept together).

    Parameters
    ----------
    report : skdice.metrics.Report

    Returns
    -------
    skdice.metrics.Report
        The same rows, each method's rows (its OOD sets, then its average)
        together, methods sorted by their ``average`` row's FPR; ties keep
        the order they were given in.
    """
    groups = {}
    for row in report.rows:
        groups.setdefault((row.method, row.p), []).append(row)

    def key(item):
        average = [r for r in item[1] if r.ood == "average"]
        return average[0].fpr95 if average else float("inf")

    ordered = sorted(groups.items(), key=key)
    return Report([row for _, rows in ordered for row in rows], dict(report.extra))


def _columns_and_cells(report: Report):
    tpr = report.extra.get("fpr_at_tpr", 0.95)
    fpr = "FPR95" if tpr == 0.95 else f"FPR@{100 * tpr:g}TPR"
    columns = ("method", "p", "ood", fpr, "AUROC", "AUPR-In", "AUPR-Out")
    rows = [
        (r.method, "" if r.p is None else f"{r.p:g}", r.ood,
         *(f"{value:.2f}" for value in (r.fpr95, r.auroc, r.aupr_in, r.aupr_out)))
        for r in report.rows
    ]
    return columns, rows


def _hyperparameter_lines(detectors) -> list[str]:
    lines = ["hyperparameters:"]
    for key, detector in detectors.items():
        params = {k: v for k, v in detector.get_params().items() if k != "tpr"}
        text = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        lines.append(f"  {key}: {text or '(none)'}")
    return lines


class EvaluationReport:
    """What an evaluation found, as the text ``skdice evaluate`` prints in each format.

    Parameters
    ----------
    evaluation : Evaluation
        What :func:`~skdice.workflows.evaluate.evaluate_store` returned.

    See Also
    --------
    skdice.workflows.tune.SearchReport : the same for a search.

    Notes
    -----
    The table is a leaderboard (:func:`leaderboard`: methods by average
    FPR95, best first) followed by the FPR95 convention, the hyperparameters
    each method ran with, the ID accuracy of every head and the tuning; the
    Markdown, CSV and JSON keep the methods in the order they were given.

    Examples
    --------
    >>> result = evaluate_store("features.zarr", "test", ["svhn"], train="train")  # doctest: +SKIP
    >>> print(EvaluationReport(result).to_markdown())  # doctest: +SKIP
    """

    def __init__(self, evaluation):
        self.evaluation = evaluation

    def _closing(self) -> str:
        return f"{CONVENTIONS[self.evaluation.positive]}; metrics in %."

    def to_table(self, render=None) -> str:
        """The leaderboard, then the convention, hyperparameters, ID accuracy and tuning lines.

        Parameters
        ----------
        render : callable, default=None
            ``render(columns, rows, justify=..., bold_rows=...) -> str`` draws
            the leaderboard (the CLI passes its rich renderer); None aligns
            the columns with spaces (:meth:`skdice.metrics.Report.to_table`).

        Returns
        -------
        str
            No trailing newline.
        """
        result = self.evaluation
        board = leaderboard(result.report)
        if render is None:
            table = board.to_table()
        else:
            columns, rows = _columns_and_cells(board)
            table = render(columns, rows, justify=["left"] * 3 + ["right"] * 4, bold_rows=())
        lines = [table, "", self._closing(), *_hyperparameter_lines(result.detectors)]
        return "\n".join([*lines, *result.accuracy_lines(), *result.tuning_lines()])

    def to_markdown(self) -> str:
        """A Markdown table in the given order, the convention, then the accuracy and tuning as a list.

        Returns
        -------
        str
            No trailing newline.
        """
        result = self.evaluation
        lines = [result.report.to_markdown(), "", self._closing(), ""]
        lines += [f"- {line.strip()}" for line in [*result.accuracy_lines(), *result.tuning_lines()]]
        return "\n".join(lines)

    def to_csv(self) -> str:
        """CSV of the rows in the given order, metrics in percent at full precision.

        Returns
        -------
        str
            A header row, then one line a row; ends with a newline.
        """
        return self.evaluation.report.to_csv()

    def to_json(self) -> str:
        """JSON of the rows in the given order and the report's other keys (``id_accuracy``, ``tuning``, ...).

        Returns
        -------
        str
            :meth:`Evaluation.to_dict <skdice.workflows.evaluate.Evaluation.to_dict>`
            as JSON indented by 2; no trailing newline.
        """
        return self.evaluation.report.to_json()
