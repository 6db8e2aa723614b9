"""Backends: a keep-alive connection pool per backend address and the upstream side of the HTTP protocol.

An `UpstreamConnection` is bound to one exchange at a time (HTTP/1.1 without upstream pipelining); the
exchange receives parser events through a small set of methods (`on_response_*`, `on_upstream_lost`).
"""
from __future__ import annotations

import asyncio

try:
    import cython
except ImportError:  # running uncompiled without Cython installed
    from . import _cython_shim as cython  # type: ignore[no-redef]
import itertools
import logging
import socket
import time
from typing import Optional

import httptools

from ..config.compile import BackendPlan, ProxySettings
from .http import HOP_BY_HOP as _HOP_BY_HOP

try:
    from .headscan import scan_response as _scan_response
except ImportError:  # the C scanner is not built: every response head goes through llhttp
    _scan_response = None

# Response heads larger than this are left to llhttp (the C scanner's bound, not a limit on responses).
SCAN_HEAD_LIMIT = 65536

log = logging.getLogger("agw.upstream")


class _BadResponse(Exception):
    """Raised inside a parser callback: the response is one agw must not relay (llhttp reports it as an error)."""


@cython.cclass
class ResponseSink:
    """What an upstream connection reports to: the exchange it serves (`server.Exchange`). Declared here so
    that, compiled, the connection calls the exchange through C slots rather than Python attribute lookups."""

    def __init__(self) -> None:
        self.head_only = False   # the request was HEAD: the response has no body whatever its framing says
        self.upgrade = None      # the request asks to switch protocols (its Upgrade value): a 101 may answer

    def pause_client(self) -> None:
        """The upstream's write buffer is full: stop reading from the client."""

    def resume_client(self) -> None:
        """The upstream's write buffer drained."""

    def on_response_head(self, conn: "UpstreamConnection", status, reason: bytes,
                         upstream_keep_alive) -> None:  # status: int, upstream_keep_alive: bool (C types)
        raise NotImplementedError

    def on_response_body(self, body: bytes) -> None:
        raise NotImplementedError

    def on_response_complete(self, conn: "UpstreamConnection") -> None:
        raise NotImplementedError

    def on_upstream_lost(self, conn: "UpstreamConnection") -> None:
        raise NotImplementedError

    def on_upstream_protocol_error(self) -> None:
        raise NotImplementedError

    def on_upgraded(self, conn: "UpstreamConnection", rest: bytes) -> None:
        """A 101 answer's head is parsed; `rest` is what followed it: the connection is a tunnel's now."""
        raise NotImplementedError


