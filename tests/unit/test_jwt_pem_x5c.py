"""Keys as they come (issue 18): PEM public keys and certificates, JWKS entries that carry only x5c."""
from __future__ import annotations

import base64
import datetime
import json
import os
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

sys.path.insert(0, os.path.dirname(__file__))
from vectors import mint  # noqa: E402

from agw.config import ConfigError  # noqa: E402
from agw.config.model import Jwks, JwtAuth  # noqa: E402
from agw.jwt import JwtPolicy, parse_jwks  # noqa: E402
from agw.jwt.keys import JwksError, parse_pem  # noqa: E402


def cert_of(key, signer=None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k")])
    now = datetime.datetime.now(datetime.timezone.utc)
    signer = signer or key
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(signer, None if isinstance(signer, type(mint.ed_key())) else hashes.SHA256()))


def spki(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def ask(p, tok):
    return p.authenticate({b"authorization": b"Bearer " + tok}, b"/")


def test_pem_public_keys_and_certificates_of_every_family(tmp_path):
    pem = spki(mint.rsa_key()) + cert_of(mint.ec_key("P-256")).public_bytes(serialization.Encoding.PEM) \
        + spki(mint.ed_key()) + mint.rsa_key(3072).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    keys = parse_pem(pem)
    assert len(keys) == 4 and all(k.kid is None for k in keys)
    (tmp_path / "k.pem").write_bytes(pem)
    p = JwtPolicy(JwtAuth(issuer=mint.ISSUER, jwks=Jwks(pem="k.pem")), str(tmp_path))
    for alg in ("RS256", "PS256", "ES256", "EdDSA"):
        assert ask(p, mint.token(alg, kid="any-kid")).allowed, alg
    assert ask(p, mint.token("RS256", key=mint.rsa_key(3072), kid="other")).allowed    # the PKCS#1 key
    assert ask(p, mint.token("ES256", kid=None)).allowed
    # A kid-less token with two fitting keys (two RSA keys) is ambiguous, as in a JWKS.
    assert ask(p, mint.token("RS256", kid=None)).reason == "unknown_key"
    assert ask(p, mint.token("ES384", kid="x")).reason == "unknown_key"
    assert p.stats()["providers"][0]["source"].startswith("pem ")


def test_pem_files_with_nothing_usable_are_config_errors(tmp_path):
    with pytest.raises(JwksError, match="no PEM public key"):
        parse_pem(b"hello")
    with pytest.raises(JwksError, match="PRIVATE KEY block is not a public key"):
        parse_pem(mint.rsa_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    with pytest.raises(JwksError, match="below 2048"):
        parse_pem(spki(mint.rsa_key(1024)))
    (tmp_path / "bad.pem").write_bytes(b"nope")
    with pytest.raises(ConfigError) as err:
        JwtPolicy(JwtAuth(issuer=mint.ISSUER, jwks=Jwks(pem="bad.pem")), str(tmp_path))
    assert err.value.problems[0][0] == "jwks.pem"


def x5c_entry(key, kid, **extra):
    der = cert_of(key).public_bytes(serialization.Encoding.DER)
    return {"kty": mint.jwk_of(key)["kty"], "kid": kid, "x5c": [base64.b64encode(der).decode()], **extra}


def test_jwks_entries_with_only_x5c_and_with_both():
    rsa, ec = mint.rsa_key(), mint.ec_key("P-256")
    keys = parse_jwks(json.dumps({"keys": [x5c_entry(rsa, "rsa"), x5c_entry(ec, "p256"),
                                           {**mint.jwk_of(rsa, "both"), **x5c_entry(rsa, "both")}]}))
    assert [k.kid for k in keys] == ["rsa", "p256", "both"]
    p = JwtPolicy(JwtAuth(issuer=mint.ISSUER, jwks=Jwks(inline=json.dumps({"keys": [
        x5c_entry(rsa, "rsa"), x5c_entry(ec, "p256")]}))))
    assert ask(p, mint.token("RS256", kid="rsa")).allowed
    assert ask(p, mint.token("ES256", kid="p256")).allowed


def test_bad_x5c_entries_are_skipped_with_their_reason():
    rsa, ec = mint.rsa_key(), mint.ec_key("P-256")
    with pytest.raises(JwksError) as err:
        parse_jwks(json.dumps({"keys": [
            {**mint.jwk_of(mint.rsa_key(3072), "a"), **x5c_entry(rsa, "a")},
            {**x5c_entry(ec, "b"), "kty": "RSA"},
            {"kty": "RSA", "kid": "c", "x5c": ["not base64!"]},
            x5c_entry(mint.rsa_key(1024), "d"),
        ]}))
    text = str(err.value)
    assert "keys[0] (kid 'a'): x5c[0] and the key's own parameters disagree" in text
    assert "keys[1] (kid 'b'): x5c[0] holds a EC key, not RSA" in text
    assert "keys[2] (kid 'c'): x5c[0] is not a base64 DER certificate" in text
    assert "keys[3] (kid 'd'): RSA modulus of 1024 bits is below 2048" in text
