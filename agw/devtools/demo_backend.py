"""A built-in httpbin-like backend for the demo (`agw run` with no config).

It answers the way httpbin does for the endpoints the JWT guide uses, so the guide's output looks the same:
`GET /headers` returns `{"headers": {...}}` with header names title-cased and duplicate headers joined
with ",", pretty-printed with sorted keys.

    GET /            a short text
    GET /headers     the request headers
    GET /get         args, headers, origin, url
    ANY /anything    method, args, headers, data, json, origin, url (also /anything/<path>)
    ANY /status/N    an empty response with status N
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from typing import Any

from agw.devtools._http import HttpServer, Request, Response

MAX_REQUEST_BODY_BYTES = 1024 * 1024
# Headers httpbin hides unless ?show_env is given (they describe its hosting, not the client's request).
HIDDEN_ENV_HEADERS = frozenset(
    name.lower()
    for name in (
        "X-Varnish", "X-Request-Start", "X-Heroku-Queue-Depth", "X-Real-Ip", "X-Forwarded-Proto",
        "X-Forwarded-Protocol", "X-Forwarded-Ssl", "X-Heroku-Queue-Wait-Time", "X-Forwarded-For",
        "X-Heroku-Dynos-In-Use", "X-Forwarded-Port", "X-Request-Id", "Via", "Total-Route-Time", "Connect-Time",
    )
)  # fmt: skip
_CORS_HEADERS = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Credentials", "true")]
_JSON = "application/json"


def title_case(name: str) -> str:
    """`x-user-id` -> `X-User-Id`, as httpbin (through WSGI) shows header names."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def httpbin_headers(request: Request) -> dict[str, str]:
    show_env = any(key == "show_env" for key, _ in request.query_pairs())
    merged: dict[str, str] = {}
    for name, value in request.headers:
        key = title_case(name)
        if not show_env and key.lower() in HIDDEN_ENV_HEADERS:
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    return merged


def _args(request: Request) -> dict[str, Any]:
    # Like httpbin's semiflatten: a single value stays a string, repeated keys become a list.
    collected: dict[str, list[str]] = {}
    for key, value in request.query_pairs():
        collected.setdefault(key, []).append(value)
    return {key: values[0] if len(values) == 1 else values for key, values in collected.items()}


def _origin(request: Request) -> str:
    forwarded = request.header("x-forwarded-for")
    if forwarded:
        return forwarded
    return request.client[0] if request.client else ""


def _url(request: Request) -> str:
    host = request.header("host") or f"{request.host_port[0]}:{request.host_port[1]}"
    return f"http://{host}{request.target}"


def _pretty(document: Any, status: int = 200) -> Response:
    body = (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    return Response(status, body, _JSON, list(_CORS_HEADERS))


def _anything(request: Request) -> Response:
    text = request.body.decode("utf-8", errors="replace")
    try:
        parsed_json = json.loads(text) if text else None
    except ValueError:
        parsed_json = None
    return _pretty(
        {
            "args": _args(request),
            "data": text,
            "headers": httpbin_headers(request),
            "json": parsed_json,
            "method": request.method,
            "origin": _origin(request),
            "url": _url(request),
        }
    )


def handle(request: Request) -> Response:
    path = request.path
    if path == "/":
        return Response(200, b"agw demo backend: try GET /headers\n", headers=list(_CORS_HEADERS))
    if path == "/anything" or path.startswith("/anything/"):
        return _anything(request)
    if path.startswith("/status/"):
        code_text = path[len("/status/") :]
        if not code_text.isdigit() or not 100 <= int(code_text) <= 599:
            return Response(400, b"Invalid status code\n")
        code = int(code_text)
        if code < 200:
            # An interim status alone is not a complete response; httpbin cannot send one either.
            return Response(400, b"Informational status codes cannot be the final response\n")
        return Response(code, b"", "text/html; charset=utf-8", list(_CORS_HEADERS))
    if request.method not in ("GET", "HEAD"):
        return Response(405, b"Method Not Allowed\n", headers=[("Allow", "GET, HEAD")])
    if path == "/headers":
        return _pretty({"headers": httpbin_headers(request)})
    if path == "/get":
        return _pretty(
            {"args": _args(request), "headers": httpbin_headers(request), "origin": _origin(request),
             "url": _url(request)}
        )
    return Response(404, b"Not Found\n")


class DemoBackend:
    """The demo backend on host:port (port 0 picks a free one; `port` tells which after start)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8082) -> None:
        self._server = HttpServer(handle, host, port, max_body_bytes=MAX_REQUEST_BODY_BYTES)

    @property
    def host(self) -> str:
        return self._server.host

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        await self._server.start()

    async def close(self) -> None:
        await self._server.close()


async def _serve_until_signalled(backend: DemoBackend) -> None:
    await backend.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"demo backend listening on {backend.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await backend.close()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m agw.devtools.demo_backend [--host H] [--port N]`: serve until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m agw.devtools.demo_backend", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    args = parser.parse_args(argv)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    try:
        asyncio.run(_serve_until_signalled(DemoBackend(args.host, args.port)))
    except OSError as err:
        print(f"demo backend: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
