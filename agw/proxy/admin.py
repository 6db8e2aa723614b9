"""The admin listener: /healthz (alive), /readyz (listeners bound, keys loaded, not draining), /metrics."""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Optional

import httptools

from .http import simple_response


class _AdminProtocol(asyncio.Protocol):
    def __init__(self, handler: Callable[[bytes, bytes], tuple[int, bytes, bytes]]) -> None:
        self.handler = handler
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Optional[asyncio.Transport] = None
        self.url = b""
        self.size = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.size += len(data)
        try:
            if self.size > 65536:
                raise httptools.HttpParserError("too large")
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(simple_response(400, b"bad request\n", keep_alive=False))
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        path = self.url.split(b"?", 1)[0]
        self.url = b""
        self.size = 0
        status, ctype, body = self.handler(method, path)
        keep = self.parser.should_keep_alive()
        head = (b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\nconnection: %s\r\n\r\n"
                % (status, {200: b"OK", 404: b"Not Found", 503: b"Service Unavailable",
                            405: b"Method Not Allowed"}.get(status, b"Status"),
                   ctype, len(body), b"keep-alive" if keep else b"close"))
        self.transport.write(head + (b"" if method == b"HEAD" else body))
        if not keep:
            self.transport.close()


class AdminServer:
    def __init__(self, worker: Any, metrics: Optional[Callable[[], tuple[bytes, bytes]]] = None) -> None:
        self.worker = worker
        self.metrics = metrics
        self.server: Optional[asyncio.AbstractServer] = None

    def handle(self, method: bytes, path: bytes) -> tuple[int, bytes, bytes]:
        if method not in (b"GET", b"HEAD"):
            return 405, b"text/plain", b"method not allowed\n"
        if path == b"/healthz":
            return 200, b"text/plain", b"ok\n"
        if path == b"/readyz":
            if self.worker.ready():
                return 200, b"text/plain", b"ready\n"
            return 503, b"text/plain", b"not ready\n"
        if path == b"/metrics" and self.metrics is not None:
            ctype, body = self.metrics()
            return 200, ctype, body
        return 404, b"text/plain", b"not found\n"

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _AdminProtocol(self.handle), host, port,
                                               reuse_address=True)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
