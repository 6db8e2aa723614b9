"""HTTPRoute -> native routes: each (rule, match, hostname) on each Gateway listener it attaches to is one
route, ordered by Gateway API precedence (hostname, then path, method, headers)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..durations import parse_duration
from ..kube_model import HTTPRouteSpec, ParentRef, RouteMatchSpec, RuleSpec
from ..model import Backend, HeaderMatch, Match, PathMatch, Policies, StringMatch, Timeout
from .gateway import GatewayListener, intersect_hostnames, valid_hostname
from .objects import (INVALID, NO_MATCHING_LISTENER_HOSTNAME, NO_MATCHING_PARENT, NOT_ALLOWED_BY_LISTENERS,
                      KubeObject, ObjectStatus, State, decode, is_gateway_group, resolve_service)


@dataclass
class Rule:
    index: int
    name: Optional[str]
    matches: list[Optional[Match]]     # [None] when the rule has no match: any request
    backends: list[Backend]
    timeout: Optional[Timeout]


@dataclass
class Entry:
    """One native route: (HTTPRoute, rule, one match, one hostname) on one Gateway listener."""
    route: KubeObject
    rule: Rule
    listener: GatewayListener
    native_name: str
    hostnames: list[str]
    match: Optional[Match]
    match_index: int
    policies: Optional[Policies] = None
    blocked: bool = False

    def sort_key(self) -> tuple:
        host = self.hostnames[0] if self.hostnames else None
        host_rank = (2, 0) if host is None else (1, -len(host)) if host.startswith("*.") else (0, -len(host))
        m = self.match
        if m is None or m.path is None:
            path_rank: tuple = (2, -1)
        elif m.path.exact is not None:
            path_rank = (0, -len(m.path.exact))
        elif m.path.regex is not None:
            path_rank = (1, -len(m.path.regex))
        else:
            path_rank = (2, -len(m.path.path_prefix.rstrip("/") or "/"))
        method_rank = 0 if m is not None and m.method is not None else 1
        headers = -len(m.headers) if m is not None else 0
        return (host_rank, path_rank, method_rank, headers, self.route.order, self.rule.index, self.match_index)


def translate_http_route(state: State, route: KubeObject) -> None:
    """Record the entries (future native routes) of an HTTPRoute on the listeners it attaches to."""
    status = route.status
    spec = decode(HTTPRouteSpec, route.body.get("spec"), status)
    if spec is None:
        return
    for hi, host in enumerate(spec.hostnames):
        if not valid_hostname(host):
            status.fail(INVALID, f"spec.hostnames[{hi}]", f"invalid hostname {host!r} (a name, or *.suffix)")
    rules_spec = spec.rules if spec.rules is not None else [RuleSpec()]
    rules = [_rule(state, route, i, r) for i, r in enumerate(rules_spec)]
    if not spec.parent_refs:
        status.fail(INVALID, "spec.parentRefs", "at least one parentRef is required")
    if not status.accepted:
        return
    attached: list[tuple[GatewayListener, list[str]]] = []
    for pi, ref in enumerate(spec.parent_refs):
        attached.extend(_attach(state, route, f"spec.parentRefs[{pi}]", ref, spec.hostnames))
    if not status.accepted:
        return
    single = len(rules) == 1
    entries: list[Entry] = []
    for listener, hostnames in attached:
        for rule in rules:
            rname = f"{route.namespace}/{route.name}" if single else \
                f"{route.namespace}/{route.name}/{rule.name or f'rule{rule.index}'}"
            for host in (hostnames or [None]):
                for mi, match in enumerate(rule.matches):
                    entries.append(Entry(route, rule, listener, rname, [host] if host else [], match, mi))
    for e in entries:
        e.listener.entries.append(e)
    state.entries[route.key] = entries


def _rule(state: State, route: KubeObject, index: int, spec: RuleSpec) -> Rule:
    status = route.status
    path = f"spec.rules[{index}]"
    for name in ("filters", "retry", "session_persistence"):
        if getattr(spec, name) is not None:
            camel = "sessionPersistence" if name == "session_persistence" else name
            status.fail(INVALID, f"{path}.{camel}", "not supported")
    matches: list[Optional[Match]] = []
    for mi, m in enumerate(spec.matches or []):
        matches.append(_match(status, f"{path}.matches[{mi}]", m))
    if not matches:
        matches = [None]
    backends: list[Backend] = []
    if not spec.backend_refs:
        status.fail(INVALID, f"{path}.backendRefs", "at least one backendRef is required")
    for bi, ref in enumerate(spec.backend_refs):
        bpath = f"{path}.backendRefs[{bi}]"
        if ref.filters is not None:
            status.fail(INVALID, f"{bpath}.filters", "not supported")
        address = resolve_service(state, status, bpath, ref, route.namespace)
        if ref.weight < 0:
            status.fail(INVALID, f"{bpath}.weight", "must not be negative")
        elif address is not None and ref.weight > 0:   # weight 0: the backend takes no traffic
            backends.append(Backend(host=address, weight=ref.weight))
    if spec.backend_refs and not backends and status.accepted:
        status.fail(INVALID, f"{path}.backendRefs", "every backendRef has weight 0")
    timeout = None
    if spec.timeouts is not None:
        values = {}
        for name, camel in (("request", "request"), ("backend_request", "backendRequest")):
            value = getattr(spec.timeouts, name)
            if value is None:
                continue
            try:
                seconds = parse_duration(value)
            except ValueError as err:
                status.fail(INVALID, f"{path}.timeouts.{camel}", str(err))
                continue
            if seconds > 0:    # Gateway API: 0s disables the timeout
                values[name] = value
        if values:
            timeout = Timeout(request_timeout=values.get("request"),
                              backend_request_timeout=values.get("backend_request"))
    return Rule(index, spec.name, matches, backends, timeout)


def _match(status: ObjectStatus, path: str, m: RouteMatchSpec) -> Optional[Match]:
    if m.query_params is not None:
        status.fail(INVALID, f"{path}.queryParams", "not supported")
    path_match = None
    if m.path is not None:
        value = m.path.value
        if m.path.type == "PathPrefix":
            path_match = PathMatch(path_prefix=value)
        elif m.path.type == "Exact":
            path_match = PathMatch(exact=value)
        elif m.path.type == "RegularExpression":
            # Gateway API regexes match the whole path; the native matcher searches.
            path_match = PathMatch(regex=f"^(?:{value})$")
        else:
            status.fail(INVALID, f"{path}.path.type",
                        f"invalid type {m.path.type!r} (PathPrefix, Exact or RegularExpression)")
        if m.path.type != "RegularExpression" and not value.startswith("/"):
            status.fail(INVALID, f"{path}.path.value", f"must start with '/', got {value!r}")
    headers = []
    for hi, h in enumerate(m.headers):
        hpath = f"{path}.headers[{hi}]"
        if not h.name:
            status.fail(INVALID, f"{hpath}.name", "required")
        if h.value is None:
            status.fail(INVALID, f"{hpath}.value", "required")
        if h.type not in ("Exact", "RegularExpression"):
            status.fail(INVALID, f"{hpath}.type", f"invalid type {h.type!r} (Exact or RegularExpression)")
        elif h.name and h.value is not None:
            value = StringMatch(exact=h.value) if h.type == "Exact" else StringMatch(regex=h.value)
            headers.append(HeaderMatch(name=h.name, value=value))
    method = m.method.upper() if m.method else None
    return Match(path=path_match, method=method, headers=headers)


def _attach(state: State, route: KubeObject, path: str, ref: ParentRef, hostnames: list[str]
            ) -> list[tuple[GatewayListener, list[str]]]:
    """The listeners a parentRef attaches the route to, each with the hostnames the route answers there."""
    status = route.status
    if not is_gateway_group(ref.group) or (ref.kind or "Gateway") != "Gateway":
        status.fail(INVALID, f"{path}.kind", f"unsupported parent {ref.group or ''}/{ref.kind} "
                    f"(agw attaches routes to Gateways)")
        return []
    if not ref.name:
        status.fail(INVALID, f"{path}.name", "required")
        return []
    key = (ref.namespace or route.namespace, ref.name)
    gw = state.gateways.get(key)
    if gw is None:
        status.fail(NO_MATCHING_PARENT, path, f"Gateway {key[0]}/{key[1]} not found")
        return []
    if not gw.status.accepted:
        status.fail(NO_MATCHING_PARENT, path, f"Gateway {key[0]}/{key[1]} is not valid")
        return []
    candidates = [ls for ls in state.listeners[gw.key]
                  if (ref.section_name is None or ls.name == ref.section_name)
                  and (ref.port is None or ls.port == ref.port)]
    if not candidates:
        what = " ".join(x for x in (f"sectionName {ref.section_name!r}" if ref.section_name else "",
                                    f"port {ref.port}" if ref.port is not None else "") if x)
        status.fail(NO_MATCHING_PARENT, path, f"Gateway {key[0]}/{key[1]} has no listener with {what}")
        return []
    allowed = [ls for ls in candidates if ls.allowed_from == "All" or gw.namespace == route.namespace]
    if not allowed:
        status.fail(NOT_ALLOWED_BY_LISTENERS, path,
                    f"the listeners of Gateway {key[0]}/{key[1]} allow routes from namespace "
                    f"{gw.namespace} only")
        return []
    out = []
    for ls in allowed:
        effective = intersect_hostnames(ls.hostname, hostnames)
        if effective is not None:
            out.append((ls, effective))
    if not out:
        status.fail(NO_MATCHING_LISTENER_HOSTNAME, path,
                    f"no hostname of the route matches the listeners of Gateway {key[0]}/{key[1]}")
    return out