@cython.cclass
class UpstreamConnection:

    def __init__(self, target: "Target") -> None:
        self.target = target
        self.transport: Optional[asyncio.Transport] = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Optional[ResponseSink] = None
        self.reusable = True
        self.idle_since = 0.0
        self.status_reason = b""
        self.lines: list = []         # name, ": ", value, CRLF of the headers passed on as they are
        self.special: list = []       # (lowercase name, value) of hop-by-hop headers, for framing decisions
        self.has_length = False
        self.got_bytes = False
        self.closed = False
        self.in_message = False       # llhttp is inside a response (between its begin and complete)
        self.body_left = -1           # bytes of a C-scanned response's body still to come; -1: none
        self.keep = True              # that response allows keep-alive
        self.interim = False          # llhttp is inside a 1xx interim answer (the final one follows)
        self.completed = False        # a response completed during the current read (reported after it)
        self.leftover = False         # bytes came after that response: the connection is not reused

    # --- asyncio.Protocol --------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        ex = self.exchange
        if ex is None:
            # An idle pooled connection must stay silent; anything else means it is unusable.
            self.close()
            return
        self.got_bytes = True
        if self.body_left >= 0:
            self.relay_body(data, 0)
            return
        if not self.in_message and _scan_response is not None and not ex.head_only:
            # Between messages: a plain Content-Length response is taken by the C scanner, its body
            # counted here; anything else (chunked, 1xx, 204/304, odd bytes) goes to llhttp.
            head = _scan_response(data, SCAN_HEAD_LIMIT)
            if head is not None:
                self.relay_head(data, head)
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            # Only after a 101 that on_headers_complete let through (the request asked to switch).
            self.reusable = False
            if not self.completed:
                ex.on_upgraded(self, data[e.args[0]:])
                return
            # A 101 after a complete answer in the same read: the answer stands, the connection is retired.
        except httptools.HttpParserError:
            self.reusable = False
            if not self.completed:
                # Local strong references: the exchange may end (and be freed) inside these calls.
                ex = self.exchange
                if ex is not None:
                    ex.on_upstream_protocol_error()
                self.close()
                return
            # Garbage after a complete response: the response stands, the connection is retired.
        if self.completed:
            # Reported once llhttp is done with the read, so bytes after the response can never be taken
            # for the answer to a request sent on this connection later (they retire it instead).
            self.completed = False
            if self.leftover:
                self.leftover = False
                self.reusable = False
            ex = self.exchange
            if ex is not None:
                ex.on_response_complete(self)
            if not self.reusable:
                self.close()

    def relay_head(self, data: bytes, head: tuple) -> None:
        end, status, reason, lines, length, keep = head
        self.lines = [lines]
        self.special = []
        self.has_length = True
        self.keep = keep
        self.body_left = length
        ex = self.exchange
        ex.on_response_head(self, status, reason, keep)
        self.relay_body(data, end)

    def relay_body(self, data: bytes, start) -> None:  # start: an offset into data
        """Pass on the body of a C-scanned response; complete it when Content-Length bytes have come."""
        left = self.body_left
        size = len(data) - start
        if size > 0 and left > 0:
            if size > left:
                size = left
            left -= size
            self.body_left = left
            ex = self.exchange
            if ex is not None:
                ex.on_response_body(data if start == 0 and size == len(data) else data[start:start + size])
            start += size
        if left == 0:
            self.body_left = -1
            if start < len(data) or not self.keep:
                self.reusable = False   # bytes after the response, or Connection: close
            ex = self.exchange
            if ex is not None:
                ex.on_response_complete(self)

    def eof_received(self) -> Optional[bool]:
        return None  # close the transport; connection_lost reports it

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.closed = True
        self.transport = None
        self.target.forget(self)
        ex = self.exchange
        if ex is not None:
            self.exchange = None
            ex.on_upstream_lost(self)

    def pause_writing(self) -> None:
        ex = self.exchange
        if ex is not None:
            ex.pause_client()

    def resume_writing(self) -> None:
        ex = self.exchange
        if ex is not None:
            ex.resume_client()

    # --- httptools callbacks -----------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.completed:
            self.leftover = True   # a second message in the read that completed the first: ignored
        self.in_message = True
        self.lines = []
        self.special = []
        self.has_length = False
        self.status_reason = b""

    def on_status(self, reason: bytes) -> None:
        self.status_reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname in _HOP_BY_HOP or lname[:6] == b"proxy-":
            self.special.append((lname, value))
            return
        if lname == b"content-length":
            self.has_length = True
        self.lines += (name, b": ", value, b"\r\n")

    def on_headers_complete(self) -> None:
        if self.completed:
            return
        ex = self.exchange
        if ex is None:
            return
        p = self.parser
        status = p.get_status_code()
        if status < 100 or status > 599 or (status == 101 and ex.upgrade is None):
            # Out of range, or a switch of protocols the request did not ask for.
            raise _BadResponse()
        if status < 200:
            self.interim = True    # relayed; the same message's completion is not the answer's
        else:
            self.interim = False
            te = None
            for lname, value in self.special:
                if lname == b"transfer-encoding":
                    if te is not None:
                        raise _BadResponse()
                    te = value
            if te is not None and te.strip().lower() != b"chunked":
                # A coding agw would drop on re-framing (gzip, ...): the client would get bytes it cannot read.
                raise _BadResponse()
        ex.on_response_head(self, status, self.status_reason, p.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        if self.completed:
            return
        ex = self.exchange
        if ex is not None:
            ex.on_response_body(body)

    def on_message_complete(self) -> None:
        self.in_message = False
        if self.completed:
            return
        if self.interim:
            self.interim = False   # the final answer follows on this connection
            return
        if not self.parser.should_keep_alive():
            self.reusable = False
        self.completed = True

    # --- pool use -----------------------------------------------------------------------------------------
    def bind(self, exchange: ResponseSink) -> None:
        self.exchange = exchange
        self.got_bytes = False
        self.interim = False

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()


@cython.cclass
class Target:
    """One backend address with its idle keep-alive connections."""

    def __init__(self, backend: BackendPlan, settings: ProxySettings) -> None:
        self.host = backend.host
        self.port = backend.port
        self.label = backend.label
        self.label_bytes = backend.label.encode()   # the Host sent when the client sent none
        self.idle: list[UpstreamConnection] = []
        self.all: set[UpstreamConnection] = set()
        self.max_idle = settings.max_idle_upstream_per_backend
        self.idle_timeout = settings.upstream_idle_timeout
        self.connect_timeout = settings.connect_timeout
        self.connect_errors = 0
        self.retired = False     # replaced by a reload: connections finish their request, then close

    def take_idle(self) -> Optional[UpstreamConnection]:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if conn.transport is not None and not conn.closed and not conn.transport.is_closing():
                return conn
        return None

    async def connect(self, loop: asyncio.AbstractEventLoop):  # -> UpstreamConnection
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: UpstreamConnection(self), self.host, self.port),
                self.connect_timeout)
        except BaseException:
            self.connect_errors += 1
            raise
        self.all.add(conn)
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        conn.exchange = None
        if not conn.reusable or conn.closed or self.retired or len(self.idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        # Its reading may have been paused for a slow client: an idle connection must read (to see a close)
        # and the next exchange must get its answer.
        conn.transport.resume_reading()
        self.idle.append(conn)

    def expire_idle(self, now: float) -> None:
        """Close pooled connections unused for longer than the idle timeout (before the upstream does)."""
        limit = now - self.idle_timeout
        if any(c.idle_since < limit for c in self.idle):
            stale = [c for c in self.idle if c.idle_since < limit]
            self.idle[:] = [c for c in self.idle if c.idle_since >= limit]
            for c in stale:
                c.close()

    def forget(self, conn: UpstreamConnection) -> None:
        self.all.discard(conn)
        try:
            self.idle.remove(conn)
        except ValueError:
            pass

    def close_all(self) -> None:
        for conn in list(self.all):
            conn.close()


@cython.cclass
class BackendPool:
    """The backends of a route: weighted round robin over targets."""

    def __init__(self, backends: list[BackendPlan], settings: ProxySettings) -> None:
        self.targets = [Target(b, settings) for b in backends]
        order = [t for t, b in zip(self.targets, backends) for _ in range(b.weight)]
        self._cycle = itertools.cycle(order)
        self._single = self.targets[0] if len(self.targets) == 1 else None

    def pick(self) -> Target:
        return self._single or next(self._cycle)

    def close_all(self) -> None:
        for t in self.targets:
            t.close_all()

    def expire_idle(self, now: float) -> None:
        for t in self.targets:
            t.expire_idle(now)

    def retire(self) -> None:
        for t in self.targets:
            t.retired = True
            for conn in t.idle:
                conn.close()
            t.idle.clear()
