"""What every Kubernetes object shares while it is translated: its status line, its identity, the state of one
translation, and how documents are read into objects and Service references into addresses."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

import msgspec

from ..errors import from_validation_error
from ..kube_model import Metadata
from ..model import JwtAuth, Route

if TYPE_CHECKING:
    from .gateway import GatewayListener
    from .httproute import Entry

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
class KubeObject:
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
class State:
    """One translation: the objects read, and what the Gateways and HTTPRoutes became (policies target them)."""
    resolve: dict[str, str]
    result: Translation = field(default_factory=Translation)
    gateways: dict[tuple[str, str], KubeObject] = field(default_factory=dict)
    routes: dict[tuple[str, str], KubeObject] = field(default_factory=dict)
    policies: list[KubeObject] = field(default_factory=list)
    listeners: dict[tuple[str, str], list["GatewayListener"]] = field(default_factory=dict)  # gateway key -> them
    entries: dict[tuple[str, str], list["Entry"]] = field(default_factory=dict)             # HTTPRoute key -> them


def object_label(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{namespace}/{name}"


def decode(spec_type: type, value: Any, status: ObjectStatus, prefix: str = "spec") -> Any:
    try:
        return msgspec.convert({} if value is None else value, spec_type, str_keys=True)
    except msgspec.ValidationError as err:
        path, reason = from_validation_error(err, prefix)
        status.fail(INVALID, path, reason)
        return None


def is_gateway_group(group: Optional[str]) -> bool:
    return group in (None, GATEWAY_GROUP)


def is_core_group(group: Optional[str]) -> bool:
    return group in (None, "", "core")


def read_documents(state: State, docs: list) -> None:
    """Each document of a kind agw reads becomes an object with its status; other documents are warnings."""
    seen: dict[tuple[str, str, str], str] = {}
    for order, doc in enumerate(docs):
        body = doc.body
        kind = body.get("kind")
        if not isinstance(kind, str) or not kind:
            state.result.warnings.append(f"{doc.source}: ignoring a document without `kind`")
            continue
        if kind not in ("Gateway", "HTTPRoute") + POLICY_KINDS:
            state.result.warnings.append(f"{doc.source}: ignoring {kind} (agw reads Gateway, HTTPRoute, "
                                         f"AgentgatewayPolicy)")
            continue
        api_version = body.get("apiVersion")
        group = api_version.rpartition("/")[0] if isinstance(api_version, str) else ""
        if kind in ("Gateway", "HTTPRoute") and group != GATEWAY_GROUP:
            # e.g. Istio's networking.istio.io Gateway: same kind, another API.
            state.result.warnings.append(f"{doc.source}: ignoring {kind} of {api_version} "
                                         f"(agw reads {GATEWAY_GROUP})")
            continue
        status = ObjectStatus("")
        meta = decode(Metadata, body.get("metadata"), status, "metadata")
        namespace = (meta.namespace if meta else None) or DEFAULT_NAMESPACE
        name = meta.name if meta and meta.name else None
        if name is None:
            status.fail(INVALID, "metadata.name", "required")
            name = f"<{doc.source}>"
        status.label = object_label(kind, namespace, name)
        for path, reason in doc.problems:
            status.fail(INVALID, path, reason)
        state.result.statuses.append(status)
        obj = KubeObject(kind, namespace, name, doc.source, body, order, status)
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
            state.gateways[obj.key] = obj
        elif kind == "HTTPRoute":
            state.routes[obj.key] = obj
        else:
            state.policies.append(obj)


# --- Services -------------------------------------------------------------------------------------------------

def service_address(name: str, namespace: str, port: int, resolve: dict[str, str]) -> str:
    """`host:port` of a Service port: `--resolve name.namespace:port=host:port`, else the cluster DNS name."""
    mapped = resolve.get(f"{name}.{namespace}:{port}")
    return mapped if mapped is not None else f"{name}.{namespace}.{CLUSTER_DOMAIN}:{port}"


def resolve_service(state: State, status: ObjectStatus, path: str, ref: Any, namespace: str) -> Optional[str]:
    """`host:port` of a backendRef to a Service (an HTTPRoute's backend, a remote JWKS); None (and a problem)
    when it is not one."""
    ok = True
    if not is_core_group(ref.group) or (ref.kind or "Service") != "Service":
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
    return service_address(ref.name, ref.namespace or namespace, ref.port, state.resolve)
