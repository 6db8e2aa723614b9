"""`AgentgatewayPolicy.spec.traffic.authorization` translated: actions, merging across Gateway and HTTPRoute,
compile errors as Invalid with their field path, and the deny-rule warning."""
from __future__ import annotations

import textwrap

from agw.authz import AuthorizationPolicy
from agw.check import check, check_files

from test_kube import GATEWAY, GUIDE_POLICY, HTTPBIN_ROUTE, load_docs, routes_of, write

PATH = "spec.traffic.authorization.policy.matchExpressions"


def authz_policy(name: str, kind: str, target: str, expressions: list[str], action: str | None = "Allow",
                 namespace: str = "agentgateway-system", section: str | None = None) -> str:
    ref = f"{{group: gateway.networking.k8s.io, kind: {kind}, name: {target}" + \
        (f", sectionName: {section}}}" if section else "}")
    action_line = f"      action: {action}\n" if action is not None else ""
    exprs = "".join(f"        - {e!r}\n" for e in expressions)
    return (f"apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayPolicy\n"
            f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  targetRefs:\n  - {ref}\n"
            f"  traffic:\n    authorization:\n{action_line}      policy:\n        matchExpressions:\n{exprs}")


ROUTE_KEY = "httpbin/httpbin"


def route_rules(loaded):
    route = routes_of(loaded)[ROUTE_KEY]
    return route.policies.authorization.actions() if route.policies and route.policies.authorization else None


def test_an_allow_policy_on_the_route_next_to_jwt_on_the_gateway(tmp_path):
    pol = authz_policy("admins", "HTTPRoute", "httpbin", ['"admin" in jwt.realm_access.roles'], namespace="httpbin")
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, GUIDE_POLICY, pol)
    assert loaded.statuses[-2:] == ["AgentgatewayPolicy/agentgateway-system/jwt-auth-policy: Accepted",
                                    "AgentgatewayPolicy/httpbin/admins: Accepted"]
    route = routes_of(loaded)[ROUTE_KEY]
    assert route.policies.jwt_auth is not None and route.policies.jwt_auth.mode == "strict"
    assert route_rules(loaded) == [("allow", '"admin" in jwt.realm_access.roles', "httpbin/admins.matchExpressions[0]")]


def test_rules_of_the_gateway_and_the_route_are_merged(tmp_path):
    gw = authz_policy("no-bob", "Gateway", "agentgateway-proxy", ['jwt.sub == "bob"'], action="Deny")
    rt = authz_policy("users", "HTTPRoute", "httpbin", ['has(jwt.sub)', 'jwt.sub == "x"'], action=None,
                      namespace="httpbin")
    req = authz_policy("tenant", "HTTPRoute", "httpbin", ['jwt.tenant == "t1"'], action="Require",
                       namespace="httpbin")
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, GUIDE_POLICY, gw, rt, req)
    assert all(s.endswith(": Accepted") for s in loaded.statuses), loaded.statuses
    assert route_rules(loaded) == [
        ("deny", 'jwt.sub == "bob"', "agentgateway-system/no-bob.matchExpressions[0]"),
        ("allow", "has(jwt.sub)", "httpbin/users.matchExpressions[0]"),
        ("allow", 'jwt.sub == "x"', "httpbin/users.matchExpressions[1]"),
        ("require", 'jwt.tenant == "t1"', "httpbin/tenant.matchExpressions[0]"),
    ]
    # The jwt policy still comes from the Gateway (the authorization-only policies do not conflict with it).
    assert routes_of(loaded)[ROUTE_KEY].policies.jwt_auth is not None


def test_a_listener_section_policy_applies_to_routes_on_that_listener(tmp_path):
    gw = authz_policy("on-http", "Gateway", "agentgateway-proxy", ['jwt.sub == "a"'], section="http")
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, gw)
    assert route_rules(loaded) == [("allow", 'jwt.sub == "a"', "agentgateway-system/on-http.matchExpressions[0]")]
    assert routes_of(loaded)[ROUTE_KEY].policies.jwt_auth is None


def test_a_compile_error_is_invalid_with_its_path_message_and_position(tmp_path):
    pol = authz_policy("broken", "HTTPRoute", "httpbin", ['jwt.sub == "a"', 'jwt.sub == "a" &&'],
                       namespace="httpbin")
    path = write(tmp_path, GATEWAY, HTTPBIN_ROUTE, pol)
    lines, ok = check_files([path], env={})
    assert not ok
    assert lines[-1].startswith(f"AgentgatewayPolicy/httpbin/broken: Invalid: {PATH}[1]: invalid CEL expression "
                                "at line 1, column 18: Syntax error: ")
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, pol)
    assert check(loaded).refusals == [lines[-1]]         # what `agw run` prints before refusing to start
    assert routes_of(loaded) == {}                       # and the route is not served without its rules


