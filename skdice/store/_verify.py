"""Checking a whole store, every chunk of every array decoded: :func:`verify_store`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..exceptions import StoreError
import numpy as np

from ._integrity import (
    array_root,
    check_stored_array,
    describe_node,
    has_checksum,
    open_node,
    read_checked,
    rows_of,
    scan_chunks,
)
from ._manifest import DIGEST_MISMATCH, MANIFEST_ATTR, SCORE_DIGEST_MISMATCH, score_digests
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
    unmanifested : list of str
        The parts written without a manifest (``"the store"`` for its head and
        model name, ``"split 'NAME'"``; by a skdice older than manifests): a
        valid chunk in the wrong place cannot be detected in them.
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
    unmanifested: list[str] = field(default_factory=list)
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
    whatever the store's size. Against the manifests (docs/store.md, "The
    manifest") it checks each chunk's digest at its position, each split's
    counts, head fingerprint and model, the head's fingerprint and the model
    name; and on a sample of rows of each split, the stored logits against the
    features times the head.

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
        part = f" of {about.part}" if about.part else ""
        on_block = _digest_check(fs, arr, prefix, part, about.remedy, report)
        for index, reason in scan_chunks(arr, rows=rows, progress=step, on_block=on_block):
            where = f"chunk {index}{rows_of(arr, index)}" if isinstance(index, int) else f"chunk {index}"
            report._add(f"{prefix}: {where}{part} {reason}", about.remedy)
        done = before + _chunks_to_scan(arr, rows)
        report.chunks = done
    _check_identity(fs, report)
    if progress is not None:
        progress(total, total)
    return report


def _digest_check(fs: FeatureStore, arr, prefix: str, part: str, remedy: str, report: StoreReport):
    """An ``on_block`` for :func:`scan_chunks` reporting each chunk its split's manifest disowns."""
    parts = arr.path.split("/")
    if len(parts) == 3 and parts[1] == SCORES and prefix.startswith("scores "):
        return _score_digest_check(arr, prefix, part, remedy, report)
    if len(parts) != 2 or not prefix.startswith("split "):
        return None
    try:
        digests = fs.chunk_digests(parts[0], parts[1])
    except StoreError:
        return None  # reported with the split's plan
    if digests is None:
        return None

    def on_block(start, block):
        for k in digests.mismatches(start, block):
            report._add(f"{prefix}: chunk {k}{rows_of(arr, k)}{part} {DIGEST_MISMATCH}", remedy)

    return on_block


def _score_digest_check(arr, prefix: str, part: str, remedy: str, report: StoreReport):
    """An ``on_block`` reporting each chunk of a complete score array its manifest disowns."""
    if arr.attrs.get("complete", True) is not True:
        return None
    digests = score_digests(arr)
    if digests is None:
        return None

    def on_block(start, block):
        for k in digests.mismatches(start, block):
            report._add(f"{prefix}: chunk {k}{rows_of(arr, k)}{part} {SCORE_DIGEST_MISMATCH}", remedy)

    return on_block


#: Stored logits may differ from features x head by this much of ``|h| |W| + |b|``
#: (bf16 autocast rounds each product to 8 bits; another head differs by far more).
LOGITS_RTOL = 2.0**-5
#: Row chunks of each split whose logits are compared with features x head.
LOGITS_SAMPLE_CHUNKS = 4


def _check_identity(fs: FeatureStore, report: StoreReport) -> None:
    """The model's name and the head against the store's manifest; each split's logits against the head."""
    head_remedy = describe_node(fs.path, "head/weight").remedy
    try:
        record = fs.manifest()
    except StoreError as exc:
        report._add(str(exc), f"restore {fs.path} from a copy")
        record = None
    if record is None:
        report.unmanifested.append("the store")
    for problem in fs.identity_problems() if record is not None else ():
        report._add(problem, f"restore {fs.path} from a copy")
    if any(p.startswith("head") or "head's" in p for p in report.problems):
        return  # the head itself is damaged: already reported
    try:
        weight, bias = fs.head_values()
    except StoreError:
        return
    problem = fs.head_problem(weight, bias)
    if problem:
        report._add(f"head: {problem}", head_remedy)
    for split in fs.splits:
        remedy = head_remedy if problem else describe_node(fs.path, f"{split}/logits").remedy
        _check_logits(fs, split, weight, bias, report, remedy)


def _check_logits(fs: FeatureStore, split: str, weight, bias, report: StoreReport, remedy: str) -> None:
    """Stored logits against features x head on a sample of row chunks (any store, manifest or not)."""
    try:
        features, logits = fs.array(split, "features"), fs.array(split, "logits")
    except StoreError:
        return  # incomplete, or damage already reported
    step, n = int(features.chunks[0]), int(features.shape[0])
    n_chunks = -(-n // max(step, 1))
    picks = sorted({int(k) for k in np.linspace(0, n_chunks - 1, min(LOGITS_SAMPLE_CHUNKS, n_chunks))})
    w, b = np.asarray(weight, np.float64), np.asarray(bias, np.float64)
    for k in picks:
        rows = slice(k * step, min((k + 1) * step, n))
        try:
            h = np.asarray(read_checked(features, rows), np.float64)
            z = np.asarray(read_checked(logits, rows), np.float64)
        except StoreError:
            continue  # reported by the scan
        with np.errstate(all="ignore"):
            diff = np.abs(z - (h @ w + b))
            bound = LOGITS_RTOL * (np.abs(h) @ np.abs(w) + np.abs(b)) + 1e-6
        bad = ~(diff <= bound)
        if bad.any():
            r, _ = np.unravel_index(int(np.argmax(np.where(bad, np.nan_to_num(diff, nan=np.inf), 0))), diff.shape)
            report._add(
                f"split {split!r}: chunk {k}{rows_of(logits, k)} of logits differs from the features times "
                f"the head by up to {float(np.nanmax(np.where(bad, diff, 0))):.3g} (row {rows.start + int(r)}): "
                "the head was replaced (then its fingerprint differs too), or the split's features or logits "
                "were replaced or moved",
                remedy,
            )
            return


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
    else:
        remedy = describe_node(fs.path, f"{split}/features").remedy
        try:
            if fs.manifest(split) is None:
                report.unmanifested.append(prefix)
            for problem in fs.split_manifest_problems(split, layout):
                report._add(f"{prefix}: {problem}", remedy)
        except StoreError as exc:
            report._add(f"{prefix}: {exc}", remedy)
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
        if rows is None and not isinstance(attrs.get(MANIFEST_ATTR), dict):
            report.unmanifested.append(f"scores {node}")
