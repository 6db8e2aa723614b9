"""Kubernetes documents translated into the native config: routes, backends, policies, and status lines."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agw.config import ConfigError, load
from agw.config.kube import service_address

KEYCLOAK_ENV = {"KEYCLOAK_ISSUER": "http://keycloak.example:8080/realms/master",
                "KEYCLOAK_JWKS_PATH": "/realms/master/protocol/openid-connect/certs"}

GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: agentgateway-proxy, namespace: agentgateway-system}
spec:
  gatewayClassName: agentgateway
  listeners:
  - {protocol: HTTP, port: 8080, name: http, allowedRoutes: {namespaces: {from: All}}}
"""

HTTPBIN_ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: httpbin, namespace: httpbin}
spec:
  parentRefs: [{name: agentgateway-proxy, namespace: agentgateway-system}]
  hostnames: ["www.example.com"]
  rules:
  - backendRefs: [{name: httpbin, port: 8000}]
"""

# The guide's policy, word for word.
GUIDE_POLICY = """
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayPolicy
metadata: {name: jwt-auth-policy, namespace: agentgateway-system}
spec:
  targetRefs:
  - {group: gateway.networking.k8s.io, kind: Gateway, name: agentgateway-proxy}
  traffic:
    jwtAuthentication:
      mode: Strict
      providers:
      - issuer: "${KEYCLOAK_ISSUER}"
        audiences: ["my-application"]
        jwks:
          remote:
            jwksPath: "${KEYCLOAK_JWKS_PATH}"
            cacheDuration: "5m"
            backendRef: {group: "", kind: Service, name: keycloak, namespace: keycloak, port: 8080}
