"""AgentgatewayPolicy (or TrafficPolicy) -> the native `jwtAuth` of the routes it targets, and its
`traffic.authorization` their `authorization` rules (kube_authz.py: merged across Gateway and route).

The policy's providers are checked by validate.py's own provider and duration checks (what the native config
would refuse, with the Kubernetes path); only what has no native counterpart (the remote JWKS's Service
reference and path, an inline key set's shape) is checked here. A policy that cannot be enforced leaves its
targets out of the config instead of serving them without it.
"""
from __future__ import annotations

import json
from typing import Optional

from ..kube_authz import AuthzLevels, translate_authorization
from ..kube_model import JwksSpec, JwtAuthenticationSpec, PolicySpec, ProviderSpec, TargetRef
from ..model import Jwks, JwtAuth, Policies, Provider, ValidationOptions
from ..validate import Problems, check_jwt_auth, check_provider, normalize_mode
from .objects import (CONFLICTED, GATEWAY_GROUP, INVALID, JWT_PATH, TARGET_NOT_FOUND, KubeObject, ObjectStatus,
                      PolicyBinding, State, decode, is_gateway_group, resolve_service)

# agentgateway fields that agw knows but does not implement: refused by name (never silently ignored, since
# ignoring e.g. `authorization` would let through requests the user meant to deny).
UNSUPPORTED_TRAFFIC = ("apiKeyAuthentication", "basicAuthentication", "cors", "csrf",
                       "directResponse", "extAuth", "extProc", "headerModifiers", "hostRewrite", "phase",
                       "rateLimit", "retry", "timeouts", "transformation")
UNSUPPORTED_POLICY_SPEC = ("targetSelectors", "frontend", "backend")

Target = tuple[str, tuple, Optional[str]]    # (kind, key, sectionName)


def translate_policy(state: State, pol: KubeObject) -> tuple[Optional[Policies], list[Target]]:
    """The policy's native form (None when it is not valid) and the targets it names."""
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
    spec = decode(PolicySpec, raw, status)
    if spec is None:
        return None, []
    targets = _targets(state, status, spec.target_refs)
    ja = spec.traffic.jwt_authentication if spec.traffic is not None else None
    jwt_auth = _jwt_auth(state, status, ja) if ja is not None else None
    az = spec.traffic.authorization if spec.traffic is not None else None
    authz = translate_authorization(status, az, INVALID, state.result.warnings) if az is not None else None
    if not status.accepted:
        return None, targets
    if jwt_auth is not None:
        state.result.policies.append(PolicyBinding(status, jwt_auth))
    return Policies(jwt_auth=jwt_auth, authorization=authz), targets


def _targets(state: State, status: ObjectStatus, refs: Optional[list[TargetRef]]) -> list[Target]:
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
        if not is_gateway_group(ref.group) or ref.kind not in ("Gateway", "HTTPRoute"):
            status.fail(INVALID, f"{path}.kind", f"unsupported target {ref.group or ''}/{ref.kind} "
                        f"(Gateway or HTTPRoute of {GATEWAY_GROUP})")
            continue
        key = (namespace, ref.name)
        found = state.gateways if ref.kind == "Gateway" else state.routes
        if key not in found:
            status.fail(TARGET_NOT_FOUND, path, f"{ref.kind} {namespace}/{ref.name} not found")
            continue
        if ref.section_name is not None:
            if ref.kind == "Gateway":
                names = [ls.name for ls in state.listeners.get(key, [])]
            else:
                names = [e.rule.name for e in state.entries.get(key, []) if e.rule.name]
            if ref.section_name not in names:
                status.fail(TARGET_NOT_FOUND, f"{path}.sectionName",
                            f"{ref.kind} {namespace}/{ref.name} has no "
                            f"{'listener' if ref.kind == 'Gateway' else 'rule'} named {ref.section_name!r}")
                continue
        out.append((ref.kind, key, ref.section_name))
    return out


def _targets_of_invalid(state: State, pol: KubeObject) -> list[Target]:
    """What an invalid policy meant to protect (best effort), so that it can be left out."""
    spec = pol.body.get("spec")
    refs = spec.get("targetRefs") if isinstance(spec, dict) else None
    scratch = ObjectStatus(pol.status.label)
    decoded = decode(list[TargetRef], refs or [], scratch, "spec.targetRefs")
    return _targets(state, scratch, decoded) if decoded else []


