"""A small HTTP/1.1 server in a thread of the test process, whose behaviour the test switches at will: it
counts the requests it gets (a backend that must see none, a jku "trap" that must never be fetched) and can
play a failing identity provider (garbage, 5xx, huge body, slow, hanging, closing, down).

    stub = StubServer(body=b'{"keys": []}').start()
    stub.url("/jwks"); stub.mode = "slow"; stub.delay = 3.0; stub.stop(); stub.start()   # same port
    stub.count, stub.paths, stub.heads   # heads: each request's head as received (request line and fields)
"""
from __future__ import annotations

import asyncio
import socket
import threading
from typing import Optional

MODES = ("ok", "garbage", "error", "huge", "slow", "hang", "close")


class StubServer:
    def __init__(self, body: bytes = b"ok\n", content_type: bytes = b"application/json",
                 port: Optional[int] = None) -> None:
        self.body = body
        self.content_type = content_type
        self.mode = "ok"
        self.delay = 5.0            # "slow": seconds before the answer
        self.huge_size = 4 << 20    # "huge": body bytes
        self.paths: list[str] = []
        self.heads: list[bytes] = []
        self.port = port or 0
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server: Optional[asyncio.base_events.Server] = None
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    # -- control -----------------------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        with self._lock:
            return len(self.paths)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> StubServer:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", self.port))
                self.port = sock.getsockname()[1]
                self._server = loop.run_until_complete(asyncio.start_server(self._serve, sock=sock))
            except BaseException as err:  # reported to the starting thread
                errors.append(err)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"stub-{self.port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        """Close the listener and every open connection (the port then refuses connections)."""
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        async def shutdown() -> None:
            server.close()
            for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                task.cancel()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = self._server = self._thread = None

    # -- serving -----------------------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                request_line, _, rest = head.partition(b"\r\n")
                parts = request_line.split(b" ")
                path = parts[1].decode("latin-1") if len(parts) > 1 else "?"
                length = 0
                for line in rest.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip() or 0)
                if length:
                    await reader.readexactly(length)
                with self._lock:
                    self.paths.append(path)
                    self.heads.append(head)
                if not await self._answer(writer):
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter) -> bool:
        """Write one response for the current mode; False when the connection must end."""
        mode = self.mode
        if mode == "close":
            return False
        if mode == "hang":
            await asyncio.sleep(3600)
            return False
        if mode == "slow":
            await asyncio.sleep(self.delay)
        status, body = 200, self.body
        if mode == "garbage":
            body = b"<html><body>Service temporarily unavailable</body></html>"
        elif mode == "error":
            status, body = 503, b'{"error": "unavailable"}'
        head = b"HTTP/1.1 %d X\r\ncontent-type: %s\r\n" % (status, self.content_type)
        if mode == "huge":
            writer.write(head + b"content-length: %d\r\n\r\n" % self.huge_size)
            chunk = b'{"keys": [' + b" " * 65526
            sent = 0
            while sent < self.huge_size:
                piece = chunk[: self.huge_size - sent]
                writer.write(piece)
                sent += len(piece)
                await writer.drain()
            return True
        writer.write(head + b"content-length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        return True