"""


def write(tmp_path: Path, *docs: str, name: str = "objects.yaml") -> str:
    path = tmp_path / name
    path.write_text("\n---\n".join(textwrap.dedent(d) for d in docs))
    return str(path)


def load_docs(tmp_path: Path, *docs: str, resolve: dict | None = None, env: dict | None = None):
    return load([write(tmp_path, *docs)], resolve=resolve or {}, env=KEYCLOAK_ENV if env is None else env)


def routes_of(loaded) -> dict:
    return {r.name: r for b in loaded.config.binds for li in b.listeners for r in li.routes}


def policy(name: str, target_kind: str, target: str, jwt: str, namespace: str = "agentgateway-system",
           extra: str = "") -> str:
    body = textwrap.indent(textwrap.dedent(jwt).strip(), " " * 6)
    return (f"apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayPolicy\n"
            f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n"
            f"  targetRefs:\n  - {{group: gateway.networking.k8s.io, kind: {target_kind}, name: {target}}}\n"
            f"  traffic:\n{extra}    jwtAuthentication:\n{body}\n")


INLINE_JWKS = '{"keys":[{"kty":"RSA","kid":"k1","e":"AQAB","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw"}]}'  # noqa: E501


# --- the guide ------------------------------------------------------------------------------------------------

def test_guide_yaml_becomes_a_route_with_the_remote_jwks_policy(tmp_path):
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, GUIDE_POLICY)
    assert loaded.statuses == [
        "Gateway/agentgateway-system/agentgateway-proxy: Accepted",
        "HTTPRoute/httpbin/httpbin: Accepted",
        "AgentgatewayPolicy/agentgateway-system/jwt-auth-policy: Accepted",
    ]
    [bind] = loaded.config.binds
    assert bind.port == 8080
    [listener] = bind.listeners
    assert listener.name == "agentgateway-system/agentgateway-proxy/http"
    [route] = listener.routes
    assert route.name == "httpbin/httpbin"
    assert route.hostnames == ["www.example.com"]
    assert route.matches == []
    assert [b.host for b in route.backends] == ["httpbin.httpbin.svc.cluster.local:8000"]
    ja = route.policies.jwt_auth
    assert ja.mode == "strict"
    [provider] = ja.providers
    assert provider.issuer == "http://keycloak.example:8080/realms/master"
    assert provider.audiences == ["my-application"]
    assert provider.jwks.url == ("http://keycloak.keycloak.svc.cluster.local:8080"
                                 "/realms/master/protocol/openid-connect/certs")
    assert provider.jwks.cache_duration == "5m"


def test_resolve_maps_service_ports_to_local_addresses(tmp_path):
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, GUIDE_POLICY,
                       resolve={"keycloak.keycloak:8080": "127.0.0.1:8081", "httpbin.httpbin:8000": "127.0.0.1:9"})
    route = routes_of(loaded)["httpbin/httpbin"]
    assert [b.host for b in route.backends] == ["127.0.0.1:9"]
    assert route.policies.jwt_auth.providers[0].jwks.url == \
        "http://127.0.0.1:8081/realms/master/protocol/openid-connect/certs"


def test_service_address_without_resolve_is_the_cluster_dns_name():
    assert service_address("keycloak", "keycloak", 8080, {}) == "keycloak.keycloak.svc.cluster.local:8080"
    assert service_address("keycloak", "keycloak", 8080, {"keycloak.keycloak:8080": "10.0.0.1:80"}) == "10.0.0.1:80"


@pytest.mark.parametrize("written, native", [("Strict", "strict"), ("Optional", "optional"),
                                             ("Permissive", "permissive"), ("optional", "optional"),
                                             ("PERMISSIVE", "permissive")])
def test_guide_modes_in_any_case(tmp_path, written, native):
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, GUIDE_POLICY.replace("mode: Strict", f"mode: {written}"))
    assert routes_of(loaded)["httpbin/httpbin"].policies.jwt_auth.mode == native


def test_mode_defaults_to_strict(tmp_path):
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, GUIDE_POLICY.replace("      mode: Strict\n", ""))
    assert routes_of(loaded)["httpbin/httpbin"].policies.jwt_auth.mode == "strict"


def test_guide_inline_variant(tmp_path):
    pol = policy("inline", "Gateway", "agentgateway-proxy", f"""
        providers:
        - issuer: https://issuer.example
          jwks:
            inline: '{INLINE_JWKS}'
        """)
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, pol)
    [provider] = routes_of(loaded)["httpbin/httpbin"].policies.jwt_auth.providers
    assert provider.jwks.inline == INLINE_JWKS and provider.jwks.url is None
    assert provider.audiences is None


def test_guide_multi_provider_variant(tmp_path):
    pol = policy("multi", "Gateway", "agentgateway-proxy", """
        mode: Strict
        providers:
        - issuer: https://one.example
          jwks:
            remote: {jwksPath: /certs, backendRef: {name: idp-one, namespace: idps, port: 8080}}
        - issuer: https://dev-xyz.us.auth0.com/
          audiences: [api]
          jwks:
            remote:
              jwksPath: /.well-known/jwks.json
              backendRef: {kind: Service, name: auth0, namespace: idps, port: 443}
        """)
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, pol, resolve={"auth0.idps:443": "dev-xyz.us.auth0.com:443"})
    one, two = routes_of(loaded)["httpbin/httpbin"].policies.jwt_auth.providers
    assert one.jwks.url == "http://idp-one.idps.svc.cluster.local:8080/certs"
    assert one.jwks.cache_duration == "5m"
    # Port 443 is fetched over TLS, as the guide's Auth0 example needs.
    assert two.jwks.url == "https://dev-xyz.us.auth0.com:443/.well-known/jwks.json"


def test_jwks_path_that_is_a_full_url_is_used_as_is(tmp_path):
    pol = policy("full", "Gateway", "agentgateway-proxy", """
        providers:
        - issuer: https://i.example
          jwks:
            remote: {jwksPath: "https://keys.example/jwks.json", backendRef: {name: keys, port: 443}}
        """)
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, pol)
    assert routes_of(loaded)["httpbin/httpbin"].policies.jwt_auth.providers[0].jwks.url == \
        "https://keys.example/jwks.json"


def test_policy_backend_ref_without_namespace_takes_the_policy_namespace(tmp_path):
    pol = policy("p", "Gateway", "agentgateway-proxy", """
        providers:
        - issuer: https://i.example
          jwks: {remote: {jwksPath: certs, backendRef: {name: idp, port: 80}}}
        """)
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, pol)
    assert routes_of(loaded)["httpbin/httpbin"].policies.jwt_auth.providers[0].jwks.url == \
        "http://idp.agentgateway-system.svc.cluster.local:80/certs"


def test_trafficpolicy_kind_of_any_group_is_the_same_thing(tmp_path):
    pol = GUIDE_POLICY.replace("apiVersion: agentgateway.dev/v1alpha1", "apiVersion: gateway.kgateway.dev/v1alpha1") \
                      .replace("kind: AgentgatewayPolicy", "kind: TrafficPolicy")
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, pol)
    assert loaded.statuses[-1] == "TrafficPolicy/agentgateway-system/jwt-auth-policy: Accepted"
    assert routes_of(loaded)["httpbin/httpbin"].policies.jwt_auth is not None


# --- policy attachment ------------------------------------------------------------------------------------------

OTHER_ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: other, namespace: agentgateway-system}
spec:
  parentRefs: [{name: agentgateway-proxy}]
  hostnames: ["other.example.com"]
  rules:
  - backendRefs: [{name: other, port: 80}]
"""


