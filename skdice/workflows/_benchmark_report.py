"""The words and pictures of a benchmark: table, Markdown and HTML leaderboards, OpenOOD's CSV.

:class:`BenchmarkReport` turns a :class:`~skdice.workflows.benchmark.Benchmark`
into the text ``skdice benchmark`` prints in each format, as
:class:`~skdice.workflows.evaluate.EvaluationReport` does for an evaluation.
The leaderboard ranks the methods by their overall AUROC (OpenOOD ranks by
AUROC); the figure draws each method's near- and far-OOD AUROC with its
bootstrap interval. matplotlib (the ``plot`` extra) is imported only to draw it.
"""

from __future__ import annotations

import base64
import csv
import html
import io

from ..exceptions import require
from ._cells import METRICS
from ._report import CONVENTIONS

__all__ = ["OPENOOD_COLUMNS", "BenchmarkReport"]

#: the columns of OpenOOD v1.5's result tables (openood/evaluation_api/evaluator.py, eval_ood)
OPENOOD_COLUMNS = ("FPR@95", "AUROC", "AUPR_IN", "AUPR_OUT", "ACC")
_HEAD = {"fpr95": "FPR95", "auroc": "AUROC", "aupr_in": "AUPR-In", "aupr_out": "AUPR-Out"}


def _cell(row, key, spread: bool) -> str:
    value = row[key]
    if value is None:
        return "n/a"
    return f"{value:.2f} ± {row[key + '_std']:.2f}" if spread else f"{value:.2f}"


def _interval(row, key) -> str:
    low = row.get(f"{key}_ci_low")
    return "" if low is None else f"[{low:.2f}, {row[key + '_ci_high']:.2f}]"


