"""Gateway -> its listeners (port, hostname, which namespaces' routes may attach, an HTTPS listener's
certificates from its Secrets), and the hostname rules that decide what an attached HTTPRoute answers on a
listener."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from ..kube_model import GatewayListenerSpec, GatewaySpec
from ..model import CertificateFiles
from .objects import GATEWAY_CLASS, INVALID, KubeObject, ObjectStatus, State, decode, is_gateway_group

if TYPE_CHECKING:
    from .httproute import Entry


@dataclass
class GatewayListener:
    gateway: KubeObject
    name: str
    port: int
    hostname: Optional[str]
    allowed_from: str
    native_name: str
    entries: list["Entry"] = field(default_factory=list)
    certificates: Optional[list[CertificateFiles]] = None    # an HTTPS listener's, from its certificateRefs


def translate_gateway(state: State, gw: KubeObject) -> None:
    """Record the listeners of a Gateway (none when it is not valid: routes naming it get NoMatchingParent)."""
    status = gw.status
    spec = decode(GatewaySpec, gw.body.get("spec"), status)
    listeners: list[GatewayListener] = []
    if spec is not None:
        if spec.gateway_class_name is not None and spec.gateway_class_name != GATEWAY_CLASS:
            status.fail(INVALID, "spec.gatewayClassName",
                        f"agw serves GatewayClass {GATEWAY_CLASS!r}, not {spec.gateway_class_name!r}")
        if spec.addresses is not None:
            status.fail(INVALID, "spec.addresses", "not supported (agw listens on its own addresses)")
        if spec.infrastructure is not None:
            status.fail(INVALID, "spec.infrastructure", "not supported (agw provisions no infrastructure)")
        if not spec.listeners:
            status.fail(INVALID, "spec.listeners", "at least one listener is required")
        names: set[str] = set()
        for i, ls in enumerate(spec.listeners):
            allowed, certificates = _check_listener(status, f"spec.listeners[{i}]", ls, names, gw.namespace)
            if status.accepted:
                listeners.append(GatewayListener(gw, ls.name, ls.port, ls.hostname, allowed,
                                                 f"{gw.namespace}/{gw.name}/{ls.name}", certificates=certificates))
    state.listeners[gw.key] = listeners if status.accepted else []


def _check_listener(status: ObjectStatus, path: str, ls: GatewayListenerSpec, names: set[str], namespace: str
                    ) -> tuple[str, Optional[list[CertificateFiles]]]:
    """Report what is wrong with one listener; returns the namespaces it admits routes from and, for HTTPS,
    its certificates."""
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
        certificates = listener_certificates(ls.tls, namespace, f"{path}.tls", status)
    if ls.tls is not None and ls.protocol == "HTTP":
        status.fail(INVALID, f"{path}.tls", "not allowed on an HTTP listener")
    if ls.hostname is not None and not valid_hostname(ls.hostname):
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
            if kind.get("kind") != "HTTPRoute" or not is_gateway_group(kind.get("group")):
                status.fail(INVALID, f"{path}.allowedRoutes.kinds[{ki}]", "only HTTPRoute is supported")
    return allowed, certificates


# --- HTTPS listeners: certificates from Secrets ------------------------------------------------------------------

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


# --- hostnames -------------------------------------------------------------------------------------------------

def valid_hostname(host: str) -> bool:
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


def intersect_hostnames(listener: Optional[str], route: list[str]) -> Optional[list[str]]:
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
