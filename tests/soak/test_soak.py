"""Soak: agw under a steady load of valid, invalid and missing tokens for `--soak-duration` seconds (15 in CI).

An asyncio client keeps 20 keep-alive connections busy at a fixed pace: half the requests carry one of 200
valid tokens, a tenth a valid token never seen before, the rest a hostile-corpus token or none. Every answer must
be the expected one (200 for valid tokens; 401 with the case's reason for hostile ones and for no token); RSS of the agw
process at the end must be within 10% of its RSS after warm-up (sampled at 20% of the duration).
"""
from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.hostile import corpus
from tests.hostile.keys import ec_key, rsa_key
from tests.support.ports import free_port
from tests.support.process import ExternalProcess

pytestmark = [pytest.mark.e2e, pytest.mark.soak]

CONNECTIONS = 20
RATE_PER_CONNECTION = 25.0      # requests per second on each connection: ~500/s in total
WARMUP_FRACTION = 0.2
RSS_TOLERANCE = 0.10
CACHE_ENTRIES = 150
BACKEND_APP = Path(__file__).resolve().parents[1] / "e2e" / "backend_app.py"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@dataclass
class Mix:
    """The requests of the soak: (kind, header lines, expected status, expected body or None)."""
    valid: list[bytes]
    hostile: list[corpus.Case]
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    fresh: int = 0

    def pick(self) -> tuple[str, bytes, int, bytes | None]:
        roll = self.rng.random()
        if roll < 0.5:
            return "valid", b"Authorization: Bearer " + self.rng.choice(self.valid) + b"\r\n", 200, None
        if roll < 0.6:  # never seen before: full verification, and the token cache keeps evicting
            self.fresh += 1
            token = corpus.make("ES256", ec_key("main", "P-256"), kid="p256",
                                payload=corpus.claims(sub=f"fresh{self.fresh}"))
            return "valid", b"Authorization: Bearer " + token + b"\r\n", 200, None
        if roll < 0.9:
            case = self.rng.choice(self.hostile)
            lines = b"".join(n.encode() + b": " + v + b"\r\n" for n, v in case.headers)
            return "invalid", lines, 401, case.body
        return "missing", b"", 401, b"authentication failure: no bearer token found"


def build_mix() -> Mix:
    valid = [corpus.make("RS256", rsa_key("main"), kid="rsa", payload=corpus.claims(sub=f"user{i}"))
             for i in range(100)]
    valid += [corpus.make("ES256", ec_key("main", "P-256"), kid="p256", payload=corpus.claims(sub=f"ec{i}"))
              for i in range(100)]
    hostile = [c for c in corpus.token_cases() if c.headers]  # "no header at all" is the missing kind
    return Mix(valid, hostile)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length) if length else b""


async def run_load(port: int, duration: float, mix: Mix, on_warm) -> tuple[Counter, list[str]]:
    counts: Counter = Counter()
    unexpected: list[str] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + duration
    interval = 1.0 / RATE_PER_CONNECTION

    async def client(index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        next_at = start + index * interval / CONNECTIONS
        try:
            while loop.time() < end:
                delay = next_at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += interval
                kind, lines, status, body = mix.pick()
                writer.write(b"GET /soak HTTP/1.1\r\nHost: 127.0.0.1\r\n" + lines + b"\r\n")
                try:
                    got_status, got_body = await asyncio.wait_for(read_response(reader), 10)
                except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError) as err:
                    unexpected.append(f"{kind}: connection lost ({err!r})")
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                counts[kind] += 1
                if got_status != status or (body is not None and got_body != body):
                    if len(unexpected) < 50:
                        unexpected.append(f"{kind}: expected {status} {body!r}, got {got_status} {got_body[:80]!r}")
                    counts["unexpected"] += 1
        finally:
            writer.close()

    async def warm_sampler() -> None:
        await asyncio.sleep(duration * WARMUP_FRACTION)
        on_warm()

    await asyncio.gather(warm_sampler(), *(client(i) for i in range(CONNECTIONS)))
    return counts, unexpected


@pytest.fixture
def soak_backend(tmp_path):
    port = free_port()
    process = ExternalProcess([sys.executable, str(BACKEND_APP), str(port)], name="soak-backend", cwd=tmp_path,
                              ports_to_wait=[port], log_path=tmp_path / "backend.log")
    process.start()
    yield f"127.0.0.1:{port}"
    process.stop()


def test_soak_steady_mixed_load(agw_proxy, soak_backend, soak_duration, record_property):
    # A small token cache, so it is full (and evicting) long before the warm-up sample.
    policy = {**corpus.policy(), "cache": {"maxEntries": CACHE_ENTRIES}}
    config = {"binds": [{"port": free_port(), "address": "127.0.0.1", "listeners": [{"name": "main", "routes": [
        {"name": "soak", "backends": [{"host": soak_backend}], "policies": {"jwtAuth": policy}}]}]}]}
    proxy = agw_proxy(config, wait_readyz=True)
    pid = proxy.proc.pid
    mix = build_mix()
    samples: dict[str, int] = {"start": rss_kib(pid)}

    began = time.monotonic()
    counts, unexpected = asyncio.run(run_load(proxy.port, soak_duration, mix,
                                              lambda: samples.__setitem__("warm", rss_kib(pid))))
    elapsed = time.monotonic() - began
    samples["end"] = rss_kib(pid)

    total = sum(v for k, v in counts.items() if k != "unexpected")
    summary = (f"{total} requests in {elapsed:.1f}s ({total / elapsed:.0f}/s; valid {counts['valid']}, "
               f"invalid {counts['invalid']}, missing {counts['missing']}); RSS KiB start {samples['start']}, "
               f"after warm-up {samples['warm']}, end {samples['end']} "
               f"({(samples['end'] - samples['warm']) / samples['warm']:+.1%})")
    print("\nsoak:", summary)
    record_property("soak", summary)
    assert not unexpected, f"{counts['unexpected']} unexpected answers; {summary}\n" + "\n".join(unexpected)
    assert total >= soak_duration * CONNECTIONS * RATE_PER_CONNECTION * 0.5, summary  # the load really ran
    assert samples["end"] <= samples["warm"] * (1 + RSS_TOLERANCE), summary
    assert proxy.running
