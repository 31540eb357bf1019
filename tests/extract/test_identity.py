"""Content-based model identity: a store is extended by the same parameters, preprocessing and feature layer.

The import string (or module class) is recorded for information: the same
network under another spelling or path is accepted, a changed body under the
same name and head is refused, naming what differs. Stores written before the
fingerprint fall back to comparing the name.
"""

from __future__ import annotations

import copy
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zarr")
from torch import nn  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from skdice.cli.app import app  # noqa: E402
from skdice.exceptions import StoreError  # noqa: E402
from skdice.extract._identity import parameters_fingerprint  # noqa: E402
from skdice.extract.data import ArraySource, NoiseSource  # noqa: E402
from skdice.extract.hooked import HookedExtractor  # noqa: E402
from skdice.extract.run import extract_features  # noqa: E402
from skdice.store import create_store, open_store  # noqa: E402


def tiny(seed=0, classes=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, classes)).eval()


def rows(n=6, seed=1):
    return ArraySource(torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed)), name="x")


# --------------------------------------------------------------------------- the fingerprint


def test_fingerprint_is_the_state_dicts_content_whatever_block_size_or_memory_format():
    model = tiny()
    reference = parameters_fingerprint(model)
    assert reference.startswith("sha256:") and len(reference) == len("sha256:") + 64
    assert parameters_fingerprint(model, block_bytes=7) == reference  # blocks smaller than one row
    assert parameters_fingerprint(copy.deepcopy(model).to(memory_format=torch.channels_last)) == reference
    assert parameters_fingerprint(tiny(seed=0)) == reference  # another instance, the same values


def test_fingerprint_changes_with_a_value_a_dtype_a_buffer_or_a_name():
    model = tiny()
    reference = parameters_fingerprint(model)
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed[0].weight[0, 0, 0, 0] += 1e-6
    assert parameters_fingerprint(changed) != reference
    buffered = copy.deepcopy(model)
    buffered[1].running_mean += 1  # a buffer, not a parameter
    assert parameters_fingerprint(buffered) != reference
    assert parameters_fingerprint(copy.deepcopy(model).double()) != reference
    renamed = nn.Sequential(*list(model.children())[:5], nn.Identity(), list(model.children())[5])
    assert parameters_fingerprint(renamed) != reference  # the head is now "6", not "5"


def test_a_store_records_the_fingerprint_and_the_model_name_for_information(tmp_path):
    model = tiny()
    store = open_store(extract_features(model, rows(), tmp_path / "s.zarr", "a", progress=False))
    assert store.attrs["parameters_sha256"] == parameters_fingerprint(model)
    assert store.model == "Sequential" and store.attrs["feature_layer"] == "5:input"


# --------------------------------------------------------------------------- extending a store


def test_the_same_parameters_under_another_name_extend_the_store(tmp_path):
    out = tmp_path / "s.zarr"
    extract_features(tiny(), rows(), out, "a", model_name="/abs/mynet.py:build", progress=False)
    extract_features(tiny(), rows(seed=2), out, "b", model_name="mynet:build", progress=False)
    store = open_store(out)
    assert store.splits == ["a", "b"] and store.model == "/abs/mynet.py:build"  # the first name stays


def test_a_changed_body_with_the_same_head_and_name_is_refused_naming_the_fingerprint(tmp_path):
    out = tmp_path / "s.zarr"
    model = tiny()
    extract_features(model, rows(), out, "a", model_name="net", progress=False)
    body = copy.deepcopy(model)
    with torch.no_grad():
        body[0].weight.mul_(2)  # the features change; the head does not
    assert torch.equal(body[5].weight, model[5].weight)
    with pytest.raises(StoreError) as info:
        extract_features(body, rows(), out, "b", model_name="net", progress=False)
    message = str(info.value)
    assert f"holds features of model 'net' that this run ('net') would not reproduce" in message
    assert "what differs: parameters fingerprint" in message and "write to another store path" in message
    assert "preprocessing" not in message and "feature layer" not in message
    assert open_store(out).splits == ["a"]


def test_another_feature_layer_of_the_same_parameters_is_refused(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4),
                          nn.Linear(4, 4)).eval()
    out = tmp_path / "s.zarr"
    extract_features(model, rows(), out, "a", progress=False)
    with pytest.raises(StoreError, match=r"what differs: feature layer \(\"4:input\" in the store, \"3:input\""):
        extract_features(model, rows(), out, "b", head="3", progress=False)


def test_the_same_network_by_two_import_strings_extends_the_store(tmp_path, monkeypatch):
    (tmp_path / "mynet.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        def build():
            torch.manual_seed(0)
            return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(4, 3))

        def changed():
            net = build()
            with torch.no_grad():
                net[0].bias.add_(1)  # another body, the same head
            return net
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "s.zarr"
    base = ["extract", "--data", "noise:4", "--input-size", "8", "--out", str(out), "--device", "cpu"]
    result = CliRunner().invoke(app, [*base, "--model", f"{tmp_path / 'mynet.py'}:build", "--split", "a"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, [*base, "--model", "mynet:build", "--split", "b"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, [*base, "--model", "mynet:changed", "--split", "c"])
    assert result.exit_code == 1 and "what differs: parameters fingerprint" in str(result.exception)
    assert open_store(out).splits == ["a", "b"]


# --------------------------------------------------------------------------- stores written before it


def _old_store(path, model, name="Sequential"):
    """A store as a skdice without fingerprints wrote it: no parameters_sha256."""
    create_store(path, model=name, head=HookedExtractor(model).to_head(), feature_layer="5:input")
    assert open_store(path).attrs["parameters_sha256"] is None


def test_a_store_without_fingerprint_is_still_extended_by_the_same_name(tmp_path):
    model = tiny()
    _old_store(tmp_path / "s.zarr", model)
    extract_features(model, NoiseSource(4, (3, 8, 8)), tmp_path / "s.zarr", "noise", progress=False)
    assert open_store(tmp_path / "s.zarr").splits == ["noise"]


def test_a_store_without_fingerprint_compares_the_name_and_says_why(tmp_path):
    model = tiny()
    _old_store(tmp_path / "s.zarr", model)
    with pytest.raises(StoreError) as info:
        extract_features(model, rows(), tmp_path / "s.zarr", "a", model_name="mynet:build", progress=False)
    message = str(info.value)
    assert "holds features of model 'Sequential' (weights sha256 None), not 'mynet:build'" in message
    assert "written before skdice recorded a fingerprint of the model's parameters" in message
    assert message.endswith("write to another store path.")
