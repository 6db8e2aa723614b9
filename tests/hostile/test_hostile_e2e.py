"""The hostile corpus through a real agw (strict mode, inline JWKS) over a few keep-alive connections.

Every hostile request is answered 401 with its reason; none reaches the backend (a counting stub), none is a
500 or drops the connection; a valid token sent every 10 requests keeps getting 200; the jku/x5u "trap"
server the tokens point at gets no request; header floods get 431 and the process lives on.
"""
from __future__ import annotations

import time
from typing import Iterator

import pytest

from tests.support.ports import free_port
from tests.support.rawhttp import IncompleteResponse, RawConnection

from . import corpus
from .stub_server import StubServer

pytestmark = pytest.mark.e2e

VALID_EVERY = 10
CONNECTIONS = 3


@pytest.fixture(scope="module")
def trap() -> Iterator[StubServer]:
    server = StubServer(body=b'{"keys": []}').start()
    yield server
    server.stop()


@pytest.fixture
def backend() -> Iterator[StubServer]:
    server = StubServer(body=b"backend\n", content_type=b"text/plain").start()
    yield server
    server.stop()


@pytest.fixture
def hostile_proxy(agw_proxy, backend):
    config = {"binds": [{"port": free_port(), "address": "127.0.0.1", "listeners": [{"name": "main", "routes": [
        {"name": "protected", "backends": [{"host": backend.address}],
         "policies": {"jwtAuth": corpus.policy()}}]}]}]}
    return agw_proxy(config, wait_readyz=True)


def request_bytes(headers: tuple[tuple[str, bytes], ...], path: str = "/anything") -> bytes:
    lines = [f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()]
    lines += [name.encode() + b": " + value + b"\r\n" for name, value in headers]
    return b"".join(lines) + b"\r\n"


def test_every_hostile_token_is_refused_with_its_reason_and_valid_tokens_keep_passing(hostile_proxy, backend, trap):
    cases = list(corpus.token_cases(trap.url("/"))) + [
        corpus.Case(f"JWKS: {c.name}", "unknown_key", corpus.bearer(c.token)) for c in corpus.jwks_cases() if c.token]
    valid = corpus.valid_requests()
    failures: list[str] = []
    valid_sent = 0
    per_connection = -(-len(cases) // CONNECTIONS)
    connections_used = 0
    for start in range(0, len(cases), per_connection):
        conn = RawConnection(hostile_proxy.port, timeout=15)
        connections_used += 1
        try:
            for i, case in enumerate(cases[start:start + per_connection]):
                if i % VALID_EVERY == 0:
                    name, headers = valid[valid_sent % len(valid)]
                    conn.send(request_bytes(headers))
                    response = conn.read_response()
                    valid_sent += 1
                    if response.status != 200 or response.body != b"backend\n":
                        failures.append(f"{name} (valid, after {case.name!r}): {response.status} {response.text!r}")
                conn.send(request_bytes(case.headers))
                try:
                    response = conn.read_response()
                except (IncompleteResponse, ConnectionError) as err:
                    failures.append(f"{case.name}: connection dropped ({err})")
                    conn.close()
                    conn = RawConnection(hostile_proxy.port, timeout=15)
                    connections_used += 1
                    continue
                if response.status != 401 or response.body != case.body:
                    failures.append(f"{case.name}: expected 401 {case.body!r}, got {response.status} {response.text!r}")
                elif response.header("www-authenticate") != ('Bearer realm="agw"' if case.reason == "missing" else
                                                             'Bearer realm="agw", error="invalid_token"'):
                    failures.append(f"{case.name}: www-authenticate {response.header('www-authenticate')!r}")
                elif not response.keep_alive:
                    failures.append(f"{case.name}: the 401 closes the connection")
        finally:
            conn.close()
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures)
    assert len(cases) >= 150
    assert connections_used == CONNECTIONS
    # Only the interleaved valid requests reached the backend.
    assert backend.count == valid_sent
    # Embedded jku/x5u URLs are never fetched (give a stray background fetch a moment to show up).
    time.sleep(0.3)
    assert trap.count == 0, trap.paths
    assert hostile_proxy.running
    assert "Traceback" not in hostile_proxy.output()


HTTP_CASES = [pytest.param(c, id=c.name) for c in corpus.http_cases()]


@pytest.mark.parametrize("case", HTTP_CASES)
def test_header_floods_and_illegal_bytes_are_refused_by_the_http_layer(hostile_proxy, backend, case):
    with RawConnection(hostile_proxy.port, timeout=15) as conn:
        conn.send(case.request)
        response = conn.read_response()
        assert response.status == case.status, (response.status, response.text)
    assert backend.count == 0
    # The process is unharmed: a valid token still passes on a new connection.
    name, headers = corpus.valid_requests()[0]
    with RawConnection(hostile_proxy.port, timeout=15) as conn:
        conn.send(request_bytes(headers))
        assert conn.read_response().status == 200
    assert hostile_proxy.running
