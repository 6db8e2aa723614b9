"""Config fields whose effect is a unit's behaviour (a policy's verdict, a translation, a refusal), for the
fields tests/config_fields.py found without a test of their own."""
from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from vectors import mint  # noqa: E402
from vectors.mint import claims, token  # noqa: E402

from agw.config import ConfigError, load  # noqa: E402
from agw.config.compile import compile_config  # noqa: E402
from agw.config.kube import UNSUPPORTED_POLICY_SPEC, UNSUPPORTED_TRAFFIC  # noqa: E402
from agw.config.model import Jwks, JwtAuth  # noqa: E402
from agw.jwt import JwtPolicy  # noqa: E402


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "agw.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load([write(tmp_path, text)], env={})
    return err.value.lines()


def bearer(tok: bytes) -> dict:
    return {b"authorization": b"Bearer " + tok}


# --- native ----------------------------------------------------------------------------------------------------

def test_listener_protocol_https_needs_the_binds_tls(tmp_path):
    text = """
    binds:
    - port: 8443
      TLS
      listeners:
      - protocol: HTTPS
        routes: [{backends: [{host: 127.0.0.1:8000}]}]
    """
    assert errors(tmp_path, text.replace("TLS", "")) == [
        "config error: binds[0].listeners[0].protocol: HTTPS needs the bind's `tls` (this bind serves plain HTTP)"]
    loaded = load([write(tmp_path, text.replace("TLS", "tls: {cert: c.pem, key: k.pem}"))], env={})
    assert loaded.config.binds[0].listeners[0].protocol == "HTTPS"


def test_a_native_listener_hostname_is_refused(tmp_path):
    """It was accepted and ignored (every Host reached the listener's routes): refused, with the way to say it."""
    assert errors(tmp_path, """
        binds:
        - port: 8080
          listeners:
          - hostname: api.example.com
            routes: [{backends: [{host: 127.0.0.1:8000}]}]
        """) == ["config error: binds[0].listeners[0].hostname: not supported: set `hostnames` on each route"]


def test_a_route_without_a_name_is_named_after_its_listener(tmp_path):
    """The name metrics, the access log and `agw check` use for it."""
    loaded = load([write(tmp_path, """
        binds:
        - port: 8080
          listeners:
          - name: edge
            routes: [{backends: [{host: 127.0.0.1:8000}]}, {name: own, backends: [{host: 127.0.0.1:8000}]}]
          - routes: [{backends: [{host: 127.0.0.1:8000}]}]
        """)], env={})
    assert [r.name for r in compile_config(loaded.config).binds[0].routes] == ["edge/route0", "own", "listener1/route0"]


def test_clock_skew_admits_a_token_that_expired_within_it():
    tok = token("RS256", kid="rsa", payload=claims(exp=int(time.time()) - 30))
    for skew, allowed in (("60s", True), ("10s", False), ("0s", False)):
        p = JwtPolicy(JwtAuth(issuer=mint.ISSUER, jwks=Jwks(inline=mint.default_jwks()), clock_skew=skew))
        result = p.authenticate(bearer(tok), b"/")
        assert result.allowed is allowed, skew
        if not allowed:
            assert result.reason == "expired"


def test_max_token_bytes_bounds_the_token():
    tok = token("RS256", kid="rsa", payload=claims(pad="x" * 600))
    assert 800 < len(tok) < 8192
    default = JwtPolicy(JwtAuth(issuer=mint.ISSUER, jwks=Jwks(inline=mint.default_jwks())))
    assert default.authenticate(bearer(tok), b"/").allowed
    small = JwtPolicy(JwtAuth(issuer=mint.ISSUER, jwks=Jwks(inline=mint.default_jwks()), max_token_bytes=800))
    assert small.authenticate(bearer(tok), b"/").reason == "malformed"
    short = token("RS256", kid="rsa")
    assert len(short) < 800 and small.authenticate(bearer(short), b"/").allowed


# --- Kubernetes ------------------------------------------------------------------------------------------------

GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: ns}
spec:
  gatewayClassName: agentgateway
  listeners:
  - {name: http, protocol: HTTP, port: 8080}
"""

ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: ns}
spec:
  parentRefs: [{name: gw}]
  rules:
  - name: open
    matches: [{path: {type: PathPrefix, value: /open}}]
    backendRefs: [{name: a, port: 80}]
  - name: closed
    backendRefs: [{name: a, port: 80}]
"""

INLINE_JWKS = '{"keys": []}'


def policy(target: str, jwt: str = "", traffic_extra: str = "", spec_extra: str = "") -> str:
    jwt = jwt or f"providers: [{{issuer: https://i.example, jwks: {{inline: '{INLINE_JWKS}'}}}}]"
    return (f"apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayPolicy\nmetadata: {{name: p, namespace: ns}}\n"
            f"spec:\n  targetRefs: [{target}]\n{spec_extra}  traffic:\n{traffic_extra}"
            f"    jwtAuthentication:\n      {jwt}\n")


