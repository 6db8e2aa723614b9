"""The `authorization` policy: decision order, errors as false, every variable, shadow rules, merging across
attachment points, the jwt-only verdict cache, and the verdicts the proxy answers with."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from vectors import mint  # noqa: E402
from vectors.mint import claims, token  # noqa: E402

from agw._fastjwt import AuthResult  # noqa: E402
from agw.authz import AuthorizationPolicy, CelError  # noqa: E402
from agw.config.model import (Authorization, AuthzRule, Jwks, JwtAuth, Listener, Policies, Route,  # noqa: E402
                              merge_authorization)
from agw.jwt import JwtPolicy  # noqa: E402


class Transport:
    def __init__(self, peername):
        self.peername = peername

    def get_extra_info(self, name):
        return self.peername if name == "peername" else None


class Proto:
    def __init__(self, peername=("10.1.2.3", 40000)):
        self.transport = Transport(peername)
        self.peer = peername[0].encode() if isinstance(peername, tuple) else b"unix"


class Request:
    """What agw/chain.py says a policy may read of a request (the proxy's Exchange)."""

    def __init__(self, method=b"GET", target=b"/", headers=None, claims_=None, verdicts=None,
                 peername=("10.1.2.3", 40000)):
        self.method = method
        self.target = target
        self.hdict = {b"host": b"api.example.com"} if headers is None else headers
        self.proto = Proto(peername)
        if verdicts is None and claims_ is not None:
            verdicts = [AuthResult(True, claims=claims_, issuer="https://idp.test", subject=claims_.get("sub"))]
        self.verdicts = verdicts


def authz(*rules) -> AuthorizationPolicy:
    return AuthorizationPolicy(Authorization(rules=list(rules)))


def decide(policy, **kw):
    return policy.apply(Request(**kw))


ALICE = {"sub": "alice", "realm_access": {"roles": ["admin", "user"]}, "email": "a@example.com", "n": 3}
BOB = {"sub": "bob", "realm_access": {"roles": ["user"]}}


# --- decision order ---------------------------------------------------------------------------------------------

def test_a_bare_string_is_an_allow_rule_and_no_match_denies():
    p = authz('jwt.sub == "alice"')
    assert decide(p, claims_=ALICE).allowed
    v = decide(p, claims_=BOB)
    assert not v.allowed and v.outcome == "deny" and v.label == "default"


def test_any_allow_rule_that_matches_allows_and_names_itself():
    p = authz('jwt.sub == "alice"', AuthzRule(allow='jwt.sub == "bob"', name="bob"))
    assert decide(p, claims_=ALICE).label == "rules[0]"
    v = decide(p, claims_=BOB)
    assert v.allowed and v.outcome == "allow" and v.label == "bob" and v.log_fields == (("authz_rule", "bob"),)
    assert not decide(p, claims_={"sub": "carol"}).allowed


def test_deny_wins_over_allow():
    p = authz('has(jwt.sub)', AuthzRule(deny='jwt.sub == "bob"'))
    assert decide(p, claims_=ALICE).allowed
    v = decide(p, claims_=BOB)
    assert not v.allowed and v.label == "rules[1]" and v.log_fields == (("authz_rule", "rules[1]"),)


def test_require_must_hold_even_when_an_allow_rule_matches():
    p = authz("true", AuthzRule(require='"admin" in jwt.realm_access.roles'))
    assert decide(p, claims_=ALICE).allowed
    v = decide(p, claims_=BOB)
    assert not v.allowed and v.label == "rules[1]"


def test_only_deny_and_require_rules_allow_what_they_do_not_refuse():
    p = authz(AuthzRule(deny='jwt.sub == "bob"'), AuthzRule(require="has(jwt.sub)"))
    v = decide(p, claims_=ALICE)
    assert v.allowed and v.outcome == "allow" and v.label == "default"
    assert not decide(p, claims_=BOB).allowed
    assert not decide(p).allowed        # no token: require has(jwt.sub) fails


def test_deny_is_checked_before_require():
    p = authz(AuthzRule(require='jwt.sub == "alice"'), AuthzRule(deny='jwt.sub == "bob"'))
    assert decide(p, claims_=BOB).label == "rules[1]"     # the deny decided, not the failing require


def test_the_refusal_is_403_text_plain_authorization_failed():
    v = decide(authz("false"))
    assert (v.allowed, v.status, v.body) == (False, 403, b"authorization failed")
    # The proxy answers every refusal as text/plain; the verdict adds no other header and edits nothing.
    assert v.answer_headers == () and v.drop_header is None and v.add_headers == ()
    assert v.new_target is None and v.new_cookie is None


# --- errors count as false --------------------------------------------------------------------------------------

def test_a_missing_claim_in_an_allow_rule_denies():
    p = authz('"admin" in jwt.groups')
    assert not decide(p, claims_=ALICE).allowed


def test_a_missing_claim_in_a_require_rule_denies():
    p = authz(AuthzRule(require='jwt.tenant == "t1"'))
    assert not decide(p, claims_=ALICE).allowed
    assert decide(p, claims_={**ALICE, "tenant": "t1"}).allowed


def test_a_missing_claim_in_a_deny_rule_lets_the_request_through():
    p = authz(AuthzRule(deny='jwt.tenant == "evil"'))
    assert decide(p, claims_=ALICE).allowed


def test_a_wrong_type_and_a_non_boolean_result_count_as_false():
    assert not decide(authz("jwt.sub > 3"), claims_=ALICE).allowed       # string > int: no such overload
    assert not decide(authz("jwt.sub"), claims_=ALICE).allowed           # a string, not true
    assert not decide(authz("jwt.n / 0 == 1"), claims_=ALICE).allowed    # division by zero
    assert decide(authz(AuthzRule(deny="jwt.n / 0 == 1")), claims_=ALICE).allowed


def test_claims_the_engine_cannot_convert_make_every_rule_false():
    huge = {"sub": "alice", "big": 1 << 70}     # beyond CEL's 64-bit integers
    assert not decide(authz('jwt.sub == "alice" || jwt.big > 0'), claims_=huge).allowed
    assert decide(authz(AuthzRule(deny='jwt.sub == "alice" || jwt.big > 0')), claims_=huge).allowed
    # Only the expressions that reach the value fail: the deny (size(jwt)) is false, `true` still allows.
    two = authz(AuthzRule(deny="size(jwt) > 0"), "true")
    assert decide(two, claims_=huge).allowed
    assert not decide(authz(AuthzRule(require="size(jwt) > 0"), "true"), claims_=huge).allowed
    # A claim no rule can reach is never handed to the engine.
    assert decide(authz('jwt.sub == "alice"'), claims_=huge).allowed


# --- variables --------------------------------------------------------------------------------------------------

def test_jwt_nested_objects_and_lists_and_macros():
    p = authz('jwt.realm_access.roles.exists(r, r == "admin") && jwt.realm_access.roles.all(r, size(r) > 2) '
              '&& has(jwt.email) && jwt.email.endsWith("@example.com") && jwt.sub.matches("^al") '
              '&& jwt.sub.startsWith("a") && size(jwt.realm_access.roles) == 2 && jwt.n == 3')
    assert decide(p, claims_=ALICE).allowed
    assert not decide(p, claims_=BOB).allowed


def test_jwt_is_empty_without_a_verified_token():
    p = authz("size(jwt) == 0")
    assert decide(p).allowed                                        # no JWT policy on the route
    unverified = AuthResult(True, outcome="no_token")               # optional/permissive without a token
    assert decide(p, verdicts=[unverified]).allowed
    assert not decide(p, claims_=ALICE).allowed


def test_request_method_path_host_query_and_headers():
    p = authz('request.method == "POST" && request.path == "/api/items" && request.host == "api.example.com" '
              '&& request.query == "page=2&x=%20" && request.headers["x-env"] == "prod" '
              '&& !("authorization" in request.headers)')
    headers = {b"host": b"api.example.com", b"x-env": b"prod"}
    assert decide(p, method=b"POST", target=b"/api/items?page=2&x=%20", headers=headers).allowed
    assert not decide(p, method=b"GET", target=b"/api/items?page=2&x=%20", headers=headers).allowed
    assert not decide(p, method=b"POST", target=b"/api/items?page=3", headers=headers).allowed
    assert not decide(p, method=b"POST", target=b"/api/items?page=2&x=%20",
                      headers={**headers, b"x-env": b"dev"}).allowed


def test_request_without_a_query_has_an_empty_one_and_header_bytes_are_latin1():
    p = authz('request.query == "" && request.headers["x-name"] == "caf\\u00c3\\u00a9"')
    assert decide(p, target=b"/", headers={b"x-name": "café".encode()}).allowed


def test_source_address_and_port():
    p = authz('source.address == "10.1.2.3" && source.port == 40000')
    assert decide(p).allowed
    assert not decide(p, peername=("10.1.2.4", 40000)).allowed
    q = authz('source.address.startsWith("2001:db8:")')
    assert decide(q, peername=("2001:db8::1", 5, 0, 0)).allowed
    assert decide(authz('source.address == "unix" && source.port == 0'), peername="").allowed


def test_the_strings_extension_is_there():
    assert decide(authz('jwt.sub.upperAscii() == "ALICE" && "a,b".split(",").size() == 2'), claims_=ALICE).allowed


# --- shadow -----------------------------------------------------------------------------------------------------

def test_a_shadow_rule_never_denies_but_says_it_would():
    p = authz("true", AuthzRule(shadow='"admin" in jwt.realm_access.roles', name="admins-only"))
    assert decide(p, claims_=ALICE).outcome == "allow"
    v = decide(p, claims_=BOB)
    assert v.allowed and v.outcome == "would_deny" and v.label == "admins-only"
    assert v.log_fields == (("authz_rule", "admins-only"),)
    assert decide(p).outcome == "would_deny"      # an error (no claims) would deny too


def test_a_request_denied_for_real_is_reported_as_denied_not_would_deny():
    p = authz(AuthzRule(deny='jwt.sub == "bob"'), AuthzRule(shadow="false"))
    assert decide(p, claims_=BOB).outcome == "deny"
    assert decide(p, claims_=ALICE).outcome == "would_deny"


# --- compile errors ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("source, where, what", [
    ('jwt.sub ==', "line 1, column 11", "Syntax error"),
    ("nobody.sub == 1", "line 1, column 7", "undeclared reference to 'nobody.sub'"),
    ('1 + "a"', "line 1, column 3", "no matching overload"),
    ('jwt.sub == "a" &&\n  (', "line 2, column 4", "Syntax error"),
])
def test_compile_errors_name_the_position(source, where, what):
    with pytest.raises(CelError) as err:
        authz(source)
    assert str(err.value).startswith(f"invalid CEL expression at {where}: ") and what in str(err.value)
    assert "\n" not in str(err.value) and "container" not in str(err.value)


