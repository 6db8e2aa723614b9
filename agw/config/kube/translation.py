"""Kubernetes documents -> the native config: Gateway, HTTPRoute and AgentgatewayPolicy, as a cluster would see them.

A `Gateway` listener becomes a native listener on its port; each `HTTPRoute` rule attached to it becomes native
routes, ordered by Gateway API precedence (hostname, then path, method, headers); an `AgentgatewayPolicy`
(or `TrafficPolicy`) with `traffic.jwtAuthentication` becomes the `jwtAuth` policy of the routes it targets, and
its `traffic.authorization` their `authorization` rules (kube_authz.py: merged across Gateway and route).
Services resolve to `<name>.<namespace>.svc.cluster.local:<port>`, or to what `--resolve` maps them to.

Every object gets a status line, as `kubectl get ... -o json | jq .status` would show it:
`<Kind>/<namespace>/<name>: Accepted`, or a condition followed by `<field path>: <reason>` problems.
Anything not Accepted makes `agw run` refuse to start: a policy that cannot be enforced as written must not
leave routes open.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Optional

import msgspec

from ..durations import parse_duration
from ..errors import from_validation_error
from ..kube_authz import AuthzLevels, translate_authorization
from ..kube_model import (GatewaySpec, HTTPRouteSpec, JwksSpec, JwtAuthenticationSpec, Metadata, ParentRef,
                          PolicySpec, ProviderSpec, RouteMatchSpec, RuleSpec, TargetRef)
from ..model import (Backend, Bind, CertificateFiles, HeaderMatch, Jwks, JwtAuth, Listener, Match, PathMatch,
                     Policies, Provider, Route, StringMatch, Timeout, Tls, ValidationOptions)
from ..validate import Problems, check_jwt_auth, normalize_mode

GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_CLASS = "agentgateway"     # the GatewayClass agw serves, as agentgateway's controller does
POLICY_KINDS = ("AgentgatewayPolicy", "TrafficPolicy")
DEFAULT_NAMESPACE = "default"
CLUSTER_DOMAIN = "svc.cluster.local"
JWT_PATH = "spec.traffic.jwtAuthentication"

ACCEPTED = "Accepted"
INVALID = "Invalid"
TARGET_NOT_FOUND = "TargetNotFound"
CONFLICTED = "Conflicted"
NO_MATCHING_PARENT = "NoMatchingParent"
NOT_ALLOWED_BY_LISTENERS = "NotAllowedByListeners"
NO_MATCHING_LISTENER_HOSTNAME = "NoMatchingListenerHostname"

# agentgateway fields that agw knows but does not implement: refused by name (never silently ignored, since
# ignoring e.g. `authorization` would let through requests the user meant to deny).
UNSUPPORTED_TRAFFIC = ("apiKeyAuthentication", "basicAuthentication", "cors", "csrf",
                       "directResponse", "extAuth", "extProc", "headerModifiers", "hostRewrite", "phase",
                       "rateLimit", "retry", "timeouts", "transformation")
UNSUPPORTED_POLICY_SPEC = ("targetSelectors", "frontend", "backend")


# --- results ------------------------------------------------------------------------------------------------

@dataclass
class ObjectStatus:
    """One `agw check` line: `<label>: <condition>[: <path>: <reason>[; ...]]`."""
    label: str
    condition: str = ACCEPTED
    problems: list[tuple[str, str]] = field(default_factory=list)

    def fail(self, condition: str, path: str, reason: str) -> None:
        # Invalid outranks every other condition: it is what the user must fix first.
        if self.condition == ACCEPTED or condition == INVALID and self.condition != INVALID:
            self.condition = condition
        self.problems.append((path, reason))

    @property
    def accepted(self) -> bool:
        return self.condition == ACCEPTED

    def line(self) -> str:
        if not self.problems:
            return f"{self.label}: {self.condition}"
        return f"{self.label}: {self.condition}: " + "; ".join(f"{p}: {r}" if p else r for p, r in self.problems)


@dataclass
class PolicyBinding:
    """A translated policy, so `agw check` can try building its key sets and blame the right object."""
    status: ObjectStatus
    jwt_auth: JwtAuth
    path: str = JWT_PATH
    keys_checked: bool = False


@dataclass
class Translation:
    statuses: list[ObjectStatus] = field(default_factory=list)   # document order
    policies: list[PolicyBinding] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)             # every native route generated
    warnings: list[str] = field(default_factory=list)


# --- the objects while translating ---------------------------------------------------------------------------

@dataclass
class _Object:
    kind: str
    namespace: str
    name: str
    source: str
    body: dict
    order: int
    status: ObjectStatus

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name


@dataclass
class _GatewayListener:
    gateway: _Object
    name: str
    port: int
    hostname: Optional[str]
    allowed_from: str
    native_name: str
    entries: list["_Entry"] = field(default_factory=list)
    certificates: Optional[list[CertificateFiles]] = None    # an HTTPS listener's, from its certificateRefs


@dataclass
class _Rule:
    index: int
    name: Optional[str]
    matches: list[Optional[Match]]     # [None] when the rule has no match: any request
    backends: list[Backend]
    timeout: Optional[Timeout]


@dataclass
class _Entry:
    """One native route: (HTTPRoute, rule, one match, one hostname) on one Gateway listener."""
    route: _Object
    rule: _Rule
    listener: _GatewayListener
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


def object_label(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{namespace}/{name}"


def service_address(name: str, namespace: str, port: int, resolve: dict[str, str]) -> str:
    """`host:port` of a Service port: `--resolve name.namespace:port=host:port`, else the cluster DNS name."""
    mapped = resolve.get(f"{name}.{namespace}:{port}")
    return mapped if mapped is not None else f"{name}.{namespace}.{CLUSTER_DOMAIN}:{port}"


def _decode(spec_type: type, value: Any, status: ObjectStatus, prefix: str = "spec") -> Any:
    try:
        return msgspec.convert({} if value is None else value, spec_type, str_keys=True)
    except msgspec.ValidationError as err:
        path, reason = from_validation_error(err, prefix)
        status.fail(INVALID, path, reason)
        return None


def _is_gateway_group(group: Optional[str]) -> bool:
    return group in (None, GATEWAY_GROUP)


def _is_core_group(group: Optional[str]) -> bool:
    return group in (None, "", "core")


# --- the translation -----------------------------------------------------------------------------------------

class _Translator:
    def __init__(self, resolve: dict[str, str]) -> None:
        self.resolve = resolve
        self.result = Translation()
        self.gateways: dict[tuple[str, str], _Object] = {}
        self.routes: dict[tuple[str, str], _Object] = {}
        self.policies: list[_Object] = []
        self.listeners: dict[tuple[str, str], list[_GatewayListener]] = {}   # gateway key -> its listeners
        self.entries: dict[tuple[str, str], list[_Entry]] = {}               # HTTPRoute key -> its routes

    # -- reading -------------------------------------------------------------------------------------------

    def read(self, docs: list) -> None:
        seen: dict[tuple[str, str, str], str] = {}
        for order, doc in enumerate(docs):
            body = doc.body
            kind = body.get("kind")
            if not isinstance(kind, str) or not kind:
                self.result.warnings.append(f"{doc.source}: ignoring a document without `kind`")
                continue
            if kind not in ("Gateway", "HTTPRoute") + POLICY_KINDS:
                self.result.warnings.append(f"{doc.source}: ignoring {kind} (agw reads Gateway, HTTPRoute, "
                                            f"AgentgatewayPolicy)")
                continue
            api_version = body.get("apiVersion")
            group = api_version.rpartition("/")[0] if isinstance(api_version, str) else ""
            if kind in ("Gateway", "HTTPRoute") and group != GATEWAY_GROUP:
                # e.g. Istio's networking.istio.io Gateway: same kind, another API.
                self.result.warnings.append(f"{doc.source}: ignoring {kind} of {api_version} "
                                            f"(agw reads {GATEWAY_GROUP})")
                continue
            status = ObjectStatus("")
            meta = _decode(Metadata, body.get("metadata"), status, "metadata")
            namespace = (meta.namespace if meta else None) or DEFAULT_NAMESPACE
            name = meta.name if meta and meta.name else None
            if name is None:
                status.fail(INVALID, "metadata.name", "required")
                name = f"<{doc.source}>"
            status.label = object_label(kind, namespace, name)
            for path, reason in doc.problems:
                status.fail(INVALID, path, reason)
            self.result.statuses.append(status)
            obj = _Object(kind, namespace, name, doc.source, body, order, status)
            family = "Policy" if kind in POLICY_KINDS else kind
            key = (family, namespace, name)
            if key in seen:
                status.fail(INVALID, "metadata.name", f"{kind} {namespace}/{name} is already defined in {seen[key]}")
                continue
            seen[key] = doc.source
            unknown = sorted(set(body) - {"apiVersion", "kind", "metadata", "spec", "status"})
            for top in unknown:
                status.fail(INVALID, top, "unknown field")
            # Registered even when invalid: routes and policies that name it get a precise status.
            if kind == "Gateway":
                self.gateways[obj.key] = obj
            elif kind == "HTTPRoute":
                self.routes[obj.key] = obj
            else:
                self.policies.append(obj)

    # -- Gateway -------------------------------------------------------------------------------------------

    def gateway(self, gw: _Object) -> None:
        status = gw.status
        spec = _decode(GatewaySpec, gw.body.get("spec"), status)
        listeners: list[_GatewayListener] = []
        if spec is not None:
            if spec.gateway_class_name is not None and spec.gateway_class_name != GATEWAY_CLASS:
                status.fail(INVALID, "spec.gatewayClassName",
                            f"agw serves GatewayClass {GATEWAY_CLASS!r}, not {spec.gateway_class_name!r}")
            for name, camel in (("addresses", "addresses"), ("infrastructure", "infrastructure")):
                if getattr(spec, name) is not None:
                    status.fail(INVALID, f"spec.{camel}", "not supported (agw listens on its own addresses)"
                                if name == "addresses" else "not supported (agw provisions no infrastructure)")
            if not spec.listeners:
                status.fail(INVALID, "spec.listeners", "at least one listener is required")
            names: set[str] = set()
            for i, ls in enumerate(spec.listeners):
                path = f"spec.listeners[{i}]"
                if not ls.name:
                    status.fail(INVALID, f"{path}.name", "required")
                elif ls.name in names:
                    status.fail(INVALID, f"{path}.name", f"duplicate listener name {ls.name!r}")
                names.add(ls.name or "")
                if ls.port is None:
                    status.fail(INVALID, f"{path}.port", "required")
                elif not 0 < ls.port < 65536:
                    status.fail(INVALID, f"{path}.port", f"port {ls.port} out of range")
                certificates = None
                if ls.protocol is None:
                    status.fail(INVALID, f"{path}.protocol", "required")
                elif ls.protocol not in ("HTTP", "HTTPS"):
                    status.fail(INVALID, f"{path}.protocol",
                                f"unsupported protocol {ls.protocol!r} (agw translates HTTP and HTTPS listeners)")
                elif ls.protocol == "HTTPS":
                    certificates = listener_certificates(ls.tls, gw.namespace, f"{path}.tls", status)
                if ls.tls is not None and ls.protocol == "HTTP":
                    status.fail(INVALID, f"{path}.tls", "not allowed on an HTTP listener")
                if ls.hostname is not None and not _valid_hostname(ls.hostname):
                    status.fail(INVALID, f"{path}.hostname", f"invalid hostname {ls.hostname!r}")
                allowed = "Same"
                if ls.allowed_routes is not None and ls.allowed_routes.namespaces is not None:
                    allowed = ls.allowed_routes.namespaces.from_
                    if allowed not in ("Same", "All"):
                        status.fail(INVALID, f"{path}.allowedRoutes.namespaces.from",
                                    f"unsupported value {allowed!r} (Same or All; agw has no namespace labels)")
                    if ls.allowed_routes.namespaces.selector is not None:
                        status.fail(INVALID, f"{path}.allowedRoutes.namespaces.selector",
                                    "not supported (agw has no namespace labels)")
                if ls.allowed_routes is not None:
                    for ki, kind in enumerate(ls.allowed_routes.kinds or []):
                        if kind.get("kind") != "HTTPRoute" or not _is_gateway_group(kind.get("group")):
                            status.fail(INVALID, f"{path}.allowedRoutes.kinds[{ki}]",
                                        "only HTTPRoute is supported")
                if status.accepted:
                    listeners.append(_GatewayListener(gw, ls.name, ls.port, ls.hostname, allowed,
                                                      f"{gw.namespace}/{gw.name}/{ls.name}",
                                                      certificates=certificates))
        self.listeners[gw.key] = listeners if status.accepted else []

    # -- HTTPRoute -----------------------------------------------------------------------------------------

    def http_route(self, route: _Object) -> None:
        status = route.status
        spec = _decode(HTTPRouteSpec, route.body.get("spec"), status)
        if spec is None:
            return
        for hi, host in enumerate(spec.hostnames):
            if not _valid_hostname(host):
                status.fail(INVALID, f"spec.hostnames[{hi}]", f"invalid hostname {host!r} (a name, or *.suffix)")
        rules_spec = spec.rules if spec.rules is not None else [RuleSpec()]
        rules = [self._rule(route, i, r) for i, r in enumerate(rules_spec)]
        if not spec.parent_refs:
            status.fail(INVALID, "spec.parentRefs", "at least one parentRef is required")
        if not status.accepted:
            return
        attached: list[tuple[_GatewayListener, list[str]]] = []
        for pi, ref in enumerate(spec.parent_refs):
            attached.extend(self._attach(route, f"spec.parentRefs[{pi}]", ref, spec.hostnames))
        if not status.accepted:
            return
        single = len(rules) == 1
        entries: list[_Entry] = []
        for listener, hostnames in attached:
            for rule in rules:
                rname = f"{route.namespace}/{route.name}" if single else \
                    f"{route.namespace}/{route.name}/{rule.name or f'rule{rule.index}'}"
                for host in (hostnames or [None]):
                    for mi, match in enumerate(rule.matches):
                        entries.append(_Entry(route, rule, listener, rname, [host] if host else [], match, mi))
        for e in entries:
            e.listener.entries.append(e)
        self.entries[route.key] = entries

    def _rule(self, route: _Object, index: int, spec: RuleSpec) -> _Rule:
        status = route.status
        path = f"spec.rules[{index}]"
        for name in ("filters", "retry", "session_persistence"):
            if getattr(spec, name) is not None:
                camel = "sessionPersistence" if name == "session_persistence" else name
                status.fail(INVALID, f"{path}.{camel}", "not supported")
        matches: list[Optional[Match]] = []
        for mi, m in enumerate(spec.matches or []):
            matches.append(self._match(status, f"{path}.matches[{mi}]", m))
        if not matches:
            matches = [None]
        backends: list[Backend] = []
        if not spec.backend_refs:
            status.fail(INVALID, f"{path}.backendRefs", "at least one backendRef is required")
        for bi, ref in enumerate(spec.backend_refs):
            bpath = f"{path}.backendRefs[{bi}]"
            if ref.filters is not None:
                status.fail(INVALID, f"{bpath}.filters", "not supported")
            address = self._service(status, bpath, ref, route.namespace)
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
        return _Rule(index, spec.name, matches, backends, timeout)

    @staticmethod
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

    def _service(self, status: ObjectStatus, path: str, ref: Any, namespace: str) -> Optional[str]:
        """`host:port` of a backendRef to a Service; None (and a problem) when it is not one."""
        ok = True
        if not _is_core_group(ref.group) or (ref.kind or "Service") != "Service":
            status.fail(INVALID, f"{path}.kind", f"unsupported backend {ref.group or ''}/{ref.kind} "
                        f"(agw resolves Services)")
            ok = False
        if not ref.name:
            status.fail(INVALID, f"{path}.name", "required")
            ok = False
        if ref.port is None:
            status.fail(INVALID, f"{path}.port", "required")
            ok = False
        elif not 0 < ref.port < 65536:
            status.fail(INVALID, f"{path}.port", f"port {ref.port} out of range")
            ok = False
        if not ok:
            return None
        return service_address(ref.name, ref.namespace or namespace, ref.port, self.resolve)

    def _attach(self, route: _Object, path: str, ref: ParentRef, hostnames: list[str]
                ) -> list[tuple[_GatewayListener, list[str]]]:
        status = route.status
        if not _is_gateway_group(ref.group) or (ref.kind or "Gateway") != "Gateway":
            status.fail(INVALID, f"{path}.kind", f"unsupported parent {ref.group or ''}/{ref.kind} "
                        f"(agw attaches routes to Gateways)")
            return []
        if not ref.name:
            status.fail(INVALID, f"{path}.name", "required")
            return []
        key = (ref.namespace or route.namespace, ref.name)
        gw = self.gateways.get(key)
        if gw is None:
            status.fail(NO_MATCHING_PARENT, path, f"Gateway {key[0]}/{key[1]} not found")
            return []
        if not gw.status.accepted:
            status.fail(NO_MATCHING_PARENT, path, f"Gateway {key[0]}/{key[1]} is not valid")
            return []
        candidates = [ls for ls in self.listeners[gw.key]
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
            effective = _intersect_hostnames(ls.hostname, hostnames)
            if effective is not None:
                out.append((ls, effective))
        if not out:
            status.fail(NO_MATCHING_LISTENER_HOSTNAME, path,
                        f"no hostname of the route matches the listeners of Gateway {key[0]}/{key[1]}")
        return out

    # -- AgentgatewayPolicy --------------------------------------------------------------------------------

    def policy(self, pol: _Object) -> tuple[Optional[Policies], list[tuple[str, tuple, Optional[str]]]]:
        """The policy's native form (None when it is not valid) and the targets it names (kind, key, section)."""
        status = pol.status
        raw = pol.body.get("spec")
        if isinstance(raw, dict):
            raw = dict(raw)
            for name in UNSUPPORTED_POLICY_SPEC:
                if name in raw:
                    status.fail(INVALID, f"spec.{name}", "not supported")
                    del raw[name]
            traffic = raw.get("traffic")
            if isinstance(traffic, dict):
                traffic = dict(traffic)
                for name in UNSUPPORTED_TRAFFIC:
                    if name in traffic:
                        status.fail(INVALID, f"spec.traffic.{name}", "not supported")
                        del traffic[name]
                raw["traffic"] = traffic
        spec = _decode(PolicySpec, raw, status)
        if spec is None:
            return None, []
        targets = self._targets(status, spec.target_refs)
        ja = spec.traffic.jwt_authentication if spec.traffic is not None else None
        jwt_auth = self._jwt_auth(status, ja) if ja is not None else None
        az = spec.traffic.authorization if spec.traffic is not None else None
        authz = translate_authorization(status, az, INVALID, self.result.warnings) if az is not None else None
        if not status.accepted:
            return None, targets
        if jwt_auth is not None:
            self.result.policies.append(PolicyBinding(status, jwt_auth))
        return Policies(jwt_auth=jwt_auth, authorization=authz), targets

    def _targets(self, status: ObjectStatus, refs: Optional[list[TargetRef]]
                 ) -> list[tuple[str, tuple, Optional[str]]]:
        if not refs:
            status.fail(INVALID, "spec.targetRefs", "at least one targetRef is required")
            return []
        namespace = status.label.split("/")[1]
        out = []
        for ti, ref in enumerate(refs):
            path = f"spec.targetRefs[{ti}]"
            if not ref.name:
                status.fail(INVALID, f"{path}.name", "required")
                continue
            if not _is_gateway_group(ref.group) or ref.kind not in ("Gateway", "HTTPRoute"):
                status.fail(INVALID, f"{path}.kind", f"unsupported target {ref.group or ''}/{ref.kind} "
                            f"(Gateway or HTTPRoute of {GATEWAY_GROUP})")
                continue
            key = (namespace, ref.name)
            found = self.gateways if ref.kind == "Gateway" else self.routes
            if key not in found:
                status.fail(TARGET_NOT_FOUND, path, f"{ref.kind} {namespace}/{ref.name} not found")
                continue
            if ref.section_name is not None:
                if ref.kind == "Gateway":
                    names = [ls.name for ls in self.listeners.get(key, [])]
                else:
                    names = [e.rule.name for e in self.entries.get(key, []) if e.rule.name]
                if ref.section_name not in names:
                    status.fail(TARGET_NOT_FOUND, f"{path}.sectionName",
                                f"{ref.kind} {namespace}/{ref.name} has no "
                                f"{'listener' if ref.kind == 'Gateway' else 'rule'} named {ref.section_name!r}")
                    continue
            out.append((ref.kind, key, ref.section_name))
        return out

    def _targets_of_invalid(self, pol: _Object) -> list[tuple[str, tuple, Optional[str]]]:
        """What an invalid policy meant to protect (best effort), so that it can be left out."""
        spec = pol.body.get("spec")
        refs = spec.get("targetRefs") if isinstance(spec, dict) else None
        scratch = ObjectStatus(pol.status.label)
        decoded = _decode(list[TargetRef], refs or [], scratch, "spec.targetRefs")
        return self._targets(scratch, decoded) if decoded else []

    def _jwt_auth(self, status: ObjectStatus, spec: JwtAuthenticationSpec) -> Optional[JwtAuth]:
        p = JWT_PATH
        before = len(status.problems)
        mode = "strict"   # the guide: Strict unless said otherwise
        if spec.mode is not None:
            normalized = normalize_mode(spec.mode)
            if normalized is None:
                status.fail(INVALID, f"{p}.mode", f'invalid mode "{spec.mode}" (Strict, Optional or Permissive)')
            else:
                mode = normalized
        if not spec.providers:
            status.fail(INVALID, f"{p}.providers", "at least one provider is required")
        providers = []
        for i, prov in enumerate(spec.providers or []):
            built = self._provider(status, f"{p}.providers[{i}]", prov)
            if built is not None:
                providers.append(built)
        if len(status.problems) != before:
            return None
        ja = JwtAuth(mode=mode, providers=providers)
        # The native checks as a safety net: whatever they still find is reported under the policy.
        native = Problems()
        check_jwt_auth(native, p, ja)
        for path, reason in native:
            status.fail(INVALID, path, reason)
        return ja if not native else None

    def _provider(self, status: ObjectStatus, path: str, spec: ProviderSpec) -> Optional[Provider]:
        ok = True
        if spec.issuer is None:
            status.fail(INVALID, f"{path}.issuer", "required")
            ok = False
        elif not spec.issuer:
            status.fail(INVALID, f"{path}.issuer", "must not be empty")
            ok = False
        if spec.audiences is not None and any(not a for a in spec.audiences):
            status.fail(INVALID, f"{path}.audiences", "must not contain an empty string")
            ok = False
        jwks = None
        if spec.jwks is None:
            status.fail(INVALID, f"{path}.jwks", "required")
            ok = False
        else:
            jwks = self._jwks(status, f"{path}.jwks", spec.jwks)
            ok = ok and jwks is not None
        options = None
        if spec.jwt_validation_options is not None and spec.jwt_validation_options.required_claims is not None:
            options = ValidationOptions(required_claims=spec.jwt_validation_options.required_claims)
        if not ok:
            return None
        return Provider(issuer=spec.issuer, audiences=spec.audiences or None, jwks=jwks,
                        jwt_validation_options=options)

    def _jwks(self, status: ObjectStatus, path: str, spec: JwksSpec) -> Optional[Jwks]:
        if (spec.inline is None) == (spec.remote is None):
            status.fail(INVALID, path, "exactly one of inline, remote is required")
            return None
        if spec.inline is not None:
            try:
                doc = json.loads(spec.inline)
            except ValueError as err:
                status.fail(INVALID, f"{path}.inline", f"not JSON: {err}")
                return None
            if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
                status.fail(INVALID, f"{path}.inline", 'not a JWKS document (a JSON object with a "keys" list)')
                return None
            return Jwks(inline=spec.inline)
        remote = spec.remote
        ok = True
        cache = remote.cache_duration if remote.cache_duration is not None else "5m"
        try:
            if parse_duration(cache) <= 0:
                status.fail(INVALID, f"{path}.remote.cacheDuration", "must be greater than zero")
                ok = False
        except ValueError as err:
            status.fail(INVALID, f"{path}.remote.cacheDuration", str(err))
            ok = False
        jwks_path = remote.jwks_path
        if jwks_path is None:
            status.fail(INVALID, f"{path}.remote.jwksPath", "required")
            ok = False
        elif not jwks_path:
            status.fail(INVALID, f"{path}.remote.jwksPath", "must not be empty")
            ok = False
        if remote.backend_ref is None:
            status.fail(INVALID, f"{path}.remote.backendRef", "required")
            return None
        namespace = status.label.split("/")[1]
        address = self._service(status, f"{path}.remote.backendRef", remote.backend_ref, namespace)
        if address is None or not ok:
            return None
        if jwks_path.startswith(("http://", "https://")):
            url = jwks_path
        else:
            scheme = "https" if remote.backend_ref.port == 443 else "http"
            url = f"{scheme}://{address}{jwks_path if jwks_path.startswith('/') else '/' + jwks_path}"
        return Jwks(url=url, cache_duration=cache)

    # -- putting it together -------------------------------------------------------------------------------

    def apply_policies(self) -> None:
        # Most specific first: a route rule, a route, a Gateway listener, a Gateway.
        levels: list[dict[tuple, tuple[Policies, ObjectStatus]]] = [{}, {}, {}, {}]
        authz = AuthzLevels()   # authorization rules are merged across levels, not overridden
        blocked: set[tuple] = set()
        for pol in self.policies:
            if pol.status.accepted:
                policies, targets = self.policy(pol)
            else:
                policies, targets = None, self._targets_of_invalid(pol)
            for ti, (kind, key, section) in enumerate(targets):
                slot = (key, section)
                if policies is None:
                    # Fail closed even for callers that ignore statuses: the targets of a policy that cannot
                    # be enforced are left out of the config (404) instead of served without it.
                    blocked.add(slot)
                    continue
                level = (0 if section else 1) if kind == "HTTPRoute" else (2 if section else 3)
                authz.add(level, slot, policies)
                if policies.jwt_auth is None:
                    continue
                held = levels[level].get(slot)
                if held is not None:
                    pol.status.fail(CONFLICTED, f"spec.targetRefs[{ti}]",
                                    f"{kind} {key[0]}/{key[1]} already has jwtAuthentication from {held[1].label}")
                    blocked.add(slot)
                    continue
                levels[level][slot] = (policies, pol.status)
        for entries in self.entries.values():
            for e in entries:
                route_key, gw_key = e.route.key, e.listener.gateway.key
                slots = [(0, (route_key, e.rule.name)), (1, (route_key, None)),
                         (2, (gw_key, e.listener.name)), (3, (gw_key, None))]
                if any(slot in blocked for _, slot in slots):
                    e.blocked = True
                    continue
                slots = [(level, slot) for level, slot in slots if slot[1] is not None or level in (1, 3)]
                for level, slot in slots:
                    held = levels[level].get(slot)
                    if held is not None:
                        e.policies = held[0]
                        break
                e.policies = authz.attach(e.policies, slots)

    def native_binds(self) -> list[Bind]:
        by_port: dict[int, list[Listener]] = {}
        # A port's HTTPS listeners share one TLS bind: their certificates together, chosen per handshake by SNI.
        certs_by_port: dict[int, list[CertificateFiles]] = {}
        for gw in sorted(self.gateways.values(), key=lambda o: o.order):
            for ls in self.listeners.get(gw.key, []):
                https = ls.certificates is not None
                if ls.port in by_port and (ls.port in certs_by_port) != https:
                    gw.status.fail(CONFLICTED, f"listener {ls.name}",
                                   f"port {ls.port} has both HTTP and HTTPS listeners (one protocol per port)")
                    continue
                if https:
                    have = certs_by_port.setdefault(ls.port, [])
                    have.extend(c for c in ls.certificates if c not in have)
                routes = []
                for e in sorted(ls.entries, key=_Entry.sort_key):
                    if not e.route.status.accepted or e.blocked:
                        continue
                    policies = e.policies
                    if e.rule.timeout is not None:
                        policies = Policies(jwt_auth=policies.jwt_auth if policies else None, timeout=e.rule.timeout,
                                            authorization=policies.authorization if policies else None)
                    routes.append(Route(name=e.native_name, hostnames=e.hostnames,
                                        matches=[e.match] if e.match is not None else [],
                                        backends=e.rule.backends, policies=policies))
                self.result.routes.extend(routes)
                # The listener's hostname is already in each route's hostnames (_intersect_hostnames).
                by_port.setdefault(ls.port, []).append(Listener(name=ls.native_name, protocol="HTTP", routes=routes))
        return [Bind(port=port, listeners=listeners,
                     tls=Tls(certificates=certs_by_port[port]) if port in certs_by_port else None)
                for port, listeners in by_port.items()]

    def run(self, docs: list) -> list[Bind]:
        self.read(docs)
        for gw in self.gateways.values():
            if gw.status.accepted:
                self.gateway(gw)
            else:
                self.listeners[gw.key] = []
        for route in self.routes.values():
            if route.status.accepted:
                self.http_route(route)
        self.apply_policies()
        return self.native_binds()