def test_route_policy_replaces_the_gateway_policy_on_that_route_only(tmp_path):
    route_pol = policy("route-pol", "HTTPRoute", "other", f"""
        mode: Optional
        providers:
        - issuer: https://route.example
          jwks: {{inline: '{INLINE_JWKS}'}}
        """)
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, OTHER_ROUTE, GUIDE_POLICY, route_pol)
    routes = routes_of(loaded)
    assert routes["httpbin/httpbin"].policies.jwt_auth.providers[0].issuer == KEYCLOAK_ENV["KEYCLOAK_ISSUER"]
    other = routes["agentgateway-system/other"].policies.jwt_auth
    assert (other.mode, other.providers[0].issuer) == ("optional", "https://route.example")
    # Backends of a route without namespace: the route's own namespace.
    assert routes["agentgateway-system/other"].backends[0].host == "other.agentgateway-system.svc.cluster.local:80"


def test_gateway_policy_is_one_object_shared_by_all_routes(tmp_path):
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, OTHER_ROUTE, GUIDE_POLICY)
    routes = routes_of(loaded)
    # One object: the proxy builds one policy (one JWKS cache) per object.
    assert routes["httpbin/httpbin"].policies.jwt_auth is routes["agentgateway-system/other"].policies.jwt_auth


def test_routes_without_a_policy_have_none(tmp_path):
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE)
    assert routes_of(loaded)["httpbin/httpbin"].policies is None


def test_two_policies_on_the_same_target_conflict(tmp_path):
    second = GUIDE_POLICY.replace("name: jwt-auth-policy", "name: second")
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, GUIDE_POLICY, second)
    assert loaded.statuses[-1] == (
        "AgentgatewayPolicy/agentgateway-system/second: Conflicted: spec.targetRefs[0]: Gateway "
        "agentgateway-system/agentgateway-proxy already has jwtAuthentication from "
        "AgentgatewayPolicy/agentgateway-system/jwt-auth-policy")
    assert routes_of(loaded) == {}   # fail closed: nothing is served while it is ambiguous


def test_policy_with_section_name_applies_to_that_listener(tmp_path):
    gw = GATEWAY.replace("  - {protocol: HTTP, port: 8080, name: http, allowedRoutes: {namespaces: {from: All}}}",
                         "  - {protocol: HTTP, port: 8080, name: http, allowedRoutes: {namespaces: {from: All}}}\n"
                         "  - {protocol: HTTP, port: 8081, name: admin, allowedRoutes: {namespaces: {from: All}}}")
    pol = GUIDE_POLICY.replace("name: agentgateway-proxy}", "name: agentgateway-proxy, sectionName: admin}")
    loaded = load_docs(tmp_path, gw, HTTPBIN_ROUTE, pol)
    by_port = {b.port: b.listeners[0].routes[0] for b in loaded.config.binds}
    assert by_port[8080].policies is None
    assert by_port[8081].policies.jwt_auth is not None


