"""Turn a loaded config into running servers: routes, pools and JWT policies built once, then served.

`Runtime` owns everything one config needs; `serve()` runs one worker process until SIGTERM/SIGINT, draining
requests in flight before it exits.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import time
from typing import Any, Callable, Optional

from ..check import Checked, load_checked
from ..config import ConfigError
from ..config.compile import compile_config
from ..config.model import JwtAuth
from ..config.validate import normalize_mode
from ..jwt.jwks import RemoteSource
from .accesslog import AccessLog
from .counters import RetiredCounters
from ..jwt.binding import CertificateBinding
from .tls import BindTls, TlsFront
from ..proxy.metrics import Stats, merge, render
from ..proxy.routing import Router, build_router
from ..proxy.context import ServerContext
from ..proxy.protocol import ClientProtocol
from ..proxy.upstream import BackendPool

log = logging.getLogger("agw")

TICK_SECONDS = 0.25


def _policy_lookup(checked: Checked, used: list) -> Callable[[JwtAuth, str], Any]:
    """The route table's policy factory: hands out the policies `agw check` built (never a second build);
    `used` collects those the routes use, once each (a listener-level policy is shared by its routes)."""
    seen: set[int] = set()

    def lookup(cfg: JwtAuth, route_name: str) -> Any:
        policy = checked.policies.get(id(cfg))
        if policy is None:   # check() refused this config: a Runtime is never built from it
            raise ConfigError([(f"route {route_name}", "jwtAuth was not built (the config was refused)")])
        if id(policy) not in seen:
            seen.add(id(policy))
            used.append(policy)
        return policy

    return lookup


def _authz_policy_factory() -> Callable[[Any, str], Any]:
    built: dict[int, Any] = {}

    def make(cfg: Any, route_name: str) -> Any:
        from ..authz import AuthorizationPolicy, CelError   # config -> authz -> serve, as for jwt

        # One policy (and verdict cache) per rule set: a listener's rules alone are shared by its routes.
        key = id(cfg)
        if key not in built:
            try:
                built[key] = (AuthorizationPolicy(cfg, name=route_name), cfg)
            except CelError as e:   # the load already refused it with its path; this is the safety net
                raise ConfigError([(f"route {route_name}: authorization", str(e))]) from None
        return built[key][0]

    return make


def _policy_factory(checked: Checked, built: list) -> Callable[[Any, str], tuple]:
    """Builds a route's request-policy chain (agw/chain.py) from its `policies`, in the order they apply, out
    of the policies `agw check` built (authorization rules, compiled at load, are built here). A jwtAuth that
    can refuse (strict, optional) is followed by the RFC 8705 certificate-binding check (agw/serve/tls.py): a
    token bound to a client certificate is refused without it."""
    make_jwt = _policy_lookup(checked, built)
    make_authz = _authz_policy_factory()
    binding = CertificateBinding()

    def make(policies: Any, route_name: str) -> tuple:
        chain = []
        if policies.mcp_authentication is not None:   # config.loader lifts it into jwtAuth; never ignore one
            raise ConfigError([(f"route {route_name}", "mcpAuthentication was not translated (load the config "
                                "with agw.config.loader.load)")])
        if policies.jwt_auth is not None:
            chain.append(make_jwt(policies.jwt_auth, route_name))
            if normalize_mode(policies.jwt_auth.mode) != "permissive":
                chain.append(binding)
        if policies.authorization is not None and policies.authorization.rules:
            chain.append(make_authz(policies.authorization, route_name))
        return tuple(chain)

    return make


class Runtime:
    """Routes, pools and policies of one checked config, ready to attach to listening sockets."""

    def __init__(self, checked: Checked) -> None:
        loaded = checked.loaded
        self.loaded = loaded
        self.plan = compile_config(loaded.config)
        self.settings = self.plan.settings
        self.pools: dict[str, BackendPool] = {}
        self.policies: list = []
        # TLS first: a certificate that cannot be served refuses the config (at start, or a reload) with its path.
        self.tls: dict[tuple[str, int], BindTls] = {}
        problems: list[tuple[str, str]] = []
        for bi, bind in enumerate(loaded.config.binds):
            if bind.tls is not None:
                try:
                    self.tls[(bind.address, bind.port)] = BindTls(bind.tls, loaded.base_dir, f"binds[{bi}].tls")
                except ConfigError as e:
                    problems.extend(e.problems)
        if problems:
            raise ConfigError(problems)
        self._fronts: Optional[dict[tuple[str, int], TlsFront]] = None
        factory = _policy_factory(checked, self.policies)
        self.routers: list[tuple[Any, Router]] = [
            (bind.bind, build_router(bind.routes, self.settings, factory, self.pools))
            for bind in self.plan.binds
        ]

    def tls_fronts(self) -> dict[tuple[str, int], TlsFront]:
        """The long-lived contexts of this config's TLS binds, made once (before `--workers` forks, so that
        every worker has the same session-ticket keys)."""
        if self._fronts is None:
            self._fronts = {key: TlsFront(tls) for key, tls in self.tls.items()}
        return self._fronts

    def adopt_fronts(self, fronts: dict[tuple[str, int], TlsFront]) -> dict[tuple[str, int], TlsFront]:
        """On a reload: this config's TLS binds keep the fronts they had (session-ticket keys, TLS 1.2 session
        cache) with this config's certificates installed; a new TLS bind gets a front of its own."""
        self._fronts = {}
        for key, tls in self.tls.items():
            front = fronts.get(key)
            if front is None:
                front = TlsFront(tls)
            else:
                front.install(tls)   # new handshakes get the new certificates; open connections go on
            self._fronts[key] = front
        return self._fronts

    def tls_files(self) -> list[str]:
        """Certificate, key and CA files: `--watch` reloads when one changes (a renewal)."""
        return [f for tls in self.tls.values() for f in tls.files()]

    def log_tls(self) -> None:
        for (address, port), tls in self.tls.items():
            tls.log_loaded(f"{address}:{port}")

    async def start_policies(self) -> None:
        for p in self.policies:
            await p.start()

    async def close_policies(self) -> None:
        for p in self.policies:
            await p.close()

    async def close(self) -> None:
        await self.close_policies()
        for pool in self.pools.values():
            pool.close_all()

    def describe(self) -> list[str]:
        """The start-up summary an operator reads first: each bind's routes and their policies, and each JWT
        provider's key source and key count."""
        lines = []
        for bp in self.plan.binds:
            b = bp.bind
            lines.append(f"bind {b.address}:{b.port}{' (TLS)' if b.tls is not None else ''}: "
                         f"{len(bp.routes)} route(s)")
            for r in bp.routes:
                pol = r.policies
                kinds = []
                if pol is not None and pol.jwt_auth is not None:
                    kinds.append(f"jwtAuth ({normalize_mode(pol.jwt_auth.mode) or pol.jwt_auth.mode})")
                    if pol.jwt_auth.resource_metadata is not None:
                        kinds.append("resourceMetadata")
                if pol is not None and pol.authorization is not None and pol.authorization.rules:
                    kinds.append(f"authorization ({len(pol.authorization.rules)} rule(s))")
                if pol is not None and pol.timeout is not None:
                    kinds.append("timeout")
                lines.append(f"  route {r.name}: {', '.join(kinds) or 'no policies'}")
        seen = set()
        for policy in self.policies:
            for p in policy.stats()["providers"]:
                line = f"jwt provider {p['issuer']}: {p['keys']} key(s) from {p['source']}"
                if p.get("jwks_uri"):
                    line += f" (jwks_uri {p['jwks_uri']})"
                if line not in seen:
                    seen.add(line)
                    lines.append(line)
        return lines

    def not_ready(self) -> list[str]:
        """One line per provider whose remote JWKS holds no keys (yet): the reason /readyz gives."""
        lines: list[str] = []
        for policy in self.policies:
            for provider in policy.stats()["providers"]:
                if provider.get("has_keys") is False:
                    line = (f"jwks: provider {provider['issuer']}: no keys from {provider['source']}"
                            f" ({provider.get('last_error') or 'first fetch in progress'})")
                    if line not in lines:
                        lines.append(line)
        return lines

    def remote_sources(self) -> list[RemoteSource]:
        return [p.source for policy in self.policies for p in policy.core.providers
                if isinstance(p.source, RemoteSource)]

    async def first_answers(self) -> None:
        """Wait until every remote JWKS has an answer, keys or a failure: at once for the URLs carried over
        from the config before (their keys came with them), one fetch for a new URL, bounded by its
        fetchTimeout (a source that failed goes live without keys and /readyz names it)."""
        waits = [asyncio.wait_for(asyncio.shield(s.fetch()), s.timeout + 1.0)
                 for s in self.remote_sources() if not s.answered()]
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)

    def retire_after(self) -> float:
        """How long a retired config's policies stay subscribed to their key sets: a request in flight on
        them may be waiting for a fetch, which takes at most its fetchTimeout."""
        return max([s.timeout for s in self.remote_sources()], default=0.0) + 1.0

    async def wait_keys(self, timeout: float) -> bool:
        """Wait (at most `timeout` seconds) until every remote JWKS holds keys; whether they all do."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for policy in self.policies:
            await policy.wait_ready(max(0.0, deadline - loop.time()))
        return all(p.ready() for p in self.policies)


def make_listen_socket(address: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((address, port))
    except OSError as e:
        sock.close()
        # "[Errno 98] Address already in use" names no address: this one does.
        raise OSError(e.errno, f"{address}:{port}: {(e.strerror or str(e)).lower()}") from None
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def tls_toggled(old: Runtime, new: Runtime) -> list[str]:
    """Reasons a reload cannot be applied in place: a bound port that would switch between TLS and plain HTTP
    (its listening server is made with or without TLS; it keeps its socket across reloads)."""
    out = []
    old_keys = {(b.address, b.port) for b in old.loaded.config.binds}
    for bi, bind in enumerate(new.loaded.config.binds):
        key = (bind.address, bind.port)
        if key in old_keys and (key in old.tls) != (key in new.tls):
            out.append(f"binds[{bi}].tls: {bind.address}:{bind.port} cannot switch between TLS and plain HTTP "
                       "on a reload (restart agw, or use another port)")
    return out


class ConfigSource:
    """Where the config came from, so SIGHUP / --watch can load it again."""

    def __init__(self, files: list[str], resolve: dict[str, str]) -> None:
        self.files = files
        self.resolve = resolve
        self.also: list[str] = []    # files the config names that --watch follows too (certificates, keys)
        self.mtimes = self._mtimes()

    def watch_files(self, paths: list[str]) -> None:
        """Follow these files too from now on (a certificate renewed in place triggers a reload)."""
        self.also = list(dict.fromkeys(paths))
        self.mtimes = self._mtimes()

    def _mtimes(self) -> dict[str, tuple]:
        out = {}
        for f in [*self.files, *self.also]:
            try:
                st = os.stat(f)   # follows symlinks: a `live/` link moved to a new `archive/` file counts
                out[f] = (st.st_mtime_ns, st.st_size, st.st_ino)
            except OSError:
                out[f] = ()
        return out

    def changed(self) -> bool:
        now = self._mtimes()
        if now != self.mtimes:
            self.mtimes = now
            return True
        return False

    def build(self) -> "Runtime":
        """Load, check (building every policy once) and build; raises ConfigError with the lines `agw check`
        prints."""
        runtime = Runtime(load_checked(self.files, resolve=self.resolve))
        self.watch_files(runtime.tls_files())
        return runtime


class Worker:
    """One process's servers for the current config; the config can be swapped without dropping connections."""

    def __init__(self, runtime: Runtime, *, reuse_port: bool, sockets: Optional[dict] = None,
                 access_log: Optional[AccessLog] = None) -> None:
        self.runtime = runtime
        self.reuse_port = reuse_port
        self.servers: dict[tuple[str, int], asyncio.AbstractServer] = {}
        self.contexts: dict[tuple[str, int], ServerContext] = {}
        self.fronts: dict[tuple[str, int], TlsFront] = {}   # per TLS bind, kept across reloads
        self.sockets = sockets if sockets is not None else {}
        self.draining = False
        self.stats = Stats()
        self.access_log = access_log
        self.retired = RetiredCounters()
        self._ticker: Optional[asyncio.TimerHandle] = None
        self._closing: dict[asyncio.Future, Runtime] = {}    # retired configs, closed once in-flight work is done

    def _tick(self) -> None:
        """Timeouts without per-request timers: deadlines are checked here, four times a second."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for ctx in self.contexts.values():
            ctx.expire(now)
        mono = time.monotonic()
        for pool in self.runtime.pools.values():
            pool.expire_idle(mono)
        if self.access_log is not None:
            self.access_log.flush()
        self._ticker = loop.call_later(TICK_SECONDS, self._tick)

    # --- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.fronts.update(self.runtime.tls_fronts())
        await self.runtime.start_policies()
        # Bound now (an address in use fails at once); traffic is taken once every remote JWKS holds keys, or
        # when the start-up grace is over (connections wait in the backlog meanwhile).
        for bind, _ in self.runtime.routers:
            key = (bind.address, bind.port)
            self.sockets[key] = self.sockets.get(key) or make_listen_socket(bind.address, bind.port, self.reuse_port)
        if not await self.runtime.wait_keys(self.runtime.settings.startup_grace):
            for line in self.runtime.not_ready():
                log.warning("taking traffic without keys, not ready until they load: %s", line,
                            extra={"event": "jwks_not_ready"})
        for bind, router in self.runtime.routers:
            await self._start_bind(bind, router)
        self._ticker = asyncio.get_running_loop().call_later(TICK_SECONDS, self._tick)

    async def _start_bind(self, bind: Any, router: Router) -> None:
        loop = asyncio.get_running_loop()
        key = (bind.address, bind.port)
        ssl_ctx = None
        tls = self.runtime.tls.get(key)
        if tls is not None:
            front = self.fronts.get(key)
            if front is None:
                front = self.fronts[key] = TlsFront(tls)
            ssl_ctx = front.context
        ctx = ServerContext(router, self.runtime.settings, scheme=b"https" if ssl_ctx else b"http",
                            on_request=self.access_log.record if self.access_log is not None else None,
                            stats=self.stats)
        sock = self.sockets.get(key) or make_listen_socket(bind.address, bind.port, self.reuse_port)
        self.sockets[key] = sock
        # A TLS handshake that never completes holds a socket like a slow request head does: same bound
        # (asyncio's default is 60 s, and the connection is not yet counted against maxConnections).
        handshake_timeout = ctx.request_header_timeout if ssl_ctx is not None else None
        self.servers[key] = await loop.create_server(lambda: ClientProtocol(ctx), sock=sock, ssl=ssl_ctx,
                                                     ssl_handshake_timeout=handshake_timeout, backlog=4096)
        self.contexts[key] = ctx
        log.info("listening on %s:%d%s", bind.address, bind.port, " (TLS)" if ssl_ctx else "")

    async def reload(self, runtime: Runtime) -> None:
        """Swap in a new config: same binds keep their sockets and connections; requests in flight finish
        on the routes and policies they started with. The new config takes traffic once each of its remote
        JWKS has keys (carried over) or an answer to its first fetch."""
        await runtime.start_policies()
        await runtime.first_answers()
        old = self.runtime
        self.runtime = runtime
        wanted = {(b.address, b.port): (b, r) for b, r in runtime.routers}
        self.fronts = dict(runtime.adopt_fronts(self.fronts))
        for key in list(self.servers):
            if key not in wanted:
                self.servers.pop(key).close()
                ctx = self.contexts.pop(key)
                ctx.draining = True
                for conn in list(ctx.connections):
                    conn.drain()
                sock = self.sockets.pop(key, None)
                if sock is not None:
                    sock.close()
        for key, (bind, router) in wanted.items():
            ctx = self.contexts.get(key)
            if ctx is None:
                await self._start_bind(bind, router)
            else:
                ctx.apply(router, runtime.settings)
        self.retired.retire(old)
        for pool in old.pools.values():
            pool.retire()
        task = asyncio.ensure_future(self._close_later(old, old.retire_after()))
        self._closing[task] = old
        task.add_done_callback(lambda t: self._closing.pop(t, None))

    async def _close_later(self, old: Runtime, delay: float) -> None:
        await asyncio.sleep(delay)
        await old.close_policies()
        # A forked worker starts with the supervisor's start-up objects frozen (see run_workers); the old
        # config's policies hold reference cycles, so they must be collectable again now that they are retired.
        gc.unfreeze()

    def not_ready(self) -> list[str]:
        """Why /readyz answers 503 (empty: ready)."""
        if self.draining:
            return ["draining"]
        if not self.servers:
            return ["starting: waiting for JWKS keys (startupGrace)"] + self.runtime.not_ready()
        return self.runtime.not_ready()

    def ready(self) -> bool:
        return not self.not_ready()

    def snapshot(self) -> dict:
        """This worker's counters and gauges; counters include what retired configs counted."""
        return self.retired.add_to(self.stats.snapshot(self.runtime))

    def metrics(self) -> tuple[bytes, bytes]:
        # merge() of one snapshot sums label sets that occur twice (a live and a retired pool, one backend)
        return render(merge([self.snapshot()]))

    def stats_json(self) -> bytes:
        import orjson
        snap = self.snapshot()
        snap["not_ready"] = self.not_ready()
        return orjson.dumps(snap)

    def connection_count(self) -> int:
        return sum(len(c.connections) for c in self.contexts.values())

    async def drain(self, timeout: float) -> None:
        """Stop accepting, let requests in flight finish (bounded by `timeout`), then close the rest."""
        self.draining = True
        for server in self.servers.values():
            server.close()
        for ctx in self.contexts.values():
            ctx.draining = True
            for conn in list(ctx.connections):
                conn.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connection_count() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for ctx in self.contexts.values():
            for conn in list(ctx.connections):
                if conn.transport is not None:
                    conn.transport.abort()
        if self._ticker is not None:
            self._ticker.cancel()
        if self.access_log is not None:
            self.access_log.flush()
        for task, old in list(self._closing.items()):
            task.cancel()
            await old.close_policies()
        await self.runtime.close()


