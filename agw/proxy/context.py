"""What every connection of one bind shares: routes, limits, timeouts, hooks, the write batch, the coarse
clock its deadlines are read against."""
from __future__ import annotations

import asyncio
from typing import Callable, Optional

try:
    import cython
except ImportError:  # running uncompiled without Cython installed
    from . import _cython_shim as cython  # type: ignore[no-redef]

from ..config.compile import ProxySettings
from . import http as H
from .batch import WriteBatch
from .metrics import Stats
from .routing import Router

# Request headers agw may drop or rewrite; every other header goes upstream as received, unexamined.
BASE_SPECIAL_REQUEST_HEADERS = H.HOP_BY_HOP | {H.FORWARDED_FOR, H.FORWARDED_PROTO, H.FORWARDED_HOST,
                                               b"cookie"}


@cython.cclass
class ServerContext:
    """What every connection of one bind shares: routes, limits, timeouts, hooks, live connections."""

    def __init__(self, router: Router, settings: ProxySettings, *, scheme: bytes = b"http",
                 on_request: Optional[Callable[..., None]] = None, stats: Optional[Stats] = None) -> None:
        self.scheme = scheme
        self.connections: set = set()   # the ClientProtocols of this bind
        self.draining = False
        self.tunnels = 0               # upgraded connections open on this bind (agw/proxy/tunnel.py)
        self.on_request = on_request   # access log hook: (exchange) -> None
        self.stats = stats             # metrics, counted here for every answered request
        self.loop = asyncio.get_event_loop()
        self.batch = WriteBatch(self.loop)
        self.now = self.loop.time()    # coarse clock for deadlines, advanced by the worker's ticker
        self.apply(router, settings)

    def apply(self, router: Router, settings: ProxySettings) -> None:
        """Install routes and limits (at start and on reload); connections pick them up per request."""
        self.router = router
        self.special_headers = BASE_SPECIAL_REQUEST_HEADERS | router.special_headers
        self.max_header_bytes = settings.max_header_bytes
        self.max_headers = settings.max_headers
        self.max_connections = settings.max_connections
        self.max_tunnels = settings.max_tunnels
        self.request_header_timeout = settings.request_header_timeout
        self.keepalive_timeout = settings.keepalive_timeout
        self.body_idle_timeout = settings.body_idle_timeout
        self.merge_slashes = settings.merge_slashes

    def expire(self, now: float) -> None:
        """Called a few times a second: fire the deadlines that passed (no timer objects per request)."""
        self.now = now
        for conn in [c for c in self.connections if 0.0 < c.deadline <= now]:
            conn.deadline = 0.0
            conn.on_deadline()
