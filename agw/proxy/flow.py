"""Flow control and the deadline of one client connection, in one owner.

Reading from the client is paused for reasons (a bitmask, so each reason is lifted on its own); while the
client's write buffer is full, the upstream relaying an answer to it stops being read, and no further request
is started. An exchange talks to its client only through this class, so `ClientProtocol` (the parsing and
pipelining above it) and `Exchange` (one request below it) never reach into each other's flow state.
"""
from __future__ import annotations

import asyncio
from typing import Any, Optional

try:
    import cython
except ImportError:  # running uncompiled without Cython installed
    from . import _cython_shim as cython  # type: ignore[no-redef]

from .context import ServerContext

PAUSE_PIPELINE = 1      # a later request waits for the active one
PAUSE_UPSTREAM = 2      # the upstream's write buffer is full
PAUSE_BUFFER = 4        # request body buffered while the upstream is being connected / a policy waits
PAUSE_WRITE = 8         # the client is not reading what agw writes: no further request is answered


@cython.cclass
class ClientFlow:
    """A client connection as an exchange sees it: writes, reading paused for reasons, one deadline."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.loop = ctx.loop
        self.transport: Optional[asyncio.Transport] = None
        self.peer = b""
        self.paused = 0
        self.write_paused = False
        self.deadline = 0.0           # loop time when the current phase times out; 0 = none
        self.request_deadline = 0.0   # the active request's whole-request timeout; 0 = none
        self.closing = False

    # --- reading from the client ---------------------------------------------------------------------------
    def pause_reading_for(self, reason) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused |= reason

    def resume_reading_for(self, reason) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and self.transport is not None and not self.closing:
                self.transport.resume_reading()

    # --- writing to the client (asyncio's flow-control callbacks) ----------------------------------------
    def pause_writing(self) -> None:
        self.write_paused = True
        relaying = self.relaying_transport()
        if relaying is not None:
            relaying.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        relaying = self.relaying_transport()
        if relaying is not None:
            relaying.resume_reading()
        if not self.closing:
            self.resume_reading_for(PAUSE_WRITE)
            self.writable()

    def follow_client(self, upstream: Any) -> None:
        """An upstream transport starts relaying to this client: it waits while the client's buffer is full."""
        if self.write_paused:
            upstream.pause_reading()

    def relaying_transport(self) -> Any:
        """The upstream transport relaying an answer to this client now, if any."""
        return None

    def writable(self) -> None:
        """The client reads again: answers held back may go on."""

    def write(self, data: bytes) -> None:
        """Queue `data` for the client: sent when the event-loop pass ends, joined with the writes to this
        client just before it (a response's head and body go out in one send)."""
        if self.transport is not None:
            self.ctx.batch.add(self.transport, data)

    def close(self) -> None:
        self.closing = True
        self.deadline = 0.0
        if self.transport is not None:
            self.ctx.batch.flush()   # what this pass wrote to the client goes out before the close
            self.transport.close()

    # --- the deadline ------------------------------------------------------------------------------------
    def _arm(self, delay: float) -> None:
        deadline = self.ctx.now + delay
        if 0.0 < self.request_deadline < deadline:
            deadline = self.request_deadline   # the route's whole-request timeout comes first
        self.deadline = deadline

    def _disarm(self) -> None:
        self.deadline = 0.0

    # --- the exchange's end ------------------------------------------------------------------------------
    def exchange_done(self, ex: Any) -> None:
        """The active exchange has answered (or given up): the connection decides what comes next."""
