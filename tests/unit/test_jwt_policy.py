"""JwtPolicy: modes, token locations, credential removal, claimsToHeaders, providers, config errors, cache."""
from __future__ import annotations

import json
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from vectors import mint  # noqa: E402
from vectors.mint import claims, token  # noqa: E402

from agw.config import ConfigError  # noqa: E402
from agw.config.model import (ClaimHeader, HeaderLocation, Jwks, JwtAuth, Location, NamedLocation,  # noqa: E402
                              Provider as ProviderCfg, TokenCache, ValidationOptions)
from agw.config.validate import CLAIMS_ENFORCEABLE  # noqa: E402
from agw.jwt import JwtPolicy  # noqa: E402


def policy(**kw) -> JwtPolicy:
    kw.setdefault("issuer", mint.ISSUER)
    kw.setdefault("jwks", Jwks(inline=mint.default_jwks()))
    return JwtPolicy(JwtAuth(**kw))


def bearer(tok: bytes, scheme: bytes = b"Bearer ") -> dict:
    return {b"authorization": scheme + tok}


GOOD = token("RS256", kid="rsa")


@pytest.mark.parametrize("mode", ["strict", "Strict", "STRICT"])
def test_strict_requires_a_token(mode):
    p = policy(mode=mode)
    assert p.mode == "strict"
    r = p.authenticate({}, b"/")
    assert not r.allowed and r.reason == "missing"
    assert r.body == b"authentication failure: no bearer token found"
    assert r.www_authenticate == b'Bearer realm="agw"'
    ok = p.authenticate(bearer(GOOD), b"/")
    assert ok.allowed and ok.remove_credential and ok.subject == "alice" and ok.issuer == mint.ISSUER


@pytest.mark.parametrize("value", [b"Basic dXNlcjpwYXNz", b"Bearer", b"Bearer   ", b"Token abc", b""])
def test_other_schemes_and_empty_values_count_as_missing(value):
    assert policy().authenticate({b"authorization": value}, b"/").reason == "missing"


@pytest.mark.parametrize("scheme", [b"bearer ", b"BEARER ", b"BeArEr ", b"Bearer  "])
def test_bearer_scheme_is_case_insensitive(scheme):
    assert policy().authenticate(bearer(GOOD, scheme), b"/").allowed


def test_two_authorization_headers_joined_by_the_proxy_are_refused():
    r = policy().authenticate({b"authorization": b"Bearer " + GOOD + b", Bearer " + GOOD}, b"/")
    assert r.reason == "malformed"


def test_optional_mode():
    p = policy(mode="optional")
    anon = p.authenticate({}, b"/")
    assert anon.allowed and anon.reason is None and anon.claims is None and not anon.remove_credential
    assert p.authenticate(bearer(GOOD), b"/").claims["sub"] == "alice"
    bad = p.authenticate(bearer(GOOD[:-3] + b"AAA"), b"/")
    assert not bad.allowed and bad.reason == "invalid_signature"


def test_permissive_mode_never_rejects_and_leaves_bad_tokens_in_place():
    p = policy(mode="Permissive", claims_to_headers=[ClaimHeader(claim="sub", header="X-User")])
    assert p.authenticate({}, b"/").allowed
    bad = p.authenticate(bearer(b"garbage"), b"/")
    assert bad.allowed and bad.reason == "malformed" and not bad.remove_credential and bad.add_headers == []
    good = p.authenticate(bearer(GOOD), b"/")
    assert good.allowed and good.add_headers == [(b"x-user", b"alice")]


def test_forward_token_keeps_the_credential():
    assert not policy(forward_token=True).authenticate(bearer(GOOD), b"/").remove_credential


def test_custom_header_location_without_prefix():
    p = policy(location=Location(header=HeaderLocation(name="X-Token", prefix="")))
    assert p.credential_header == b"x-token"
    assert p.authenticate({b"x-token": GOOD}, b"/").allowed
    assert p.authenticate(bearer(GOOD), b"/").reason == "missing"