def load_docs(tmp_path: Path, *docs: str):
    path = tmp_path / "objects.yaml"
    path.write_text("\n---\n".join(docs))
    return load([str(path)], env={}, resolve={})


def routes_of(loaded) -> dict:
    return {r.name: r for b in loaded.config.binds for li in b.listeners for r in li.routes}


def test_only_gateways_of_class_agentgateway_are_served(tmp_path):
    loaded = load_docs(tmp_path, GATEWAY, ROUTE)
    assert loaded.statuses == ["Gateway/ns/gw: Accepted", "HTTPRoute/ns/r: Accepted"]
    loaded = load_docs(tmp_path, GATEWAY.replace("gatewayClassName: agentgateway", "gatewayClassName: istio"), ROUTE)
    assert loaded.statuses == [
        "Gateway/ns/gw: Invalid: spec.gatewayClassName: agw serves GatewayClass 'agentgateway', not 'istio'",
        "HTTPRoute/ns/r: NoMatchingParent: spec.parentRefs[0]: Gateway ns/gw is not valid"]
    assert routes_of(loaded) == {}


LISTENER = "  - {name: http, protocol: HTTP, port: 8080}\n"


@pytest.mark.parametrize("doc, replace, problem", [
    ("gateway", ("  listeners:\n", "  addresses: [{type: IPAddress, value: 10.0.0.1}]\n  listeners:\n"),
     "spec.addresses: not supported (agw listens on its own addresses)"),
    ("gateway", ("  listeners:\n", "  infrastructure: {labels: {a: b}}\n  listeners:\n"),
     "spec.infrastructure: not supported (agw provisions no infrastructure)"),
    ("gateway", (LISTENER, "  - {name: http, protocol: HTTP, port: 8080, allowedRoutes: {namespaces: "
                           "{from: Same, selector: {matchLabels: {a: b}}}}}\n"),
     "spec.listeners[0].allowedRoutes.namespaces.selector: not supported (agw has no namespace labels)"),
    ("gateway", (LISTENER, "  - {name: http, protocol: HTTP, port: 8080, allowedRoutes: {namespaces: "
                           "{from: Selector}}}\n"),
     "spec.listeners[0].allowedRoutes.namespaces.from: unsupported value 'Selector' (Same or All; agw has no "
     "namespace labels)"),
    ("gateway", (LISTENER, "  - {name: http, protocol: HTTP, port: 8080, allowedRoutes: "
                           "{kinds: [{kind: GRPCRoute}]}}\n"),
     "spec.listeners[0].allowedRoutes.kinds[0]: only HTTPRoute is supported"),
    ("gateway", (LISTENER, "  - {name: http, protocol: HTTP, port: 8080, tls: {mode: Terminate}}\n"),
     "spec.listeners[0].tls: not allowed on an HTTP listener"),
    ("route", ("  parentRefs: [{name: gw}]", "  parentRefs: [{name: gw, kind: Service, group: ''}]"),
     "spec.parentRefs[0].kind: unsupported parent /Service (agw attaches routes to Gateways)"),
    ("route", ("  parentRefs: [{name: gw}]", "  parentRefs: [{name: gw, group: other.example}]"),
     "spec.parentRefs[0].kind: unsupported parent other.example/None (agw attaches routes to Gateways)"),
    ("route", ("matches: [{path: {type: PathPrefix, value: /open}}]",
               "matches: [{path: {type: PathPrefix, value: /open}, queryParams: [{name: a, value: b}]}]"),
     "spec.rules[0].matches[0].queryParams: not supported"),
    ("route", ("  - name: closed\n", "  - name: closed\n    retry: {attempts: 2}\n"),
     "spec.rules[1].retry: not supported"),
    ("route", ("  - name: closed\n", "  - name: closed\n    sessionPersistence: {type: Cookie}\n"),
     "spec.rules[1].sessionPersistence: not supported"),
    ("route", ("  - name: closed\n    backendRefs: [{name: a, port: 80}]",
               "  - name: closed\n    backendRefs: [{name: a, port: 80, filters: [{type: RequestHeaderModifier}]}]"),
     "spec.rules[1].backendRefs[0].filters: not supported"),
    ("route", ("  - name: closed\n    backendRefs: [{name: a, port: 80}]",
               "  - name: closed\n    backendRefs: [{name: a, port: 80, kind: Backend, group: agentgateway.dev}]"),
     "spec.rules[1].backendRefs[0].kind: unsupported backend agentgateway.dev/Backend (agw resolves Services)"),
    ("route", ("  - name: closed\n    backendRefs: [{name: a, port: 80}]",
               "  - name: closed\n    backendRefs: [{name: a, port: 80, weight: -1}]"),
     "spec.rules[1].backendRefs[0].weight: must not be negative"),
    ("route", ("  - name: closed\n    backendRefs: [{name: a, port: 80}]",
               "  - name: closed\n    backendRefs: [{name: a, port: 80, weight: 0}]"),
     "spec.rules[1].backendRefs: every backendRef has weight 0"),
    ("policy", ("{inline: '" + INLINE_JWKS + "'}", "{remote: {jwksPath: /k, backendRef: {name: idp, port: 80, "
                "kind: Backend, group: agentgateway.dev}}}"),
     "spec.traffic.jwtAuthentication.providers[0].jwks.remote.backendRef.kind: unsupported backend "
     "agentgateway.dev/Backend (agw resolves Services)"),
])
def test_kubernetes_settings_agw_cannot_honour_are_refused(tmp_path, doc, replace, problem):
    """Each is refused with its path (the object is not Accepted, so `agw run` refuses to start), never ignored."""
    docs = {"gateway": GATEWAY, "route": ROUTE, "policy": policy("{kind: Gateway, group: gateway.networking.k8s.io, "
                                                                  "name: gw}")}
    assert replace[0] in docs[doc]
    docs[doc] = docs[doc].replace(*replace)
    loaded = load_docs(tmp_path, docs["gateway"], docs["route"], docs["policy"])
    index = {"gateway": 0, "route": 1, "policy": 2}[doc]
    label = {"gateway": "Gateway/ns/gw", "route": "HTTPRoute/ns/r", "policy": "AgentgatewayPolicy/ns/p"}[doc]
    assert loaded.statuses[index] == f"{label}: Invalid: {problem}"


