"""Structured logs: one JSON line per request (access log) and JSON lines for everything else.

The access line never carries the token, the query string (a token may travel there) or any header value;
it carries the route, the status, each request policy's outcome and the `sub`/`iss` of a valid token. Lines are
buffered and flushed by the worker's ticker, so logging costs no syscall per request.
"""
from __future__ import annotations

import datetime
import logging
import sys
import time
from typing import IO, Any, Optional

import orjson


def open_sink(target: str) -> Optional[IO[bytes]]:
    """`off` -> None, `-` -> stdout, anything else -> that file (appended)."""
    if target in ("off", "none", ""):
        return None
    if target == "-":
        return sys.stdout.buffer
    return open(target, "ab", buffering=0)


class AccessLog:
    __slots__ = ("sink", "buf", "limit")

    def __init__(self, sink: IO[bytes], limit: int = 256 * 1024) -> None:
        self.sink = sink
        self.buf: list[bytes] = []
        self.limit = limit

    def record(self, ex: Any) -> None:
        route = ex.route
        entry = {
            "time": _iso_now() if _TEXT_TIMES else time.time(),
            "method": ex.method.decode("latin-1"),
            "path": ex.target.split(b"?", 1)[0].decode("latin-1"),
            "status": ex.status,
            "duration_ms": round((time.monotonic() - ex.start_time) * 1000, 3),
            "bytes": ex.bytes_out,
            "route": route.name if route is not None else None,
            "client": ex.proto.peer.decode(),
        }
        verdicts = ex.verdicts
        if verdicts is not None:
            # One field per policy the request passed (e.g. "jwt": "ok" / "no_token" / a reason), with what
            # the policy itself logs of its verdict (a verified token's sub and iss).
            for verdict in verdicts:
                entry[verdict.kind] = verdict.outcome
                for key, value in verdict.log_fields:
                    entry[key] = value
        if ex.reason and (verdicts is None or verdicts[-1].allowed):
            entry["error"] = ex.reason   # not a policy's refusal: no route, an upstream failure, ...
        self.buf.append(orjson.dumps(entry) + b"\n")
        if len(self.buf) > 512:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            data = b"".join(self.buf)
            self.buf.clear()
            try:
                self.sink.write(data)
                self.sink.flush()
            except (OSError, ValueError):
                pass


class JsonFormatter(logging.Formatter):
    """Every other log line (errors, JWKS events, reloads) as JSON on the same stream."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": record.created, "level": record.levelname.lower(), "logger": record.name,
                 "msg": record.getMessage()}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        for key in ("event", "provider", "url", "reason"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        return orjson.dumps(entry).decode()


class TextFormatter(logging.Formatter):
    """`--log-format text`: ISO 8601 times (UTC, milliseconds)."""

    def formatTime(self, record: logging.LogRecord, datefmt: Optional[str] = None) -> str:  # noqa: N802
        return _iso(record.created)


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def _iso_now() -> str:
    return _iso(time.time())


# With --log-format text, the access log's times are ISO 8601 too (set by setup_logging; workers inherit it).
_TEXT_TIMES = False


def setup_logging(level: str, fmt: str = "json", stream: Optional[IO[str]] = None) -> None:
    global _TEXT_TIMES
    _TEXT_TIMES = fmt != "json"
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
