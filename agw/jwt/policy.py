"""JwtPolicy: what the proxy calls. Builds providers, keys and the Cython core from the config once."""
from __future__ import annotations

import asyncio
import difflib
import logging
import os
import re
from typing import Any, Awaitable, Callable, Optional, Union

from ..config import ConfigError, normalize_mode, parse_duration
from ..config.model import Jwks, JwtAuth
from ..config.validate import MAX_HEADER_SEPARATORS, claim_header_problem
from .._fastjwt import CLAIM_BITS, AuthResult, Core, Pending, Provider
from .errors import results_for_mode, scope_result
from .jwks import RemoteSource, StaticSource
from .keys import JwksError, parse_jwks, parse_pem
from .resource_metadata import MetadataAnswer

CACHE_PURGE_INTERVAL = 60.0
UNKNOWN_ISSUERS_LOGGED = 64     # distinct unknown issuers logged per policy (a flood of made-up ones logs no more)
log = logging.getLogger("agw.jwt")


Authenticate = Callable[[dict[bytes, bytes], bytes], Union[AuthResult, Awaitable[AuthResult]]]


def profile_args(profile) -> dict:
    """The core Provider's token-profile arguments from a config provider (or single-shape jwtAuth)."""
    subjects = None
    if profile.subjects is not None:
        exact = frozenset(s.exact for s in profile.subjects if s.exact is not None)
        prefixes = tuple(s.prefix for s in profile.subjects if s.prefix is not None)
        patterns = tuple(re.compile(s.regex) for s in profile.subjects if s.regex is not None)
        subjects = (exact, prefixes, patterns)
    return {"types": profile.allowed_types or None,
            "max_lifetime": parse_duration(profile.max_lifetime) if profile.max_lifetime is not None else 0.0,
            "subjects": subjects, "scopes": profile.required_scopes or None}


def header_spellings(name: bytes) -> frozenset[bytes]:
    """`name` (lower case) with each "-" or "_" written either way: the names a CGI/WSGI server reads alike."""
    parts = name.replace(b"_", b"-").split(b"-")
    if len(parts) - 1 > MAX_HEADER_SEPARATORS:
        raise ValueError(f"header name {name.decode('latin-1')!r} has more than {MAX_HEADER_SEPARATORS} '-' or '_'")
    out = [parts[0]]
    for part in parts[1:]:
        out = [head + sep + part for head in out for sep in (b"-", b"_")]
    return frozenset(out)


def _token_exp(verdict: Any) -> float:
    """The `exp` (epoch seconds) of the token a verdict accepted; 0 when it carries none."""
    claims = getattr(verdict, "claims", None)
    exp = claims.get("exp") if claims else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else 0.0


