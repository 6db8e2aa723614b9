"""A tiny HTTP/1.1 client over a raw socket, for tests that need exact control of the bytes on the wire
(pipelining, request smuggling, malformed requests, keep-alive reuse).

    with RawConnection(port) as conn:
        conn.send(b"GET /a HTTP/1.1\\r\\nHost: x\\r\\n\\r\\nGET /b HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
        first, second = conn.read_response(), conn.read_response()
        resp = conn.request("GET", "/headers", headers={"Authorization": "Bearer ..."})
        resp.status, resp.header("content-type"), resp.json()

Responses are framed as RFC 9112 says: no body for HEAD, 1xx, 204 and 304; chunked (trailers kept);
Content-Length; otherwise until the peer closes.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_LINE_BYTES = 1 << 20


class IncompleteResponse(Exception):
    """The connection ended (or timed out) in the middle of a response; `.data` holds what did arrive."""

    def __init__(self, message: str, data: bytes = b"") -> None:
        super().__init__(message)
        self.data = data


@dataclass
class RawResponse:
    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes = b""  # the exact bytes of this response (head and body)
    trailers: list[tuple[str, str]] = field(default_factory=list)
    chunked: bool = False

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header `name` (case-insensitive)."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return default

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def has_header(self, name: str) -> bool:
        return bool(self.header_values(name))

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def keep_alive(self) -> bool:
        """Whether the server lets the connection be reused after this response (HTTP/1.1 rules)."""
        tokens = {t.strip().lower() for v in self.header_values("connection") for t in v.split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


class _Reader:
    """Buffered reads from a socket (or from fixed bytes, when `sock` is None)."""

    def __init__(self, sock: socket.socket | None, initial: bytes = b"") -> None:
        self.sock = sock
        self.buffer = bytearray(initial)
        self.eof = sock is None
        self.consumed = bytearray()  # bytes of the response being read, for RawResponse.raw

    def _fill(self) -> bool:
        if self.eof:
            return False
        assert self.sock is not None
        try:
            data = self.sock.recv(65536)
        except socket.timeout as err:
            raise IncompleteResponse(f"timed out waiting for data: {err}", bytes(self.consumed)) from None
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def _take(self, size: int) -> bytes:
        chunk = bytes(self.buffer[:size])
        del self.buffer[:size]
        self.consumed += chunk
        return chunk

    def read_line(self) -> bytes:
        """One line without its CRLF (a bare LF is accepted, as lenient clients do)."""
        while True:
            index = self.buffer.find(b"\n")
            if index >= 0:
                return self._take(index + 1).rstrip(b"\r\n")
            if len(self.buffer) > MAX_LINE_BYTES:
                raise IncompleteResponse("line too long", bytes(self.consumed))
            if not self._fill():
                raise IncompleteResponse("connection closed in a line", bytes(self.consumed + self.buffer))

    def read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise IncompleteResponse(
                    f"connection closed after {len(self.buffer)} of {size} bytes", bytes(self.consumed + self.buffer)
                )
        return self._take(size)

    def read_to_eof(self) -> bytes:
        while self._fill():
            pass
        return self._take(len(self.buffer))

    def at_eof(self) -> bool:
        return not self.buffer and (self.eof or not self._fill())


def _parse_header_lines(reader: _Reader) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    while True:
        line = reader.read_line()
        if not line:
            return headers
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise ValueError(f"malformed header line {line!r}")
        headers.append((name.strip(), value.strip()))


def _read_one(reader: _Reader, method: str) -> RawResponse:
    reader.consumed = bytearray()
    status_line = reader.read_line()
    while not status_line:  # tolerate stray CRLF between responses
        status_line = reader.read_line()
    parts = status_line.decode("latin-1").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"malformed status line {status_line!r}")
    version, status, reason = parts[0], int(parts[1]), parts[2] if len(parts) > 2 else ""
    headers = _parse_header_lines(reader)
    response = RawResponse(status, reason, version, headers, b"")
    lower = {name.lower(): value for name, value in headers}
    transfer_encoding = lower.get("transfer-encoding", "").lower()
    if method.upper() == "HEAD" or 100 <= status < 200 or status in (204, 304):
        body = b""
    elif "chunked" in transfer_encoding:
        response.chunked = True
        pieces = []
        while True:
            size_line = reader.read_line().split(b";", 1)[0].strip()
            size = int(size_line, 16)
            if size == 0:
                response.trailers = _parse_header_lines(reader)
                break
            pieces.append(reader.read_exact(size))
            if reader.read_exact(2) != b"\r\n":
                raise ValueError("chunk not followed by CRLF")
        body = b"".join(pieces)
    elif "content-length" in lower:
        body = reader.read_exact(int(lower["content-length"]))
    else:
        body = reader.read_to_eof()
    response.body = body
    response.raw = bytes(reader.consumed)
    return response


def parse_response(data: bytes, method: str = "GET") -> RawResponse:
    """Parse one complete response from bytes."""
    return _read_one(_Reader(None, data), method)


def parse_responses(data: bytes, methods: Iterable[str] = ()) -> list[RawResponse]:
    """Parse every response in `data` (e.g. all that came back on a closed connection)."""
    reader = _Reader(None, data)
    method_list = list(methods)
    responses = []
    while not reader.at_eof():
        method = method_list[len(responses)] if len(responses) < len(method_list) else "GET"
        responses.append(_read_one(reader, method))
    return responses


class RawConnection:
    """One TCP connection to 127.0.0.1:port (or host:port) with exact control over what is sent."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = _Reader(self.sock)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_response(self, method: str = "GET", *, skip_informational: bool = True) -> RawResponse:
        """Read the next complete response; interim 1xx responses are skipped unless asked for."""
        while True:
            response = _read_one(self._reader, method)
            if not (skip_informational and 100 <= response.status < 200 and response.status != 101):
                return response

    def request(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        body: bytes | str = b"",
        *,
        host: str | None = None,
        version: str = "HTTP/1.1",
    ) -> RawResponse:
        """Send one well-formed request (Host and Content-Length added unless given) and read its response."""
        self.send(build_request(method, target, headers, body, host=host or f"{self.host}:{self.port}",
                                version=version))
        return self.read_response(method)

    def read_available(self, wait: float = 0.2) -> bytes:
        """Whatever arrives within `wait` seconds (for checking that nothing more was sent)."""
        data = bytes(self._reader.buffer)
        self._reader.buffer.clear()
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    self._reader.eof = True
                    break
                data += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        finally:
            self.sock.settimeout(self.timeout)
        return data

    def read_until_closed(self, timeout: float = 10.0) -> bytes:
        """Everything until the server closes the connection."""
        deadline = time.monotonic() + timeout
        data = bytes(self._reader.buffer)
        self._reader.buffer.clear()
        try:
            while time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    chunk = self.sock.recv(65536)
                except socket.timeout:
                    break
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    self._reader.eof = True
                    return data
                data += chunk
        finally:
            self.sock.settimeout(self.timeout)
        raise IncompleteResponse(f"connection still open after {timeout}s", data)

    def is_closed_by_peer(self, wait: float = 0.5) -> bool:
        """True when the server has closed the connection (EOF or reset) within `wait` seconds and sent
        nothing more."""
        if self._reader.buffer:
            return False
        if self._reader.eof:
            return True
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(1, socket.MSG_PEEK)
            return chunk == b""
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        finally:
            self.sock.settimeout(self.timeout)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def build_request(
    method: str,
    target: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    body: bytes | str = b"",
    *,
    host: str = "127.0.0.1",
    version: str = "HTTP/1.1",
) -> bytes:
    """The bytes of one request. Host is added when absent, and Content-Length when there is a body and no
    framing header was given."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    names = {name.lower() for name, _ in pairs}
    if "host" not in names:
        pairs.insert(0, ("Host", host))
    if body and "content-length" not in names and "transfer-encoding" not in names:
        pairs.append(("Content-Length", str(len(body))))
    head = f"{method} {target} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in pairs) + "\r\n"
    return head.encode("latin-1") + body


def chunked(*pieces: bytes, trailers: Iterable[tuple[str, str]] = ()) -> bytes:
    """A chunked body made of `pieces`, ending with the last-chunk and optional trailers."""
    out = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p)
    return out + b"0\r\n" + b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in trailers) + b"\r\n"