# --- what a rule reads, and the verdict cache --------------------------------------------------------------------

def test_what_the_rules_read_is_known_at_compile_time():
    assert authz('jwt.sub == "a"', AuthzRule(deny="has(jwt.x)")).jwt_only
    p = authz('jwt.sub == "a"', AuthzRule(deny='request.method == "DELETE"'))
    assert not p.jwt_only and p.reads_request and not p.reads_source and p.reads_jwt
    assert not authz('request.method == "GET"').reads_jwt
    q = authz('[1, 2].exists(request, request == 2)')     # a macro variable named like one: still jwt-only
    assert q.jwt_only
    assert authz('source.port > 0').reads_source


@pytest.mark.parametrize("source, claims_, headers", [
    ('jwt.sub == "a" && "admin" in jwt.realm_access.roles && has(jwt.email)', {"sub", "realm_access", "email"},
     set()),
    ('"x-a" in request.headers && request.headers["x-b"] == "1" && request.headers.host != ""', set(),
     {"x-a", "x-b", "host"}),
    ('jwt.exists(k, k == "sub")', None, set()),                         # a macro over the map: every claim
    ("size(jwt) > 0", None, set()),
    ('jwt["sub"] == "a"', None, set()),
    ('jwt.sub == "a" // jwt.x', {"sub"}, set()),                        # the checker ignores the comment
    ('request.headers.exists(k, k.startsWith("x-"))', set(), None),    # every header
    ('request.headers["a\\u0062"] == "x"', set(), None),              # an escape: not read as a name
    ('request.headers["a"] == "b" // "c" in request.headers', set(), None),   # comments: no narrowing
    ('size(request) > 0', set(), None),
])
def test_the_engine_gets_only_the_claims_and_headers_a_rule_can_reach(source, claims_, headers):
    from agw.authz.cel import fields_read
    _, claims_got, headers_got = fields_read(source)
    assert claims_got == (frozenset(claims_) if claims_ is not None else None)
    assert headers_got == (frozenset(headers) if headers is not None else None)


