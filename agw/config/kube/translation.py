"""Kubernetes documents -> the native config: Gateway, HTTPRoute and AgentgatewayPolicy, as a cluster would see them.

A `Gateway` listener becomes a native listener on its port, an HTTPS one with its Secrets' certificates
(gateway.py); each `HTTPRoute` rule attached to it becomes native routes, ordered by Gateway API precedence
(httproute.py); an `AgentgatewayPolicy` (or `TrafficPolicy`) with `traffic.jwtAuthentication` becomes the
`jwtAuth` policy of the routes it targets, and its `traffic.authorization` their `authorization` rules
(policy.py, kube_authz.py). Services resolve to `<name>.<namespace>.svc.cluster.local:<port>`, or to what
`--resolve` maps them to (objects.py).

Every object gets a status line, as `kubectl get ... -o json | jq .status` would show it:
`<Kind>/<namespace>/<name>: Accepted`, or a condition followed by `<field path>: <reason>` problems.
Anything not Accepted makes `agw run` refuse to start: a policy that cannot be enforced as written must not
leave routes open.
"""
from __future__ import annotations

from typing import Any

import msgspec

from ..model import Bind, CertificateFiles, Listener, Policies, Route, Tls
from .gateway import translate_gateway
from .httproute import Entry, translate_http_route
from .objects import CONFLICTED, State, Translation, read_documents
from .policy import apply_policies


def native_binds(state: State) -> list[Bind]:
    """The native binds of the translated objects: one per port, a listener per Gateway listener."""
    by_port: dict[int, list[Listener]] = {}
    # A port's HTTPS listeners share one TLS bind: their certificates together, chosen per handshake by SNI.
    certs_by_port: dict[int, list[CertificateFiles]] = {}
    for gw in sorted(state.gateways.values(), key=lambda o: o.order):
        for ls in state.listeners.get(gw.key, []):
            https = ls.certificates is not None
            if ls.port in by_port and (ls.port in certs_by_port) != https:
                gw.status.fail(CONFLICTED, f"listener {ls.name}",
                               f"port {ls.port} has both HTTP and HTTPS listeners (one protocol per port)")
                continue
            if https:
                have = certs_by_port.setdefault(ls.port, [])
                have.extend(c for c in ls.certificates if c not in have)
            routes = []
            for e in sorted(ls.entries, key=Entry.sort_key):
                if not e.route.status.accepted or e.blocked:
                    continue
                policies = e.policies
                if e.rule.timeout is not None:
                    policies = Policies(jwt_auth=policies.jwt_auth if policies else None, timeout=e.rule.timeout,
                                        authorization=policies.authorization if policies else None)
                routes.append(Route(name=e.native_name, hostnames=e.hostnames,
                                    matches=[e.match] if e.match is not None else [],
                                    backends=e.rule.backends, policies=policies))
            state.result.routes.extend(routes)
            # The listener's hostname is already in each route's hostnames (intersect_hostnames).
            by_port.setdefault(ls.port, []).append(Listener(name=ls.native_name, protocol="HTTP", routes=routes))
    return [Bind(port=port, listeners=listeners,
                 tls=Tls(certificates=certs_by_port[port]) if port in certs_by_port else None)
            for port, listeners in by_port.items()]


def translate_documents(docs: list, resolve: dict[str, str]) -> tuple[list[Bind], Translation]:
    """The native binds of the documents, and every object's status."""
    state = State(resolve)
    read_documents(state, docs)
    for gw in state.gateways.values():
        if gw.status.accepted:
            translate_gateway(state, gw)
        else:
            state.listeners[gw.key] = []
    for route in state.routes.values():
        if route.status.accepted:
            translate_http_route(state, route)
    apply_policies(state)
    return native_binds(state), state.result


def translate(docs: list, loaded: Any, resolve: dict[str, str]) -> Translation:
    """Translate Kubernetes documents into `loaded.config` and fill `loaded.statuses`/`warnings`/`kube`."""
    binds, result = translate_documents(docs, resolve)
    cfg = loaded.config
    merged = list(cfg.binds)
    for bind in binds:
        # A Gateway on a port the native config already serves shares its listener socket.
        for i, existing in enumerate(merged):
            if (existing.port, existing.address) == (bind.port, bind.address) and existing.tls is bind.tls is None:
                merged[i] = msgspec.structs.replace(existing, listeners=existing.listeners + bind.listeners)
                break
        else:
            merged.append(bind)
    loaded.config = msgspec.structs.replace(cfg, binds=merged)
    loaded.statuses.extend(s.line() for s in result.statuses)
    loaded.warnings.extend(result.warnings)
    loaded.kube = result
    return result
