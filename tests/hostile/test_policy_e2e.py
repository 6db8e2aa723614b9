"""What a backend behind a real agw receives when clients try to slip things past the JWT policy: spoofed
claim headers in other spellings (F10), the query token in other spellings (F6), tokens behind a fragment.

The backend is a stub that records each request head as it arrives, so the tests assert on the bytes agw sent.
"""
from __future__ import annotations

import copy
from typing import Iterator

import pytest

from tests.support.ports import free_port
from tests.support.rawhttp import RawConnection

from . import corpus
from .stub_server import StubServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def backend() -> Iterator[StubServer]:
    server = StubServer(body=b"backend\n", content_type=b"text/plain").start()
    yield server
    server.stop()


def start(agw_proxy, backend: StubServer, **policy_extra) -> object:
    policy = copy.deepcopy(corpus.policy())
    policy.update(policy_extra)
    config = {"binds": [{"port": free_port(), "address": "127.0.0.1", "listeners": [{"name": "main", "routes": [
        {"name": "protected", "backends": [{"host": backend.address}], "policies": {"jwtAuth": policy}}]}]}]}
    return agw_proxy(config, wait_readyz=True)


def send(proxy, target: str, lines: list[tuple[str, bytes]]) -> int:
    """One raw request (header lines exactly as given); the response status."""
    head = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
    head += b"".join(name.encode() + b": " + value + b"\r\n" for name, value in lines)
    with RawConnection(proxy.port, timeout=15) as conn:
        conn.send(head + b"\r\n")
        return conn.read_response().status


def fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """(lower-case name, value) of each field line of a recorded head."""
    out = []
    for line in head.split(b"\r\n")[1:]:
        if line:
            name, _, value = line.partition(b":")
            out.append((name.strip().lower(), value.strip()))
    return out


def test_spoofed_claim_headers_in_any_spelling_never_reach_the_backend(agw_proxy, backend):
    """F10: with x-user-id a claim header, x_user_id (and mixed spellings) from the client used to reach the
    backend, where a WSGI server reads them as the same HTTP_X_USER_ID ('admin,alice')."""
    proxy = start(agw_proxy, backend, claimsToHeaders=[{"claim": "sub", "header": "x-user-id"},
                                                       {"claim": "aud", "header": "x_audience"}])
    token = corpus.make()
    spoofed = [("x_user_id", b"admin"), ("X_User_Id", b"admin2"), ("x-user_id", b"admin3"), ("x_user-id", b"admin4"),
               ("X-User-Id", b"admin5"), ("x-audience", b"evil"), ("x_audience", b"evil2")]
    assert send(proxy, "/anything", [("Authorization", b"Bearer " + token)] + spoofed) == 200
    received = fields(backend.heads[-1])
    folded = [(name.replace(b"_", b"-"), value) for name, value in received]
    assert [v for n, v in folded if n == b"x-user-id"] == [b"alice"], received
    assert [v for n, v in folded if n == b"x-audience"] == [corpus.AUDIENCE.encode()], received
    # Without a token (strict: refused) nothing reaches the backend; the count is unchanged.
    assert send(proxy, "/anything", spoofed) == 401
    assert backend.count == 1


QUERY_SPELLINGS = ["access_token", "access%5Ftoken", "%61ccess_token", "ACCESS_TOKEN", "access_token[]",
                   "access_token%5B%5D", "%2561ccess_token", "access.token"]


def response(proxy, target: str, lines: list[tuple[str, bytes]] = ()) -> object:
    head = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
    head += b"".join(name.encode() + b": " + value + b"\r\n" for name, value in lines)
    with RawConnection(proxy.port, timeout=15) as conn:
        conn.send(head + b"\r\n")
        return conn.read_response()


def test_the_query_token_never_reaches_the_backend_in_any_spelling(agw_proxy, backend):
    """F6: access%5Ftoken, %61ccess_token, ACCESS_TOKEN, ;-separated pairs, access_token[] used to reach the
    backend (beside a verified token, or alone in optional mode), where a framework decodes them to access_token."""
    proxy = start(agw_proxy, backend, mode="optional", location={"queryParameter": {"name": "access_token"}})
    token = corpus.make().decode()
    forged = corpus.make(payload=corpus.claims(sub="mallory"), signature=b"\x00" * 256).decode()
    for spelling in QUERY_SPELLINGS:
        assert response(proxy, f"/a?x=1;{spelling}={token}&y=2").status == 200, spelling
        assert backend.paths[-1] == "/a?x=1&y=2", (spelling, backend.paths[-1])
        # alone and forged: found, verified, refused (it used to pass as "no token" and reach the backend)
        r = response(proxy, f"/a?{spelling}={forged}")
        assert r.status == 401 and r.text == "authentication failure: signature invalid", (spelling, r.text)
        # beside the real one: two values, refused
        r = response(proxy, f"/a?access_token={token}&{spelling}={forged}")
        assert r.status == 401 and r.text == "authentication failure: malformed token", (spelling, r.text)
    seen = len(backend.paths)
    for target in (f"/a?x=1#access_token={forged}", f"/a?access_token={token}#x", f"/a#?access_token={token}"):
        r = response(proxy, target)
        assert r.status == 401 and r.text == "authentication failure: malformed token", (target, r.text)
    assert len(backend.paths) == seen        # none of the fragment targets was forwarded
    assert response(proxy, "/a?x=1").status == 200 and backend.paths[-1] == "/a?x=1"


def test_required_iat_is_enforced_through_the_proxy(agw_proxy, backend):
    """F11: requiredClaims [iat] was accepted by the config and not enforced."""
    policy = copy.deepcopy(corpus.policy())
    for provider in policy["providers"]:
        provider["jwtValidationOptions"] = {"requiredClaims": ["exp", "iat"]}
    proxy = start(agw_proxy, backend, providers=policy["providers"])
    r = response(proxy, "/a", [("Authorization", b"Bearer " + corpus.make(payload=corpus.claims(iat=None)))])
    assert r.status == 401 and r.text == "authentication failure: missing required claim", r.text
    assert response(proxy, "/a", [("Authorization", b"Bearer " + corpus.make())]).status == 200
    assert backend.count == 1