def test_query_parameter_location_removes_the_parameter():
    p = policy(location=Location(query_parameter=NamedLocation(name="access_token")))
    assert p.credential_header is None
    r = p.authenticate({}, b"/x?a=1&access_token=" + GOOD + b"&b=2")
    assert r.allowed and r.new_target == b"/x?a=1&b=2"
    assert p.authenticate({}, b"/x?access_token=" + GOOD).new_target == b"/x"
    assert p.authenticate({}, b"/x?a=1").reason == "missing"
    assert p.authenticate({}, b"/x").reason == "missing"
    # cache hit: the rewrite is per request
    assert p.authenticate({}, b"/y?access_token=" + GOOD + b"&z").new_target == b"/y?z"


QUERY_SPELLINGS = ["access_token", "access%5Ftoken", "%61ccess_token", "ACCESS_TOKEN", "Access_Token",
                   "access_token[]", "access_token%5B%5D", "access_token[0]", "%2561ccess_token", "access.token",
                   "access+token", "access%20token", "+access_token"]


@pytest.mark.parametrize("spelling", QUERY_SPELLINGS)
def test_query_token_is_found_and_removed_in_any_spelling(spelling):
    """F6: every name a backend may decode to access_token counts as the token parameter, and is removed."""
    p = policy(location=Location(query_parameter=NamedLocation(name="access_token")))
    r = p.authenticate({}, f"/x?a=1&{spelling}=".encode() + GOOD + b";b=2")
    assert r.allowed and r.new_target == b"/x?a=1;b=2", r.new_target
    forged = p.authenticate({}, f"/x?{spelling}=".encode() + GOOD[:-4] + b"AAAA")
    assert not forged.allowed and forged.reason == "invalid_signature"


@pytest.mark.parametrize("target", [
    b"/x?access_token=%s&access%5Ftoken=forged", b"/x?access_token=%s;ACCESS_TOKEN=forged",
    b"/x?access_token[]=forged&access_token=%s", b"/x?access_token=%s&access_token=",
])
def test_two_values_for_the_query_token_are_refused_as_malformed(target):
    p = policy(location=Location(query_parameter=NamedLocation(name="access_token")), mode="optional")
    r = p.authenticate({}, target.replace(b"%s", GOOD))
    assert not r.allowed and r.reason == "malformed" and r.body == b"authentication failure: malformed token"


def test_the_same_query_token_twice_is_one_token_and_both_copies_go():
    p = policy(location=Location(query_parameter=NamedLocation(name="access_token")))
    r = p.authenticate({}, b"/x?access_token=" + GOOD + b"&a=1&Access_Token=" + GOOD)
    assert r.allowed and r.new_target == b"/x?a=1"


@pytest.mark.parametrize("target", [b"/x?a=1#access_token=%s", b"/x?access_token=%s#frag", b"/x#?access_token=%s",
                                    b"/x?a=1#&ACCESS%5FTOKEN=%s", b"/x#access_token=%s"])
def test_a_target_with_a_fragment_never_carries_a_query_token(target):
    """Clients never send a fragment and servers disagree on where one starts: a token parameter in a target
    with "#" is refused (malformed), even in optional mode; a fragment without one is left alone."""
    for mode in ("strict", "optional"):
        p = policy(location=Location(query_parameter=NamedLocation(name="access_token")), mode=mode)
        r = p.authenticate({}, target.replace(b"%s", GOOD))
        assert not r.allowed and r.reason == "malformed", (mode, target)
    p = policy(location=Location(query_parameter=NamedLocation(name="access_token")), mode="optional")
    assert p.authenticate({}, b"/x?a=1#top").allowed


