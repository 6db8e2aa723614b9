"""The native configuration, as users write it (agentgateway's standalone shape).

Every object is a frozen msgspec Struct that refuses unknown fields, so a typo is reported with its path.
camelCase in YAML (`pathPrefix`, `cacheDuration`) maps to snake_case attributes. Semantic checks that msgspec
cannot express (one-of fields, durations, regexes) live in `validate.py`.
"""
from __future__ import annotations

from typing import Optional, Union

import msgspec


class _Base(msgspec.Struct, forbid_unknown_fields=True, rename="camel", kw_only=True, frozen=True):
    pass


# --- JWT policy -------------------------------------------------------------------------------------------

class Jwks(_Base, kw_only=True):
    """Exactly one of url / file / inline / discovery names the key set (Kubernetes `remote` is translated to
    `url`). `discovery: true` (or no `jwks` at all) reads the issuer's OIDC discovery document for `jwks_uri`."""
    url: Optional[str] = None
    file: Optional[str] = None
    inline: Optional[str] = None
    discovery: bool = False
    pem: Optional[str] = None        # a PEM file of public keys and/or certificates (kid-less keys)
    cache_duration: str = "5m"
    ca_certificates: Optional[str] = None
    # Bounds on a remote fetch; defaults suit any real identity provider.
    fetch_timeout: str = "10s"
    max_bytes: int = 1 << 20


class HeaderLocation(_Base, kw_only=True):
    name: str = "authorization"
    prefix: str = "Bearer "


class NamedLocation(_Base, kw_only=True):
    name: str


class Location(_Base, kw_only=True):
    header: Optional[HeaderLocation] = None
    query_parameter: Optional[NamedLocation] = None
    cookie: Optional[NamedLocation] = None


class ValidationOptions(_Base, kw_only=True):
    required_claims: list[str] = msgspec.field(default_factory=lambda: ["exp"])


class ClaimHeader(_Base, kw_only=True):
    claim: str
    header: str


class SubjectMatch(_Base, kw_only=True):
    """One accepted `sub`: exactly one of exact, prefix, regex (a full match)."""
    exact: Optional[str] = None
    prefix: Optional[str] = None
    regex: Optional[str] = None


class TokenProfile(_Base, kw_only=True):
    """agw's own token-profile checks of a provider (issue 18), next to issuer and audiences."""
    allowed_types: Optional[list[str]] = None     # JOSE `typ` values (RFC 9068: at+jwt); case-insensitive
    max_lifetime: Optional[str] = None            # exp - iat at most this (Envoy's max_lifetime)
    subjects: Optional[list[SubjectMatch]] = None
    required_scopes: Optional[list[str]] = None   # all of them in `scope` (space-separated) or `scp`; else 403


PROFILE_FIELDS = ("allowed_types", "max_lifetime", "subjects", "required_scopes")


class Provider(TokenProfile, kw_only=True):
    issuer: str
    audiences: Optional[list[str]] = None
    jwks: Optional[Jwks] = None      # None: OIDC discovery from the issuer
    jwt_validation_options: Optional[ValidationOptions] = None


class TokenCache(_Base, kw_only=True):
    enabled: bool = True
    max_entries: int = 100_000
    max_bytes: int = 64 << 20


class ResourceMetadata(_Base, kw_only=True):
    """RFC 9728 protected resource metadata a route publishes (agentgateway's mcpAuthentication.resourceMetadata):
    served at /.well-known/oauth-protected-resource[/path of resource], named by the 401's challenge."""
    resource: str
    scopes_supported: Optional[list[str]] = None
    bearer_methods_supported: Optional[list[str]] = None   # what agw reads the token from; derived when absent
    resource_documentation: Optional[str] = None
    resource_policy_uri: Optional[str] = None


