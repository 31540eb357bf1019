"""``skdice tune``: choose DICE's sparsity p on Gaussian-noise validation features."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer


class Metric(str, Enum):
    """Selection criteria of ``skdice tune``."""

    fpr95 = "fpr95"
    auroc = "auroc"


class Format(str, Enum):
    """Output formats of ``skdice tune``."""

    table = "table"
    json = "json"


_COLUMNS = ("fpr95", "auroc", "aupr_in", "aupr_out")
_HEADER = ("p", "FPR95", "AUROC", "AUPR-In", "AUPR-Out", "kept", "rank")


def parse_grid(text: str) -> list[float]:
    """Parse ``--grid``: comma-separated sparsities.

    Parameters
    ----------
    text : str
        For example ``"0.1,0.3,0.5"``.

    Returns
    -------
    list of float
        The values; their range is checked by the library.
    """
    parts = [v.strip() for v in text.split(",")]
    try:
        values = [float(v) for v in parts if v]
    except ValueError:
        raise ValueError(
            f"--grid must be comma-separated numbers in [0, 1), for example 0.1,0.5,0.9; got {text!r}."
        ) from None
    if not values:
        raise ValueError("--grid is empty: give comma-separated numbers in [0, 1).")
    return values


def render_table(search, *, noise: str) -> str:
    """The table of every candidate, the chosen one starred, and a closing line.

    Parameters
    ----------
    search : skdice.tuning.SparsitySearch
        Fitted.
    noise : str
        Name of the noise split (for the closing line).

    Returns
    -------
    str
    """
    from ._console import render_table as render

    res = search.cv_results_
    n_weights = search.best_estimator_.mask_.size
    rows = []
    for i, params in enumerate(res["params"]):
        star = "*" if i == search.best_index_ else ""
        rows.append(
            (
                f"{params['p']:g}{star}",
                *(f"{100 * res[k][i]:.2f}" for k in _COLUMNS),
                f"{100 * res['n_kept'][i] / n_weights:.1f}%",
                str(int(res["rank_test_score"][i])),
            )
        )
    lines = [render(_HEADER, rows, justify=["left"] + ["right"] * (len(_HEADER) - 1),
                    bold_rows=[search.best_index_])]
    best = search.best_index_
    label = "FPR95" if search.metric == "fpr95" else "AUROC"
    value = res[search.metric][best]
    lines += [
        "",
        f"metrics in % on ID validation vs noise split {noise!r}; FPR at {100 * search.tpr:g}% TPR, "
        "ID positive; kept = weights kept.",
        f"chosen: p = {search.best_params_['p']:g} ({label} {100 * value:.2f}%; ties go to the smaller p)",
    ]
    return "\n".join(lines)


def render_json(search, **context) -> str:
    """JSON with every candidate's metrics (in %) and the chosen p.

    Parameters
    ----------
    search : skdice.tuning.SparsitySearch
        Fitted.
    **context
        Extra keys recorded as they are (store, splits).

    Returns
    -------
    str
    """
    res = search.cv_results_
    results = [
        {
            "p": params["p"],
            **{k: 100 * float(res[k][i]) for k in _COLUMNS},
            "n_kept": int(res["n_kept"][i]),
            # -inf (p = 0, the dense head) is not JSON: null
            "threshold": float(res["threshold"][i]) if np.isfinite(res["threshold"][i]) else None,
            "rank": int(res["rank_test_score"][i]),
        }
        for i, params in enumerate(res["params"])
    ]
    out = {
        **context,
        "metric": search.metric,
        "tpr": search.tpr,
        "units": "percent",
        "best_p": search.best_params_["p"],
        "results": results,
    }
    return json.dumps(out, indent=2)


def register(app: typer.Typer) -> None:
    """Add the ``tune`` command to the app.

    Parameters
    ----------
    app : typer.Typer
    """

    @app.command("tune")
    def tune(
        store: Annotated[Path, typer.Argument(help="Feature store written by `skdice extract`.")],
        id_split: Annotated[
            str, typer.Option("--id", help="Split of ID validation features.", show_default=False)
        ],
        noise: Annotated[
            str,
            typer.Option("--noise", help="Split of Gaussian-noise validation features.", show_default=False),
        ],
        train: Annotated[
            str | None,
            typer.Option("--train", help="Split of ID training features whose mean defines the mask."),
        ] = None,
        train_mean: Annotated[
            Path | None,
            typer.Option("--train-mean", help="Cached mean training feature (.npy), instead of --train."),
        ] = None,
        grid: Annotated[
            str, typer.Option("--grid", help="Comma-separated candidate sparsities in [0, 1).")
        ] = "0.1,0.3,0.5,0.7,0.9,0.99",
        metric: Annotated[
            Metric, typer.Option("--metric", help="Selection criterion (FPR95 lower, AUROC higher is better).")
        ] = Metric.fpr95,
        fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.table,
    ) -> None:
        """Score DICE at every p of the grid on ID vs noise validation features and pick the best.

        As in Section 4.1 of the paper: Gaussian-noise images stand in for OOD
        data, which is not available at deployment. Ties go to the smaller p.
        """
        from skdice.tuning import tune_store

        if (train is None) == (train_mean is None):
            raise ValueError("give exactly one of --train SPLIT or --train-mean FILE.npy.")
        values = parse_grid(grid)
        search = tune_store(
            store,
            id_split=id_split,
            noise_split=noise,
            train=train,
            train_mean=train_mean,
            grid=values,
            metric=metric.value,
        )
        if fmt is Format.json:
            context = {
                "store": str(store),
                "id": id_split,
                "noise": noise,
                "train": train,
                "train_mean": None if train_mean is None else str(train_mean),
            }
            typer.echo(render_json(search, **context))
        else:
            typer.echo(render_table(search, noise=noise))