def test_cookie_location_removes_the_cookie():
    p = policy(location=Location(cookie=NamedLocation(name="jwt")))
    r = p.authenticate({b"cookie": b"a=1; jwt=" + GOOD + b"; b=2"}, b"/")
    assert r.allowed and r.new_cookie == b"a=1; b=2"
    assert p.authenticate({b"cookie": b'jwt="' + GOOD + b'"'}, b"/").new_cookie == b""
    assert p.authenticate({b"cookie": b"a=1"}, b"/").reason == "missing"


def test_claims_to_headers_with_nested_and_literal_dotted_claims():
    p = policy(claims_to_headers=[
        ClaimHeader(claim="sub", header="X-User"), ClaimHeader(claim="org.team", header="x-team"),
        ClaimHeader(claim="https://example.com/role", header="x-role"), ClaimHeader(claim="admin", header="x-admin"),
        ClaimHeader(claim="n", header="x-n"), ClaimHeader(claim="groups", header="x-groups"),
        ClaimHeader(claim="absent", header="x-absent"), ClaimHeader(claim="evil", header="x-evil")])
    assert p.strip_headers == frozenset({b"x-user", b"x-team", b"x-role", b"x-admin", b"x-n", b"x-groups",
                                         b"x-absent", b"x-evil", b"x_user", b"x_team", b"x_role", b"x_admin",
                                         b"x_n", b"x_groups", b"x_absent", b"x_evil"})
    tok = token("RS256", kid="rsa", payload=claims(org={"team": "blue"}, admin=True, n=3, groups=["a", "b"],
                                                   evil="x\r\nSet-Cookie: a=b", **{"https://example.com/role": "ops"}))
    r = p.authenticate(bearer(tok), b"/")
    assert dict(r.add_headers) == {b"x-user": b"alice", b"x-team": b"blue", b"x-role": b"ops", b"x-admin": b"true",
                                   b"x-n": b"3", b"x-groups": b'["a","b"]'}


def test_required_claims_and_audiences_per_provider():
    p = JwtPolicy(JwtAuth(providers=[ProviderCfg(
        issuer=mint.ISSUER, audiences=["x", "api"], jwks=Jwks(inline=mint.default_jwks()),
        jwt_validation_options=ValidationOptions(required_claims=["exp", "sub", "nbf"]))]))
    assert p.authenticate(bearer(token("RS256", kid="rsa")), b"/").reason == "missing_claim"
    assert p.authenticate(bearer(token("RS256", kid="rsa", payload=claims(nbf=int(time.time())))), b"/").allowed
    no_exp = JwtPolicy(JwtAuth(issuer=mint.ISSUER, jwks=Jwks(inline=mint.default_jwks()),
                               jwt_validation_options=ValidationOptions(required_claims=[])))
    assert no_exp.authenticate(bearer(token("RS256", kid="rsa", payload=claims(exp=None))), b"/").allowed


# Every claim the config accepts in requiredClaims (the core's own table) must be enforced, on both claim readers:
# the in-place scanner (no claimsToHeaders) and orjson's (claimsToHeaders set).
_CLAIM_VALUES = {"exp": int(time.time()) + 600, "nbf": int(time.time()) - 10, "aud": mint.AUDIENCE,
                 "iss": mint.ISSUER, "sub": "alice", "iat": int(time.time()) - 10}


@pytest.mark.parametrize("reader", ["scanner", "orjson"])
@pytest.mark.parametrize("claim", list(CLAIMS_ENFORCEABLE))
def test_every_claim_config_accepts_as_required_is_enforced(claim, reader):
    assert set(CLAIMS_ENFORCEABLE) == set(_CLAIM_VALUES), "a new requirable claim needs a value here"
    extra = {"claims_to_headers": [ClaimHeader(claim="sub", header="x-user")]} if reader == "orjson" else {}
    p = policy(jwt_validation_options=ValidationOptions(required_claims=[claim]), **extra)
    with_it = token("RS256", kid="rsa", payload={"iss": mint.ISSUER, claim: _CLAIM_VALUES[claim]})
    assert p.authenticate(bearer(with_it), b"/").allowed
    if claim == "iss":
        return   # a token without iss has no provider to ask: unknown issuer before any claim rule
    without = token("RS256", kid="rsa", payload={"iss": mint.ISSUER})
    r = p.authenticate(bearer(without), b"/")
    assert not r.allowed and r.reason == "missing_claim" and r.body == b"authentication failure: missing required claim"


