"""HTTP/1.1 constants and the responses agw writes itself, built once at import (never per request)."""
from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus

# RFC 9110 section 7.6.1: connection-specific fields a proxy must not forward. "proxy-*" are handled by prefix.
HOP_BY_HOP = frozenset((
    b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade",
    b"proxy-connection", b"proxy-authenticate", b"proxy-authorization",
))

# Fields a peer may list in Connection (RFC 9110 7.6.1) that are still never dropped for it: without them the
# next hop would get a body with no length (the rest read as a new request) or a request with no Host.
CONNECTION_PROTECTED = frozenset((b"content-length", b"transfer-encoding", b"host"))
_CONNECTION_OPTIONS = frozenset((b"keep-alive", b"close"))


def connection_named(value: bytes) -> frozenset:
    """The fields a Connection header value names as hop-by-hop, less its options and the protected fields."""
    return frozenset(t.strip().lower() for t in value.split(b",")) - _CONNECTION_OPTIONS - CONNECTION_PROTECTED


def drop_named_lines(lines: list, named: frozenset) -> list:
    """`lines` (name, ": ", value, CRLF groups, ready to join) without the fields in `named`."""
    return [x for i in range(0, len(lines), 4) if lines[i].lower() not in named for x in lines[i:i + 4]]


_HEX = b"0123456789ABCDEFabcdef"
# RFC 3986 2.3: percent-encodings of these mean the character itself, and are decoded before matching.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def normalize_path(path: bytes, merge_slashes: bool) -> bytes | None:
    """The path a request is routed on and forwarded with (RFC 3986 6.2.2): percent-encoded unreserved
    characters decoded and other encodings upper-cased, runs of slashes merged (optional), then dot-segments
    removed (5.2.4). None for an invalid percent-encoding. Without this, `/%61dmin`, `/./admin`, `/x/../admin`
    or `//admin` would miss a route on `/admin` and reach one the backend resolves the same way."""
    if path.find(b"%") >= 0:
        out = bytearray()
        i, n = 0, len(path)
        while i < n:
            c = path[i]
            if c != 0x25:
                out.append(c)
                i += 1
                continue
            if i + 3 > n:
                return None
            hi, lo = path[i + 1], path[i + 2]
            if hi not in _HEX or lo not in _HEX:
                return None
            value = int(path[i + 1:i + 3], 16)
            if value in _UNRESERVED:
                out.append(value)
            else:
                out += b"%" + path[i + 1:i + 3].upper()
            i += 3
        path = bytes(out)
    if merge_slashes and path.find(b"//") >= 0:
        while path.find(b"//") >= 0:
            path = path.replace(b"//", b"/")
    if path.find(b"/.") < 0:
        return path
    segments = path.split(b"/")
    kept: list[bytes] = []
    for seg in segments[1:]:
        if seg == b".":
            continue
        if seg == b"..":
            if kept:
                kept.pop()
            continue
        kept.append(seg)
    if segments[-1] in (b".", b".."):
        kept.append(b"")   # "/a/." and "/a/b/.." name a directory: keep the trailing slash
    return b"/" + b"/".join(kept)


# Headers agw sets itself; client-sent copies are replaced (x-forwarded-for is appended to).
FORWARDED_HOST = b"x-forwarded-host"
FORWARDED_PROTO = b"x-forwarded-proto"
FORWARDED_FOR = b"x-forwarded-for"

STATUS_LINES: dict[int, bytes] = {
    s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode("ascii")) for s in HTTPStatus
}


def status_line(code: int, http10: bool = False) -> bytes:
    line = STATUS_LINES.get(code) or b"HTTP/1.1 %d Unknown\r\n" % code
    return b"HTTP/1.0" + line[8:] if http10 else line


_date_second = 0
_date_line = b""


def date_line() -> bytes:
    """`date: <IMF-fixdate>` (RFC 9110 6.6.1) for agw's own answers, formatted once a second."""
    global _date_second, _date_line
    now = int(time.time())
    if now != _date_second:
        _date_second = now
        _date_line = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
    return _date_line


def simple_response(code: int, body: bytes, *, keep_alive: bool,
                    extra: tuple[tuple[bytes, bytes], ...] = (), head_only: bool = False) -> bytes:
    """A complete response agw answers on its own (errors, 401s, 404): text/plain unless `extra` names its own
    content-type (a policy's JSON document)."""
    parts = [status_line(code), date_line(), b"content-length: %d\r\n" % len(body)]
    typed = False
    for name, value in extra:
        parts.append(name + b": " + value + b"\r\n")
        if name == b"content-type":
            typed = True
    if not typed:
        parts.append(b"content-type: text/plain\r\n")
    parts.append(b"connection: keep-alive\r\n\r\n" if keep_alive else b"connection: close\r\n\r\n")
    if not head_only:
        parts.append(body)
    return b"".join(parts)


class ErrorResponse:
    """An error agw answers itself: its code and body; `close` is the whole answer for when the connection
    closes after it (built when used: it carries the current Date)."""
    __slots__ = ("code", "body")

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.body = message.encode() + b"\n"

    @property
    def close(self) -> bytes:
        return simple_response(self.code, self.body, keep_alive=False)


BAD_REQUEST = ErrorResponse(400, "bad request")
NOT_FOUND = ErrorResponse(404, "route not found")
REQUEST_TIMEOUT = ErrorResponse(408, "request timeout")
HEADERS_TOO_LARGE = ErrorResponse(431, "request header fields too large")
INTERNAL_ERROR = ErrorResponse(500, "internal error")
BAD_GATEWAY = ErrorResponse(502, "upstream connect error")
BAD_GATEWAY_RESPONSE = ErrorResponse(502, "upstream sent an invalid response")
UPSTREAM_RESET = ErrorResponse(502, "upstream connection reset before response")
SERVICE_UNAVAILABLE = ErrorResponse(503, "server shutting down")
TOO_MANY_CONNECTIONS = ErrorResponse(503, "too many connections")
TOO_MANY_TUNNELS = ErrorResponse(503, "too many upgraded connections")
GATEWAY_TIMEOUT = ErrorResponse(504, "upstream request timeout")
CONNECT_TIMEOUT = ErrorResponse(504, "upstream connect timeout")
REQUEST_TIMEOUT_504 = ErrorResponse(504, "request timeout")
NOT_IMPLEMENTED = ErrorResponse(501, "not implemented")
VERSION_NOT_SUPPORTED = ErrorResponse(505, "http version not supported")
