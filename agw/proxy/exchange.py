"""One request and its answer: routing, the request-policy chain, the upstream relay, timeouts.

An `Exchange` sees its client only as a `ClientFlow` (writes, reading paused for reasons, one deadline) and its
upstream as an `UpstreamConnection` it is a `ResponseSink` of. It applies what the route's request policies
return (agw/chain.py) without knowing what they are.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
import types
from typing import Optional

try:
    import cython
except ImportError:  # running uncompiled without Cython installed
    from . import _cython_shim as cython  # type: ignore[no-redef]

from . import http as H
from .flow import PAUSE_BUFFER, PAUSE_UPSTREAM, ClientFlow
from .heads import relayed_lines, request_head, status_line
from .routing import RouteRuntime
from .tunnel import Tunnel
from .upstream import ResponseSink, Target, UpstreamConnection

# RFC 3986 host (reg-name, IPv4, or [IP-literal]) with an optional port; empty is allowed for HTTP/1.0.
_VALID_HOST = re.compile(rb"(?:[A-Za-z0-9._~!$&'()*+,;=%-]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?").fullmatch
try:
    from .headscan import path_needs_normalizing as _path_needs_normalizing
    from .headscan import valid_host as _valid_host
except ImportError:  # the C scanner is not built
    def _valid_host(host: bytes) -> bool:
        return _VALID_HOST(host) is not None

    def _path_needs_normalizing(target: bytes) -> bool:
        path = target.split(b"?", 1)[0]
        return b"%" in path or b"/." in path or b"//" in path

log = logging.getLogger("agw.proxy")

BODY_BUFFER_LIMIT = 256 * 1024
_CHUNK_END = b"0\r\n\r\n"
_IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"))
_COROUTINE = types.CoroutineType   # what a policy returns when it must wait (agw/chain.py)
_monotonic = time.monotonic    # one global lookup per call, not a global plus an attribute


@cython.cclass
class Exchange(ResponseSink):
    """One request and its response: routing, authentication, upstream relay, timeouts."""

    def __init__(self, proto: ClientFlow, method: bytes, target: bytes, headers: list, lines: list,
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
        self.start_time = _monotonic()
        self.bytes_out = 0
        self.reason = ""
        self.head_only = method == b"HEAD"
        self.upgrade = None   # the Upgrade value of an upgrade request (set by the client protocol)

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
        if _path_needs_normalizing(target):
            # Routed on, and forwarded with, the normalized path: what matched is what the backend gets.
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
        if self.upgrade is not None and not self.upgrade_allowed(route):
            return
        if route.request_timeout > 0.0:
            # From the request head to the end of the response (agentgateway's requestTimeout, Gateway API's
            # timeouts.request), whatever phase it is in then: policies, connect, upload, response.
            proto.request_deadline = proto.ctx.now + route.request_timeout
            proto.deadline = proto.request_deadline
        if route.policies:
            self.run_policies()
        else:
            self.forward()

    def upgrade_allowed(self, route: RouteRuntime) -> bool:
        """An upgrade request goes on (through the policies, like any request) only as an HTTP/1.1 GET for
        tokens the route lists, while the bind has room for another tunnel."""
        listed = True
        for token in self.upgrade.split(b","):
            if token.strip().lower() not in route.upgrades:
                listed = False
        if self.method != b"GET" or self.http10 or not listed:
            self.reason = "upgrade_refused"
            self.respond_error(H.BAD_REQUEST)
            return False
        ctx = self.proto.ctx
        if ctx.tunnels >= ctx.max_tunnels:
            self.reason = "too_many_tunnels"
            self.respond_error(H.TOO_MANY_TUNNELS)
            return False
        return True

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
        if verdict is None:
            return True        # the request was no concern of this policy
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
        proto = self.proto
        head = request_head(self.method, self.target, self.lines, self.headers, self.hdict, self.verdicts,
                            self.route.strip_headers, proto.peer, proto.ctx.scheme, self.upstream.label_bytes,
                            self.request_chunked)
        if self.upgrade is not None:
            # Upgrade and Connection are hop-by-hop: agw asks its backend for the switch itself.
            head = head[:-2] + b"connection: upgrade\r\nupgrade: " + self.upgrade + b"\r\n\r\n"
        return head

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
        proto.follow_client(conn.transport)
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
            if status == 101:
                if self.upgrade is not None:
                    self.relay_switch(conn, reason)
                return
            if not self.http10:
                self.proto.write(b"HTTP/1.1 %d %b\r\n\r\n" % (status, reason))
            return
        self.status = status
        self.response_started = True
        has_length = conn.has_length
        chunked = False
        special = conn.special
        for lname, value in special:
            if lname == b"transfer-encoding":
                chunked = True
        parts = [status_line(status, reason)]
        parts += relayed_lines(special, conn.lines) if special else conn.lines
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

    def relay_switch(self, conn: UpstreamConnection, reason: bytes) -> None:
        """The backend switches protocols: its 101 goes to the client (the tunnel starts once llhttp is done
        with the head, in on_upgraded)."""
        self.status = 101
        self.response_started = True
        upgrade = self.upgrade
        for lname, value in conn.special:
            if lname == b"upgrade":
                upgrade = value
        parts = [status_line(101, reason)]
        parts += relayed_lines(conn.special, conn.lines) if conn.special else conn.lines
        parts += (b"upgrade: ", upgrade, b"\r\nconnection: upgrade\r\n\r\n")
        self.proto.write(b"".join(parts))

    def on_upgraded(self, conn: UpstreamConnection, rest: bytes) -> None:
        """The 101 head is parsed; `rest` is what the backend sent after it: relay bytes both ways now."""
        if self.done or self.status != 101 or conn.transport is None or self.proto.transport is None:
            self.on_upstream_protocol_error()
            conn.close()
            return
        Tunnel(self.proto, self, conn, rest)

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
        if 0.0 < proto.request_deadline < deadline:
            deadline = proto.request_deadline
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
        whole = 0.0 < self.proto.request_deadline <= self.proto.ctx.now
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