@pytest.mark.parametrize("key", [f"traffic.{name}" for name in UNSUPPORTED_TRAFFIC]
                         + list(UNSUPPORTED_POLICY_SPEC))
def test_agentgateway_policy_keys_agw_does_not_implement_are_refused(tmp_path, key):
    target = "{kind: Gateway, group: gateway.networking.k8s.io, name: gw}"
    if key.startswith("traffic."):
        pol = policy(target, traffic_extra=f"    {key.split('.', 1)[1]}: {{}}\n")
    else:
        pol = policy(target, spec_extra=f"  {key}: {{}}\n")
    loaded = load_docs(tmp_path, GATEWAY, ROUTE, pol)
    assert loaded.statuses[2] == f"AgentgatewayPolicy/ns/p: Invalid: spec.{key}: not supported"
    assert routes_of(loaded) == {}      # its targets are left out, not served without it


def test_a_policy_targets_one_route_rule_by_section_name(tmp_path):
    pol = policy("{kind: HTTPRoute, group: gateway.networking.k8s.io, name: r, sectionName: closed}")
    loaded = load_docs(tmp_path, GATEWAY, ROUTE, pol)
    assert loaded.statuses[2] == "AgentgatewayPolicy/ns/p: Accepted"
    routes = routes_of(loaded)
    assert routes["ns/r/open"].policies is None
    assert routes["ns/r/closed"].policies.jwt_auth.providers[0].issuer == "https://i.example"
    pol = policy("{kind: HTTPRoute, group: gateway.networking.k8s.io, name: r, sectionName: nope}")
    assert load_docs(tmp_path, GATEWAY, ROUTE, pol).statuses[2] == (
        "AgentgatewayPolicy/ns/p: TargetNotFound: spec.targetRefs[0].sectionName: HTTPRoute ns/r has no rule named "
        "'nope'")


def test_kubernetes_required_claims_reach_the_provider(tmp_path):
    jwt = (f"providers: [{{issuer: https://i.example, jwks: {{inline: '{INLINE_JWKS}'}}, "
           f"jwtValidationOptions: {{requiredClaims: [exp, sub]}}}}]")
    pol = policy("{kind: Gateway, group: gateway.networking.k8s.io, name: gw}", jwt)
    loaded = load_docs(tmp_path, GATEWAY, ROUTE, pol)
    [provider] = routes_of(loaded)["ns/r/open"].policies.jwt_auth.providers
    assert provider.jwt_validation_options.required_claims == ["exp", "sub"]
    bad = pol.replace("[exp, sub]", "[exp, foo]")
    assert load_docs(tmp_path, GATEWAY, ROUTE, bad).statuses[2] == (
        "AgentgatewayPolicy/ns/p: Invalid: spec.traffic.jwtAuthentication.providers[0].jwtValidationOptions."
        "requiredClaims[1]: unsupported claim 'foo' (one of exp, nbf, aud, iss, sub, iat)")
