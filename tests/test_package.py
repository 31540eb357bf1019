"""The package layout: the core imports no optional dependency."""

import subprocess
import sys

import pytest

HEAVY = ("torch", "typer", "zarr", "dask", "matplotlib")


@pytest.mark.parametrize(
    "statement",
    [
        "import skdice",
        # the registry imports every detector module; the metrics and masks too
        "import skdice, skdice.metrics, skdice.sparsify; skdice.available_detectors()",
    ],
)
def test_core_import_pulls_in_no_optional_dependency(statement):
    code = f"{statement}; import sys; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_public_names_are_exported():
    import skdice

    for name in skdice.__all__:
        assert hasattr(skdice, name), name
    assert {"DICEDetector", "Head", "available_detectors", "get_detector"} <= set(skdice.__all__)


def test_pyproject_lists_every_package_folder():
    # a non-editable install ships only the listed packages: a new subfolder must be added
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"skdice": "skdice", **config["package-dir"]}
    listed = set(config["packages"])
    found = set()
    for top, folder in (("skdice", "skdice"), ("skdice.cli", "cli"), ("skdice.extract", "extract")):
        for init in (root / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(root / folder).parts
            found.add(".".join((top, *rel)))
    assert found == listed
    for package, folder in folders.items():
        assert (root / folder / "__init__.py").is_file(), package
