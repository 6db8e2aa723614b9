"""Authorization rules through the real proxy: agw as a subprocess, tokens from the real test IdP carrying
Keycloak's `realm_access.roles`, a real httpbin behind. Allow, deny, require, the 403, rules over the request,
listener + route merging, shadow rules in /metrics and the access log, and a compile error refusing `agw run`."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.e2e.test_jwt_e2e import bearer, remote, samples
from tests.support.ports import free_port
from tests.support.proxy import run_agw

pytestmark = pytest.mark.e2e

ADMIN = ["offline_access", "uma_authorization", "admin"]
USER = ["offline_access", "uma_authorization"]


def config(backend: str, idp, rules: list, *, listener_rules: list | None = None, mode: str = "strict") -> dict:
    listener: dict[str, Any] = {"name": "main", "routes": [{
        "name": "httpbin", "backends": [{"host": backend}],
        "policies": {"jwtAuth": remote(idp, mode=mode), "authorization": {"rules": rules}},
    }]}
    if listener_rules is not None:
        listener["policies"] = {"authorization": {"rules": listener_rules}}
    return {"binds": [{"port": free_port(), "address": "127.0.0.1", "listeners": [listener]}]}


def token(idp, sub: str = "user1", roles: list[str] | None = None, **claims: Any) -> str:
    return idp.mint({"sub": sub, "realm_access": {"roles": USER if roles is None else roles}, **claims})


def assert_forbidden(response) -> None:
    assert response.status == 403, (response.status, response.text)
    assert response.header("content-type") == "text/plain"
    assert response.body == b"authorization failed"
    assert response.header("www-authenticate") is None


def decisions(proxy) -> dict[tuple[str, str], float]:
    """agw_policy_decisions_total of the authorization policy: (label, outcome) -> count."""
    status, text = proxy.admin_get("/metrics")
    assert status == 200
    out = {}
    for labels, value in samples(text, "agw_policy_decisions_total").items():
        d = dict(labels)
        if d["policy"] == "authorization":
            assert d["route"] == "httpbin"
            out[(d["label"], d["outcome"])] = value
    return out


def test_the_issue_rule_allows_user1_with_the_admin_role_only(agw_proxy, idp, httpbin_backend):
    proxy = agw_proxy(config(httpbin_backend.address, idp, ['jwt.sub == "user1" && "admin" in jwt.realm_access.roles']),
                      wait_readyz=True)
    ok = proxy.get("/headers", bearer(token(idp, roles=ADMIN)))
    assert ok.status == 200
    assert "authorization" not in {k.lower() for k in ok.json()["headers"]}     # jwt still removed the token
    assert_forbidden(proxy.get("/headers", bearer(token(idp, roles=USER))))
    assert_forbidden(proxy.get("/headers", bearer(token(idp, sub="user2", roles=ADMIN))))
    assert_forbidden(proxy.get("/headers", bearer(idp.mint({"realm_access": None}))))   # missing claim: false
    # Authentication still comes first: no token is the 401, not a 403.
    assert proxy.get("/headers").status == 401
    # The same token again is answered from the verdict cache, with the same answers.
    for _ in range(3):
        assert proxy.get("/headers", bearer(token(idp, roles=ADMIN))).status == 200


def test_deny_and_require(agw_proxy, idp, httpbin_backend):
    rules = [{"deny": 'jwt.sub == "mallory"'}, {"require": '"offline_access" in jwt.realm_access.roles'}]
    proxy = agw_proxy(config(httpbin_backend.address, idp, rules), wait_readyz=True)
    assert proxy.get("/get", bearer(token(idp))).status == 200            # no allow rules: allowed unless refused
    assert_forbidden(proxy.get("/get", bearer(token(idp, sub="mallory"))))
    assert_forbidden(proxy.get("/get", bearer(token(idp, roles=["admin"]))))
    assert decisions(proxy) == {("default", "allow"): 1.0, ("rules[0]", "deny"): 1.0, ("rules[1]", "deny"): 1.0}


def test_rules_over_the_request(agw_proxy, idp, httpbin_backend):
    rules = ['request.method == "GET" && request.path.startsWith("/anything/public")',
             '"admin" in jwt.realm_access.roles && request.headers["x-env"] == "prod" && request.query == "v=1"',
             {"deny": 'source.address != "127.0.0.1" || source.port == 0'}]
    proxy = agw_proxy(config(httpbin_backend.address, idp, rules), wait_readyz=True)
    user, admin = bearer(token(idp)), bearer(token(idp, roles=ADMIN))
    assert proxy.get("/anything/public/x", user).status == 200
    assert_forbidden(proxy.request("POST", "/anything/public/x", user))
    assert_forbidden(proxy.get("/anything/private", user))
    assert proxy.get("/anything/private?v=1", {**admin, "X-Env": "prod"}).status == 200
    assert_forbidden(proxy.get("/anything/private?v=1", {**admin, "X-Env": "dev"}))
    assert_forbidden(proxy.get("/anything/private?v=2", {**admin, "X-Env": "prod"}))


def test_listener_and_route_rules_both_apply(agw_proxy, idp, httpbin_backend):
    cfg = config(httpbin_backend.address, idp, ['"admin" in jwt.realm_access.roles'],
                 listener_rules=[{"deny": 'jwt.sub == "banned"'}])
    proxy = agw_proxy(cfg, wait_readyz=True)
    assert proxy.get("/get", bearer(token(idp, roles=ADMIN))).status == 200
    assert_forbidden(proxy.get("/get", bearer(token(idp, sub="banned", roles=ADMIN))))   # the listener's deny
    assert_forbidden(proxy.get("/get", bearer(token(idp))))                              # the route's allow
    assert decisions(proxy) == {("rules[0]", "allow"): 1.0, ("listener.rules[0]", "deny"): 1.0,
                                ("default", "deny"): 1.0}


def test_permissive_without_a_token_sees_an_empty_jwt(agw_proxy, idp, httpbin_backend):
    proxy = agw_proxy(config(httpbin_backend.address, idp, ["!has(jwt.sub)", 'jwt.sub == "user1"'],
                             mode="permissive"), wait_readyz=True)
    assert proxy.get("/get").status == 200
    assert proxy.get("/get", bearer(token(idp))).status == 200
    assert_forbidden(proxy.get("/get", bearer(token(idp, sub="user2"))))


def wait_lines(path, n: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= n:
            return [json.loads(line) for line in lines]
        assert time.monotonic() < deadline, f"the access log has {len(lines)} lines, not {n}"
        time.sleep(0.05)


def test_a_shadow_rule_is_counted_and_logged_but_never_enforced(agw_proxy, idp, httpbin_backend, tmp_path):
    log_path = tmp_path / "access.jsonl"
    rules = ["has(jwt.sub)", {"shadow": '"admin" in jwt.realm_access.roles', "name": "admins-only"}]
    proxy = agw_proxy(config(httpbin_backend.address, idp, rules), wait_readyz=True,
                      extra_args=("--access-log", str(log_path)))
    assert proxy.get("/get", bearer(token(idp, roles=ADMIN))).status == 200
    for _ in range(2):
        assert proxy.get("/get", bearer(token(idp))).status == 200        # would be denied: still served
    assert decisions(proxy) == {("rules[0]", "allow"): 1.0, ("admins-only", "would_deny"): 2.0}
    entries = wait_lines(log_path, 3)
    assert [(e["status"], e["authorization"], e["authz_rule"]) for e in entries] == [
        (200, "allow", "rules[0]"), (200, "would_deny", "admins-only"), (200, "would_deny", "admins-only")]
    assert all(e["jwt"] == "ok" and e["sub"] == "user1" for e in entries)


def test_a_denied_request_names_its_rule_in_the_access_log(agw_proxy, idp, httpbin_backend, tmp_path):
    log_path = tmp_path / "access.jsonl"
    rules = [{"deny": 'jwt.sub == "mallory"', "name": "no-mallory"}, "true"]
    proxy = agw_proxy(config(httpbin_backend.address, idp, rules), wait_readyz=True,
                      extra_args=("--access-log", str(log_path)))
    assert_forbidden(proxy.get("/get", bearer(token(idp, sub="mallory"))))
    [entry] = wait_lines(log_path, 1)
    assert (entry["status"], entry["jwt"], entry["authorization"], entry["authz_rule"]) == \
        (403, "ok", "deny", "no-mallory")
    assert "error" not in entry


def test_a_compile_error_refuses_to_start_with_its_path_and_position(tmp_path, idp):
    path = tmp_path / "agw.yaml"
    cfg = config("127.0.0.1:9", idp, ['jwt.sub == "a"', {"require": "jwt.sub.startsWith("}])
    path.write_text(json.dumps(cfg))
    run = run_agw("run", "-f", str(path), "--admin", "off", timeout=30)
    assert run.returncode == 2, run.stdout + run.stderr
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("config error: binds[0].listeners[0].routes[0].policies.authorization.rules[1].require: "
                           "invalid CEL expression at line 1, column 20: Syntax error: "), line
    check = run_agw("check", "-f", str(path))
    assert check.returncode == 1 and check.stdout.strip().splitlines() == [line]
