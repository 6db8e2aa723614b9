"""Where key sets come from: inline, a file, or a URL fetched and refreshed in the background.

A remote source keeps the last good keys whatever happens to the identity provider: a failed refresh is
retried with exponential backoff and never wipes the set. Requests never fetch on their own: they may only
wait for a fetch the source runs (the first one, or the one unknown-`kid` refetch allowed per cooldown), and
concurrent requests share it.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import re
import ssl
import time
from typing import Callable, Optional
from urllib.parse import urlsplit

import httptools

from .._fastjwt import Key, Provider
from .keys import JwksError, parse_jwks

log = logging.getLogger("agw.jwt")

UNKNOWN_KID_COOLDOWN = 10.0      # seconds between unknown-kid refetches, per source
MIN_REFRESH = 30.0               # never refresh more often than this, whatever max-age says
BACKOFF_START, BACKOFF_MAX = 1.0, 60.0
REFRESH_AHEAD = 0.8              # refresh when this fraction of the key set's lifetime has passed
_MAX_AGE = re.compile(rb"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.I)
_NO_CACHE = re.compile(rb"(?:^|[,\s])(no-store|no-cache)\b", re.I)


class FetchError(Exception):
    """One failed fetch (the reason is logged and counted; the keys stay)."""


class StaticSource:
    """inline or file: loaded once when the policy is built (a reload builds a new policy)."""
    kind = "static"

    def __init__(self, description: str) -> None:
        self.description = description

    def stats(self) -> dict:
        return {"source": self.description}


async def http_get(url: str, *, timeout: float, max_bytes: int,
                   ssl_context: Optional[ssl.SSLContext] = None) -> tuple[int, dict[bytes, bytes], bytes]:
    """A minimal HTTP/1.1 GET (Connection: close): status, lowercase headers, body; bounded in time and size."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"unsupported URL {url!r}")
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in parts.hostname and parts.port is None:
        host_header = f"[{parts.hostname}]"
    request = (f"GET {target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: agw-jwks\r\n"
               f"Accept: application/json\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n").encode()

    class _Collector:
        def __init__(self) -> None:
            self.headers: dict[bytes, bytes] = {}
            self.body: list[bytes] = []
            self.size = 0
            self.done = False

        def on_header(self, name: bytes, value: bytes) -> None:
            key = name.lower()
            self.headers[key] = self.headers[key] + b", " + value if key in self.headers else value

        def on_body(self, chunk: bytes) -> None:
            self.size += len(chunk)
            if self.size > max_bytes:
                raise FetchError(f"response larger than {max_bytes} bytes")
            self.body.append(chunk)

        def on_message_complete(self) -> None:
            self.done = True

    async def run() -> tuple[int, dict[bytes, bytes], bytes]:
        ctx = None
        if https:
            ctx = ssl_context or ssl.create_default_context()
        reader, writer = await asyncio.open_connection(parts.hostname, port, ssl=ctx,
                                                       server_hostname=parts.hostname if https else None)
        try:
            writer.write(request)
            collector = _Collector()
            parser = httptools.HttpResponseParser(collector)
            head_bytes = 0
            while not collector.done:
                data = await reader.read(65536)
                if not data:
                    # A close-delimited body ends here; anything else is a truncated response.
                    try:
                        parser.feed_data(b"")
                    except httptools.HttpParserError:
                        pass
                    if not collector.done and parser.get_status_code() and \
                            b"content-length" not in collector.headers and \
                            b"transfer-encoding" not in collector.headers:
                        collector.done = True
                        break
                    raise FetchError("connection closed before the response was complete")
                head_bytes += len(data)
                if head_bytes > max_bytes + 65536:
                    raise FetchError(f"response larger than {max_bytes} bytes")
                try:
                    parser.feed_data(data)
                except httptools.HttpParserCallbackError as err:
                    cause = err.__context__ or err.__cause__
                    raise (cause if isinstance(cause, FetchError) else FetchError(str(err))) from None
                except httptools.HttpParserError as err:
                    raise FetchError(f"bad HTTP response: {err}") from None
            return parser.get_status_code(), collector.headers, b"".join(collector.body)
        finally:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            except Exception:
                pass

    try:
        return await asyncio.wait_for(run(), timeout)
    except asyncio.TimeoutError:
        raise FetchError(f"timed out after {timeout:g}s") from None
    except FetchError:
        raise
    except ssl.SSLError as err:
        raise FetchError(f"TLS error: {err.reason or err}") from None
    except OSError as err:
        raise FetchError(f"connection failed: {err.strerror or err}") from None


