"""WebSocket through agw (issue 15), with the `websockets` package on both sides: the handshake passes the
route's policies (JWT) like any request, a 101 from the backend turns the connection into a byte tunnel.

agw runs as a subprocess; the WebSocket backend is a thread of this test process on 127.0.0.1.
"""
from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

websockets = pytest.importorskip("websockets")
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from tests.e2e.test_hostile_http import rss_kib  # noqa: E402
from tests.support.idp import MockIdp  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.rawhttp import RawConnection, parse_responses  # noqa: E402

pytestmark = pytest.mark.e2e

MIB = 1 << 20


class WsBackend:
    """A websockets server in a thread: /echo echoes, /close-4001 closes with 4001 after one message, /flood
    sends `n` 1 MiB messages at once, /headers sends the handshake's headers back. `closes` records the close
    codes it received from clients."""

    def __init__(self) -> None:
        self.port = free_port()
        self.closes: list[int | None] = []
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    async def handler(self, ws: Any) -> None:
        self.connections += 1
        path = ws.request.path
        try:
            if path.startswith("/echo"):
                async for message in ws:
                    await ws.send(message)
            elif path.startswith("/close-4001"):
                await ws.recv()
                await ws.close(4001, "bye")
            elif path.startswith("/flood"):
                n = int(path.split("=", 1)[1])
                block = b"x" * MIB
                for _ in range(n):
                    await ws.send(block)
                await ws.wait_closed()
            elif path.startswith("/headers"):
                await ws.send("\n".join(f"{k.lower()}: {v}" for k, v in ws.request.headers.raw_items()))
                await ws.wait_closed()
            else:
                await ws.wait_closed()
        except ConnectionClosed:
            pass
        finally:
            self.closes.append(ws.close_code)

    def _run(self) -> None:
        from websockets.asyncio.server import serve

        async def main() -> None:
            self.stopped = asyncio.Event()
            async with serve(self.handler, "127.0.0.1", self.port, max_size=32 * MIB, compression=None):
                self.ready.set()
                await self.stopped.wait()

        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(main())

    def start(self) -> "WsBackend":
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stopped.set)
        self.thread.join(10)


@pytest.fixture(scope="module")
def ws_backend() -> Iterator[WsBackend]:
    backend = WsBackend().start()
    yield backend
    backend.stop()


def ws_config(backend_port: int, jwt_auth: dict | None = None, *, route: dict | None = None,
              settings: dict | None = None) -> dict:
    policies = {"jwtAuth": jwt_auth} if jwt_auth else None
    r: dict = {"name": "ws", "backends": [{"host": f"127.0.0.1:{backend_port}"}], **(route or {})}
    if policies:
        r["policies"] = {**policies, **r.get("policies", {})}
    return {"config": settings or {},
            "binds": [{"port": free_port(), "address": "127.0.0.1",
                       "listeners": [{"name": "main", "routes": [r]}]}]}


def jwt_policy(idp: MockIdp, **extra: Any) -> dict:
    return {"issuer": idp.issuer, "audiences": ["my-application"], "jwks": {"url": idp.jwks_url}, **extra}


def ws(proxy: Any, path: str, token: str | None = None, **kw: Any):
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return connect(f"ws://127.0.0.1:{proxy.port}{path}", additional_headers=headers, max_size=32 * MIB,
                   compression=None, open_timeout=10, **kw)


@pytest.fixture(scope="module")
def jwt_proxy(ws_backend, idp, tmp_path_factory) -> Iterator:
    from tests.support.proxy import start_agw_proxy

    p = start_agw_proxy(tmp_path_factory.mktemp("ws"), ws_config(ws_backend.port, jwt_policy(idp)),
                        wait_readyz=True, name="agw-ws")
    yield p
    p.stop()


def metric(proxy: Any, name: str, labels: str) -> float:
    status, text = proxy.admin_get("/metrics")
    assert status == 200
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and labels in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


# --- the handshake -----------------------------------------------------------------------------------------

