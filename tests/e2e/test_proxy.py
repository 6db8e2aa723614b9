"""The proxy core end to end: agw as a subprocess in front of a real backend process, over sockets."""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

from tests.support.ports import free_port, wait_for_port
from tests.support.rawhttp import IncompleteResponse, RawConnection

HERE = os.path.dirname(__file__)
pytestmark = pytest.mark.e2e


def proxy_config(port: int, backend_port: int, extra_routes: str = "", settings: str = "") -> str:
    return textwrap.dedent(f"""\
        {settings}
        binds:
        - port: {port}
          address: 127.0.0.1
          listeners:
          - name: main
            routes:
            - name: api-v1
              hostnames: ["api.example.com", "*.example.org"]
              matches:
              - path: {{regex: "^/v[0-9]+/"}}
                method: GET
              backends: [{{host: 127.0.0.1:{backend_port}}}]
            - name: prod-only
              matches:
              - path: {{exact: /env}}
                headers: [{{name: x-env, value: {{exact: prod}}}}]
              backends: [{{host: 127.0.0.1:{backend_port}}}]
            {extra_routes}
            - name: default
              hostnames: ["www.example.com", "127.0.0.1"]
              matches:
              - path: {{pathPrefix: /}}
              backends: [{{host: 127.0.0.1:{backend_port}}}]
              policies:
                timeout: {{backendRequestTimeout: 1s}}
        """)


