"""The JWT guide's Kubernetes YAML run by agw as it is: Gateway + HTTPRoute + AgentgatewayPolicy with
`${KEYCLOAK_ISSUER}` / `${KEYCLOAK_JWKS_PATH}` taken from the environment, the Services `keycloak.keycloak:8080`
and `httpbin.httpbin:8000` mapped with --resolve to a real IdP and a real httpbin. Then `agw check` on the guide
and on broken copies of it (exact lines, exit codes), and `agw run` refusing the same copies with the same lines.
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.idp import MockIdp
from tests.support.ports import free_port
from tests.support.proxy import REPO_ROOT, agw_env

pytestmark = pytest.mark.e2e

GUIDE = (REPO_ROOT / "examples" / "guide-policy.yaml").read_text()
GUIDE_LISTENER = "    port: 8080\n    name: http\n"
HOST = "www.example.com"
POLICY = "AgentgatewayPolicy/agentgateway-system/jwt-auth-policy"
ACCEPTED = ["Gateway/agentgateway-system/agentgateway-proxy: Accepted", "HTTPRoute/httpbin/httpbin: Accepted",
            f"{POLICY}: Accepted"]
JWKS_PATH = "/realms/master/protocol/openid-connect/certs"


def guide_text(port: int) -> str:
    """The guide's documents, the Gateway listening on `port` (the only edit)."""
    assert GUIDE_LISTENER in GUIDE
    return GUIDE.replace(GUIDE_LISTENER, f"    port: {port}\n    name: http\n")


def guide_documents(port: int) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(guide_text(port)) if doc]


def jwt_spec(documents: list[dict[str, Any]]) -> dict[str, Any]:
    policy = next(doc for doc in documents if doc["kind"] == "AgentgatewayPolicy")
    return policy["spec"]["traffic"]["jwtAuthentication"]


def guide_env(idp: MockIdp) -> dict[str, str]:
    return {"KEYCLOAK_ISSUER": idp.issuer, "KEYCLOAK_JWKS_PATH": JWKS_PATH}


def resolve_args(idp: MockIdp, httpbin_address: str) -> list[str]:
    return ["--resolve", f"keycloak.keycloak:8080=127.0.0.1:{idp.port}",
            "--resolve", f"httpbin.httpbin:8000={httpbin_address}"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tampered(token: str) -> str:
    head, payload, signature = token.split(".")
    middle = len(signature) // 2
    return f"{head}.{payload}.{signature[:middle]}{'A' if signature[middle] != 'A' else 'B'}{signature[middle + 1:]}"


@pytest.fixture
def start_guide(agw_proxy, idp, httpbin_backend):
    """start_guide(documents, env=..., extra_args=...) -> a running proxy with the guide's --resolve flags."""
    def start(documents: list[dict[str, Any]] | str, env: dict[str, str] | None = None,
              extra_args: list[str] = (), wait_readyz: bool = True):
        return agw_proxy(documents, env=env or guide_env(idp), wait_readyz=wait_readyz,
                         extra_args=resolve_args(idp, httpbin_backend.address) + list(extra_args))
    return start


# --- the guide, end to end -----------------------------------------------------------------------------------

def test_the_guide_as_written(start_guide, idp):
    proxy = start_guide(guide_text(free_port()))
    refused = proxy.get("/headers", host=HOST)
    assert refused.status == 401
    assert refused.body == b"authentication failure: no bearer token found"
    assert refused.header("www-authenticate") == 'Bearer realm="agw"'

    accepted = proxy.get("/headers", bearer(idp.password_token()), host=HOST)
    assert accepted.status == 200, accepted.text
    echoed = {k.lower(): v for k, v in accepted.json()["headers"].items()}
    assert "authorization" not in echoed
    assert echoed["host"].split(":")[0] == HOST

    assert proxy.get("/headers", bearer(tampered(idp.password_token())), host=HOST).status == 401
    assert proxy.get("/headers", bearer(idp.password_token()), host="other.example.com").status == 404


def test_optional_variant(start_guide, idp):
    documents = guide_documents(free_port())
    jwt_spec(documents)["mode"] = "Optional"
    proxy = start_guide(documents)
    assert proxy.get("/headers", host=HOST).status == 200
    assert proxy.get("/headers", bearer(idp.password_token()), host=HOST).status == 200
    refused = proxy.get("/headers", bearer(tampered(idp.password_token())), host=HOST)
    assert (refused.status, refused.text) == (401, "authentication failure: signature invalid")


def test_permissive_variant(start_guide, idp):
    documents = guide_documents(free_port())
    jwt_spec(documents)["mode"] = "Permissive"
    proxy = start_guide(documents)
    assert proxy.get("/headers", host=HOST).status == 200
    bad = tampered(idp.password_token())
    passed = proxy.get("/headers", bearer(bad), host=HOST)
    assert passed.status == 200
    assert passed.json()["headers"]["Authorization"] == f"Bearer {bad}"
    good = proxy.get("/headers", bearer(idp.password_token()), host=HOST)
    assert good.status == 200 and "Authorization" not in good.json()["headers"]


def test_multi_provider_variant(start_guide, idp, idp_fresh):
    """Two Keycloak realms behind two Services: a token of either is accepted."""
    documents = guide_documents(free_port())
    spec = jwt_spec(documents)
    second = copy.deepcopy(spec["providers"][0])
    second["issuer"] = "${SECOND_ISSUER}"
    second["audiences"] = ["my-application"]
    second["jwks"]["remote"]["backendRef"]["name"] = "keycloak-two"
    spec["providers"].append(second)
    env = {**guide_env(idp), "SECOND_ISSUER": idp_fresh.issuer}
    proxy = start_guide(documents, env=env,
                        extra_args=["--resolve", f"keycloak-two.keycloak:8080=127.0.0.1:{idp_fresh.port}"])
    assert proxy.get("/headers", bearer(idp.password_token()), host=HOST).status == 200
    assert proxy.get("/headers", bearer(idp_fresh.password_token()), host=HOST).status == 200
    assert proxy.get("/headers", bearer(idp_fresh.mint({"aud": "other"})), host=HOST).status == 401
    assert proxy.get("/headers", host=HOST).status == 401


def test_inline_jwks_variant(start_guide, idp):
    documents = guide_documents(free_port())
    spec = jwt_spec(documents)
    spec["providers"][0]["jwks"] = {"inline": json.dumps(idp.jwks())}
    proxy = start_guide(documents, env={"KEYCLOAK_ISSUER": idp.issuer})   # no JWKS path needed
    assert proxy.get("/headers", bearer(idp.password_token()), host=HOST).status == 200
    assert proxy.get("/headers", host=HOST).status == 401


def test_a_route_policy_replaces_the_gateway_policy_on_its_route(start_guide, idp):
    documents = guide_documents(free_port())
    route_policy = copy.deepcopy(next(doc for doc in documents if doc["kind"] == "AgentgatewayPolicy"))
    route_policy["metadata"] = {"name": "route-optional", "namespace": "httpbin"}
    route_policy["spec"]["targetRefs"] = [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                                           "name": "httpbin"}]
    route_policy["spec"]["traffic"]["jwtAuthentication"]["mode"] = "Optional"
    proxy = start_guide(documents + [route_policy])
    assert proxy.get("/headers", host=HOST).status == 200
    assert proxy.get("/headers", bearer(tampered(idp.password_token())), host=HOST).status == 401


