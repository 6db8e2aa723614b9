"""The client side: a raw asyncio Protocol over httptools, and the per-request `Exchange`.

One `ClientProtocol` per client connection. Requests are answered strictly in order (HTTP/1.1 pipelining):
the first is the active `Exchange`, later ones wait in a deque with reading paused. Bodies stream in both
directions; either side's full write buffer pauses reading on the other side (`pause_reading_for`).
"""
from __future__ import annotations

import asyncio

try:
    import cython
except ImportError:  # running uncompiled without Cython installed
    from . import _cython_shim as cython  # type: ignore[no-redef]
import logging
import re
import time
import types
from collections import deque
from typing import Callable, Optional

import httptools

from ..config.compile import ProxySettings
from . import http as H
from .metrics import Stats
from .routing import RouteRuntime, Router
from .upstream import ResponseSink, Target, UpstreamConnection

# RFC 3986 host (reg-name, IPv4, or [IP-literal]) with an optional port; empty is allowed for HTTP/1.0.
_VALID_HOST = re.compile(rb"(?:[A-Za-z0-9._~!$&'()*+,;=%-]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?").fullmatch
try:
    from .headscan import scan_request as _scan_request
    from .headscan import valid_host as _valid_host
except ImportError:  # the C scanner is not built: every request head goes through llhttp
    _scan_request = None

    def _valid_host(host: bytes) -> bool:
        return _VALID_HOST(host) is not None

log = logging.getLogger("agw.proxy")

# Reasons reading from the client is paused (a bitmask, so each reason is lifted on its own).
PAUSE_PIPELINE = 1      # a later request waits for the active one
PAUSE_UPSTREAM = 2      # the upstream's write buffer is full
PAUSE_BUFFER = 4        # request body buffered while the upstream is being connected / auth is pending
PAUSE_WRITE = 8         # the client is not reading what agw writes: no further request is answered

MAX_PIPELINED = 32      # requests parsed ahead of the one being answered; later bytes wait unparsed
PIPELINE_SLICE = 4096   # with requests waiting, input is parsed this much at a time (so the bound holds)

BODY_BUFFER_LIMIT = 256 * 1024
COALESCE_LIMIT = 64 * 1024   # writes to one peer in one pass are joined up to this size (larger: sent apart)
BATCH_FLUSH_BYTES = 256 * 1024   # a pass's batch holding this much is sent at once (bounded memory, flow control)

_HOP = H.HOP_BY_HOP
_SEP = b": "
_CRLF = b"\r\n"
# Request headers agw may drop or rewrite; every other header goes upstream as received, unexamined.
BASE_SPECIAL_REQUEST_HEADERS = H.HOP_BY_HOP | {H.FORWARDED_FOR, H.FORWARDED_PROTO, H.FORWARDED_HOST,
                                               b"cookie"}
_CHUNK_END = b"0\r\n\r\n"
_IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"))


_STATUS_LINES: dict[tuple[int, bytes], bytes] = {}
_COROUTINE = types.CoroutineType   # what a policy returns when it must wait (agw/chain.py)
_monotonic = time.monotonic    # one global lookup per call, not a global plus an attribute
_PLAIN_CONNECTION = frozenset((b"keep-alive", b"close"))


class _HeadTooLarge(Exception):
    pass


class _Refused(Exception):
    """A request head llhttp accepts but a proxy must not forward (ambiguous framing or Host)."""

    def __init__(self, error: H.ErrorResponse) -> None:
        super().__init__(error.code)
        self.error = error


