"""``skdice methods``: one line per registered detector, name then summary."""

from __future__ import annotations

import pytest

pytest.importorskip("typer")

from typer.testing import CliRunner

from skdice import available_detectors
from skdice.cli.app import app


def test_methods_lists_every_registry_name_with_its_summary():
    result = CliRunner().invoke(app, ["methods"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    registry = available_detectors()
    assert len(lines) == len(registry)
    for line, (name, cls) in zip(lines, registry.items()):
        listed, summary = line.split(None, 1)
        assert listed == name
        assert summary.strip() == cls.summary
