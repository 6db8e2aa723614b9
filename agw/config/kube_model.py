"""The Kubernetes objects agw reads, as msgspec Structs: only the fields agw translates.

Unknown fields are errors (with their path), except in `metadata`, where labels, annotations, uid and the
rest of what `kubectl get -o yaml` prints are allowed and unused. Fields a user must set are Optional here so
that the translation can report every missing one at once, not only the first.
"""
from __future__ import annotations

from typing import Optional

import msgspec


class _Spec(msgspec.Struct, forbid_unknown_fields=True, rename="camel", kw_only=True, frozen=True):
    pass


class Metadata(msgspec.Struct, kw_only=True, frozen=True):
    """labels, annotations, uid, resourceVersion... are allowed and unused."""
    name: Optional[str] = None
    namespace: Optional[str] = None


class RouteNamespaces(_Spec):
    from_: str = msgspec.field(default="Same", name="from")
    selector: Optional[dict] = None


class AllowedRoutes(_Spec):
    namespaces: Optional[RouteNamespaces] = None
    kinds: Optional[list[dict]] = None


class GatewayListenerSpec(_Spec):
    name: Optional[str] = None
    port: Optional[int] = None
    protocol: Optional[str] = None
    hostname: Optional[str] = None
    allowed_routes: Optional[AllowedRoutes] = None
    tls: Optional[dict] = None


class GatewaySpec(_Spec):
    gateway_class_name: Optional[str] = None
    listeners: list[GatewayListenerSpec] = msgspec.field(default_factory=list)
    addresses: Optional[list] = None
    infrastructure: Optional[dict] = None


class ParentRef(_Spec):
    group: Optional[str] = None
    kind: Optional[str] = None
    namespace: Optional[str] = None
    name: Optional[str] = None
    section_name: Optional[str] = None
    port: Optional[int] = None


class PathSpec(_Spec):
    type: str = "PathPrefix"
    value: str = "/"


class HeaderSpec(_Spec):
    type: str = "Exact"
    name: Optional[str] = None
    value: Optional[str] = None


class RouteMatchSpec(_Spec):
    path: Optional[PathSpec] = None
    method: Optional[str] = None
    headers: list[HeaderSpec] = msgspec.field(default_factory=list)
    query_params: Optional[list] = None


class BackendRefSpec(_Spec):
    group: Optional[str] = None
    kind: Optional[str] = None
    name: Optional[str] = None
    namespace: Optional[str] = None
    port: Optional[int] = None
    weight: int = 1
    filters: Optional[list] = None


class RouteTimeouts(_Spec):
    request: Optional[str] = None
    backend_request: Optional[str] = None


class RuleSpec(_Spec):
    name: Optional[str] = None
    matches: Optional[list[RouteMatchSpec]] = None
    backend_refs: list[BackendRefSpec] = msgspec.field(default_factory=list)
    filters: Optional[list] = None
    timeouts: Optional[RouteTimeouts] = None
    retry: Optional[dict] = None
    session_persistence: Optional[dict] = None


class HTTPRouteSpec(_Spec):
    parent_refs: list[ParentRef] = msgspec.field(default_factory=list)
    hostnames: list[str] = msgspec.field(default_factory=list)
    rules: Optional[list[RuleSpec]] = None


class TargetRef(_Spec):
    group: Optional[str] = None
    kind: Optional[str] = None
    name: Optional[str] = None
    section_name: Optional[str] = None


class ServiceRef(_Spec):
    group: Optional[str] = None
    kind: Optional[str] = None
    name: Optional[str] = None
    namespace: Optional[str] = None
    port: Optional[int] = None


class RemoteJwksSpec(_Spec):
    jwks_path: Optional[str] = None
    cache_duration: Optional[str] = None
    backend_ref: Optional[ServiceRef] = None


class JwksSpec(_Spec):
    inline: Optional[str] = None
    remote: Optional[RemoteJwksSpec] = None


class ValidationOptionsSpec(_Spec):
    required_claims: Optional[list[str]] = None


class ProviderSpec(_Spec):
    issuer: Optional[str] = None
    audiences: Optional[list[str]] = None
    jwks: Optional[JwksSpec] = None
    jwt_validation_options: Optional[ValidationOptionsSpec] = None


class JwtAuthenticationSpec(_Spec):
    mode: Optional[str] = None
    providers: Optional[list[ProviderSpec]] = None


class AuthorizationRulesSpec(_Spec):
    match_expressions: Optional[list[str]] = None


class AuthorizationSpec(_Spec):
    """`traffic.authorization`: CEL expressions, all of one action (Allow by default)."""
    action: Optional[str] = None
    policy: Optional[AuthorizationRulesSpec] = None


class TrafficSpec(_Spec):
    jwt_authentication: Optional[JwtAuthenticationSpec] = None
    authorization: Optional[AuthorizationSpec] = None


class PolicySpec(_Spec):
    target_refs: Optional[list[TargetRef]] = None
    traffic: Optional[TrafficSpec] = None
