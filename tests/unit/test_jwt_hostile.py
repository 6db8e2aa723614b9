"""A table of hostile tokens: each is answered with its reason (401 in strict mode), never an exception."""
from __future__ import annotations

import json
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from vectors import mint  # noqa: E402
from vectors.mint import b64, claims, token  # noqa: E402

from agw._fastjwt import b64url_decode  # noqa: E402
from agw.config.model import Jwks, JwtAuth, Provider as ProviderCfg  # noqa: E402
from agw.jwt import MESSAGES, REASONS, AuthResult, JwtPolicy  # noqa: E402

NOW = int(time.time())


def _policy(**kw) -> JwtPolicy:
    other = ProviderCfg(issuer="https://other.test", jwks=Jwks(inline=mint.jwks(
        mint.jwk_of(mint.rsa_key(2048, 7), "other-key"))))
    main = ProviderCfg(issuer=mint.ISSUER, audiences=[mint.AUDIENCE], jwks=Jwks(inline=mint.default_jwks()))
    return JwtPolicy(JwtAuth(providers=[main, other], **kw))


def _ecdsa_sig(r: int, s: int, size: int = 32) -> bytes:
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _hs256_with_rsa_public_key() -> bytes:
    """The classic alg confusion: HS256 'signed' with the RSA public key's bytes."""
    jwk = mint.jwk_of(mint.rsa_key(), "rsa")
    return token("HS256", key=json.dumps(jwk).encode(), kid="rsa")


def _good(**kw) -> bytes:
    return token("RS256", kid="rsa", **kw)


def _replace_sig(tok: bytes, sig: bytes) -> bytes:
    return tok.rsplit(b".", 1)[0] + b"." + b64(sig).encode()


