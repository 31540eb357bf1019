"""The docs cannot rot: every relative link resolves and every runnable block runs.

A fenced ```python block directly after the HTML comment ``<!-- runnable -->``
is executed; the blocks of one file share a namespace, in order, and run in a
temporary working directory. A fenced ```bash block directly after
``<!-- runnable-shell -->`` runs, as written, in ``bash -e`` with the virtual
environment's ``bin`` first on the PATH (what ``source .venv/bin/activate``
does) and ``TMPDIR`` set to a temporary folder. Links are checked in docs/*.md and README.md:
relative targets must exist, and a ``#fragment`` into a Markdown file must name
one of its headings (GitHub's slug rules).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = sorted((ROOT / "docs").glob("*.md")) + [
    p for p in [ROOT / "README.md"] if p.exists()
]

_FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_DEF = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
_RUNNABLE = "<!-- runnable -->"
_RUNNABLE_SHELL = "<!-- runnable-shell -->"


def _split(text: str):
    """Yield ("text", line) for prose and ("code", lang, body, runnable) per fence."""
    lines = text.splitlines()
    i = 0
    previous = ""
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            yield ("text", lines[i])
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        fence, lang = match.group(2), match.group(3)
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1
        yield ("code", lang, "\n".join(body), previous == _RUNNABLE, previous == _RUNNABLE_SHELL)
        previous = ""


def _slug(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors, seen = set(), {}
    for part in _split(path.read_text(encoding="utf-8")):
        if part[0] == "text" and part[1].startswith("#"):
            slug = _slug(part[1].lstrip("#"))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _links(path: Path):
    for part in _split(path.read_text(encoding="utf-8")):
        if part[0] != "text":
            continue
        line = re.sub(r"`[^`]*`", "", part[1])
        yield from _LINK.findall(line)
        ref = _REF_DEF.match(line)
        if ref:
            yield ref.group(1)


def _runnable_blocks(path: Path) -> list[str]:
    return [
        part[2]
        for part in _split(path.read_text(encoding="utf-8"))
        if part[0] == "code" and part[3]
    ]


def _shell_blocks(path: Path) -> list[str]:
    return [
        part[2]
        for part in _split(path.read_text(encoding="utf-8"))
        if part[0] == "code" and part[4]
    ]


SHELL_DOCS = [p for p in DOC_FILES if _shell_blocks(p)]


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


@pytest.mark.parametrize("doc", DOC_FILES, ids=_ids(DOC_FILES))
def test_every_relative_link_resolves(doc):
    broken = []
    for target in _links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, mailto:, ...
            continue
        file_part, _, fragment = target.partition("#")
        dest = doc if not file_part else (doc.parent / file_part).resolve()
        if not dest.exists():
            broken.append(f"{target} (no such file {dest})")
        elif fragment and dest.suffix == ".md" and fragment not in _anchors(dest):
            broken.append(f"{target} (no heading #{fragment} in {dest.name})")
    assert not broken, f"broken links in {doc.name}: " + "; ".join(broken)


RUNNABLE_DOCS = [p for p in DOC_FILES if _runnable_blocks(p)]
_OPTIONAL = {"torch", "zarr", "dask", "distributed", "matplotlib", "typer", "onnx", "PIL"}


@pytest.mark.parametrize("doc", RUNNABLE_DOCS, ids=_ids(RUNNABLE_DOCS))
def test_runnable_blocks_run(doc, tmp_path, monkeypatch):
    import skdice._registry

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # detectors a doc defines (docs/api.md writes one) register for this test only; the catalogue
    # is loaded first, or its one lazy load would fill the copy and leave the registry empty after
    skdice._registry.available_detectors()
    monkeypatch.setattr(skdice._registry, "_REGISTRY", dict(skdice._registry._REGISTRY))
    namespace = {"__name__": f"docs.{doc.stem}"}
    for index, code in enumerate(_runnable_blocks(doc)):
        try:
            exec(compile(code, f"{doc.name}[block {index}]", "exec"), namespace)
        except ModuleNotFoundError as exc:
            if exc.name not in _OPTIONAL:
                raise
            # a clone with the core only: blocks of an optional extra cannot run
            pytest.skip(f"runnable block {index} of {doc.name} needs {exc.name} (an optional extra)")
        except Exception as exc:  # pragma: no cover - the message is the point
            raise AssertionError(
                f"runnable block {index} of {doc.name} failed: {type(exc).__name__}: {exc}"
            ) from exc


@pytest.mark.parametrize("doc", SHELL_DOCS, ids=_ids(SHELL_DOCS))
def test_runnable_shell_blocks_run_as_written(doc, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    import os
    import subprocess
    import sys

    env = {**os.environ, "TMPDIR": str(tmp_path),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for index, block in enumerate(_shell_blocks(doc)):
        done = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (
            f"shell block {index} of {doc.name} failed ({done.returncode}):\n{done.stderr[-2000:]}"
        )


# ------------------------------------------------------ the checker itself
def test_checker_finds_runnable_blocks_and_links_but_not_links_in_code():
    text = (
        "# Title\n\nSee [a](a.md#x) and ![img](pics/p.png).\n\n"
        "<!-- runnable -->\n```python\nx = 1\n```\n\n```python\ny = 2\n```\n\n"
        "```text\n[not a link](nowhere.md)\n```\n[ref]: other.md\n"
    )
    parts = list(_split(text))
    code = [p for p in parts if p[0] == "code"]
    assert [(c[2], c[3]) for c in code] == [("x = 1", True), ("y = 2", False), ("[not a link](nowhere.md)", False)]
    prose = [p[1] for p in parts if p[0] == "text"]
    found = [t for line in prose for t in _LINK.findall(line)]
    assert found == ["a.md#x", "pics/p.png"]
    assert _REF_DEF.match("[ref]: other.md").group(1) == "other.md"


def test_slugs_follow_github_rules():
    assert _slug("Fit once, score anywhere") == "fit-once-score-anywhere"
    assert _slug("`skdice evaluate`") == "skdice-evaluate"
    assert _slug("FPR95: two conventions") == "fpr95-two-conventions"
    assert _slug("p (sparsity)") == "p-sparsity"
    assert _slug("`skdice fit_score`") == "skdice-fit_score"


def test_cli_reference_documents_every_command_and_option():
    """docs/cli.md has a section per command naming each of its options."""
    typer = pytest.importorskip("typer")
    from skdice.cli.app import app

    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    sections = {}
    for block in re.split(r"^## ", text, flags=re.M)[1:]:
        title, _, body = block.partition("\n")
        match = re.fullmatch(r"`skdice (\w+)`", title.strip())
        if match:
            sections[match.group(1)] = body
    missing = []
    for name, command in typer.main.get_command(app).commands.items():
        if name not in sections:
            missing.append(f"no section '## `skdice {name}`'")
            continue
        for param in command.params:
            if param.param_type_name != "option" or param.name == "help":
                continue
            long_names = [o for o in param.opts if o.startswith("--")]
            if not any(f"`{o}" in sections[name] for o in long_names):
                missing.append(f"skdice {name}: option {long_names[0]} is not documented")
            for flag in param.secondary_opts:  # the off switch of --amp/--no-amp and the like
                if flag.startswith("--") and flag not in sections[name]:
                    missing.append(f"skdice {name}: switch {flag} is not documented")
    assert not missing, "; ".join(missing)


def test_cli_invocations_in_the_docs_use_existing_commands_and_options():
    """Every `skdice COMMAND --option` written in the docs names a real command and option."""
    typer = pytest.importorskip("typer")
    from skdice.cli.app import app

    group = typer.main.get_command(app)
    options = {
        name: {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
        for name, command in group.commands.items()
    }
    wrong = []
    for doc in DOC_FILES:
        text = doc.read_text(encoding="utf-8").replace("\\\n", " ")  # shell line continuations
        for match in re.finditer(r"(?<![\w./-])skdice((?:\s+--[a-z]+)*)\s+([a-z][\w-]*)([^\n`|]*)", text):
            name, rest = match.group(2), match.group(3)
            if name not in options:
                continue  # prose such as "skdice implements"; a command's absence is caught by the reference test
            for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", rest):
                if flag not in options[name]:
                    wrong.append(f"{doc.name}: `skdice {name}` has no option {flag}")
    assert not wrong, "; ".join(sorted(set(wrong)))
