"""Hostile HTTP end to end (issue 7): smuggling vectors, oversized heads, slow and idle clients, connection
floods, clients that stop reading, and backends that are down, hang or cut their answer.

agw runs as a subprocess in front of two real backends on 127.0.0.1:
- a recording backend (a thread of this test process) that notes every request it receives in full, so a
  test can prove a refused request never reached it;
- tests/e2e/backend_app.py (a process) for large, slow and broken responses.
"""
from __future__ import annotations

import email.utils
import hashlib
import os
import select
import socket
import time
from collections.abc import Iterator

import pytest

from tests.support.ports import free_port
from tests.support.rawhttp import IncompleteResponse, RawConnection, chunked, parse_responses
from tests.support.scripted_backend import ScriptedBackend

HERE = os.path.dirname(__file__)
pytestmark = pytest.mark.e2e


# --- backends ----------------------------------------------------------------------------------------------

class RecordingBackend(ScriptedBackend):
    """Answers every complete request with 200 "recorded"; `requests` are the targets that arrived complete,
    `heads` those that arrived at least as a full head."""

    def __init__(self) -> None:
        super().__init__(default=b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 9\r\n\r\n"
                                 b"recorded\n")

    @property
    def requests(self) -> list[str]:
        return self.targets()

    def saw(self, fragment: str) -> bool:
        return any(fragment in t for t in self.requests + self.heads)


@pytest.fixture(scope="module")
def recorder() -> Iterator[RecordingBackend]:
    backend = RecordingBackend().start()
    yield backend
    backend.stop()


def hostile_config(recorder_port: int, app_port: int, dead_port: int, settings: dict | None = None) -> dict:
    """Host app.test -> backend_app (1 s backend timeout), bulk.test -> backend_app with the default timeouts
    (large transfers on a busy machine), dead.test -> a closed port, anything else -> the recording backend."""
    return {
        "config": {"requestHeaderTimeout": "1s", "keepaliveTimeout": "1s", **(settings or {})},
        "binds": [{
            "port": free_port(), "address": "127.0.0.1",
            "listeners": [{"name": "main", "routes": [
                {"name": "app", "hostnames": ["app.test"], "backends": [{"host": f"127.0.0.1:{app_port}"}],
                 "policies": {"timeout": {"backendRequestTimeout": "1s"}}},
                {"name": "bulk", "hostnames": ["bulk.test"], "backends": [{"host": f"127.0.0.1:{app_port}"}]},
                {"name": "dead", "hostnames": ["dead.test"], "backends": [{"host": f"127.0.0.1:{dead_port}"}]},
                {"name": "recorder", "backends": [{"host": f"127.0.0.1:{recorder_port}"}]},
            ]}],
        }],
    }


@pytest.fixture(scope="module")
def proxy(recorder, backend, tmp_path_factory) -> Iterator:
    from tests.support.proxy import start_agw_proxy

    p = start_agw_proxy(tmp_path_factory.mktemp("hostile"),
                        hostile_config(recorder.port, backend, free_port()),
                        extra_args=("--access-log", "off"), name="agw-hostile")
    yield p
    assert p.stop() == 0, p.output()


def get(port: int, target: str, host: str = "127.0.0.1"):
    with RawConnection(port) as conn:
        return conn.request("GET", target, host=host)


def assert_refused_and_closed(conn: RawConnection, status: int) -> bytes:
    """The proxy answered exactly one `status` and closed the connection; returns the body."""
    data = conn.read_until_closed(timeout=5)
    responses = parse_responses(data)
    assert [r.status for r in responses] == [status], data
    assert responses[0].header("connection") == "close"
    return responses[0].body


# --- request smuggling -------------------------------------------------------------------------------------

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