def _table():
    g = _good()
    h, p, s = g.split(b".")
    es = token("ES256", kid="p256")
    yield "empty after prefix", b"", "missing"
    yield "one part", b"abc", "malformed"
    yield "two parts", h + b"." + p, "malformed"
    yield "extra dots", g + b".", "malformed"
    yield "JWE five parts", h + b"." + p + b"." + s + b".AAAA.BBBB", "malformed"
    yield "padding in header", h + b"==." + p + b"." + s, "malformed"
    yield "standard base64 chars", h.replace(b"e", b"+", 1) + b"." + p + b"." + s, "malformed"
    head = b64(b'{"alg":"RS256","kid":"rsa"}').encode()
    yield "non-canonical trailing bits", head[:-1] + b"B." + p + b"." + s, "malformed"
    yield "space inside", h + b"." + p[:10] + b" " + p[10:] + b"." + s, "malformed"
    yield "trailing garbage", g + b"!", "malformed"
    yield "header not JSON", b64(b"nope").encode() + b"." + p + b"." + s, "malformed"
    yield "header a JSON array", token("RS256", raw_header=b'["alg"]'), "malformed"
    yield "header not UTF-8", token("RS256", raw_header=b'{"alg":"RS256","kid":"\xff"}'), "malformed"
    yield "duplicate alg", token("RS256", raw_header=b'{"alg":"RS256","alg":"none","kid":"rsa"}'), "malformed"
    yield "payload not JSON", token("RS256", kid="rsa", raw_payload=b"hello"), "malformed"
    yield "payload JSON string", token("RS256", kid="rsa", raw_payload=b'"x"'), "malformed"
    yield "duplicate iss", token("RS256", kid="rsa", raw_payload=json.dumps(claims()).encode()[:-1]
                                 + b', "iss": "https://other.test"}'), "malformed"
    yield "huge exp", token("RS256", kid="rsa", raw_payload=json.dumps(claims(exp=None)).encode()[:-1]
                            + b', "exp": 1' + b"0" * 30 + b"}"), "ok"
    yield "exp with 400 digits", token("RS256", kid="rsa", raw_payload=json.dumps(claims(exp=None)).encode()[:-1]
                                       + b', "exp": 1' + b"0" * 400 + b"}"), "malformed"
    yield "exp beyond double", token("RS256", kid="rsa",
                                     raw_payload=b'{"iss":"https://idp.test","aud":"api","exp":1e400}'), "malformed"
    yield "exp as string", _good(payload=claims(exp=str(NOW + 600))), "malformed"
    yield "exp as bool", _good(payload=claims(exp=True)), "malformed"
    yield "exp negative", _good(payload=claims(exp=-1)), "expired"
    yield "exp missing", _good(payload=claims(exp=None)), "missing_claim"
    yield "expired", _good(payload=claims(exp=NOW - 120)), "expired"
    yield "nbf in the future", _good(payload=claims(nbf=NOW + 3600)), "not_yet_valid"
    yield "nbf as string", _good(payload=claims(nbf="0")), "malformed"
    yield "iss missing", _good(payload=claims(iss=None)), "unknown_issuer"
    yield "iss wrong", _good(payload=claims(iss="https://evil.test")), "unknown_issuer"
    yield "iss as list", _good(payload=claims(iss=[mint.ISSUER])), "unknown_issuer"
    yield "iss differs in case", _good(payload=claims(iss=mint.ISSUER.upper())), "unknown_issuer"
    yield "aud wrong", _good(payload=claims(aud="other")), "audience_not_allowed"
    yield "aud missing", _good(payload=claims(aud=None)), "audience_not_allowed"
    yield "aud as object", _good(payload=claims(aud={"api": True})), "malformed"
    yield "aud list without match", _good(payload=claims(aud=["x", "y"])), "audience_not_allowed"
    yield "aud list with match", _good(payload=claims(aud=["x", "api"])), "ok"
    yield "sub as number", _good(payload=claims(sub=5)), "malformed"
    for spelling in ("none", "None", "NONE", "nOnE"):
        yield (f"alg {spelling}", token("RS256", kid="rsa", header={"alg": spelling}, signature=b""),
               "unsupported_algorithm")
        yield f"alg {spelling} with sig", token("RS256", kid="rsa", header={"alg": spelling}), "unsupported_algorithm"
    yield "alg missing", token("RS256", raw_header=b'{"kid":"rsa"}'), "malformed"
    yield "alg unknown", token("RS256", kid="rsa", header={"alg": "RS1"}), "unsupported_algorithm"
    yield "alg lower case", token("RS256", kid="rsa", header={"alg": "rs256"}), "unsupported_algorithm"
    yield "alg as list", token("RS256", kid="rsa", header={"alg": ["RS256"]}), "malformed"
    yield "HS256 with the RSA public key", _hs256_with_rsa_public_key(), "unsupported_algorithm"
    yield "ES256 claimed on an RSA key", token("ES256", kid="rsa"), "unsupported_algorithm"
    yield "RS256 claimed on an EC key", token("RS256", kid="p256"), "unsupported_algorithm"
    yield "ES384 on a P-256 key", token("ES384", kid="p256"), "unsupported_algorithm"
    yield "kid of another provider", token("RS256", kid="other-key", key=mint.rsa_key(2048, 7)), "unknown_key"
    yield "kid unknown", token("RS256", kid="nope"), "unknown_key"
    yield "kid as number", token("RS256", raw_header=b'{"alg":"RS256","kid":7}'), "malformed"
    yield "crit unknown", token("RS256", kid="rsa", header={"crit": ["exp"], "exp": 1}), "malformed"
    yield "crit b64", token("RS256", kid="rsa", header={"crit": ["b64"], "b64": False}), "malformed"
    yield "enc header", token("RS256", kid="rsa", header={"enc": "A128GCM"}), "malformed"
    yield "embedded jwk is ignored", token("RS256", kid="nope", key=mint.rsa_key(2048, 3),
                                           header={"jwk": mint.jwk_of(mint.rsa_key(2048, 3))}), "unknown_key"
    yield "jku is ignored", token("RS256", kid="rsa", key=mint.rsa_key(2048, 3),
                                  header={"jku": "http://127.0.0.1:1/jwks"}), "invalid_signature"
    yield "x5u/x5c ignored, good sig", _good(header={"x5u": "http://127.0.0.1:1/x", "x5c": ["AAAA"]}), "ok"
    yield "empty signature", _replace_sig(g, b""), "invalid_signature"
    yield "signature too short", _replace_sig(g, b"\x01" * 255), "invalid_signature"
    yield "signature too long", _replace_sig(g, b"\x01" * 257), "invalid_signature"
    other = _good(payload=claims(sub="bob"))
    yield "signature of another token", _replace_sig(other, b64url_decode(s)), "invalid_signature"
    yield "ECDSA r = 0", _replace_sig(es, _ecdsa_sig(0, 5)), "invalid_signature"
    yield "ECDSA s = 0", _replace_sig(es, _ecdsa_sig(5, 0)), "invalid_signature"
    yield "ECDSA r = n", _replace_sig(es, _ecdsa_sig(P256_N, 5)), "invalid_signature"
    yield "ECDSA s = n", _replace_sig(es, _ecdsa_sig(5, P256_N)), "invalid_signature"
    yield "ECDSA s > n", _replace_sig(es, _ecdsa_sig(5, P256_N + 1)), "invalid_signature"
    yield "ECDSA DER instead of raw", _replace_sig(es, bytes.fromhex("3006020101020101")), "invalid_signature"
    yield "ECDSA wrong length", _replace_sig(es, b"\x01" * 63), "invalid_signature"
    yield "EdDSA short sig", _replace_sig(token("EdDSA", kid="ed"), b"\x01" * 63), "invalid_signature"
    yield "huge token", _good(payload=claims(pad="x" * 9000)), "malformed"
    yield "non-UTF-8 payload", token("RS256", kid="rsa", raw_payload=b'{"iss":"\xc3\x28"}'), "malformed"
    yield "nested duplicates tolerated at depth", _good(payload=claims(nested={"a": 1})), "ok"
    yield "NUL bytes", h + b"\x00." + p + b"." + s, "malformed"


