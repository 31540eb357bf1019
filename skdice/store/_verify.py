"""Checking a whole store, every chunk of every array decoded: :func:`verify_store`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..exceptions import StoreError
from ._integrity import check_stored_array, describe_node, has_checksum, open_node, array_root, rows_of, scan_chunks
from ._reader import FeatureStore, open_store
from ._schema import CHECKSUM, CHECKSUM_ATTR, HEAD, SCORES, is_count, score_schema, split_schema, import_zarr


@dataclass
class StoreReport:
    """What :func:`verify_store` found.

    Attributes
    ----------
    path : pathlib.Path
        The store.
    problems : list of str
        One line per problem: a chunk missing on disk or failing its checksum
        or its decoding, metadata that disagrees with the schema. Empty when
        the store is sound.
    remedies : list of str
        How to repair what ``problems`` lists, one line per kind of repair.
    unchecked : list of str
        The parts written without checksums (by a skdice older than them):
        their chunks were decoded and counted, but damage that still decodes
        cannot be detected in them.
    incomplete : list of str
        Splits whose extraction has not finished: only their metadata was checked.
    arrays : int
        Arrays checked.
    chunks : int
        Chunks decoded.
    """

    path: Path
    problems: list[str] = field(default_factory=list)
    remedies: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    arrays: int = 0
    chunks: int = 0

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems

    def _add(self, message: str, remedy: str | None = None) -> None:
        self.problems.append(message)
        if remedy and remedy not in self.remedies:
            self.remedies.append(remedy)


def verify_store(path, *, progress=None) -> StoreReport:
    """Check a whole feature store: metadata against the schema, then every chunk decoded.

    Unlike the readers, which check what they read as they read it, this
    decodes every chunk of every array (the head, each split's features,
    logits, labels, paths and written flags, and the scores written back),
    so each crc32c checksum is verified and every missing chunk is found. It
    reads whole chunks in blocks of about 8 MiB: memory stays bounded
    whatever the store's size.

    Parameters
    ----------
    path : str, os.PathLike or FeatureStore
    progress : callable, default=None
        Called as ``progress(chunks_done, chunks_total)`` as it goes.

    Returns
    -------
    StoreReport
        ``ok`` is False when anything is damaged; ``problems`` lists it.

    Raises
    ------
    StoreError
        When ``path`` is not a readable store at all (no store, or its root
        ``zarr.json`` is damaged).

    Examples
    --------
    >>> from skdice.store import verify_store
    >>> report = verify_store("cifar10.zarr")  # doctest: +SKIP
    >>> report.ok, report.chunks  # doctest: +SKIP
    (True, 2841)
    """
    fs = path if isinstance(path, FeatureStore) else open_store(path)
    report = StoreReport(fs.path)
    plan = []  # (array, rows or None, line prefix)
    _plan_head(fs, report, plan)
    for split in fs.splits:
        _plan_split(fs, split, report, plan)
    total = sum(_chunks_to_scan(arr, rows) for arr, rows, _ in plan)
    done = 0
    if progress is not None:
        progress(0, total)
    for arr, rows, prefix in plan:
        report.arrays += 1
        before = done

        def step(chunks_done, before=before):
            if progress is not None:
                progress(before + chunks_done, total)

        about = describe_node(fs.path, arr.path)
        for index, reason in scan_chunks(arr, rows=rows, progress=step):
            where = f"chunk {index}{rows_of(arr, index)}" if isinstance(index, int) else f"chunk {index}"
            part = f" of {about.part}" if about.part else ""
            report._add(f"{prefix}: {where}{part} {reason}", about.remedy)
        done = before + _chunks_to_scan(arr, rows)
        report.chunks = done
    if progress is not None:
        progress(total, total)
    return report


def _chunks_to_scan(arr, rows) -> int:
    grid = [int(n) for n in arr.cdata_shape]
    if not grid or not all(grid):
        return 0
    if rows is not None and len(grid) >= 1:
        grid[0] = min(grid[0], -(-int(rows) // max(int(arr.chunks[0]), 1)))
    total = 1
    for n in grid:
        total *= n
    return total


def _plan_head(fs: FeatureStore, report: StoreReport, plan: list) -> None:
    zarr = import_zarr()
    try:
        m, c = fs.widths()
        head = open_node(fs.group, HEAD, fs.path, HEAD)
        arrays = {name: open_node(head, name, fs.path, f"{HEAD}/{name}") for name in ("weight", "bias")}
    except KeyError:
        report._add(f"{fs.path} has no head/weight and head/bias arrays: not a complete store.")
        return
    except StoreError as exc:
        report._add(str(exc))
        return
    for name, shape in (("weight", (m, c)), ("bias", (c,))):
        arr = arrays[name]
        if not isinstance(arr, zarr.Array):
            report._add(f"head/{name} in {fs.path} is not an array.")
            continue
        if _checked(report, arr, shape=shape, data_type="float32", checksum=fs.checksums):
            plan.append((arr, None, "head"))
    if not all(has_checksum(a) for a in arrays.values() if isinstance(a, zarr.Array)):
        report.unchecked.append("head")


def _checked(report: StoreReport, arr, **schema) -> bool:
    """The schema check of one array (missing chunks are left to the scan, which names them)."""
    try:
        check_stored_array(arr, **schema, dense=False)
    except StoreError as exc:
        report._add(str(exc), describe_node(array_root(arr), arr.path).remedy)
        return False
    return True


def _plan_split(fs: FeatureStore, split: str, report: StoreReport, plan: list) -> None:
    zarr = import_zarr()
    try:
        group = fs.split_group(split)
        layout = fs.layout(split, group)
    except StoreError as exc:
        report._add(str(exc))
        return
    prefix = f"split {split!r}"
    complete = group.attrs.get("complete") is True
    if not complete:
        report.incomplete.append(split)
    schema = split_schema(layout["count"], layout["chunk_rows"], layout["n_chunks"],
                           layout["n_features"], layout["n_classes"])
    checksums = True
    for name, expected in schema.items():
        try:
            arr = open_node(group, name, fs.path, f"{split}/{name}")
        except KeyError:
            report._add(f"{prefix} of {fs.path} has no array {name!r}.",
                        describe_node(fs.path, f"{split}/{name}").remedy)
            continue
        except StoreError as exc:
            report._add(str(exc))
            continue
        if not isinstance(arr, zarr.Array):
            report._add(f"{split}/{name} in {fs.path} is not an array.")
            continue
        checksums = checksums and has_checksum(arr)
        if _checked(report, arr, **expected, checksum=layout["checksum"]) and complete:
            plan.append((arr, None, prefix))
    if not checksums:
        report.unchecked.append(f"split {split!r}")
    names = fs.score_names(split)
    if not names:
        return
    rerun = describe_node(fs.path, f"{split}/{SCORES}/x").remedy
    try:
        scores = open_node(group, SCORES, fs.path, f"{split}/{SCORES}")
    except (KeyError, StoreError) as exc:
        report._add(str(exc) if isinstance(exc, StoreError) else f"{split}/{SCORES} in {fs.path} is unreadable.",
                    describe_node(fs.path, f"{split}/{SCORES}").remedy)
        return
    for name in names:
        node = f"{split}/{SCORES}/{name}"
        try:
            arr = open_node(scores, name, fs.path, node)
        except (KeyError, StoreError) as exc:
            report._add(str(exc) if isinstance(exc, StoreError) else f"{node} in {fs.path} is unreadable.",
                        rerun)
            continue
        if not isinstance(arr, zarr.Array):
            continue
        attrs = arr.attrs.asdict()
        chunk_rows = attrs.get("chunk_rows")
        schema = score_schema(layout["count"], chunk_rows if is_count(chunk_rows, 1) else None)
        if not _checked(report, arr, **schema, checksum=attrs.get(CHECKSUM_ATTR) == CHECKSUM):
            continue
        if attrs.get("complete", True) is True:
            rows = None
        else:  # being written: only the rows already written are checked
            rows = attrs.get("rows_done") if is_count(attrs.get("rows_done")) else 0
        plan.append((arr, rows, f"scores {node}"))
        if not has_checksum(arr):
            report.unchecked.append(f"scores {node}")
