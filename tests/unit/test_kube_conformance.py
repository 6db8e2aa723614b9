"""agentgateway's own JWT e2e manifests (tests/conformance/agentgateway-jwtauth) load as agentgateway reads them.

The RBAC cases add `spec.traffic.authorization` (Allow, CEL over `jwt.sub`): the route gets the JWT policy and the
rule. The request-level rows of the README run end to end elsewhere (tests/e2e/test_conformance.py).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from agw.config import load
from agw.check import check_files
from tests.support.conformance import AGENTGATEWAY_JWTAUTH

RESOLVE = {"backend.agentgateway-base:80": "127.0.0.1:9000"}


def conformance_dir() -> Path:
    return AGENTGATEWAY_JWTAUTH


def load_with_gateway(*names: str):
    base = conformance_dir()
    return load([str(base / "gateway.yaml")] + [str(base / n) for n in names], resolve=RESOLVE, env={})


def routes_by_host(loaded) -> dict:
    [bind] = loaded.config.binds
    assert bind.port == 8080
    [listener] = bind.listeners
    assert listener.name == "agentgateway-base/gateway/http"
    return {r.hostnames[0]: r for r in listener.routes}


def issuers_and_kids(route) -> list[tuple[str, str]]:
    import json
    return [(p.issuer, k["kid"]) for p in route.policies.jwt_auth.providers
            for k in json.loads(p.jwks.inline)["keys"]]


def test_insecure_and_secured_route():
    loaded = load_with_gateway("insecure-route.yaml", "secured-route.yaml")
    assert loaded.statuses == [
        "Gateway/agentgateway-base/gateway: Accepted",
        "HTTPRoute/agentgateway-base/route-example-insecure: Accepted",
        "HTTPRoute/agentgateway-base/route-secure: Accepted",
        "AgentgatewayPolicy/agentgateway-base/route-policy: Accepted",
    ]
    routes = routes_by_host(loaded)
    assert set(routes) == {"insecureroute.com", "secureroute.com"}
    insecure, secure = routes["insecureroute.com"], routes["secureroute.com"]
    assert insecure.policies is None
    assert [b.host for b in insecure.backends] == [b.host for b in secure.backends] == ["127.0.0.1:9000"]
    assert secure.name == "agentgateway-base/route-secure"
    assert secure.policies.jwt_auth.mode == "strict"
    # Two providers with the same issuer and different key sets: both are kept.
    assert issuers_and_kids(secure) == [("https://agentgateway.dev", "5358488414679311644"),
                                        ("https://agentgateway.dev", "1170864541832970789"),
                                        ("https://agentgateway.dev", "7971382679178549620")]


def test_secured_gateway_policy_covers_the_route():
    loaded = load_with_gateway("secured-gateway-policy.yaml")
    assert loaded.statuses == [
        "Gateway/agentgateway-base/gateway: Accepted",
        "HTTPRoute/agentgateway-base/route-secure-gw: Accepted",
        "AgentgatewayPolicy/agentgateway-base/gw-policy: Accepted",
    ]
    route = routes_by_host(loaded)["securegateways.com"]
    assert len(route.policies.jwt_auth.providers) == 2


@pytest.mark.parametrize("name, policy, route, host", [
    ("secured-route-with-rbac.yaml", "route-policy", "route-secure", "secureroute.com"),
    ("secured-gateway-policy-with-rbac.yaml", "gw-policy", "route-secure-gw", "securegateways.com")])
def test_rbac_manifests_load_with_their_rule(name, policy, route, host):
    loaded = load_with_gateway(name)
    assert loaded.statuses == ["Gateway/agentgateway-base/gateway: Accepted",
                               f"HTTPRoute/agentgateway-base/{route}: Accepted",
                               f"AgentgatewayPolicy/agentgateway-base/{policy}: Accepted"]
    secured = routes_by_host(loaded)[host]
    assert secured.policies.jwt_auth.mode == "strict"
    assert secured.policies.authorization.actions() == [
        ("allow", 'jwt.sub == "ignore@agentgateway.dev"', f"agentgateway-base/{policy}.matchExpressions[0]")]


def test_invalid_inline_jwks_is_reported_by_check():
    base = conformance_dir()
    lines, ok = check_files([str(base / "gateway.yaml"), str(base / "invalid-inline.yaml")], RESOLVE, env={})
    assert not ok
    assert lines[:2] == ["Gateway/agentgateway-base/gateway: Accepted",
                         "HTTPRoute/agentgateway-base/route-invalid-jwks: Accepted"]
    # The reason is the JWT layer's (today: "no usable key: keys[0] (kid '3161'): unsupported kty 'RSB'").
    assert lines[2].startswith("AgentgatewayPolicy/agentgateway-base/route-invalid-inline-jwks-policy: Invalid: "
                               "spec.traffic.jwtAuthentication.providers[0].jwks.inline: ")
    assert "3161" in lines[2] and len(lines) == 3


@pytest.mark.parametrize("name", ["insecure-route.yaml", "secured-route.yaml", "secured-gateway-policy.yaml",
                                  "secured-route-with-rbac.yaml", "secured-gateway-policy-with-rbac.yaml"])
def test_check_accepts_the_supported_manifests(name):
    base = conformance_dir()
    lines, ok = check_files([str(base / "gateway.yaml"), str(base / name)], RESOLVE, env={})
    assert ok, lines
    assert all(line.endswith(": Accepted") for line in lines)