def install_uvloop() -> None:
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio still works
        log.warning("uvloop not available; using the default event loop")


async def serve(runtime: Runtime, *, reuse_port: bool = False, drain_timeout: float = 15.0,
                admin: Optional[tuple[str, int]] = None, admin_unix: Optional[str] = None,
                source: Optional[ConfigSource] = None, watch: bool = False,
                access_log: Optional[AccessLog] = None, sockets: Optional[dict] = None,
                ready_event: Optional[Callable[[], None]] = None, describe: Optional[bool] = None) -> int:
    """Run one worker until SIGTERM/SIGINT (reloading on SIGHUP or a changed file); returns the exit code."""
    loop = asyncio.get_running_loop()
    worker = Worker(runtime, reuse_port=reuse_port, access_log=access_log, sockets=sockets)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloading: list[asyncio.Task] = []

    def reload() -> None:
        if source is not None and not reloading:
            task = asyncio.ensure_future(_reload(worker, source))
            reloading.append(task)
            task.add_done_callback(lambda t: reloading.clear())

    loop.add_signal_handler(signal.SIGHUP, reload)
    if source is not None:
        source.watch_files(runtime.tls_files())
    if not reuse_port:
        runtime.log_tls()
    admin_servers = []
    if admin is not None or admin_unix is not None:
        from .admin import AdminServer   # not loaded at all with --admin off
    if admin is not None:
        admin_servers.append(AdminServer(worker))
        await admin_servers[-1].start(*admin)
        if not reuse_port:
            log.info("admin listening on %s:%d (/healthz, /readyz, /metrics, /stats)", *admin)
    if admin_unix is not None:
        admin_servers.append(AdminServer(worker))
        await admin_servers[-1].start_unix(admin_unix)
    await worker.start()
    if describe if describe is not None else not reuse_port:   # with --workers, worker 0 says it
        for line in runtime.describe():
            log.info("%s", line)
    if ready_event is not None:
        ready_event()
    watcher = asyncio.ensure_future(_watch(source, reload)) if watch and source is not None else None
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    log.info("draining (up to %.0fs)", drain_timeout)
    await worker.drain(drain_timeout)
    for a in admin_servers:
        await a.close()
    return 0


