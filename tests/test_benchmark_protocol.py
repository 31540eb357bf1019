"""Benchmark protocols (skdice/workflows/_protocol.py): the TOML format, its errors, the shipped files."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from skdice.workflows._protocol import Protocol, ProtocolError, load_protocol, parse_protocol, shipped_protocols

REPO = Path(__file__).resolve().parents[1]

MINIMAL = {"name": "x", "id": {"test": "t"}, "ood": {"near": ["a"], "far": ["b"]}}


def _with(**tables):
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in MINIMAL.items()}
    for table, value in tables.items():
        if isinstance(value, dict) and isinstance(data.get(table), dict):
            data[table].update(value)
        else:
            data[table] = value
    return data


def test_the_issue_example_keeps_its_shape(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("""
name = "cifar10-openood-v1.5"
[id]
test = "cifar10-test"
val = "cifar10-val"
[ood]
val = ["tin-val"]
near = ["cifar100", "tin"]
far = ["mnist", "svhn", "texture", "places365"]
[csid]
test = ["cifar10-c"]
[metrics]
tpr = 0.95
positive = "id"
""")
    p = load_protocol(path)
    assert (p.id_test, p.id_val, p.ood_val) == ("cifar10-test", "cifar10-val", ("tin-val",))
    assert p.near == ("cifar100", "tin") and p.far == ("mnist", "svhn", "texture", "places365")
    assert p.csid == ("cifar10-c",) and p.tpr == 0.95 and p.positive == "id"
    assert p.ood == (*p.near, *p.far) and p.tuned and p.source == str(path)


def test_defaults_of_the_optional_keys():
    p = parse_protocol(MINIMAL)
    assert p.id_val is None and p.id_train is None and p.ood_val == () and p.csid == ()
    assert (p.tpr, p.positive, p.n_bootstrap, p.confidence, p.seed, p.tune_metric) == \
        (0.95, "id", 1000, 0.95, 0, "fpr95")
    assert not p.tuned and p.groups == {"near": ("a",), "far": ("b",)}


def test_to_dict_parses_back_to_the_same_protocol():
    p = parse_protocol(_with(id={"val": "v", "train": "tr"}, ood={"val": ["ov"], "noise": ["nz"]}, csid={"test": ["c"]},
                             metrics={"seed": 3, "n_bootstrap": 0}, tuning={"metric": "auroc"}))
    assert parse_protocol(p.to_dict()) == p


@pytest.mark.parametrize(
    "data, words",
    [
        (_with(extra=1), "unknown key 'extra'"),
        (_with(idd={"test": "t"}), "unknown key 'idd'"),
        (_with(ood={"nearr": ["a"]}), "unknown key 'ood.nearr'"),
        ({"id": {"test": "t"}, "ood": {"near": ["a"]}}, "name is missing"),
        ({"name": "x", "ood": {"near": ["a"]}}, "id.test is missing"),
        (_with(ood={"near": [], "far": []}), "at least one OOD test split"),
        (_with(id={"test": 3}), "id.test must be a non-empty string, got 3"),
        (_with(id="t"), "id must be a table ([id])"),
        (_with(ood={"near": [1]}), "ood.near must be a list of split names"),
        (_with(ood={"near": ["a", "a"]}), "ood.near names a split twice"),
        (_with(ood={"far": ["t"]}), "split 't' is named in both id.test and ood.far"),
        (_with(csid={"test": ["a"]}), "split 'a' is named in both ood.near and csid.test"),
        (_with(id={"val": "v"}), "id.val is given but ood.val (or ood.noise) is not"),
        (_with(ood={"val": ["v"]}), "ood.val is given but id.val is not"),
        (_with(ood={"noise": ["v"]}), "ood.noise is given but id.val is not"),
        (_with(ood={"noise": ["a"]}, id={"val": "v"}), "split 'a' is named in both ood.noise and ood.near"),
        (_with(metrics={"tpr": 1.5}), "metrics.tpr must be in (0, 1), got 1.5"),
        (_with(metrics={"tpr": "high"}), "metrics.tpr must be a number"),
        (_with(metrics={"positive": "both"}), "metrics.positive must be 'id' or 'ood'"),
        (_with(metrics={"confidence": 1.0}), "metrics.confidence must be in (0, 1)"),
        (_with(metrics={"n_bootstrap": -1}), "metrics.n_bootstrap must be a whole number >= 0"),
        (_with(metrics={"n_bootstrap": 10**9}), "metrics.n_bootstrap must be in [0, 100000], got 1000000000"),
        (_with(metrics={"seed": True}), "metrics.seed must be a whole number >= 0"),
        (_with(tuning={"metric": "aupr"}), "tuning.metric must be 'fpr95' or 'auroc'"),
    ],
)
def test_each_error_names_the_key(data, words):
    with pytest.raises(ProtocolError) as info:
        parse_protocol(data, origin="p.toml")
    message = str(info.value)
    assert message.startswith("p.toml: ") and words in message


def test_synthetic_outliers_alone_can_tune():
    p = parse_protocol(_with(id={"val": "v"}, ood={"noise": ["jig"]}))
    assert p.tuned and p.noise == ("jig",) and p.ood_val == ()


def test_a_single_split_name_counts_as_a_list():
    assert parse_protocol(_with(ood={"near": "a"})).near == ("a",)


def test_invalid_toml_is_one_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("name = \n")
    with pytest.raises(ProtocolError, match=r"bad.toml is not valid TOML"):
        load_protocol(path)


def test_a_missing_file_lists_the_shipped_protocols(tmp_path):
    with pytest.raises(ProtocolError, match=r"no protocol file .*nope.toml.*shipped: cifar10-openood-v1.5"):
        load_protocol(tmp_path / "nope.toml")
    with pytest.raises(ProtocolError, match=r"no shipped protocol of that name"):
        load_protocol("cifar11-openood")


def test_a_protocol_object_passes_through():
    p = parse_protocol(MINIMAL)
    assert load_protocol(p) is p


def test_shipped_protocols_are_found_by_name_and_by_path():
    names = shipped_protocols()
    assert names == ["cifar10-openood-v1.5", "cifar100-openood-v1.5", "imagenet-openood-v1.5",
                     "imagenet200-openood-v1.5", "shared-cifar10-densenet"]
    for name in names:
        by_name = load_protocol(name)
        by_path = load_protocol(REPO / "skdice" / "protocols" / f"{name}.toml")
        assert by_name.name == name and by_name.source == f"shipped:{name}"
        assert by_path.to_dict() == by_name.to_dict()


# OpenOOD v1.5's DATA_INFO (openood/evaluation_api/datasets.py): near, far, CSID, OOD validation
OPENOOD = {
    "cifar10-openood-v1.5": (("cifar100", "tin"), ("mnist", "svhn", "texture", "places365"), ("cifar10c",),
                             ("tin-val",)),
    "cifar100-openood-v1.5": (("cifar10", "tin"), ("mnist", "svhn", "texture", "places365"), (), ("tin-val",)),
    "imagenet200-openood-v1.5": (("ssb_hard", "ninco"), ("inaturalist", "textures", "openimage_o"),
                                 ("imagenet_v2", "imagenet_c", "imagenet_r"), ("openimage_o-val",)),
    "imagenet-openood-v1.5": (("ssb_hard", "ninco"), ("inaturalist", "textures", "openimage_o"),
                              ("imagenet_v2", "imagenet_c", "imagenet_r", "imagenet_es"), ("openimage_o-val",)),
}


@pytest.mark.parametrize("name", sorted(OPENOOD))
def test_openood_protocols_list_openoods_sets(name):
    p = load_protocol(name)
    assert (p.near, p.far, p.csid, p.ood_val) == OPENOOD[name]
    # OpenOOD v1.5: OOD is FPR@95's positive class; its search keeps the best validation AUROC
    assert p.positive == "ood" and p.tune_metric == "auroc" and p.tuned and p.id_train


def test_the_shipped_protocols_are_package_data():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "protocols/*.toml" in config["tool"]["setuptools"]["package-data"]["skdice"]


def test_protocol_is_frozen():
    p = parse_protocol(MINIMAL)
    with pytest.raises(AttributeError):
        p.name = "y"
    assert isinstance(p, Protocol)
