"""The client side: a raw asyncio Protocol over httptools (and the C head scanner), one per connection.

Requests are answered strictly in order (HTTP/1.1 pipelining): the first is the active `Exchange`, later ones
wait in a deque (at most MAX_PIPELINED; input beyond them waits unparsed). Flow control and the deadline are
the `ClientFlow` base class's.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Optional

try:
    import cython
except ImportError:  # running uncompiled without Cython installed
    from . import _cython_shim as cython  # type: ignore[no-redef]

import httptools

from . import http as H
from .context import ServerContext
from .exchange import Exchange
from .flow import PAUSE_PIPELINE, PAUSE_WRITE, ClientFlow

try:
    from .headscan import scan_request as _scan_request
except ImportError:  # the C scanner is not built: every request head goes through llhttp
    _scan_request = None

_SEP = b": "
_CRLF = b"\r\n"
_monotonic = time.monotonic    # one global lookup per call, not a global plus an attribute

MAX_PIPELINED = 32      # requests parsed ahead of the one being answered; later bytes wait unparsed
# Input llhttp parses at a time between requests: the bound is checked between slices, so at most a slice's
# worth of requests (heads the C scanner leaves to llhttp) goes past MAX_PIPELINED.
PIPELINE_SLICE = 1024


class _HeadTooLarge(Exception):
    pass


class _Refused(Exception):
    """A request head llhttp accepts but a proxy must not forward (ambiguous framing or Host)."""

    def __init__(self, error: H.ErrorResponse) -> None:
        super().__init__(error.code)
        self.error = error


@cython.cclass
class ClientProtocol(ClientFlow):
    """An asyncio Protocol per client connection: parses requests (the C scanner, else llhttp), answers them
    strictly in order (pipelining), and owns the exchange being answered."""

    def __init__(self, ctx: ServerContext) -> None:
        super().__init__(ctx)
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list = []    # (lowercase name, name, value) of the headers agw may drop or rewrite
        self.lines: list = []      # name, ": ", value, CRLF of all the others, ready to join
        self.hdict: dict = {}
        self.head_bytes = 0
        self.raw_head_bytes = 0
        self.headers_done = True
        self.parsing: Optional[Exchange] = None     # the request whose body is being parsed
        self.active: Optional[Exchange] = None      # the request being answered
        self.queue: deque[Exchange] = deque()
        self.pending_error: Optional[H.ErrorResponse] = None
        self.requests = 0
        self.accepting = True    # False after a request that ends the connection: later ones are never run
        self.backlog = b""       # input not parsed yet because MAX_PIPELINED requests wait
        self.upgrade_data = None  # after an upgrade request: the client's bytes that follow it (for a tunnel)
        self.tunnel = None        # the Tunnel this connection became (agw/proxy/tunnel.py)

    # --- connection lifecycle ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        ctx = self.ctx
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0] if isinstance(peer, tuple) else "unix").encode()
        if ctx.draining or len(ctx.connections) >= ctx.max_connections:
            transport.write(H.SERVICE_UNAVAILABLE.close if ctx.draining else
                            H.TOO_MANY_CONNECTIONS.close)
            transport.close()
            self.closing = True
            return
        ctx.connections.add(self)
        self._arm(ctx.request_header_timeout)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.closing = True
        self.ctx.connections.discard(self)
        self._disarm()
        active = self.active
        if active is not None:
            active.on_client_lost()
        for ex in self.queue:
            ex.on_client_lost()
        self.queue.clear()
        self.transport = None

    def relaying_transport(self) -> Any:
        active = self.active
        if active is not None and active.conn is not None:
            return active.conn.transport
        return None

    def writable(self) -> None:
        if self.active is None and self.queue:
            self.next_request()

    # --- timers ------------------------------------------------------------------------------------------
    def on_deadline(self) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.on_deadline()
            return
        active = self.active   # a strong reference: the exchange can end (and be freed) inside the call
        if active is not None:
            active.on_deadline()
            return
        if not self.queue and self.transport is not None:
            if not self.headers_done:
                # A request was started but its head never completed (slowloris).
                self.write(H.REQUEST_TIMEOUT.close)
            self.close()

    # --- input -------------------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if self.backlog:
            self.backlog += data   # at most one read arrives after reading was paused
            return
        self.parse(data)

    def parse(self, data: bytes) -> None:
        """Parse client input; with MAX_PIPELINED requests waiting, keep the rest unparsed for later."""
        while data and not self.closing:
            if len(self.queue) >= MAX_PIPELINED and self.accepting:
                # Enough requests wait: the rest stays unparsed (llhttp keeps a partial head to itself).
                self.backlog = data
                self.pause_reading_for(PAUSE_PIPELINE)
                return
            if not self.accepting and self.parsing is None and self.headers_done:
                # Between messages after one that ends the connection: nothing more is read.
                if self.upgrade_data is not None:
                    self.upgrade_data += data   # after an upgrade request: the new protocol's, kept for it
                self.pause_reading_for(PAUSE_PIPELINE)
                return
            if self.parsing is None and self.headers_done and _scan_request is not None:
                # llhttp is between messages: plain requests are taken whole by the C scanner.
                start = self._scan_plain_requests(data)
                if start >= len(data) or self.closing:
                    return
                if start:
                    data = data[start:]
                    continue
            if len(data) > PIPELINE_SLICE and (self.queue or self.parsing is None):
                # Heads (and bodies of requests that wait) a slice at a time, so the bound is checked between
                # requests; the active request's body is fed whole.
                piece = data[:PIPELINE_SLICE]
                data = data[PIPELINE_SLICE:]
            else:
                piece = data
                data = b""
            if not self.feed(piece):
                if self.upgrade_data is not None:
                    self.upgrade_data += data
                return

    def resume_backlog(self) -> None:
        data = self.backlog
        self.backlog = b""
        if self.closing:
            return
        if data:
            self.parse(data)
        if self.backlog or self.closing:
            return
        if self.active is None and not self.queue and self.headers_done:
            self.next_request()      # nothing complete was left: wait for the next request
        elif not self.queue:
            self.resume_reading_for(PAUSE_PIPELINE)

    def feed(self, data: bytes) -> bool:
        """Feed llhttp; False when the connection is done with input (an error was answered, an upgrade)."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            # An upgrade request (or CONNECT): no request follows it on this connection. What follows is the
            # new protocol's, kept for a tunnel if the backend switches (agw/proxy/tunnel.py); otherwise the
            # answer is the last one and the connection closes.
            parsing = self.parsing
            if parsing is not None:
                parsing.keep_alive = False
            self.upgrade_data = data[e.args[0]:]
            self.accepting = False
            self.pause_reading_for(PAUSE_PIPELINE)
            return False
        except _HeadTooLarge:
            self.fail(H.HEADERS_TOO_LARGE)
            return False
        except httptools.HttpParserError as e:
            cause = e.__context__ or e.__cause__
            if isinstance(cause, _HeadTooLarge):
                self.fail(H.HEADERS_TOO_LARGE)
            elif isinstance(cause, _Refused):
                self.fail(cause.error)
            else:
                self.fail(H.BAD_REQUEST)
            return False
        if not self.headers_done:
            # httptools keeps a half-received header line to itself: the bytes after the read's last LF (more
            # reads without one add up). Bound it with the lines already counted (one huge line).
            nl = data.rfind(b"\n")
            if nl >= 0:
                self.raw_head_bytes = len(data) - nl - 1
            else:
                self.raw_head_bytes += len(data)
            if self.head_bytes + self.raw_head_bytes > self.ctx.max_header_bytes + 8192:
                self.fail(H.HEADERS_TOO_LARGE)
                return False
        return True

    def _scan_plain_requests(self, data: bytes) -> int:
        """Dispatch the requests at the start of `data` that the C scanner takes whole (plain heads, no
        body), as llhttp's callbacks would. Returns the offset from which llhttp must parse."""
        ctx = self.ctx
        start = 0
        end = len(data)
        while start < end and not self.closing and self.accepting and len(self.queue) < MAX_PIPELINED:
            head = _scan_request(data, start, ctx.special_headers, ctx.max_header_bytes, ctx.max_headers)
            if head is None:
                break
            start, method, target, headers, lines, hdict, keep_alive, http10 = head
            ex = Exchange(self, method, target, headers, [lines], hdict, keep_alive, http10)
            self.dispatch(ex)
            self.parsing = None
            ex.on_request_complete()
        return start

    def fail(self, error: H.ErrorResponse) -> None:
        """A request could not be parsed: answer once the requests before it are answered, then close."""
        broken = self.parsing
        self.parsing = None
        self.headers_done = True
        self.accepting = False
        self.pause_reading_for(PAUSE_PIPELINE)
        if broken is not None:
            # Its body's framing is invalid (a bad chunk): the request is abandoned, its upstream request
            # cut before it completes, and the client answered (or cut, if the response had begun).
            if broken is self.active and not broken.done:
                broken.abandon(error)
                return
            if broken in self.queue:
                self.queue.remove(broken)
        if self.active is None:
            self._write_and_close(error.close)
        else:
            self.pending_error = error

    def _write_and_close(self, data: bytes) -> None:
        if self.transport is not None and not self.closing:
            self.write(data)
            self.close()

    # --- httptools callbacks -----------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.lines = []
        self.hdict = {}
        self.head_bytes = 0
        self.raw_head_bytes = 0
        self.headers_done = False
        if self.active is None:
            self._arm(self.ctx.request_header_timeout)

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_bytes += len(url)
        if self.head_bytes > self.ctx.max_header_bytes:
            raise _HeadTooLarge()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        ctx = self.ctx
        # Header lines, not distinct names: 2000 repeats of one name are 2000 headers (4 list items per
        # line collected ready to join, one tuple per line agw may rewrite).
        if self.head_bytes > ctx.max_header_bytes or \
                len(self.lines) + 4 * len(self.headers) >= 4 * ctx.max_headers:
            raise _HeadTooLarge()
        lname = name.lower()
        if lname in ctx.special_headers or lname[:6] == b"proxy-":
            self.headers.append((lname, name, value))
        else:
            self.lines += (name, _SEP, value, _CRLF)
        hdict = self.hdict
        prev = hdict.get(lname)
        if prev is None:
            hdict[lname] = value
        elif lname == b"host":
            raise _Refused(H.BAD_REQUEST)   # RFC 9112 3.2: more than one Host line is a 400
        else:
            hdict[lname] = prev + (b"; " if lname == b"cookie" else b", ") + value

    def on_headers_complete(self) -> None:
        p = self.parser
        hdict = self.hdict
        version = p.get_http_version()
        if version != "1.1" and version != "1.0":
            raise _Refused(H.VERSION_NOT_SUPPORTED)   # e.g. "GET / HTTP/2.0": not HTTP/1.x framing
        te = hdict.get(b"transfer-encoding")
        if te is not None:
            # llhttp lets "gzip, chunked" and HTTP/1.0 chunked through; agw re-frames bodies as plain chunked,
            # so anything else would reach the backend with a framing the client did not mean (RFC 9112 6.1).
            if version == "1.0":
                raise _Refused(H.BAD_REQUEST)
            if te.strip().lower() != b"chunked":
                raise _Refused(H.NOT_IMPLEMENTED)
        upgrade = None
        if b"upgrade" in hdict and p.should_upgrade():
            if te is not None or hdict.get(b"content-length", b"0") != b"0":
                # llhttp leaves an upgrade request's body to the new protocol and never parses it: the
                # backend would get a head promising a body that never comes, or the body as the new
                # protocol's bytes (the h2c-upgrade smuggling shape). Refuse it.
                raise _Refused(H.BAD_REQUEST)
            upgrade = hdict[b"upgrade"]
        self.headers_done = True
        ex = Exchange(self, p.get_method(), self.url, self.headers, self.lines, hdict, p.should_keep_alive(),
                      version == "1.0")
        if upgrade is not None:
            ex.upgrade = upgrade   # checked against the route (Exchange.upgrade_allowed)
            ex.keep_alive = False  # the last request on this connection, whatever the answer
        self.dispatch(ex)

    def dispatch(self, ex: "Exchange") -> None:
        """A request head is complete: answer it now, or after the requests before it (pipelining)."""
        if not self.accepting or self.closing:
            # After a request that ends the connection (Connection: close, an error answered): never run.
            self.parsing = None
            return
        self.requests += 1
        self.parsing = ex
        if not ex.keep_alive:
            self.accepting = False
        if self.active is None and not self.write_paused:
            self._disarm()
            self.active = ex
            ex.start()
        else:
            self.queue.append(ex)
            self.pause_reading_for(PAUSE_PIPELINE)

    def on_body(self, body: bytes) -> None:
        ex = self.parsing
        if ex is not None:
            ex.on_request_body(body)

    def on_message_complete(self) -> None:
        ex = self.parsing
        self.parsing = None
        if ex is not None:
            ex.on_request_complete()

    # --- output ------------------------------------------------------------------------------------------
    def exchange_done(self, done: Any) -> None:
        if self.active is not done:
            return
        ex: Exchange = done
        self.active = None
        self.request_deadline = 0.0
        stats = self.ctx.stats
        if stats is not None:
            route = ex.route
            stats.record(route.name if route is not None else "", ex.status, _monotonic() - ex.start_time,
                         ex.verdicts)
        hook = self.ctx.on_request
        if hook is not None:
            hook(ex)
        if self.closing or self.transport is None:
            return
        if not ex.keep_alive or not ex.request_done:
            # Unread request body (early answer) or Connection: close: finish this connection.
            self.close()
            return
        self.next_request()

    def next_request(self) -> None:
        """No request is being answered: start the next one, or wait for one (keep-alive)."""
        if self.queue:
            if self.write_paused:
                # The client is not reading its answers: answer no more until it does (bounded memory).
                self.pause_reading_for(PAUSE_WRITE)
                return
            nxt = self.queue.popleft()
            self.active = nxt
            if self.backlog and len(self.queue) < MAX_PIPELINED:
                self.loop.call_soon(self.resume_backlog)
            elif not self.queue:
                self.resume_reading_for(PAUSE_PIPELINE)
            nxt.start()
            return
        if self.backlog:
            self.loop.call_soon(self.resume_backlog)
            return
        if self.pending_error is not None:
            self._write_and_close(self.pending_error.close)
            return
        if self.ctx.draining:
            self.close()
            return
        self.resume_reading_for(PAUSE_PIPELINE)
        self._arm(self.ctx.keepalive_timeout)

    def drain(self) -> None:
        """Stop taking requests on this connection; idle ones close now, busy ones after their answer."""
        if self.active is None and not self.queue:
            self.close()
