"""The Cython core against published vectors (RFC 7515 A.1-A.5, RFC 8037) and tokens minted for every alg."""
from __future__ import annotations

import base64
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from vectors import mint  # noqa: E402

from agw._fastjwt import REASONS, Core, Provider, b64url_decode  # noqa: E402
from agw.jwt.errors import results_for_mode  # noqa: E402
from agw.jwt.keys import JwksError, parse_jwks  # noqa: E402

RFC = mint.load_rfc()
BEFORE_RFC_EXP = RFC["exp"] - 100


def rfc_core(jwk: dict, **kw) -> Core:
    provider = Provider("joe", None, 1)
    provider.set_keys(parse_jwks(json.dumps({"keys": [jwk]})))
    return Core([provider], results_for_mode("strict"), **kw)


@pytest.mark.parametrize("name", ["a1_hs256", "a2_rs256", "a3_es256"])
def test_rfc7515_appendix_a_tokens_verify(name):
    v = RFC[name]
    token = f"{v['header_b64']}.{RFC['payload_b64']}.{v['sig_b64']}".encode()
    result = rfc_core(v["jwk"]).verify_token(token, BEFORE_RFC_EXP)
    assert result.allowed and result.reason is None
    assert result.issuer == "joe"
    assert result.claims["http://example.com/is_root"] is True


@pytest.mark.parametrize("name", ["a1_hs256", "a2_rs256", "a3_es256"])
def test_rfc7515_tokens_expire_with_the_skew(name):
    v = RFC[name]
    token = f"{v['header_b64']}.{RFC['payload_b64']}.{v['sig_b64']}".encode()
    core = rfc_core(v["jwk"], skew=60)
    assert core.verify_token(token, RFC["exp"] + 59).allowed
    assert core.verify_token(token, RFC["exp"] + 60).reason == "expired"  # exp <= now - skew


