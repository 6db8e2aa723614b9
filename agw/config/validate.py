"""Checks msgspec cannot express: one-of fields, durations, regexes, addresses, modes.

Each check appends (field path, reason) so that a config with several mistakes reports all of them at once.
"""
from __future__ import annotations

import re
from typing import Optional
from urllib.parse import urlsplit

from .._fastjwt import CLAIM_BITS
from .authz import check_authorization
from .durations import parse_duration
from .errors import join_path
from .model import PROFILE_FIELDS, Config, Jwks, JwtAuth, Location, Policies, Provider, Route, Tls, TokenProfile

MODES = ("strict", "optional", "permissive")
# What requiredClaims may name is what the verification core enforces: its own table, never a copy of it.
CLAIMS_ENFORCEABLE: tuple[str, ...] = tuple(CLAIM_BITS)
_TOKEN_CHARS = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")  # RFC 9110 token; \Z: $ would let a final newline in
# Headers a claim must never set (claimsToHeaders): message framing, hop-by-hop and routing headers, what agw itself
# writes upstream, and credentials. Compared lower-case with "_" read as "-" (servers behind CGI/WSGI read them alike).
RESERVED_CLAIM_HEADERS = frozenset({
    "content-length", "transfer-encoding", "host", "connection", "keep-alive", "te", "trailer", "upgrade",
    "forwarded", "authorization", "cookie"})
RESERVED_CLAIM_HEADER_PREFIXES = ("proxy-", "x-forwarded-")
# The policy strips every -/_ spelling of claim and credential headers (2 ** separators names): bounded here.
MAX_HEADER_SEPARATORS = 8


class Problems(list):
    def add(self, path: str, reason: str) -> None:
        self.append((path, reason))

    def duration(self, path: str, value: object) -> None:
        try:
            if parse_duration(value) <= 0 and not path.endswith(("clockSkew", "startupGrace")):
                self.add(path, "must be greater than zero")
        except ValueError as e:
            self.add(path, str(e))


