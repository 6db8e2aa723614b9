"""The proxy a Python user would write without agw: aiohttp + PyJWT on uvloop, one process.

Verifies `Authorization: Bearer <jwt>` (RS256, ES256, EdDSA, PS256) against a JWKS or a PEM public key file with
PyJWT (signature, alg, iss, aud, exp), then forwards the request to the upstream over a pooled aiohttp
ClientSession and relays the answer. Missing or bad token: 401. Access logging is off, as for every peer.

    python bench/aiohttp_proxy.py --port 8081 --upstream 127.0.0.1:8080 --jwks jwks.json \
        --issuer https://bench.agw.test --audience bench
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any, Optional

import aiohttp
import jwt
import uvloop
from aiohttp import web

ALGORITHMS = ["RS256", "ES256", "EdDSA", "PS256"]
# Hop-by-hop headers (RFC 9110 7.6.1) and framing headers aiohttp computes itself.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
                        "upgrade", "content-length", "host"})


class KeyRing:
    """Public keys by kid (JWKS) or a single PEM key used for every kid."""

    def __init__(self, jwks_path: Optional[str], pem_path: Optional[str]) -> None:
        self.by_kid: dict[Optional[str], Any] = {}
        self.single: Any = None
        if jwks_path:
            with open(jwks_path) as f:
                for jwk in json.load(f)["keys"]:
                    self.by_kid[jwk.get("kid")] = jwt.PyJWK(jwk, jwk.get("alg") or _default_alg(jwk)).key
        if pem_path:
            with open(pem_path, "rb") as f:
                self.single = f.read()

    def key_for(self, token: str) -> Any:
        if self.single is not None:
            return self.single
        return self.by_kid[jwt.get_unverified_header(token).get("kid")]


def _default_alg(jwk: dict) -> str:
    return {"RSA": "RS256", "EC": "ES256", "OKP": "EdDSA"}[jwk["kty"]]


def make_app(upstream: str, keys: Optional[KeyRing], issuer: str, audience: str) -> web.Application:
    base = f"http://{upstream}"
    session: Optional[aiohttp.ClientSession] = None

    async def on_startup(_app: web.Application) -> None:
        nonlocal session
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=128, keepalive_timeout=60),
            auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding"))

    async def on_cleanup(_app: web.Application) -> None:
        if session is not None:
            await session.close()

    def unauthorized(reason: str) -> web.Response:
        return web.Response(status=401, text=f"authentication failure: {reason}",
                            headers={"WWW-Authenticate": 'Bearer realm="bench"'})

    async def handle(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        if keys is not None:
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer "):
                return unauthorized("no bearer token found")
            token = auth[7:]
            try:
                jwt.decode(token, keys.key_for(token), algorithms=ALGORITHMS, issuer=issuer, audience=audience,
                           options={"require": ["exp", "iss", "aud"]})
            except (jwt.PyJWTError, KeyError, ValueError) as err:
                return unauthorized(type(err).__name__)
            headers.pop("Authorization", None)
        body = await request.read() if request.body_exists else None
        async with session.request(request.method, base + request.path_qs, headers=headers, data=body,
                                   allow_redirects=False) as upstream_response:
            payload = await upstream_response.read()
            out_headers = {k: v for k, v in upstream_response.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=upstream_response.status, body=payload, headers=out_headers)

    app = web.Application()
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def serve(args: argparse.Namespace) -> None:
    keys = None if args.no_verify else KeyRing(args.jwks, args.pem)
    app = make_app(args.upstream, keys, args.issuer, args.audience)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, backlog=1024)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"aiohttp proxy on {args.host}:{args.port} -> {args.upstream} "
          f"({'no verification' if keys is None else 'PyJWT ' + jwt.__version__})", flush=True)
    await stop.wait()
    await runner.cleanup()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="aiohttp + PyJWT reverse proxy (benchmark peer)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="HOST:PORT")
    parser.add_argument("--jwks", help="JWKS file (keys chosen by kid)")
    parser.add_argument("--pem", help="PEM public key used for every token")
    parser.add_argument("--issuer", default="https://bench.agw.test")
    parser.add_argument("--audience", default="bench")
    parser.add_argument("--no-verify", action="store_true", help="plain proxy: forward without a token check")
    args = parser.parse_args(argv)
    if not args.no_verify and not (args.jwks or args.pem):
        parser.error("--jwks or --pem is required unless --no-verify")
    uvloop.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
