"""The heads agw writes on behalf of a peer: the request head for the upstream (with the request policies'
edits applied) and the status line and relayed fields of a response. Pure functions of what was parsed."""
from __future__ import annotations

try:
    import cython
except ImportError:  # running uncompiled without Cython installed
    from . import _cython_shim as cython  # type: ignore[no-redef]

from . import http as H

_HOP = H.HOP_BY_HOP
_SEP = b": "
_CRLF = b"\r\n"
_PLAIN_CONNECTION = frozenset((b"keep-alive", b"close"))
_STATUS_LINES: dict = {}   # (status, reason) -> the status line; bounded below


def request_head(method: bytes, target: bytes, lines: list, headers: list, hdict: dict, verdicts: object,
                 strip: frozenset, peer: bytes, scheme: bytes, fallback_host: bytes, chunked: cython.bint) -> bytes:
    """The request head for the upstream, written in one call. Headers that need no decision were collected
    ready to join (`lines`); only the few in `headers` are looked at here. `verdicts` (agw/chain.py) may drop a
    header, add some, and replace the target or the Cookie lines."""
    skip = _HOP
    conn_tokens = hdict.get(b"connection")
    if conn_tokens is not None:
        named = H.connection_named(conn_tokens)
        if named:
            # Headers named in Connection are hop-by-hop too (RFC 9110 7.6.1), framing and Host excepted.
            skip = skip | named
            lines = H.drop_named_lines(lines, named)
    new_target = None
    new_cookie = None
    drop_header = None
    add_headers: object = ()
    if verdicts is not None:
        if len(verdicts) == 1:
            verdict = verdicts[0]
            drop_header = verdict.drop_header
            new_target = verdict.new_target
            new_cookie = verdict.new_cookie
            add_headers = verdict.add_headers
        else:
            # Most verdicts edit nothing (an authorization allow): nothing is allocated for them.
            more_drops = None
            for verdict in verdicts:
                dropped = verdict.drop_header
                if dropped is not None:
                    if drop_header is None:
                        drop_header = dropped
                    elif dropped != drop_header:
                        more_drops = (more_drops or frozenset()) | {dropped}
                if verdict.new_target is not None:
                    new_target = verdict.new_target
                if verdict.new_cookie is not None:
                    new_cookie = verdict.new_cookie
                added = verdict.add_headers
                if added:
                    add_headers = added if not add_headers else list(add_headers) + list(added)
            if more_drops is not None:
                strip = strip | more_drops
    parts = [method, b" ", new_target or target, b" HTTP/1.1\r\n"]
    parts += lines
    cookie_written = False
    for lname, name, value in headers:
        if lname in skip or lname in strip or lname == drop_header or lname[:6] == b"proxy-" \
                or lname[:12] == b"x-forwarded-":
            continue
        if lname == b"cookie" and new_cookie is not None:
            # The new value replaces every Cookie line (a policy read them all, joined): written once.
            if new_cookie and not cookie_written:
                parts += (b"cookie: ", new_cookie, _CRLF)
            cookie_written = True
            continue
        parts += (name, _SEP, value, _CRLF)
    for name, value in add_headers:
        parts += (name, _SEP, value, _CRLF)
    xff = hdict.get(H.FORWARDED_FOR)
    parts += (b"x-forwarded-for: ", xff + b", " + peer if xff else peer,
              b"\r\nx-forwarded-proto: ", scheme, _CRLF)
    host = hdict.get(b"host")
    if host is not None:
        parts += (b"x-forwarded-host: ", host, _CRLF)
    else:
        parts += (b"host: ", fallback_host, _CRLF)
    if chunked:
        parts.append(b"transfer-encoding: chunked\r\n")
    parts.append(_CRLF)
    return b"".join(parts)


def status_line(status: cython.int, reason: bytes) -> bytes:
    line = _STATUS_LINES.get((status, reason))
    if line is None:
        line = b"HTTP/1.1 %d %b\r\n" % (status, reason)
        if len(_STATUS_LINES) < 256:
            _STATUS_LINES[(status, reason)] = line
    return line


def relayed_lines(special: list, lines: list) -> list:
    """A response's fields as relayed: those a Connection header names are dropped (framing excepted)."""
    for lname, value in special:
        if lname == b"connection" and value.lower() not in _PLAIN_CONNECTION:
            named = H.connection_named(value)
            if named:
                lines = H.drop_named_lines(lines, named)
    return lines
