"""Turn a loaded config into running servers: routes, pools and JWT policies built once, then served.

`Runtime` owns everything one config needs; `serve()` runs one worker process until SIGTERM/SIGINT, draining
requests in flight before it exits.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
import time
from typing import Any, Callable, Optional

from ..config import ConfigError, LoadedConfig
from ..config.durations import parse_duration
from ..config.model import JwtAuth
from .routing import Router, build_router
from .server import ClientProtocol, ServerContext
from .upstream import BackendPool

log = logging.getLogger("agw")

TICK_SECONDS = 0.25


def _jwt_policy_factory(base_dir: str, policies: list) -> Callable[[JwtAuth, str], Any]:
    built: dict[int, Any] = {}

    def make(cfg: JwtAuth, route_name: str) -> Any:
        from ..jwt import JwtPolicy   # config -> jwt -> proxy: the proxy only calls the policy's API

        # One policy object per config object: a listener-level policy is shared by its routes.
        key = id(cfg)
        if key not in built:
            try:
                built[key] = JwtPolicy(cfg, base_dir, name=route_name)
            except ConfigError as e:
                raise ConfigError([(f"route {route_name}: jwtAuth.{p}" if p else f"route {route_name}", r)
                                   for p, r in e.problems]) from None
            policies.append(built[key])
        return built[key]

    return make


class Runtime:
    """Routes, pools and policies of one config, ready to attach to listening sockets."""

    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self.settings = loaded.config.config
        self.pools: dict[str, BackendPool] = {}
        self.policies: list = []
        factory = _jwt_policy_factory(loaded.base_dir, self.policies)
        self.routers: list[tuple[Any, Router]] = [
            (bind, build_router(bind.listeners, self.settings, factory, self.pools))
            for bind in loaded.config.binds
        ]

    async def start_policies(self) -> None:
        for p in self.policies:
            await p.start()

    async def close(self) -> None:
        for p in self.policies:
            await p.close()
        for pool in self.pools.values():
            pool.close_all()

    def ready(self) -> bool:
        return all(p.ready() for p in self.policies)


def make_listen_socket(address: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((address, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class Worker:
    """One process's servers for the current config."""

    def __init__(self, runtime: Runtime, *, reuse_port: bool, on_request: Optional[Callable] = None,
                 sockets: Optional[dict] = None) -> None:
        self.runtime = runtime
        self.reuse_port = reuse_port
        self.on_request = on_request
        self.servers: list[asyncio.AbstractServer] = []
        self.contexts: list[ServerContext] = []
        self.sockets = sockets or {}
        self.draining = False
        self._ticker: Optional[asyncio.TimerHandle] = None

    def _tick(self) -> None:
        """Timeouts without per-request timers: deadlines are checked here, four times a second."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for ctx in self.contexts:
            ctx.expire(now)
        mono = time.monotonic()
        for pool in self.runtime.pools.values():
            pool.expire_idle(mono)
        self._ticker = loop.call_later(TICK_SECONDS, self._tick)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await self.runtime.start_policies()
        for bind, router in self.runtime.routers:
            ssl_ctx = None
            if bind.tls is not None:
                import os
                base = self.runtime.loaded.base_dir
                ssl_ctx = tls_context(os.path.join(base, bind.tls.cert), os.path.join(base, bind.tls.key))
            ctx = ServerContext(router, self.runtime.settings, scheme=b"https" if ssl_ctx else b"http",
                                on_request=self.on_request)
            key = (bind.address, bind.port)
            sock = self.sockets.get(key) or make_listen_socket(bind.address, bind.port, self.reuse_port)
            self.sockets[key] = sock
            server = await loop.create_server(lambda ctx=ctx: ClientProtocol(ctx), sock=sock, ssl=ssl_ctx,
                                              backlog=4096)
            self.servers.append(server)
            self.contexts.append(ctx)
        self._ticker = loop.call_later(TICK_SECONDS, self._tick)

    def ready(self) -> bool:
        return bool(self.servers) and not self.draining and self.runtime.ready()

    def connection_count(self) -> int:
        return sum(len(c.connections) for c in self.contexts)

    async def drain(self, timeout: float) -> None:
        """Stop accepting, let requests in flight finish (bounded by `timeout`), then close the rest."""
        self.draining = True
        for server in self.servers:
            server.close()
        for ctx in self.contexts:
            ctx.draining = True
            for conn in list(ctx.connections):
                conn.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connection_count() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for ctx in self.contexts:
            for conn in list(ctx.connections):
                if conn.transport is not None:
                    conn.transport.abort()
        if self._ticker is not None:
            self._ticker.cancel()
        await self.runtime.close()


def install_uvloop() -> None:
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio still works
        log.warning("uvloop not available; using the default event loop")


async def serve(runtime: Runtime, *, reuse_port: bool = False, drain_timeout: float = 15.0,
                admin: Optional[tuple[str, int]] = None, ready_event: Optional[Callable[[], None]] = None) -> int:
    """Run one worker until SIGTERM/SIGINT; returns the exit code."""
    from .admin import AdminServer

    loop = asyncio.get_running_loop()
    worker = Worker(runtime, reuse_port=reuse_port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    admin_server = None
    if admin is not None:
        admin_server = AdminServer(worker)
        await admin_server.start(*admin)
    await worker.start()
    for bind, _ in runtime.routers:
        log.info("listening on %s:%d", bind.address, bind.port)
    if ready_event is not None:
        ready_event()
    await stop.wait()
    log.info("draining (up to %.0fs)", drain_timeout)
    await worker.drain(drain_timeout)
    if admin_server is not None:
        await admin_server.close()
    return 0


def parse_address(value: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return (host.strip("[]") or default_host), int(port)


__all__ = ["Runtime", "Worker", "serve", "install_uvloop", "parse_address", "parse_duration"]