# name -> the bytes of one hostile request (a second, smuggled request follows it on the wire).
SMUGGLING_VECTORS = {
    "cl-then-te": b"POST /v-cl-then-te HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te-then-cl": b"POST /v-te-then-cl HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Length: 48\r\n\r\n0\r\n\r\n",
    "two-content-lengths": b"POST /v-two-cl HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
                           b"Content-Length: 48\r\n\r\n",
    "equal-content-lengths": b"POST /v-equal-cl HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n"
                             b"Content-Length: 3\r\n\r\nabc",
    "content-length-list": b"POST /v-cl-list HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3, 3\r\n\r\nabc",
    "negative-content-length": b"POST /v-neg-cl HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n",
    "plus-content-length": b"POST /v-plus-cl HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: +3\r\n\r\nabc",
    "huge-content-length": b"POST /v-huge-cl HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Content-Length: 99999999999999999999999999\r\n\r\n",
    "obs-fold": b"GET /v-obs-fold HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Folded: a\r\n b\r\n\r\n",
    "obs-fold-transfer-encoding": b"POST /v-obs-fold-te HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding:\r\n"
                                  b" chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "bare-lf": b"GET /v-bare-lf HTTP/1.1\nHost: 127.0.0.1\n\n",
    "bare-lf-in-headers": b"GET /v-bare-lf-hdr HTTP/1.1\r\nHost: 127.0.0.1\nX-A: b\r\n\r\n",
    "bare-cr-in-value": b"GET /v-bare-cr HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\rb\r\n\r\n",
    "space-before-colon": b"POST /v-space-colon HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding : chunked\r\n"
                          b"\r\n0\r\n\r\n",
    "transfer-encoding-xchunked": b"POST /v-xchunked HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "transfer-encoding-twice": b"POST /v-te-twice HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "chunked-not-last": b"POST /v-chunked-gzip HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "unknown-transfer-coding": b"POST /v-gzip-chunked HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "transfer-encoding-http10": b"POST /v-te-http10 HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two-hosts": b"GET /v-two-hosts HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: app.test\r\n\r\n",
    "upgrade-with-body": b"POST /v-upgrade-body HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                         b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 3\r\n\r\nabc",
    "http-2.0-request-line": b"GET /v-http20 HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n",
    "nul-in-header": b"GET /v-nul HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\x00b\r\n\r\n",
}

# Answers other than 400: a transfer coding agw does not implement is 501 (RFC 9112 6.1, as nginx answers),
# an HTTP version other than 1.x is 505.
EXPECTED_STATUS = {"unknown-transfer-coding": 501, "transfer-encoding-xchunked": 501, "http-2.0-request-line": 505}

