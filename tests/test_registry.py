"""The detector registry (skdice._registry): filled by definition, read by name."""

import importlib
import pkgutil

import pytest

import skdice
import skdice.detectors
from skdice import DICEDetector, EnergyDetector, available_detectors, get_detector
from skdice._registry import _REGISTRY, detector_class


@pytest.fixture
def scratch_name():
    yield "test-registry-scratch"
    _REGISTRY.pop("test-registry-scratch", None)


def test_redefining_the_same_qualified_class_replaces_its_entry(scratch_name):
    source = f"class Cell(EnergyDetector):\n    name = {scratch_name!r}\n"
    namespace = {"EnergyDetector": EnergyDetector, "__name__": "notebook"}
    exec(source, namespace)
    first = namespace["Cell"]
    exec(source, namespace)  # the cell run again
    again = namespace["Cell"]
    assert again is not first
    assert available_detectors()[scratch_name] is again
    assert isinstance(get_detector(scratch_name), again)


def test_a_different_class_cannot_take_a_registered_name(scratch_name):
    exec(f"class Cell(EnergyDetector):\n    name = {scratch_name!r}\n",
         {"EnergyDetector": EnergyDetector, "__name__": "notebook"})
    with pytest.raises(
        RuntimeError,
        match=rf"detector name '{scratch_name}' is taken by Cell \(notebook\.Cell\); "
        r"give Other another name\.",
    ):
        exec(f"class Other(EnergyDetector):\n    name = {scratch_name!r}\n",
             {"EnergyDetector": EnergyDetector, "__name__": "notebook"})
    # the same name and qualified name in another module is another class too
    with pytest.raises(RuntimeError, match="is taken by Cell"):
        exec(f"class Cell(EnergyDetector):\n    name = {scratch_name!r}\n",
             {"EnergyDetector": EnergyDetector, "__name__": "elsewhere"})
    with pytest.raises(RuntimeError, match=r"detector name 'dice' is taken by DICEDetector \(skdice\._dice"):

        class Impostor(DICEDetector):
            name = "dice"

    assert available_detectors()["dice"] is DICEDetector


def test_unknown_name_lists_the_registered_ones():
    names = ", ".join(available_detectors())
    message = f"unknown detector 'nope'; choose one of: {names}."
    for call in (lambda: detector_class("nope"), lambda: get_detector("nope")):
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value) == message
    assert detector_class("energy") is EnergyDetector


def test_the_registry_is_importable_from_every_documented_place():
    import skdice._base

    assert skdice.available_detectors is skdice._base.available_detectors
    assert skdice.get_detector is skdice._base.get_detector
    assert list(skdice.available_detectors()) == sorted(skdice.available_detectors())


def test_the_catalogue_imports_every_detector_module():
    # skdice.detectors imports its modules explicitly: importing one it missed adds names
    before = dict(available_detectors())
    for info in pkgutil.iter_modules(skdice.detectors.__path__):
        importlib.import_module(f"skdice.detectors.{info.name}")
    assert available_detectors() == before


def test_the_first_lookup_fills_the_registry_without_importing_the_catalogue_before():
    import subprocess
    import sys

    code = ("import sys, skdice._registry as r; before = 'skdice.detectors' in sys.modules; "
            "print(before, len(r.available_detectors()), len(r._REGISTRY))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, looked_up, held = out.stdout.split()
    assert before == "False"  # import skdice stays light
    assert int(looked_up) == int(held) == len(available_detectors()) >= 20
