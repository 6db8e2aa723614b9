"""Helpers for agw's end-to-end tests: ports, external processes, a raw HTTP client, and the real services the
tests run against (the oauth2-mock-server IdP, httpbin under gunicorn, and agw itself as a subprocess).

Test modules import them as `from tests.support import ...` (or `from tests.support.idp import MockIdp`);
`tests/conftest.py` exposes the fixtures.
"""

from .ports import free_port, wait_for_port, wait_for_port_closed
from .process import ExternalProcess, ProcessStartError
from .rawhttp import RawConnection, RawResponse, parse_response

__all__ = [
    "ExternalProcess",
    "ProcessStartError",
    "RawConnection",
    "RawResponse",
    "free_port",
    "parse_response",
    "wait_for_port",
    "wait_for_port_closed",
]
