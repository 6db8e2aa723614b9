"""Fixtures shared by the end-to-end tests in this folder."""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Iterator

import pytest

from tests.support.ports import free_port, wait_for_port

BACKEND_APP = os.path.join(os.path.dirname(__file__), "backend_app.py")


@pytest.fixture(scope="module")
def backend() -> Iterator[int]:
    """tests/e2e/backend_app.py running as a process on 127.0.0.1; yields its port."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, BACKEND_APP, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port("127.0.0.1", port, alive=lambda: proc.poll() is None)
    yield port
    proc.kill()
    proc.wait()