@cython.cclass
class WriteBatch:
    """The writes of one event-loop pass, sent together once every ready socket has been read.

    Writing each answer the moment it is ready wakes its reader (the client, the upstream) once per write; a
    reader that sleeps is woken by an inter-processor interrupt, which under load cost more than the rest of
    a request's kernel work (perf: ~15 us per request with a new token each request, where the proxy was the
    bottleneck and its peers idled). Sent back to back after the pass, one wake-up serves the whole batch, as
    in HAProxy's poll-then-process loop. Order per transport is kept: every write to a client or an upstream
    connection goes through the batch, and a client is flushed before it is closed. A batch holding
    BATCH_FLUSH_BYTES is sent at once: large bodies reach the transports (and their flow control, which pauses
    the upstream of a slow client) as soon as before, so memory per pass stays bounded.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transports: list = []
        self.chunks: list = []
        self.scheduled = False
        self.pending = 0

    def add(self, transport: asyncio.Transport, data: bytes) -> None:
        transports = self.transports
        n = len(transports)
        self.pending += len(data)
        if n and transports[n - 1] is transport and len(self.chunks[n - 1]) + len(data) <= COALESCE_LIMIT:
            # Back-to-back writes to one peer (pipelined answers, head then body): one send.
            self.chunks[n - 1] = self.chunks[n - 1] + data
        else:
            transports.append(transport)
            self.chunks.append(data)
        if self.pending >= BATCH_FLUSH_BYTES:
            self.flush()
        elif not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._run)

    def _run(self) -> None:
        self.scheduled = False
        self.flush()

    def flush(self) -> None:
        """Send everything collected (at the end of the pass, or before a client connection closes)."""
        transports = self.transports
        if not transports:
            return
        chunks = self.chunks
        self.transports = []
        self.chunks = []
        self.pending = 0
        i: cython.Py_ssize_t
        for i in range(len(transports)):
            transport = transports[i]
            if not transport.is_closing():   # closed or aborted in the same pass: nothing to send to
                try:
                    transport.write(chunks[i])
                except Exception:   # one broken transport must not cost the others their writes
                    log.exception("write to a peer failed; closing that connection")
                    transport.abort()


@cython.cclass
class ServerContext:
    """What every connection of one bind shares: routes, limits, timeouts, hooks, live connections."""

    def __init__(self, router: Router, settings: ProxySettings, *, scheme: bytes = b"http",
                 on_request: Optional[Callable[..., None]] = None, stats: Optional[Stats] = None) -> None:
        self.scheme = scheme
        self.connections: set[ClientProtocol] = set()
        self.draining = False
        self.on_request = on_request   # access log hook: (exchange) -> None
        self.stats = stats             # metrics, counted here for every answered request
        self.loop = asyncio.get_event_loop()
        self.batch = WriteBatch(self.loop)
        self.now = self.loop.time()    # coarse clock for deadlines, advanced by the worker's ticker
        self.apply(router, settings)

    def apply(self, router: Router, settings: ProxySettings) -> None:
        """Install routes and limits (at start and on reload); connections pick them up per request."""
        self.router = router
        self.special_headers = BASE_SPECIAL_REQUEST_HEADERS | router.special_headers
        self.max_header_bytes = settings.max_header_bytes
        self.max_headers = settings.max_headers
        self.max_connections = settings.max_connections
        self.request_header_timeout = settings.request_header_timeout
        self.keepalive_timeout = settings.keepalive_timeout
        self.body_idle_timeout = settings.body_idle_timeout
        self.merge_slashes = settings.merge_slashes

    def expire(self, now: float) -> None:
        """Called a few times a second: fire the deadlines that passed (no timer objects per request)."""
        self.now = now
        for conn in [c for c in self.connections if 0.0 < c.deadline <= now]:
            conn.deadline = 0.0
            conn.on_deadline()


@cython.cclass
class ClientProtocol:

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.loop = ctx.loop
        self.transport: Optional[asyncio.Transport] = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer = b""
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
        self.paused = 0
        self.write_paused = False
        self.deadline = 0.0      # loop time when the current phase times out; 0 = none
        self.closing = False
        self.pending_error: Optional[H.ErrorResponse] = None
        self.requests = 0
        self.accepting = True    # False after a request that ends the connection: later ones are never run
        self.backlog = b""       # input not parsed yet because MAX_PIPELINED requests wait

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

    def pause_writing(self) -> None:
        self.write_paused = True
        ex = self.active
        if ex is not None and ex.conn is not None and ex.conn.transport is not None:
            ex.conn.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        ex = self.active
        if ex is not None and ex.conn is not None and ex.conn.transport is not None:
            ex.conn.transport.resume_reading()
        if not self.closing:
            self.resume_reading_for(PAUSE_WRITE)
            if self.active is None and self.queue:
                self.next_request()

    def pause_reading_for(self, reason) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused |= reason

    def resume_reading_for(self, reason) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and self.transport is not None and not self.closing:
                self.transport.resume_reading()

    # --- timers ------------------------------------------------------------------------------------------
    def _arm(self, delay: float) -> None:
        deadline = self.ctx.now + delay
        active = self.active
        if active is not None and 0.0 < active.request_deadline < deadline:
            deadline = active.request_deadline   # the route's whole-request timeout comes first
        self.deadline = deadline

    def _disarm(self) -> None:
        self.deadline = 0.0

    def on_deadline(self) -> None:
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
            if self.parsing is None and self.headers_done and \
                    (not self.accepting or len(self.queue) >= MAX_PIPELINED):
                # Between messages: no request may follow (the rest is dropped), or enough wait already.
                if self.accepting:
                    self.backlog = data
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
            if self.queue and len(data) > PIPELINE_SLICE:
                piece = data[:PIPELINE_SLICE]
                data = data[PIPELINE_SLICE:]
            else:
                piece = data
                data = b""
            if not self.feed(piece):
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
        except httptools.HttpParserUpgrade:
            # We strip Upgrade (hop-by-hop) and never switch protocols: finish this request, then close.
            parsing = self.parsing
            if parsing is not None:
                parsing.keep_alive = False
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

    def write(self, data: bytes) -> None:
        """Queue `data` for the client: sent when the event-loop pass ends, joined with the writes to this
        client just before it (a response's head and body go out in one send)."""
        if self.transport is not None:
            self.ctx.batch.add(self.transport, data)

    def close(self) -> None:
        self.closing = True
        self._disarm()
        if self.transport is not None:
            self.ctx.batch.flush()   # what this pass wrote to the client goes out before the close
            self.transport.close()

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
        if b"upgrade" in hdict and p.should_upgrade() and \
                (te is not None or hdict.get(b"content-length", b"0") != b"0"):
            # llhttp leaves an upgrade request's body to the new protocol and never parses it; agw does not
            # switch protocols, so the backend would get a head promising a body that never comes (the
            # h2c-upgrade smuggling shape). Refuse it rather than hang.
            raise _Refused(H.BAD_REQUEST)
        self.headers_done = True
        self.dispatch(Exchange(self, p.get_method(), self.url, self.headers, self.lines, hdict,
                               p.should_keep_alive(), version == "1.0"))

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
    def exchange_done(self, ex: "Exchange") -> None:
        if self.active is not ex:
            return
        self.active = None
        stats = self.ctx.stats
        if stats is not None:
            route = ex.route
            name = route.name if route is not None else ""
            stats.record(name, ex.status, _monotonic() - ex.start_time)
            verdicts = ex.verdicts
            if verdicts is not None:
                policies = route.policies
                for i in range(len(verdicts)):
                    verdict = verdicts[i]
                    stats.outcome(name, policies[i].kind, verdict.label, verdict.outcome)
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


@cython.cclass
class Exchange(ResponseSink):
    """One request and its response: routing, authentication, upstream relay, timeouts."""

    def __init__(self, proto: ClientProtocol, method: bytes, target: bytes, headers: list, lines: list,
                 hdict: dict, keep_alive: bool, http10: bool) -> None:
        self.proto = proto
        self.method = method
        self.target = target
        self.headers = headers
        self.lines = lines
        self.hdict = hdict
        self.keep_alive = keep_alive
        self.http10 = http10
        self.route: Optional[RouteRuntime] = None
        self.conn: Optional[UpstreamConnection] = None
        self.upstream: Optional[Target] = None
        self.body_buffer: Optional[list] = []
        self.body_buffered = 0
        te = hdict.get(b"transfer-encoding")
        # (find, not `in`: bytes.__contains__ first tries its argument as an int and pays for a TypeError)
        self.request_chunked = te is not None and te.lower().find(b"chunked") >= 0
        # A request without a body is complete once its head is: an early answer (401, 404) can then keep
        # the connection, since nothing of this request is left unread.
        self.request_done = not self.request_chunked and hdict.get(b"content-length", b"0") == b"0"
        self.response_started = False
        self.response_chunked = False
        self.response_close_delimited = False
        self.status = 0
        self.retried = False
        self.done = False
        self.verdicts: Optional[list] = None   # of the route's request policies, in order (agw/chain.py)
        self.next_policy = 0
        self.request_deadline = 0.0   # loop time the route's request timeout ends this exchange; 0 = none
        self.start_time = _monotonic()
        self.bytes_out = 0
        self.reason = ""
        self.head_only = method == b"HEAD"

    # --- request side ------------------------------------------------------------------------------------
    def start(self) -> None:
        proto = self.proto
        if proto.ctx.draining:
            self.keep_alive = False
        target = self.target
        if not target.startswith(b"/"):
            if target.startswith((b"http://", b"https://")):
                # absolute-form (RFC 9112 3.2.2): forwarded in origin-form. Its authority must be the Host the
                # backend gets, or agw would route on one host and forward another.
                rest = target.split(b"://", 1)[1]
                authority, _, path = rest.partition(b"/")
                host = self.hdict.get(b"host")
                if host is None or host.lower() != authority.lower():
                    self.respond_error(H.BAD_REQUEST)
                    return
                self.target = target = b"/" + path
            elif target == b"*" and self.method == b"OPTIONS":
                pass
            else:
                self.respond_error(H.BAD_REQUEST)
                return
        if target.find(b"%") >= 0 or target.find(b"/.") >= 0 or target.find(b"//") >= 0:
            # Routed on, and forwarded with, the normalized path: what matched is what the backend gets. (The
            # test covers the query too: a false positive only costs this branch.)
            path, sep, query = target.partition(b"?")
            normal = H.normalize_path(path, proto.ctx.merge_slashes)
            if normal is None:
                self.respond_error(H.BAD_REQUEST)
                return
            self.target = target = normal + sep + query
        host = self.hdict.get(b"host")
        if host is None:
            if not self.http10:
                self.respond_error(H.BAD_REQUEST)   # RFC 9112 3.2: Host is required in HTTP/1.1
                return
            host = b""
        if not _valid_host(host):
            self.respond_error(H.BAD_REQUEST)       # RFC 9112 3.2: an invalid Host is a 400
            return
        router = proto.ctx.router
        route = router.only       # one unconditional route: nothing to match
        if route is None:
            host = host.lower()
            if host.startswith(b"["):
                host = host.split(b"]", 1)[0] + b"]"
            else:
                host = host.split(b":", 1)[0]
            route = router.match(host, self.method, target.split(b"?", 1)[0], self.hdict)
            if route is None:
                self.reason = "no_route"
                self.respond_error(H.NOT_FOUND)
                return
        self.route = route
        if route.request_timeout > 0.0:
            # From the request head to the end of the response (agentgateway's requestTimeout, Gateway API's
            # timeouts.request), whatever phase it is in then: policies, connect, upload, response.
            self.request_deadline = proto.ctx.now + route.request_timeout
            proto.deadline = self.request_deadline
        if route.policies:
            self.run_policies()
        else:
            self.forward()

    def run_policies(self) -> None:
        """Pass the request through the route's policies from `next_policy` on, then forward it."""
        policies = self.route.policies
        while self.next_policy < len(policies):
            verdict = policies[self.next_policy].apply(self)
            self.next_policy += 1
            if type(verdict) is _COROUTINE:
                # The policy must wait (a key set being fetched): hold the request and its body meanwhile.
                self.proto.pause_reading_for(PAUSE_BUFFER)
                task = asyncio.ensure_future(verdict)
                task.add_done_callback(self._policy_done)
                return
            if not self.take_verdict(verdict):
                return
        self.forward()

    def _policy_done(self, task: "asyncio.Future") -> None:
        self.proto.resume_reading_for(PAUSE_BUFFER)
        if self.done:
            return
        try:
            verdict = task.result()
        except Exception:  # noqa: BLE001 - a policy must not take the connection down
            log.exception("request policy %s failed", self.route.policies[self.next_policy - 1].kind)
            self.reason = "policy_error"
            self.respond_error(H.INTERNAL_ERROR)
            return
        if self.take_verdict(verdict):
            self.run_policies()

    def take_verdict(self, verdict) -> bool:
        """Keep a verdict for the request's edits, logs and metrics; answer now if it refuses the request."""
        verdicts = self.verdicts
        if verdicts is None:
            self.verdicts = [verdict]
        else:
            verdicts.append(verdict)
        if verdict.allowed:
            return True
        self.reason = verdict.outcome
        self.respond_simple(verdict.status, verdict.body, verdict.answer_headers)
        return False

    def forward(self) -> None:
        route = self.route
        target = route.pool.pick()
        self.upstream = target
        conn = target.take_idle()
        if conn is not None:
            self.send_head(conn)
        else:
            task = asyncio.ensure_future(target.connect(self.proto.loop))
            task.add_done_callback(self._connected)

    def _connected(self, task: "asyncio.Future") -> None:
        if self.done:
            if not task.cancelled() and task.exception() is None:
                self.upstream.release(task.result())
            return
        exc = task.exception() if not task.cancelled() else asyncio.CancelledError()
        if exc is not None:
            self.proto.resume_reading_for(PAUSE_BUFFER)
            if isinstance(exc, asyncio.TimeoutError):
                self.reason = "upstream_connect_timeout"
                self.respond_error(H.CONNECT_TIMEOUT)
            else:
                self.reason = "upstream_connect_error"
                log.warning("upstream %s: %s", self.upstream.label, exc)
                self.respond_error(H.BAD_GATEWAY)
            return
        self.send_head(task.result())

    def build_head(self) -> bytes:
        """The request head for the upstream, written in one call. Headers that need no decision were
        collected ready to join (`lines`); only the few in `headers` are looked at here."""
        route = self.route
        hdict = self.hdict
        lines = self.lines
        skip = _HOP
        conn_tokens = hdict.get(b"connection")
        if conn_tokens is not None:
            named = H.connection_named(conn_tokens)
            if named:
                # Headers named in Connection are hop-by-hop too (RFC 9110 7.6.1), framing and Host excepted.
                skip = skip | named
                lines = H.drop_named_lines(lines, named)
        strip = route.strip_headers
        new_target = None
        new_cookie = None
        drop_header = None
        add_headers = ()
        verdicts = self.verdicts
        if verdicts is not None:
            if len(verdicts) == 1:
                verdict = verdicts[0]
                drop_header = verdict.drop_header
                new_target = verdict.new_target
                new_cookie = verdict.new_cookie
                add_headers = verdict.add_headers
            else:
                drops = set()
                add_headers = []
                for verdict in verdicts:
                    if verdict.drop_header is not None:
                        drops.add(verdict.drop_header)
                    if verdict.new_target is not None:
                        new_target = verdict.new_target
                    if verdict.new_cookie is not None:
                        new_cookie = verdict.new_cookie
                    add_headers += verdict.add_headers
                strip = strip | drops
        parts = [self.method, b" ", new_target or self.target, b" HTTP/1.1\r\n"]
        parts += lines
        for lname, name, value in self.headers:
            if lname in skip or lname in strip or lname == drop_header or lname[:6] == b"proxy-" \
                    or lname[:12] == b"x-forwarded-":
                continue
            if lname == b"cookie" and new_cookie is not None:
                if new_cookie:
                    parts += (b"cookie: ", new_cookie, _CRLF)
                new_cookie = None  # written once, for all Cookie lines
                continue
            parts += (name, _SEP, value, _CRLF)
        for name, value in add_headers:
            parts += (name, _SEP, value, _CRLF)
        peer = self.proto.peer
        xff = hdict.get(H.FORWARDED_FOR)
        parts += (b"x-forwarded-for: ", xff + b", " + peer if xff else peer,
                  b"\r\nx-forwarded-proto: ", self.proto.ctx.scheme, _CRLF)
        host = hdict.get(b"host")
        if host is not None:
            parts += (b"x-forwarded-host: ", host, _CRLF)
        else:
            parts += (b"host: ", self.upstream.label.encode(), _CRLF)
        if self.request_chunked:
            parts.append(b"transfer-encoding: chunked\r\n")
        parts.append(_CRLF)
        return b"".join(parts)

    def send_head(self, conn: UpstreamConnection) -> None:
        if conn.transport is None:
            # Lost between pool and use: get another.
            self.forward()
            return
        self.conn = conn
        conn.bind(self)
        proto = self.proto
        head = self.build_head()
        buf = self.body_buffer
        self.body_buffer = None
        if buf:
            head = head + b"".join(buf)
        if self.request_done and self.request_chunked:
            head += _CHUNK_END
        proto.ctx.batch.add(conn.transport, head)
        proto.resume_reading_for(PAUSE_BUFFER)
        if proto.write_paused:
            conn.transport.pause_reading()
        proto._arm(self.route.response_timeout if self.request_done else proto.ctx.body_idle_timeout)

    def on_request_body(self, body: bytes) -> None:
        if self.done:
            return   # answered early (401, 404, error): the rest of the body is discarded
        if self.request_chunked:
            body = b"%x\r\n%b\r\n" % (len(body), body)
        buf = self.body_buffer
        if buf is not None:
            buf.append(body)
            self.body_buffered += len(body)
            if self.body_buffered > BODY_BUFFER_LIMIT:
                self.proto.pause_reading_for(PAUSE_BUFFER)
        elif self.conn is not None and self.conn.transport is not None and not self.done:
            self.proto.ctx.batch.add(self.conn.transport, body)
            if not self.response_started:
                self.proto._arm(self.proto.ctx.body_idle_timeout)

    def on_request_complete(self) -> None:
        self.request_done = True
        if self.conn is not None and not self.response_started and not self.done:
            self.proto._arm(self.route.response_timeout)
        if self.request_chunked and self.body_buffer is None and self.conn is not None \
                and self.conn.transport is not None and not self.done:
            self.proto.ctx.batch.add(self.conn.transport, _CHUNK_END)

    # --- response side (the ResponseSink an UpstreamConnection reports to) --------------------------------
    def pause_client(self) -> None:
        self.proto.pause_reading_for(PAUSE_UPSTREAM)

    def resume_client(self) -> None:
        self.proto.resume_reading_for(PAUSE_UPSTREAM)

    def on_response_head(self, conn: UpstreamConnection, status, reason: bytes,
                         upstream_keep_alive) -> None:  # status: int, upstream_keep_alive: bool (C types)
        if 100 <= status < 200:
            if status != 101 and not self.http10:
                self.proto.write(b"HTTP/1.1 %d %b\r\n\r\n" % (status, reason))
            return
        self.status = status
        self.response_started = True
        has_length = conn.has_length
        chunked = False
        status_line = _STATUS_LINES.get((status, reason))
        if status_line is None:
            status_line = b"HTTP/1.1 %d %b\r\n" % (status, reason)
            if len(_STATUS_LINES) < 256:
                _STATUS_LINES[(status, reason)] = status_line
        parts = [status_line]
        lines = conn.lines
        for lname, value in conn.special:
            if lname == b"transfer-encoding":
                chunked = True
            elif lname == b"connection" and value.lower() not in _PLAIN_CONNECTION:
                named = H.connection_named(value)
                if named:
                    lines = H.drop_named_lines(lines, named)
        parts += lines
        append = parts.append
        if not upstream_keep_alive:
            conn.reusable = False
        no_body = self.head_only or status in (204, 304)
        if not no_body and not has_length:
            if not chunked:
                # No framing from the upstream: the body ends when it closes the connection.
                self.response_close_delimited = True
                conn.reusable = False
            if self.http10:
                self.keep_alive = False      # HTTP/1.0 has no chunking: we end the body by closing
            else:
                self.response_chunked = True
                append(b"transfer-encoding: chunked\r\n")
        if not self.keep_alive or self.proto.ctx.draining:
            self.keep_alive = False
            append(b"connection: close\r\n\r\n")
        elif self.http10:
            append(b"connection: keep-alive\r\n\r\n")
        else:
            append(b"\r\n")
        self.proto.write(b"".join(parts))
        self.proto._arm(self.proto.ctx.body_idle_timeout)
        if self.head_only and (has_length or chunked):
            # httptools would wait for a body the upstream will not send after HEAD: retire this connection.
            conn.reusable = False
            self.finish_response(conn)

    def on_response_body(self, body: bytes) -> None:
        if self.done:
            return
        proto = self.proto
        self.bytes_out += len(body)
        if self.response_chunked:
            proto.write(b"%x\r\n%b\r\n" % (len(body), body))
        else:
            proto.write(body)
        deadline = proto.ctx.now + proto.ctx.body_idle_timeout
        if 0.0 < self.request_deadline < deadline:
            deadline = self.request_deadline
        proto.deadline = deadline

    def on_response_complete(self, conn: UpstreamConnection) -> None:
        if self.done:
            return
        self.finish_response(conn)

    def finish_response(self, conn: UpstreamConnection) -> None:
        if self.response_chunked:
            self.proto.write(_CHUNK_END)
        self.done = True
        self.conn = None
        if not self.request_done:
            conn.reusable = False   # the upstream answered before the body was all sent
        if conn.exchange is self:
            self.upstream.release(conn)
        self.proto.exchange_done(self)

    def on_upstream_lost(self, conn: UpstreamConnection) -> None:
        if self.done:
            return
        self.conn = None
        if self.response_started:
            if self.response_close_delimited:
                self.finish_response(conn)
            else:
                # Mid-response: the client must see a cut connection, never a truncated "complete" answer.
                self.abort_client()
            return
        if not conn.got_bytes and not self.retried and self.body_buffered == 0 \
                and self.method in _IDEMPOTENT and not self.request_chunked and self.request_done:
            # A pooled connection the upstream had closed: retry once on a fresh one.
            self.retried = True
            self.body_buffer = []
            self.forward()
            return
        self.reason = "upstream_reset"
        self.respond_error(H.UPSTREAM_RESET)

    def on_upstream_protocol_error(self) -> None:
        if self.done:
            return
        conn = self.conn
        self.conn = None
        if conn is not None:
            conn.exchange = None
        if self.response_started:
            self.abort_client()
        else:
            self.reason = "upstream_bad_response"
            self.respond_error(H.BAD_GATEWAY_RESPONSE)

    def on_deadline(self) -> None:
        """The current phase took too long: waiting for the response head (504) or a stalled body, or the
        route's whole-request timeout ran out (504, or a cut if the response has begun)."""
        if self.done:
            return
        whole = 0.0 < self.request_deadline <= self.proto.ctx.now
        if not whole and self.conn is None and not self.response_started:
            return   # still connecting: the connect timeout covers this phase
        conn = self.conn
        if conn is not None:
            conn.exchange = None
            conn.abort()
        self.conn = None
        if self.response_started:
            self.reason = "request_timeout" if whole else "upstream_timeout"
            self.abort_client()
        elif whole:
            self.reason = "request_timeout"
            self.respond_error(H.REQUEST_TIMEOUT_504)
        else:
            self.reason = "upstream_timeout"
            self.respond_error(H.GATEWAY_TIMEOUT)

    def on_client_lost(self) -> None:
        if self.done:
            return
        self.done = True
        conn = self.conn
        self.conn = None
        if conn is not None:
            conn.exchange = None
            conn.abort()

    def abandon(self, error: H.ErrorResponse) -> None:
        """The client's request turned out malformed after it was started: never let the upstream see it
        complete; answer `error` and close, or cut the client if the response already began."""
        self.keep_alive = False
        conn = self.conn
        if self.response_started:
            self.conn = None
            if conn is not None:
                conn.exchange = None
                conn.abort()
            self.abort_client()
        else:
            self.respond_error(error)   # aborts the upstream connection; request_done is False: closes

    def abort_client(self) -> None:
        self.done = True
        self.keep_alive = False
        self.status = self.status or 502
        t = self.proto.transport
        if t is not None:
            t.abort()

    # --- answers agw writes itself -----------------------------------------------------------------------
    def respond_error(self, error: H.ErrorResponse) -> None:
        self.respond_simple(error.code, error.body, ())

    def respond_simple(self, code, body: bytes, extra: tuple) -> None:
        if self.done:
            return
        self.done = True
        conn = self.conn
        if conn is not None:
            self.conn = None
            conn.exchange = None
            conn.abort()
        self.status = code
        if not self.request_done:
            # The body was not read: we cannot find the next request on this connection.
            self.keep_alive = False
            self.proto.resume_reading_for(PAUSE_BUFFER)
        keep = self.keep_alive and not self.proto.ctx.draining
        self.keep_alive = keep
        self.bytes_out = len(body)
        self.proto.write(H.simple_response(code, body, keep_alive=keep, extra=extra, head_only=self.head_only))
        self.proto.exchange_done(self)
