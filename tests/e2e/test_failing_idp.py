"""A failing identity provider, played by a stub JWKS server the test switches between behaviours: garbage,
a 5xx, a body over maxBytes, answers slower than fetchTimeout, connections closed without an answer, down.

After keys were fetched, none of these costs a valid token anything (the old keys are kept), and a request
that has to wait for a fetch (unknown kid) waits no longer than the fetch timeout. With no keys yet, tokens
get `keys unavailable`, /readyz answers 503 naming the provider until keys arrive, when the IdP heals.
Durations are not asserted: every request just has to complete within a generous socket timeout.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.hostile import corpus
from tests.hostile.keys import rsa_key
from tests.hostile.stub_server import StubServer
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e

FETCH_TIMEOUT = 1.0
MAX_BYTES = 64 * 1024
SOCKET_TIMEOUT = 10.0   # generous: far above fetchTimeout, far below "hung forever"
JWKS = json.dumps({"keys": [corpus.jwk_of(rsa_key("main"), "rsa")]}).encode()


def token(sub: str = "alice", kid: str = "rsa") -> str:
    """A never-seen token (distinct sub) so each request is verified with the keys, not the token cache."""
    return corpus.make("RS256", rsa_key("main"), kid=kid, payload=corpus.claims(sub=sub)).decode()


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def jwks_stub() -> Iterator[StubServer]:
    stub = StubServer(body=JWKS, port=free_port())
    yield stub
    stub.stop()


def start_proxy(agw_proxy, jwks_url: str, backend: str, wait_readyz: bool = True, **jwks_options):
    jwks = {"url": jwks_url, "cacheDuration": "1s", "fetchTimeout": f"{FETCH_TIMEOUT:g}s", "maxBytes": MAX_BYTES,
            **jwks_options}
    config = {"binds": [{"port": free_port(), "address": "127.0.0.1", "listeners": [{"name": "main", "routes": [
        {"name": "r", "backends": [{"host": backend}],
         "policies": {"jwtAuth": {"issuer": corpus.ISSUER, "audiences": [corpus.AUDIENCE], "jwks": jwks}}}]}]}],
              "config": {"startupGrace": "0s"}}   # answer at once even with no keys (what these tests look at)
    return agw_proxy(config, wait_readyz=wait_readyz)


def wait_for_requests(stub: StubServer, count: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while stub.count < count:
        assert time.monotonic() < deadline, f"the JWKS stub got {stub.count} requests, expected {count}"
        time.sleep(0.05)


# What agw logs for each failure (so the test knows the failure really happened, and how it was named).
LOGGED = {"garbage": "not a JWKS document", "error": "HTTP status 503", "huge": f"larger than {MAX_BYTES} bytes",
          "slow": f"timed out after {FETCH_TIMEOUT:g}s", "close": "connection closed"}


@pytest.mark.parametrize("mode", list(LOGGED))
def test_a_failing_idp_after_start_costs_valid_tokens_nothing(agw_proxy, httpbin_backend, jwks_stub, mode):
    jwks_stub.huge_size = MAX_BYTES * 4
    jwks_stub.delay = FETCH_TIMEOUT * 5
    jwks_stub.start()
    proxy = start_proxy(agw_proxy, jwks_stub.url("/jwks"), httpbin_backend.address)
    assert proxy.get("/get", bearer(token("before")), timeout=SOCKET_TIMEOUT).status == 200

    jwks_stub.mode = mode
    seen = jwks_stub.count
    wait_for_requests(jwks_stub, seen + 2)  # two refresh attempts in this mode (refresh, then a retry)
    for i in range(5):
        response = proxy.get("/get", bearer(token(f"during-{mode}-{i}")), timeout=SOCKET_TIMEOUT)
        assert response.status == 200, response.text
    # An unknown kid may make a request wait for a fetch, but only as long as the fetch timeout allows.
    started = time.monotonic()
    response = proxy.get("/get", bearer(token("unknown", kid="rotated")), timeout=SOCKET_TIMEOUT)
    waited = time.monotonic() - started
    assert (response.status, response.text) == (401, "authentication failure: unknown key"), waited
    assert proxy.admin_get("/readyz")[0] == 200
    proxy.wait_for_output(f"fetch failed \\(.*{LOGGED[mode]}.*keeping the last good keys")

    jwks_stub.mode = "ok"
    assert proxy.get("/get", bearer(token("after")), timeout=SOCKET_TIMEOUT).status == 200
    assert proxy.running and "Traceback" not in proxy.output()


@pytest.mark.parametrize("mode", ["down", "slow", "garbage"])
def test_idp_failing_at_start_then_healing(agw_proxy, httpbin_backend, jwks_stub, mode):
    if mode != "down":
        jwks_stub.mode = mode
        jwks_stub.delay = FETCH_TIMEOUT * 5
        jwks_stub.start()
    proxy = start_proxy(agw_proxy, jwks_stub.url("/jwks"), httpbin_backend.address, wait_readyz=False)
    proxy.wait_for_output("fetch failed", timeout=SOCKET_TIMEOUT)
    response = proxy.get("/get", bearer(token("early")), timeout=SOCKET_TIMEOUT)
    assert (response.status, response.text) == (401, "authentication failure: keys unavailable")
    # Key-free checks come first: an expired token is named as such, whatever the keys.
    expired = corpus.make("RS256", rsa_key("main"), payload=corpus.claims(exp=corpus.LONG_AGO)).decode()
    assert proxy.get("/get", bearer(expired), timeout=SOCKET_TIMEOUT).text == "authentication failure: token expired"
    status, body = proxy.admin_get("/readyz")     # no keys: not ready, and the provider is named
    assert status == 503 and f"jwks: provider {corpus.ISSUER}: no keys from {jwks_stub.url('/jwks')}" in body

    if mode == "down":
        jwks_stub.start()
    jwks_stub.mode = "ok"
    deadline = time.monotonic() + 30
    while True:
        response = proxy.get("/get", bearer(token(f"healed-{time.monotonic()}")), timeout=SOCKET_TIMEOUT)
        if response.status == 200 or time.monotonic() > deadline:
            break
        assert response.text == "authentication failure: keys unavailable"
        time.sleep(0.2)
    assert response.status == 200, response.text
    assert proxy.admin_get("/readyz") == (200, "ready\n")
