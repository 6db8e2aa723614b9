"""A small HTTP/1.1 server for the development tools (dev IdP, demo backend).

It is not the proxy's server: it serves a handful of quick, synchronous handlers with keep-alive, answers
pipelined requests in order (each handler runs to completion before the next request is read), and bounds
every request: head size, body size, and idle time.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Callable
from urllib.parse import parse_qsl, urlsplit

import httptools

log = logging.getLogger("agw.devtools")

MAX_HEAD_BYTES = 32 * 1024
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
IDLE_TIMEOUT_SECONDS = 30.0

_STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode("latin-1") for status in HTTPStatus
}


def status_line(code: int) -> bytes:
    line = _STATUS_LINES.get(code)
    if line is None:
        line = f"HTTP/1.1 {code} Unknown\r\n".encode("latin-1")
    return line


@dataclass
class Request:
    method: str
    target: str  # the raw request target, e.g. "/get?a=1"
    headers: list[tuple[str, str]]  # in arrival order, names as sent
    body: bytes
    client: tuple[str, int] | None
    host_port: tuple[str, int] = ("127.0.0.1", 0)  # the server's own address, for building URLs
    path: str = field(init=False)
    query: str = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.target)
        self.path = parts.path or "/"
        self.query = parts.query

    def header(self, name: str, default: str | None = None) -> str | None:
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return default

    def query_pairs(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query, keep_blank_values=True)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str | None = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def encode(self, *, head_only: bool, keep_alive: bool) -> bytes:
        lines = [status_line(self.status)]
        if self.content_type is not None:
            lines.append(f"Content-Type: {self.content_type}\r\n".encode("latin-1"))
        for name, value in self.headers:
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        # 1xx, 204 and 304 carry no body and no Content-Length.
        if self.status >= 200 and self.status not in (204, 304):
            lines.append(b"Content-Length: %d\r\n" % len(self.body))
        if not keep_alive:
            lines.append(b"Connection: close\r\n")
        lines.append(b"\r\n")
        if not head_only and self.status not in (204, 304):
            lines.append(self.body)
        return b"".join(lines)


Handler = Callable[[Request], Response]


class _ClientError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _HttpProtocol(asyncio.Protocol):
    def __init__(
        self,
        handler: Handler,
        max_body_bytes: int,
        server_address: tuple[str, int],
        connections: set[_HttpProtocol],
    ) -> None:
        self._handler = handler
        self._connections = connections
        self._max_body_bytes = max_body_bytes
        self._server_address = server_address
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._client: tuple[str, int] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._reset_message()

    # --- connection events -------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport's interface without subclassing it.
        self._transport = transport  # type: ignore[assignment]
        self._connections.add(self)
        peer = transport.get_extra_info("peername")
        self._client = (peer[0], peer[1]) if isinstance(peer, tuple) else None
        self._arm_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._cancel_idle_timer()
        self._transport = None

    # A client that pipelines requests but never reads the answers must not grow our write buffer forever:
    # stop reading while the transport's buffer is above its high-water mark.
    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self._arm_idle_timer()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "upgrades are not supported")
        except httptools.HttpParserError as err:
            # httptools wraps exceptions raised in callbacks; ours carry the status to answer with.
            cause = err.__context__ if isinstance(err.__context__, _ClientError) else None
            if cause is not None:
                self._fail(cause.status, str(cause))
            else:
                self._fail(400, f"malformed request: {err}")
        except _ClientError as err:
            self._fail(err.status, str(err))

    # --- parser events -----------------------------------------------------------------------------------
    def _reset_message(self) -> None:
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._head_bytes = 0
        self._body_parts: list[bytes] = []
        self._body_bytes = 0

    def on_message_begin(self) -> None:
        self._reset_message()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value))
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        for name, value in self._headers:
            if name.lower() == "content-length" and value.strip().isdigit():
                if int(value) > self._max_body_bytes:
                    raise _ClientError(413, "request body too large")
            if name.lower() == "expect" and value.lower() == "100-continue" and self._transport is not None:
                self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self._max_body_bytes:
            raise _ClientError(413, "request body too large")
        self._body_parts.append(body)

    def on_message_complete(self) -> None:
        method = self._parser.get_method().decode("latin-1")
        request = Request(
            method=method,
            target=self._url.decode("latin-1"),
            headers=self._headers,
            body=b"".join(self._body_parts),
            client=self._client,
            host_port=self._server_address,
        )
        keep_alive = self._parser.should_keep_alive()
        try:
            response = self._handler(request)
        except Exception:  # a handler bug must not kill the server; answer 500 and log it
            log.exception("handler failed for %s %s", method, request.target)
            response = Response(500, b"internal error\n")
        if self._transport is not None:
            self._transport.write(response.encode(head_only=method == "HEAD", keep_alive=keep_alive))
            if not keep_alive:
                self._close()

    # --- helpers -----------------------------------------------------------------------------------------
    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _ClientError(431, "request head too large")

    def _fail(self, status: int, message: str) -> None:
        if self._transport is not None and not self._transport.is_closing():
            response = Response(status, (message + "\n").encode())
            self._transport.write(response.encode(head_only=False, keep_alive=False))
        self._close()

    def close(self) -> None:
        self._close()

    def _close(self) -> None:
        self._cancel_idle_timer()
        if self._transport is not None:
            self._transport.close()

    def _arm_idle_timer(self) -> None:
        self._cancel_idle_timer()
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_later(IDLE_TIMEOUT_SECONDS, self._close)

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None


class HttpServer:
    """Serves `handler` on host:port (port 0 picks a free port; `port` tells the bound one after start)."""

    def __init__(
        self, handler: Handler, host: str, port: int, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    ) -> None:
        self.host = host
        self.port = port
        self._handler = handler
        self._max_body_bytes = max_body_bytes
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[_HttpProtocol] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _HttpProtocol(self._handler, self._max_body_bytes, (self.host, self.port), self._connections),
            self.host,
            self.port,
            reuse_address=True,
        )
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self._connections):
                connection.close()
            try:
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            except asyncio.TimeoutError:
                pass
            self._server = None