# --- HTTPRoute translation --------------------------------------------------------------------------------------

def route_doc(spec: str, name: str = "r", namespace: str = "agentgateway-system") -> str:
    return (f"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
            f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n"
            + textwrap.indent(textwrap.dedent(spec).strip(), "  ") + "\n")


def test_matches_translate_to_native_matches(tmp_path):
    loaded = load_docs(tmp_path, GATEWAY, route_doc("""
        parentRefs: [{name: agentgateway-proxy}]
        rules:
        - matches:
          - path: {type: Exact, value: /headers}
            method: get
            headers: [{name: x-env, value: prod}, {type: RegularExpression, name: x-v, value: "v[0-9]+"}]
          backendRefs: [{name: a, port: 80}]
        - matches:
          - path: {type: RegularExpression, value: "/v[0-9]+/.*"}
          backendRefs: [{name: b, port: 80}]
        - matches:
          - path: {type: PathPrefix, value: /api}
          backendRefs: [{name: c, port: 80}]
        """))
    routes = routes_of(loaded)
    exact = routes["agentgateway-system/r/rule0"].matches[0]
    assert exact.path.exact == "/headers" and exact.method == "GET"
    assert [(h.name, h.value.exact, h.value.regex) for h in exact.headers] == [("x-env", "prod", None),
                                                                              ("x-v", None, "v[0-9]+")]
    # Gateway API regexes match the whole path.
    assert routes["agentgateway-system/r/rule1"].matches[0].path.regex == "^(?:/v[0-9]+/.*)$"
    assert routes["agentgateway-system/r/rule2"].matches[0].path.path_prefix == "/api"


def test_route_order_follows_gateway_api_precedence(tmp_path):
    loaded = load_docs(tmp_path, GATEWAY, route_doc("""
        parentRefs: [{name: agentgateway-proxy}]
        rules:
        - name: catch-all
          backendRefs: [{name: a, port: 80}]
        - name: short-prefix
          matches: [{path: {type: PathPrefix, value: /api}}]
          backendRefs: [{name: a, port: 80}]
        - name: long-prefix
          matches: [{path: {type: PathPrefix, value: /api/v1}}]
          backendRefs: [{name: a, port: 80}]
        - name: with-method
          matches: [{path: {type: PathPrefix, value: /api}, method: POST}]
          backendRefs: [{name: a, port: 80}]
        - name: exact
          matches: [{path: {type: Exact, value: /api}}]
          backendRefs: [{name: a, port: 80}]
        """), route_doc("""
        parentRefs: [{name: agentgateway-proxy}]
        hostnames: ["*.example.com", "www.example.com"]
        rules:
        - backendRefs: [{name: h, port: 80}]
        """, name="hosts"))
    names = [(r.name, tuple(r.hostnames)) for r in loaded.config.binds[0].listeners[0].routes]
    assert names == [
        ("agentgateway-system/hosts", ("www.example.com",)),
        ("agentgateway-system/hosts", ("*.example.com",)),
        ("agentgateway-system/r/exact", ()),
        ("agentgateway-system/r/long-prefix", ()),
        ("agentgateway-system/r/with-method", ()),
        ("agentgateway-system/r/short-prefix", ()),
        ("agentgateway-system/r/catch-all", ()),
    ]


def test_several_backend_refs_become_weighted_backends(tmp_path):
    loaded = load_docs(tmp_path, GATEWAY, route_doc("""
        parentRefs: [{name: agentgateway-proxy}]
        rules:
        - backendRefs:
          - {name: a, port: 80, weight: 3}
          - {name: b, namespace: other, port: 8080}
          - {name: idle, port: 80, weight: 0}
        """), resolve={"a.agentgateway-system:80": "127.0.0.1:9001"})
    [route] = routes_of(loaded).values()
    assert [(b.host, b.weight) for b in route.backends] == [("127.0.0.1:9001", 3),
                                                           ("b.other.svc.cluster.local:8080", 1)]