def test_required_iat_refuses_a_token_without_it():
    p = policy(jwt_validation_options=ValidationOptions(required_claims=["exp", "iat"]))
    assert p.authenticate(bearer(token("RS256", kid="rsa", payload=claims(iat=None))), b"/").reason == "missing_claim"
    assert p.authenticate(bearer(token("RS256", kid="rsa")), b"/").allowed
    # Not required (the default [exp]): a token without iat passes as before.
    assert policy().authenticate(bearer(token("RS256", kid="rsa", payload=claims(iat=None))), b"/").allowed


@pytest.mark.parametrize("iat, reason", [("1700000000", "malformed"), (True, "malformed"), ([1], "malformed"),
                                         ({"a": 1}, "malformed"), (None, None), (1700000000.5, None)])
def test_iat_that_is_not_a_number_is_malformed_on_both_readers(iat, reason):
    """iat is a NumericDate (RFC 7519 4.1.6), checked like exp and nbf whether or not it is required; null is
    absent, as for exp and nbf."""
    raw = json.dumps(dict(claims(), iat=iat)).encode()
    for extra in ({}, {"claims_to_headers": [ClaimHeader(claim="sub", header="x-user")]}):
        r = policy(**extra).authenticate(bearer(token("RS256", kid="rsa", raw_payload=raw)), b"/")
        assert (r.allowed, r.reason) == (reason is None, reason), extra


def test_an_unknown_required_claim_is_a_config_error_not_no_requirement():
    with pytest.raises(ConfigError) as err:
        policy(jwt_validation_options=ValidationOptions(required_claims=["exp", "jti"]))
    assert err.value.problems == [("jwtValidationOptions.requiredClaims[1]", "unsupported claim 'jti'")]


def test_providers_sharing_an_issuer_find_the_key_by_kid_across_them():
    a = ProviderCfg(issuer=mint.ISSUER, jwks=Jwks(inline=mint.jwks(mint.jwk_of(mint.rsa_key(), "a"))))
    b = ProviderCfg(issuer=mint.ISSUER, jwks=Jwks(inline=mint.jwks(mint.jwk_of(mint.ec_key(), "b"))))
    p = JwtPolicy(JwtAuth(providers=[a, b]))
    assert p.authenticate(bearer(token("RS256", kid="a")), b"/").allowed
    assert p.authenticate(bearer(token("ES256", kid="b")), b"/").allowed
    assert p.authenticate(bearer(token("ES256", kid="a")), b"/").reason == "unsupported_algorithm"


def test_conformance_tokens_from_agentgateway():
    import json
    import yaml
    from tests.support.conformance import AGENTGATEWAY_JWTAUTH as base
    docs = list(yaml.safe_load_all(open(f"{base}/secured-route.yaml")))
    providers = docs[1]["spec"]["traffic"]["jwtAuthentication"]["providers"]
    p = JwtPolicy(JwtAuth(providers=[ProviderCfg(issuer=x["issuer"], jwks=Jwks(inline=x["jwks"]["inline"]))
                                     for x in providers]))
    tokens = json.load(open(f"{base}/tokens.json"))
    for name in ("jwt1", "jwt2", "jwt3"):
        r = p.authenticate(bearer(tokens[name].encode()), b"/")
        assert r.allowed and r.subject == "ignore@agentgateway.dev", (name, r)
    assert p.authenticate(bearer(tokens["jwt4"].encode()), b"/").reason == "unknown_key"  # the RBAC suite's key
    assert p.authenticate(bearer(b"nosuchkey"), b"/").reason == "malformed"


