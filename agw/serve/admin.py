"""The admin listener: /healthz (alive), /readyz (taking traffic, every remote JWKS holds keys, not
draining; a 503 names what is missing), /metrics.

Handlers may be plain functions or coroutines (the supervisor of several workers asks each worker over
a unix socket before it answers).
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Optional, Union

import httptools

from ..proxy.http import status_line

Answer = tuple[int, bytes, bytes]            # status, content-type, body
Handler = Callable[[bytes, bytes], Union[Answer, Awaitable[Answer]]]


class _AdminProtocol(asyncio.Protocol):
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Optional[asyncio.Transport] = None
        self.url = b""
        self.size = 0
        self.busy: Optional[asyncio.Future] = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.size += len(data)
        try:
            if self.size > 65536:
                raise httptools.HttpParserError("request too large")
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(status_line(400) + b"content-length: 0\r\nconnection: close\r\n\r\n")
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        path = self.url.split(b"?", 1)[0]
        keep = self.parser.should_keep_alive()
        self.url = b""
        self.size = 0
        answer = self.handler(method, path)
        if isinstance(answer, tuple):
            self._send(method, keep, answer)
        else:
            self.transport.pause_reading()
            task = asyncio.ensure_future(answer)
            task.add_done_callback(lambda t: self._done(t, method, keep))

    def _done(self, task: asyncio.Future, method: bytes, keep: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        try:
            answer = task.result()
        except Exception as e:  # noqa: BLE001
            answer = (500, b"text/plain", f"error: {e}\n".encode())
        self._send(method, keep, answer)
        self.transport.resume_reading()

    def _send(self, method: bytes, keep: bool, answer: Answer) -> None:
        status, ctype, body = answer
        head = (status_line(status) + b"content-type: %s\r\ncontent-length: %d\r\nconnection: %s\r\n\r\n"
                % (ctype, len(body), b"keep-alive" if keep else b"close"))
        self.transport.write(head + (b"" if method == b"HEAD" else body))
        if not keep:
            self.transport.close()

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.transport = None


def _readiness(reasons: list[str]) -> Answer:
    """200 `ready`, or 503 `not ready` followed by one line per reason (which providers have no keys)."""
    if not reasons:
        return 200, b"text/plain", b"ready\n"
    return 503, b"text/plain", ("not ready\n" + "".join(f"{r}\n" for r in reasons)).encode()


class AdminServer:
    """Routes admin paths to the object that knows: `not_ready()` (the reasons, empty when ready),
    `metrics()`, and optionally `stats_json()`."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.server: Optional[asyncio.AbstractServer] = None

    def handle(self, method: bytes, path: bytes) -> Union[Answer, Awaitable[Answer]]:
        if method not in (b"GET", b"HEAD"):
            return 405, b"text/plain", b"method not allowed\n"
        if path == b"/healthz":
            return 200, b"text/plain", b"ok\n"
        if path == b"/readyz":
            reasons = self.target.not_ready()
            if not isinstance(reasons, list):
                return self._await_ready(reasons)
            return _readiness(reasons)
        if path == b"/metrics":
            answer = self.target.metrics()
            if isinstance(answer, tuple):
                return (200, *answer)
            return self._await_metrics(answer)
        if path == b"/stats" and hasattr(self.target, "stats_json"):
            return 200, b"application/json", self.target.stats_json()
        return 404, b"text/plain", b"not found\n"

    async def _await_ready(self, reasons: Awaitable[list[str]]) -> Answer:
        return _readiness(await reasons)

    async def _await_metrics(self, metrics: Awaitable[tuple[bytes, bytes]]) -> Answer:
        ctype, body = await metrics
        return 200, ctype, body

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _AdminProtocol(self.handle), host, port,
                                               reuse_address=True)

    async def start_unix(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_unix_server(lambda: _AdminProtocol(self.handle), path)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
