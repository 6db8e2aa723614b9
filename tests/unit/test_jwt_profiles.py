"""Token profiles (issue 18): allowedTypes, maxLifetime, subjects, requiredScopes, checked at verification."""
from __future__ import annotations

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from vectors import mint  # noqa: E402
from vectors.mint import claims, token  # noqa: E402

import yaml  # noqa: E402

from agw.config.loader import decode_native  # noqa: E402
from agw.config.validate import check_config  # noqa: E402
from agw.config.model import Jwks, JwtAuth, Provider as ProviderCfg, SubjectMatch  # noqa: E402
from agw.jwt import JwtPolicy  # noqa: E402


def policy(**kw) -> JwtPolicy:
    kw.setdefault("issuer", mint.ISSUER)
    kw.setdefault("jwks", Jwks(inline=mint.default_jwks()))
    return JwtPolicy(JwtAuth(**kw))


def ask(p: JwtPolicy, tok: bytes):
    return p.authenticate({b"authorization": b"Bearer " + tok}, b"/")


def test_allowed_types_accepts_at_jwt_in_any_spelling_and_refuses_id_tokens():
    p = policy(allowed_types=["at+jwt"])
    for typ in ("at+jwt", "AT+JWT", "application/at+jwt"):
        assert ask(p, token("RS256", kid="rsa", header={"typ": typ})).allowed, typ
    for tok in (token("RS256", kid="rsa"), token("RS256", kid="rsa", header={"typ": 7}),
                token("RS256", kid="rsa", raw_header=b'{"alg":"RS256","kid":"rsa"}')):
        r = ask(p, tok)
        assert not r.allowed and r.reason == "type_not_allowed" and r.status == 401, tok
        assert r.body == b"authentication failure: token type not allowed"


def test_max_lifetime_bounds_exp_minus_iat_and_needs_both():
    p = policy(max_lifetime="1h")
    now = int(time.time())
    assert ask(p, token("RS256", kid="rsa", payload=claims(iat=now, exp=now + 3600))).allowed
    r = ask(p, token("RS256", kid="rsa", payload=claims(iat=now, exp=now + 3601)))
    assert r.reason == "lifetime_too_long" and r.status == 401
    assert ask(p, token("RS256", kid="rsa", payload=claims(iat=None))).reason == "missing_claim"
    # orjson's reader (a float iat leaves the in-place scanner) decides alike
    r = ask(p, token("RS256", kid="rsa", payload=claims(iat=now + 0.5, exp=now + 7200)))
    assert r.reason == "lifetime_too_long"


def test_subjects_exact_prefix_and_regex():
    p = policy(subjects=[SubjectMatch(exact="alice"), SubjectMatch(prefix="svc-"), SubjectMatch(regex="u[0-9]+")])
    for sub in ("alice", "svc-billing", "u42"):
        assert ask(p, token("RS256", kid="rsa", payload=claims(sub=sub))).allowed, sub
    for sub in ("bob", "alice2", "xsvc-", "u42x", None):
        r = ask(p, token("RS256", kid="rsa", payload=claims(sub=sub)))
        assert r.reason == "subject_not_allowed", sub


def test_required_scopes_from_scope_or_scp_else_403_insufficient_scope():
    p = policy(required_scopes=["read", "write"])
    assert ask(p, token("RS256", kid="rsa", payload=claims(scope="openid read write"))).allowed
    assert ask(p, token("RS256", kid="rsa", payload=claims(scp=["write", "read"]))).allowed
    assert ask(p, token("RS256", kid="rsa", payload=claims(scp="read write"))).allowed
    for extra in ({"scope": "read"}, {"scp": ["read", 3]}, {}):
        r = ask(p, token("RS256", kid="rsa", payload=claims(**extra)))
        assert not r.allowed and r.reason == "insufficient_scope" and r.status == 403, extra
        assert r.www_authenticate == b'Bearer realm="agw", error="insufficient_scope", scope="read write"'
        assert r.issuer == mint.ISSUER
    # A bad signature is a 401 before any scope question.
    good = token("RS256", kid="rsa", payload=claims(scope="read"))
    r = ask(p, good[:-6] + (b"AAAAAA" if not good.endswith(b"AAAAAA") else b"BBBBBB"))
    assert r.status == 401 and r.reason == "invalid_signature"


