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


def test_every_detector_is_importable_from_skdice_and_from_skdice_detectors():
    import skdice
    import skdice.detectors
    from skdice import available_detectors

    for name, cls in available_detectors().items():
        assert getattr(skdice, cls.__name__) is cls, name
        assert getattr(skdice.detectors, cls.__name__) is cls, name
        assert cls.__name__ in skdice.__all__ and cls.__name__ in skdice.detectors.__all__
    from skdice.detectors import KNNDetector  # noqa: F401  (failed before 0.1.1)


def test_version_is_written_once_and_the_package_is_typed():
    import re
    import tomllib
    from importlib.metadata import version
    from pathlib import Path

    import skdice

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert skdice.__version__ == version("skdice")
    written = [
        path for path in (root / "skdice").rglob("*.py")
        if re.search(r"__version__\s*=", path.read_text())
    ]
    assert [p.name for p in written] == ["_version.py"]
    assert (root / "skdice" / "py.typed").is_file()


def test_import_graph_has_no_cycle_and_no_private_name_crossing_modules():
    """The house's layering rule (docs/architecture.md), checked on the source, lazy imports too."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    packages = {"skdice": "skdice", "cli": "skdice.cli", "extract": "skdice.extract"}
    modules = {}
    for folder, package in packages.items():
        for path in (root / folder).rglob("*.py"):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            is_init = parts[-1] == "__init__"
            if is_init:
                parts = parts[:-1]
            modules[".".join([package, *parts])] = (path, is_init)

    def owner(name):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    edges, crossings = {m: set() for m in modules}, []
    for mod, (path, is_init) in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = mod.split(".") if is_init else mod.split(".")[:-1]
                if node.level:
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    hit = owner(full if full in modules else target)
                    if hit and hit != mod:
                        edges[mod].add(hit)
                        private = alias.name.startswith("_") and not alias.name.startswith("__")
                        if hit != full and private and not hit.rpartition(".")[2].startswith("_"):
                            crossings.append(f"{mod} imports {alias.name} from {hit}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    hit = owner(alias.name)
                    if hit and hit != mod:
                        edges[mod].add(hit)
    assert not crossings
    # cycles among modules, package __init__ files counted (a package that imports its
    # modules while one of them imports the package back is a cycle too); an iterative
    # depth-first search
    nodes = set(modules)
    state = {}
    for start in sorted(nodes):
        stack = [(start, iter(sorted(edges[start] & nodes)))]
        state[start] = "open"
        path = [start]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = "done"
                stack.pop()
                path.pop()
            elif state.get(child) == "open":
                cycle = path[path.index(child):] + [child]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            elif child not in state:
                state[child] = "open"
                path.append(child)
                stack.append((child, iter(sorted(edges[child] & nodes))))


# The layers of docs/architecture.md, lower to higher: a module may not import (at the
# top or lazily inside a function) a layer that sits above it or beside it.
# The façades re-export the workflows: importing one is importing the workflows.
_FACADES = {"skdice.evaluation", "skdice.streaming", "skdice.tuning", "skdice.plotting"}
_FORBIDDEN = {
    "core": {"workflows", "cli", "extract"},
    "store": {"workflows", "cli"},
    "extract": {"workflows", "cli"},
}


def _layer(module):
    for prefix, name in (("skdice.workflows", "workflows"), ("skdice.cli", "cli"),
                         ("skdice.extract", "extract"), ("skdice.store", "store")):
        if module == prefix or module.startswith(prefix + "."):
            return name
    if module == "skdice.__main__":
        return "cli"
    return "workflows" if module in _FACADES else "core"


def _imports_of(path, module, is_init):
    """(imported module, line) for every import of a file, those inside functions too."""
    import ast

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_init else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{alias.name}" for alias in node.names] + [target]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            yield name, node.lineno


def test_no_layer_imports_a_layer_above_it():
    """The core never imports the workflows, the CLI or extract; the store and extract never the workflows."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    breaches = []
    for folder, package in {"skdice": "skdice", "cli": "skdice.cli", "extract": "skdice.extract"}.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            is_init = parts[-1] == "__init__"
            module = ".".join([package, *(parts[:-1] if is_init else parts)])
            forbidden = _FORBIDDEN.get(_layer(module), set())
            for target, line in _imports_of(path, module, is_init):
                if not target.startswith("skdice") or _layer(target) not in forbidden:
                    continue
                breaches.append(f"{path.relative_to(root)}:{line} ({_layer(module)}) imports {target}")
    assert not breaches, "imports against the layers:\n" + "\n".join(sorted(set(breaches)))


def _core_and_workflow_modules():
    import pkgutil

    import skdice

    return sorted(
        info.name for info in pkgutil.walk_packages(skdice.__path__, "skdice.")
        if not info.name.startswith(("skdice.cli", "skdice.extract", "skdice.__main__"))
    )


@pytest.mark.parametrize("module", _core_and_workflow_modules())
def test_docstring_examples_of_every_module_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
