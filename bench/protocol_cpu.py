"""CPU cost of one proxied request in agw's protocol code alone (no sockets, no event-loop I/O).

Drives ClientProtocol and UpstreamConnection with in-memory transports, so the figure is the Python work per
request that the proxy adds on top of the kernel: `python bench/protocol_cpu.py [--jwt]`. Compare runs made
in the same session only.
"""
from __future__ import annotations

import argparse
import asyncio
import time

from agw.check import check
from agw.config.loader import LoadedConfig, decode_native
from agw.serve.app import Runtime
from agw.proxy.context import ServerContext
from agw.proxy.protocol import ClientProtocol
from agw.proxy.upstream import UpstreamConnection

REQUEST = (b"GET /headers HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n"
           b"%s\r\n")
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 29 Nov 2026 03:00:00 GMT\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Length: 98\r\nConnection: keep-alive\r\n\r\n"
            + b"x" * 98)


class FakeTransport:
    def __init__(self) -> None:
        self.out = []

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 5555) if name == "peername" else default

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200_000)
    ap.add_argument("--jwt-config", help="YAML route policies file with a jwtAuth (inline/file JWKS)")
    ap.add_argument("--token", default="", help="bearer token sent on every request")
    ap.add_argument("--with-metrics", action="store_true", help="count each request as a worker does")
    ap.add_argument("--tokens-file", help="a file of tokens, one per line: a different token each request")
    args = ap.parse_args()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    route = {"name": "r", "backends": [{"host": "127.0.0.1:9"}]}
    if args.jwt_config:
        import yaml
        route["policies"] = yaml.safe_load(open(args.jwt_config))
    cfg = decode_native({"binds": [{"port": 1, "listeners": [{"routes": [route]}]}]})
    runtime = Runtime(check(LoadedConfig(cfg)))
    if runtime.policies:
        loop.run_until_complete(runtime.start_policies())
    bind, router = runtime.routers[0]
    stats = None
    if args.with_metrics:
        from agw.proxy.metrics import Stats
        stats = Stats()
    ctx = ServerContext(router, runtime.settings, stats=stats)
    client = ClientProtocol(ctx)
    client.connection_made(FakeTransport())
    target = next(iter(runtime.pools.values())).targets[0]
    up = UpstreamConnection(target)
    up.connection_made(FakeTransport())
    target.idle.append(up)
    if args.tokens_file:
        with open(args.tokens_file, "rb") as f:
            tokens = [line.strip() for _, line in zip(range(args.n + 1000), f)]
        reqs = [REQUEST % (b"Authorization: Bearer " + t + b"\r\n") for t in tokens]
    else:
        extra = b"Authorization: Bearer " + args.token.encode() + b"\r\n" if args.token else b""
        reqs = [REQUEST % extra] * (args.n + 1000)
    batch = ctx.batch    # the writes of a pass are sent when it ends: here, after each exchange
    for req in reqs[:1000]:
        client.data_received(req)
        batch.flush()
        up.data_received(RESPONSE)
        batch.flush()
    t0 = time.process_time()   # CPU time: steadier than wall time on a shared machine
    for req in reqs[1000:]:
        client.data_received(req)
        batch.flush()
        up.data_received(RESPONSE)
        batch.flush()
    dt = time.process_time() - t0
    client.transport.out.clear()
    print(f"{dt / args.n * 1e6:.2f} us per proxied request (protocol code only, {args.n} requests)")


if __name__ == "__main__":
    main()