def _report(status: ObjectStatus, problems: Problems) -> None:
    for path, reason in problems:
        status.fail(INVALID, path, reason)


def _jwt_auth(state: State, status: ObjectStatus, spec: JwtAuthenticationSpec) -> Optional[JwtAuth]:
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
        built = _provider(state, status, f"{p}.providers[{i}]", prov)
        if built is not None:
            providers.append(built)
    if len(status.problems) != before:
        return None
    ja = JwtAuth(mode=mode, providers=providers)
    # The native checks of the whole policy as a safety net: whatever they still find is reported under it.
    native = Problems()
    check_jwt_auth(native, p, ja)
    _report(status, native)
    return ja if not native else None


# The key set a provider is checked with before its Kubernetes `jwks` is translated (that one is checked by
# _jwks, where its shape is known): it satisfies every native JWKS check, so only the provider's own fields speak.
_CHECKED_ELSEWHERE = Jwks(inline='{"keys": []}')


def _provider(state: State, status: ObjectStatus, path: str, spec: ProviderSpec) -> Optional[Provider]:
    before = len(status.problems)
    if spec.issuer is None:
        status.fail(INVALID, f"{path}.issuer", "required")
    options = None
    if spec.jwt_validation_options is not None and spec.jwt_validation_options.required_claims is not None:
        options = ValidationOptions(required_claims=spec.jwt_validation_options.required_claims)
    native = Problems()
    check_provider(native, path, Provider(issuer=spec.issuer or "", audiences=spec.audiences,
                                          jwks=_CHECKED_ELSEWHERE, jwt_validation_options=options))
    # The issuer's own problem is already said when it is missing; requiredClaims are left to the policy's
    # safety net (check_jwt_auth), which reports them once the rest of the policy is valid.
    _report(status, Problems((q, r) for q, r in native if q.startswith((f"{path}.issuer", f"{path}.audiences"))
                             and not (spec.issuer is None and q == f"{path}.issuer")))
    jwks = None
    if spec.jwks is None:
        status.fail(INVALID, f"{path}.jwks", "required")
    else:
        jwks = _jwks(state, status, f"{path}.jwks", spec.jwks)
    if len(status.problems) != before or jwks is None:
        return None
    return Provider(issuer=spec.issuer, audiences=spec.audiences or None, jwks=jwks,
                    jwt_validation_options=options)


def _jwks(state: State, status: ObjectStatus, path: str, spec: JwksSpec) -> Optional[Jwks]:
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
    problems = Problems()
    cache = remote.cache_duration if remote.cache_duration is not None else "5m"
    problems.duration(f"{path}.remote.cacheDuration", cache)
    jwks_path = remote.jwks_path
    if jwks_path is None:
        problems.add(f"{path}.remote.jwksPath", "required")
    elif not jwks_path:
        problems.add(f"{path}.remote.jwksPath", "must not be empty")
    _report(status, problems)
    if remote.backend_ref is None:
        status.fail(INVALID, f"{path}.remote.backendRef", "required")
        return None
    namespace = status.label.split("/")[1]
    address = resolve_service(state, status, f"{path}.remote.backendRef", remote.backend_ref, namespace)
    if address is None or problems:
        return None
    if jwks_path.startswith(("http://", "https://")):
        url = jwks_path
    else:
        scheme = "https" if remote.backend_ref.port == 443 else "http"
        url = f"{scheme}://{address}{jwks_path if jwks_path.startswith('/') else '/' + jwks_path}"
    return Jwks(url=url, cache_duration=cache)


def apply_policies(state: State) -> None:
    """Give each entry (future native route) the policy of its most specific target: a route rule, a route,
    a Gateway listener, a Gateway (authorization rules are merged across the levels, not overridden). Two
    jwtAuthentication policies on one target conflict; a target of a policy that is not valid (or conflicts)
    is blocked: left out of the config (404) instead of served without it."""
    levels: list[dict[tuple, tuple[Policies, ObjectStatus]]] = [{}, {}, {}, {}]
    authz = AuthzLevels()
    blocked: set[tuple] = set()
    for pol in state.policies:
        if pol.status.accepted:
            policies, targets = translate_policy(state, pol)
        else:
            policies, targets = None, _targets_of_invalid(state, pol)
        for ti, (kind, key, section) in enumerate(targets):
            slot = (key, section)
            if policies is None:
                # Fail closed even for callers that ignore statuses.
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
    for entries in state.entries.values():
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