def test_an_undeclared_variable_is_a_compile_error(tmp_path):
    pol = authz_policy("typo", "HTTPRoute", "httpbin", ['claims.sub == "a"'], namespace="httpbin")
    status = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, pol).statuses[-1]
    assert status == (f"AgentgatewayPolicy/httpbin/typo: Invalid: {PATH}[0]: invalid CEL expression at line 1, "
                      "column 7: undeclared reference to 'claims.sub'")


def test_bad_actions_and_expression_counts(tmp_path):
    bad = authz_policy("a", "HTTPRoute", "httpbin", ["true"], action="Permit", namespace="httpbin")
    assert load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, bad).statuses[-1] == (
        'AgentgatewayPolicy/httpbin/a: Invalid: spec.traffic.authorization.action: invalid action "Permit" '
        "(Allow, Deny or Require)")
    empty = authz_policy("b", "HTTPRoute", "httpbin", [], namespace="httpbin").replace(
        "        matchExpressions:\n", "        matchExpressions: []\n")
    assert load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, empty).statuses[-1] == (
        f"AgentgatewayPolicy/httpbin/b: Invalid: {PATH}: at least one expression is required")
    many = authz_policy("c", "HTTPRoute", "httpbin", [f'jwt.sub == "u{i}"' for i in range(257)],
                        namespace="httpbin")
    assert load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, many).statuses[-1] == (
        f"AgentgatewayPolicy/httpbin/c: Invalid: {PATH}: at most 256 expressions (got 257)")
    ok = authz_policy("d", "HTTPRoute", "httpbin", [f'jwt.sub == "u{i}"' for i in range(256)], action="deny",
                      namespace="httpbin")
    assert load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, ok).statuses[-1] == "AgentgatewayPolicy/httpbin/d: Accepted"


def test_a_deny_rule_reading_a_claim_that_may_be_absent_is_a_warning(tmp_path):
    pol = authz_policy("d", "HTTPRoute", "httpbin", ['!("admin" in jwt.roles)', 'has(jwt.x) && jwt.x == 1'],
                       action="Deny", namespace="httpbin")
    path = write(tmp_path, GATEWAY, HTTPBIN_ROUTE, pol)
    lines, ok = check_files([path], env={})
    assert ok
    assert lines[-1] == (f"warning: AgentgatewayPolicy/httpbin/d: {PATH}[0]: deny rule reads jwt.roles, which may "
                         "be absent: the rule then fails, a failure counts as false, and it does not deny (if such "
                         "requests must be denied, test for it with has(jwt.roles))")
    assert sum(line.startswith("warning: ") for line in lines) == 1


def test_the_translated_rules_build_a_policy(tmp_path):
    gw = authz_policy("no-bob", "Gateway", "agentgateway-proxy", ['jwt.sub == "bob"'], action="Deny")
    rt = authz_policy("users", "HTTPRoute", "httpbin", ['has(jwt.sub)'], namespace="httpbin")
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, gw, rt)
    policy = AuthorizationPolicy(routes_of(loaded)[ROUTE_KEY].policies.authorization)
    assert [r.action for r in policy.rules] == ["deny", "allow"] and policy.jwt_only


def test_native_config_compile_errors_have_their_field_path(tmp_path):
    native = textwrap.dedent("""
        binds:
        - port: 8080
          listeners:
          - policies:
              authorization: {rules: ['jwt.sub == "a"']}
            routes:
            - backends: [{host: 127.0.0.1:8000}]
              policies:
                authorization:
                  rules:
                  - 'true'
                  - {deny: 'jwt.sub =='}
                  - {allow: 'true', deny: 'false'}
                  - {}
        """)
    path = tmp_path / "native.yaml"
    path.write_text(native)
    lines, ok = check_files([str(path)], env={})
    r0 = "binds[0].listeners[0].routes[0].policies.authorization"
    assert not ok
    assert lines[0].startswith(f"config error: {r0}.rules[1].deny: invalid CEL expression at line 1, column 11: "
                               "Syntax error: ")
    assert lines[1:] == [f"config error: {r0}.rules[2]: exactly one of allow, deny, require, shadow is required "
                         "(got allow, deny)",
                         f"config error: {r0}.rules[3]: exactly one of allow, deny, require, shadow is required"]


def test_native_deny_rules_that_may_miss_their_field_are_warned_about(tmp_path):
    path = tmp_path / "native.yaml"
    path.write_text(textwrap.dedent("""
        binds:
        - port: 8080
          listeners:
          - routes:
            - backends: [{host: 127.0.0.1:8000}]
              policies:
                authorization:
                  rules:
                  - {deny: 'request.headers["x-env"] != "prod"'}
                  - {deny: '"x-env" in request.headers && request.headers["x-env"] == "dev"'}
                  - 'jwt.sub == "alice"'
        """))
    lines, ok = check_files([str(path)], env={})
    assert ok
    assert lines[1:] == ['warning: binds[0].listeners[0].routes[0].policies.authorization.rules[0].deny: deny rule '
                         'reads request.headers["x-env"], which may be absent: the rule then fails, a failure counts '
                         'as false, and it does not deny (if such requests must be denied, test for it with '
                         '"x-env" in request.headers)']
