"""Config -> the typed plan the runtime serves: the one place config strings become runtime values.

After decoding and validation, `compile_config` turns the Structs into plain typed values: durations as
seconds, backends as host and port, a listener's policies merged into each of its routes. The proxy's hot
path reads only these (it never parses a config string), so a field is either compiled here into something
the runtime enforces or refused by validation with its path. Request policies (JWT, authorization) are built
from each route's merged `policies` by the layer above (agw.check), which owns them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .durations import parse_duration
from .model import Bind, Config, Listener, Match, Policies, Route, Settings, Timeout, merge_authorization
from .validate import split_host_port


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """`config:` compiled: every duration in seconds."""
    connect_timeout: float
    response_timeout: float
    request_header_timeout: float
    keepalive_timeout: float
    body_idle_timeout: float
    upstream_idle_timeout: float
    startup_grace: float
    max_header_bytes: int
    max_headers: int
    max_connections: int
    max_tunnels: int
    max_idle_upstream_per_backend: int
    merge_slashes: bool


DEFAULT_TUNNEL_IDLE_TIMEOUT = 3600.0


@dataclass(frozen=True, slots=True)
class BackendPlan:
    host: str
    port: int
    weight: int
    label: str          # host:port as written: metrics labels, the Host sent when the client sent none


@dataclass(frozen=True, slots=True)
class RoutePlan:
    name: str
    hostnames: tuple[str, ...]
    matches: tuple[Match, ...]
    backends: tuple[BackendPlan, ...]
    request_timeout: float      # whole request, head to end of answer; 0 = none
    response_timeout: float     # request sent -> response head (backendRequestTimeout or config's)
    policies: Optional[Policies]   # the route's own, with its listener's merged in
    upgrades: frozenset[bytes] = frozenset((b"websocket",))   # Upgrade tokens passed on, lower-case
    tunnel_idle_timeout: float = DEFAULT_TUNNEL_IDLE_TIMEOUT   # an upgraded connection with no bytes moving


@dataclass(frozen=True, slots=True)
class BindPlan:
    bind: Bind                  # address, port, tls: read by process management, not the hot path
    routes: tuple[RoutePlan, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    settings: ProxySettings
    binds: tuple[BindPlan, ...]


def compile_settings(s: Settings) -> ProxySettings:
    return ProxySettings(
        connect_timeout=parse_duration(s.connect_timeout),
        response_timeout=parse_duration(s.response_timeout),
        request_header_timeout=parse_duration(s.request_header_timeout),
        keepalive_timeout=parse_duration(s.keepalive_timeout),
        body_idle_timeout=parse_duration(s.body_idle_timeout),
        upstream_idle_timeout=parse_duration(s.upstream_idle_timeout),
        startup_grace=parse_duration(s.startup_grace),
        max_header_bytes=s.max_header_bytes,
        max_headers=s.max_headers,
        max_connections=s.max_connections,
        max_tunnels=s.max_tunnels,
        max_idle_upstream_per_backend=s.max_idle_upstream_per_backend,
        merge_slashes=s.merge_slashes,
    )


def merge_policies(listener: Optional[Policies], route: Optional[Policies]) -> Optional[Policies]:
    """A listener's policies apply to its routes; a route's own policy of the same kind replaces the
    listener's (agentgateway's attachment rule), except authorization rules: the listener's and the route's
    all apply (merged, the listener's named `listener.rules[i]`)."""
    if listener is None:
        return route
    if route is None and listener.authorization is None:
        return listener
    route = route if route is not None else Policies()
    return Policies(
        jwt_auth=route.jwt_auth if route.jwt_auth is not None else listener.jwt_auth,
        timeout=route.timeout if route.timeout is not None else listener.timeout,
        authorization=merge_authorization(listener.authorization, route.authorization),
    )


def _timeouts(timeout: Optional[Timeout], settings: ProxySettings) -> tuple[float, float]:
    request = parse_duration(timeout.request_timeout) if timeout and timeout.request_timeout else 0.0
    backend = (parse_duration(timeout.backend_request_timeout)
               if timeout and timeout.backend_request_timeout else 0.0)
    return request, backend or settings.response_timeout


def compile_route(route: Route, name: str, listener: Listener, settings: ProxySettings) -> RoutePlan:
    policies = merge_policies(listener.policies, route.policies)
    timeout = policies.timeout if policies else None
    request_timeout, response_timeout = _timeouts(timeout, settings)
    tunnel_idle = (parse_duration(timeout.tunnel_idle_timeout) if timeout and timeout.tunnel_idle_timeout
                   else DEFAULT_TUNNEL_IDLE_TIMEOUT)
    backends = []
    for b in route.backends:
        host, port = split_host_port(b.host)
        backends.append(BackendPlan(host=host, port=port, weight=b.weight, label=b.host))
    return RoutePlan(name=name, hostnames=tuple(route.hostnames), matches=tuple(route.matches),
                     backends=tuple(backends), request_timeout=request_timeout,
                     response_timeout=response_timeout, policies=policies,
                     upgrades=frozenset(u.lower().encode() for u in route.upgrades), tunnel_idle_timeout=tunnel_idle)


def compile_bind(bind: Bind, settings: ProxySettings) -> BindPlan:
    routes = []
    for li, listener in enumerate(bind.listeners):
        lname = listener.name or f"listener{li}"
        for ri, route in enumerate(listener.routes):
            routes.append(compile_route(route, route.name or f"{lname}/route{ri}", listener, settings))
    return BindPlan(bind=bind, routes=tuple(routes))


def compile_config(config: Config) -> Plan:
    """The plan of a validated config (validation has refused anything this could not compile)."""
    settings = compile_settings(config.config)
    return Plan(settings=settings, binds=tuple(compile_bind(b, settings) for b in config.binds))
