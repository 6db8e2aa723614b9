"""The hostile corpus against the JWT policy in-process: each case's exact reason (fast, precise diagnostics;
tests/hostile/test_hostile_e2e.py sends the same corpus through a real agw)."""
from __future__ import annotations

import base64
import json

import pytest

from agw.config.model import Jwks, JwtAuth, Provider
from agw.jwt import MESSAGES, AuthResult, JwksError, JwtPolicy, parse_jwks

from . import corpus

CASES = corpus.token_cases()


def header_dict(lines: tuple[tuple[str, bytes], ...]) -> dict[bytes, bytes]:
    """Request headers as the proxy hands them to the policy: names lower-cased, repeats joined with ", "."""
    out: dict[bytes, bytes] = {}
    for name, value in lines:
        key = name.lower().encode()
        out[key] = out[key] + b", " + value if key in out else value
    return out


def build_policy() -> JwtPolicy:
    providers = [Provider(issuer=p["issuer"], audiences=p["audiences"], jwks=Jwks(inline=p["jwks"]["inline"]))
                 for p in corpus.policy()["providers"]]
    return JwtPolicy(JwtAuth(mode="strict", providers=providers))


@pytest.fixture(scope="module")
def policy() -> JwtPolicy:
    return build_policy()


def test_the_corpus_is_large_deterministic_and_uniquely_named():
    names = [c.name for c in CASES] + [c.name for c in corpus.jwks_cases()] + [c.name for c in corpus.http_cases()]
    assert len(names) >= 150
    assert len(set(names)) == len(names)
    assert {c.reason for c in CASES} <= set(MESSAGES)
    # Same bytes when generated again from scratch.
    corpus.token_cases.cache_clear()
    corpus.jwks_cases.cache_clear()
    assert corpus.token_cases() == CASES


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_hostile_request_gets_its_reason(policy, case):
    result = policy.authenticate(header_dict(case.headers), b"/anything")
    assert isinstance(result, AuthResult), result  # inline keys only: never a pending fetch
    assert not result.allowed
    assert result.reason == case.reason
    assert result.body == case.body


@pytest.mark.parametrize("name,lines", corpus.valid_requests(), ids=[n for n, _ in corpus.valid_requests()])
def test_the_valid_requests_pass(policy, name, lines):
    result = policy.authenticate(header_dict(lines), b"/anything")
    assert result.allowed and result.reason is None, name


JWKS_CASES = corpus.jwks_cases()


@pytest.mark.parametrize("case", JWKS_CASES, ids=[c.name for c in JWKS_CASES])
def test_every_hostile_jwk_is_skipped_with_its_reason(case):
    with pytest.raises(JwksError) as err:
        parse_jwks(json.dumps({"keys": [case.jwk]}), allow_hmac=True)
    assert case.problem in str(err.value)


def test_the_weak_key_set_keeps_only_its_good_key():
    keys = parse_jwks(json.dumps(corpus.weak_jwks()))
    assert [k.kid for k in keys] == ["good"]


@pytest.mark.parametrize("case", [c for c in JWKS_CASES if c.token],
                         ids=[c.name for c in JWKS_CASES if c.token])
def test_tokens_signed_by_skipped_keys_are_unknown_keys(policy, case):
    result = policy.authenticate({b"authorization": b"Bearer " + case.token}, b"/")
    assert result.reason == "unknown_key"


@pytest.mark.parametrize("document,problem", [
    (b"", "not a JWKS"), (b"null", "not a JWKS"), (b"[]", "not a JWKS"), (b'{"keys": {}}', "not a JWKS"),
    (b'{"keys": []}', "empty"), (b'{"keys": [{}]}', "kty"), (b"\xff\xfe", "not a JWKS"),
    (b'{"keys": [' + b"[" * 5000 + b"]" * 5000 + b"]}", "nested too deeply"),
    (json.dumps({"keys": [c.jwk for c in JWKS_CASES]}).encode(), "no usable key"),
], ids=["empty", "null", "array", "keys-object", "keys-empty", "key-empty", "utf16-bom", "deep-nesting",
        "only-bad-keys"])
def test_hostile_jwks_documents_are_refused_as_a_whole(document, problem):
    with pytest.raises(JwksError) as err:
        parse_jwks(document)
    assert problem in str(err.value)


ED25519_CASES = [c for c in JWKS_CASES if c.name.startswith("OKP Ed25519 ") and c.token]


@pytest.mark.parametrize("case", ED25519_CASES, ids=[c.name for c in ED25519_CASES])
def test_small_order_ed25519_keys_are_skipped_so_forged_signatures_fail(case):
    """F17: with a small-order key (or a non-canonical encoding of one) `cryptography` verifies R = identity,
    S = 0 over the corpus token; agw must skip the key at load and refuse the token."""
    from cryptography.hazmat.primitives.asymmetric import ed25519
    def unb64(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    signing_input, _, signature = case.token.rpartition(b".")
    public = ed25519.Ed25519PublicKey.from_public_bytes(unb64(case.jwk["x"]))
    public.verify(unb64(signature.decode()), signing_input)   # the forgery is real
    good = corpus.jwk_of(corpus.rsa_key("weak-good"), "good")
    p = JwtPolicy(JwtAuth(issuer=corpus.WEAK_ISSUER, jwks=Jwks(inline=json.dumps({"keys": [case.jwk, good]}))))
    assert p.core.providers[0].key_ids() == ["good"]
    result = p.authenticate({b"authorization": b"Bearer " + case.token}, b"/")
    assert not result.allowed and result.reason == "unknown_key"