def test_rule_timeouts_become_the_timeout_policy(tmp_path):
    loaded = load_docs(tmp_path, GATEWAY, route_doc("""
        parentRefs: [{name: agentgateway-proxy}]
        rules:
        - timeouts: {request: 10s, backendRequest: 2s}
          backendRefs: [{name: a, port: 80}]
        """), GUIDE_POLICY)
    [route] = routes_of(loaded).values()
    assert (route.policies.timeout.request_timeout, route.policies.timeout.backend_request_timeout) == ("10s", "2s")
    assert route.policies.jwt_auth is not None


def test_document_without_namespace_is_in_default(tmp_path):
    gw = GATEWAY.replace(", namespace: agentgateway-system", "")
    route = route_doc("parentRefs: [{name: agentgateway-proxy}]\nrules: [{backendRefs: [{name: a, port: 80}]}]",
                      namespace="default")
    loaded = load_docs(tmp_path, gw, route)
    assert loaded.statuses == ["Gateway/default/agentgateway-proxy: Accepted", "HTTPRoute/default/r: Accepted"]
    assert routes_of(loaded)["default/r"].backends[0].host == "a.default.svc.cluster.local:80"


def test_listener_hostname_narrows_the_route(tmp_path):
    gw = GATEWAY.replace("name: http,", "name: http, hostname: '*.example.com',")
    loaded = load_docs(tmp_path, gw, route_doc("""
        parentRefs: [{name: agentgateway-proxy}]
        rules: [{backendRefs: [{name: a, port: 80}]}]
        """), route_doc("""
        parentRefs: [{name: agentgateway-proxy}]
        hostnames: [api.example.com, api.example.org]
        rules: [{backendRefs: [{name: a, port: 80}]}]
        """, name="api"))
    routes = routes_of(loaded)
    assert routes["agentgateway-system/r"].hostnames == ["*.example.com"]
    assert routes["agentgateway-system/api"].hostnames == ["api.example.com"]


def test_routes_from_other_namespaces_need_allowed_routes_all(tmp_path):
    gw = GATEWAY.replace(", allowedRoutes: {namespaces: {from: All}}", "")
    loaded = load_docs(tmp_path, gw, HTTPBIN_ROUTE)
    assert loaded.statuses[1] == (
        "HTTPRoute/httpbin/httpbin: NotAllowedByListeners: spec.parentRefs[0]: the listeners of Gateway "
        "agentgateway-system/agentgateway-proxy allow routes from namespace agentgateway-system only")
    assert routes_of(loaded) == {}


def test_parent_ref_to_a_missing_gateway(tmp_path):
    loaded = load_docs(tmp_path, HTTPBIN_ROUTE)
    assert loaded.statuses == ["HTTPRoute/httpbin/httpbin: NoMatchingParent: spec.parentRefs[0]: "
                               "Gateway agentgateway-system/agentgateway-proxy not found"]


def test_parent_ref_section_name_and_port(tmp_path):
    route = HTTPBIN_ROUTE.replace("namespace: agentgateway-system}]", "namespace: agentgateway-system, "
                                  "sectionName: https}]")
    loaded = load_docs(tmp_path, GATEWAY, route)
    assert loaded.statuses[1] == ("HTTPRoute/httpbin/httpbin: NoMatchingParent: spec.parentRefs[0]: Gateway "
                                  "agentgateway-system/agentgateway-proxy has no listener with sectionName 'https'")
    route = HTTPBIN_ROUTE.replace("namespace: agentgateway-system}]", "namespace: agentgateway-system, "
                                  "sectionName: http, port: 8080}]")
    assert load_docs(tmp_path, GATEWAY, route).statuses[1] == "HTTPRoute/httpbin/httpbin: Accepted"


