"""``skdice import``: features computed by any framework (JAX, TensorFlow, ONNX, ...) into a feature store."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer


#: the library's phrases in this command's flags (errors.in_flag_words)
IMPORT_FLAGS = {
    "weight_layout='features-classes' (n_features, n_classes) or 'classes-features' (n_classes, n_features)":
        "--weight-layout features-classes (n_features, n_classes) or classes-features (n_classes, n_features)",
    "weight_layout='features-classes'": "--weight-layout features-classes",
    "weight_layout='classes-features'": "--weight-layout classes-features",
    "(weight=W.npy, bias=b.npy, weight_layout=...) and model=NAME":
        "(--weight W.npy --bias b.npy --weight-layout features-classes|classes-features) and --model NAME",
    "leave weight= and bias= out": "leave --weight and --bias out",
    "leave model= out": "leave --model out",
    "bias= and weight_layout= describe a weight: give weight= too": "--bias and --weight-layout describe a "
                                                                       "weight: give --weight too",
    "leave the logits out": "leave --logits out",
    "use another split name": "use another --split",
}


class WeightLayout(str, Enum):
    """How ``--weight`` is laid out (stated, never guessed)."""

    features_classes = "features-classes"
    classes_features = "classes-features"


def _file(flag: str, what: str):
    return Annotated[Path | None, typer.Option(flag, metavar="FILE", help=what, show_default=False)]


def register(app: typer.Typer) -> None:
    """Add the ``import`` command to the app.

    Parameters
    ----------
    app : typer.Typer
    """

    @app.command("import")
    def import_command(
        store: Annotated[Path, typer.Argument(help="Feature store folder: created by the first import, "
                                                    "extended by the next ones.")],
        split: Annotated[str, typer.Option("--split", metavar="NAME", help="Split name, e.g. test, noise, svhn.")],
        features: Annotated[
            Path, typer.Option("--features", metavar="FILE",
                               help="Penultimate features (N, m): FILE.npy or FILE.npz:KEY.")],
        labels: _file("--labels", "Class indices (N,), integers, -1 = unknown. Default: all -1.") = None,
        logits: _file("--logits", "The head's logits (N, C). Default: computed as features x weight + bias.") = None,
        weight: _file("--weight", "The head's weight (first split of a new store; else checked against "
                                  "the store's).") = None,
        bias: _file("--bias", "The head's bias (C,). Default with --weight: zeros.") = None,
        weight_layout: Annotated[
            WeightLayout | None,
            typer.Option("--weight-layout", metavar="features-classes|classes-features",
                         help="How --weight is laid out: (m, C) as JAX's Dense kernel, or (C, m) as "
                         "PyTorch's Linear and ONNX Gemm with transB=1. Required with --weight.",
                         show_default=False),
        ] = None,
        model_name: Annotated[
            str | None, typer.Option("--model", metavar="NAME",
                                     help="The model's name, recorded (first split of a new store).")
        ] = None,
    ) -> None:
        """Write NumPy arrays of features (from JAX, TensorFlow, ONNX, ...) into a store as a split.

        The split is written as `skdice extract` writes one: checksummed,
        with the manifest and a content fingerprint, resumable by running the
        same command again. Everything is checked before anything is written.
        """
        from skdice.store import import_arrays, open_store

        from ._console import Progress
        from .errors import in_flag_words

        try:
            with Progress(f"importing {split}") as progress:
                import_arrays(
                    store, split, features=features, labels=labels, logits=logits, weight=weight, bias=bias,
                    weight_layout=None if weight_layout is None else weight_layout.value, model=model_name,
                    progress=progress,
                )
        except ValueError as exc:  # StoreError included: its type kept, its words this command's
            exc.args = (in_flag_words(str(exc), IMPORT_FLAGS),)
            raise
        info = open_store(store).split_info(split)
        typer.echo(f"{store}: split {split!r} complete, {info['count']} rows of {info['n_features']} "
                   f"features and {info['n_classes']} logits (imported).")