class JwtPolicy:
    """A compiled `jwtAuth` policy. `authenticate()` is synchronous except when a JWKS fetch must be awaited.

    It is a request policy of agw/chain.py: `apply(request)` returns the core's AuthResult (a Verdict), or a
    coroutine of one while keys are fetched.
    """

    kind = "jwt"

    # authenticate(headers, target): `headers` maps lower-case names to values (bytes), `target` is the request
    # target. Returns an AuthResult, or an awaitable of one when a JWKS fetch must finish first. It is the
    # Cython core's own method (bound in __init__), so a request pays no Python frame here; the core calls
    # back into this class only when keys are missing.
    authenticate: Authenticate

    def __init__(self, cfg: JwtAuth, base_dir: str = ".", *, name: str = "") -> None:
        self.name = name
        self.mode: str = normalize_mode(cfg.mode) or "strict"
        self._providers: list[Provider] = []
        self._remote: dict[tuple[Optional[str], Optional[str], Optional[str]], RemoteSource] = {}
        self._purge_task: Optional[asyncio.Task] = None
        self._unknown_seen: set[str] = set()

        specs = ([("", cfg.issuer, cfg.audiences, cfg.jwks, cfg.jwt_validation_options, cfg)] if cfg.providers is None
                 else [(f"providers[{i}].", p.issuer, p.audiences, p.jwks, p.jwt_validation_options, p)
                       for i, p in enumerate(cfg.providers)])
        self.metadata: Optional[MetadataAnswer] = None
        if cfg.resource_metadata is not None:
            self.metadata = MetadataAnswer(cfg, cfg.resource_metadata)
        self.resource_metadata_url = self.metadata.url if self.metadata is not None else ""
        problems: list[tuple[str, str]] = []
        for prefix, issuer, audiences, jwks, options, profile in specs:
            required = 0
            for ci, claim in enumerate(options.required_claims if options is not None else ["exp"]):
                bit = CLAIM_BITS.get(claim)
                if bit is None:   # validation refuses these first; never let one through as "no requirement"
                    problems.append((f"{prefix}jwtValidationOptions.requiredClaims[{ci}]",
                                     f"unsupported claim {claim!r}"))
                    continue
                required |= bit
            try:
                provider = Provider(issuer, audiences, required, **profile_args(profile))
            except (ValueError, re.error) as err:   # validation refuses these first
                problems.append((f"{prefix}subjects", str(err)))
                continue
            if provider.scopes is not None:
                provider.scope_result = scope_result(self.mode, issuer, provider.scopes, self.resource_metadata_url)
            self._providers.append(provider)
            try:
                self._attach_source(provider, jwks, base_dir, prefix)
            except ConfigError as err:
                problems.extend(err.problems)
        if problems:
            raise ConfigError(problems)

        loc = cfg.location
        header_name, prefix_text, param, cookie, where = "authorization", "Bearer ", "", "", "header"
        if loc is not None and loc.query_parameter is not None:
            where, param = "query", loc.query_parameter.name
        elif loc is not None and loc.cookie is not None:
            where, cookie = "cookie", loc.cookie.name
        elif loc is not None and loc.header is not None:
            header_name, prefix_text = loc.header.name, loc.header.prefix
        self.credential_header: Optional[bytes] = header_name.lower().encode() if where == "header" else None
        self.location = where

        for ci, c in enumerate(cfg.claims_to_headers):
            # Also checked by config validation; repeated here for policies built without it.
            problem = claim_header_problem(c.header, header_name if where == "header" else None)
            if problem is not None:
                raise ConfigError([(f"claimsToHeaders[{ci}].header", problem)])
        claim_headers = [(c.claim, c.header.lower().encode("latin-1")) for c in cfg.claims_to_headers]
        # Client headers the proxy drops on every request of the route: each claim header in every spelling a
        # CGI/WSGI backend reads as the same name (x-user-id, x_user_id, x_user-id...), so no client copy can
        # stand beside or merge with the injected value; and the other spellings of the token's own header.
        strip: set[bytes] = set()
        for _, h in claim_headers:
            strip |= header_spellings(h)
        if self.credential_header is not None:
            try:
                strip |= header_spellings(self.credential_header) - {self.credential_header}
            except ValueError as err:
                raise ConfigError([("location.header.name", str(err))]) from None
        self.strip_headers: frozenset[bytes] = frozenset(strip)
        # The credential header is dropped from verified requests; a Cookie is rewritten (always set aside).
        self.edited_headers: frozenset[bytes] = frozenset(
            [self.credential_header] if self.credential_header is not None else [])
        self.skew = parse_duration(cfg.clock_skew)
        self._core = Core(
            self._providers, results_for_mode(self.mode, self.resource_metadata_url), skew=self.skew,
            max_token=cfg.max_token_bytes, remove_credential=not cfg.forward_token, claim_headers=claim_headers,
            location=where,
            header_name=header_name.lower().encode("latin-1"), prefix=prefix_text.encode("latin-1"),
            param_name=param.encode(), cookie_name=cookie.encode(), cache_enabled=cfg.cache.enabled,
            cache_max_entries=cfg.cache.max_entries, cache_max_bytes=cfg.cache.max_bytes, on_pending=self._pending,
            on_unknown_issuer=self._unknown_issuer)
        self.authenticate = self._core.authenticate
        # The core's own method: no Python frame per request. A route that publishes RFC 9728 metadata pays one
        # to look at the path first.
        self.apply = self._core.apply if self.metadata is None else self._apply_with_metadata
        # Read by the proxy when a tunnel opens (agw/proxy/tunnel.py); None: tunnels outlive their token.
        self.tunnel_deadline = _token_exp if cfg.close_on_token_expiry else None

    def _apply_with_metadata(self, request):
        answer = self.metadata.match(request)
        return answer if answer is not None else self._core.apply(request)

    def _attach_source(self, provider: Provider, jwks: Optional[Jwks], base_dir: str, prefix: str) -> None:
        if jwks is None:
            jwks = Jwks(discovery=True)
        if jwks.inline is not None:
            try:
                provider.set_keys(parse_jwks(jwks.inline, source=f"{provider.issuer} (inline)"))
            except JwksError as err:
                raise ConfigError([(f"{prefix}jwks.inline", str(err))]) from None
            provider.source = StaticSource("inline")
        elif jwks.file is not None or jwks.pem is not None:
            field = "file" if jwks.file is not None else "pem"
            name = jwks.file if jwks.file is not None else jwks.pem
            path = name if os.path.isabs(name) else os.path.join(base_dir, name)
            try:
                with open(path, "rb") as f:
                    data = f.read(max(jwks.max_bytes, 1) + 1)
            except OSError as err:
                raise ConfigError([(f"{prefix}jwks.{field}", f"cannot read {path}: {err.strerror or err}")]) from None
            if len(data) > jwks.max_bytes:
                raise ConfigError([(f"{prefix}jwks.{field}", f"larger than {jwks.max_bytes} bytes")])
            try:
                provider.set_keys(parse_jwks(data, source=path) if field == "file" else parse_pem(data, source=path))
            except JwksError as err:
                raise ConfigError([(f"{prefix}jwks.{field}", str(err))]) from None
            provider.any_kid = field == "pem"
            provider.source = StaticSource(f"{field} {path}")
        else:
            ca = jwks.ca_certificates
            if ca is not None and not os.path.isabs(ca):
                ca = os.path.join(base_dir, ca)
            discovery = provider.issuer if jwks.discovery else None
            key = (jwks.url, ca, discovery)
            source = self._remote.get(key)
            if source is None:
                try:
                    source = RemoteSource(jwks.url, [], cache_duration=parse_duration(jwks.cache_duration),
                                          timeout=parse_duration(jwks.fetch_timeout), max_bytes=jwks.max_bytes,
                                          ca_file=ca, discovery=discovery)
                except (OSError, ValueError) as err:
                    raise ConfigError([(f"{prefix}jwks.caCertificates", f"cannot load: {err}")]) from None
                self._remote[key] = source
            source.providers.append(provider)
            provider.source = source

    # -- the request path ------------------------------------------------------------------------------------

    def _unknown_issuer(self, iss: str) -> None:
        """Log a token's unknown issuer once (up to UNKNOWN_ISSUERS_LOGGED of them), with the closest configured
        one: a trailing slash or a scheme typo is the usual cause."""
        seen = self._unknown_seen
        if iss in seen or len(seen) >= UNKNOWN_ISSUERS_LOGGED:
            return
        seen.add(iss)
        configured = sorted({p.issuer for p in self._providers})
        close = difflib.get_close_matches(iss, configured, n=1, cutoff=0.6)
        log.warning("jwt%s: unknown issuer %r in a token%s", f" {self.name}" if self.name else "", iss[:200],
                    f"; the closest configured issuer is {close[0]!r}" if close else
                    f" (configured: {', '.join(map(repr, configured[:5]))})", extra={"event": "unknown_issuer"})

    def _pending(self, pending: Pending) -> Union[AuthResult, Awaitable[AuthResult]]:
        waits = []
        for provider in pending.providers:
            source = provider.source
            if isinstance(source, RemoteSource):
                fut = source.want_keys(unknown_kid=provider.has_keys)
                if fut is not None and fut not in waits:
                    waits.append(fut)
        if not waits:
            return self._core.resolve(pending)
        return self._after_fetch(pending, waits)

    async def _after_fetch(self, pending: Pending, waits: list) -> AuthResult:
        await asyncio.wait([asyncio.shield(w) for w in waits])
        return self._core.resolve(pending)

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        for source in self._remote.values():
            await source.start()
        if self._purge_task is None and self._core.cache_stats()["enabled"]:
            self._purge_task = asyncio.get_running_loop().create_task(self._purge_loop())

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(CACHE_PURGE_INTERVAL)
            self._core.purge_expired()

    async def close(self) -> None:
        for source in self._remote.values():
            await source.close()
        task, self._purge_task = self._purge_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def wait_ready(self, timeout: float) -> bool:
        """Wait (bounded) until ready(): handy for start-up and tests."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.ready() and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return self.ready()

    def ready(self) -> bool:
        return all(s.ready() for s in self._remote.values())

    def stats(self) -> dict:
        providers = []
        for p in self._providers:
            src = p.source
            entry = {"issuer": p.issuer, "keys": p.key_count, "generation": p.generation}
            if isinstance(src, RemoteSource):
                entry.update(src.stats())
            else:
                entry["source"] = src.description if src is not None else None
                entry["key_age_seconds"] = None
            providers.append(entry)
        return {"name": self.name, "mode": self.mode, "cache": self._core.cache_stats(), "providers": providers}

    @property
    def core(self) -> Core:
        """The Cython core (tests and benchmarks call it directly)."""
        return self._core