def test_handshake_without_a_token_is_401_and_no_tunnel(jwt_proxy, ws_backend):
    before = ws_backend.connections
    with pytest.raises(InvalidStatus) as info:
        ws(jwt_proxy, "/echo")
    assert info.value.response.status_code == 401
    # On the wire: one 401 answer, then the connection closes (bytes sent after it are never relayed).
    with RawConnection(jwt_proxy.port) as conn:
        conn.send(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                  b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                  b"\x81\x85 frame bytes")
        data = conn.read_until_closed(timeout=5)
    assert [r.status for r in parse_responses(data)] == [401]
    assert ws_backend.connections == before


def test_echo_text_binary_16mib_ping_and_close_codes(jwt_proxy, ws_backend, idp):
    token = idp.password_token()
    with ws(jwt_proxy, "/echo", token) as client:
        assert client.response.status_code == 101
        client.send("hello")
        assert client.recv(timeout=10) == "hello"
        client.send(b"\x00\x01\xff binary")
        assert client.recv(timeout=10) == b"\x00\x01\xff binary"
        big = bytes(range(256)) * (16 * MIB // 256)
        client.send(big)
        assert client.recv(timeout=60) == big
        pong = client.ping(b"are you there")
        assert pong.wait(10)
        client.close(4000, "client done")
    wait_until(lambda: 4000 in ws_backend.closes)
    with ws(jwt_proxy, "/close-4001", token) as client:
        client.send("bye please")
        with pytest.raises(ConnectionClosed) as closed:
            client.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    assert closed.value.rcvd.reason == "bye"


def test_the_backend_gets_the_upgrade_headers_not_the_token(jwt_proxy, idp):
    with ws(jwt_proxy, "/headers", idp.password_token()) as client:
        headers = dict(line.split(": ", 1) for line in client.recv(timeout=10).split("\n"))
    assert headers["upgrade"] == "websocket" and headers["connection"].lower() == "upgrade"
    assert "sec-websocket-key" in headers and headers["sec-websocket-version"] == "13"
    assert "authorization" not in headers


def test_tunnel_metrics(jwt_proxy, idp):
    with ws(jwt_proxy, "/echo", idp.password_token()) as client:
        client.send(b"m" * 1000)
        assert client.recv(timeout=10) == b"m" * 1000
        assert metric(jwt_proxy, "agw_tunnels_open", 'route="ws"') >= 1
        assert metric(jwt_proxy, "agw_tunnel_bytes_total", 'direction="upstream"') >= 1000
        assert metric(jwt_proxy, "agw_tunnel_bytes_total", 'direction="downstream"') >= 1000
    wait_until(lambda: metric(jwt_proxy, "agw_tunnels_open", 'route="ws"') == 0)
    assert metric(jwt_proxy, "agw_tunnels_total", 'route="ws"') >= 1


# --- refusals ------------------------------------------------------------------------------------------------

def raw_upgrade(port: int, upgrade: str, method: str = "GET", path: str = "/echo") -> tuple[int, bytes]:
    """(status, body) of the one answer to an upgrade request sent as raw bytes."""
    with RawConnection(port) as conn:
        conn.send(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: {upgrade}\r\n"
                  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode())
        responses = parse_responses(conn.read_until_closed(timeout=5))
    assert len(responses) == 1
    return responses[0].status, responses[0].body


AGW_400 = (400, b"bad request\n")


def test_unlisted_upgrade_tokens_are_refused_and_listed_ones_pass(agw_proxy, ws_backend):
    proxy = agw_proxy(ws_config(ws_backend.port))
    before = ws_backend.connections
    assert raw_upgrade(proxy.port, "h2c") == AGW_400
    assert raw_upgrade(proxy.port, "foo") == AGW_400
    assert raw_upgrade(proxy.port, "websocket", method="POST") == AGW_400
    with ws(proxy, "/echo") as client:   # the default list: websocket
        client.send("ok")
        assert client.recv(timeout=10) == "ok"
    assert ws_backend.connections == before + 1
    only_foo = agw_proxy(ws_config(ws_backend.port, route={"upgrades": ["foo"]}))
    assert raw_upgrade(only_foo.port, "websocket") == AGW_400
    # A listed token reaches the backend, whose own (non-101) answer is relayed as a normal response.
    status, body = raw_upgrade(only_foo.port, "foo")
    assert status == 426 and b"invalid Upgrade header: foo" in body, body


def test_tunnels_over_the_cap_are_503(agw_proxy, ws_backend):
    proxy = agw_proxy(ws_config(ws_backend.port, settings={"maxTunnels": 1}))
    with ws(proxy, "/echo") as first:
        first.send("one")
        assert first.recv(timeout=10) == "one"
        with pytest.raises(InvalidStatus) as info:
            ws(proxy, "/echo")
        assert info.value.response.status_code == 503
    wait_until(lambda: metric(proxy, "agw_tunnels_open", 'route="ws"') == 0)
    with ws(proxy, "/echo") as again:
        again.send("two")
        assert again.recv(timeout=10) == "two"


# --- limits ---------------------------------------------------------------------------------------------------

def test_idle_tunnel_is_closed_after_tunnel_idle_timeout(agw_proxy, ws_backend):
    proxy = agw_proxy(ws_config(ws_backend.port, route={"policies": {"timeout": {"tunnelIdleTimeout": "1s"}}}))
    with ws(proxy, "/echo") as client:
        started = time.monotonic()
        for _ in range(3):   # traffic keeps it open past the timeout
            client.send("keep")
            assert client.recv(timeout=10) == "keep"
            time.sleep(0.5)
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=10)
        assert time.monotonic() - started >= 1.5


