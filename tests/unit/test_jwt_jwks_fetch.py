"""The remote JWKS source against a tiny HTTP server on 127.0.0.1: first fetch, sharing, refresh, failures,
unknown-kid refetch with its cooldown, size limit, timeout, https with a local CA (trustme)."""
from __future__ import annotations

import asyncio
import inspect
import os
import ssl
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from vectors import mint  # noqa: E402

from agw.config.model import Jwks, JwtAuth  # noqa: E402
from agw.jwt import AuthResult, JwtPolicy  # noqa: E402
from agw.jwt.jwks import max_age_of  # noqa: E402

KEY_A = mint.jwk_of(mint.rsa_key(), "a")
KEY_B = mint.jwk_of(mint.ec_key(), "b")
TOKEN_A = mint.token("RS256", kid="a")
TOKEN_B = mint.token("ES256", kid="b")


class JwksServer:
    """Serves `body` with `status`; counts requests; can delay, hang, or chunk the response."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.body = mint.jwks(KEY_A).encode()
        self.status = 200
        self.headers: dict[str, str] = {}
        self.delay = 0.0
        self.chunked = False
        self.requests = 0
        self.ssl_context = ssl_context
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def __aenter__(self) -> "JwksServer":
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{'localhost' if self.ssl_context else '127.0.0.1'}:{self.port}/jwks"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            if self.delay:
                await asyncio.sleep(self.delay)
            head = f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\nConnection: close\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
            if self.chunked:
                half = len(self.body) // 2
                parts = [self.body[:half], self.body[half:]]
                data = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
                writer.write((head + "Transfer-Encoding: chunked\r\n\r\n").encode() + data)
            else:
                writer.write((head + f"Content-Length: {len(self.body)}\r\n\r\n").encode() + self.body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def make_policy(url: str, **jwks_kw) -> JwtPolicy:
    return JwtPolicy(JwtAuth(issuer=mint.ISSUER, jwks=Jwks(url=url, **jwks_kw)))


def source_of(policy: JwtPolicy):
    return policy.core.providers[0].source


async def answer(policy: JwtPolicy, tok: bytes) -> AuthResult:
    r = policy.authenticate({b"authorization": b"Bearer " + tok}, b"/")
    return await r if inspect.isawaitable(r) else r


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


async def answered(policy: JwtPolicy, timeout: float = 5.0) -> None:
    """Wait until every remote source of `policy` has a first answer (keys or a failure)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not all(p.source.answered() for p in policy.core.providers):
        assert loop.time() < deadline, "no answer from the JWKS source"
        await asyncio.sleep(0.02)


def test_first_fetch_then_synchronous_answers():
    async def main():
        async with JwksServer() as srv:
            p = make_policy(srv.url)
            # not started: never fetches from the request path
            r = p.authenticate({b"authorization": b"Bearer " + TOKEN_A}, b"/")
            assert isinstance(r, AuthResult) and r.reason == "keys_unavailable"
            assert not p.ready()
            await p.start()
            assert await p.wait_ready(5)
            r = p.authenticate({b"authorization": b"Bearer " + TOKEN_A}, b"/")
            assert isinstance(r, AuthResult) and r.allowed
            assert srv.requests == 1
            stats = p.stats()["providers"][0]
            assert stats["keys"] == 1 and stats["fetches"]["ok"] == 1 and stats["key_age_seconds"] >= 0
            await p.close()
    run(main())


def test_requests_during_the_first_fetch_wait_and_share_it():
    async def main():
        async with JwksServer() as srv:
            srv.delay = 0.3
            p = make_policy(srv.url)
            await p.start()
            await asyncio.sleep(0.05)
            pending = [p.authenticate({b"authorization": b"Bearer " + TOKEN_A}, b"/") for _ in range(10)]
            assert all(inspect.isawaitable(x) for x in pending)
            results = await asyncio.gather(*pending)
            assert all(r.allowed for r in results)
            assert srv.requests == 1
            await p.close()
    run(main())