class JwtAuth(TokenProfile, kw_only=True):
    """agentgateway's `jwtAuth`: the single-provider shape (issuer/jwks) or the multi shape (providers)."""
    mode: str = "strict"
    location: Optional[Location] = None
    issuer: Optional[str] = None
    audiences: Optional[list[str]] = None
    jwks: Optional[Jwks] = None
    jwt_validation_options: Optional[ValidationOptions] = None
    providers: Optional[list[Provider]] = None
    # agw's own extensions
    clock_skew: str = "60s"
    forward_token: bool = False
    # An upgraded (WebSocket) connection opened with a token is closed when the token's `exp` passes.
    close_on_token_expiry: bool = False
    claims_to_headers: list[ClaimHeader] = msgspec.field(default_factory=list)
    max_token_bytes: int = 8192
    cache: TokenCache = msgspec.field(default_factory=TokenCache)
    resource_metadata: Optional[ResourceMetadata] = None


class Timeout(_Base, kw_only=True):
    """agentgateway's `timeout` policy: whole-request and per-backend-attempt limits."""
    request_timeout: Optional[str] = None
    backend_request_timeout: Optional[str] = None
    # agw's own: a WebSocket (upgraded) connection with no bytes either way for this long is closed.
    tunnel_idle_timeout: Optional[str] = None


# --- authorization policy ---------------------------------------------------------------------------------

AUTHZ_ACTIONS = ("allow", "deny", "require", "shadow")


class AuthzRule(_Base, kw_only=True):
    """One rule in its long form: exactly one action names the CEL expression (`{deny: 'jwt.sub == "x"'}`).
    A rule written as a bare string is an allow rule."""
    allow: Optional[str] = None
    deny: Optional[str] = None
    require: Optional[str] = None
    shadow: Optional[str] = None     # agw's own: evaluated and counted as "would deny", never enforced
    name: Optional[str] = None       # names the rule in metrics and the access log (default: rules[i])


class Authorization(_Base, kw_only=True):
    """agentgateway's `authorization` policy: CEL rules over `jwt`, `request` and `source`."""
    rules: list[Union[str, AuthzRule]] = msgspec.field(default_factory=list)

    def actions(self) -> list[tuple[str, str, str]]:
        """(action, expression, name) of every rule, in order: a bare string is an allow rule; a rule without
        a name is named by its place, `rules[i]`. A rule with no or several actions is left out (the config
        check refuses it)."""
        out = []
        for i, rule in enumerate(self.rules):
            if isinstance(rule, str):
                out.append(("allow", rule, f"rules[{i}]"))
                continue
            set_ = [a for a in AUTHZ_ACTIONS if getattr(rule, a) is not None]
            if len(set_) == 1:
                out.append((set_[0], getattr(rule, set_[0]), rule.name or f"rules[{i}]"))
        return out


def merge_authorization(outer: Optional[Authorization], inner: Optional[Authorization],
                        outer_name: str = "listener") -> Optional[Authorization]:
    """The rules of every attachment point that applies, merged (never overridden): the outer one's (a listener)
    first. Unnamed rules keep the name of their place in their own list (`listener.rules[0]`, `rules[0]`), so
    metrics and logs tell the listener's from the route's."""
    if outer is None or not outer.rules:
        return inner if inner is not None else outer
    if inner is None or not inner.rules:
        inner = None
    prefix = f"{outer_name}." if outer_name else ""
    return Authorization(rules=_named(outer, prefix) + (_named(inner, "") if inner is not None else []))


def _named(authz: Authorization, prefix: str) -> list[Union[str, AuthzRule]]:
    out: list[Union[str, AuthzRule]] = []
    for i, rule in enumerate(authz.rules):
        if isinstance(rule, str):
            rule = AuthzRule(allow=rule)
        out.append(rule if rule.name else msgspec.structs.replace(rule, name=f"{prefix}rules[{i}]"))
    return out


class McpAuthentication(_Base, kw_only=True):
    """agentgateway's `mcpAuthentication`: a JWT provider plus the RFC 9728 metadata of the MCP resource. agw
    loads it as the equivalent `jwtAuth` with `resourceMetadata`; `provider` (agentgateway adapting an
    authorization server's endpoints) is refused, as agw proxies nothing to the authorization server."""
    mode: str = "strict"
    issuer: str
    audiences: Optional[list[str]] = None
    jwks: Optional[Jwks] = None
    provider: Optional[dict] = None
    resource_metadata: ResourceMetadata

    def as_jwt_auth(self) -> JwtAuth:
        return JwtAuth(mode=self.mode, issuer=self.issuer, audiences=self.audiences, jwks=self.jwks,
                       resource_metadata=self.resource_metadata)


