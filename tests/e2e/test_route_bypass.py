"""Route and policy bypass (issue 20 F4): a request must be routed on the path the backend will act on, and on
the host it will be forwarded with.

Two routes on one listener: `/admin` (and everything under it) needs a valid JWT; everything else is open and
goes to a scripted backend that records what it receives. Each spelling of `/admin` a backend resolves the
same way (percent-encoded unreserved characters, dot-segments, doubled slashes) must meet the JWT policy, and
the open backend must never see it.
"""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.hostile.corpus import AUDIENCE, ISSUER, main_jwks, make
from tests.support.ports import free_port
from tests.support.rawhttp import RawConnection
from tests.support.scripted_backend import ScriptedBackend

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def open_backend() -> Iterator[ScriptedBackend]:
    backend = ScriptedBackend().start()
    yield backend
    backend.stop()


@pytest.fixture(scope="module")
def admin_backend() -> Iterator[ScriptedBackend]:
    backend = ScriptedBackend().start()
    yield backend
    backend.stop()


@pytest.fixture(scope="module")
def proxy(open_backend, admin_backend, tmp_path_factory) -> Iterator:
    from tests.support.proxy import start_agw_proxy

    jwt = {"mode": "strict", "issuer": ISSUER, "audiences": [AUDIENCE], "jwks": {"inline": json.dumps(main_jwks())}}
    config = {"binds": [{"port": free_port(), "address": "127.0.0.1", "listeners": [{"name": "main", "routes": [
        {"name": "admin", "hostnames": ["strict.test"], "matches": [{"path": {"pathPrefix": "/admin"}}],
         "backends": [{"host": f"127.0.0.1:{admin_backend.port}"}], "policies": {"jwtAuth": jwt}},
        {"name": "api-private", "matches": [{"path": {"pathPrefix": "/api/v1/private"}}],
         "backends": [{"host": f"127.0.0.1:{admin_backend.port}"}], "policies": {"jwtAuth": jwt}},
        {"name": "open", "backends": [{"host": f"127.0.0.1:{open_backend.port}"}]},
    ]}]}]}
    p = start_agw_proxy(tmp_path_factory.mktemp("bypass"), config, extra_args=("--access-log", "off"),
                        name="agw-bypass")
    yield p
    assert p.stop() == 0, p.output()


BYPASSES = ["/%61dmin", "/./admin", "/x/../admin", "//admin", "/admin/./x", "/%2e%2e/admin", "/%2E/admin/",
            "/x/%2e%2e/admin/panel", "///admin//panel"]


@pytest.mark.parametrize("target", BYPASSES)
def test_spellings_of_a_protected_path_meet_its_policy(proxy, open_backend, admin_backend, target):
    with RawConnection(proxy.port) as conn:
        resp = conn.request("GET", target, host="strict.test")
        assert resp.status == 401, (target, resp.status)
        token = make().decode()
        resp = conn.request("GET", target + "?q=1", [("Authorization", f"Bearer {token}")], host="strict.test")
        assert resp.status == 200
    forwarded = admin_backend.received[-1][1]
    assert forwarded.startswith("/admin") and "/." not in forwarded and "//" not in forwarded
    assert forwarded.endswith("?q=1")
    assert not any("admin" in t for t in open_backend.targets())


def test_encoded_unreserved_characters_in_a_versioned_api_path(proxy, open_backend):
    with RawConnection(proxy.port) as conn:
        assert conn.request("GET", "/api/%76%31/private/data", host="any.test").status == 401
        assert conn.request("GET", "/api/v%31/private", host="any.test").status == 401
    assert not any("private" in t for t in open_backend.targets())


def test_normalized_paths_are_forwarded_as_matched(proxy, open_backend):
    """Reserved encodings (an encoded slash) stay encoded; unreserved ones are decoded; hex is upper-cased."""
    with RawConnection(proxy.port) as conn:
        assert conn.request("GET", "/%7Euser/a%2fb/./c?x=%2e", host="any.test").status == 200
    assert open_backend.targets()[-1] == "/~user/a%2Fb/c?x=%2e"


@pytest.mark.parametrize("target", ["/%zz", "/a%4", "/a%"])
def test_an_invalid_percent_encoding_is_a_400(proxy, target):
    with RawConnection(proxy.port) as conn:
        assert conn.request("GET", target, host="any.test").status == 400


def test_an_absolute_form_authority_must_match_host(proxy, open_backend, admin_backend):
    """Routed as open.test but forwarded with Host strict.test would let the backend serve strict.test's
    content past its policy: such a request is refused; a matching one is forwarded in origin-form."""
    with RawConnection(proxy.port) as conn:
        conn.send(b"GET http://open.test/admin HTTP/1.1\r\nHost: strict.test\r\n\r\n")
        assert conn.read_response().status == 400
    with RawConnection(proxy.port) as conn:
        conn.send(b"GET http://Open.Test/page HTTP/1.1\r\nHost: open.test\r\n\r\n")
        assert conn.read_response().status == 200
    method, target, headers, _ = open_backend.received[-1]
    assert target == "/page" and dict(headers)["host"] == "open.test"
    with RawConnection(proxy.port) as conn:
        conn.send(b"GET http://strict.test/admin HTTP/1.1\r\nHost: strict.test\r\n\r\n")
        assert conn.read_response().status == 401
    assert not any("admin" in t for t in open_backend.targets())
