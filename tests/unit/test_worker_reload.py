"""Worker.reload in process: a new JWKS URL is fetched before the new config takes traffic (bounded by its
fetchTimeout), a URL both configs name is carried over with its keys, and the retired config's policies stay
subscribed to their key sets until requests in flight on them are done."""
from __future__ import annotations

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from vectors import mint  # noqa: E402
from test_jwt_jwks_fetch import KEY_A, JwksServer  # noqa: E402

from agw.check import check  # noqa: E402
from agw.config.loader import LoadedConfig, decode_native  # noqa: E402
from agw.serve.app import Runtime, Worker  # noqa: E402
from tests.support.ports import free_port  # noqa: E402


def runtime(port: int, url: str, fetch_timeout: str = "2s") -> Runtime:
    cfg = decode_native({"binds": [{"port": port, "address": "127.0.0.1", "listeners": [{"routes": [
        {"name": "r", "backends": [{"host": "127.0.0.1:9"}],
         "policies": {"jwtAuth": {"issuer": mint.ISSUER,
                                  "jwks": {"url": url, "fetchTimeout": fetch_timeout}}}}]}]}],
        "config": {"startupGrace": "5s"}})
    checked = check(LoadedConfig(cfg))
    assert checked.ok, checked.lines
    return Runtime(checked)


def jwt_of(rt: Runtime):
    [(_, router)] = rt.routers
    policy = router.routes[0].policies[0]   # jwtAuth (then the RFC 8705 certificate-binding check)
    return policy


def test_reload_fetches_a_new_url_first_and_carries_an_old_one_over():
    async def main():
        port = free_port()
        async with JwksServer() as old_idp, JwksServer() as new_idp:
            old_idp.body = new_idp.body = mint.jwks(KEY_A).encode()
            worker = Worker(runtime(port, old_idp.url), reuse_port=False)
            await worker.start()
            assert worker.ready() and old_idp.requests == 1
            first = worker.runtime

            new_idp.delay = 0.3
            await worker.reload(runtime(port, new_idp.url))
            # the new URL was fetched before the swap: its keys are there when traffic arrives
            assert jwt_of(worker.runtime).ready() and new_idp.requests == 1 and worker.ready()
            # the retired policy is still subscribed (a request in flight on it may wait for a fetch) ...
            assert jwt_of(first).core.providers[0].source.feed is not None

            await worker.reload(runtime(port, new_idp.url))
            assert new_idp.requests == 1          # carried over: no fetch, keys at once
            assert jwt_of(worker.runtime).ready()

            await new_idp.stop()                   # a new URL whose IdP is down: bounded by its fetchTimeout
            dead = f"http://127.0.0.1:{free_port()}/jwks"
            loop = asyncio.get_running_loop()
            started = loop.time()
            await worker.reload(runtime(port, dead, fetch_timeout="1s"))
            assert loop.time() - started < 2.5
            assert worker.not_ready() and dead in worker.not_ready()[0]
            await worker.drain(1)
            # ... and closed at the latest when the worker drains
            assert jwt_of(first).core.providers[0].source.feed is None
    asyncio.run(asyncio.wait_for(main(), 30))
