"""`--workers N`: a supervisor process and N forked workers, each with its own SO_REUSEPORT sockets.

The supervisor binds every worker's sockets before forking (so an address in use is reported once, before
anything runs), forwards SIGTERM/SIGINT/SIGHUP, restarts a worker that dies unexpectedly, and serves the
admin listener (ready when every worker has reported ready through a pipe).
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from typing import Optional

from .app import Runtime, install_uvloop, make_listen_socket, serve

log = logging.getLogger("agw.workers")


class _Supervised:
    def __init__(self, n: int) -> None:
        self.n = n
        self.ready_workers: set[int] = set()
        self.draining = False

    def ready(self) -> bool:
        return not self.draining and len(self.ready_workers) == self.n


def _child(runtime: Runtime, sockets: dict, ready_fd: int, index: int, drain_timeout: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    install_uvloop()

    def ready() -> None:
        os.write(ready_fd, bytes([index]))

    code = 1
    try:
        code = asyncio.run(_child_main(runtime, sockets, ready, drain_timeout))
    except BaseException:  # noqa: BLE001
        log.exception("worker %d failed", index)
    finally:
        os._exit(code)


async def _child_main(runtime: Runtime, sockets: dict, ready, drain_timeout: float) -> int:
    from . import app

    orig = app.make_listen_socket
    app.make_listen_socket = lambda address, port, reuse: sockets[(address, port)]
    try:
        return await serve(runtime, reuse_port=True, drain_timeout=drain_timeout, ready_event=ready)
    finally:
        app.make_listen_socket = orig


def run_workers(runtime: Runtime, n: int, *, admin: Optional[tuple[str, int]], drain_timeout: float) -> int:
    per_worker = []
    try:
        for _ in range(n):
            per_worker.append({(b.address, b.port): make_listen_socket(b.address, b.port, True)
                               for b in runtime.loaded.config.binds})
    except OSError as e:
        print(f"agw: cannot listen: {e}", file=sys.stderr)
        return 1
    read_fd, write_fd = os.pipe()
    state = _Supervised(n)
    pids: dict[int, int] = {}

    def spawn(i: int) -> None:
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            for j, socks in enumerate(per_worker):
                if j != i:
                    for s in socks.values():
                        s.close()
            _child(runtime, per_worker[i], write_fd, i, drain_timeout)
        pids[pid] = i

    for i in range(n):
        spawn(i)
    install_uvloop()
    return asyncio.run(_supervise(state, pids, spawn, read_fd, admin, drain_timeout))


async def _supervise(state: _Supervised, pids: dict[int, int], spawn, read_fd: int,
                     admin: Optional[tuple[str, int]], drain_timeout: float) -> int:
    from .admin import AdminServer

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_ready() -> None:
        for b in os.read(read_fd, 64):
            state.ready_workers.add(b)

    loop.add_reader(read_fd, on_ready)

    def forward(sig: int) -> None:
        if sig in (signal.SIGTERM, signal.SIGINT):
            state.draining = True
            stop.set()
        for pid in list(pids):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, forward, sig)
    admin_server = None
    if admin is not None:
        admin_server = AdminServer(state)
        await admin_server.start(*admin)
    restarts: list[float] = []
    code = 0
    while pids:
        await asyncio.sleep(0.1)
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pids.clear()
                break
            if pid == 0:
                break
            i = pids.pop(pid, None)
            if i is None:
                continue
            state.ready_workers.discard(i)
            if not stop.is_set():
                now = time.monotonic()
                restarts[:] = [t for t in restarts if now - t < 10] + [now]
                if len(restarts) > 5 * state.n:
                    log.error("workers keep dying; giving up")
                    forward(signal.SIGTERM)
                    code = 1
                    continue
                log.warning("worker %d exited (status %d); restarting", i, status)
                spawn(i)
    if admin_server is not None:
        await admin_server.close()
    return code