class Proxy:
    def __init__(self, config: str, tmp_path, args: tuple = ()) -> None:
        self.port = free_port()
        path = tmp_path / f"agw-{self.port}.yaml"
        path.write_text(config.replace("PORT", str(self.port)))
        self.log = open(tmp_path / f"agw-{self.port}.log", "w+b")
        self.proc = subprocess.Popen([sys.executable, "-m", "agw", "run", "-f", str(path), "--admin", "off",
                                      *args], stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_port("127.0.0.1", self.port, alive=lambda: self.proc.poll() is None)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(10)
        finally:
            self.log.close()


@pytest.fixture(scope="module")
def proxy(backend, tmp_path_factory):
    p = Proxy(proxy_config(0, backend).replace("port: 0", "port: PORT"), tmp_path_factory.mktemp("proxy"))
    yield p
    assert p.stop() == 0


def read(conn: RawConnection, method: str = "GET"):
    """(status, response, body) of the next response on a raw connection."""
    resp = conn.read_response(method)
    return resp.status, resp, resp.body


def get(proxy, path, host="127.0.0.1", headers=None, method="GET", body=None):
    c = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    h = {"Host": host}
    h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data


# --- routing -------------------------------------------------------------------------------------------------

def test_routes_by_host_path_and_method(proxy):
    r, body = get(proxy, "/v1/headers", host="api.example.com")
    assert r.status == 200 and json.loads(body)["target"] == "/v1/headers"
    r, _ = get(proxy, "/v1/items", host="x.example.org")           # wildcard host
    assert r.status == 200
    r, body = get(proxy, "/v1/items", host="api.example.com", method="POST", body=b"x")
    assert r.status == 404 and body == b"route not found\n"         # method does not match; no fallback host
    r, _ = get(proxy, "/v1/items", host="example.org")               # *.example.org needs a subdomain
    assert r.status == 404
    r, body = get(proxy, "/anything", host="www.example.com:8080")   # port ignored in Host matching
    assert r.status == 200 and body == b"backend\n"


def test_routes_by_header(proxy):
    r, _ = get(proxy, "/env", host="nowhere.test", headers={"x-env": "prod"})
    assert r.status == 200
    r, body = get(proxy, "/env", host="nowhere.test", headers={"x-env": "dev"})
    assert r.status == 404
    assert r.getheader("content-type") == "text/plain"
    assert body == b"route not found\n"


def test_forwarded_headers_and_hop_by_hop(proxy):
    r, body = get(proxy, "/headers", headers={
        "Connection": "keep-alive, x-secret-hop", "x-secret-hop": "1", "Keep-Alive": "timeout=5",
        "Proxy-Authorization": "Basic Zm9vOmJhcg==", "TE": "trailers", "X-Forwarded-For": "10.9.8.7",
        "X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "evil.test", "X-Custom": "kept"})
    assert r.status == 200
    got = json.loads(body)["headers"]
    names = [n.lower() for n, _ in got]
    for hop in ("connection", "x-secret-hop", "keep-alive", "proxy-authorization", "te"):
        assert hop not in names
    d = {n.lower(): v for n, v in got}
    assert d["x-custom"] == "kept"
    assert d["host"] == "127.0.0.1"
    assert d["x-forwarded-for"] == "10.9.8.7, 127.0.0.1"
    assert d["x-forwarded-proto"] == "http"
    assert d["x-forwarded-host"] == "127.0.0.1"
    assert names.count("x-forwarded-proto") == 1 and names.count("x-forwarded-host") == 1


# --- connections -------------------------------------------------------------------------------------------

def test_keepalive_reuses_both_sides(proxy):
    with RawConnection(proxy.port) as c:
        conns = set()
        for _ in range(5):
            c.send(b"GET /headers HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, headers, body = read(c)
            assert status == 200
            conns.add(json.loads(body)["conn"])
        assert len(conns) == 1   # one upstream connection served all five requests


def test_pipelined_requests_answered_in_order(proxy):
    with RawConnection(proxy.port) as c:
        c.send(b"".join(b"GET /headers?n=%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % i for i in range(10))
               + b"GET /nothing HTTP/1.1\r\nHost: none.test\r\n\r\n")
        for i in range(10):
            status, _, body = read(c)
            assert status == 200 and json.loads(body)["target"] == f"/headers?n={i}"
        status, _, body = read(c)
        assert status == 404


def test_pipelined_mix_of_plain_and_unusual_requests(proxy):
    """Plain heads (taken by the C scanner) and heads llhttp parses (a body, a repeated field, a head split
    across reads) on one connection, in one stream: answered in order, each forwarded intact."""
    with RawConnection(proxy.port) as c:
        second_half = b"st: 127.0.0.1\r\nX-Last: 1\r\n\r\n"
        c.send(b"GET /headers?n=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
               b"POST /sha256 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello"
               b"GET /headers?n=2 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Dup: a\r\nX-Dup: b\r\n\r\n"
               b"GET /headers?n=3 HTTP/1.1\r\nHo")
        status, _, body = read(c)
        assert status == 200 and json.loads(body)["target"] == "/headers?n=0"
        status, _, body = read(c)
        assert status == 200 and json.loads(body) == {
            "sha256": hashlib.sha256(b"hello").hexdigest(), "length": 5, "chunked": False}
        status, _, body = read(c)
        assert status == 200 and [v for n, v in json.loads(body)["headers"] if n == "X-Dup"] == ["a", "b"]
        c.send(second_half)
        status, _, body = read(c)
        got = json.loads(body)
        assert status == 200 and got["target"] == "/headers?n=3" and ["X-Last", "1"] in got["headers"]
        c.send(b"GET /headers?n=4 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, body = read(c)
        assert status == 200 and json.loads(body)["target"] == "/headers?n=4"


def test_http10_without_keepalive_is_closed(proxy):
    with RawConnection(proxy.port) as c:
        c.send(b"GET /headers HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        status, headers, body = read(c)
        assert status == 200 and json.loads(body)["method"] == "GET"
        assert c.is_closed_by_peer(wait=5)


# --- bodies ----------------------------------------------------------------------------------------------------

def test_large_request_bodies_stream_with_checksums(proxy):
    size = 12 * 1024 * 1024
    data = os.urandom(1024) * (size // 1024)
    r, body = get(proxy, "/sha256", method="POST", body=data)
    got = json.loads(body)
    assert r.status == 200 and got["length"] == size and got["sha256"] == hashlib.sha256(data).hexdigest()

    def gen():
        for i in range(0, size, 1 << 20):
            yield data[i:i + (1 << 20)]

    c = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    c.request("POST", "/sha256", body=gen(), headers={"Host": "127.0.0.1"}, encode_chunked=True)
    r = c.getresponse()
    got = json.loads(r.read())
    assert got == {"sha256": hashlib.sha256(data).hexdigest(), "length": size, "chunked": True}
    c.close()


@pytest.mark.parametrize("chunked", ["0", "1"])
def test_large_response_bodies_stream(proxy, chunked):
    from tests.e2e.backend_app import pattern
    size = 11 * 1024 * 1024 + 7
    r, body = get(proxy, f"/stream?size={size}&chunked={chunked}")
    assert r.status == 200
    assert hashlib.sha256(body).digest() == hashlib.sha256(pattern(size)).digest()
    if chunked == "1":
        assert r.getheader("transfer-encoding") == "chunked"
    else:
        assert r.getheader("content-length") == str(size)


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the proxy's RSS from /proc")
def test_a_client_that_stops_reading_a_large_response_does_not_make_the_proxy_buffer_it(proxy):
    """Flow control end to end: with the client not reading, agw pauses the upstream once its buffers fill
    instead of pulling the whole 96 MB body into memory; the client, reading again, gets all of it."""
    import time
    size = 96 * 1024 * 1024
    before = _rss_mb(proxy.proc.pid)
    with socket.create_connection(("127.0.0.1", proxy.port)) as c:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.sendall(f"GET /stream?size={size} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        time.sleep(2.5)    # without flow control the whole body reaches agw in this time (measured: all of it)
        grown = _rss_mb(proxy.proc.pid) - before
        assert grown < 32, f"agw grew by {grown:.0f} MB while its client was not reading"
        c.settimeout(30)
        head = b""
        while b"\r\n\r\n" not in head:
            head += c.recv(65536)
        head, _, body = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and f"content-length: {size}".encode() in head.lower(), head
        received = len(body)
        while received < size:
            chunk = c.recv(1 << 20)
            assert chunk, "connection closed before the body was complete"
            received += len(chunk)
    assert received == size


def test_close_delimited_response_is_rechunked(proxy):
    r, body = get(proxy, "/close-delimited")
    assert r.status == 200 and body == b"until the end"
    assert r.getheader("transfer-encoding") == "chunked"


def test_head_request(proxy):
    with RawConnection(proxy.port) as c:
        c.send(b"HEAD /stream?size=5000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, headers, body = read(c, "HEAD")
        assert status == 200 and headers.header("content-length") == "5000" and body == b""
        c.send(b"GET /headers HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, body = read(c)
        assert status == 200 and json.loads(body)["method"] == "GET"


# --- errors --------------------------------------------------------------------------------------------------

def test_garbage_is_400_and_process_survives(proxy):
    with RawConnection(proxy.port) as c:
        c.send(b"\x16\x03\x01 this is not http\r\n\r\n")
        status, headers, body = read(c)
        assert status == 400 and headers.header("content-type") == "text/plain"
    r, _ = get(proxy, "/headers")
    assert r.status == 200


def test_missing_host_is_400(proxy):
    with RawConnection(proxy.port) as c:
        c.send(b"GET /headers HTTP/1.1\r\n\r\n")
        assert c.read_response().status == 400


@pytest.mark.parametrize("host", [b"a b", b"a/b", b"a:b:c", b"x\x01y"])
def test_invalid_host_is_400(proxy, host):
    with RawConnection(proxy.port) as c:
        c.send(b"GET /headers HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        status, headers, body = read(c)
        assert status == 400 and body == b"bad request\n"


def test_headers_too_large_is_431(proxy):
    with RawConnection(proxy.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"x-big: " + b"a" * 70000 + b"\r\n\r\n")
        status, headers, body = read(c)
        assert status == 431 and body == b"request header fields too large\n"
    with RawConnection(proxy.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(b"x-h%d: v\r\n" % i for i in range(200))
               + b"\r\n")
        assert c.read_response().status == 431
    r, _ = get(proxy, "/headers")
    assert r.status == 200


class ChattyUpstream:
    """A raw upstream that answers every request with a 2-byte body followed by bytes no request asked for
    (a broken or hostile backend): agw must not let them become the next request's response."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            for _ in range(100):
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                                 b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged")


def test_bytes_after_an_upstream_response_never_answer_the_next_request(tmp_path):
    upstream = ChattyUpstream()
    p = Proxy(proxy_config(0, upstream.port).replace("port: 0", "port: PORT"), tmp_path)
    try:
        with RawConnection(p.port) as c:
            for _ in range(3):
                c.send(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                status, _, body = read(c)
                assert status == 200 and body == b"ok"
        assert upstream.connections == 3     # each upstream connection retired after its stray bytes
    finally:
        upstream.sock.close()
        assert p.stop() == 0


def test_upstream_refused_is_502(backend, tmp_path):
    dead = free_port()
    p = Proxy(proxy_config(0, dead).replace("port: 0", "port: PORT"), tmp_path)
    try:
        with RawConnection(p.port) as c:
            for _ in range(2):   # the connection survives the error
                c.send(b"GET /headers HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                status, headers, body = read(c)
                assert status == 502 and body == b"upstream connect error\n"
                assert headers.header("content-type") == "text/plain"
    finally:
        assert p.stop() == 0


def test_upstream_too_slow_is_504(proxy):
    with RawConnection(proxy.port) as c:
        c.send(b"GET /slow?delay=3 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, body = read(c)
        assert status == 504 and body == b"upstream request timeout\n"
        c.send(b"GET /headers HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert c.read_response().status == 200


def test_upstream_closing_mid_response_cuts_the_client(proxy):
    with RawConnection(proxy.port) as c:
        c.send(b"GET /close-mid HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        with pytest.raises(IncompleteResponse):
            c.read_response()
    r, _ = get(proxy, "/headers")
    assert r.status == 200


def test_upstream_error_status_passes_through(proxy):
    r, body = get(proxy, "/status/503")
    assert r.status == 503


# --- workers and signals ---------------------------------------------------------------------------------------

def test_several_workers_share_the_port(backend, tmp_path):
    p = Proxy(proxy_config(0, backend).replace("port: 0", "port: PORT"), tmp_path, ("--workers", "2"))
    try:
        statuses = {get(p, "/headers")[0].status for _ in range(20)}
        assert statuses == {200}
        children = subprocess.run(["pgrep", "-P", str(p.proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 2
    finally:
        assert p.stop() == 0


def test_config_error_exits_2_before_binding(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends: [{host: nohost}]\n")
    out = subprocess.run([sys.executable, "-m", "agw", "run", "-f", str(path), "--admin", "off"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "config error: binds[0].listeners[0].routes[0].backends[0].host: expected host:port, got 'nohost'" \
        in out.stderr