def test_narrowed_variables_give_the_same_verdicts():
    headers = {b"host": b"h", b"x-a": b"1", b"x-b": b"1", b"x-c": b"2"}
    for source in ['"x-a" in request.headers && !("x-z" in request.headers) && request.headers["x-b"] == "1"',
                   'request.headers.exists(k, k == "x-c")', 'size(request.headers) == 4',
                   'has(jwt.realm_access) && jwt.realm_access.roles[0] == "admin" && !has(jwt.zz)',
                   'jwt.all(k, k != "zz") && size(jwt) == 4']:
        p = authz(source, AuthzRule(deny="false"))     # two rules: the activation path
        q = authz(source)                              # one rule: the variables straight to the engine
        for pol in (p, q):
            assert decide(pol, headers=headers, claims_=ALICE).allowed, (source, pol)


def jwt_policy() -> JwtPolicy:
    return JwtPolicy(JwtAuth(issuer=mint.ISSUER, jwks=Jwks(inline=mint.default_jwks())))


def verified(jp: JwtPolicy, tok: bytes) -> AuthResult:
    r = jp.authenticate({b"authorization": b"Bearer " + tok}, b"/")
    assert r.verified
    return r


def test_a_jwt_only_verdict_is_kept_per_token_and_a_hit_evaluates_nothing(monkeypatch):
    jp = jwt_policy()
    admin = token("RS256", kid="rsa", payload=claims(sub="alice", roles=["admin"]))
    user = token("RS256", kid="rsa", payload=claims(sub="bob", roles=["user"]))
    p = authz('"admin" in jwt.roles')
    first = p.apply(Request(verdicts=[verified(jp, admin)]))
    assert first.allowed and len(p.cache) == 1
    calls = []
    monkeypatch.setattr(type(p), "decide", lambda self, act: calls.append(act))
    for _ in range(3):
        assert p.apply(Request(verdicts=[verified(jp, admin)])) is first
    assert calls == []
    monkeypatch.undo()
    denied = p.apply(Request(verdicts=[verified(jp, user)]))
    assert not denied.allowed and len(p.cache) == 2
    assert p.apply(Request(verdicts=[verified(jp, user)])) is denied


