"""The writes of one event-loop pass, sent together at its end (every write to a client or an upstream goes
through the batch of its bind's context)."""
from __future__ import annotations

import asyncio
import logging

try:
    import cython
except ImportError:  # running uncompiled without Cython installed
    from . import _cython_shim as cython  # type: ignore[no-redef]

log = logging.getLogger("agw.proxy")

COALESCE_LIMIT = 64 * 1024   # writes to one peer in one pass are joined up to this size (larger: sent apart)
BATCH_FLUSH_BYTES = 256 * 1024   # a pass's batch holding this much is sent at once (bounded memory, flow control)


@cython.cclass
class WriteBatch:
    """The writes of one event-loop pass, sent together once every ready socket has been read.

    Writing each answer the moment it is ready wakes its reader (the client, the upstream) once per write; a
    reader that sleeps is woken by an inter-processor interrupt, which under load cost more than the rest of
    a request's kernel work (perf: ~15 us per request with a new token each request, where the proxy was the
    bottleneck and its peers idled). Sent back to back after the pass, one wake-up serves the whole batch, as
    in HAProxy's poll-then-process loop. Order per transport is kept: every write to a client or an upstream
    connection goes through the batch, and a client is flushed before it is closed. A batch holding
    BATCH_FLUSH_BYTES is sent at once: large bodies reach the transports (and their flow control, which pauses
    the upstream of a slow client) as soon as before, so memory per pass stays bounded.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transports: list = []
        self.chunks: list = []
        self.scheduled = False
        self.pending = 0

    def add(self, transport: asyncio.Transport, data: bytes) -> None:
        transports = self.transports
        n = len(transports)
        self.pending += len(data)
        if n and transports[n - 1] is transport and len(self.chunks[n - 1]) + len(data) <= COALESCE_LIMIT:
            # Back-to-back writes to one peer (pipelined answers, head then body): one send.
            self.chunks[n - 1] = self.chunks[n - 1] + data
        else:
            transports.append(transport)
            self.chunks.append(data)
        if self.pending >= BATCH_FLUSH_BYTES:
            self.flush()
        elif not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._run)

    def _run(self) -> None:
        self.scheduled = False
        self.flush()

    def flush(self) -> None:
        """Send everything collected (at the end of the pass, or before a client connection closes)."""
        transports = self.transports
        if not transports:
            return
        chunks = self.chunks
        self.transports = []
        self.chunks = []
        self.pending = 0
        i: cython.Py_ssize_t
        for i in range(len(transports)):
            transport = transports[i]
            if not transport.is_closing():   # closed or aborted in the same pass: nothing to send to
                try:
                    transport.write(chunks[i])
                except Exception:   # one broken transport must not cost the others their writes
                    log.exception("write to a peer failed; closing that connection")
                    transport.abort()