# --- agw check and agw run on valid and broken manifests ---------------------------------------------------------

CHECK_ENV = {"KEYCLOAK_ISSUER": "http://127.0.0.1:8081/realms/master", "KEYCLOAK_JWKS_PATH": JWKS_PATH}
CHECK_RESOLVE = ["--resolve", "keycloak.keycloak:8080=127.0.0.1:8081",
                 "--resolve", "httpbin.httpbin:8000=127.0.0.1:8000"]

BROKEN = {
    "missing-issuer": (("      - issuer: \"${KEYCLOAK_ISSUER}\"\n        jwks:", "      - jwks:"),
                       "Invalid: spec.traffic.jwtAuthentication.providers[0].issuer: required"),
    "bad-mode": (("mode: Strict", "mode: Foo"),
                 'Invalid: spec.traffic.jwtAuthentication.mode: invalid mode "Foo" (Strict, Optional or Permissive)'),
    "bad-duration": (('cacheDuration: "5m"', 'cacheDuration: "5 minutes"'),
                     "Invalid: spec.traffic.jwtAuthentication.providers[0].jwks.remote.cacheDuration: "
                     "invalid duration '5 minutes' (use e.g. 30s, 5m, 1h)"),
    "unknown-target": (("kind: Gateway\n    name: agentgateway-proxy", "kind: Gateway\n    name: no-such-gateway"),
                       "TargetNotFound: spec.targetRefs[0]: Gateway agentgateway-system/no-such-gateway not found"),
    "unusable-inline-key": (
        (GUIDE[GUIDE.index("          remote:\n"):],
         """          inline: '{"keys":[{"e":"AQAB","kid":"3161","kty":"RSB","n":"tmzcODUF5T9p"}]}'\n"""),
        "Invalid: spec.traffic.jwtAuthentication.providers[0].jwks.inline: no usable key: keys[0] (kid '3161'): "
        "unsupported kty 'RSB'"),
    "unset-variable": (None,
                       "Invalid: spec.traffic.jwtAuthentication.providers[0].issuer: "
                       "environment variable KEYCLOAK_ISSUER is not set"),
}


def broken_case(name: str, tmp_path: Path) -> tuple[Path, dict[str, str], str]:
    edit, problem = BROKEN[name]
    text = guide_text(free_port())
    env = dict(CHECK_ENV)
    if edit is None:
        del env["KEYCLOAK_ISSUER"]
    else:
        assert edit[0] in text
        text = text.replace(edit[0], edit[1])
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path, env, f"{POLICY}: {problem}"