class Policies(_Base, kw_only=True):
    jwt_auth: Optional[JwtAuth] = None
    mcp_authentication: Optional[McpAuthentication] = None
    timeout: Optional[Timeout] = None
    authorization: Optional[Authorization] = None


# --- routing ------------------------------------------------------------------------------------------------

class PathMatch(_Base, kw_only=True):
    exact: Optional[str] = None
    path_prefix: Optional[str] = None
    regex: Optional[str] = None


class StringMatch(_Base, kw_only=True):
    exact: Optional[str] = None
    regex: Optional[str] = None


class HeaderMatch(_Base, kw_only=True):
    name: str
    value: StringMatch


class Match(_Base, kw_only=True):
    path: Optional[PathMatch] = None
    method: Optional[str] = None
    headers: list[HeaderMatch] = msgspec.field(default_factory=list)


class Backend(_Base, kw_only=True):
    host: str
    weight: int = 1


class Route(_Base, kw_only=True):
    name: Optional[str] = None
    hostnames: list[str] = msgspec.field(default_factory=list)
    matches: list[Match] = msgspec.field(default_factory=list)
    backends: list[Backend] = msgspec.field(default_factory=list)
    policies: Optional[Policies] = None
    # agentgateway's: the Upgrade tokens this route passes to its backend (HTTP/1.1 GET); others are a 400.
    upgrades: list[str] = msgspec.field(default_factory=lambda: ["websocket"])


class Listener(_Base, kw_only=True):
    name: Optional[str] = None
    protocol: str = "HTTP"
    hostname: Optional[str] = None
    policies: Optional[Policies] = None
    routes: list[Route] = msgspec.field(default_factory=list)


class CertificateFiles(_Base, kw_only=True):
    """A certificate chain (leaf first, PEM) and its private key (PEM), as files."""
    cert: str
    key: str


class ClientCertificate(_Base, kw_only=True):
    """mTLS on a bind: ask clients for a certificate and verify it against `caCertificates` (a PEM file)."""
    mode: str = "required"               # required | optional
    ca_certificates: Optional[str] = None


class Tls(_Base, kw_only=True):
    """TLS on a bind: one certificate (`cert`/`key`, the original shape) or several (`certificates`), chosen
    per handshake by SNI among the names of each certificate (its subjectAltName)."""
    cert: Optional[str] = None
    key: Optional[str] = None
    certificates: Optional[list[CertificateFiles]] = None
    client_certificate: Optional[ClientCertificate] = None


class Bind(_Base, kw_only=True):
    port: int
    address: str = "0.0.0.0"
    tls: Optional[Tls] = None
    listeners: list[Listener] = msgspec.field(default_factory=list)


class Settings(_Base, kw_only=True):
    """Proxy-wide limits and timeouts (`config:` at the top level). Defaults follow Envoy/nginx practice."""
    connect_timeout: str = "5s"          # upstream TCP connect
    response_timeout: str = "30s"        # upstream: request sent -> response head received
    request_header_timeout: str = "10s"  # client: connection open / previous response -> full request head
    keepalive_timeout: str = "60s"       # client: idle between requests
    body_idle_timeout: str = "60s"       # either side: no body bytes moving
    upstream_idle_timeout: str = "55s"   # pooled upstream connection unused
    max_header_bytes: int = 65536        # request line + headers
    max_headers: int = 100
    max_connections: int = 10000
    max_tunnels: int = 10000             # upgraded (WebSocket) connections open per worker and bind; over: 503
    max_idle_upstream_per_backend: int = 128
    # Request paths are normalized before routing (percent-encoded unreserved characters decoded, dot-segments
    # removed); this also merges runs of slashes, as nginx does by default.
    merge_slashes: bool = True
    # At start, how long listeners wait for every remote JWKS's first keys before they take traffic anyway
    # (bound at once, connections wait in the backlog); 0 = take traffic at once. /readyz says 503 until
    # every remote JWKS holds keys, whatever this is.
    startup_grace: str = "10s"


class Config(_Base, kw_only=True):
    binds: list[Bind] = msgspec.field(default_factory=list)
    config: Settings = msgspec.field(default_factory=Settings)