# Bodies whose chunk framing is invalid: the head is already on its way upstream (bodies stream), so what
# must hold is that the backend never receives a complete request and the client gets 400 + close.
BAD_CHUNK_BODIES = {
    "chunk-size-not-hex": b"zz\r\nabc\r\n0\r\n\r\n",
    "chunk-size-negative": b"-3\r\nabc\r\n0\r\n\r\n",
    "chunk-size-0x-prefix": b"0x3\r\nabc\r\n0\r\n\r\n",
    "chunk-size-overflow": b"ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
    "chunk-size-bare-lf": b"3\nabc\n0\n\n",
    "chunk-data-longer-than-size": b"3\r\nabcdef\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(SMUGGLING_VECTORS))
def test_smuggling_vector_is_refused_and_never_forwarded(proxy, recorder, name):
    vector = SMUGGLING_VECTORS[name]
    target = vector.split(b" ", 2)[1].decode()
    with RawConnection(proxy.port) as conn:
        conn.send(vector + SMUGGLED)
        assert_refused_and_closed(conn, EXPECTED_STATUS.get(name, 400))
    assert get(proxy.port, "/after-" + name).status == 200      # the proxy keeps serving
    assert recorder.saw("/after-" + name)
    assert not recorder.saw(target), f"{name}: the hostile request reached the backend"
    assert not recorder.saw("/smuggled"), f"{name}: a smuggled request reached the backend"


@pytest.mark.parametrize("name", sorted(BAD_CHUNK_BODIES))
@pytest.mark.parametrize("split", [False, True], ids=["one-packet", "body-later"])
def test_invalid_chunked_body_is_refused_and_never_completes_upstream(proxy, recorder, name, split):
    target = f"/chunk-{name}-{split}"
    head = (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n" % target.encode())
    with RawConnection(proxy.port) as conn:
        if split:
            conn.send(head)
            time.sleep(0.2)   # the head is forwarded; the broken body comes afterwards
            conn.send(BAD_CHUNK_BODIES[name] + SMUGGLED)
        else:
            conn.send(head + BAD_CHUNK_BODIES[name] + SMUGGLED)
        assert_refused_and_closed(conn, 400)
    assert get(proxy.port, f"/after-{name}-{split}").status == 200
    assert target not in recorder.requests, f"{name}: a complete request reached the backend"
    assert not recorder.saw("/smuggled")


def test_pipelined_request_with_bad_body_after_a_good_one(proxy, recorder):
    """The first request is answered; the second one's broken framing ends the connection with 400."""
    with RawConnection(proxy.port) as conn:
        conn.send(b"GET /pipe-good HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                  b"POST /pipe-bad HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
                  + SMUGGLED)
        data = conn.read_until_closed(timeout=5)
    assert [r.status for r in parse_responses(data)] == [200, 400]
    assert "/pipe-good" in recorder.requests
    assert "/pipe-bad" not in recorder.requests and not recorder.saw("/smuggled")


# --- Connection cannot strip framing or routing (issue 20 F1, F18) -------------------------------------------

def test_connection_naming_content_length_cannot_smuggle_the_body_as_a_request(proxy, recorder):
    """F1: a client that lists Content-Length in Connection still has its body forwarded with its length, so
    the body is never read upstream as a second request (one agw never parsed or authenticated)."""
    body = b"GET /f1-smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\nx-user-id: admin\r\n\r\n"
    with RawConnection(proxy.port) as conn:
        resp = conn.request("POST", "/sha256", [("Connection", "content-length"), ("Content-Length", str(len(body)))],
                            body, host="bulk.test")
        assert resp.status == 200
        assert resp.json()["length"] == len(body)
        assert resp.json()["sha256"] == hashlib.sha256(body).hexdigest()
    with RawConnection(proxy.port) as conn:
        conn.send(b"POST /f1-recorded HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Content-Length, x-a\r\n"
                  b"Content-Length: %d\r\n\r\n%b" % (len(body), body))
        assert conn.read_response().status == 200
        assert conn.request("GET", "/f1-after", host="127.0.0.1").status == 200
    assert "/f1-recorded" in recorder.requests and "/f1-after" in recorder.requests
    assert not recorder.saw("/f1-smuggled")


def test_connection_naming_host_or_transfer_encoding_keeps_them(proxy):
    """F18: Host reaches the backend even when the client lists it in Connection; so does a chunked body."""
    with RawConnection(proxy.port) as conn:
        resp = conn.request("GET", "/headers", [("Connection", "host, x-drop-me"), ("X-Drop-Me", "1")],
                            host="bulk.test")
        names = {n.lower(): v for n, v in resp.json()["headers"]}
        assert names.get("host") == "bulk.test"
        assert "x-drop-me" not in names          # other named fields are still hop-by-hop
        body = b"chunked body through"
        conn.send(b"POST /sha256 HTTP/1.1\r\nHost: bulk.test\r\nConnection: transfer-encoding\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body))
        resp = conn.read_response()
        assert resp.json()["length"] == len(body) and resp.json()["chunked"]


def test_upgrade_answered_without_101_closes_and_bytes_after_it_are_never_parsed(proxy, recorder):
    """A WebSocket upgrade the backend answers with a plain 200 (no 101) is relayed as that answer, then the
    connection closes: whatever the client sent after it (meant for the new protocol) is never read as a
    request (tests/e2e/test_websocket.py covers the switch)."""
    with RawConnection(proxy.port) as conn:
        conn.send(b"GET /upgrade-me HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                  + SMUGGLED)
        data = conn.read_until_closed(timeout=5)
    assert [r.status for r in parse_responses(data)] == [200]
    assert "/upgrade-me" in recorder.requests and not recorder.saw("/smuggled")


def test_valid_chunked_request_still_works(proxy, recorder):
    with RawConnection(proxy.port) as conn:
        resp = conn.request("POST", "/chunked-ok", [("Transfer-Encoding", "chunked")], b"3\r\nabc\r\n0\r\n\r\n")
        assert resp.status == 200 and resp.body == b"recorded\n"
        assert conn.request("GET", "/chunked-ok-2").status == 200   # same connection, still in sync
    assert "/chunked-ok" in recorder.requests and "/chunked-ok-2" in recorder.requests


# --- oversized heads -------------------------------------------------------------------------------------

def test_header_block_over_the_limit_is_431(proxy, recorder):
    with RawConnection(proxy.port) as conn:   # one huge header, sent in pieces
        conn.send(b"GET /huge-header HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        try:
            for _ in range(20):
                conn.send(b"a" * 8192)
        except OSError:
            pass   # the proxy may already have answered and closed
        assert assert_refused_and_closed(conn, 431) == b"request header fields too large\n"
    with RawConnection(proxy.port) as conn:   # many small headers over the total
        conn.send(b"GET /many-headers HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  + b"".join(b"X-H%04d: %s\r\n" % (i, b"v" * 100) for i in range(80)) * 1 + b"\r\n")
        assert conn.read_response().status in (200, 431)   # 80 x ~110 bytes is under 64 KiB: either is fine
    with RawConnection(proxy.port) as conn:   # too many header lines
        conn.send(b"GET /too-many-headers HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n")
        assert_refused_and_closed(conn, 431)
    with RawConnection(proxy.port) as conn:   # one header name repeated: every line counts (16 KiB in all)
        conn.send(b"GET /repeated-header HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-A: b\r\n" * 2000 + b"\r\n")
        assert_refused_and_closed(conn, 431)
    with RawConnection(proxy.port) as conn:   # 99 lines (under the default maxHeaders of 100) pass
        resp = conn.request("GET", "/ninety-nine-headers", [("X-A", "b")] * 98)
        assert resp.status == 200
    with RawConnection(proxy.port) as conn:   # a request line over the limit
        conn.send(b"GET /" + b"p" * 70000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert_refused_and_closed(conn, 431)
    assert not recorder.saw("/huge-header") and not recorder.saw("/too-many-headers")
    assert not recorder.saw("/repeated-header")
    assert get(proxy.port, "/after-431").status == 200


# --- slow and idle clients ---------------------------------------------------------------------------------

def test_slowloris_head_is_408_and_closed(proxy, recorder):
    """requestHeaderTimeout is 1s: a head trickled a byte at a time is cut off, although bytes keep coming."""
    head = b"GET /slowloris HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 100 + b"\r\n\r\n"
    with RawConnection(proxy.port) as conn:
        sent = 0
        for byte in head:   # 0.1 s per byte: 15 s for the whole head
            try:
                conn.send(bytes([byte]))
            except OSError:
                break
            sent += 1
            readable, _, _ = select.select([conn.sock], [], [], 0.1)
            if readable:
                break
        assert sent < len(head), "the whole head went through"
        assert_refused_and_closed(conn, 408)
    assert not recorder.saw("/slowloris")


def test_slowloris_gets_a_408_response(proxy):
    with RawConnection(proxy.port) as conn:
        conn.send(b"GET /slow-head HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        body = assert_refused_and_closed(conn, 408)
        assert body == b"request timeout\n"
        assert time.monotonic() - started < 5


def test_idle_keepalive_connection_is_closed(proxy):
    """keepaliveTimeout is 1s: an idle connection after a response is closed (no response sent)."""
    with RawConnection(proxy.port) as conn:
        assert conn.request("GET", "/idle").status == 200
        assert conn.read_until_closed(timeout=5) == b""
    with RawConnection(proxy.port) as conn:   # a connection that never sends anything
        assert conn.read_until_closed(timeout=5) == b""


def test_connection_busy_within_keepalive_stays_open(proxy):
    with RawConnection(proxy.port) as conn:
        for i in range(4):
            assert conn.request("GET", f"/busy-{i}").status == 200
            time.sleep(0.4)   # each pause is shorter than the 1 s keep-alive timeout


# --- a client that stops reading ---------------------------------------------------------------------------

def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_client_that_never_reads_does_not_grow_memory(proxy):
    """40 pipelined requests for 8 MiB each (320 MiB) and no reading: back-pressure keeps the proxy small."""
    pid = proxy.proc.pid
    for _ in range(3):   # warm up: a few large responses read normally
        with RawConnection(proxy.port) as conn:
            assert len(conn.request("GET", "/stream?size=8388608", host="bulk.test").body) == 8388608
    before = rss_kib(pid)
    request = b"GET /stream?size=8388608 HTTP/1.1\r\nHost: bulk.test\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", proxy.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    try:
        sock.setblocking(False)
        pending = request * 40
        deadline = time.monotonic() + 3
        while pending and time.monotonic() < deadline:
            try:
                pending = pending[sock.send(pending):]
            except BlockingIOError:
                time.sleep(0.05)
        peak = before
        for _ in range(20):   # two seconds for the proxy to buffer whatever it would buffer
            time.sleep(0.1)
            peak = max(peak, rss_kib(pid))
        assert peak - before < 100 * 1024, f"RSS grew from {before} KiB to {peak} KiB"
    finally:
        sock.close()
    assert get(proxy.port, "/after-stalled-reader").status == 200


# --- pipelining bounds (issue 20 F3, F9, F13, F14) ---------------------------------------------------------

# An obs-text byte keeps a request off the C scanner's fast path: llhttp parses it (both paths are bounded).
LLHTTP_ONLY = b"X-Odd: \xe9\r\n"


@pytest.mark.parametrize("parser", ["scanner", "llhttp"])
def test_no_request_after_one_that_closes_the_connection_is_run(proxy, recorder, parser):
    """F14: requests pipelined behind one answered with `connection: close` are never forwarded: a request
    that asks to close, and one agw refuses at once before reading its body (invalid Host), which ends the
    connection since the body is not read."""
    extra = LLHTTP_ONLY if parser == "llhttp" else b""
    with RawConnection(proxy.port) as conn:
        conn.send(b"GET /f14-first-%b HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%b\r\n"
                  b"GET /f14-second-%b HTTP/1.1\r\nHost: 127.0.0.1\r\n%b\r\n"
                  % (parser.encode(), extra, parser.encode(), extra))
        data = conn.read_until_closed(timeout=5)
    assert [r.status for r in parse_responses(data)] == [200]
    with RawConnection(proxy.port) as conn:
        conn.send(b"POST /f14-bad-host HTTP/1.1\r\nHost: bad host\r\nContent-Length: 5\r\n%b\r\nhello"
                  b"GET /f14-third-%b HTTP/1.1\r\nHost: 127.0.0.1\r\n%b\r\n" % (extra, parser.encode(), extra))
        data = conn.read_until_closed(timeout=5)
    responses = parse_responses(data)
    assert [r.status for r in responses] == [400] and responses[0].header("connection") == "close"
    assert get(proxy.port, f"/f14-after-{parser}").status == 200
    assert recorder.saw(f"/f14-first-{parser}")
    assert not recorder.saw(f"/f14-second-{parser}") and not recorder.saw(f"/f14-third-{parser}")


def test_many_pipelined_requests_in_one_read_are_not_a_431(proxy, recorder):
    """F13: 300 pipelined requests (85 KB, more than a head may hold) sent at once, the last one completed
    later, are all answered: only the head being received counts against the head limit."""
    one = b"GET /f13 HTTP/1.1\r\nHost: 127.0.0.1\r\n" + LLHTTP_ONLY + b"X-Pad: " + b"p" * 220 + b"\r\n\r\n"
    with RawConnection(proxy.port) as conn:
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        conn.send(one * 299 + one[:40])
        time.sleep(0.1)
        conn.send(one[40:] + b"GET /f13-last HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = conn.read_until_closed(timeout=20)
    statuses = [r.status for r in parse_responses(data)]
    assert statuses == [200] * 301, {s: statuses.count(s) for s in set(statuses)}
    assert recorder.saw("/f13-last")


def _stalled_clients(port: int, count: int, first: bytes, filler: bytes, size: int) -> list[socket.socket]:
    """`count` connections that each send `first`, then `size` bytes of pipelined `filler`, and never read."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        pending = first + filler * (size // len(filler))
        try:
            while pending:
                pending = pending[sock.send(pending):]
        except BlockingIOError:
            pass   # the proxy stopped reading: what is left stays with the client
        socks.append(sock)
    return socks


def test_pipelined_requests_waiting_behind_a_slow_one_are_bounded(proxy):
    """F9: 200 connections each pipelining 256 KiB of tiny requests behind one slow request: agw parses a
    bounded number ahead per connection, not the whole read."""
    pid = proxy.proc.pid
    before = rss_kib(pid)
    socks = _stalled_clients(proxy.port, 200, b"GET /slow?delay=3 HTTP/1.1\r\nHost: bulk.test\r\n\r\n",
                             b"GET /f9 HTTP/1.1\r\nHost: b\r\n\r\n", 256 * 1024)
    try:
        peak = before
        for _ in range(10):
            time.sleep(0.1)
            peak = max(peak, rss_kib(pid))
    finally:
        for sock in socks:
            sock.close()
    assert peak - before < 48 * 1024, f"RSS grew from {before} KiB to {peak} KiB"
    assert get(proxy.port, "/after-f9").status == 200


def test_a_client_that_never_reads_agws_own_answers_is_bounded(proxy):
    """F3: a client pipelining requests agw answers itself (400: no Host) without reading them: agw stops
    answering (and reading) while its answers wait, instead of buffering them without bound."""
    pid = proxy.proc.pid
    before = rss_kib(pid)
    sock = socket.create_connection(("127.0.0.1", proxy.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    request = b"GET /f3 HTTP/1.1\r\n\r\n" * 4096
    sent = 0
    peak = before
    deadline = time.monotonic() + 3
    try:
        while time.monotonic() < deadline and sent < 400 * 1024 * 1024:
            try:
                sent += sock.send(request)
            except BlockingIOError:
                time.sleep(0.01)
            peak = max(peak, rss_kib(pid))
    finally:
        sock.close()
    assert peak - before < 64 * 1024, f"RSS grew from {before} KiB to {peak} KiB after {sent} bytes sent"
    assert get(proxy.port, "/after-f3").status == 200


# --- failing backends ------------------------------------------------------------------------------------

def test_backend_down_is_502(proxy):
    with RawConnection(proxy.port) as conn:
        for _ in range(2):   # the client connection survives
            resp = conn.request("GET", "/x", host="dead.test")
            assert resp.status == 502 and resp.body == b"upstream connect error\n"
            assert resp.header_values("content-type") == ["text/plain"]
            # RFC 9110 6.6.1: agw's own answers carry the current Date.
            sent = email.utils.parsedate_to_datetime(resp.header("date"))
            clock_difference = abs(sent.timestamp() - time.time())
            assert clock_difference < 5, resp.header("date")   # the answer's own clock, not a speed


def test_backend_hanging_is_504(proxy):
    with RawConnection(proxy.port) as conn:
        resp = conn.request("GET", "/slow?delay=4", host="app.test")
        assert resp.status == 504 and resp.body == b"upstream request timeout\n"
        assert conn.request("GET", "/headers", host="app.test").status == 200


def test_backend_closing_mid_response_cuts_the_client(proxy):
    with RawConnection(proxy.port) as conn:
        conn.send(b"GET /close-mid HTTP/1.1\r\nHost: app.test\r\n\r\n")
        with pytest.raises(IncompleteResponse) as cut:
            conn.read_response()
        assert b"content-length: 1000" in cut.value.data.lower()   # the head came, the body did not
        assert len(cut.value.data.split(b"\r\n\r\n", 1)[1]) < 1000
    assert get(proxy.port, "/headers", host="app.test").status == 200


# --- connection limit --------------------------------------------------------------------------------------

def test_connections_over_the_limit_are_refused_without_harming_the_others(recorder, backend, tmp_path):
    from tests.support.proxy import start_agw_proxy

    config = hostile_config(recorder.port, backend, free_port(),
                            {"maxConnections": 20, "requestHeaderTimeout": "10s", "keepaliveTimeout": "30s"})
    p = start_agw_proxy(tmp_path, config, extra_args=("--access-log", "off"), name="agw-maxconn")
    established = []
    try:
        for i in range(20):
            conn = RawConnection(p.port)
            established.append(conn)
            assert conn.request("GET", f"/held-{i}").status == 200
        for _ in range(3):
            with RawConnection(p.port) as extra:
                assert assert_refused_and_closed(extra, 503) == b"too many connections\n"
        for i, conn in enumerate(established):
            assert conn.request("GET", f"/held-again-{i}").status == 200
        established.pop().close()
        deadline = time.monotonic() + 5   # a freed slot is taken again
        while True:
            with RawConnection(p.port) as conn:
                try:
                    if conn.request("GET", "/after-free").status == 200:
                        break
                except IncompleteResponse:
                    pass
            assert time.monotonic() < deadline, "a freed connection slot was never reusable"
            time.sleep(0.05)
    finally:
        for conn in established:
            conn.close()
        assert p.stop() == 0