# --- refusals ---------------------------------------------------------------------------------------------------

def test_other_kinds_are_ignored_with_a_warning(tmp_path):
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n"
    loaded = load_docs(tmp_path, GATEWAY, cm, HTTPBIN_ROUTE)
    assert len(loaded.statuses) == 2
    assert loaded.warnings == [f"{tmp_path / 'objects.yaml'}#2: ignoring ConfigMap (agw reads Gateway, HTTPRoute, "
                               f"AgentgatewayPolicy)"]


def test_an_unsupported_traffic_policy_is_refused_and_its_targets_left_out(tmp_path):
    pol = GUIDE_POLICY.replace("  traffic:\n", "  traffic:\n    rateLimit:\n      local: []\n")
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, pol)
    assert loaded.statuses[-1] == ("AgentgatewayPolicy/agentgateway-system/jwt-auth-policy: Invalid: "
                                   "spec.traffic.rateLimit: not supported")
    # Even for a caller that ignored the status, the route is not served without the policy.
    assert routes_of(loaded) == {}


def test_unknown_spec_field_is_named_with_its_path(tmp_path):
    pol = GUIDE_POLICY.replace("cacheDuration:", "cacheDuraton:")
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, pol)
    assert loaded.statuses[-1] == ("AgentgatewayPolicy/agentgateway-system/jwt-auth-policy: Invalid: "
                                   "spec.traffic.jwtAuthentication.providers[0].jwks.remote.cacheDuraton: "
                                   "unknown field")


def test_unknown_route_field(tmp_path):
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE.replace("hostnames:", "hostname:"))
    assert loaded.statuses[1] == "HTTPRoute/httpbin/httpbin: Invalid: spec.hostname: unknown field"


def test_metadata_labels_and_annotations_are_allowed(tmp_path):
    gw = GATEWAY.replace("metadata: {name: agentgateway-proxy,",
                         "metadata: {labels: {app: x}, annotations: {a: b}, uid: '1', name: agentgateway-proxy,")
    assert load_docs(tmp_path, gw).statuses == ["Gateway/agentgateway-system/agentgateway-proxy: Accepted"]


def test_several_problems_are_joined(tmp_path):
    pol = policy("bad", "Gateway", "agentgateway-proxy", """
        mode: Foo
        providers:
        - jwks: {remote: {jwksPath: /c, cacheDuration: soon, backendRef: {name: k, port: 80}}}
        - issuer: ""
          jwks: {inline: 'not json'}
        """)
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, pol)
    assert loaded.statuses[-1] == (
        'AgentgatewayPolicy/agentgateway-system/bad: Invalid: spec.traffic.jwtAuthentication.mode: invalid mode '
        '"Foo" (Strict, Optional or Permissive); spec.traffic.jwtAuthentication.providers[0].issuer: required; '
        "spec.traffic.jwtAuthentication.providers[0].jwks.remote.cacheDuration: invalid duration 'soon' "
        "(use e.g. 30s, 5m, 1h); spec.traffic.jwtAuthentication.providers[1].issuer: must not be empty; "
        "spec.traffic.jwtAuthentication.providers[1].jwks.inline: not JSON: Expecting value: line 1 column 1 "
        "(char 0)")


def test_inline_jwks_without_keys_list(tmp_path):
    pol = policy("p", "Gateway", "agentgateway-proxy", """
        providers:
        - issuer: https://i.example
          jwks: {inline: '{"kty": "RSA"}'}
        """)
    assert load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, pol).statuses[-1] == (
        "AgentgatewayPolicy/agentgateway-system/p: Invalid: spec.traffic.jwtAuthentication.providers[0].jwks.inline: "
        'not a JWKS document (a JSON object with a "keys" list)')


def test_both_or_neither_jwks_source(tmp_path):
    pol = policy("p", "Gateway", "agentgateway-proxy", """
        providers:
        - issuer: https://i.example
          jwks: {}
        """)
    assert load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, pol).statuses[-1] == (
        "AgentgatewayPolicy/agentgateway-system/p: Invalid: spec.traffic.jwtAuthentication.providers[0].jwks: "
        "exactly one of inline, remote is required")