def test_bad_inline_and_file_jwks_are_config_errors(tmp_path):
    with pytest.raises(ConfigError) as err:
        policy(jwks=Jwks(inline='{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}'))
    assert err.value.problems[0][0] == "jwks.inline" and "no usable key" in err.value.problems[0][1]
    with pytest.raises(ConfigError) as err:
        JwtPolicy(JwtAuth(providers=[ProviderCfg(issuer="a", jwks=Jwks(inline=mint.default_jwks())),
                                     ProviderCfg(issuer="b", jwks=Jwks(file="missing.json"))]), str(tmp_path))
    assert err.value.problems[0][0] == "providers[1].jwks.file"
    (tmp_path / "jwks.json").write_text(mint.default_jwks())
    ok = JwtPolicy(JwtAuth(issuer=mint.ISSUER, jwks=Jwks(file="jwks.json")), str(tmp_path))
    assert ok.authenticate(bearer(GOOD), b"/").allowed
    assert ok.ready()


# -- the verified-token cache ---------------------------------------------------------------------------------

def admit(p, headers):
    """Authenticate twice: the cache admits a token on its second verification."""
    p.authenticate(headers, b"/")
    return p.authenticate(headers, b"/")


def test_one_shot_tokens_are_not_cached_a_reused_one_is():
    """Admission on the second sighting: a stream of tokens seen once (a new token per request, or a flood
    of them) leaves the cache alone; a token a client reuses is cached at its second use, hit from the third."""
    p = policy()
    for i in range(50):
        assert p.authenticate(bearer(token("HS256", kid="hmac", payload=claims(sub=f"u{i}"))), b"/").allowed
    assert p.stats()["cache"]["entries"] == 0
    reused = bearer(token("HS256", kid="hmac", payload=claims(sub="steady")))
    results = [p.authenticate(reused, b"/") for _ in range(4)]
    assert all(r.allowed and r.subject == "steady" for r in results)
    assert results[3] is results[2] is results[1] and results[0] is not results[1]
    stats = p.stats()["cache"]
    assert stats["entries"] == 1 and stats["hits"] == 2


def test_cache_hit_returns_the_same_result_with_claim_headers():
    p = policy(claims_to_headers=[ClaimHeader(claim="sub", header="x-user")])
    tok = token("ES256", kid="p256")
    p.authenticate(bearer(tok), b"/")                     # verified, remembered
    first = p.authenticate(bearer(tok), b"/")             # verified again: cached
    second = p.authenticate(bearer(tok), b"/")
    assert second is first and second.add_headers == [(b"x-user", b"alice")]
    stats = p.stats()["cache"]
    assert stats["hits"] == 1 and stats["misses"] == 2 and stats["entries"] == 1


def test_cache_entry_dies_at_exp():
    p = policy(clock_skew="0s")
    core = p.core
    now = time.time()
    tok = token("RS256", kid="rsa", payload=claims(exp=int(now) + 10))
    assert core.verify_token(tok, now).allowed and core.verify_token(tok, now + 1).allowed   # admitted
    assert core.verify_token(tok, now + 5).allowed
    assert core.cache_stats()["hits"] == 1
    assert core.verify_token(tok, now + 11).reason == "expired"
    assert core.cache_stats()["entries"] == 0


def test_cache_entry_dies_when_the_key_set_changes():
    p = policy()
    provider = p.core.providers[0]
    tok = token("RS256", kid="rsa")
    assert admit(p, bearer(tok)).allowed
    from agw.jwt.keys import parse_jwks
    provider.set_keys(parse_jwks(mint.default_jwks()))  # same keys: no change, the entry stays
    p.authenticate(bearer(tok), b"/")
    assert p.stats()["cache"]["hits"] == 1
    provider.set_keys(parse_jwks(mint.jwks(mint.jwk_of(mint.ec_key(), "p256"))))  # rsa key gone
    assert p.authenticate(bearer(tok), b"/").reason == "unknown_key"