def discovery_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata is: OIDC Discovery 1.0 4 (ISSUER/.well-known/openid-configuration), then
    RFC 8414 3.1 (the well-known segment inserted before the issuer's path)."""
    base = issuer.rstrip("/")
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    rfc8414 = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{path}"
    return [f"{base}/.well-known/openid-configuration", rfc8414]


async def discover_jwks_uri(issuer: str, *, timeout: float, max_bytes: int,
                            ssl_context: Optional[ssl.SSLContext] = None) -> str:
    """The `jwks_uri` of the issuer's discovery document, whose `issuer` must equal the configured one exactly
    (OIDC Discovery 4.3, RFC 8414 3.3); raises FetchError."""
    tried = []
    for url in discovery_urls(issuer):
        status, _, body = await http_get(url, timeout=timeout, max_bytes=max_bytes, ssl_context=ssl_context)
        if status != 200:
            tried.append(f"{url}: HTTP status {status}")
            continue
        try:
            doc = json.loads(body)
        except ValueError:
            raise FetchError(f"discovery document {url} is not JSON") from None
        if not isinstance(doc, dict):
            raise FetchError(f"discovery document {url} is not a JSON object")
        if doc.get("issuer") != issuer:
            raise FetchError(f"discovery document {url} names issuer {doc.get('issuer')!r}, not the configured "
                             f"{issuer!r} (they must be equal exactly)")
        jwks_uri = doc.get("jwks_uri")
        if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme not in ("http", "https") \
                or not urlsplit(jwks_uri).hostname:
            raise FetchError(f"discovery document {url} has no http(s) jwks_uri")
        if issuer.startswith("https:") and not jwks_uri.startswith("https:"):
            raise FetchError(f"discovery document {url}: jwks_uri {jwks_uri!r} is not https like the issuer")
        return jwks_uri
    raise FetchError("no discovery document: " + "; ".join(tried))


def max_age_of(headers: dict[bytes, bytes]) -> Optional[float]:
    cc = headers.get(b"cache-control")
    if cc is None:
        return None
    if _NO_CACHE.search(cc):
        return 0.0
    m = _MAX_AGE.search(cc)
    return float(m.group(1)) if m else None


class RemoteSource:
    """A policy's handle on a JWKS URL: its providers and the settings its config gives the fetch.

    The fetching itself (keys, refresh schedule, counters, the fetch in flight) is a `Feed` shared by every
    started source of this process with the same URL and CA: several policies naming one URL share one
    fetch, and across a reload the new config's sources join the feed the old config's sources used, so
    they start with its keys, its schedule and its counters instead of from nothing.
    """
    kind = "remote"

    def __init__(self, url: Optional[str], providers: list[Provider], *, cache_duration: float, timeout: float,
                 max_bytes: int, ca_file: Optional[str] = None, clock: Callable[[], float] = time.monotonic,
                 discovery: Optional[str] = None):
        # `discovery`: the issuer whose discovery document names the JWKS URL (then `url` is None).
        self.discovery = discovery
        url = url if discovery is None else f"discovery {discovery}"
        self.url = url
        self.providers = providers
        self.cache_duration = max(cache_duration, 1.0)
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.ca_file = ca_file
        self.clock = clock
        self.unknown_kid_cooldown = UNKNOWN_KID_COOLDOWN
        self.min_refresh = min(MIN_REFRESH, self.cache_duration)
        self.backoff_start, self.backoff_max = BACKOFF_START, BACKOFF_MAX
        self._ssl: Optional[ssl.SSLContext] = None
        ca_digest = ""
        if ca_file:
            # The CA's content is part of the feed's identity: a reload with a changed CA file fetches anew.
            with open(ca_file, "rb") as f:
                ca_digest = hashlib.sha256(f.read()).hexdigest()
        if url.startswith("https:") or (discovery or "").startswith("https:"):
            self._ssl = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
        self.feed_key = (url, ca_file or "", ca_digest)
        self.feed: Optional[Feed] = None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.feed is None:
            self.feed = _attach(self)

    async def close(self) -> None:
        feed, self.feed = self.feed, None
        if feed is not None:
            await feed.detach(self)

    # -- what the policy asks ----------------------------------------------------------------------------------

    def fetch(self) -> asyncio.Future:
        """Start a fetch, or join the one in flight (started sources only); resolves to (ok, lifetime)."""
        if self.feed is None:
            raise RuntimeError("the JWKS source is not started")
        return self.feed.fetch()

    def want_keys(self, unknown_kid: bool) -> Optional[asyncio.Future]:
        """A fetch a request may wait for, or None (answer now); see Feed.want_keys."""
        return None if self.feed is None else self.feed.want_keys(unknown_kid)

    def ready(self) -> bool:
        """Ready means holding keys: a source whose fetches all failed so far is not ready."""
        return self.feed is not None and self.feed.has_keys

    def answered(self) -> bool:
        """The first fetch has an answer, keys or a failure."""
        return self.feed is not None and (self.feed.has_keys or self.feed.first_fetch_done)

    @property
    def has_keys(self) -> bool:
        return self.feed is not None and self.feed.has_keys

    @property
    def first_fetch_done(self) -> bool:
        return self.feed is not None and self.feed.first_fetch_done

    @property
    def last_error(self) -> Optional[str]:
        return None if self.feed is None else self.feed.last_error

    @property
    def counts(self) -> dict[str, int]:
        return dict(_NO_COUNTS) if self.feed is None else self.feed.counts

    def stats(self) -> dict:
        feed = self.feed
        age = None if feed is None or feed.last_success is None else self.clock() - feed.last_success
        out = {"source": self.url, "has_keys": self.has_keys, "key_age_seconds": age,
               "last_error": self.last_error, "fetches": dict(self.counts)}
        if self.discovery is not None:
            out["jwks_uri"] = None if feed is None else feed.jwks_uri
        return out


_NO_COUNTS = {"ok": 0, "error": 0, "unchanged": 0, "unknown_kid_refetch": 0}
_feeds: dict[tuple[str, str, str], "Feed"] = {}


def _attach(source: RemoteSource) -> "Feed":
    """The live feed for the source's URL and CA in this event loop (a new one if none), with the source
    subscribed: its providers get the feed's keys at once."""
    loop = asyncio.get_running_loop()
    feed = _feeds.get(source.feed_key)
    if feed is None or feed.loop is not loop or feed.closed:
        feed = _feeds[source.feed_key] = Feed(source.url, loop, discovery=source.discovery)
    feed.subscribe(source)
    return feed


class Feed:
    """One JWKS URL's keys, first fetch, background refresh, counters and the fetch in flight.

    Its settings (cache duration, timeout, limits, backoff) are those of its newest source: after a reload,
    the new config's. It stops when its last source closes.
    """

    def __init__(self, url: str, loop: asyncio.AbstractEventLoop, discovery: Optional[str] = None) -> None:
        self.url = url
        self.discovery = discovery
        self.jwks_uri: Optional[str] = None if discovery is not None else url
        self.loop = loop
        self.sources: list[RemoteSource] = []
        self.keys: Optional[list[Key]] = None
        self.closed = False
        self._inflight: Optional[asyncio.Future] = None
        self._task: Optional[asyncio.Task] = None
        self._wake = asyncio.Event()
        self.last_unknown_kid_fetch = -1e18
        self.first_fetch_done = False     # succeeded or failed: the feed has an answer either way
        self.has_keys = False
        self.last_success: Optional[float] = None
        self.last_error: Optional[str] = None
        self.counts = dict(_NO_COUNTS)
        self.next_refresh_in: float = 0.0

    @property
    def settings(self) -> RemoteSource:
        return self.sources[-1]

    def subscribe(self, source: RemoteSource) -> None:
        self.sources.append(source)
        if self.keys is not None:
            for provider in source.providers:
                provider.set_keys(self.keys)
        if self._task is None:
            self._task = self.loop.create_task(self._run(), name=f"jwks {self.url}")

    async def detach(self, source: RemoteSource) -> None:
        if source in self.sources:
            self.sources.remove(source)
        if self.sources or self.closed:
            return
        self.closed = True
        if _feeds.get(source.feed_key) is self:
            del _feeds[source.feed_key]
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self._inflight is not None and not self._inflight.done():
            self._inflight.cancel()

    async def _run(self) -> None:
        backoff = None
        while True:
            ok, lifetime = await self.fetch()
            settings = self.settings
            if ok:
                backoff = None
                delay = max(settings.min_refresh, lifetime * REFRESH_AHEAD)
            else:
                backoff = settings.backoff_start if backoff is None else min(backoff * 2, settings.backoff_max)
                delay = backoff * (0.8 + 0.4 * random.random())
            self.next_refresh_in = delay
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    def fetch(self) -> asyncio.Future:
        """Start a fetch, or join the one in flight. The future resolves to (ok, lifetime); it never raises."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._fetch_once())
        return self._inflight

    async def _fetch_once(self) -> tuple[bool, float]:
        settings = self.settings
        try:
            url = self.url
            if self.discovery is not None:
                # Re-discovered at every refresh: a provider that moves its keys is followed.
                url = self.jwks_uri = await discover_jwks_uri(self.discovery, timeout=settings.timeout,
                                                              max_bytes=settings.max_bytes, ssl_context=settings._ssl)
            status, headers, body = await http_get(url, timeout=settings.timeout, max_bytes=settings.max_bytes,
                                                   ssl_context=settings._ssl)
            if status != 200:
                raise FetchError(f"HTTP status {status}")
            keys = parse_jwks(body, allow_hmac=False, source=self.url)
        except (FetchError, JwksError) as err:
            self.counts["error"] += 1
            self.last_error = str(err)
            # Every failure is a WARNING: a provider that keeps failing is what an operator must see.
            log.warning("jwks %s: fetch failed (%s)%s", self.url, err,
                        "; keeping the last good keys" if self.has_keys else "")
            self.first_fetch_done = True
            return False, 0.0
        except Exception as err:  # never let a fetch kill the refresh loop
            self.counts["error"] += 1
            self.last_error = f"unexpected: {err!r}"
            log.exception("jwks %s: unexpected fetch failure", self.url)
            self.first_fetch_done = True
            return False, 0.0
        self.install(keys)
        self.last_error = None
        self.first_fetch_done = True
        max_age = max_age_of(headers)
        settings = self.settings
        lifetime = settings.cache_duration if max_age is None else min(max(max_age, settings.min_refresh),
                                                                       settings.cache_duration)
        return True, lifetime

    def install(self, keys: list[Key]) -> None:
        changed = False
        self.keys = keys
        for source in self.sources:
            for provider in source.providers:
                changed |= provider.set_keys(keys)
        self.has_keys = True
        self.last_success = self.settings.clock() if self.sources else time.monotonic()
        self.counts["ok" if changed else "unchanged"] += 1
        if changed:
            log.info("jwks %s: %d key(s) installed: %s", self.url, len(keys), [k.kid for k in keys])

    def want_keys(self, unknown_kid: bool) -> Optional[asyncio.Future]:
        """A fetch a request may wait for, or None (answer now). Called only after every key-free check passed.

        No keys yet: wait for the fetch in flight (the first one, or a retry) if any. Unknown kid with keys:
        one refetch per cooldown; within the cooldown, join a fetch already in flight or give up.
        """
        inflight = self._inflight if self._inflight is not None and not self._inflight.done() else None
        if not self.has_keys:
            # Between a start and the refresh task's first step there is no fetch in flight yet: start it here
            # rather than answer `keys unavailable` to a request that arrives in that window.
            return inflight if inflight is not None or self.first_fetch_done else self.fetch()
        if not unknown_kid or inflight is not None:
            return inflight
        settings = self.settings
        now = settings.clock()
        if now - self.last_unknown_kid_fetch < settings.unknown_kid_cooldown:
            return None
        self.last_unknown_kid_fetch = now
        self.counts["unknown_kid_refetch"] += 1
        # the background loop re-arms its timer after this fetch
        return self.fetch()
