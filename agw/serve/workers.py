"""`--workers N`: a supervisor process and N forked workers, each with its own SO_REUSEPORT sockets.

The supervisor binds every worker's sockets before forking (so an address in use is reported once, before
anything runs), forwards SIGTERM/SIGINT, checks a new config itself before passing SIGHUP on (a bad one is
refused once, with its reason), restarts a worker that dies unexpectedly, and serves the admin listener:
/readyz and /metrics ask every worker over its private unix socket and answer for all of them.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from typing import Awaitable, Optional

import orjson

from .accesslog import AccessLog, open_sink
from .admin import AdminServer   # loaded before the fork: every worker serves its admin socket with it
from .app import ConfigSource, Runtime, build_or_refuse, install_uvloop, make_listen_socket, serve, tls_toggled
from ..proxy.metrics import merge, render

log = logging.getLogger("agw.workers")


class Supervisor:
    def __init__(self, runtime: Runtime, n: int, *, source: Optional[ConfigSource], watch: bool,
                 drain_timeout: float, access_log: str) -> None:
        self.runtime = runtime
        self.n = n
        self.source = source
        self.watch = watch
        self.drain_timeout = drain_timeout
        self.access_log = access_log
        self.dir = tempfile.mkdtemp(prefix="agw-workers-")
        self.pids: dict[int, int] = {}
        self.stopping = False
        self.sockets = [
            {(b.address, b.port): make_listen_socket(b.address, b.port, True) for b in runtime.loaded.config.binds}
            for _ in range(n)
        ]
        # Made here, before the fork: every worker inherits the same contexts, so the same session-ticket keys
        # (a client resumes on any worker). Kept for the supervisor's life; a restarted worker inherits them too.
        runtime.tls_fronts()
        runtime.log_tls()
        if source is not None:
            source.watch_files(runtime.tls_files())

    def worker_socket(self, i: int) -> str:
        return os.path.join(self.dir, f"worker-{i}.sock")

    # --- children ----------------------------------------------------------------------------------------
    def spawn(self, i: int) -> None:
        path = self.worker_socket(i)
        if os.path.exists(path):
            os.unlink(path)
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                for j, socks in enumerate(self.sockets):
                    if j != i:
                        for s in socks.values():
                            s.close()
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                install_uvloop()
                code = asyncio.run(self._worker_main(i))
            except BaseException:  # noqa: BLE001
                log.exception("worker %d failed", i)
            finally:
                os._exit(code)
        self.pids[pid] = i

    async def _worker_main(self, i: int) -> int:
        sink = open_sink(self.access_log)
        return await serve(self.runtime, reuse_port=True, drain_timeout=self.drain_timeout,
                           admin_unix=self.worker_socket(i), source=self.source, watch=False,
                           access_log=AccessLog(sink) if sink is not None else None,
                           sockets=dict(self.sockets[i]), describe=i == 0)

    # --- admin: answers for all workers ------------------------------------------------------------------
    async def _ask(self, i: int) -> Optional[dict]:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(self.worker_socket(i)), 2)
        except (OSError, asyncio.TimeoutError):
            return None
        try:
            writer.write(b"GET /stats HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), 5)
        except (OSError, asyncio.TimeoutError):
            return None
        finally:
            writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            return None
        return orjson.loads(body)

    async def _all_stats(self) -> list[Optional[dict]]:
        return list(await asyncio.gather(*(self._ask(i) for i in range(self.n))))

    async def _not_ready(self) -> list[str]:
        if self.stopping:
            return ["draining"]
        reasons: list[str] = []
        for i, s in enumerate(await self._all_stats()):
            for line in ([f"worker {i}: no answer"] if s is None else s.get("not_ready", [])):
                if line not in reasons:   # every worker fetches the same key sets: name each once
                    reasons.append(line)
        return reasons

    async def _metrics(self) -> tuple[bytes, bytes]:
        return render(merge(s for s in await self._all_stats() if s is not None))

    def not_ready(self) -> Awaitable[list[str]]:
        return self._not_ready()

    def metrics(self):
        return self._metrics()

    # --- the supervisor's own loop -----------------------------------------------------------------------
    def reload(self) -> None:
        if self.source is None:
            return
        runtime = build_or_refuse(self.source)   # refused once here, with its reason, before any worker sees it
        if runtime is None:
            return
        toggled = tls_toggled(self.runtime, runtime)
        if toggled:
            log.error("reload refused, still serving the previous config: %s", "; ".join(toggled),
                      extra={"event": "reload_refused"})
            return
        runtime.log_tls()
        runtime.adopt_fronts(self.runtime.tls_fronts())   # a worker forked later shares the ticket keys too
        # A worker restarted later must start on this config, not the one agw started with; and a bind the
        # new config drops must stop listening: the supervisor's copies of its sockets would otherwise
        # keep accepting connections into a queue no worker reads.
        self.runtime = runtime
        wanted = {(b.address, b.port) for b in runtime.loaded.config.binds}
        for socks in self.sockets:
            for key in [k for k in socks if k not in wanted]:
                socks.pop(key).close()
        self.signal_all(signal.SIGHUP)

    def signal_all(self, sig: int) -> None:
        for pid in list(self.pids):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    async def run(self, admin: Optional[tuple[str, int]]) -> int:
        loop = asyncio.get_running_loop()

        def stop() -> None:
            self.stopping = True
            self.signal_all(signal.SIGTERM)

        loop.add_signal_handler(signal.SIGTERM, stop)
        loop.add_signal_handler(signal.SIGINT, stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        admin_server = None
        if admin is not None:
            admin_server = AdminServer(self)
            await admin_server.start(*admin)
            log.info("admin listening on %s:%d (/healthz, /readyz, /metrics, /stats)", *admin)
        restarts: list[float] = []
        code = 0
        next_watch = time.monotonic() + 1
        while self.pids:
            await asyncio.sleep(0.1)
            if self.watch and self.source is not None and time.monotonic() > next_watch:
                next_watch = time.monotonic() + 1
                if self.source.changed():
                    self.reload()
            while self.pids:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    self.pids.clear()
                    break
                if pid == 0:
                    break
                i = self.pids.pop(pid, None)
                if i is None or self.stopping:
                    continue
                now = time.monotonic()
                restarts[:] = [t for t in restarts if now - t < 10] + [now]
                if len(restarts) > 5 * self.n:
                    log.error("workers keep dying; stopping")
                    stop()
                    code = 1
                    continue
                log.warning("worker %d exited (status %d); restarting", i, status)
                self.spawn(i)
        if admin_server is not None:
            await admin_server.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return code


def run_workers(runtime: Runtime, n: int, *, admin: Optional[tuple[str, int]], drain_timeout: float,
                source: Optional[ConfigSource] = None, watch: bool = False, access_log: str = "off") -> int:
    try:
        sup = Supervisor(runtime, n, source=source, watch=watch, drain_timeout=drain_timeout,
                         access_log=access_log)
    except OSError as e:
        print(f"agw: cannot listen: {e}", file=sys.stderr)
        return 1
    # Everything built so far (modules, config, key sets) is shared with the workers copy-on-write; frozen,
    # it is never walked by a worker's garbage collector, so the pages that hold it stay shared.
    gc.freeze()
    for i in range(n):
        sup.spawn(i)
    install_uvloop()
    return asyncio.run(sup.run(admin))
