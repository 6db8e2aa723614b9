"""agentgateway's own JWT e2e cases (controller/test/e2e/testdata/jwtauth) run against agw: their manifests as
they are, their tokens, the status codes their suite expects (the table in the data's README.md). Every
route's backend is the Service `backend.agentgateway-base:80`, mapped to a real httpbin with --resolve.

The RBAC rows add `spec.traffic.authorization` (action Allow, `jwt.sub == "ignore@agentgateway.dev"`), on the
HTTPRoute and on the Gateway: jwt4 (that subject) gets 200, jwt5 (another subject) 403, as agentgateway's suite
expects; authentication still answers first (no token: 401).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.conformance import AGENTGATEWAY_JWTAUTH
from tests.support.ports import free_port
from tests.support.proxy import agw_env

pytestmark = pytest.mark.e2e

DATA = AGENTGATEWAY_JWTAUTH

TOKENS: dict[str, str] = json.loads((DATA / "tokens.json").read_text())
GATEWAY_LISTENER = "    port: 8080\n"


def gateway_text(port: int) -> str:
    """Our Gateway for their suite, listening on a free port instead of 8080 (the only edit)."""
    text = (DATA / "gateway.yaml").read_text()
    assert GATEWAY_LISTENER in text
    return text.replace(GATEWAY_LISTENER, f"    port: {port}\n")


def manifest(name: str) -> str:
    return (DATA / name).read_text()


def resolve(httpbin_address: str) -> list[str]:
    return ["--resolve", f"backend.agentgateway-base:80={httpbin_address}"]


def status_of(proxy, host: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    response = proxy.get("/get", headers, host=host)
    if response.status == 401:
        assert response.text.startswith("authentication failure: "), response.text
    return response.status


@pytest.fixture
def start_with(agw_proxy, httpbin_backend):
    def start(*names: str):
        return agw_proxy(gateway_text(free_port()), files=[manifest(n) for n in names], wait_readyz=True,
                         extra_args=resolve(httpbin_backend.address))
    return start


def test_insecure_and_secured_routes(start_with):
    proxy = start_with("insecure-route.yaml", "secured-route.yaml")
    assert status_of(proxy, "insecureroute.com", None) == 200
    assert status_of(proxy, "secureroute.com", TOKENS["jwt1"]) == 200      # provider 1, one key in its JWKS
    assert status_of(proxy, "secureroute.com", TOKENS["jwt2"]) == 200      # provider 2 (same issuer), two keys
    assert status_of(proxy, "secureroute.com", TOKENS["jwt3"]) == 200
    assert status_of(proxy, "secureroute.com", "nosuchkey") == 401
    assert status_of(proxy, "secureroute.com", None) == 401


def test_policy_on_the_gateway(start_with):
    proxy = start_with("secured-gateway-policy.yaml")
    for name in ("jwt1", "jwt2", "jwt3"):
        assert status_of(proxy, "securegateways.com", TOKENS[name]) == 200, name
    assert status_of(proxy, "securegateways.com", "nosuchkey") == 401
    assert status_of(proxy, "securegateways.com", None) == 401


def test_the_backend_never_sees_their_token(start_with):
    proxy = start_with("secured-route.yaml")
    response = proxy.get("/headers", {"Authorization": f"Bearer {TOKENS['jwt1']}"}, host="secureroute.com")
    assert response.status == 200
    assert "Authorization" not in response.json()["headers"]


def agw(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agw", *args], env=agw_env(), capture_output=True, text=True,
                          timeout=timeout)


def write_config(tmp_path: Path, name: str) -> list[str]:
    gateway = tmp_path / "gateway.yaml"
    gateway.write_text(gateway_text(free_port()))
    return ["-f", str(gateway), "-f", str(DATA / name), "--resolve", "backend.agentgateway-base:80=127.0.0.1:9"]


@pytest.mark.parametrize("name, host", [
    ("secured-route-with-rbac.yaml", "secureroute.com"),
    ("secured-gateway-policy-with-rbac.yaml", "securegateways.com"),
])
def test_rbac_jwt4_is_allowed_and_jwt5_forbidden(start_with, name, host):
    proxy = start_with(name)
    assert status_of(proxy, host, TOKENS["jwt4"]) == 200        # sub ignore@agentgateway.dev
    denied = proxy.get("/get", {"Authorization": f"Bearer {TOKENS['jwt5']}"}, host=host)   # sub boom@...
    assert (denied.status, denied.body) == (403, b"authorization failed")
    assert status_of(proxy, host, None) == 401


@pytest.mark.parametrize("name, policy, route", [
    ("secured-route-with-rbac.yaml", "route-policy", "route-secure"),
    ("secured-gateway-policy-with-rbac.yaml", "gw-policy", "route-secure-gw"),
])
def test_rbac_manifests_are_accepted_by_check(tmp_path, name, policy, route):
    check = agw("check", *write_config(tmp_path, name))
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.splitlines() == ["Gateway/agentgateway-base/gateway: Accepted",
                                         f"HTTPRoute/agentgateway-base/{route}: Accepted",
                                         f"AgentgatewayPolicy/agentgateway-base/{policy}: Accepted"]


def test_invalid_inline_jwks_is_refused_before_any_request(tmp_path):
    """agentgateway serves this route as PartiallyValid and answers 401; agw refuses the config outright (as
    `agw run` does on any Invalid policy), naming the bad key: the route is never served unprotected either."""
    args = write_config(tmp_path, "invalid-inline.yaml")
    check = agw("check", *args)
    assert check.returncode == 1
    lines = check.stdout.splitlines()
    assert lines[:2] == ["Gateway/agentgateway-base/gateway: Accepted",
                         "HTTPRoute/agentgateway-base/route-invalid-jwks: Accepted"]
    assert lines[2].startswith("AgentgatewayPolicy/agentgateway-base/route-invalid-inline-jwks-policy: Invalid: "
                               "spec.traffic.jwtAuthentication.providers[0].jwks.inline: ")
    assert "3161" in lines[2] and len(lines) == 3
    run = agw("run", *args, "--admin", "off", timeout=30)
    assert (run.returncode, run.stderr.splitlines()) == (2, [lines[2]]), run.stdout + run.stderr