def test_permissive_mode_passes_profile_failures_with_their_reason():
    p = policy(mode="permissive", required_scopes=["admin"], allowed_types=["at+jwt"])
    r = ask(p, token("RS256", kid="rsa", header={"typ": "at+jwt"}, payload=claims(scope="read")))
    assert r.allowed and not r.verified and r.reason == "insufficient_scope"
    r = ask(p, token("RS256", kid="rsa"))
    assert r.allowed and not r.verified and r.reason == "type_not_allowed"


def test_a_passing_token_is_cached_and_a_cache_hit_checks_nothing_again():
    p = policy(allowed_types=["at+jwt"], max_lifetime="1h", subjects=[SubjectMatch(exact="alice")],
               required_scopes=["read"])
    tok = token("RS256", kid="rsa", header={"typ": "at+jwt"}, payload=claims(scope="read"))
    for _ in range(3):
        assert ask(p, tok).allowed
    assert p.core.hits == 1


def test_providers_of_one_issuer_with_different_profiles():
    keys = Jwks(inline=mint.default_jwks())
    p = JwtPolicy(JwtAuth(providers=[
        ProviderCfg(issuer=mint.ISSUER, jwks=keys, subjects=[SubjectMatch(prefix="svc-")], required_scopes=["svc"]),
        ProviderCfg(issuer=mint.ISSUER, jwks=keys, subjects=[SubjectMatch(exact="alice")]),
    ]))
    assert ask(p, token("RS256", kid="rsa")).allowed                          # the second provider
    assert ask(p, token("RS256", kid="rsa", payload=claims(sub="svc-a", scope="svc"))).allowed
    assert ask(p, token("RS256", kid="rsa", payload=claims(sub="svc-a"))).status == 403
    assert ask(p, token("RS256", kid="rsa", payload=claims(sub="bob"))).reason == "subject_not_allowed"


@pytest.mark.parametrize("snippet, path", [
    ("allowedTypes: []", "allowedTypes"),
    ("allowedTypes: ['at jwt']", "allowedTypes[0]"),
    ("maxLifetime: soon", "maxLifetime"),
    ("maxLifetime: 0s", "maxLifetime"),
    ("subjects: [{exact: a, prefix: b}]", "subjects[0]"),
    ("subjects: [{regex: '('}]", "subjects[0].regex"),
    ("subjects: [{prefix: ''}]", "subjects[0].prefix"),
    ("requiredScopes: ['read write']", "requiredScopes[0]"),
    ("requiredScopes: []", "requiredScopes"),
])
def test_bad_profile_settings_are_refused_with_their_path(snippet, path):
    text = f"""
binds:
- port: 8080
  listeners:
  - routes:
    - backends: [{{host: "127.0.0.1:9"}}]
      policies:
        jwtAuth:
          issuer: https://idp.test
          jwks: {{inline: '{{"keys": []}}'}}
          {snippet}
"""
    problems = check_config(decode_native(yaml.safe_load(text)))
    assert any(q == f"binds[0].listeners[0].routes[0].policies.jwtAuth.{path}" for q, _ in problems), problems


def test_profile_fields_with_providers_belong_on_each_provider():
    text = """
binds:
- port: 8080
  listeners:
  - routes:
    - backends: [{host: "127.0.0.1:9"}]
      policies:
        jwtAuth:
          requiredScopes: [read]
          providers: [{issuer: https://idp.test, jwks: {inline: '{"keys": []}'}}]
"""
    problems = check_config(decode_native(yaml.safe_load(text)))
    assert any(q.endswith("jwtAuth.requiredScopes") for q, _ in problems), problems