def test_cache_is_bounded_by_entries_and_bytes():
    p = policy(cache=TokenCache(max_entries=5))
    toks = [token("HS256", kid="hmac", payload=claims(sub=f"u{i}")) for i in range(20)]
    for t in toks:
        assert admit(p, bearer(t)).allowed
    assert p.stats()["cache"]["entries"] == 5
    p2 = policy(cache=TokenCache(max_bytes=4000))
    for t in toks:
        admit(p2, bearer(t))
    st = p2.stats()["cache"]
    assert st["bytes"] <= 4000 and 0 < st["entries"] < 20


def test_cache_can_be_disabled():
    p = policy(cache=TokenCache(enabled=False))
    p.authenticate(bearer(GOOD), b"/")
    p.authenticate(bearer(GOOD), b"/")
    assert p.stats()["cache"]["entries"] == 0


def test_failures_are_not_cached():
    p = policy()
    for _ in range(3):
        p.authenticate(bearer(GOOD[:-2] + b"AA"), b"/")
    assert p.stats()["cache"]["entries"] == 0


def test_a_cached_token_with_its_payload_changed_is_not_a_hit():
    """The cache finds entries by the token's tail (its signature); a token with the same signature and
    length but another payload must still be compared in full and refused."""
    p = policy()
    tok = token("RS256", kid="rsa", payload=claims(sub="alice"))
    assert admit(p, bearer(tok)).allowed
    header, payload, sig = tok.split(b".")
    middle = len(payload) // 2
    swapped = b"B" if payload[middle:middle + 1] != b"B" else b"C"
    forged = b".".join([header, payload[:middle] + swapped + payload[middle + 1:], sig])
    assert len(forged) == len(tok) and forged != tok and forged.endswith(sig)
    assert not p.authenticate(bearer(forged), b"/").allowed
    assert p.authenticate(bearer(tok), b"/").subject == "alice"
    assert p.stats()["cache"]["hits"] == 1


def test_cache_hits_check_nbf_too():
    p = policy(clock_skew="0s")
    core = p.core
    now = time.time()
    tok = token("RS256", kid="rsa", payload=claims(nbf=int(now), exp=int(now) + 600))
    assert core.verify_token(tok, now + 1).allowed and core.verify_token(tok, now + 1.5).allowed   # admitted
    assert core.verify_token(tok, now + 2).allowed and core.cache_stats()["hits"] == 1
    assert core.verify_token(tok, now - 100).reason == "not_yet_valid"   # a clock set back
    assert core.cache_stats()["hits"] == 1


def test_cache_hits_through_authenticate_end_at_exp_on_the_wall_clock():
    """A hit found through authenticate() (the proxy's path, no explicit time) is checked against the clock."""
    p = policy(clock_skew="0s")
    exp = int(time.time()) + 1
    tok = token("RS256", kid="rsa", payload=claims(exp=exp))
    assert admit(p, bearer(tok)).allowed
    assert p.authenticate(bearer(tok), b"/").allowed
    assert p.stats()["cache"]["hits"] == 1
    while time.time() < exp:
        time.sleep(0.05)
    assert p.authenticate(bearer(tok), b"/").reason == "expired"


def test_authenticate_is_the_cores_method():
    p = policy()
    assert p.authenticate == p.core.authenticate   # no Python wrapper in front of the core
    assert p.authenticate(bearer(GOOD), b"/").allowed


def test_the_cache_holds_to_max_bytes_in_real_memory():
    """cache.maxBytes bounds what the entries really hold (as tracemalloc counts it), not a guess below it."""
    import gc
    import tracemalloc
    max_bytes = 200_000
    p = policy(cache=TokenCache(max_bytes=max_bytes),
               claims_to_headers=[ClaimHeader(claim="sub", header="x-user"),
                                  ClaimHeader(claim="realm_access.roles", header="x-roles")])
    roles = {"roles": ["default-roles", "offline_access", "uma_authorization", "manage-account"]}
    requests = [bearer(token("HS256", kid="hmac",
                             payload=claims(sub=f"user-{i:06d}", jti=f"{i:032d}", realm_access=roles,
                                            scope="openid email profile", email=f"user{i}@example.com")))
                for i in range(400)]
    assert admit(p, requests[0]).allowed
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for headers in requests[1:]:
            assert admit(p, headers).allowed
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    stats = p.stats()["cache"]
    assert stats["bytes"] <= max_bytes and stats["entries"] < 400    # it did evict
    assert held <= max_bytes, f"{stats['entries']} entries hold {held} bytes, more than maxBytes {max_bytes}"