def test_the_verdict_cache_is_bounded():
    jp = jwt_policy()
    p = AuthorizationPolicy(Authorization(rules=['jwt.sub.startsWith("u")']), cache_entries=8)
    for i in range(50):
        tok = token("RS256", kid="rsa", payload=claims(sub=f"u{i}"))
        assert p.apply(Request(verdicts=[verified(jp, tok)])).allowed
        assert len(p.cache) <= 8


def test_a_rule_reading_the_request_is_evaluated_for_every_request():
    jp = jwt_policy()
    tok = token("RS256", kid="rsa", payload=claims(sub="alice"))
    p = authz('jwt.sub == "alice" && request.method == "GET"')
    assert p.apply(Request(method=b"GET", verdicts=[verified(jp, tok)])).allowed
    assert not p.apply(Request(method=b"DELETE", verdicts=[verified(jp, tok)])).allowed
    # Kept per token: the claims the rule can reach, decoded once (not a verdict).
    assert list(p.cache.values()) == [{"sub": "alice"}]


# --- merging across attachment points ----------------------------------------------------------------------------

def test_listener_and_route_rules_are_merged_not_overridden():
    from agw.config.compile import compile_bind, compile_settings
    from agw.config.model import Bind, Settings

    listener_rules = Authorization(rules=[AuthzRule(deny='jwt.sub == "bob"')])
    route_rules = Authorization(rules=['has(jwt.sub)'])
    listener = Listener(policies=Policies(authorization=listener_rules), routes=[
        Route(name="own", backends=[], policies=Policies(authorization=route_rules)),
        Route(name="inherits", backends=[]),
    ])
    plan = compile_bind(Bind(port=1, listeners=[listener]), compile_settings(Settings()))
    merged = {r.name: r.policies.authorization for r in plan.routes}
    own = AuthorizationPolicy(merged["own"])
    assert [r.name for r in own.rules] == ["listener.rules[0]", "rules[0]"]   # each named in its own list
    assert decide(own, claims_=ALICE).allowed
    assert decide(own, claims_=BOB).label == "listener.rules[0]"      # the listener's deny still applies
    assert not decide(own).allowed                                     # and the route's allow too
    inherits = AuthorizationPolicy(merged["inherits"])
    assert decide(inherits).allowed and not decide(inherits, claims_=BOB).allowed


def test_merge_keeps_names_and_order():
    a = Authorization(rules=["true", AuthzRule(require="true", name="named")])
    b = Authorization(rules=[AuthzRule(deny="false")])
    assert [x[2] for x in merge_authorization(a, b, "gw").actions()] == ["gw.rules[0]", "named", "rules[0]"]
    assert merge_authorization(None, b) is b
    assert [x[2] for x in merge_authorization(a, None).actions()] == ["listener.rules[0]", "named"]
