"""`agw run` with no config: a demo that needs nothing else.

One process runs the proxy on :8080 with a strict JWT policy, an httpbin-like backend behind it, and the
development identity provider on :8081 (Keycloak's paths, a key generated at start). It prints the curl
commands of the guide's "Verify JWT authentication" steps, which work as written against it.
"""
from __future__ import annotations

import argparse
import asyncio
import sys

from ..check import check
from ..config.loader import LoadedConfig, decode_native
from ..serve.accesslog import AccessLog, open_sink
from ..serve.app import Runtime, install_uvloop, parse_admin, serve
from .demo_backend import DemoBackend
from .dev_idp import DEVELOPMENT_ONLY_BANNER, DevIdp

PROXY_PORT = 8080
IDP_PORT = 8081


def demo_config(idp: DevIdp, backend_port: int, host: str) -> dict:
    return {
        "binds": [{
            "port": PROXY_PORT,
            "address": host,
            "listeners": [{
                "name": "demo",
                "routes": [{
                    "name": "httpbin",
                    "backends": [{"host": f"127.0.0.1:{backend_port}"}],
                    "policies": {"jwtAuth": {
                        "mode": "strict",
                        "issuer": idp.issuer,
                        "audiences": ["my-application"],
                        "jwks": {"url": idp.jwks_url, "cacheDuration": "5m"},
                    }},
                }],
            }],
        }],
    }


def guide_steps(idp_port: int = IDP_PORT, proxy_port: int = PROXY_PORT) -> str:
    return f"""
agw demo is running: proxy on :{proxy_port} (JWT required), identity provider on :{idp_port}.

Verify JWT authentication:

  # 1. Without a token the request is refused (401):
  curl -i localhost:{proxy_port}/headers -H "host: www.example.com"

  # 2. Get a token from the identity provider (Keycloak's password grant, user1/password):
  export TOKEN=$(curl -s -X POST "http://localhost:{idp_port}/realms/master/protocol/openid-connect/token" \\
    -d grant_type=password -d client_id=my-application -d username=user1 -d password=password \\
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

  # 3. With the token the request reaches the backend (200); the backend never sees the token:
  curl -i localhost:{proxy_port}/headers -H "host: www.example.com" -H "Authorization: Bearer $TOKEN"

Stop with Ctrl-C.
"""


async def _demo(args: argparse.Namespace, host: str) -> int:
    idp = DevIdp(host=host, port=IDP_PORT)
    backend = DemoBackend(port=0)
    await idp.start()
    await backend.start()
    try:
        loaded = LoadedConfig(decode_native(demo_config(idp, backend.port, host)))
        runtime = Runtime(check(loaded))
        sink = open_sink(getattr(args, "access_log", "-"))
        admin = parse_admin(getattr(args, "admin", "off"))

        def announce() -> None:
            print(DEVELOPMENT_ONLY_BANNER, file=sys.stderr)
            print(guide_steps(), flush=True)

        return await serve(runtime, drain_timeout=getattr(args, "drain_timeout", 15.0), admin=admin,
                           access_log=AccessLog(sink) if sink is not None else None, ready_event=announce)
    finally:
        await backend.close()
        await idp.close()


def run_demo(args: argparse.Namespace, host: str = "127.0.0.1") -> int:
    install_uvloop()
    try:
        return asyncio.run(_demo(args, host))
    except OSError as e:
        print(f"agw: cannot start the demo: {e}", file=sys.stderr)
        return 1