def _aligned(columns, rows, *, justify) -> str:
    """Columns padded to their widest cell, a rule under the header (the table without rich)."""
    table = [list(columns), *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    pad = {"left": str.ljust, "right": str.rjust}
    text = ["  ".join(pad[side](c, w) for c, w, side in zip(r, widths, justify)).rstrip() for r in table]
    return "\n".join([text[0], "  ".join("-" * w for w in widths), *text[1:]])


def _p(value) -> str:
    return "" if value is None else f"{value:g}"


class BenchmarkReport:
    """What a benchmark found, as the text ``skdice benchmark`` prints in each format.

    Parameters
    ----------
    benchmark : Benchmark or dict
        What :func:`~skdice.workflows.benchmark.benchmark_stores` returned, or its JSON record.

    Examples
    --------
    >>> result = benchmark_stores(["run0.zarr"], "cifar10-openood-v1.5")  # doctest: +SKIP
    >>> print(BenchmarkReport(result).to_csv())  # doctest: +SKIP
    """

    def __init__(self, benchmark):
        self.record = benchmark if isinstance(benchmark, dict) else benchmark.to_dict()
        self.spread = len(self.record["stores"]) > 1

    # ------------------------------------------------------------------ pieces
    def _row(self, method, ood):
        return next(r for r in self.record["results"] if r["method"] == method and r["ood"] == ood)

    def ranked(self) -> list[str]:
        """The methods by overall AUROC, best first (ties keep the order they were run in).

        Returns
        -------
        list of str
        """
        return sorted(self.record["methods"], key=lambda m: -self._row(m, "overall")["auroc"])

    def _groups(self) -> list[str]:
        return [g for g in ("near", "far") if any(r["ood"] == g for r in self.record["results"])]

    def _leaderboard(self):
        groups = self._groups()
        columns = ["rank", "method", "p", *(f"{g} AUROC" for g in groups), "overall AUROC",
                   *(f"{g} FPR95" for g in groups), "ACC"]
        rows = []
        for i, method in enumerate(self.ranked(), 1):
            over = self._row(method, "overall")
            rows.append([str(i), method, _p(over["p"]),
                         *(_cell(self._row(method, g), "auroc", self.spread) for g in groups),
                         _cell(over, "auroc", self.spread),
                         *(_cell(self._row(method, g), "fpr95", self.spread) for g in groups),
                         _cell({"acc": over["acc"], "acc_std": over["acc_std"]}, "acc", self.spread)])
        return columns, rows

    def _detail(self):
        columns = ["method", "p", "ood", *(_HEAD[k] for k in METRICS), "AUROC interval"]
        rows = [[r["method"], _p(r["p"]), r["ood"], *(_cell(r, k, self.spread) for k in METRICS),
                 _interval(r, "auroc")] for m in self.ranked() for r in self.record["results"] if r["method"] == m]
        return columns, rows

    def _lines(self) -> list[str]:
        rec, proto = self.record, self.record["protocol"]
        boot = rec["bootstrap"]
        n = len(rec["stores"])
        lines = [f"protocol {proto['name']} ({proto['source']}): ID {proto['id']['test']}; "
                 f"near {', '.join(proto['ood']['near']) or '-'}; far {', '.join(proto['ood']['far']) or '-'}; "
                 f"CSID {', '.join(proto['csid']['test']) or '-'}"
                 + ("; full-spectrum (CSID counted as ID)" if rec["full_spectrum"] else ""),
                 f"{n} store{'s' if n != 1 else ''}: " + ", ".join(s["path"] for s in rec["stores"]),
                 CONVENTIONS[rec["fpr_positive"]] + "; metrics in %"
                 + ("; mean ± std over the stores (NumPy's population std, as OpenOOD)" if self.spread else "")]
        if boot["n_resamples"]:
            lines.append(f"intervals: {100 * boot['confidence']:g}% percentile bootstrap, {boot['n_resamples']} "
                         f"resamples of the test rows (seed {boot['seed']})")
        tuned = proto["id"].get("val")
        against = [f"{name!r}" for name in proto["ood"]["val"]] + \
            [f"{name!r} (synthetic)" for name in proto["ood"].get("noise", [])]
        lines.append(f"tuned on {tuned!r} vs {', '.join(against)} by {proto['tuning']['metric']} (the search's rule)"
                     if tuned else "not tuned: every method at its defaults")
        lines.append(f"ACC: accuracy of each method's classifier on {proto['id']['test']!r}"
                     + (" and the CSID splits pooled" if rec["full_spectrum"] else ""))
        for item in rec["accuracy"]:
            if item["method"] is None and item["accuracy"] is not None:
                std = f" ± {item['accuracy_std']:.2f}" if self.spread else ""
                lines.append(f"  the store's head on {item['split']!r}: {item['accuracy']:.2f}{std}%")
        lines.append(f"skdice {rec['skdice_version']}")
        return lines

    # ------------------------------------------------------------------ formats
    def to_table(self, render=None) -> str:
        """The leaderboard, every row per OOD set and group, then the settings.

        Parameters
        ----------
        render : callable, default=None
            ``render(columns, rows, justify=...) -> str`` (the CLI's rich
            renderer); None aligns the columns with spaces.

        Returns
        -------
        str
            No trailing newline.
        """
        render = render or _aligned
        board_cols, board_rows = self._leaderboard()
        detail_cols, detail_rows = self._detail()
        board = render(board_cols, board_rows, justify=["right", "left", "left"] + ["right"] * (len(board_cols) - 3))
        detail = render(detail_cols, detail_rows, justify=["left"] * 3 + ["right"] * (len(detail_cols) - 3))
        return "\n".join([board, "", detail, "", *self._lines()])

    def to_markdown(self, figure: str | None = None) -> str:
        """A leaderboard page: the figure, the leaderboard, the per-set table and the settings.

        Parameters
        ----------
        figure : str, default=None
            Path (or URL) of the figure to link; None embeds it as a PNG data URI.

        Returns
        -------
        str
            No trailing newline.
        """
        if figure is None:
            figure = "data:image/png;base64," + base64.b64encode(self.figure("png")).decode("ascii")
        lines = [f"# Benchmark: {self.record['protocol']['name']}", "",
                 f"![near- and far-OOD AUROC of each method]({figure})", ""]
        for columns, rows in (self._leaderboard(), self._detail()):
            lines += ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
            lines.append("")
        lines += [f"- {line}" for line in self._lines()]
        return "\n".join(lines)

    def to_html(self) -> str:
        """A self-contained HTML leaderboard page, the figure inlined as SVG.

        Returns
        -------
        str
        """
        esc = html.escape
        parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                 f"<title>Benchmark: {esc(self.record['protocol']['name'])}</title>",
                 "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
                 "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:nth-child(-n+3),th{text-align:left}"
                 "small{color:#666}</style></head><body>",
                 f"<h1>Benchmark: {esc(self.record['protocol']['name'])}</h1>",
                 self.figure("svg").decode("utf-8").split("?>", 1)[-1]]
        for title, (columns, rows) in (("Leaderboard", self._leaderboard()), ("Per OOD set", self._detail())):
            parts.append(f"<h2>{title}</h2><table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows]
            parts.append("</table>")
        parts.append("<ul>" + "".join(f"<li>{esc(line)}</li>" for line in self._lines()) + "</ul>")
        parts.append("</body></html>")
        return "\n".join(parts)

    def to_csv(self) -> str:
        """OpenOOD's result table for every method, one after another.

        The columns are OpenOOD v1.5's (``FPR@95, AUROC, AUPR_IN, AUPR_OUT,
        ACC``), after ``method`` and ``dataset``; the rows of each method are
        OpenOOD's: the near sets, ``nearood``, the far sets, ``farood``. Each
        cell is ``mean ± std`` with two decimals, as OpenOOD's
        ``scripts/eval_ood.py`` writes it (std 0.00 for one store).

        Returns
        -------
        str
            Ends with a newline.
        """
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["method", "dataset", *OPENOOD_COLUMNS])
        names = {"near": "nearood", "far": "farood"}
        for method in self.record["methods"]:
            for r in self.record["results"]:
                if r["method"] != method or r["ood"] == "overall":
                    continue
                cells = [f"{r[k]:.2f} ± {r[k + '_std']:.2f}" for k in METRICS]
                acc = "" if r["acc"] is None else f"{r['acc']:.2f} ± {r['acc_std']:.2f}"
                writer.writerow([method, names.get(r["ood"], r["ood"]), *cells, acc])
        return buf.getvalue()

    def figure(self, fmt: str = "png") -> bytes:
        """The leaderboard figure: each method's near- and far-OOD AUROC with its bootstrap interval.

        Parameters
        ----------
        fmt : {"png", "svg"}, default="png"

        Returns
        -------
        bytes
            The image; the same bytes every time for the same result.
        """
        matplotlib = require("matplotlib", "plot")  # only when a figure is drawn
        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

        methods = self.ranked()[::-1]  # best at the top
        groups = self._groups() or ["overall"]
        fig, ax = plt.subplots(figsize=(7, 1.2 + 0.32 * len(methods)))
        for k, (group, colour) in enumerate(zip(groups, ("#d62728", "#1f77b4"))):
            y = [i + (k - (len(groups) - 1) / 2) * 0.22 for i in range(len(methods))]
            rows = [self._row(m, group) for m in methods]
            x = [r["auroc"] for r in rows]
            if rows[0].get("auroc_ci_low") is not None:
                err = [[r["auroc"] - r["auroc_ci_low"] for r in rows], [r["auroc_ci_high"] - r["auroc"] for r in rows]]
            else:
                err = None
            ax.errorbar(x, y, xerr=err, fmt="o", color=colour, capsize=2, markersize=4, label=f"{group}-OOD")
        ax.set_yticks(range(len(methods)), methods)
        ax.set_xlabel("AUROC (%)" + (", bootstrap interval" if self.record["bootstrap"]["n_resamples"] else ""))
        ax.set_title(f"{self.record['protocol']['name']}: methods by overall AUROC", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        fig.savefig(buf, format=fmt, dpi=100, metadata=metadata)
        plt.close(fig)
        return buf.getvalue()