@pytest.mark.parametrize("name", ["a1_hs256", "a2_rs256", "a3_es256"])
def test_rfc7515_tokens_with_one_flipped_signature_bit_fail(name):
    v = RFC[name]
    sig = bytearray(b64url_decode(v["sig_b64"]))
    sig[len(sig) // 2] ^= 1
    token = f"{v['header_b64']}.{RFC['payload_b64']}.{mint.b64(bytes(sig))}".encode()
    assert rfc_core(v["jwk"]).verify_token(token, BEFORE_RFC_EXP).reason == "invalid_signature"


def test_rfc7515_a5_unsecured_jws_is_refused():
    core = rfc_core(RFC["a1_hs256"]["jwk"])
    assert core.verify_token(RFC["a5_none"].encode(), BEFORE_RFC_EXP).reason == "unsupported_algorithm"


def test_rfc7515_a4_es512_and_rfc8037_ed25519_signatures():
    for name, alg in (("a4_es512", "ES512"), ("rfc8037_ed25519", "EdDSA")):
        v = RFC[name]
        (key,) = parse_jwks(json.dumps({"keys": [v["jwk"]]}))
        signing_input, _, sig = v["jws"].rpartition(".")
        assert key.verify_signature(alg, signing_input.encode(), b64url_decode(sig))
        assert not key.verify_signature(alg, signing_input.encode() + b"x", b64url_decode(sig))


@pytest.mark.parametrize("alg", mint.ALL_ALGS)
def test_minted_tokens_for_every_algorithm(alg):
    provider = Provider(mint.ISSUER, [mint.AUDIENCE], 1)
    provider.set_keys(parse_jwks(mint.default_jwks()))
    core = Core([provider], results_for_mode("strict"))
    good = mint.token(alg, kid=mint.kid_for(alg))
    result = core.verify_token(good)
    assert result.allowed, result
    assert result.subject == "alice" and result.claims["aud"] == mint.AUDIENCE
    head, payload, sig = good.split(b".")
    other = mint.token(alg, kid=mint.kid_for(alg), payload=mint.claims(sub="mallory"))
    forged = head + b"." + other.split(b".")[1] + b"." + sig
    assert core.verify_token(forged).reason == "invalid_signature"


@pytest.mark.parametrize("alg", mint.ALL_ALGS)
def test_token_without_kid_is_accepted_only_when_exactly_one_key_fits(alg):
    provider = Provider(mint.ISSUER, None, 1)
    provider.set_keys(parse_jwks(mint.default_jwks()))
    core = Core([provider], results_for_mode("strict"))
    assert core.verify_token(mint.token(alg, kid=None)).allowed
    # two RSA keys: a kid-less RS256 token is ambiguous
    provider.set_keys(parse_jwks(mint.jwks(mint.jwk_of(mint.rsa_key(), "a"), mint.jwk_of(mint.rsa_key(2048, 1), "b"))))
    assert core.verify_token(mint.token("RS256", kid=None)).reason == "unknown_key"


def test_b64url_decoding_is_strict():
    assert b64url_decode("") == b""
    assert b64url_decode("YQ") == b"a"
    assert b64url_decode("YWI") == b"ab"
    assert b64url_decode("YWJj") == b"abc"
    assert b64url_decode("-_-_") == base64.urlsafe_b64decode("-_-_")
    for bad in ("YQ==", "YR", "YWJ", "Y", "YW+j", "YW/j", "YW j", "YWJj\n", "YWJ\x00", "YQ="):
        with pytest.raises(ValueError):
            b64url_decode(bad)


def test_b64url_round_trip_on_all_lengths():
    for n in range(0, 70):
        data = os.urandom(n)
        assert b64url_decode(mint.b64(data)) == data


def test_reasons_are_the_documented_codes():
    assert REASONS == ("missing", "malformed", "unsupported_algorithm", "expired", "not_yet_valid",
                       "unknown_issuer", "audience_not_allowed", "missing_claim", "unknown_key",
                       "invalid_signature", "keys_unavailable", "type_not_allowed", "lifetime_too_long",
                       "subject_not_allowed", "insufficient_scope")


def test_jwks_hygiene_skips_bad_keys_and_fails_only_when_none_remain(caplog):
    small = mint.jwk_of(mint.rsa_key(1024), "small")
    weird_e = dict(mint.jwk_of(mint.rsa_key(), "e3"), e=mint.b64((3).to_bytes(1, "big")))
    p256 = mint.jwk_of(mint.ec_key("P-256"), "p256")
    y_flipped = int.from_bytes(b64url_decode(p256["y"]), "big") ^ 1
    off_curve = dict(p256, kid="off", y=mint.b64(y_flipped.to_bytes(32, "big")))
    unknown = {"kty": "XYZ", "kid": "x"}
    enc = dict(mint.jwk_of(mint.ec_key("P-384"), "enc"), use="enc")
    wrong_alg = dict(mint.jwk_of(mint.rsa_key(), "ra"), alg="ES256")
    short_hmac = mint.jwk_of(b"short", "sh")
    good = mint.jwk_of(mint.ed_key(), "good")
    keys = parse_jwks(mint.jwks(small, weird_e, off_curve, unknown, enc, wrong_alg, short_hmac, good, {"kid": 1}))
    assert [k.kid for k in keys] == ["good"]
    with pytest.raises(JwksError, match="no usable key.*1024 bits"):
        parse_jwks(mint.jwks(small))
    with pytest.raises(JwksError, match="empty"):
        parse_jwks('{"keys": []}')
    with pytest.raises(JwksError, match="not a JWKS"):
        parse_jwks("<html>")


def test_jwk_alg_narrows_the_key_to_that_algorithm():
    provider = Provider(mint.ISSUER, None, 1)
    provider.set_keys(parse_jwks(mint.jwks(mint.jwk_of(mint.rsa_key(), "k1", alg="PS256"))))
    core = Core([provider], results_for_mode("strict"))
    assert core.verify_token(mint.token("PS256")).allowed
    assert core.verify_token(mint.token("RS256")).reason == "unsupported_algorithm"


def test_remote_jwks_refuses_hmac_keys():
    with pytest.raises(JwksError, match="oct"):
        parse_jwks(mint.jwks(mint.jwk_of(mint.HMAC_SECRET, "h")), allow_hmac=False)