def test_a_client_that_stops_reading_does_not_grow_memory(agw_proxy, ws_backend):
    """The backend sends 256 MiB; the client reads nothing: back-pressure stops the backend, agw stays small."""
    proxy = agw_proxy(ws_config(ws_backend.port), extra_args=("--access-log", "off"))
    pid = proxy.proc.pid
    with ws(proxy, "/echo") as warm:
        warm.send(b"w" * (4 * MIB))
        assert len(warm.recv(timeout=30)) == 4 * MIB
    before = rss_kib(pid)
    sock = socket.create_connection(("127.0.0.1", proxy.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.sendall(b"GET /flood?n=256 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                 b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101")
    # Wait until the flood has filled every buffer on the way (the tunnel's byte counter stops moving).
    last, still = -1.0, 0
    while still < 5:
        time.sleep(0.2)
        now = metric(proxy, "agw_tunnel_bytes_total", 'direction="downstream"')
        still = still + 1 if now == last else 0
        last = now
    grown = rss_kib(pid) - before
    sock.close()
    assert last < 64 * MIB, last
    assert grown < 48 * 1024, f"RSS grew by {grown} KiB"


def test_close_on_token_expiry(agw_proxy, ws_backend, idp):
    proxy = agw_proxy(ws_config(ws_backend.port, jwt_policy(idp, closeOnTokenExpiry=True)), wait_readyz=True)
    token = idp.mint(expires_in=2)
    with ws(proxy, "/echo", token) as client:
        client.send("before exp")
        assert client.recv(timeout=10) == "before exp"
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=15)
    # Without the setting, the same kind of tunnel outlives its token.
    plain = agw_proxy(ws_config(ws_backend.port, jwt_policy(idp)), wait_readyz=True)
    token = idp.mint(expires_in=2)
    with ws(plain, "/echo", token) as client:
        time.sleep(3.5)   # the point: past the token's exp; no event to wait for
        client.send("after exp")
        assert client.recv(timeout=10) == "after exp"


# --- shutdown and reload --------------------------------------------------------------------------------------

def test_sigterm_gives_tunnels_the_drain_timeout_then_closes_them(agw_proxy, ws_backend):
    import signal

    proxy = agw_proxy(ws_config(ws_backend.port), extra_args=("--drain-timeout", "2"))
    with ws(proxy, "/echo") as client:
        client.send("up")
        assert client.recv(timeout=10) == "up"
        proxy.send_signal(signal.SIGTERM)
        started = time.monotonic()
        client.send("still up while draining")
        assert client.recv(timeout=10) == "still up while draining"
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=15)
        assert time.monotonic() - started >= 1.5
    assert proxy.wait(10) == 0


def test_reload_keeps_tunnels_open(agw_proxy, ws_backend):
    import signal

    config = ws_config(ws_backend.port)
    proxy = agw_proxy(config)
    with ws(proxy, "/echo") as client:
        client.send("before")
        assert client.recv(timeout=10) == "before"
        config["binds"][0]["listeners"][0]["routes"][0]["name"] = "ws2"
        proxy.write_config(config)
        proxy.send_signal(signal.SIGHUP)
        wait_until(lambda: proxy.get("/").status in (400, 426) and metric(proxy, "agw_requests_total",
                                                                          'route="ws2"') > 0)
        client.send("after reload")
        assert client.recv(timeout=10) == "after reload"


