"""An upgraded connection (WebSocket, after the backend's `101 Switching Protocols`): bytes relayed both ways.

At the switch each of the two transports is handed a `TunnelEnd` as its protocol (asyncio's `set_protocol`),
so the HTTP code never sees a tunnel's bytes and a plain request pays nothing for tunnels. Flow control: a
side whose write buffer is full pauses reading the other. Half-close: an EOF from one side is passed on with
`write_eof` where the other transport supports it (plain TCP; TLS closes instead); once both sides have sent
EOF, or either closes, both close. The client connection stays in its bind's `connections` (it counts
against maxConnections, and a drain closes it at the drain deadline); its deadline is the tunnel's: no bytes
either way for the route's `tunnelIdleTimeout`, or the token's `exp` when the route closes on token expiry.

Not compiled: a tunnel does one small call per read, and plain requests never reach this module.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Optional

log = logging.getLogger("agw.proxy")

PAUSE_UPSTREAM = 2   # agw/proxy/flow.py: the upstream's write buffer was full at the switch


class TunnelEnd:
    """The asyncio Protocol of one side of a tunnel (`client`: the side facing the client)."""

    __slots__ = ("tunnel", "client")

    def __init__(self, tunnel: "Tunnel", client: bool) -> None:
        self.tunnel = tunnel
        self.client = client

    def connection_made(self, transport: Any) -> None:  # pragma: no cover - set_protocol never calls it
        pass

    def data_received(self, data: bytes) -> None:
        if self.client:
            self.tunnel.from_client(data)
        else:
            self.tunnel.from_upstream(data)

    def eof_received(self) -> Optional[bool]:
        return self.tunnel.eof(self.client)

    def pause_writing(self) -> None:
        # This side's write buffer is full: stop reading what is written into it.
        t = self.tunnel
        (t.upstream if self.client else t.client).pause_reading()

    def resume_writing(self) -> None:
        t = self.tunnel
        if not t.closed:
            (t.upstream if self.client else t.client).resume_reading()

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.tunnel.close()


class Tunnel:
    """One upgraded client connection and the upstream connection it was switched on."""

    def __init__(self, proto: Any, exchange: Any, conn: Any, upstream_rest: bytes) -> None:
        ctx = proto.ctx
        self.ctx = ctx
        self.proto = proto
        self.exchange = exchange
        self.conn = conn
        self.client = proto.transport
        self.upstream = conn.transport
        self.batch = ctx.batch
        route = exchange.route
        self.idle_timeout = route.tunnel_idle_timeout
        expires = tunnel_expiry(route, exchange.verdicts)   # epoch seconds; 0: never
        # On the loop's clock, as deadlines are (a token already expired closes at the next tick).
        self.expires = max(ctx.now + (expires - time.time()), 1e-9) if expires else 0.0
        self.last = ctx.now
        self.up = 0
        self.down = 0
        self.eof_client = False
        self.eof_upstream = False
        self.closed = False
        stats = ctx.stats
        self.counters = stats.tunnel_counters(route.name) if stats is not None else [0, 0, 0, 0]
        self.counters[0] += 1
        self.counters[1] += 1
        ctx.tunnels += 1
        conn.exchange = None          # the upstream connection is this tunnel's now, never pooled again
        conn.reusable = False
        proto.tunnel = self
        proto.request_deadline = 0.0  # the request ended at the 101: tunnelIdleTimeout bounds the tunnel
        self.client.set_protocol(TunnelEnd(self, True))
        self.upstream.set_protocol(TunnelEnd(self, False))
        early = proto.upgrade_data    # what the client sent after its upgrade request, before the 101
        proto.upgrade_data = b""
        if upstream_rest:
            self.from_upstream(upstream_rest)
        if early:
            self.from_client(early)
        # Reading resumes where no write buffer is full (the HTTP flow state at the switch).
        if proto.write_paused:
            self.upstream.pause_reading()
        else:
            self.upstream.resume_reading()
        if not proto.paused & PAUSE_UPSTREAM:
            self.client.resume_reading()
        proto.paused = 0
        self.arm()

    # --- bytes ---------------------------------------------------------------------------------------------
    def from_client(self, data: bytes) -> None:
        if self.closed:
            return
        self.last = self.ctx.now
        self.up += len(data)
        self.counters[2] += len(data)
        self.batch.add(self.upstream, data)

    def from_upstream(self, data: bytes) -> None:
        if self.closed:
            return
        self.last = self.ctx.now
        self.down += len(data)
        self.counters[3] += len(data)
        self.batch.add(self.client, data)

    def eof(self, from_client: bool) -> Optional[bool]:
        """One side sent EOF: half-close the other where its transport can; True keeps the reader open."""
        if from_client:
            self.eof_client = True
            other = self.upstream
        else:
            self.eof_upstream = True
            other = self.client
        if self.closed or (self.eof_client and self.eof_upstream) or not other.can_write_eof():
            self.close()
            return False
        self.batch.flush()     # what this pass relayed goes before the EOF
        other.write_eof()
        return True

    # --- the end ---------------------------------------------------------------------------------------------
    def arm(self) -> None:
        deadline = self.last + self.idle_timeout
        if 0.0 < self.expires < deadline:
            deadline = self.expires
        self.proto.deadline = deadline

    def on_deadline(self) -> None:
        now = self.ctx.now
        if 0.0 < self.expires <= now:
            self.exchange.reason = "token_expired"
            self.close(abort=True)
        elif self.last + self.idle_timeout <= now:
            self.exchange.reason = "tunnel_idle_timeout"
            self.close(abort=True)
        else:
            self.arm()   # bytes moved since the deadline was set

    def close(self, abort: bool = False) -> None:
        """Close both sides (what was relayed is sent first, unless `abort`) and account for the tunnel."""
        if self.closed:
            return
        self.closed = True
        self.ctx.tunnels -= 1
        self.counters[0] -= 1
        self.batch.flush()
        for transport in (self.client, self.upstream):
            if abort:
                transport.abort()
            else:
                transport.close()
        conn = self.conn
        conn.exchange = None
        conn.connection_lost(None)   # its own Protocol no longer hears of the transport: leave the pool's books
        proto = self.proto
        ex = self.exchange
        ex.done = True
        ex.bytes_out = self.down
        proto.closing = True
        proto.exchange_done(ex)      # counted and logged (status 101) now that the tunnel is over
        proto.connection_lost(None)  # leaves the bind's connections


def tunnel_expiry(route: Any, verdicts: Optional[list]) -> float:
    """When (epoch seconds) a tunnel must close because a policy says so (a token's `exp` with
    closeOnTokenExpiry); 0: never. A policy may offer `tunnel_deadline(verdict)` -> epoch seconds or 0; it is
    asked about the verdicts of its kind (a policy that had no concern with the request left none)."""
    if not verdicts:
        return 0.0
    expires = 0.0
    for policy in route.policies:
        deadline_of = getattr(policy, "tunnel_deadline", None)
        if deadline_of is None:
            continue
        for verdict in verdicts:
            if getattr(verdict, "kind", None) != policy.kind:
                continue
            try:
                d = deadline_of(verdict)
            except Exception:  # noqa: BLE001 - a policy must not take the connection down
                log.exception("tunnel_deadline of policy %s failed", policy.kind)
                continue
            if d and (expires == 0.0 or d < expires):
                expires = d
    return expires
