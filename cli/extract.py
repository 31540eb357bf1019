"""``skdice extract``: penultimate features of a model over a data source into a feature store."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Optional

import typer


#: the ranges of extract's numbers (docs/cli.md, "Ranges"), checked before any work
MAX_BATCH_SIZE = 65536
MAX_WORKERS = 256
MAX_INPUT_SIZE = 4096
MIN_STD = 1e-6
MAX_RENDEZVOUS_S = 86400


def check_numbers(input_size: str | None, mean: str | None, std: str | None) -> None:
    """Refuse ``--input-size``, ``--mean`` and ``--std`` values outside their ranges, before any work.

    Sizes are 1 to :data:`MAX_INPUT_SIZE` pixels; means finite; stds finite and
    at least :data:`MIN_STD`. A value that does not parse is left to the
    library, whose message gives the format.

    Parameters
    ----------
    input_size, mean, std : str or None
        The flags' values as typed.

    Raises
    ------
    typer.BadParameter
        Naming the flag, the value and the range.
    """
    if input_size is not None:
        try:
            sizes = [int(p) for p in input_size.lower().replace(",", "x").split("x") if p.strip()]
        except ValueError:
            sizes = []
        if any(not 1 <= size <= MAX_INPUT_SIZE for size in sizes):
            raise typer.BadParameter(f"{input_size!r}: image sizes are 1 to {MAX_INPUT_SIZE} pixels.",
                                     param_hint="'--input-size'")
    for flag, text in (("--mean", mean), ("--std", std)):
        try:
            values = [float(v) for v in (text or "").split(",") if v.strip()]
        except ValueError:
            continue
        if not all(math.isfinite(v) for v in values):
            raise typer.BadParameter(f"{text!r}: every value must be a finite number.", param_hint=f"'{flag}'")
        # zero or negative is the library's "must be positive"; a tiny positive std is ours
        if flag == "--std" and any(0 < v < MIN_STD for v in values):
            raise typer.BadParameter(f"{text!r}: a std below {MIN_STD:g} would blow the input up to infinity.",
                                     param_hint="'--std'")


def check_distributed_environment() -> None:
    """Refuse malformed ``WORLD_SIZE``, ``RANK`` and ``SKDICE_RENDEZVOUS_TIMEOUT`` values, before any work.

    A well-formed ``WORLD_SIZE`` above 1 makes the extraction distributed: the
    ranks then meet within ``SKDICE_RENDEZVOUS_TIMEOUT`` seconds (60 by
    default) or the library stops with one line naming the variables.

    Raises
    ------
    ValueError
        Naming the variable, its value and its range.
    """
    def number(name, low, high, kind=int):
        text = os.environ.get(name)
        if not text:
            return None
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not (low <= value <= high):
            raise ValueError(f"the environment variable {name}={text!r} is out of range: {low} to {high} "
                             "(unset it for a single-process extraction).")
        return value

    world = number("WORLD_SIZE", 1, 65536) or 1
    number("RANK", 0, world - 1)
    number("LOCAL_RANK", 0, 65535)
    number("SKDICE_RENDEZVOUS_TIMEOUT", 1, MAX_RENDEZVOUS_S, float)


def register(app: typer.Typer) -> None:
    """Add the ``extract`` command to the app.

    Parameters
    ----------
    app : typer.Typer
    """

    @app.command("extract")
    def extract(
        model: Annotated[
            str,
            typer.Option(
                "--model",
                metavar="MODEL",
                help="A preset (bit-s-r101, densenet-bc-100) or any torch classifier by import "
                "string: module.path:factory or path/to/file.py:factory (the factory takes no "
                "arguments and returns an nn.Module).",
            ),
        ],
        data: Annotated[
            str,
            typer.Option(
                "--data",
                metavar="SOURCE",
                help="Image folder (class subfolders or flat), .npz of uint8 images, CIFAR python "
                "batches, or a generated source: noise:N[:SEED] (the paper's N(0, 1) input), "
                "gaussian|uniform|rademacher|blobs:N[:SEED] (pixel-space outliers), or "
                "jigsaw|permute|blur:SOURCE (corruptions of ID images); see docs/cli.md.",
            ),
        ],
        out: Annotated[Path, typer.Option("--out", help="Feature store folder (created or extended).")],
        split: Annotated[str, typer.Option("--split", help="Split name, e.g. test, noise, svhn.")],
        weights: Annotated[
            Optional[Path], typer.Option("--weights", help="Weights file of the model (never downloaded).")
        ] = None,
        batch_size: Annotated[
            int, typer.Option("--batch-size", min=1, max=MAX_BATCH_SIZE, help="Images per forward pass.")
        ] = 64,
        device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
        workers: Annotated[
            Optional[int],
            typer.Option("--workers", min=0, max=MAX_WORKERS,
                         help="DataLoader worker processes (default: 0 on CPU, up to 8 on CUDA)."),
        ] = None,
        limit: Annotated[Optional[int], typer.Option("--limit", min=0, help="Use only the first N images.")] = None,
        amp: Annotated[bool, typer.Option("--amp/--no-amp", help="bf16 autocast on CUDA.")] = False,
        channels_last: Annotated[
            Optional[bool],
            typer.Option("--channels-last/--no-channels-last",
                         help="Channels-last memory format [default: on CUDA; on the CPU unless the "
                         "model has GroupNorm layers, which lose precision there].", show_default=False),
        ] = None,
        input_size: Annotated[
            Optional[str],
            typer.Option("--input-size", metavar="SIZE",
                         help="Import-string models: resize images to SIZE or HxW first (default: "
                         "each image's stored size; noise sources need it)."),
        ] = None,
        mean: Annotated[
            Optional[str],
            typer.Option("--mean", metavar="M[,M,M]",
                         help="Import-string models: normalise the [0, 1] input with this mean (with --std)."),
        ] = None,
        std: Annotated[
            Optional[str],
            typer.Option("--std", metavar="S[,S,S]", help="Import-string models: the std of the normalisation."),
        ] = None,
        head: Annotated[
            Optional[str],
            typer.Option("--head", metavar="NAME",
                         help="Import-string models: dotted name of the head module when the last "
                         "nn.Linear / 1x1 conv is not it."),
        ] = None,
    ) -> None:
        """Write a model's penultimate features, logits, labels and head to a Zarr store.

        Re-running the same command resumes an interrupted split from its last
        fully written chunk; readers refuse a split until it is complete.
        """
        from skdice.exceptions import require

        require("torch", "extract")
        from skdice.extract.models import load_model
        from skdice.extract.run import extract_features
        from skdice.store import open_store

        from ._console import Progress

        check_numbers(input_size, mean, std)
        check_distributed_environment()
        spec = load_model(model, weights, input_size=input_size, mean=mean, std=std, head=head)
        with Progress(f"extracting {split}") as progress:
            path = extract_features(
                spec, data, out, split, batch_size=batch_size, device=device, workers=workers,
                limit=limit, amp=amp, channels_last=channels_last, progress=progress,
            )
        if os.environ.get("RANK", "0") != "0":
            return  # under torchrun, rank 0 reports
        info = open_store(path).split_info(split)
        typer.echo(
            f"{path}: split {split!r} complete, {info['count']} rows of {info['n_features']} "
            f"features and {info['n_classes']} logits ({model})."
        )