def build_or_refuse(source: ConfigSource) -> Optional[Runtime]:
    """A reload's new runtime, or None after logging why it is refused (the old config keeps serving).
    One place for the worker and the supervisor, so both refuse with the same words."""
    try:
        return source.build()
    except ConfigError as e:
        reason = "; ".join(e.lines())
    except Exception as e:  # noqa: BLE001 - a reload must never take the proxy down
        reason = str(e) or repr(e)
    log.error("reload refused, still serving the previous config: %s", reason, extra={"event": "reload_refused"})
    return None


async def _reload(worker: Worker, source: ConfigSource) -> None:
    runtime = await asyncio.get_running_loop().run_in_executor(None, build_or_refuse, source)
    if runtime is None:
        return
    toggled = tls_toggled(worker.runtime, runtime)
    if toggled:
        log.error("reload refused, still serving the previous config: %s", "; ".join(toggled),
                  extra={"event": "reload_refused"})
        return
    if not worker.reuse_port:   # with --workers, the supervisor logs it once
        runtime.log_tls()
    await worker.reload(runtime)
    log.info("config reloaded from %s", ", ".join(source.files), extra={"event": "reloaded"})


async def _watch(source: ConfigSource, reload: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(1.0)
        if source.changed():
            reload()


def parse_admin(value: str) -> Optional[tuple[str, int]]:
    """The `--admin` value: `host:port`, `:port` (127.0.0.1), or `off`/`none` for no admin listener."""
    if value in ("off", "none", ""):
        return None
    return parse_address(value)


def parse_address(value: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return (host.strip("[]") or default_host), int(port)


__all__ = ["ConfigSource", "Runtime", "Worker", "build_or_refuse", "serve", "install_uvloop", "parse_address",
           "parse_admin"]