CASES = list(_table())


@pytest.fixture(scope="module")
def policy() -> JwtPolicy:
    return _policy()


@pytest.mark.parametrize("name,tok,reason", CASES, ids=[c[0] for c in CASES])
def test_hostile_token_gets_its_reason(policy, name, tok, reason):
    result = policy.authenticate({b"authorization": b"Bearer " + tok}, b"/")
    assert isinstance(result, AuthResult), result
    if reason == "ok":
        assert result.allowed and result.reason is None
        return
    assert result.reason == reason, name
    assert not result.allowed
    assert result.body == b"authentication failure: " + MESSAGES[reason].encode()
    expected_challenge = b'Bearer realm="agw"' if reason == "missing" else b'Bearer realm="agw", error="invalid_token"'
    assert result.www_authenticate == expected_challenge
    assert result.claims is None and not result.remove_credential


def test_table_covers_every_token_reason():
    seen = {r for _, _, r in CASES}
    # The token-profile reasons need profile settings this policy has none of: test_jwt_profiles.py has them.
    profile = {"type_not_allowed", "lifetime_too_long", "subject_not_allowed", "insufficient_scope"}
    assert seen >= set(REASONS) - {"keys_unavailable"} - profile


def test_random_garbage_never_raises(policy):
    import random
    rng = random.Random(1)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \x00\xff"
    good = _good()
    for i in range(3000):
        if i % 2:
            tok = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 300)))
        else:
            b = bytearray(good)
            for _ in range(rng.randrange(1, 4)):
                b[rng.randrange(len(b))] = rng.choice(alphabet)
            tok = bytes(b)
        result = policy.authenticate({b"authorization": b"Bearer " + tok}, b"/")
        assert isinstance(result, AuthResult)
        assert result.allowed == (tok == good)