def test_key_free_checks_fail_before_any_fetch():
    async def main():
        async with JwksServer() as srv:
            srv.delay = 0.3
            p = make_policy(srv.url)
            await p.start()
            await asyncio.sleep(0.05)
            expired = mint.token("RS256", kid="a", payload=mint.claims(exp=1))
            wrong_iss = mint.token("RS256", kid="a", payload=mint.claims(iss="https://evil"))
            for tok, reason in ((expired, "expired"), (wrong_iss, "unknown_issuer"), (b"x.y", "malformed")):
                r = p.authenticate({b"authorization": b"Bearer " + tok}, b"/")
                assert isinstance(r, AuthResult) and r.reason == reason
            await p.close()
    run(main())


def test_failed_refresh_keeps_the_last_good_keys():
    async def main():
        async with JwksServer() as srv:
            p = make_policy(srv.url)
            await p.start()
            await p.wait_ready(5)
            src = source_of(p)
            for status, body in ((500, b"oops"), (200, b"<html>"), (200, b'{"keys": []}'), (404, b"{}")):
                srv.status, srv.body = status, body
                ok, _ = await src.fetch()
                assert not ok
                assert (await answer(p, TOKEN_A)).allowed
            assert src.counts["error"] == 4 and src.last_error
            await p.close()
    run(main())


def test_idp_down_at_start_then_up():
    async def main():
        srv = JwksServer()
        async with srv:
            port = srv.port
        p = make_policy(f"http://127.0.0.1:{port}/jwks")
        src = source_of(p)
        src.backoff_start = 0.05
        await p.start()
        await answered(p)  # the first fetch failed: not ready (no keys), and tokens get keys unavailable
        assert not p.ready()
        assert (await answer(p, TOKEN_A)).reason == "keys_unavailable"
        srv.port = port
        async with srv:
            for _ in range(200):
                if src.has_keys:
                    break
                await asyncio.sleep(0.05)
            assert (await answer(p, TOKEN_A)).allowed
        await p.close()
    run(main())


def test_unknown_kid_refetch_and_its_cooldown():
    async def main():
        async with JwksServer() as srv:
            p = make_policy(srv.url)
            await p.start()
            await p.wait_ready(5)
            srv.body = mint.jwks(KEY_A, KEY_B).encode()  # rotation at the IdP
            r = p.authenticate({b"authorization": b"Bearer " + TOKEN_B}, b"/")
            assert inspect.isawaitable(r)
            assert (await r).allowed
            assert srv.requests == 2
            # another unknown kid within the cooldown: answered at once, no fetch
            tok_c = mint.token("RS256", kid="c")
            r = p.authenticate({b"authorization": b"Bearer " + tok_c}, b"/")
            assert isinstance(r, AuthResult) and r.reason == "unknown_key"
            assert srv.requests == 2
            # after the cooldown one more refetch is allowed
            source_of(p).unknown_kid_cooldown = 0.0
            r = p.authenticate({b"authorization": b"Bearer " + tok_c}, b"/")
            assert inspect.isawaitable(r) and (await r).reason == "unknown_key"
            assert srv.requests == 3
            await p.close()
    run(main())


def test_key_rotation_kills_cached_tokens_of_removed_keys():
    async def main():
        async with JwksServer() as srv:
            p = make_policy(srv.url)
            await p.start()
            await p.wait_ready(5)
            assert (await answer(p, TOKEN_A)).allowed
            srv.body = mint.jwks(KEY_B).encode()
            ok, _ = await source_of(p).fetch()
            assert ok
            source_of(p).unknown_kid_cooldown = 1000
            source_of(p).feed.last_unknown_kid_fetch = source_of(p).clock()
            assert (await answer(p, TOKEN_A)).reason == "unknown_key"
            assert (await answer(p, TOKEN_B)).allowed
            await p.close()
    run(main())


def test_background_refresh_picks_up_new_keys():
    async def main():
        async with JwksServer() as srv:
            p = make_policy(srv.url, cache_duration="1s")
            await p.start()
            await p.wait_ready(5)
            srv.body = mint.jwks(KEY_B).encode()
            provider = p.core.providers[0]
            generation = provider.generation
            for _ in range(100):
                if provider.generation != generation:
                    break
                await asyncio.sleep(0.05)
            assert provider.key_ids() == ["b"]
            await p.close()
    run(main())