def split_host_port(value: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port`; raises ValueError."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    n = int(port)
    if not 0 < n < 65536:
        raise ValueError(f"port {n} out of range")
    return host, n


def normalize_mode(mode: str) -> Optional[str]:
    m = mode.strip().lower()
    return m if m in MODES else None


def check_config(cfg: Config, prefix: str = "") -> list[tuple[str, str]]:
    p = Problems()
    s = cfg.config
    for name in ("connect_timeout", "response_timeout", "request_header_timeout", "keepalive_timeout",
                 "body_idle_timeout", "upstream_idle_timeout", "startup_grace"):
        camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), name)
        p.duration(join_path(prefix, f"config.{camel}"), getattr(s, name))
    for name, lo in (("maxHeaderBytes", 1024), ("maxHeaders", 8), ("maxConnections", 1), ("maxTunnels", 0)):
        val = getattr(s, re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name))
        if val < lo:
            p.add(join_path(prefix, f"config.{name}"), f"must be at least {lo}")
    seen_ports: dict[tuple[str, int], str] = {}
    for bi, bind in enumerate(cfg.binds):
        bpath = join_path(prefix, f"binds[{bi}]")
        if not 0 <= bind.port < 65536:
            p.add(f"{bpath}.port", f"port {bind.port} out of range")
        key = (bind.address, bind.port)
        if key in seen_ports:
            p.add(f"{bpath}.port", f"port {bind.port} is already bound by {seen_ports[key]}")
        seen_ports[key] = bpath
        if bind.tls is not None:
            check_tls(p, f"{bpath}.tls", bind.tls)
        for li, listener in enumerate(bind.listeners):
            lpath = f"{bpath}.listeners[{li}]"
            if listener.protocol.upper() not in ("HTTP", "HTTPS"):
                p.add(f"{lpath}.protocol", f"unsupported protocol {listener.protocol!r} (HTTP or HTTPS)")
            elif listener.protocol.upper() == "HTTPS" and bind.tls is None:
                # TLS is the bind's: an HTTPS listener on a plain bind would be served in clear text.
                p.add(f"{lpath}.protocol", "HTTPS needs the bind's `tls` (this bind serves plain HTTP)")
            if listener.hostname is not None:
                p.add(f"{lpath}.hostname", "not supported: set `hostnames` on each route")
            check_policies(p, f"{lpath}.policies", listener.policies)
            for ri, route in enumerate(listener.routes):
                check_route(p, f"{lpath}.routes[{ri}]", route)
    return list(p)


def check_route(p: Problems, path: str, route: Route) -> None:
    for hi, host in enumerate(route.hostnames):
        if not host or (host.count("*") and not (host.startswith("*.") and host.count("*") == 1)):
            p.add(f"{path}.hostnames[{hi}]", f"invalid hostname {host!r} (a name, or *.suffix)")
    for mi, match in enumerate(route.matches):
        mpath = f"{path}.matches[{mi}]"
        if match.path is not None:
            set_ = [k for k in ("exact", "path_prefix", "regex") if getattr(match.path, k) is not None]
            if len(set_) != 1:
                p.add(f"{mpath}.path", "exactly one of exact, pathPrefix, regex is required")
            elif match.path.regex is not None:
                _check_regex(p, f"{mpath}.path.regex", match.path.regex)
            else:
                val = match.path.exact if match.path.exact is not None else match.path.path_prefix
                if not val.startswith("/"):
                    p.add(f"{mpath}.path", f"must start with '/', got {val!r}")
        if match.method is not None and not _TOKEN_CHARS.match(match.method):
            p.add(f"{mpath}.method", f"invalid method {match.method!r}")
        for hi, hm in enumerate(match.headers):
            hpath = f"{mpath}.headers[{hi}]"
            if not _TOKEN_CHARS.match(hm.name):
                p.add(f"{hpath}.name", f"invalid header name {hm.name!r}")
            set_ = [k for k in ("exact", "regex") if getattr(hm.value, k) is not None]
            if len(set_) != 1:
                p.add(f"{hpath}.value", "exactly one of exact, regex is required")
            elif hm.value.regex is not None:
                _check_regex(p, f"{hpath}.value.regex", hm.value.regex)
    if not route.backends:
        p.add(f"{path}.backends", "at least one backend is required")
    for bi, backend in enumerate(route.backends):
        try:
            split_host_port(backend.host)
        except ValueError as e:
            p.add(f"{path}.backends[{bi}].host", str(e))
        if backend.weight < 1:
            p.add(f"{path}.backends[{bi}].weight", "must be at least 1")
    for ui, token in enumerate(route.upgrades):
        if not _TOKEN_CHARS.match(token):
            p.add(f"{path}.upgrades[{ui}]", f"invalid upgrade token {token!r}")
        elif token.lower() == "h2c":
            # agw speaks HTTP/1.1 to backends: an h2c upgrade would need it to speak HTTP/2 on both sides.
            p.add(f"{path}.upgrades[{ui}]", "h2c is not supported")
    check_policies(p, f"{path}.policies", route.policies)


def _check_regex(p: Problems, path: str, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as e:
        p.add(path, f"invalid regex: {e}")


def check_policies(p: Problems, path: str, policies: Optional[Policies]) -> None:
    if policies is None:
        return
    if policies.timeout is not None:
        for field, camel in (("request_timeout", "requestTimeout"),
                             ("backend_request_timeout", "backendRequestTimeout"),
                             ("tunnel_idle_timeout", "tunnelIdleTimeout")):
            val = getattr(policies.timeout, field)
            if val is not None:
                p.duration(f"{path}.timeout.{camel}", val)
    if policies.jwt_auth is not None:
        check_jwt_auth(p, f"{path}.jwtAuth", policies.jwt_auth)
    mcp = policies.mcp_authentication
    if mcp is not None:
        if policies.jwt_auth is not None:
            p.add(f"{path}.mcpAuthentication", "not allowed together with jwtAuth (it is a jwtAuth with resource "
                  "metadata: use one of them)")
        if mcp.provider is not None:
            p.add(f"{path}.mcpAuthentication.provider", "not supported: agw does not proxy or adapt the "
                  "authorization server's endpoints; leave it out (agw verifies tokens and publishes the metadata)")
        check_jwt_auth(p, f"{path}.mcpAuthentication", mcp.as_jwt_auth())
    if policies.authorization is not None:
        check_authorization(p, f"{path}.authorization", policies.authorization)


def check_jwt_auth(p: Problems, path: str, ja: JwtAuth) -> None:
    if normalize_mode(ja.mode) is None:
        p.add(f"{path}.mode", f"invalid mode {ja.mode!r} (Strict, Optional or Permissive)")
    p.duration(f"{path}.clockSkew", ja.clock_skew)
    if ja.location is not None:
        check_location(p, f"{path}.location", ja.location)
    if not 256 <= ja.max_token_bytes <= 1 << 20:
        p.add(f"{path}.maxTokenBytes", "must be between 256 and 1048576")
    if ja.cache.max_entries < 0 or ja.cache.max_bytes < 0:
        p.add(f"{path}.cache", "limits must not be negative")
    credential = ja.location.header.name if ja.location is not None and ja.location.header is not None else None
    for ci, ch in enumerate(ja.claims_to_headers):
        if not ch.claim:
            p.add(f"{path}.claimsToHeaders[{ci}].claim", "required")
        problem = claim_header_problem(ch.header, credential)
        if problem is not None:
            p.add(f"{path}.claimsToHeaders[{ci}].header", problem)
    if ja.resource_metadata is not None:
        check_resource_metadata(p, f"{path}.resourceMetadata", ja)
    if ja.providers is not None:
        for field in ("issuer", "audiences", "jwks", "jwt_validation_options", *PROFILE_FIELDS):
            if getattr(ja, field) is not None:
                camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), field)
                p.add(f"{path}.{camel}", "not allowed together with providers (set it on each provider)")
        if not ja.providers:
            p.add(f"{path}.providers", "at least one provider is required")
        for pi, prov in enumerate(ja.providers):
            check_provider(p, f"{path}.providers[{pi}]", prov)
    else:
        if ja.issuer is None:
            p.add(f"{path}.issuer", "required")
        elif not ja.issuer:
            p.add(f"{path}.issuer", "must not be empty")
        check_jwks(p, f"{path}.jwks", ja.jwks, ja.issuer or "")
        _check_claims(p, path, ja.jwt_validation_options)
        check_profile(p, path, ja)


def _url_problem(value: str) -> Optional[str]:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"invalid URL {value!r} (http:// or https://)"
    if parts.fragment or value.endswith("#"):
        return f"URL {value!r} must not have a fragment"
    return None


def check_resource_metadata(p: Problems, path: str, ja: JwtAuth) -> None:
    """RFC 9728 metadata: a resource URL (no fragment), scopes as scope-tokens, and bearer methods that are
    what agw does: it reads the token from one place only, and publishes nothing else."""
    from ..jwt.resource_metadata import bearer_methods   # jwt imports config: not at module level
    rm = ja.resource_metadata
    problem = _url_problem(rm.resource)
    if problem is not None:
        p.add(f"{path}.resource", problem)
    for field, camel in (("resource_documentation", "resourceDocumentation"),
                         ("resource_policy_uri", "resourcePolicyUri")):
        value = getattr(rm, field)
        if value is not None and _url_problem(value) is not None:
            p.add(f"{path}.{camel}", _url_problem(value))
    for si, scope in enumerate(rm.scopes_supported or []):
        if not _SCOPE_TOKEN.match(scope):
            p.add(f"{path}.scopesSupported[{si}]", f"invalid scope {scope!r} (one scope-token, no spaces)")
    if rm.bearer_methods_supported is not None:
        honoured = bearer_methods(ja)
        if sorted(set(rm.bearer_methods_supported)) != honoured:
            p.add(f"{path}.bearerMethodsSupported",
                  f"agw reads this policy's token from {honoured or 'a place RFC 9728 has no name for'} only; "
                  f"it cannot honour {rm.bearer_methods_supported} (leave it out: agw publishes what it does)")


def claim_header_problem(name: str, credential_header: Optional[str] = None) -> Optional[str]:
    """Why claimsToHeaders may not set header `name` (None if it may); `credential_header` is the token's own."""
    if not _TOKEN_CHARS.match(name):
        return f"invalid header name {name!r}"
    folded = name.lower().replace("_", "-")
    if folded.count("-") > MAX_HEADER_SEPARATORS:
        return f"header name {name!r} has more than {MAX_HEADER_SEPARATORS} '-' or '_'"
    if (folded in RESERVED_CLAIM_HEADERS or folded.startswith(RESERVED_CLAIM_HEADER_PREFIXES)
            or (credential_header is not None and folded == credential_header.lower().replace("_", "-"))):
        return (f"{name!r} cannot carry a claim (framing, hop-by-hop, routing, forwarding and credential headers "
                f"are reserved)")
    return None


def check_provider(p: Problems, path: str, prov: Provider) -> None:
    if not prov.issuer:
        p.add(f"{path}.issuer", "must not be empty")
    if prov.audiences is not None and any(not a for a in prov.audiences):
        p.add(f"{path}.audiences", "must not contain an empty string")
    check_jwks(p, f"{path}.jwks", prov.jwks, prov.issuer)
    _check_claims(p, path, prov.jwt_validation_options)
    check_profile(p, path, prov)


_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+\Z")   # RFC 6749 3.3 scope-token


def check_profile(p: Problems, path: str, prof: TokenProfile) -> None:
    """allowedTypes, maxLifetime, subjects, requiredScopes: the token-profile checks (issue 18)."""
    if prof.allowed_types is not None:
        if not prof.allowed_types:
            p.add(f"{path}.allowedTypes", "must not be empty (leave it out to accept any type)")
        for ti, t in enumerate(prof.allowed_types):
            if not t or not _TOKEN_CHARS.match(t.replace("/", "")):
                p.add(f"{path}.allowedTypes[{ti}]", f"invalid type {t!r} (a media type such as at+jwt)")
    if prof.max_lifetime is not None:
        p.duration(f"{path}.maxLifetime", prof.max_lifetime)
    if prof.subjects is not None:
        if not prof.subjects:
            p.add(f"{path}.subjects", "must not be empty (leave it out to accept any subject)")
        for si, sm in enumerate(prof.subjects):
            set_ = [k for k in ("exact", "prefix", "regex") if getattr(sm, k) is not None]
            if len(set_) != 1:
                p.add(f"{path}.subjects[{si}]", "exactly one of exact, prefix, regex is required")
            elif sm.regex is not None:
                _check_regex(p, f"{path}.subjects[{si}].regex", sm.regex)
            elif not (sm.exact if sm.exact is not None else sm.prefix):
                p.add(f"{path}.subjects[{si}].{set_[0]}", "must not be empty")
    if prof.required_scopes is not None:
        if not prof.required_scopes:
            p.add(f"{path}.requiredScopes", "must not be empty (leave it out to require none)")
        for si, scope in enumerate(prof.required_scopes):
            if not _SCOPE_TOKEN.match(scope):
                p.add(f"{path}.requiredScopes[{si}]", f"invalid scope {scope!r} (one scope-token, no spaces)")


def _check_claims(p: Problems, path: str, opts) -> None:
    if opts is None:
        return
    for ci, claim in enumerate(opts.required_claims):
        if claim not in CLAIMS_ENFORCEABLE:
            p.add(f"{path}.jwtValidationOptions.requiredClaims[{ci}]",
                  f"unsupported claim {claim!r} (one of {', '.join(CLAIMS_ENFORCEABLE)})")


def check_jwks(p: Problems, path: str, jwks: Optional[Jwks], issuer: str = "") -> None:
    """A key set; None (no `jwks`) and `discovery: true` read the issuer's discovery document, so the issuer
    must then be an http(s) URL."""
    if jwks is None or jwks.discovery:
        if issuer and not re.match(r"^https?://[^/\s]+", issuer):
            p.add(path, f"OIDC discovery needs the issuer to be an http:// or https:// URL, got {issuer!r} "
                  "(or give jwks: url, file or inline)")
    if jwks is None:
        return
    set_ = [k for k in ("url", "file", "inline", "pem") if getattr(jwks, k) is not None]
    if jwks.discovery:
        set_.append("discovery")
    if len(set_) != 1:
        p.add(path, "exactly one of url, file, inline, pem, discovery is required"
              + (f" (got {', '.join(set_)})" if set_ else ""))
    if jwks.url is not None and not re.match(r"^https?://[^/\s]+", jwks.url):
        p.add(f"{path}.url", f"invalid URL {jwks.url!r} (http:// or https://)")
    p.duration(f"{path}.cacheDuration", jwks.cache_duration)
    p.duration(f"{path}.fetchTimeout", jwks.fetch_timeout)
    if jwks.max_bytes < 1024:
        p.add(f"{path}.maxBytes", "must be at least 1024")


def check_location(p: Problems, path: str, loc: Location) -> None:
    set_ = [k for k in ("header", "query_parameter", "cookie") if getattr(loc, k) is not None]
    if len(set_) != 1:
        p.add(path, "exactly one of header, queryParameter, cookie is required")
    if loc.header is not None and not _TOKEN_CHARS.match(loc.header.name):
        p.add(f"{path}.header.name", f"invalid header name {loc.header.name!r}")
    elif loc.header is not None and loc.header.name.replace("_", "-").count("-") > MAX_HEADER_SEPARATORS:
        p.add(f"{path}.header.name",
              f"header name {loc.header.name!r} has more than {MAX_HEADER_SEPARATORS} '-' or '_'")
    for field in ("query_parameter", "cookie"):
        named = getattr(loc, field)
        if named is not None and not named.name:
            p.add(f"{path}.{'queryParameter' if field == 'query_parameter' else field}.name", "required")


def check_tls(p: Problems, path: str, tls: Tls) -> None:
    """The shape of a bind's `tls` (the files themselves are read when the listeners are built,
    agw/serve/tls.py): one certificate (`cert` and `key`) or a list (`certificates`), not both."""
    single = tls.cert is not None or tls.key is not None
    if single and tls.certificates is not None:
        p.add(f"{path}.certificates", "not allowed together with cert/key (list every certificate here)")
    elif single:
        for field in ("cert", "key"):
            if not getattr(tls, field):
                p.add(f"{path}.{field}", "required")
    elif tls.certificates is None:
        p.add(path, "a certificate is required: cert and key, or certificates: [{cert, key}, ...]")
    elif not tls.certificates:
        p.add(f"{path}.certificates", "at least one certificate is required")
    for ci, files in enumerate(tls.certificates or []):
        for field in ("cert", "key"):
            if not getattr(files, field):
                p.add(f"{path}.certificates[{ci}].{field}", "required")
    cc = tls.client_certificate
    if cc is not None:
        if cc.mode.strip().lower() not in ("required", "optional"):
            p.add(f"{path}.clientCertificate.mode", f"invalid mode {cc.mode!r} (required or optional)")
        if not cc.ca_certificates:
            p.add(f"{path}.clientCertificate.caCertificates",
                  "required (a PEM file of the CAs that issue client certificates)")