def test_claims_of_a_cached_result_cannot_be_changed_through_it():
    p = policy()
    first = admit(p, bearer(GOOD))
    assert first.verified and first.claims["sub"] == "alice"
    first.claims["sub"] = "mallory"                       # a fresh dict each access
    again = p.authenticate(bearer(GOOD), b"/")
    assert again is first and again.claims["sub"] == "alice" and again.subject == "alice"
    assert not p.authenticate({}, b"/").verified


@pytest.mark.parametrize("tricky", ['a\\"b:{[', 'ends with a backslash \\\\', '\\\\\\":', '\\u0022}:'])
def test_duplicate_claims_are_found_past_strings_with_escapes(tricky):
    base = json.dumps(claims())[:-1]                       # '{"iss": ..., "iat": N' without the closing brace
    once = f'{base}, "note": "{tricky}"}}'.encode()
    assert json.loads(once)["note"]                        # the test's own JSON is valid
    assert policy().authenticate(bearer(token("RS256", kid="rsa", raw_payload=once)), b"/").allowed
    twice = f'{base}, "note": "{tricky}", "sub": "mallory"}}'.encode()
    r = policy().authenticate(bearer(token("RS256", kid="rsa", raw_payload=twice)), b"/")
    assert r.reason == "malformed"


@pytest.mark.parametrize("header", ["content-length", "host", "x-forwarded-for", "proxy-authorization", "cookie",
                                    "authorization", "x user"])
def test_a_policy_built_without_validation_still_refuses_reserved_claim_headers(header):
    with pytest.raises(ConfigError) as err:
        policy(claims_to_headers=[ClaimHeader(claim="sub", header=header)])
    assert err.value.problems[0][0] == "claimsToHeaders[0].header"


def test_client_copies_of_claim_headers_are_stripped_in_every_spelling():
    """F10: a WSGI backend reads x_user_id and x-user-id as one header (HTTP_X_USER_ID): the proxy must drop a
    client's copy in either spelling, and of an underscore name in its dash spelling."""
    p = policy(claims_to_headers=[ClaimHeader(claim="sub", header="X-User-Id"),
                                  ClaimHeader(claim="r", header="x_roles")])
    assert p.strip_headers == frozenset({b"x-user-id", b"x_user_id", b"x-user_id", b"x_user-id",
                                         b"x_roles", b"x-roles"})


def test_other_spellings_of_a_custom_credential_header_are_stripped():
    p = policy(location=Location(header=HeaderLocation(name="X-Api-Token", prefix="")))
    assert p.credential_header == b"x-api-token"
    assert p.strip_headers == frozenset({b"x_api_token", b"x-api_token", b"x_api-token"})
    assert policy().strip_headers == frozenset()     # authorization has a single spelling


def test_header_names_with_too_many_separators_are_config_errors():
    with pytest.raises(ConfigError) as err:
        policy(claims_to_headers=[ClaimHeader(claim="sub", header="x-a-b-c-d-e-f-g-h-i")])
    assert "more than 8" in err.value.problems[0][1]
    with pytest.raises(ConfigError) as err:
        policy(location=Location(header=HeaderLocation(name="x-a-b-c-d-e-f-g-h-i", prefix="")))
    assert err.value.problems == [("location.header.name", "header name 'x-a-b-c-d-e-f-g-h-i' has more than 8 "
                                                           "'-' or '_'")]