def test_target_not_found(tmp_path):
    pol = GUIDE_POLICY.replace("kind: Gateway, name: agentgateway-proxy", "kind: HTTPRoute, name: nosuch")
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, pol)
    assert loaded.statuses[-1] == ("AgentgatewayPolicy/agentgateway-system/jwt-auth-policy: TargetNotFound: "
                                   "spec.targetRefs[0]: HTTPRoute agentgateway-system/nosuch not found")


def test_target_kind_must_be_gateway_or_httproute(tmp_path):
    pol = GUIDE_POLICY.replace("kind: Gateway, name", "kind: Service, name")
    assert load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, pol).statuses[-1] == (
        "AgentgatewayPolicy/agentgateway-system/jwt-auth-policy: Invalid: spec.targetRefs[0].kind: unsupported "
        "target gateway.networking.k8s.io/Service (Gateway or HTTPRoute of gateway.networking.k8s.io)")


def test_unset_variable_makes_the_object_invalid(tmp_path):
    loaded = load_docs(tmp_path, GATEWAY, HTTPBIN_ROUTE, GUIDE_POLICY, env={"KEYCLOAK_JWKS_PATH": "/certs"})
    assert loaded.statuses[-1] == ("AgentgatewayPolicy/agentgateway-system/jwt-auth-policy: Invalid: "
                                   "spec.traffic.jwtAuthentication.providers[0].issuer: environment variable "
                                   "KEYCLOAK_ISSUER is not set")
    assert routes_of(loaded) == {}


HTTPS_GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: edge}
spec:
  gatewayClassName: agentgateway
  listeners:
  - {protocol: HTTPS, port: 8443, name: a, hostname: a.example.com,
     tls: {mode: Terminate, certificateRefs: [{kind: Secret, name: a-cert}]}}
  - {protocol: HTTPS, port: 8443, name: b, hostname: b.example.com,
     tls: {certificateRefs: [{group: "", kind: Secret, name: b-cert, namespace: edge}]}}
