"""``skdice tune``: choose a detector's hyperparameters on validation features, or say it cannot."""

from __future__ import annotations

import ast
from enum import Enum
from typing import Annotated

import typer

from ._options import OUTPUT_FORMAT, StoreArgument, TrainMeanInsteadOfTrain


class Metric(str, Enum):
    """Selection criteria of ``skdice tune``."""

    fpr95 = "fpr95"
    auroc = "auroc"


class Format(str, Enum):
    """Output formats of ``skdice tune``."""

    table = "table"
    json = "json"



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


def render_table(search, *, noise, id_split: str = "the ID split") -> str:
    """The search's table as ``skdice tune`` prints it (:meth:`skdice.workflows.tune.SearchReport.to_table`).

    Parameters
    ----------
    search : skdice.tuning.SparsitySearch or HyperparameterSearch
        Fitted.
    noise : str or sequence of str
    id_split : str, default="the ID split"

    Returns
    -------
    str
    """
    from skdice.workflows.tune import SearchReport

    from ._console import render_table as render
    from .errors import COMMAND_FLAGS, in_flag_words

    return in_flag_words(SearchReport(search, noise=noise, id_split=id_split).to_table(render), COMMAND_FLAGS["tune"])


def render_json(search, **context) -> str:
    """The search's JSON (:meth:`skdice.workflows.tune.SearchReport.to_json`).

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
    from skdice.workflows.tune import SearchReport

    return SearchReport(search, noise=(), context=context).to_json()


#: the most bootstrap resamples (docs/cli.md, "Ranges"): the time grows with them, the intervals hardly
MAX_BOOTSTRAP = 100000


def register(app: typer.Typer) -> None:
    """Add the ``tune`` command to the app.

    Parameters
    ----------
    app : typer.Typer
    """

    @app.command("tune")
    def tune(
        store: StoreArgument,
        id_split: Annotated[
            str, typer.Option("--id", help="Split of ID validation features.", show_default=False)
        ],
        noise: Annotated[
            list[str] | None,
            typer.Option(
                "--noise",
                help="Split of synthetic OOD validation features (noise:N, a generated source or a "
                "corruption such as blur:FOLDER); repeatable. Synthetic outliers confirm a move from "
                "the defaults, never make one (docs/tuning.md).",
                show_default=False,
            ),
        ] = None,
        ood_val: Annotated[
            list[str] | None,
            typer.Option(
                "--ood-val",
                help="Split of real OOD validation images (another data set, held out from testing); "
                "repeatable. A move from the defaults needs one --ood-val and one --noise split to agree.",
                show_default=False,
            ),
        ] = None,
        train: Annotated[
            str | None,
            typer.Option("--train", help="Split of ID training features (DICE: its mean defines the mask)."),
        ] = None,
        train_mean: TrainMeanInsteadOfTrain = None,
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
            int, typer.Option("--n-bootstrap", min=10, max=MAX_BOOTSTRAP,
                              help="Bootstrap resamples behind the intervals.")
        ] = 200,
        seed: Annotated[
            int, typer.Option("--seed", min=0, max=2**32 - 1, help="Seed of the bootstrap resamples.")
        ] = 0,
        fmt: Annotated[Format, OUTPUT_FORMAT] = Format.table,
    ) -> None:
        """Score a detector at every candidate on ID vs OOD validation features, and choose or decline.

        The method's defaults (DICE: p = 0.9) stay unless a candidate beats
        them beyond sampling noise (a paired bootstrap) on every validation
        split, and the splits include real OOD images (--ood-val) and
        synthetic outliers (--noise). When validation cannot move them, a
        `warning:` line says why and names the split that decided.
        """
        from skdice.tuning import tune_store

        from ._console import warning_lines

        # points are this command's unit (the library takes a fraction): checked where they are parsed
        if not 0 <= max_accuracy_drop <= 100:
            raise ValueError(f"--max-accuracy-drop must be in [0, 100] points, got {max_accuracy_drop:g}.")
        values = parse_grids(grid, method)
        with warning_lines():
            search = tune_store(
                store,
                id_split=id_split,
                noise_split=noise or (),
                ood_val_split=ood_val or (),
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
        context = {
            "store": str(store),
            "id": id_split,
            "noise": "+".join(noise or ()),
            "noise_splits": list(noise or ()),
            "ood_val_splits": list(ood_val or ()),
            "train": train,
            "train_mean": None if train_mean is None else str(train_mean),
        }
        typer.echo(render_json(search, **context) if fmt is Format.json
                   else render_table(search, noise=[*(noise or ()), *(ood_val or ())], id_split=id_split))
