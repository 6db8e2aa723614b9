"""RFC 9728 metadata (issue 18): built from the policy, served on its paths, checked at load."""
from __future__ import annotations

import json
import os
import sys
from types import SimpleNamespace

import pytest
import yaml

sys.path.insert(0, os.path.dirname(__file__))
from vectors import mint  # noqa: E402

from agw.config.loader import decode_native, lift_mcp_authentication  # noqa: E402
from agw.config.model import (HeaderLocation, Jwks, JwtAuth, Location, NamedLocation,  # noqa: E402
                              ResourceMetadata)
from agw.config.validate import check_config  # noqa: E402
from agw.jwt import JwtPolicy  # noqa: E402
from agw.jwt.resource_metadata import bearer_methods, metadata_paths  # noqa: E402


def request(target: bytes, method: bytes = b"GET"):
    return SimpleNamespace(method=method, target=target, hdict={}, peer=b"", verdicts=None)


def test_paths_and_url_follow_rfc9728_section_3_1():
    assert metadata_paths("https://api.example/mcp/v1/") == (
        "https://api.example/.well-known/oauth-protected-resource/mcp/v1",
        ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp/v1"])
    assert metadata_paths("https://api.example") == (
        "https://api.example/.well-known/oauth-protected-resource", ["/.well-known/oauth-protected-resource"])


def test_bearer_methods_are_what_agw_reads():
    assert bearer_methods(JwtAuth()) == ["header"]
    assert bearer_methods(JwtAuth(location=Location(query_parameter=NamedLocation(name="access_token")))) == ["query"]
    assert bearer_methods(JwtAuth(location=Location(cookie=NamedLocation(name="t")))) == []
    assert bearer_methods(JwtAuth(location=Location(header=HeaderLocation(name="x-token", prefix="")))) == []


def test_the_policy_answers_its_metadata_paths_and_authenticates_the_rest():
    p = JwtPolicy(JwtAuth(issuer=mint.ISSUER, jwks=Jwks(inline=mint.default_jwks()), required_scopes=["read"],
                          resource_metadata=ResourceMetadata(resource="https://api.example/mcp")))
    for target in (b"/.well-known/oauth-protected-resource/mcp", b"/.well-known/oauth-protected-resource?x=1"):
        r = p.apply(request(target))
        assert r.status == 200 and json.loads(r.body) == {
            "resource": "https://api.example/mcp", "authorization_servers": [mint.ISSUER],
            "bearer_methods_supported": ["header"], "scopes_supported": ["read"]}
    assert p.apply(request(b"/.well-known/oauth-protected-resource/mcp", b"POST")).status == 401
    denied = p.apply(request(b"/mcp"))
    assert denied.status == 401 and denied.www_authenticate == (
        b'Bearer realm="agw", resource_metadata="https://api.example/.well-known/oauth-protected-resource/mcp"')


POLICY = """
binds:
- port: 8080
  listeners:
  - routes:
    - backends: [{host: "127.0.0.1:9"}]
      policies:
%s
"""
JWT = "        jwtAuth: {issuer: https://idp.test, jwks: {inline: '{\"keys\": []}'}, resourceMetadata: %s}"


def problems_of(policies: str) -> list:
    return check_config(decode_native(yaml.safe_load(POLICY % policies)))


@pytest.mark.parametrize("metadata, path, reason", [
    ("{resource: 'api.example/mcp'}", "resource", "invalid URL"),
    ("{resource: 'https://api.example/mcp#x'}", "resource", "must not have a fragment"),
    ("{resource: 'https://a.example', resourceDocumentation: 'docs'}", "resourceDocumentation", "invalid URL"),
    ("{resource: 'https://a.example', scopesSupported: ['a b']}", "scopesSupported[0]", "invalid scope"),
    ("{resource: 'https://a.example', bearerMethodsSupported: [header, body, query]}", "bearerMethodsSupported",
     "cannot honour"),
])
def test_bad_metadata_is_refused_with_its_path(metadata, path, reason):
    problems = problems_of(JWT % metadata)
    full = f"binds[0].listeners[0].routes[0].policies.jwtAuth.resourceMetadata.{path}"
    assert any(q == full and reason in r for q, r in problems), problems


MCP = """        mcpAuthentication:
          issuer: https://idp.test
          jwks: {inline: '{"keys": []}'}
          resourceMetadata: {resource: 'https://api.example/mcp'}
"""


def test_mcp_authentication_is_a_jwt_auth_with_metadata():
    cfg = decode_native(yaml.safe_load(POLICY % MCP))
    assert check_config(cfg) == []
    policies = lift_mcp_authentication(cfg).binds[0].listeners[0].routes[0].policies
    assert policies.mcp_authentication is None
    assert policies.jwt_auth.issuer == "https://idp.test"
    assert policies.jwt_auth.resource_metadata.resource == "https://api.example/mcp"


def test_mcp_authentication_provider_and_a_second_jwt_policy_are_refused():
    problems = problems_of(MCP + "          provider: {keycloak: {}}\n" + JWT % "{resource: 'https://a.example'}")
    path = "binds[0].listeners[0].routes[0].policies.mcpAuthentication"
    assert any(q == f"{path}.provider" and "not supported" in r for q, r in problems), problems
    assert any(q == path and "not allowed together with jwtAuth" in r for q, r in problems), problems
    problems = problems_of(MCP.replace("issuer: https://idp.test", "issuer: ''"))
    assert any(q == f"{path}.issuer" for q, _ in problems), problems