"""


def test_https_listeners_become_one_tls_bind_with_their_secrets(tmp_path, monkeypatch):
    monkeypatch.delenv("AGW_SECRETS_DIR", raising=False)
    loaded = load_docs(tmp_path, HTTPS_GATEWAY)
    assert loaded.statuses == ["Gateway/edge/gw: Accepted"]
    [bind] = loaded.config.binds
    assert bind.port == 8443 and [li.name for li in bind.listeners] == ["edge/gw/a", "edge/gw/b"]
    assert [(c.cert, c.key) for c in bind.tls.certificates] == [
        ("secrets/edge/a-cert/tls.crt", "secrets/edge/a-cert/tls.key"),
        ("secrets/edge/b-cert/tls.crt", "secrets/edge/b-cert/tls.key")]
    monkeypatch.setenv("AGW_SECRETS_DIR", "/var/run/secrets/agw")
    [bind] = load_docs(tmp_path, HTTPS_GATEWAY).config.binds
    assert bind.tls.certificates[0].cert == "/var/run/secrets/agw/edge/a-cert/tls.crt"


@pytest.mark.parametrize("listener,problem", [
    ("{protocol: HTTPS, port: 8443, name: x}", "spec.listeners[0].tls: required on an HTTPS listener"),
    ("{protocol: HTTPS, port: 8443, name: x, tls: {mode: Passthrough, certificateRefs: [{name: s}]}}",
     "spec.listeners[0].tls.mode: unsupported mode 'Passthrough' (Terminate)"),
    ("{protocol: HTTPS, port: 8443, name: x, tls: {certificateRefs: [{name: s, namespace: other}]}}",
     "spec.listeners[0].tls.certificateRefs[0].namespace: a Secret of another namespace needs a ReferenceGrant"),
    ("{protocol: HTTPS, port: 8443, name: x, tls: {certificateRefs: [{kind: ConfigMap, name: s}]}}",
     "spec.listeners[0].tls.certificateRefs[0]: only Secrets"),
    ("{protocol: HTTPS, port: 8443, name: x, tls: {certificateRefs: [{name: s}], options: {a: b}}}",
     "spec.listeners[0].tls.options: not supported"),
    ("{protocol: TLS, port: 8443, name: x}", "spec.listeners[0].protocol: unsupported protocol 'TLS'"),
])
def test_https_listeners_agw_cannot_honour_are_refused(tmp_path, listener, problem):
    gw = ("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: edge}\n"
          f"spec:\n  listeners:\n  - {listener}\n")
    [line] = load_docs(tmp_path, gw).statuses
    assert line.startswith("Gateway/edge/gw: Invalid: ") and problem in line, line


def test_http_and_https_on_one_port_conflict(tmp_path):
    gw = HTTPS_GATEWAY + "  - {protocol: HTTP, port: 8443, name: plain}\n"
    loaded = load_docs(tmp_path, gw)
    assert loaded.statuses == ["Gateway/edge/gw: Conflicted: listener plain: port 8443 has both HTTP and HTTPS "
                               "listeners (one protocol per port)"]
    [bind] = loaded.config.binds
    assert bind.tls is not None and [li.name for li in bind.listeners] == ["edge/gw/a", "edge/gw/b"]


def test_route_filters_are_refused(tmp_path):
    loaded = load_docs(tmp_path, GATEWAY, route_doc("""
        parentRefs: [{name: agentgateway-proxy}]
        rules:
        - filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]
          backendRefs: [{name: a, port: 80}]
        """))
    assert loaded.statuses[1] == "HTTPRoute/agentgateway-system/r: Invalid: spec.rules[0].filters: not supported"


def test_backend_ref_needs_a_port(tmp_path):
    loaded = load_docs(tmp_path, GATEWAY, route_doc("""
        parentRefs: [{name: agentgateway-proxy}]
        rules: [{backendRefs: [{name: a}]}]
        """))
    assert loaded.statuses[1] == "HTTPRoute/agentgateway-system/r: Invalid: spec.rules[0].backendRefs[0].port: required"


def test_duplicate_objects(tmp_path):
    loaded = load_docs(tmp_path, GATEWAY, GATEWAY)
    assert loaded.statuses[1] == (f"Gateway/agentgateway-system/agentgateway-proxy: Invalid: metadata.name: Gateway "
                                  f"agentgateway-system/agentgateway-proxy is already defined in "
                                  f"{tmp_path / 'objects.yaml'}#1")


def test_mixed_with_native_config_on_the_same_port(tmp_path):
    native = """
    binds:
    - port: 8080
      listeners:
      - name: main
        routes:
        - name: health
          matches: [{path: {exact: /healthz}}]
          backends: [{host: 127.0.0.1:9000}]
    """
    loaded = load_docs(tmp_path, native, GATEWAY, HTTPBIN_ROUTE)
    [bind] = loaded.config.binds
    assert [li.name for li in bind.listeners] == ["main", "agentgateway-system/agentgateway-proxy/http"]


def test_native_config_problems_after_translation_are_config_errors(tmp_path):
    native = """
    binds:
    - port: 8080
      tls: {cert: c.pem, key: k.pem}
      listeners: []
    """
    with pytest.raises(ConfigError) as err:
        load_docs(tmp_path, native, GATEWAY)
    assert err.value.lines() == ["config error: binds[1].port: port 8080 is already bound by binds[0]"]


def test_gateway_of_another_api_is_ignored_with_a_warning(tmp_path):
    istio = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {servers: []}\n"
    loaded = load_docs(tmp_path, istio)
    assert loaded.statuses == []
    assert loaded.warnings == [f"{tmp_path / 'objects.yaml'}: ignoring Gateway of networking.istio.io/v1 "
                               f"(agw reads gateway.networking.k8s.io)"]
