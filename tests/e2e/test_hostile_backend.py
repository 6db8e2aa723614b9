"""Hostile and odd backends end to end (issue 20 F2, F7, F8, F15): answers whose framing lies, bytes left over
after a response, interim 1xx answers, statuses out of range.

Each case is answered by a scripted backend with exact bytes while the client has a second request pipelined
behind it: the compiled proxy must survive, give the first request a sound answer, and answer the second with
the backend's own answer to it, never with bytes the backend sent for the first.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.ports import free_port
from tests.support.rawhttp import RawConnection, parse_responses
from tests.support.scripted_backend import ScriptedBackend

pytestmark = pytest.mark.e2e

FORGED = b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nforged\n"

# name -> (the backend's bytes for the first request, the status the client gets, the body it gets or None)
CASES: dict[str, tuple[bytes, int, bytes | None]] = {
    "204-chunked": (b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 204, b""),
    "304-with-body": (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello", 304, b""),
    "204-length-and-body": (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", 204, b""),
    "chunked-then-garbage": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                             b"GARBAGE\r\n\r\n", 200, b"hello"),
    "response-after-204": (b"HTTP/1.1 204 No Content\r\n\r\n" + FORGED, 204, b""),
    "response-after-chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n" + FORGED,
                               200, b"hi"),
    "response-after-length": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi" + FORGED, 200, b"hi"),
    "connection-names-content-length": (b"HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\n"
                                        b"hello", 200, b"hello"),
    "connection-names-transfer-encoding": (b"HTTP/1.1 200 OK\r\nConnection: transfer-encoding\r\n"
                                           b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 200, b"hello"),
    "100-then-final": (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
                       200, b"final"),
    "103-then-final": (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                       b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal", 200, b"final"),
    "two-interim-then-final": (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
                               b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", 201, b"ok"),
    "101-not-asked-for": (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
                          b"raw bytes", 502, None),
    "status-099": (b"HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n", 502, None),
    "status-600": (b"HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n", 502, None),
    "gzip-transfer-coding": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nzz\r\n0\r\n\r\n",
                             502, None),
}


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedBackend]:
    script = {f"/{name}": answer for name, (answer, _, _) in CASES.items()}
    backend = ScriptedBackend(script, interim={"/upload": b"HTTP/1.1 100 Continue\r\n\r\n"}).start()
    yield backend
    backend.stop()


@pytest.fixture(scope="module")
def proxy(scripted, tmp_path_factory) -> Iterator:
    from tests.support.proxy import start_agw_proxy

    config = {"binds": [{"port": free_port(), "address": "127.0.0.1", "listeners": [{"name": "main", "routes": [
        {"name": "scripted", "backends": [{"host": f"127.0.0.1:{scripted.port}"}],
         "policies": {"timeout": {"backendRequestTimeout": "3s"}}}]}]}]}
    p = start_agw_proxy(tmp_path_factory.mktemp("hostile-backend"), config, extra_args=("--access-log", "off"),
                        name="agw-hostile-backend")
    yield p
    assert p.stop() == 0, p.output()


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_answer_with_a_pipelined_request_behind_it(proxy, scripted, name):
    _, status, body = CASES[name]
    with RawConnection(proxy.port) as conn:
        conn.send(b"GET /%s HTTP/1.1\r\nHost: x.test\r\n\r\nGET /after-%s HTTP/1.1\r\nHost: x.test\r\n\r\n"
                  % (name.encode(), name.encode()))
        first = conn.read_response()
        assert first.status == status, first
        if body is not None:
            assert first.body == body
        if first.has_header("content-length") and status not in (204, 304):   # those have no body at all
            assert first.header("content-length") == str(len(first.body))
        second = conn.read_response()
        assert (second.status, second.body) == (200, b"ok\n"), f"{name}: the second answer is not its own"
    assert proxy.running, proxy.output()
    assert f"/after-{name}" in scripted.targets()


def test_a_burst_of_hostile_answers_does_not_take_the_proxy_down(proxy, scripted):
    """Every case twice on one connection, pipelined back to back (the review's crash needed a few)."""
    names = sorted(CASES) * 2
    with RawConnection(proxy.port) as conn:
        for name in names:
            conn.send(b"GET /%s HTTP/1.1\r\nHost: x.test\r\n\r\nGET /ok HTTP/1.1\r\nHost: x.test\r\n\r\n"
                      % name.encode())
            assert conn.read_response().status == CASES[name][1]
            assert conn.read_response().body == b"ok\n"
    assert proxy.running, proxy.output()


def test_expect_100_continue_upload_gets_the_interim_then_the_answer(proxy, scripted):
    """F7: the backend's 100 Continue reaches the client, which then sends its body; the final answer follows
    and the connection stays usable."""
    with RawConnection(proxy.port) as conn:
        conn.send(b"POST /upload HTTP/1.1\r\nHost: x.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        interim = conn.read_response(skip_informational=False)
        assert interim.status == 100
        conn.send(b"hello")
        final = conn.read_response()
        assert (final.status, final.body) == (200, b"ok\n")
        assert conn.request("GET", "/after-upload", host="x.test").status == 200
    assert ("POST", "/upload") in [(r[0], r[1]) for r in scripted.received]
    upload = [r for r in scripted.received if r[1] == "/upload"][-1]
    assert upload[3] == b"hello"


def test_pipelined_answers_stay_in_order_after_interim_answers(proxy):
    with RawConnection(proxy.port) as conn:
        conn.send(b"".join(b"GET /%s HTTP/1.1\r\nHost: x.test\r\n\r\n" % p
                           for p in (b"100-then-final", b"two-interim-then-final", b"ok")))
        data = b""
        while data.count(b"HTTP/1.1 2") < 3:
            more = conn.read_available(1.0)
            assert more, data
            data += more
    finals = [r for r in parse_responses(data) if r.status >= 200]
    assert [(r.status, r.body) for r in finals] == [(200, b"final"), (201, b"ok"), (200, b"ok\n")]
