"""A test backend with exact control over the bytes it answers, run as a real process:
`python backend_app.py PORT`.

Endpoints (query parameters in brackets):
  /headers               JSON {"method", "target", "headers": [[name, value], ...], "conn": id}
  /sha256                reads the whole request body, answers {"sha256", "length", "chunked"}
  /stream[size, chunked] sends `size` bytes of a fixed pseudo-random stream (Content-Length or chunked)
  /slow[delay]           waits `delay` seconds, then answers 200
  /close-mid             promises 1000 bytes, sends 10, closes
  /close-delimited       no Content-Length, body ends with the connection
  /status/<code>         answers that status
"""
from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import sys
from urllib.parse import parse_qs, urlsplit

import httptools

_conn_ids = itertools.count(1)


def pattern(size: int) -> bytes:
    """Deterministic bytes both the backend and the tests can generate."""
    block = hashlib.sha256(b"agw").digest() * 2048  # 64 KiB
    reps, rest = divmod(size, len(block))
    return block * reps + block[:rest]


class Handler(asyncio.Protocol):
    def __init__(self) -> None:
        self.conn_id = next(_conn_ids)
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.task = asyncio.ensure_future(self.serve())

    def connection_lost(self, exc) -> None:
        if self.task:
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self) -> None:
        self.req = {"url": b"", "headers": [], "body": hashlib.sha256(), "length": 0}

    def on_url(self, url: bytes) -> None:
        self.req["url"] += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.req["headers"].append([name.decode("latin-1"), value.decode("latin-1")])

    def on_headers_complete(self) -> None:
        self.req["method"] = self.parser.get_method().decode()
        self.req["keep_alive"] = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.req["body"].update(body)
        self.req["length"] += len(body)

    def on_message_complete(self) -> None:
        self.queue.put_nowait(self.req)

    def send(self, status: int, body: bytes, ctype: bytes = b"application/json", extra: bytes = b"") -> None:
        self.transport.write(b"HTTP/1.1 %d X\r\ncontent-type: %s\r\ncontent-length: %d\r\n%b\r\n%b"
                             % (status, ctype, len(body), extra, body))

    async def serve(self) -> None:
        while True:
            req = await self.queue.get()
            url = urlsplit(req["url"].decode("latin-1"))
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            path = url.path
            if path.endswith("/headers"):
                self.send(200, json.dumps({"method": req["method"], "target": req["url"].decode("latin-1"),
                                           "headers": req["headers"], "conn": self.conn_id}).encode())
            elif path == "/sha256":
                chunked = any(n.lower() == "transfer-encoding" for n, _ in req["headers"])
                self.send(200, json.dumps({"sha256": req["body"].hexdigest(), "length": req["length"],
                                           "chunked": chunked}).encode())
            elif path == "/stream":
                size = int(q.get("size", "0"))
                data = pattern(size)
                if q.get("chunked") == "1":
                    self.transport.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                    for i in range(0, len(data), 65536):
                        piece = data[i:i + 65536]
                        self.transport.write(b"%x\r\n%b\r\n" % (len(piece), piece))
                        await asyncio.sleep(0)
                    self.transport.write(b"0\r\n\r\n")
                else:
                    self.send(200, data, b"application/octet-stream")
            elif path == "/slow":
                await asyncio.sleep(float(q.get("delay", "5")))
                self.send(200, b"slow\n", b"text/plain")
            elif path == "/close-mid":
                self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789")
                await asyncio.sleep(0.05)
                self.transport.close()
                return
            elif path == "/close-delimited":
                self.transport.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
                self.transport.close()
                return
            elif path.startswith("/status/"):
                self.send(int(path.rsplit("/", 1)[1]), b"", b"text/plain")
            else:
                self.send(200, b"backend\n", b"text/plain")
            if not req["keep_alive"]:
                self.transport.close()
                return


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Handler, "127.0.0.1", port)
    print(f"listening on {port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
