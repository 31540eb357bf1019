"""``skdice tune``: choose a detector's hyperparameters on validation features, or say it cannot."""

from __future__ import annotations

import ast
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


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word is a string


def parse_grid(text: str) -> list[float]:
    """Parse one unnamed ``--grid`` of DICE: comma-separated sparsities.

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


def parse_grids(texts, method: str):
    """Parse the ``--grid`` options: ``NAME=V1,V2,...`` (repeatable), or ``V1,V2,...`` alone.

    Parameters
    ----------
    texts : list of str or None
        The options as given; None or empty for the method's declared grid.
    method : str
        The method name (an unnamed grid of ``dice`` is a list of sparsities).

    Returns
    -------
    dict, list or None
        ``{parameter: values}`` for named grids, a list for one unnamed grid,
        None for the declared grid. Values are Python literals (``0.5``,
        ``10``, ``None``); their ranges are checked by the library.
    """
    if not texts:
        return None
    named, unnamed = {}, []
    for text in texts:
        key, eq, rest = text.partition("=")
        if eq and key.strip().isidentifier():
            key = key.strip()
            if key in named:
                raise ValueError(f"--grid {key}=... is given more than once.")
            values = [_literal(v.strip()) for v in rest.split(",") if v.strip()]
            if not values:
                raise ValueError(f"--grid {key}= has no values: give {key}=V1,V2,...")
            named[key] = values
        else:
            unnamed.append(text)
    if unnamed and (named or len(unnamed) > 1):
        raise ValueError(
            "--grid: name every parameter (--grid NAME=V1,V2 --grid OTHER=V1,V2) when giving several."
        )
    if unnamed:
        if method == "dice":
            return parse_grid(unnamed[0])
        values = [_literal(v.strip()) for v in unnamed[0].split(",") if v.strip()]
        if not values:
            raise ValueError("--grid is empty: give comma-separated values.")
        return values
    return named


def _value(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{v:g}"
    return str(v)


def _spell(params: dict) -> str:
    return ", ".join(f"{k} = {_value(v)}" for k, v in params.items())


def _verdict(res, i, leader) -> str:
    if res["flagged"][i]:
        return "flagged"
    if i == leader:
        return "best"
    return "worse" if res["worse"][i] else "tied"


def _noise_words(noise) -> str:
    noise = [noise] if isinstance(noise, str) else list(noise)
    if len(noise) == 1:
        return f"noise split {noise[0]!r}"
    return "the mean over noise splits " + ", ".join(map(repr, noise))


def _percent(x) -> str:
    return f"{100 * x:.2f}"


def render_table(search, *, noise, id_split: str = "the ID split") -> str:
    """The table of every candidate with its intervals, the guard, the verdict and the choice.

    Parameters
    ----------
    search : skdice.tuning.SparsitySearch or HyperparameterSearch
        Fitted.
    noise : str or sequence of str
        The noise split name(s), for the closing lines.
    id_split : str, default="the ID split"
        The ID validation split, for the closing lines.

    Returns
    -------
    str
    """
    from skdice import detector_tags

    from ._console import render_table as render

    res = search.cv_results_
    names = list(res["params"][0])
    masked = detector_tags(search.best_estimator_).masked_head
    guarded = search.dense_accuracy_ is not None
    n_weights = search.best_estimator_.mask_.size if masked else None
    level = f"{100 * search.confidence:g}%"
    header = [*names, "FPR95", "CI", "AUROC", "CI", "AUPR-In", "AUPR-Out"]
    header += ["kept"] if masked else []
    header += ["acc"] if guarded else []
    header += ["verdict", "rank"]
    rows = []
    for i, params in enumerate(res["params"]):
        cells = [_value(params[k]) for k in names]
        if i == search.best_index_:
            cells[0] += "*"
        cells += [
            _percent(res["fpr95"][i]),
            f"{_percent(res['fpr95_ci_low'][i])}-{_percent(res['fpr95_ci_high'][i])}",
            _percent(res["auroc"][i]),
            f"{_percent(res['auroc_ci_low'][i])}-{_percent(res['auroc_ci_high'][i])}",
            _percent(res["aupr_in"][i]),
            _percent(res["aupr_out"][i]),
        ]
        if masked:
            cells.append(f"{100 * res['n_kept'][i] / n_weights:.1f}%")
        if guarded:
            cells.append(_percent(res["id_accuracy"][i]))
        cells += [_verdict(res, i, search.leader_index_), str(int(res["rank_test_score"][i]))]
        rows.append(tuple(cells))
    justify = ["left"] * len(names) + ["right"] * (len(header) - len(names))
    lines = [render(tuple(header), rows, justify=justify, bold_rows=[search.best_index_])]
    tail = (
        f"metrics in % on ID validation {id_split!r} vs {_noise_words(noise)}; FPR at "
        f"{100 * search.tpr:g}% TPR, ID positive; CI: {level} interval, paired bootstrap of "
        f"{search.n_bootstrap} resamples"
    )
    tail += "; kept = weights kept" if masked else ""
    tail += "; acc = ID accuracy of the masked head" if guarded else ""
    verdicts = "verdict: best, tied (within sampling noise of it), worse (beyond it)"
    lines += ["", tail + ".", verdicts + (", flagged (by the guard)." if guarded else ".")]
    if guarded:
        drop = 100 * search.max_accuracy_drop
        lines.append(
            f"ID accuracy of the dense head: {_percent(search.dense_accuracy_)}% "
            f"({search.n_labelled_} labelled rows); the guard flags candidates more than "
            f"{drop:g} points below it"
            + (" and does not choose them." if search.guard else " (--no-guard: reported only).")
        )
    verdict = "yes" if search.informative_ else "no"
    lines.append(f"informative: {verdict} ({search.informative_reason_})")
    label = "FPR95" if search.metric == "fpr95" else "AUROC"
    value = f"{label} {_percent(res[search.metric][search.best_index_])}%"
    if search.informative_:
        rule = "ties go to the smaller p" if type(search).__name__ == "SparsitySearch" else (
            "ties go to the first in grid order")
        lines.append(f"chosen: {_spell(search.best_params_)} ({value}; {rule})")
    else:
        lines.append(f"chosen: {_spell(search.best_params_)} ({value}; fallback: validation cannot choose)")
    return "\n".join(lines)


def _interval(res, key, i):
    return [100 * float(res[f"{key}_ci_low"][i]), 100 * float(res[f"{key}_ci_high"][i])]


def _json_value(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


def render_json(search, **context) -> str:
    """JSON with every candidate's metrics and intervals (in %), the verdict and the choice.

    Parameters
    ----------
    search : skdice.tuning.SparsitySearch or HyperparameterSearch
        Fitted.
    **context
        Extra keys recorded as they are (store, splits).

    Returns
    -------
    str
    """
    res = search.cv_results_
    results = []
    for i, params in enumerate(res["params"]):
        row = {k: _json_value(v) for k, v in params.items()}
        row["params"] = dict(row)
        row.update({k: 100 * float(res[k][i]) for k in _COLUMNS})
        row["fpr95_ci"] = _interval(res, "fpr95", i)
        row["auroc_ci"] = _interval(res, "auroc", i)
        row["gap"] = 100 * float(res["gap"][i])
        row["gap_ci"] = _interval(res, "gap", i)
        row["worse"] = bool(res["worse"][i])
        row["separated"] = bool(res["separated"][i])
        row["n_kept"] = int(res["n_kept"][i]) if res["n_kept"][i] >= 0 else None
        if "threshold" in res:
            # -inf (p = 0, the dense head) is not JSON: null
            row["threshold"] = float(res["threshold"][i]) if np.isfinite(res["threshold"][i]) else None
        accuracy = res["id_accuracy"][i]
        row["id_accuracy"] = None if np.isnan(accuracy) else 100 * float(accuracy)
        row["flagged"] = bool(res["flagged"][i])
        row["rank"] = int(res["rank_test_score"][i])
        row["chosen"] = i == search.best_index_
        results.append(row)
    best = {k: _json_value(v) for k, v in search.best_params_.items()}
    method = search.method
    out = {
        **context,
        "method": method if isinstance(method, str) else type(method).name,
        "metric": search.metric,
        "tpr": search.tpr,
        "units": "percent",
        "informative": search.informative_,
        "informative_reason": search.informative_reason_,
        "best_p": best.get("p"),
        "best_params": best,
        "fallback_params": {k: _json_value(v) for k, v in res["params"][search.fallback_index_].items()},
        "confidence": search.confidence,
        "n_bootstrap": search.n_bootstrap,
        "guard": {
            "applied": search.dense_accuracy_ is not None,
            "enforced": bool(search.guard),
            "max_accuracy_drop": 100 * search.max_accuracy_drop,
            "dense_accuracy": None if search.dense_accuracy_ is None else 100 * search.dense_accuracy_,
            "n_labelled": search.n_labelled_,
        },
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
            list[str],
            typer.Option(
                "--noise",
                help="Split of OOD validation features (noise:N, or a generated source; recommended: "
                "an ID-derived corruption such as blur:FOLDER, docs/tuning.md); repeat for several: "
                "every metric is then their mean.",
                show_default=False,
            ),
        ],
        train: Annotated[
            str | None,
            typer.Option("--train", help="Split of ID training features (DICE: its mean defines the mask)."),
        ] = None,
        train_mean: Annotated[
            Path | None,
            typer.Option("--train-mean", help="Cached mean training feature (.npy), instead of --train."),
        ] = None,
        method: Annotated[
            str, typer.Option("--method", help="Detector to tune (`skdice methods`).")
        ] = "dice",
        grid: Annotated[
            list[str] | None,
            typer.Option(
                "--grid",
                help="Candidate values: NAME=V1,V2,... (repeat for a grid over several "
                "parameters), or V1,V2,... for a method with one. Default: the method's "
                "declared grid (DICE: 0.1,0.3,0.5,0.7,0.9,0.99).",
                show_default=False,
            ),
        ] = None,
        metric: Annotated[
            Metric, typer.Option("--metric", help="Selection criterion (FPR95 lower, AUROC higher is better).")
        ] = Metric.fpr95,
        guard: Annotated[
            bool,
            typer.Option(
                "--guard/--no-guard",
                help="Leave out candidates whose masked head loses more than --max-accuracy-drop "
                "points of ID accuracy (needs labels on the --id split).",
            ),
        ] = True,
        max_accuracy_drop: Annotated[
            float,
            typer.Option("--max-accuracy-drop", help="The guard's tolerance, in points of ID accuracy."),
        ] = 5.0,
        n_bootstrap: Annotated[
            int, typer.Option("--n-bootstrap", help="Bootstrap resamples behind the intervals.")
        ] = 200,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap resamples.")] = 0,
        fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.table,
    ) -> None:
        """Score a detector at every candidate on ID vs noise validation features and pick the best.

        As in Section 4.1 of the paper: noise images stand in for OOD data,
        which is not available at deployment. A paired bootstrap says whether
        the validation can choose at all; when it cannot, a `warning:` line
        says why and the method's default is returned (DICE: p = 0.9).
        """
        from skdice.tuning import tune_store

        # points are this command's unit (the library takes a fraction): checked where they are parsed
        if not 0 <= max_accuracy_drop <= 100:
            raise ValueError(f"--max-accuracy-drop must be in [0, 100] points, got {max_accuracy_drop:g}.")
        values = parse_grids(grid, method)
        from ._console import warning_lines

        with warning_lines():
            search = tune_store(
                store,
                id_split=id_split,
                noise_split=noise if len(noise) > 1 else noise[0],
                train=train,
                train_mean=train_mean,
                grid=values,
                metric=metric.value,
                method=method,
                guard=guard,
                max_accuracy_drop=max_accuracy_drop / 100,
                n_bootstrap=n_bootstrap,
                random_state=seed,
            )
        if fmt is Format.json:
            context = {
                "store": str(store),
                "id": id_split,
                "noise": "+".join(noise),
                "noise_splits": list(noise),
                "train": train,
                "train_mean": None if train_mean is None else str(train_mean),
            }
            typer.echo(render_json(search, **context))
        else:
            typer.echo(render_table(search, noise=noise, id_split=id_split))
