"""Config fields through the real proxy, for the fields tests/config_fields.py found without a test of their
effect: the bind address, a listener's policies, header regex matches, backend weights, and the proxy-wide
limits and timeouts of `config:` (each set to a value other than its default, and seen to act)."""
from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.ports import free_port
from tests.support.rawhttp import RawConnection

pytestmark = pytest.mark.e2e

# A public RSA key (no token needs to verify here: the tests look at requests without one).
INLINE_JWKS = '{"keys":[{"kty":"RSA","kid":"k1","e":"AQAB","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw"}]}'  # noqa: E501


class NamedBackend:
    """A keep-alive HTTP/1.1 backend (a thread of this process) that answers every request with its name and
    records the targets it was sent."""

    def __init__(self, name: str) -> None:
        owner = self
        self.name = name
        self.targets: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner.targets.append(self.path)
                body = owner.name.encode()
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def named() -> Iterator[tuple[NamedBackend, NamedBackend]]:
    a, b = NamedBackend("a"), NamedBackend("b")
    yield a, b
    a.stop()
    b.stop()


def native(routes: list[dict], settings: dict | None = None, **bind: object) -> dict:
    return {"config": settings or {},
            "binds": [{"port": free_port(), "address": "127.0.0.1", **bind,
                       "listeners": [{"name": "main", "routes": routes}]}]}


def get(port: int, target: str, host: str = "127.0.0.1", headers=None, address: str = "127.0.0.1"):
    with RawConnection(port, host=address) as conn:
        return conn.request("GET", target, headers, host=host)


def idle_upstreams(proxy, backend: str) -> float:
    status, text = proxy.admin_get("/metrics")
    assert status == 200
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "agw_upstream_connections" and s.labels == {"backend": backend, "state": "idle"}:
                return s.value
    return 0.0


# --- binds, listeners, routes ----------------------------------------------------------------------------------

def test_bind_address_is_the_only_address_agw_listens_on(agw_proxy, named):
    config = native([{"name": "a", "backends": [{"host": named[0].address}]}])
    config["binds"][0]["address"] = "127.0.0.2"
    proxy = agw_proxy(config, ports_to_wait=[], wait_readyz=True)
    port = config["binds"][0]["port"]
    assert get(port, "/", address="127.0.0.2").body == b"a"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    assert proxy.running


def test_listener_policies_apply_to_routes_that_set_none_of_their_own(agw_proxy, named, backend):
    """The listener's jwtAuth and timeout reach its routes; a route's own policy of a kind replaces the
    listener's of that kind only."""
    strict = {"issuer": "https://i.example", "jwks": {"inline": INLINE_JWKS}}
    config = native([
        {"name": "inherits", "hostnames": ["inherits.test"], "backends": [{"host": f"127.0.0.1:{backend}"}]},
        {"name": "own-jwt", "hostnames": ["own.test"], "backends": [{"host": f"127.0.0.1:{backend}"}],
         "policies": {"jwtAuth": {**strict, "mode": "permissive"}}},
    ])
    config["binds"][0]["listeners"][0]["policies"] = {"jwtAuth": strict, "timeout": {"requestTimeout": "1s"}}
    proxy = agw_proxy(config, wait_readyz=True)
    refused = get(proxy.port, "/headers", host="inherits.test")
    assert refused.status == 401 and refused.body == b"authentication failure: no bearer token found"
    assert get(proxy.port, "/headers", host="own.test").status == 200          # its own jwtAuth: permissive
    started = time.monotonic()
    slow = get(proxy.port, "/slow?delay=5", host="own.test")     # the listener's requestTimeout still applies
    assert (slow.status, slow.body) == (504, b"request timeout\n") and time.monotonic() - started < 4


def test_header_regex_match_routes_the_request(agw_proxy, named):
    a, b = named
    proxy = agw_proxy(native([
        {"name": "canary", "matches": [{"headers": [{"name": "x-version", "value": {"regex": "^v2(\\.[0-9]+)?$"}}]}],
         "backends": [{"host": b.address}]},
        {"name": "stable", "backends": [{"host": a.address}]},
    ]), wait_readyz=True)
    assert get(proxy.port, "/", headers=[("X-Version", "v2.1")]).body == b"b"
    assert get(proxy.port, "/", headers=[("X-Version", "v2")]).body == b"b"
    assert get(proxy.port, "/", headers=[("X-Version", "v20")]).body == b"a"
    assert get(proxy.port, "/").body == b"a"


