"""`--soak-duration SECONDS` (default 15): how long the soak test keeps its load on agw.

    pytest tests/soak --soak-duration 600

pytest registers options only from conftest files it loads at start-up, so pass tests/soak (or a file in it)
on the command line together with the option."""
from __future__ import annotations

import pytest

DEFAULT_SOAK_SECONDS = 15.0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak-duration", type=float, default=DEFAULT_SOAK_SECONDS, metavar="SECONDS",
                     help=f"duration of the soak test (default {DEFAULT_SOAK_SECONDS:g}s)")


@pytest.fixture
def soak_duration(request: pytest.FixtureRequest) -> float:
    return float(request.config.getoption("soak_duration", default=DEFAULT_SOAK_SECONDS))