def test_size_limit_and_timeout_and_chunked_bodies():
    async def main():
        async with JwksServer() as srv:
            srv.body = mint.jwks(KEY_A, KEY_B).encode()
            p = make_policy(srv.url, max_bytes=200)
            src = source_of(p)
            await p.start()
            await answered(p)
            assert not src.has_keys and "larger than" in src.last_error and not p.ready()
            await p.close()

            srv.chunked = True
            p = make_policy(srv.url)
            await p.start()
            await p.wait_ready(5)
            assert (await answer(p, TOKEN_B)).allowed
            await p.close()

            srv.chunked, srv.delay = False, 5
            p = make_policy(srv.url, fetch_timeout="200ms")
            await p.start()
            await answered(p, 3)
            assert "timed out" in source_of(p).last_error
            await p.close()
    run(main())


def test_https_with_a_configured_ca(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    async def main():
        async with JwksServer(server_ctx) as srv:
            p = make_policy(srv.url, ca_certificates=str(ca_file))
            await p.start()
            await p.wait_ready(5)
            assert (await answer(p, TOKEN_A)).allowed
            await p.close()
            # without the CA the system trust store refuses the certificate: keys stay unavailable
            p = make_policy(srv.url)
            await p.start()
            await answered(p)
            assert "TLS" in (source_of(p).last_error or "")
            assert (await answer(p, TOKEN_A)).reason == "keys_unavailable"
            await p.close()
    run(main())


def test_two_providers_with_one_url_share_one_fetcher():
    from agw.config.model import Provider as ProviderCfg

    async def main():
        async with JwksServer() as srv:
            p = JwtPolicy(JwtAuth(providers=[ProviderCfg(issuer=mint.ISSUER, jwks=Jwks(url=srv.url)),
                                             ProviderCfg(issuer="https://two", jwks=Jwks(url=srv.url))]))
            await p.start()
            await p.wait_ready(5)
            assert srv.requests == 1
            two = mint.token("RS256", kid="a", payload=mint.claims(iss="https://two"))
            assert (await answer(p, two)).allowed and (await answer(p, TOKEN_A)).allowed
            await p.close()
    run(main())


def test_cache_control_max_age():
    assert max_age_of({b"cache-control": b"public, max-age=300"}) == 300
    assert max_age_of({b"cache-control": b"no-store"}) == 0
    assert max_age_of({}) is None


def test_policies_naming_one_url_share_its_fetches():
    async def main():
        async with JwksServer() as srv:
            first, second = make_policy(srv.url), make_policy(srv.url)
            await first.start()
            await second.start()
            assert await first.wait_ready(5) and await second.wait_ready(5)
            assert (await answer(first, TOKEN_A)).allowed and (await answer(second, TOKEN_A)).allowed
            assert srv.requests == 1
            await first.close()
            await second.close()
    run(main())


def test_a_new_policy_on_the_same_url_takes_over_keys_schedule_and_counters():
    """What a reload does: the new config's policy starts while the old one still runs, then the old closes."""
    async def main():
        async with JwksServer() as srv:
            old = make_policy(srv.url)
            await old.start()
            assert await old.wait_ready(5)
            srv.status = 500
            ok, _ = await source_of(old).fetch()     # one failed refresh: counted, the keys stay
            assert not ok
            new = make_policy(srv.url, cache_duration="10m")
            await new.start()
            # keys at once, without a fetch, and tokens answered synchronously
            assert new.ready() and srv.requests == 2
            result = new.authenticate({b"authorization": b"Bearer " + TOKEN_A}, b"/")
            assert isinstance(result, AuthResult) and result.allowed
            await old.close()
            assert source_of(new).counts == {"ok": 1, "error": 1, "unchanged": 0, "unknown_kid_refetch": 0}
            assert source_of(new).feed.settings is source_of(new)   # the new config's settings apply
            srv.status = 200
            srv.body = mint.jwks(KEY_A, KEY_B).encode()
            ok, _ = await source_of(new).fetch()     # still the same refresh task and counters
            assert ok and source_of(new).counts["ok"] == 2
            assert (await answer(new, TOKEN_B)).allowed
            await new.close()
            assert source_of(new).feed is None
    run(main())


def test_a_source_of_a_new_url_after_the_last_one_closed_starts_afresh():
    async def main():
        async with JwksServer() as srv:
            p = make_policy(srv.url)
            await p.start()
            assert await p.wait_ready(5)
            await p.close()
            again = make_policy(srv.url)
            await again.start()
            assert await again.wait_ready(5)
            assert srv.requests == 2 and source_of(again).counts["ok"] == 1
            await again.close()
    run(main())
