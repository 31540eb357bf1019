"""Shared fixtures: the shared data folder and Hypothesis profiles.

Hypothesis profiles, registered here and selected by the environment variable
``HYPOTHESIS_PROFILE`` (default ``default``):

* ``default``: the CI profile, 40 examples a property, ``deadline=None`` (no
  timed assertions: a property's speed is measured in benchmarks/, never
  asserted);
* ``slow``: 1000 examples a property, for local or nightly runs:
  ``HYPOTHESIS_PROFILE=slow pytest tests/test_theory.py tests/test_lemma.py``.

Test modules set no ``max_examples`` of their own. The exhaustive runs are
marked ``slow`` (skipped unless ``pytest -m slow``) and load the ``slow``
profile themselves with ``@settings(settings.get_profile("slow"))``, so they
get its examples whatever profile is active. Strategies live in
tests/strategies.py.
"""

from __future__ import annotations

import os

# scikit-learn's Array API checks (tests/test_registry_sklearn.py, tests/test_array_api.py)
# need SciPy's own support on, which SciPy reads once, when it is first imported
os.environ.setdefault("SCIPY_ARRAY_API", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

SHARED_DATA = Path(
    os.environ.get("SKDICE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)

settings.register_profile(
    "default", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "slow", deadline=None, max_examples=1000, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder; skips the test with a clear reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the shared data folder {SHARED_DATA} (absent on this machine)")
    return SHARED_DATA


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` run only when selected: ``pytest -m slow``."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: select it with pytest -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
