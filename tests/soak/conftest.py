"""The soak test's duration: `--soak-duration SECONDS` (registered in tests/conftest.py), default 15.

    pytest tests/soak --soak-duration 600
"""
from __future__ import annotations

import pytest

DEFAULT_SOAK_SECONDS = 15.0


@pytest.fixture
def soak_duration(request: pytest.FixtureRequest) -> float:
    return float(request.config.getoption("soak_duration", default=DEFAULT_SOAK_SECONDS))
