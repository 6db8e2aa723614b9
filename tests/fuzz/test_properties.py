"""Property tests of the Cython core (hypothesis; modest example counts so they run in CI).

- base64url: decode(encode(x)) == x for any bytes; decoding anything raises only ValueError, and what it
  accepts is exactly the canonical encoding of its result (no padding, no alternative alphabet, no stray bits).
- No input makes token verification or request authentication raise: the core answers every byte string
  with an AuthResult (it has no error type of its own for tokens; failures are results), and only the known
  valid tokens are ever allowed.
"""
from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agw._fastjwt import AuthResult, b64url_decode, b64url_encode

from tests.hostile import corpus

from .targets import Checker

CI = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.fixture(scope="module")
def checker() -> Checker:
    return Checker()


@CI
@given(st.binary(max_size=600))
def test_b64url_round_trip(data):
    encoded = b64url_encode(data)
    assert b64url_decode(encoded) == data
    assert b64url_decode(encoded.decode()) == data
    assert encoded == base64.urlsafe_b64encode(data).rstrip(b"=")


@CI
@given(st.one_of(st.binary(max_size=300), st.text(alphabet=B64_ALPHABET + "=+/ .\n\x00", max_size=300)))
def test_b64url_decode_raises_only_value_error_and_accepts_only_canonical_input(data):
    try:
        decoded = b64url_decode(data)
    except ValueError:
        return
    raw = data.encode("ascii") if isinstance(data, str) else data
    assert b64url_encode(decoded) == raw


@CI
@given(st.text(max_size=200))
def test_b64url_decode_of_any_text_raises_only_value_error(text):
    try:
        b64url_decode(text)
    except ValueError:
        pass


@CI
@given(st.binary(max_size=2000))
def test_any_bytes_as_a_token(checker, data):
    checker.exercise("verify_token", data)


@CI
@given(st.lists(st.sampled_from([b"eyJ", b".", b"A", b"_", b"-", b"=", b" ", b"\xff", b"e30", b"bnVsbA"]),
                max_size=60).map(b"".join))
def test_token_shaped_bytes(checker, data):
    checker.exercise("verify_token", data)


@CI
@given(st.binary(max_size=500))
def test_any_authorization_header(checker, data):
    checker.exercise("authorization", b"Bearer " + data)
    checker.exercise("authorization", data)


@CI
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_any_query_string_and_cookie(checker, query, cookie):
    checker.exercise("query", query)
    checker.exercise("cookie", cookie)


@CI
@given(st.binary(min_size=3, max_size=40))
def test_mutated_valid_tokens_never_pass(checker, data):
    checker.exercise("mutate_valid", data)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                                          max_size=4),
                    max_leaves=20)


@CI
@given(st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "jku", "jwk", "enc", "x5c", "b64", "zip"]),
                       JSON, max_size=5),
       st.dictionaries(st.sampled_from(["iss", "aud", "exp", "nbf", "sub", "iat", "jti", "x"]), JSON, max_size=6))
def test_genuinely_signed_tokens_with_arbitrary_json(checker, header, payload):
    """Arbitrary header and claims, really signed with the main RSA key: never an exception, and allowed only
    when the claims are right (iss/aud/exp as the policy demands) and the header names RS256 and a fitting kid."""
    token = corpus.make("RS256", raw_header=json.dumps(header).encode(), raw_payload=json.dumps(payload).encode(),
                        sign_as="RS256")
    result = checker.core.verify_token(token)
    assert type(result) is AuthResult
    if result.allowed:
        assert header.get("alg") == "RS256" and header.get("kid") in ("rsa", None)
        assert not ({"crit", "enc", "zip"} & set(header))
        assert payload["iss"] == corpus.ISSUER
        assert payload["aud"] == corpus.AUDIENCE or corpus.AUDIENCE in payload["aud"]
        assert isinstance(payload["exp"], (int, float)) and not isinstance(payload["exp"], bool)
