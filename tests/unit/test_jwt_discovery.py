"""OIDC discovery (issue 18) against a tiny HTTP server: the document's issuer must be the configured one,
RFC 8414's location is the fallback, jwks_uri is re-read at every refresh, https stays https."""
from __future__ import annotations

import asyncio
import json

import pytest

from agw.config.model import Jwks, JwtAuth
from agw.jwt import JwtPolicy
from agw.jwt.jwks import FetchError, discover_jwks_uri, discovery_urls
from tests.unit.vectors import mint


class Site:
    """Serves `pages` (path -> (status, body)); 404 for the rest; records the paths asked for."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, bytes]] = {}
        self.asked: list[str] = []
        self.server = None
        self.port = 0

    async def __aenter__(self) -> "Site":
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader, writer) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ")[1].decode()
        self.asked.append(path)
        status, body = self.pages.get(path, (404, b"{}"))
        writer.write(b"HTTP/1.1 %d X\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % (status, len(body)) + body)
        await writer.drain()
        writer.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def doc(issuer: str, jwks_uri: str) -> tuple[int, bytes]:
    return 200, json.dumps({"issuer": issuer, "jwks_uri": jwks_uri}).encode()


def test_discovery_urls():
    assert discovery_urls("https://idp.example/realms/a") == [
        "https://idp.example/realms/a/.well-known/openid-configuration",
        "https://idp.example/.well-known/oauth-authorization-server/realms/a"]
    assert discovery_urls("https://idp.example/") == [
        "https://idp.example/.well-known/openid-configuration",
        "https://idp.example/.well-known/oauth-authorization-server"]


async def _test_openid_configuration_then_rfc8414_and_the_issuer_must_match():
    async with Site() as site:
        issuer = f"{site.base}/t1"
        site.pages["/.well-known/oauth-authorization-server/t1"] = doc(issuer, f"{site.base}/keys")
        assert await discover_jwks_uri(issuer, timeout=2, max_bytes=65536) == f"{site.base}/keys"
        assert site.asked == ["/t1/.well-known/openid-configuration", "/.well-known/oauth-authorization-server/t1"]
        site.pages["/t1/.well-known/openid-configuration"] = doc(issuer + "/", f"{site.base}/keys")
        with pytest.raises(FetchError, match="names issuer .* not the configured"):
            await discover_jwks_uri(issuer, timeout=2, max_bytes=65536)
        site.pages["/t1/.well-known/openid-configuration"] = doc(issuer, "ftp://x/keys")
        with pytest.raises(FetchError, match="no http"):
            await discover_jwks_uri(issuer, timeout=2, max_bytes=65536)
        with pytest.raises(FetchError, match="no discovery document"):
            await discover_jwks_uri(f"{site.base}/none", timeout=2, max_bytes=65536)


async def _test_an_https_issuer_may_not_send_keys_over_http(monkeypatch):
    import agw.jwt.jwks as jwks

    async def fake_get(url, **kw):
        return 200, {}, json.dumps({"issuer": "https://idp.example", "jwks_uri": "http://idp.example/k"}).encode()
    monkeypatch.setattr(jwks, "http_get", fake_get)
    with pytest.raises(FetchError, match="not https"):
        await discover_jwks_uri("https://idp.example", timeout=2, max_bytes=65536)


async def _test_a_policy_rediscovers_at_each_refresh():
    async with Site() as site:
        issuer = f"{site.base}/realm"
        site.pages["/realm/.well-known/openid-configuration"] = doc(issuer, f"{site.base}/k1")
        site.pages["/k1"] = (200, mint.jwks(mint.jwk_of(mint.rsa_key(), "rsa")).encode())
        site.pages["/k2"] = (200, mint.jwks(mint.jwk_of(mint.ec_key("P-256"), "p256")).encode())
        p = JwtPolicy(JwtAuth(issuer=issuer, jwks=Jwks(discovery=True)))
        await p.start()
        try:
            assert await p.wait_ready(5)
            tok = mint.token("RS256", kid="rsa", payload=mint.claims(iss=issuer))
            assert p.authenticate({b"authorization": b"Bearer " + tok}, b"/").allowed
            site.pages["/realm/.well-known/openid-configuration"] = doc(issuer, f"{site.base}/k2")
            source = next(iter(p._remote.values()))
            ok, _ = await source.fetch()
            assert ok and source.stats()["jwks_uri"] == f"{site.base}/k2"
            tok2 = mint.token("ES256", kid="p256", payload=mint.claims(iss=issuer))
            assert p.authenticate({b"authorization": b"Bearer " + tok2}, b"/").allowed
        finally:
            await p.close()


def test_openid_configuration_then_rfc8414_and_the_issuer_must_match():
    run(_test_openid_configuration_then_rfc8414_and_the_issuer_must_match())


def test_an_https_issuer_may_not_send_keys_over_http(monkeypatch):
    run(_test_an_https_issuer_may_not_send_keys_over_http(monkeypatch))


def test_a_policy_rediscovers_at_each_refresh():
    run(_test_a_policy_rediscovers_at_each_refresh())


def test_discovery_needs_an_issuer_url_and_excludes_the_other_sources():
    import yaml

    from agw.config.loader import decode_native
    from agw.config.validate import check_config
    text = """
binds:
- port: 8080
  listeners:
  - routes:
    - backends: [{host: "127.0.0.1:9"}]
      policies:
        jwtAuth:
          providers:
          - {issuer: my-idp}
          - {issuer: "https://idp.example", jwks: {discovery: true, url: "https://idp.example/k"}}
"""
    problems = check_config(decode_native(yaml.safe_load(text)))
    path = "binds[0].listeners[0].routes[0].policies.jwtAuth.providers"
    assert (f"{path}[0].jwks", "OIDC discovery needs the issuer to be an http:// or https:// URL, got 'my-idp' "
            "(or give jwks: url, file or inline)") in problems
    assert (f"{path}[1].jwks", "exactly one of url, file, inline, pem, discovery is required (got url, discovery)") \
        in problems


def test_every_failed_fetch_is_a_warning(caplog):
    async def go():
        async with Site() as site:
            p = JwtPolicy(JwtAuth(issuer=f"{site.base}/gone", jwks=Jwks(discovery=True)))
            await p.start()
            try:
                source = next(iter(p._remote.values()))
                for _ in range(3):
                    ok, _ = await source.fetch()
                    assert not ok
            finally:
                await p.close()
    with caplog.at_level("INFO", logger="agw.jwt"):
        run(go())
    failures = [r for r in caplog.records if "fetch failed" in r.getMessage()]
    assert len(failures) >= 3 and all(r.levelname == "WARNING" for r in failures)
    assert "no discovery document" in failures[0].getMessage()