SECRETS_DIR_VARIABLE = "AGW_SECRETS_DIR"


def secret_files(namespace: str, name: str) -> CertificateFiles:
    """Where a `kubernetes.io/tls` Secret's two keys are read from: `<dir>/<namespace>/<name>/tls.crt` and
    `tls.key`, the layout of a Secret mounted as a volume (one directory per Secret). `<dir>` is
    $AGW_SECRETS_DIR, else `secrets` beside the first config file."""
    root = os.environ.get(SECRETS_DIR_VARIABLE) or "secrets"
    return CertificateFiles(cert=os.path.join(root, namespace, name, "tls.crt"),
                            key=os.path.join(root, namespace, name, "tls.key"))


def listener_certificates(tls: Optional[dict], namespace: str, path: str,
                          status: ObjectStatus) -> Optional[list[CertificateFiles]]:
    """An HTTPS listener's `tls` (mode Terminate, certificateRefs to Secrets) as certificate files; problems go
    to `status`. What agw cannot honour is refused: Passthrough, options, frontend validation, references to
    another namespace (they need a ReferenceGrant, which agw does not read) or to anything but a Secret."""
    if not isinstance(tls, dict):
        status.fail(INVALID, path, "required on an HTTPS listener (certificateRefs)")
        return None
    for key in sorted(set(tls) - {"mode", "certificateRefs"}):
        status.fail(INVALID, f"{path}.{key}", "not supported")
    if tls.get("mode", "Terminate") != "Terminate":
        status.fail(INVALID, f"{path}.mode", f"unsupported mode {tls.get('mode')!r} (Terminate)")
    refs = tls.get("certificateRefs")
    if not isinstance(refs, list) or not refs:
        status.fail(INVALID, f"{path}.certificateRefs", "at least one Secret is required")
        return None
    out = []
    for i, ref in enumerate(refs):
        rpath = f"{path}.certificateRefs[{i}]"
        if not isinstance(ref, dict) or not ref.get("name"):
            status.fail(INVALID, f"{rpath}.name", "required")
            continue
        for key in sorted(set(ref) - {"group", "kind", "name", "namespace"}):
            status.fail(INVALID, f"{rpath}.{key}", "unknown field")
        if ref.get("group", "") not in ("", "core") or ref.get("kind", "Secret") != "Secret":
            status.fail(INVALID, rpath, "only Secrets (group \"\", kind Secret) are supported")
            continue
        if ref.get("namespace", namespace) != namespace:
            status.fail(INVALID, f"{rpath}.namespace", "a Secret of another namespace needs a ReferenceGrant, "
                                                      "which agw does not read")
            continue
        out.append(secret_files(namespace, ref["name"]))
    return out if status.accepted else None


def _valid_hostname(host: str) -> bool:
    if not host or ":" in host or "/" in host:
        return False
    return host.count("*") == 0 or (host.startswith("*.") and host.count("*") == 1)


def _host_covers(pattern: str, host: str) -> bool:
    """Does `pattern` (a name or *.suffix) match every name `host` (a name or *.suffix) matches?"""
    if pattern == host:
        return True
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return host.endswith(suffix) and len(host) > len(suffix)
    return False


def _intersect_hostnames(listener: Optional[str], route: list[str]) -> Optional[list[str]]:
    """The hostnames a route answers on a listener; [] = any; None = none in common (not attached)."""
    if listener is None:
        return list(route)
    if not route:
        return [listener]
    out = []
    for host in route:
        if _host_covers(listener, host):
            out.append(host)
        elif _host_covers(host, listener):
            out.append(listener)
    return out or None


def translate(docs: list, loaded: Any, resolve: dict[str, str]) -> Translation:
    """Translate Kubernetes documents into `loaded.config` and fill `loaded.statuses`/`warnings`/`kube`."""
    translator = _Translator(resolve)
    binds = translator.run(docs)
    result = translator.result
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
