"""The claims scanner (agw/_fastjwt.pyx `_scan_claims`) against orjson: whatever payload it takes, orjson must
read as an object without repeated names and with the same iss, sub, aud, exp, nbf and iat; everything else is left
to orjson (None). And a verification gives the same answer on either path."""
from __future__ import annotations

import json
import os
import sys
import time

import orjson
import pytest
from hypothesis import given, settings, strategies as st

sys.path.insert(0, os.path.dirname(__file__))
from vectors import mint  # noqa: E402

from agw._fastjwt import Core, Provider, scan_claims  # noqa: E402
from agw.jwt.errors import results_for_mode  # noqa: E402
from agw.jwt.keys import parse_jwks  # noqa: E402

CLAIMS = ("iss", "sub", "aud", "exp", "nbf", "iat")


def orjson_reading(raw: bytes):
    """What the orjson path reads: None where it refuses the payload (invalid, not an object, repeated names)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict:
        return None
    names = [k for k, _ in json.loads(raw, object_pairs_hook=lambda pairs: pairs)]
    return doc if len(names) == len(set(names)) else None


def assert_agrees(raw: bytes) -> None:
    got = scan_claims(raw)
    if got is None:
        return
    doc = orjson_reading(raw)
    assert doc is not None, f"scanner took a payload orjson refuses: {raw!r}"
    for name in CLAIMS:
        if name not in doc:
            assert name not in got, (name, raw)
            continue
        value = doc[name]
        if name in ("exp", "nbf", "iat"):
            assert type(value) is int and got[name] == float(value), (name, raw)
        elif name == "aud" and type(value) is list:
            assert got[name] == value and all(type(a) is str for a in value), raw
        else:
            assert type(value) is str and got[name] == value, (name, raw)


# Mostly within the plain subset (printable ASCII, integers), so that the scanner has something to take;
# some unicode, escapes-to-be and floats so that it also has something to leave.
plain_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | plain_text
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(plain_text, inner, max_size=4),
    max_leaves=12)
claim_values = st.one_of(
    plain_text, st.integers(-10**16, 10**16), st.lists(plain_text, max_size=3), json_values, st.floats(0, 2e9))


@st.composite
def payloads(draw) -> bytes:
    doc = draw(st.dictionaries(st.sampled_from(CLAIMS) | plain_text | st.text(max_size=3), claim_values, max_size=8))
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]))
    raw = json.dumps(doc, separators=separators, ensure_ascii=draw(st.booleans()), allow_nan=False).encode()
    if draw(st.booleans()):
        raw = draw(st.sampled_from([b"", b" ", b"\n"])) + raw + draw(st.sampled_from([b"", b" ", b"\r\n", b"x"]))
    return raw


@st.composite
def mutated(draw) -> bytes:
    raw = bytearray(draw(payloads()))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(raw)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = draw(st.sampled_from(b'{}[]",:\\ 0123456789-.eEtfnul\x00\x1f\x7f\xc3\xa9a'))
        if action == "insert":
            raw[at:at] = bytes([byte])
        elif raw and at < len(raw):
            raw[at:at + 1] = b"" if action == "delete" else bytes([byte])
    return bytes(raw)


@settings(max_examples=1500, deadline=None)
@given(payloads())
def test_scanner_agrees_with_orjson_on_generated_payloads(raw):
    assert_agrees(raw)


@settings(max_examples=1500, deadline=None)
@given(mutated())
def test_scanner_agrees_with_orjson_on_damaged_payloads(raw):
    assert_agrees(raw)


@pytest.mark.parametrize("raw", [
    b'{"iss":"a","iss":"a"}',                       # repeated name
    b'{"iss":"a","i\\u0073s":"b"}',                 # the same name once decoded
    b'{"exp":1e10}', b'{"exp":1700000000.5}', b'{"exp":"1700000000"}', b'{"exp":null}', b'{"exp":true}',
    b'{"iat":1700000000.5}', b'{"iat":"1700000000"}', b'{"iat":null}',
    b'{"exp":1234567890123456}',                    # beyond 15 digits: orjson reads it
    b'{"a":1e400}',                                 # orjson refuses the infinity
    b'{"a":' + b"9" * 400 + b"}",
    b'{"iss":"https:\\/\\/idp"}', b'{"sub":"Jos\xc3\xa9"}', b'{"sub":null}', b'{"aud":["a",1]}', b'{"aud":{}}',
    b'{"a":01}', b'{"a":[1,]}', b'{"a":1,}', b'{"a":1}x', b'[]', b'"x"', b'', b'{"a":"\x01"}',
    b'{"a":' + b"[" * 40 + b"]" * 40 + b"}",           # deeper than the scanner goes
])
def test_unusual_payloads_are_left_to_orjson(raw):
    assert scan_claims(raw) is None


def test_a_keycloak_access_token_takes_the_short_path():
    now = int(time.time())
    payload = {"exp": now + 300, "iat": now, "auth_time": now, "jti": "onrtac:1", "iss": "https://kc/realms/r",
               "aud": ["account", "api"], "sub": "0f8c2a3e", "typ": "Bearer", "azp": "web", "acr": "1",
               "allowed-origins": ["https://app"], "realm_access": {"roles": ["a", "b"]},
               "resource_access": {"account": {"roles": ["manage-account"]}}, "scope": "openid email",
               "email_verified": True, "name": "Bench User", "email": "u@example.com"}
    got = scan_claims(json.dumps(payload).encode())
    assert got == {"iss": "https://kc/realms/r", "sub": "0f8c2a3e", "aud": ["account", "api"],
                   "exp": float(now + 300), "iat": float(now)}


def _core() -> Core:
    provider = Provider(mint.ISSUER, [mint.AUDIENCE], 1)
    provider.set_keys(parse_jwks(mint.default_jwks()))
    return Core([provider], results_for_mode("strict"))


def _escaped(text: str) -> str:
    """`text` as a JSON string with every character escaped: same value, orjson's path."""
    return '"' + "".join(f"\\u{ord(c):04x}" for c in text) + '"'


@pytest.mark.parametrize("case", ["valid", "expired", "not_yet_valid", "wrong_audience", "unknown_issuer"])
def test_both_claim_readers_give_the_same_answer(case):
    now = int(time.time())
    claims = {"iss": mint.ISSUER, "aud": mint.AUDIENCE, "sub": "alice", "exp": now + 600}
    if case == "expired":
        claims["exp"] = now - 3600
    elif case == "not_yet_valid":
        claims["nbf"] = now + 3600
    elif case == "wrong_audience":
        claims["aud"] = ["other", "another"]
    elif case == "unknown_issuer":
        claims["iss"] = "https://elsewhere.test"
    plain = json.dumps(claims).encode()
    escaped = ("{" + ",".join(f"{_escaped(k)}:{_escaped(v) if type(v) is str else json.dumps(v)}"
                              for k, v in claims.items()) + "}").encode()
    assert scan_claims(plain) is not None and scan_claims(escaped) is None
    core = _core()
    fast = core.verify_token(mint.token("RS256", kid="rsa", raw_payload=plain))
    slow = core.verify_token(mint.token("RS256", kid="rsa", raw_payload=escaped))
    assert (fast.allowed, fast.reason, fast.subject) == (slow.allowed, slow.reason, slow.subject)
    assert fast.allowed == (case == "valid")
    if case == "valid":
        assert fast.subject == "alice" and fast.claims == claims == slow.claims
