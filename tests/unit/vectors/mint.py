"""Keys and tokens for the JWT tests: keys made with `cryptography`, tokens signed by hand (any header, any
payload bytes, any signature), so hostile tokens are as easy to make as good ones."""
from __future__ import annotations

import base64
import json
import os
import time
from functools import lru_cache
from typing import Any, Optional

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ISSUER = "https://idp.test"
AUDIENCE = "api"
HERE = os.path.dirname(__file__)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_rfc() -> dict:
    with open(os.path.join(HERE, "rfc.json")) as f:
        return json.load(f)


@lru_cache(maxsize=None)
def _key(kind: str, size: Any, seed: int) -> Any:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=size)
    if kind == "ec":
        return ec.generate_private_key({"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(),
                                        "P-521": ec.SECP521R1()}[size])
    return ed25519.Ed25519PrivateKey.generate()


def rsa_key(bits: int = 2048, seed: int = 0) -> rsa.RSAPrivateKey:
    """The same key for the same (bits, seed) within a test run."""
    return _key("rsa", bits, seed)


def ec_key(crv: str = "P-256", seed: int = 0) -> ec.EllipticCurvePrivateKey:
    return _key("ec", crv, seed)


def ed_key(seed: int = 0) -> ed25519.Ed25519PrivateKey:
    return _key("ed", None, seed)


HMAC_SECRET = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"


def _int(n: int, size: Optional[int] = None) -> str:
    return b64(n.to_bytes(size or (n.bit_length() + 7) // 8, "big"))


def jwk_of(key: Any, kid: Optional[str] = None, **extra: Any) -> dict:
    """Public JWK of a private key (or of the HMAC secret when key is bytes)."""
    if isinstance(key, bytes):
        out = {"kty": "oct", "k": b64(key)}
    elif isinstance(key, rsa.RSAPrivateKey):
        nums = key.public_key().public_numbers()
        out = {"kty": "RSA", "n": _int(nums.n), "e": _int(nums.e)}
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        nums = key.public_key().public_numbers()
        size = (key.curve.key_size + 7) // 8
        crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[key.curve.name]
        out = {"kty": "EC", "crv": crv, "x": _int(nums.x, size), "y": _int(nums.y, size)}
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
        out = {"kty": "OKP", "crv": "Ed25519", "x": b64(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))}
    else:
        raise TypeError(key)
    if kid is not None:
        out["kid"] = kid
    out.update(extra)
    return out


def jwks(*jwks_: dict) -> str:
    return json.dumps({"keys": list(jwks_)})


_HASH = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def sign(alg: str, key: Any, data: bytes) -> bytes:
    if alg.startswith("HS"):
        h = hmac.HMAC(key, _HASH[alg[2:]]())
        h.update(data)
        return h.finalize()
    if alg.startswith("RS"):
        return key.sign(data, padding.PKCS1v15(), _HASH[alg[2:]]())
    if alg.startswith("PS"):
        h = _HASH[alg[2:]]()
        return key.sign(data, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
    if alg.startswith("ES"):
        der = key.sign(data, ec.ECDSA(_HASH[alg[2:]]()))
        r, s = decode_dss_signature(der)
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg == "EdDSA":
        return key.sign(data)
    raise ValueError(alg)


def claims(**over: Any) -> dict:
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": int(time.time()) + 600,
            "iat": int(time.time())}
    for k, v in over.items():
        if v is None:
            base.pop(k, None)
        else:
            base[k] = v
    return base


def token(alg: str = "RS256", key: Any = None, kid: Optional[str] = "k1", payload: Any = None,
          header: Optional[dict] = None, raw_header: Optional[bytes] = None, raw_payload: Optional[bytes] = None,
          signature: Optional[bytes] = None) -> bytes:
    """A compact JWS; pieces can be overridden with raw bytes to make hostile tokens."""
    if key is None:
        key = default_key(alg)
    h = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        h["kid"] = kid
    if header:
        h.update(header)
    hb = raw_header if raw_header is not None else json.dumps(h).encode()
    pb = raw_payload if raw_payload is not None else json.dumps(claims() if payload is None else payload).encode()
    signing_input = f"{b64(hb)}.{b64(pb)}".encode()
    sig = signature if signature is not None else sign(alg, key, signing_input)
    return signing_input + b"." + b64(sig).encode()


def default_key(alg: str) -> Any:
    if alg.startswith("HS"):
        return HMAC_SECRET
    if alg[:2] in ("RS", "PS"):
        return rsa_key()
    if alg == "ES256":
        return ec_key("P-256")
    if alg == "ES384":
        return ec_key("P-384")
    if alg == "ES512":
        return ec_key("P-521")
    return ed_key()


ALL_ALGS = ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
            "ES256", "ES384", "ES512", "EdDSA")


def default_jwks() -> str:
    """One key per family, kids named after the family: rsa, p256, p384, p521, ed, hmac."""
    return jwks(jwk_of(rsa_key(), "rsa"), jwk_of(ec_key("P-256"), "p256"), jwk_of(ec_key("P-384"), "p384"),
                jwk_of(ec_key("P-521"), "p521"), jwk_of(ed_key(), "ed"), jwk_of(HMAC_SECRET, "hmac"))


KID_FOR = {"HS": "hmac", "RS": "rsa", "PS": "rsa", "ES256": "p256", "ES384": "p384", "ES512": "p521",
           "EdDSA": "ed"}


def kid_for(alg: str) -> str:
    return KID_FOR.get(alg) or KID_FOR[alg[:2]]
