"""The proxy's writes of one event-loop pass are sent together when the pass ends (agw/proxy/batch.py
WriteBatch): what each peer receives, and in which order, must not change."""
from __future__ import annotations

import asyncio

import pytest

from agw.proxy.batch import BATCH_FLUSH_BYTES, COALESCE_LIMIT, WriteBatch


class Peer:
    """A transport that records what the proxy sent it."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.sent.append(data)

    def is_closing(self) -> bool:
        return self.closed


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def batch(loop) -> WriteBatch:
    return WriteBatch(loop)


def run_one_pass(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(asyncio.sleep(0))


def test_writes_leave_when_the_pass_ends_in_order_per_peer(loop, batch):
    client, upstream = Peer(), Peer()
    batch.add(upstream, b"GET /a")
    batch.add(client, b"401 for b")
    batch.add(upstream, b"GET /c")
    assert client.sent == [] and upstream.sent == []   # nothing sent while the pass is running
    run_one_pass(loop)
    assert upstream.sent == [b"GET /a", b"GET /c"]
    assert client.sent == [b"401 for b"]
    batch.add(client, b"next")
    run_one_pass(loop)
    assert client.sent == [b"401 for b", b"next"]


def test_back_to_back_writes_to_one_peer_are_one_send_up_to_the_limit(loop, batch):
    client = Peer()
    batch.add(client, b"HTTP/1.1 200 OK\r\n\r\n")
    batch.add(client, b"body")
    big = b"x" * COALESCE_LIMIT
    batch.add(client, big)
    batch.add(client, b"tail")
    run_one_pass(loop)
    assert client.sent == [b"HTTP/1.1 200 OK\r\n\r\nbody", big, b"tail"]


def test_a_peer_closed_during_the_pass_is_skipped_and_the_others_still_served(loop, batch):
    gone, alive = Peer(), Peer()
    batch.add(gone, b"lost")
    batch.add(alive, b"kept")
    gone.closed = True
    run_one_pass(loop)
    assert gone.sent == [] and alive.sent == [b"kept"]


def test_an_early_flush_sends_now_and_the_pass_end_sends_only_what_came_after(loop, batch):
    client = Peer()
    batch.add(client, b"answer")
    batch.flush()             # what a client's close() does before closing
    assert client.sent == [b"answer"]
    batch.add(client, b"later")
    run_one_pass(loop)
    assert client.sent == [b"answer", b"later"]


def test_a_batch_of_large_writes_is_sent_at_once_not_held_for_the_pass(loop, batch):
    """Bodies being relayed reach the transport (and its flow control) as soon as a batch holds
    BATCH_FLUSH_BYTES, so one pass never holds more than that for all connections together."""
    client = Peer()
    chunk = b"y" * (BATCH_FLUSH_BYTES // 4)
    for _ in range(3):
        batch.add(client, chunk)
    assert client.sent == []
    batch.add(client, chunk)          # the fourth reaches the limit
    assert b"".join(client.sent) == chunk * 4
    batch.add(client, b"small")
    assert b"".join(client.sent) == chunk * 4   # small writes wait for the end of the pass again
    run_one_pass(loop)
    assert b"".join(client.sent) == chunk * 4 + b"small"


def test_a_transport_whose_write_fails_is_aborted_and_the_others_still_get_theirs(loop, batch):
    class Broken(Peer):
        aborted = False

        def write(self, data: bytes) -> None:
            raise RuntimeError("transport gone")

        def abort(self) -> None:
            self.aborted = True

    broken, alive = Broken(), Peer()
    batch.add(broken, b"x")
    batch.add(alive, b"kept")
    run_one_pass(loop)
    assert broken.aborted and alive.sent == [b"kept"]
