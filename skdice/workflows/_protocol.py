"""Benchmark protocols: which splits of a store play which role, read from TOML.

A protocol file names the ID test split, the optional validation splits the
methods are tuned on, the near- and far-OOD groups, the covariate-shifted ID
(CSID) splits and the metric conventions (docs/benchmark.md). This module
parses and checks it with :mod:`tomllib`; every error names the key at fault.
The shipped protocols live in ``skdice/protocols/*.toml`` and are found by
name (``cifar10-openood-v1.5``) as well as by path.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..exceptions import SkdiceError

__all__ = ["MAX_RESAMPLES", "Protocol", "ProtocolError", "load_protocol", "parse_protocol", "shipped_protocols"]

#: the most bootstrap resamples a benchmark draws per cell (time grows with them; the
#: intervals hardly change past a few thousand)
MAX_RESAMPLES = 100_000

#: every key a protocol may hold, by table ("" is the top level); the values say what each takes
_KEYS = {
    "": {"name": "str", "description": "str"},
    "id": {"test": "str", "val": "str", "train": "str"},
    "ood": {"val": "list", "noise": "list", "near": "list", "far": "list"},
    "csid": {"test": "list"},
    "metrics": {"tpr": "float", "positive": "str", "n_bootstrap": "int", "confidence": "float", "seed": "int"},
    "tuning": {"metric": "str"},
}
_TABLES = tuple(t for t in _KEYS if t)


class ProtocolError(SkdiceError, ValueError):
    """A protocol file that cannot be read, or that breaks the format of docs/benchmark.md."""


@dataclass(frozen=True)
class Protocol:
    """The roles of a store's splits in a benchmark, and its metric conventions.

    Attributes
    ----------
    name : str
        The protocol's name (``"cifar10-openood-v1.5"``).
    id_test : str
        The ID test split (``[id] test``).
    id_val : str or None
        The ID validation split the methods are tuned on (``[id] val``).
    id_train : str or None
        The ID training split the methods are fitted on (``[id] train``).
    ood_val : tuple of str
        The real OOD validation splits of the tuning (``[ood] val``).
    noise : tuple of str
        Synthetic outlier validation splits of the tuning (``[ood] noise``:
        generated noise or corrupted ID images, ``skdice extract --data
        gaussian:...``, ``jigsaw:...``); the search tells them from real ones.
    near, far : tuple of str
        The near- and far-OOD groups (``[ood] near``, ``[ood] far``).
    csid : tuple of str
        Covariate-shifted ID test splits (``[csid] test``).
    tpr : float
        The TPR of the FPR column (``[metrics] tpr``, default 0.95).
    positive : {"id", "ood"}
        The FPR convention (``[metrics] positive``, default ``"id"``).
    n_bootstrap : int
        Bootstrap resamples behind each interval (``[metrics] n_bootstrap``,
        default 1000; 0 gives no interval).
    confidence : float
        Level of the intervals (``[metrics] confidence``, default 0.95).
    seed : int
        Seed of the tuning's and the intervals' resamples (``[metrics] seed``, default 0).
    tune_metric : {"fpr95", "auroc"}
        Selection criterion of the tuning (``[tuning] metric``, default ``"fpr95"``).
    description : str
        Free text (``description``).
    source : str
        Where it was read from: ``"shipped:NAME"`` or the file's path.
    """

    name: str
    id_test: str
    near: tuple = ()
    far: tuple = ()
    id_val: str | None = None
    id_train: str | None = None
    ood_val: tuple = ()
    noise: tuple = ()
    csid: tuple = ()
    tpr: float = 0.95
    positive: str = "id"
    n_bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0
    tune_metric: str = "fpr95"
    description: str = ""
    source: str = ""

    @property
    def ood(self) -> tuple:
        """Every OOD test split: the near group, then the far group."""
        return (*self.near, *self.far)

    @property
    def groups(self) -> dict:
        """``{"near": (...), "far": (...)}``, the non-empty groups only."""
        return {name: splits for name, splits in (("near", self.near), ("far", self.far)) if splits}

    @property
    def tuned(self) -> bool:
        """Whether the protocol names validation splits to tune on."""
        return self.id_val is not None

    def to_dict(self) -> dict:
        """The protocol as a TOML-shaped dict (what a benchmark's JSON records).

        Returns
        -------
        dict
            ``{"name", "description", "id": {...}, "ood": {...}, "csid": {...},
            "metrics": {...}, "tuning": {...}}``; optional keys that are unset
            are left out.
        """
        out = {"name": self.name, **({"description": self.description} if self.description else {}),
               "id": {"test": self.id_test},
               "ood": {"val": list(self.ood_val), "noise": list(self.noise), "near": list(self.near),
                       "far": list(self.far)},
               "csid": {"test": list(self.csid)},
               "metrics": {"tpr": self.tpr, "positive": self.positive, "n_bootstrap": self.n_bootstrap,
                           "confidence": self.confidence, "seed": self.seed},
               "tuning": {"metric": self.tune_metric}}
        for key, value in (("val", self.id_val), ("train", self.id_train)):
            if value is not None:
                out["id"][key] = value
        return out


def _where(table: str, key: str) -> str:
    return f"{table}.{key}" if table else key


def _typed(value, kind: str, where: str, origin: str):
    """``value`` checked against the kind of its key (``str``, ``list`` of str, ``float``, ``int``)."""
    def bad(expected):
        return ProtocolError(f"{origin}: {where} must be {expected}, got {value!r}.")

    if kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise bad("a non-empty string")
        return value
    if kind == "list":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise bad("a list of split names")
        if len(set(value)) != len(value):
            raise ProtocolError(f"{origin}: {where} names a split twice: {value!r}.")
        return tuple(value)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("a whole number >= 0")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad("a number")
    return float(value)


def parse_protocol(data: dict, *, origin: str = "protocol", source: str = "") -> Protocol:
    """A :class:`Protocol` from the dict a TOML file parses to, every key checked.

    Parameters
    ----------
    data : dict
        What :func:`tomllib.load` returned (or :meth:`Protocol.to_dict`).
    origin : str, default="protocol"
        How error messages name the file.
    source : str, default=""
        Recorded as :attr:`Protocol.source`.

    Returns
    -------
    Protocol

    Raises
    ------
    ProtocolError
        Naming the key: an unknown table or key, a missing ``name``,
        ``id.test`` or OOD group, a value of the wrong type, a split in two
        roles, ``id.val`` without ``ood.val`` (or the reverse), or a metric
        setting out of range.
    """
    values = {}
    for table, item in data.items():
        if table not in _KEYS or not table:
            if isinstance(item, dict) or table not in _KEYS[""]:
                known = ", ".join([*_KEYS[""], *(f"[{t}]" for t in _TABLES)])
                raise ProtocolError(f"{origin}: unknown key {table!r} (a protocol has {known}).")
            values[("", table)] = _typed(item, _KEYS[""][table], table, origin)
            continue
        if not isinstance(item, dict):
            raise ProtocolError(f"{origin}: {table} must be a table ([{table}]), got {item!r}.")
        for key, value in item.items():
            if key not in _KEYS[table]:
                raise ProtocolError(f"{origin}: unknown key {_where(table, key)!r} "
                                    f"([{table}] has {', '.join(_KEYS[table])}).")
            values[(table, key)] = _typed(value, _KEYS[table][key], _where(table, key), origin)
    for required in (("", "name"), ("id", "test")):
        if required not in values:
            raise ProtocolError(f"{origin}: {_where(*required)} is missing (see docs/benchmark.md).")
    get = values.get
    protocol = Protocol(
        name=get(("", "name")), description=get(("", "description"), ""),
        id_test=get(("id", "test")), id_val=get(("id", "val")), id_train=get(("id", "train")),
        ood_val=get(("ood", "val"), ()), noise=get(("ood", "noise"), ()), near=get(("ood", "near"), ()), far=get(("ood", "far"), ()),
        csid=get(("csid", "test"), ()), tpr=get(("metrics", "tpr"), 0.95),
        positive=get(("metrics", "positive"), "id"), n_bootstrap=get(("metrics", "n_bootstrap"), 1000),
        confidence=get(("metrics", "confidence"), 0.95), seed=get(("metrics", "seed"), 0),
        tune_metric=get(("tuning", "metric"), "fpr95"), source=source,
    )
    _check_roles(protocol, origin)
    return protocol


def _check_roles(p: Protocol, origin: str) -> None:
    """Each split in one role; the OOD groups, the tuning pair and the metric settings sound."""
    if not p.ood:
        raise ProtocolError(f"{origin}: name at least one OOD test split in ood.near or ood.far.")
    if (p.id_val is None) != (not p.ood_val and not p.noise):
        given, missing = ("id.val", "ood.val (or ood.noise)") if p.id_val is not None else \
            ("ood.val" if p.ood_val else "ood.noise", "id.val")
        raise ProtocolError(f"{origin}: {given} is given but {missing} is not: the tuning needs both "
                            "(or leave both out to run every method at its defaults).")
    roles = [("id.test", (p.id_test,)), ("id.val", (p.id_val,) if p.id_val else ()),
             ("id.train", (p.id_train,) if p.id_train else ()), ("ood.val", p.ood_val), ("ood.noise", p.noise),
             ("ood.near", p.near), ("ood.far", p.far), ("csid.test", p.csid)]
    seen = {}
    for role, splits in roles:
        for split in splits:
            if split in seen:
                raise ProtocolError(f"{origin}: split {split!r} is named in both {seen[split]} and {role}; "
                                    "each split plays one role.")
            seen[split] = role
    if not 0 < p.tpr < 1:
        raise ProtocolError(f"{origin}: metrics.tpr must be in (0, 1), got {p.tpr!r}.")
    if p.positive not in ("id", "ood"):
        raise ProtocolError(f"{origin}: metrics.positive must be 'id' or 'ood', got {p.positive!r}.")
    if not 0 < p.confidence < 1:
        raise ProtocolError(f"{origin}: metrics.confidence must be in (0, 1), got {p.confidence!r}.")
    if not 0 <= p.n_bootstrap <= MAX_RESAMPLES:
        raise ProtocolError(f"{origin}: metrics.n_bootstrap must be in [0, {MAX_RESAMPLES}], got {p.n_bootstrap!r}.")
    if p.tune_metric not in ("fpr95", "auroc"):
        raise ProtocolError(f"{origin}: tuning.metric must be 'fpr95' or 'auroc', got {p.tune_metric!r}.")


def _shipped_folder():
    return resources.files("skdice") / "protocols"


def shipped_protocols() -> list[str]:
    """The names of the protocols shipped with skdice, sorted.

    Returns
    -------
    list of str
        File names in ``skdice/protocols/`` without ``.toml``.
    """
    return sorted(f.name[:-5] for f in _shipped_folder().iterdir() if f.name.endswith(".toml"))


def load_protocol(protocol) -> Protocol:
    """A protocol from a TOML file, a shipped protocol's name, or a :class:`Protocol`.

    Parameters
    ----------
    protocol : str, path-like or Protocol
        A path to a ``.toml`` file, or the name of a shipped protocol
        (:func:`shipped_protocols`); a Protocol is returned as it is.

    Returns
    -------
    Protocol

    Raises
    ------
    ProtocolError
        For a missing file that names no shipped protocol, a file that is not
        valid TOML, or one that breaks the format (:func:`parse_protocol`).

    Examples
    --------
    >>> load_protocol("cifar10-openood-v1.5").near
    ('cifar100', 'tin')
    """
    if isinstance(protocol, Protocol):
        return protocol
    path = Path(protocol)
    if path.is_file():
        text, origin, source = path.read_bytes(), str(path), str(path)
    else:
        name = str(protocol)
        shipped = _shipped_folder() / f"{name}.toml"
        if path.suffix == ".toml" or "/" in name or not shipped.is_file():
            raise ProtocolError(f"no protocol file {str(protocol)!r}, and no shipped protocol of that name "
                                f"(shipped: {', '.join(shipped_protocols())}).")
        text, origin, source = shipped.read_bytes(), f"shipped protocol {name!r}", f"shipped:{name}"
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"{origin} is not valid TOML: {exc}.") from None
    return parse_protocol(data, origin=origin, source=source)
