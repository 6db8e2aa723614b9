"""The client protocol and the exchange in process, over in-memory transports (no sockets, no timers): the
pattern uvicorn's own tests use. Each test drives bytes in on both sides and looks at the bytes that come out,
the transports' paused state and the deadlines, exactly as the event loop would see them."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from agw.check import check
from agw.config.loader import LoadedConfig, decode_native
from agw.proxy.context import ServerContext
from agw.proxy.protocol import MAX_PIPELINED, PIPELINE_SLICE, ClientProtocol
from agw.proxy.upstream import UpstreamConnection
from agw.serve.app import Runtime


class FakeTransport:
    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.reading = True
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.out.append(data)

    def take(self) -> bytes:
        data = b"".join(self.out)
        self.out.clear()
        return data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    # what a tunnel uses (agw/proxy/tunnel.py)
    protocol: Any = None
    eof_written = False

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True


class Harness:
    """One client connection to an agw route whose backend pool holds `upstreams` in-memory connections."""

    def __init__(self, policies: dict | None = None, upstreams: int = 2, settings: dict | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        route: dict = {"name": "r", "backends": [{"host": "127.0.0.1:9"}]}
        if policies:
            route["policies"] = policies
        cfg = decode_native({"config": settings or {}, "binds": [{"port": 1, "listeners": [{"routes": [route]}]}]})
        self.runtime = Runtime(check(LoadedConfig(cfg)))
        _, router = self.runtime.routers[0]
        self.ctx = ServerContext(router, self.runtime.settings)
        self.target = next(iter(self.runtime.pools.values())).targets[0]
        self.upstreams = []
        for _ in range(upstreams):
            up = UpstreamConnection(self.target)
            up.connection_made(FakeTransport())
            self.target.idle.append(up)
            self.upstreams.append(up)
        self.client = self.connect()

    def connect(self) -> ClientProtocol:
        client = ClientProtocol(self.ctx)
        client.connection_made(FakeTransport())
        return client

    def send(self, data: bytes, client: ClientProtocol | None = None) -> None:
        (client or self.client).data_received(data)
        self.pass_ends()

    def answer(self, up: UpstreamConnection, data: bytes) -> None:
        up.data_received(data)
        self.pass_ends()

    def pass_ends(self) -> None:
        """What the end of an event-loop pass does: the batch is written, then call_soon callbacks run."""
        self.ctx.batch.flush()
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        self.ctx.batch.flush()

    def client_out(self, client: ClientProtocol | None = None) -> bytes:
        return (client or self.client).transport.take()

    def sent_upstream(self, up: UpstreamConnection) -> bytes:
        return up.transport.take()

    def close(self) -> None:
        self.loop.close()


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


def request(path: str, extra: bytes = b"") -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: a.test\r\n%b\r\n" % (path.encode(), extra)


def response(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%b\r\n%b" % (len(body), extra, body)


def test_pipelined_requests_are_answered_in_order(harness):
    harness.send(request("/one") + request("/two"))
    busy = [up for up in harness.upstreams if up.exchange is not None]
    assert len(busy) == 1, "only the first request is forwarded while it is answered"
    up = busy[0]
    assert harness.sent_upstream(up).startswith(b"GET /one HTTP/1.1\r\n")
    assert harness.client_out() == b""
    harness.answer(up, response(b"first"))
    assert harness.client_out().endswith(b"\r\n\r\nfirst")
    busy = [u for u in harness.upstreams if u.exchange is not None]
    assert len(busy) == 1
    assert harness.sent_upstream(busy[0]).startswith(b"GET /two HTTP/1.1\r\n")
    harness.answer(busy[0], response(b"second"))
    assert harness.client_out().endswith(b"\r\n\r\nsecond")
    assert harness.client.transport.reading and not harness.client.transport.closed


def test_requests_parsed_ahead_are_bounded_and_the_rest_waits_unparsed(harness):
    harness.send(request("/slow") + b"".join(request(f"/p{i}") for i in range(200)))
    client = harness.client
    # Exactly the bound when the C scanner takes the heads; up to a slice's worth more when llhttp parses.
    bound = MAX_PIPELINED + PIPELINE_SLICE // len(request("/p0"))
    assert MAX_PIPELINED <= len(client.queue) <= bound
    assert client.backlog and not client.transport.reading
    answered = 0
    while True:
        busy = [u for u in harness.upstreams if u.exchange is not None]
        if not busy:
            break
        harness.sent_upstream(busy[0])
        harness.answer(busy[0], response(b"x"))
        answered += 1
        assert len(client.queue) <= bound
    assert answered == 201
    assert harness.client_out().count(b"HTTP/1.1 200 OK") == 201
    assert client.transport.reading and not client.backlog


def test_a_client_not_reading_pauses_the_upstream_and_a_released_connection_reads_again(harness):
    harness.send(request("/big"))
    up = next(u for u in harness.upstreams if u.exchange is not None)
    harness.sent_upstream(up)
    harness.answer(up, b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234")
    harness.client.pause_writing()           # the client's socket buffer is full
    assert not up.transport.reading
    harness.answer(up, b"56789")             # the answer completes while the upstream is paused
    assert harness.client_out().endswith(b"0123456789")
    assert up.exchange is None and up.transport.reading, "a pooled connection must read again"
    harness.client.resume_writing()
    harness.send(request("/next"))
    assert harness.sent_upstream(up).startswith(b"GET /next ")


def test_no_request_is_started_while_the_client_does_not_read_its_answers(harness):
    harness.client.pause_writing()
    harness.send(b"GET /x HTTP/1.1\r\n\r\n" * 3)     # no Host: agw answers 400 itself, keep-alive
    assert harness.client_out() == b"" and len(harness.client.queue) == 3
    harness.client.resume_writing()
    harness.pass_ends()
    assert harness.client_out().count(b"HTTP/1.1 400 ") == 3


def test_waiting_for_the_response_head_times_out_with_504(harness):
    harness.send(request("/hang"))
    deadline = harness.client.deadline
    assert deadline > 0
    harness.ctx.expire(deadline + 0.01)
    harness.pass_ends()
    out = harness.client_out()
    assert out.startswith(b"HTTP/1.1 504 ") and out.endswith(b"upstream request timeout\n")
    assert any(u.transport.aborted for u in harness.upstreams), "the upstream connection is cut"


def test_the_request_timeout_covers_every_phase():
    h = Harness(policies={"timeout": {"requestTimeout": "2s", "backendRequestTimeout": "30s"}})
    try:
        h.send(b"POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        started = h.ctx.now
        assert h.client.deadline == pytest.approx(started + 2.0)   # sooner than the body idle timeout
        h.ctx.expire(started + 2.01)
        h.pass_ends()
        assert h.client_out().endswith(b"request timeout\n")
    finally:
        h.close()


def test_an_interim_answer_is_relayed_and_the_final_one_follows(harness):
    harness.send(request("/continue"))
    up = next(u for u in harness.upstreams if u.exchange is not None)
    harness.answer(up, b"HTTP/1.1 100 Continue\r\n\r\n")
    assert harness.client_out() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert up.exchange is not None
    harness.answer(up, response(b"done"))
    assert harness.client_out().endswith(b"done") and up.exchange is None


def test_bytes_after_an_answer_retire_the_upstream_connection(harness):
    harness.send(request("/stray"))
    up = next(u for u in harness.upstreams if u.exchange is not None)
    harness.answer(up, b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged")
    assert harness.client_out().startswith(b"HTTP/1.1 204 ")
    assert up.transport.closed and up not in harness.target.idle


def test_a_malformed_request_is_a_400_and_the_connection_closes(harness):
    harness.send(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n" + request("/after"))
    out = harness.client_out()
    assert out.startswith(b"HTTP/1.1 400 ") and b"connection: close" in out
    assert harness.client.transport.closed
    assert all(u.exchange is None for u in harness.upstreams)


# --- upgrades and tunnels (agw/proxy/tunnel.py) --------------------------------------------------------------

UPGRADE = b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-B: 1\r\n\r\n"


def open_tunnel(harness: Harness, early: bytes = b"", after_101: bytes = b"") -> UpstreamConnection:
    harness.send(UPGRADE + early)
    up = next(u for u in harness.upstreams if u.exchange is not None)
    head = harness.sent_upstream(up)
    assert head.endswith(b"connection: upgrade\r\nupgrade: websocket\r\n\r\n")
    harness.answer(up, SWITCH + after_101)
    return up


def test_a_101_makes_a_tunnel_with_flow_control_both_ways_and_the_connection_is_never_pooled(harness):
    up = open_tunnel(harness, early=b"early", after_101=b"first")
    client_t, up_t = harness.client.transport, up.transport
    out = harness.client_out()
    assert out.startswith(b"HTTP/1.1 101 Switching Protocols\r\n") and out.endswith(b"\r\n\r\nfirst")
    assert b"X-B: 1\r\n" in out and b"upgrade: websocket\r\nconnection: upgrade\r\n" in out
    assert harness.sent_upstream(up) == b"early"
    assert client_t.reading and up_t.reading and harness.ctx.tunnels == 1
    client_t.protocol.data_received(b"to backend")
    up_t.protocol.data_received(b"to client")
    harness.pass_ends()
    assert harness.sent_upstream(up) == b"to backend" and harness.client_out() == b"to client"
    client_t.protocol.pause_writing()          # the client's buffer is full: the backend is not read
    assert not up_t.reading and client_t.reading
    client_t.protocol.resume_writing()
    up_t.protocol.pause_writing()              # and the other way round
    assert not client_t.reading and up_t.reading
    up_t.protocol.resume_writing()
    assert client_t.reading
    assert client_t.protocol.eof_received() is True and up_t.eof_written   # half-close passed on
    assert up_t.protocol.eof_received() is False                            # both EOF: both close
    assert client_t.closed and up_t.closed and harness.ctx.tunnels == 0
    assert up not in harness.target.idle and up not in harness.target.all
    assert harness.client not in harness.ctx.connections
    counters = harness.ctx.stats.tunnels["r"] if harness.ctx.stats is not None else None
    assert counters is None or counters[0] == 0


def test_an_idle_tunnel_is_aborted_at_its_deadline(harness):
    up = open_tunnel(harness)
    client_t = harness.client.transport
    deadline = harness.client.deadline
    assert deadline == pytest.approx(harness.ctx.now + 3600.0)
    harness.ctx.expire(deadline - 1.0)
    assert not client_t.closed
    harness.ctx.now = deadline - 0.5
    client_t.protocol.data_received(b"x")      # bytes move: the deadline moves on
    harness.ctx.expire(deadline + 0.1)
    assert not client_t.closed and harness.client.deadline > deadline
    harness.ctx.expire(harness.client.deadline + 0.1)
    assert client_t.aborted and up.transport is None and harness.ctx.tunnels == 0


def test_an_upgrade_answered_without_101_is_relayed_then_the_connection_closes(harness):
    harness.send(UPGRADE + b"new protocol bytes")
    up = next(u for u in harness.upstreams if u.exchange is not None)
    harness.sent_upstream(up)
    harness.answer(up, response(b"no switch"))
    assert harness.client_out().endswith(b"\r\n\r\nno switch")
    assert harness.client.transport is None or harness.client.transport.closed
    assert harness.sent_upstream(up) == b""    # the client's later bytes never reached a backend


def test_a_101_to_a_plain_request_is_a_502(harness):
    harness.send(request("/plain"))
    up = next(u for u in harness.upstreams if u.exchange is not None)
    harness.answer(up, SWITCH)
    assert harness.client_out().startswith(b"HTTP/1.1 502 ")
