"""pytest setup for the benchmarks in bench/ (never part of the normal suite: the root config has testpaths=tests).

`pytest bench/ --benchmark-enable` times them; without --benchmark-enable (the root config passes
--benchmark-disable) each benchmark body runs once, which checks that every verifier still accepts its token.
"""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mint_tokens  # noqa: E402


@pytest.fixture(scope="session")
def bench_keys() -> mint_tokens.BenchKeys:
    return mint_tokens.load_or_create_keys()
