"""What both fuzzers drive: one JwtPolicy over the hostile corpus's keys, and a check of one input against it.

`exercise(op, data)` runs one operation of the Cython core on arbitrary bytes and asserts the contract:
base64url decoding raises nothing but ValueError and round-trips when it succeeds; token verification and
request authentication never raise and return an AuthResult, allowing only tokens that an independent check
finds signed by a configured key.
"""
from __future__ import annotations

import base64
import json
from functools import lru_cache

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from agw._fastjwt import AuthResult, b64url_decode, b64url_encode, take_cookie, take_query_param
from agw.config.model import Jwks, JwtAuth, Location, NamedLocation, Provider
from agw.jwt import JwtPolicy

from tests.hostile import corpus
from tests.hostile.keys import ec_key, ed_key, hmac_secret, rsa_key

OPERATIONS = ("b64url", "verify_token", "authorization", "query", "cookie", "mutate_valid")


def build_policies() -> dict[str, JwtPolicy]:
    providers = [Provider(issuer=p["issuer"], audiences=p["audiences"], jwks=Jwks(inline=p["jwks"]["inline"]))
                 for p in corpus.policy()["providers"]]
    return {
        "header": JwtPolicy(JwtAuth(mode="strict", providers=providers)),
        "query": JwtPolicy(JwtAuth(mode="strict", providers=providers,
                                   location=Location(query_parameter=NamedLocation(name="access_token")))),
        "cookie": JwtPolicy(JwtAuth(mode="strict", providers=providers,
                                    location=Location(cookie=NamedLocation(name="jwt")))),
    }


_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def _b64decode(segment: bytes) -> bytes:
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))


@lru_cache(maxsize=None)
def _configured_private_keys() -> tuple:
    return (rsa_key("main"), rsa_key("other"), rsa_key("weak-good"), ec_key("main", "P-256"),
            ec_key("main", "P-384"), ec_key("main", "P-521"), ec_key("other", "P-256"), ed_key("main"),
            hmac_secret("main"))


def signed_by_a_configured_key(token: bytes) -> bool:
    """The oracle for "allowed": an independent check (plain `cryptography`, not agw's code) that the token's
    signature was made by one of the keys agw is configured with. An allowed token failing it is a forgery."""
    try:
        h, p, s = token.split(b".")
        alg = json.loads(_b64decode(h))["alg"]
        sig, signing_input = _b64decode(s), h + b"." + p
    except Exception:
        return False
    for key in _configured_private_keys():
        try:
            if alg.startswith("HS") and isinstance(key, bytes):
                mac = hmac.HMAC(key, _HASHES[alg[2:]]())
                mac.update(signing_input)
                mac.verify(sig)
            elif alg[:2] in ("RS", "PS") and isinstance(key, rsa.RSAPrivateKey):
                h_ = _HASHES[alg[2:]]()
                pad = padding.PKCS1v15() if alg[:2] == "RS" else padding.PSS(padding.MGF1(h_), h_.digest_size)
                key.public_key().verify(sig, signing_input, pad, h_)
            elif alg.startswith("ES") and isinstance(key, ec.EllipticCurvePrivateKey):
                half = len(sig) // 2
                der = encode_dss_signature(int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big"))
                key.public_key().verify(der, signing_input, ec.ECDSA(_HASHES[alg[2:]]()))
            elif alg == "EdDSA" and isinstance(key, ed25519.Ed25519PrivateKey):
                key.public_key().verify(sig, signing_input)
            else:
                continue
            return True
        except Exception:
            continue
    return False


class Checker:
    def __init__(self) -> None:
        self.policies = build_policies()
        self.core = self.policies["header"].core
        self.valid_list = sorted({v[len(b"Bearer "):] for _, lines in corpus.valid_requests() for n, v in lines
                                  if v[:7] == b"Bearer "})

    def _accepts(self, token: bytes, result: AuthResult) -> None:
        assert type(result) is AuthResult, result
        if result.allowed:
            assert signed_by_a_configured_key(token.strip(b" \t")), token

    def exercise(self, op: str, data: bytes) -> None:
        if op == "b64url":
            try:
                decoded = b64url_decode(data)
            except ValueError:
                return
            # Strict decoding: only the canonical encoding of some bytes is accepted.
            assert b64url_encode(decoded) == data
        elif op == "verify_token":
            self._accepts(data, self.core.verify_token(data, 0.0, False))
        elif op == "authorization":
            result = self.policies["header"].authenticate({b"authorization": data}, b"/")
            assert type(result) is AuthResult
            if result.allowed:
                assert data[:7].lower() == b"bearer " and signed_by_a_configured_key(data[7:].strip(b" \t"))
        elif op == "query":
            try:
                take_query_param(data, b"access_token")
            except ValueError:   # the parameter twice with two values, or beside a "#": refused, not a crash
                pass
            result = self.policies["query"].authenticate({}, b"/p?" + data)
            assert type(result) is AuthResult
        elif op == "cookie":
            take_cookie(data, b"jwt")
            result = self.policies["cookie"].authenticate({b"cookie": data}, b"/")
            assert type(result) is AuthResult
        elif op == "mutate_valid":
            # data: index, replacement bytes -> one valid token with a slice replaced
            if len(data) < 3:
                return
            token = self.valid_list[data[0] % len(self.valid_list)]
            at = int.from_bytes(data[1:3], "big") % (len(token) + 1)
            mutated = token[:at] + data[3:] + token[at + len(data[3:]):]
            self._accepts(mutated, self.core.verify_token(mutated, 0.0, False))
        else:
            raise ValueError(op)