def test_backend_weights_share_requests_in_proportion(agw_proxy, named):
    a, b = named
    proxy = agw_proxy(native([{"name": "split", "backends": [{"host": a.address, "weight": 3},
                                                             {"host": b.address, "weight": 1}]}]), wait_readyz=True)
    with RawConnection(proxy.port) as conn:
        seen = Counter(conn.request("GET", "/", host="127.0.0.1").body for _ in range(40))
    assert seen == {b"a": 30, b"b": 10}


# --- config: proxy-wide limits and timeouts ----------------------------------------------------------------------

def test_connect_timeout_answers_504(agw_proxy):
    """A backend whose accept queue is full never completes the TCP handshake: connectTimeout (1s here, 5s by
    default) answers 504 `upstream connect timeout`."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname(), timeout=5)   # the one slot of the accept queue
    try:
        proxy = agw_proxy(native([{"name": "stuck", "backends": [{"host": "%s:%d" % listener.getsockname()}]}],
                                 {"connectTimeout": "1s"}), wait_readyz=True)
        started = time.monotonic()
        resp = get(proxy.port, "/")
        elapsed = time.monotonic() - started
        assert (resp.status, resp.body) == (504, b"upstream connect timeout\n")
        assert 0.8 < elapsed < 4, elapsed
    finally:
        filler.close()
        listener.close()


def test_response_timeout_is_the_backend_timeout_of_routes_without_one(agw_proxy, backend):
    proxy = agw_proxy(native([
        {"name": "own", "hostnames": ["own.test"], "backends": [{"host": f"127.0.0.1:{backend}"}],
         "policies": {"timeout": {"backendRequestTimeout": "5s"}}},
        {"name": "default", "backends": [{"host": f"127.0.0.1:{backend}"}]},
    ], {"responseTimeout": "1s"}), wait_readyz=True)
    started = time.monotonic()
    resp = get(proxy.port, "/slow?delay=3")
    assert (resp.status, resp.body) == (504, b"upstream request timeout\n")
    assert time.monotonic() - started < 2.5
    assert get(proxy.port, "/slow?delay=2", host="own.test").status == 200     # its own timeout is longer


def test_body_idle_timeout_ends_a_stalled_upload(agw_proxy, backend):
    proxy = agw_proxy(native([{"name": "up", "backends": [{"host": f"127.0.0.1:{backend}"}]}],
                             {"bodyIdleTimeout": "1s"}), wait_readyz=True)
    with RawConnection(proxy.port) as conn:
        conn.send(b"POST /sha256 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        started = time.monotonic()
        resp = conn.read_response("POST")
        elapsed = time.monotonic() - started
    assert resp.status == 504 and 0.8 < elapsed < 4, (resp.status, elapsed)


def test_header_limits(agw_proxy, named):
    proxy = agw_proxy(native([{"name": "a", "backends": [{"host": named[0].address}]}],
                             {"maxHeaderBytes": 2048, "maxHeaders": 10}), wait_readyz=True)
    assert get(proxy.port, "/", headers=[("x-pad", "p" * 1500)]).status == 200
    assert get(proxy.port, "/", headers=[("x-pad", "p" * 3000)]).status == 431      # under the 64 KiB default
    assert get(proxy.port, "/", headers=[(f"x-h{i}", "v") for i in range(6)]).status == 200
    assert get(proxy.port, "/", headers=[(f"x-h{i}", "v") for i in range(20)]).status == 431  # under 100


def test_upstream_pool_limits(agw_proxy, backend):
    """maxIdleUpstreamPerBackend bounds the connections kept after a burst; upstreamIdleTimeout closes them."""
    address = f"127.0.0.1:{backend}"
    proxy = agw_proxy(native([{"name": "a", "backends": [{"host": address}]}],
                             {"maxIdleUpstreamPerBackend": 2, "upstreamIdleTimeout": "2s"}), wait_readyz=True)
    results: list[int] = []

    def one() -> None:
        results.append(get(proxy.port, "/slow?delay=0.5").status)

    threads = [threading.Thread(target=one) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 5
    assert idle_upstreams(proxy, address) == 2          # 5 were open at once; 2 are kept
    deadline = time.monotonic() + 10
    while idle_upstreams(proxy, address) != 0:
        assert time.monotonic() < deadline, "idle upstream connections never closed"
        time.sleep(0.1)


def test_merge_slashes_false_keeps_runs_of_slashes(agw_proxy, named):
    a = named[0]
    proxy = agw_proxy(native([{"name": "a", "backends": [{"host": a.address}]}], {"mergeSlashes": False}),
                      wait_readyz=True)
    assert get(proxy.port, "/x//y/./z").status == 200
    assert a.targets[-1] == "/x//y/z"       # dot-segments still removed; slashes kept