# --- half-close, on raw sockets -------------------------------------------------------------------------------

class RawSwitchBackend:
    """Answers any request with a 101, then echoes bytes; on the client's EOF it sends b"after eof" and closes
    (so a proxy that closed instead of passing the half-close on would lose those bytes)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.heads: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            self.heads.append(head)
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"X-Backend: raw\r\n\r\nhello from the backend|")
            if rest:
                conn.sendall(rest)
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                conn.sendall(chunk)
            conn.sendall(b"after eof")

    def stop(self) -> None:
        self.sock.close()


def read_until(sock: socket.socket, marker: bytes, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_half_close_and_early_bytes_pass_through_the_tunnel(agw_proxy):
    backend = RawSwitchBackend()
    try:
        proxy = agw_proxy(ws_config(backend.port))
        sock = socket.create_connection(("127.0.0.1", proxy.port))
        # Bytes sent right behind the upgrade request (before the 101) reach the backend once it switched.
        sock.sendall(b"GET /raw HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive, Upgrade\r\n"
                     b"Upgrade: websocket\r\n\r\nearly bytes|")
        data = read_until(sock, b"early bytes|")
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"x-backend: raw" in head.lower() and b"upgrade: websocket" in head.lower()
        assert body == b"hello from the backend|early bytes|"
        sock.sendall(b"more")
        assert read_until(sock, b"more") == b"more"
        sock.shutdown(socket.SHUT_WR)      # half-close: the backend still answers after our EOF
        assert read_until(sock, b"after eof") == b"after eof"
        assert sock.recv(10) == b""        # then both sides close
        sock.close()
        assert b"upgrade: websocket" in backend.heads[0].lower()
    finally:
        backend.stop()


# --- streamed answers (SSE) -----------------------------------------------------------------------------------

class SseBackend:
    """GET /events: a chunked text/event-stream; event i+1 is sent only once the test calls `next()`."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.go = threading.Semaphore(0)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            for i in range(3):
                if i:
                    assert self.go.acquire(timeout=20)
                event = f"id: {i}\ndata: event {i}\n\n".encode()
                conn.sendall(b"%x\r\n%b\r\n" % (len(event), event))
            assert self.go.acquire(timeout=20)
            conn.sendall(b"0\r\n\r\n")

    def next(self) -> None:
        self.go.release()


def test_sse_events_arrive_one_by_one(agw_proxy):
    backend = SseBackend()
    proxy = agw_proxy(ws_config(backend.port))
    sock = socket.create_connection(("127.0.0.1", proxy.port))
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
    received = read_until(sock, b"data: event 0\n\n")
    assert received.startswith(b"HTTP/1.1 200 ") and b"text/event-stream" in received
    for i in (1, 2):
        # Event i is sent only now: what arrived so far is everything up to event i-1, relayed at once.
        assert f"data: event {i}".encode() not in received
        backend.next()
        received += read_until(sock, f"data: event {i}\n\n".encode())
    backend.next()
    received += read_until(sock, b"0\r\n\r\n")
    sock.close()
    backend.sock.close()


def test_wss_over_a_tls_bind(agw_proxy, ws_backend, tmp_path):
    """The tunnel works over a TLS client connection too (the TLS transport's protocol is swapped the same way);
    a half-close there closes instead (TLS has no write_eof)."""
    trustme = pytest.importorskip("trustme")
    import ssl

    from tests.e2e.test_tls import write_cert

    ca = trustme.CA()
    cert, key = write_cert(ca, tmp_path)
    config = ws_config(ws_backend.port)
    config["binds"][0]["tls"] = {"cert": cert, "key": key}
    proxy = agw_proxy(config)
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    with connect(f"wss://127.0.0.1:{proxy.port}/echo", ssl=ctx, max_size=32 * MIB, compression=None,
                 open_timeout=10) as client:
        client.send("over tls")
        assert client.recv(timeout=10) == "over tls"
        big = os.urandom(4 * MIB)
        client.send(big)
        assert client.recv(timeout=30) == big
        client.close(4002)
    wait_until(lambda: 4002 in ws_backend.closes)