def agw(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m agw ARGS` with the guide's variables exactly as in `env` (none inherited from the runner)."""
    full_env = {k: v for k, v in agw_env().items() if k not in CHECK_ENV}
    full_env.update(env)
    return subprocess.run([sys.executable, "-m", "agw", *args], env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def test_check_accepts_the_guide(tmp_path):
    path = tmp_path / "guide.yaml"
    path.write_text(GUIDE)
    result = agw("check", "-f", str(path), *CHECK_RESOLVE, env=CHECK_ENV)
    assert (result.returncode, result.stdout.splitlines()) == (0, ACCEPTED), result.stderr


@pytest.mark.parametrize("name", list(BROKEN))
def test_check_names_the_problem_and_run_refuses_with_the_same_line(tmp_path, name):
    path, env, policy_line = broken_case(name, tmp_path)
    check = agw("check", "-f", str(path), *CHECK_RESOLVE, env=env)
    assert check.returncode == 1, check.stdout + check.stderr
    assert check.stdout.splitlines() == ACCEPTED[:2] + [policy_line]

    run = agw("run", "-f", str(path), *CHECK_RESOLVE, "--admin", "off", env=env, timeout=30)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.splitlines() == [policy_line], run.stderr


@pytest.fixture
def tls_jwks_server(idp, tmp_path):
    """The IdP's JWKS served over HTTPS by a certificate of a local CA (trustme); yields (port, CA file)."""
    import http.server
    import ssl
    import threading

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    body = json.dumps(idp.jwks()).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            status = 200 if self.path == JWKS_PATH else 404
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) if status == 200 else 0))
            self.end_headers()
            if status == 200:
                self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], ca_file
    server.shutdown()
    server.server_close()


def test_a_jwks_backend_ref_on_port_443_is_fetched_over_tls(start_guide, idp, tls_jwks_server):
    """As the guide's Auth0 example needs: port 443 means https, verified against the trust store (here the
    test CA, given to agw as the process's SSL_CERT_FILE)."""
    tls_port, ca_file = tls_jwks_server
    documents = guide_documents(free_port())
    jwt_spec(documents)["providers"][0]["jwks"]["remote"]["backendRef"]["port"] = 443
    env = {**guide_env(idp), "SSL_CERT_FILE": str(ca_file)}
    proxy = start_guide(documents, env=env, extra_args=["--resolve", f"keycloak.keycloak:443=127.0.0.1:{tls_port}"])
    response = proxy.get("/headers", bearer(idp.password_token()), host=HOST)
    assert response.status == 200, (response.text, proxy.output()[-2000:])

    # Without the CA, the certificate is not trusted: no keys (not ready), and requests say so.
    documents = copy.deepcopy(documents)
    next(doc for doc in documents if doc["kind"] == "Gateway")["spec"]["listeners"][0]["port"] = free_port()
    documents.append({"config": {"startupGrace": "0s"}})    # take traffic without keys at once
    untrusting = start_guide(documents, env={**guide_env(idp), "SSL_CERT_FILE": str(ca_file.with_name("none.pem"))},
                             extra_args=["--resolve", f"keycloak.keycloak:443=127.0.0.1:{tls_port}"], wait_readyz=False)
    untrusting.wait_for_output("taking traffic without keys")
    assert untrusting.admin_get("/readyz")[0] == 503
    refused = untrusting.get("/headers", bearer(idp.password_token()), host=HOST)
    assert (refused.status, refused.text) == (401, "authentication failure: keys unavailable")


def test_traffic_policy_alias_short_variables_and_a_native_file_alongside(agw_proxy, idp, httpbin_backend):
    text = guide_text(free_port())
    text = text.replace("apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayPolicy",
                        "apiVersion: gateway.kgateway.dev/v1alpha1\nkind: TrafficPolicy")
    text = text.replace('"${KEYCLOAK_ISSUER}"', '"$KEYCLOAK_ISSUER"')
    assert "kind: TrafficPolicy" in text and "$KEYCLOAK_ISSUER" in text
    native_port = free_port()
    native = {"binds": [{"port": native_port, "address": "127.0.0.1", "listeners": [{"name": "plain", "routes": [
        {"name": "open", "backends": [{"host": "${BACKEND}"}]}]}]}]}
    proxy = agw_proxy(text, files=[native], wait_readyz=True,
                      env={**guide_env(idp), "BACKEND": httpbin_backend.address},
                      extra_args=resolve_args(idp, httpbin_backend.address))
    assert proxy.get("/headers", host=HOST).status == 401
    assert proxy.get("/headers", bearer(idp.password_token()), host=HOST).status == 200
    assert proxy.get("/headers", port=native_port).status == 200       # the native route has no policy
