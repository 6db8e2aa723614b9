"""A backend that answers each request path with exact bytes, however malformed, and records what it got.

    backend = ScriptedBackend({"/204-chunked": b"HTTP/1.1 204 No Content\\r\\n..."}).start()
    ...; backend.received   # [(method, target, [(name, value), ...], body), ...] in arrival order

Paths not in the script get `200 ok` with a Content-Length. `interim` maps paths to bytes sent as soon as a
request head arrives, before its body is read (a `100 Continue`).
Runs as threads of the test process on 127.0.0.1, so a test can look at exactly what a proxy forwarded.
"""
from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Mapping

import httptools

Request = tuple[str, str, list, bytes]
DEFAULT_ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nok\n"


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        owner: ScriptedBackend = self.server.owner  # type: ignore[attr-defined]
        sock: socket.socket = self.request
        done: list[Request] = []
        current: dict = {}

        class Callbacks:
            def on_message_begin(self) -> None:
                current.update(url=b"", headers=[], body=b"")

            def on_url(self, url: bytes) -> None:
                current["url"] += url

            def on_header(self, name: bytes, value: bytes) -> None:
                current["headers"].append((name.decode("latin-1").lower(), value.decode("latin-1")))

            def on_headers_complete(self) -> None:
                target = current["url"].decode("latin-1")
                owner.heads.append(target)
                interim = owner.interim.get(target.split("?")[0])
                if interim is not None:
                    sock.sendall(interim)

            def on_body(self, body: bytes) -> None:
                current["body"] += body

            def on_message_complete(self) -> None:
                done.append((parser.get_method().decode(), current["url"].decode("latin-1"),
                             list(current["headers"]), current["body"]))

        parser = httptools.HttpRequestParser(Callbacks())
        sock.settimeout(30)
        with owner.lock:
            owner.connections += 1
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            try:
                parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                pass
            except httptools.HttpParserError:
                owner.parse_errors += 1
                return
            for request in done:
                owner.received.append(request)
                answer = owner.script.get(request[1].split("?")[0], owner.default)
                try:
                    sock.sendall(answer)
                except OSError:
                    return
            done.clear()


class ScriptedBackend:
    def __init__(self, script: Mapping[str, bytes] | None = None,
                 interim: Mapping[str, bytes] | None = None, default: bytes = DEFAULT_ANSWER) -> None:
        self.script: dict[str, bytes] = dict(script or {})
        self.interim: dict[str, bytes] = dict(interim or {})
        self.default = default
        self.received: list[Request] = []
        self.heads: list[str] = []
        self.parse_errors = 0
        self.connections = 0
        self.lock = threading.Lock()
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.owner = self  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "ScriptedBackend":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def targets(self) -> list[str]:
        return [r[1] for r in self.received]
