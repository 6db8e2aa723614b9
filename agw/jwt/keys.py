"""JWK -> ready verifier keys (`agw._fastjwt.Key`), and the JWKS document parser.

Each key is built once per key set: a `cryptography` public key object (or an HMAC secret) plus the set of
algorithms it may verify. The key decides the algorithm family: RSA -> RS*/PS*, EC -> ES256/ES384/ES512 by
curve, OKP Ed25519 -> EdDSA, oct -> HS* (only where the secret is at least as long as the hash). An explicit
JWK `alg` narrows that to the one algorithm. Unusable keys are skipped with a reason; a set with no usable key
is an error that lists why. Weak keys are unusable: short RSA moduli, exponents other than 65537, short HMAC
secrets, and Ed25519 keys that are not canonical encodings of a point or are of small order (OpenSSL verifies
against them as given, and with a small-order key R = identity, S = 0 verifies for many or all messages).
"""
from __future__ import annotations

import base64
import binascii
import logging
import re
from typing import Optional

import msgspec
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .._fastjwt import ALG_BITS, ALG_KTY, EC_CURVES, Key, b64url_decode

log = logging.getLogger("agw.jwt")

MIN_RSA_BITS = 2048
_RSA_ALGS = tuple(alg for alg, kty in ALG_KTY.items() if kty == "RSA")   # the core's algorithm table decides
_HS_MIN_LEN = {"HS256": 32, "HS384": 48, "HS512": 64}
_EC_CURVE_OBJ = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}


# edwards25519 (RFC 8032 5.1): p, d, and sqrt(-1) mod p.
_ED_P = 2**255 - 19
_ED_D = -121665 * pow(121666, -1, _ED_P) % _ED_P
_ED_SQRT_M1 = pow(2, (_ED_P - 1) // 4, _ED_P)


def _ed25519_point(encoded: bytes) -> tuple[int, int]:
    """(x, y) of a 32-byte Ed25519 public key, decoded as RFC 8032 5.1.3 says; ValueError when it is not the
    canonical encoding of a curve point."""
    p = _ED_P
    y = int.from_bytes(encoded, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= p:
        raise ValueError("Ed25519 key is not a canonical point encoding")
    u, v = (y * y - 1) % p, (_ED_D * y * y + 1) % p
    x = u * pow(v, 3, p) * pow(u * pow(v, 7, p), (p - 5) // 8, p) % p
    if v * x * x % p == -u % p:
        x = x * _ED_SQRT_M1 % p
    elif v * x * x % p != u:
        raise ValueError("Ed25519 key is not a point on the curve")
    if x == 0 and sign:
        raise ValueError("Ed25519 key is not a canonical point encoding")
    return (p - x if x & 1 != sign else x), y


def _ed25519_double(point: tuple[int, int]) -> tuple[int, int]:
    # The complete twisted Edwards addition law (a = -1) with both operands equal.
    p = _ED_P
    x, y = point
    t = _ED_D * x * x * y * y % p
    return 2 * x * y * pow(1 + t, -1, p) % p, (y * y + x * x) * pow(1 - t, -1, p) % p


def _check_ed25519(x: bytes) -> None:
    """Refuse what no honest key is: a non-canonical encoding, or a point of small order (8 * A = identity)."""
    point = _ed25519_point(x)
    for _ in range(3):
        point = _ed25519_double(point)
    if point == (0, 1):
        raise ValueError("Ed25519 key of small order (it would verify forged signatures)")


class JwksError(ValueError):
    """A key set that cannot be used at all (not JSON, no `keys`, or no usable key)."""


class _Doc(msgspec.Struct):
    # Not forbid_unknown_fields: a JWKS is not our config and real ones carry extra members.
    keys: list[msgspec.Raw]


class _Jwk(msgspec.Struct, omit_defaults=True):
    kty: str
    kid: Optional[str] = None
    use: Optional[str] = None
    alg: Optional[str] = None
    key_ops: Optional[list[str]] = None
    crv: Optional[str] = None
    n: Optional[str] = None
    e: Optional[str] = None
    x: Optional[str] = None
    y: Optional[str] = None
    k: Optional[str] = None
    x5c: Optional[list[str]] = None


_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_of_public(pub, kid: Optional[str] = None, alg: Optional[str] = None) -> _Jwk:
    """The JWK of a `cryptography` public key (RSA, EC on P-256/384/521, Ed25519), so that a PEM key or an
    x5c certificate meets the same checks as a JWK."""
    if isinstance(pub, rsa.RSAPublicKey):
        nums = pub.public_numbers()
        return _Jwk(kty="RSA", kid=kid, alg=alg, n=_b64url(nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")),
                    e=_b64url(nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big")))
    if isinstance(pub, ec.EllipticCurvePublicKey):
        crv = _CURVE_NAMES.get(pub.curve.name)
        if crv is None:
            raise ValueError(f"unsupported EC curve {pub.curve.name!r}")
        coord = EC_CURVES[crv][0]
        nums = pub.public_numbers()
        return _Jwk(kty="EC", kid=kid, alg=alg, crv=crv, x=_b64url(nums.x.to_bytes(coord, "big")),
                    y=_b64url(nums.y.to_bytes(coord, "big")))
    if isinstance(pub, ed25519.Ed25519PublicKey):
        from cryptography.hazmat.primitives import serialization
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return _Jwk(kty="OKP", kid=kid, alg=alg, crv="Ed25519", x=_b64url(raw))
    raise ValueError(f"unsupported key type {type(pub).__name__}")


def _from_x5c(jwk: _Jwk) -> _Jwk:
    """A JWK that carries its key only in `x5c` (RFC 7517 4.7: the first certificate's key is the key), with the
    key read from it; with both, they must be the same key."""
    from cryptography import x509
    if not jwk.x5c or not isinstance(jwk.x5c[0], str):
        raise ValueError("x5c must be a list of base64 certificates")
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode(jwk.x5c[0], validate=True))
    except (ValueError, TypeError, binascii.Error):
        raise ValueError("x5c[0] is not a base64 DER certificate") from None
    from_cert = jwk_of_public(cert.public_key(), jwk.kid, jwk.alg)
    if from_cert.kty != jwk.kty:
        raise ValueError(f"x5c[0] holds a {from_cert.kty} key, not {jwk.kty}")
    given = [getattr(jwk, f) for f in ("n", "e", "crv", "x", "y")]
    if any(v is not None for v in given):
        if given != [getattr(from_cert, f) for f in ("n", "e", "crv", "x", "y")]:
            raise ValueError("x5c[0] and the key's own parameters disagree")
        return jwk
    return msgspec.structs.replace(jwk, n=from_cert.n, e=from_cert.e, crv=from_cert.crv, x=from_cert.x,
                                   y=from_cert.y)


def parse_pem(data: bytes, *, source: str = "") -> list[Key]:
    """Keys of a PEM file: public keys (SPKI "PUBLIC KEY", PKCS#1 "RSA PUBLIC KEY") and certificates (their
    key). Kid-less: they verify tokens whatever kid those name. Raises JwksError when no usable key is found."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    blocks = re.findall(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", data, re.S)
    keys: list[Key] = []
    problems: list[str] = []
    for i, m in enumerate(re.finditer(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", data, re.S)):
        kind = m.group(1).decode()
        try:
            if kind == "CERTIFICATE":
                pub = x509.load_pem_x509_certificate(m.group(0)).public_key()
            elif kind in ("PUBLIC KEY", "RSA PUBLIC KEY"):
                pub = serialization.load_pem_public_key(m.group(0))
            else:
                raise ValueError(f"a {kind} block is not a public key or certificate")
            keys.append(build_key(jwk_of_public(pub)))
        except ValueError as err:
            problems.append(f"block {i} ({kind}): {err}")
    for p in problems:
        log.warning("pem %s: skipping %s", source or "-", p)
    if not keys:
        raise JwksError("no usable key: " + ("; ".join(problems) if problems else
                                            f"no PEM public key or certificate ({len(blocks)} blocks)"))
    return keys


def _b64(value: Optional[str], name: str) -> bytes:
    if value is None:
        raise ValueError(f"missing {name!r}")
    try:
        return b64url_decode(value)
    except ValueError:
        raise ValueError(f"{name!r} is not base64url") from None


def _narrow(allowed: tuple[str, ...], alg: Optional[str], kty: str) -> tuple[str, ...]:
    if alg is None:
        return allowed
    if alg not in allowed:
        raise ValueError(f"alg {alg!r} does not fit kty {kty!r}")
    return (alg,)


def build_key(jwk: _Jwk) -> Key:
    """One verifier key; raises ValueError naming why the JWK is unusable."""
    if jwk.use is not None and jwk.use != "sig":
        raise ValueError(f"use {jwk.use!r} is not sig")
    if jwk.key_ops is not None and "verify" not in jwk.key_ops:
        raise ValueError("key_ops lacks verify")
    if jwk.x5c is not None and jwk.kty != "oct":
        jwk = _from_x5c(jwk)
    kty = jwk.kty
    if kty == "RSA":
        n = int.from_bytes(_b64(jwk.n, "n"), "big")
        e = int.from_bytes(_b64(jwk.e, "e"), "big")
        if n.bit_length() < MIN_RSA_BITS:
            raise ValueError(f"RSA modulus of {n.bit_length()} bits is below {MIN_RSA_BITS}")
        if e != 65537:
            raise ValueError(f"RSA exponent {e} is not 65537")
        pub = rsa.RSAPublicNumbers(e, n).public_key()
        algs = _narrow(_RSA_ALGS, jwk.alg, kty)
        identity = ("RSA", jwk.kid, n, e, algs)
        return Key(jwk.kid, _bits(algs), pub, identity, modulus_len=(n.bit_length() + 7) // 8)
    if kty == "EC":
        if jwk.crv not in EC_CURVES:
            raise ValueError(f"unsupported EC curve {jwk.crv!r}")
        coord, order, alg = EC_CURVES[jwk.crv]
        x, y = _b64(jwk.x, "x"), _b64(jwk.y, "y")
        if len(x) != coord or len(y) != coord:
            raise ValueError(f"EC coordinates must be {coord} bytes for {jwk.crv}")
        try:
            pub = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                                _EC_CURVE_OBJ[jwk.crv]).public_key()
        except ValueError:
            raise ValueError(f"EC point is not on {jwk.crv}") from None
        algs = _narrow((alg,), jwk.alg, kty)
        return Key(jwk.kid, _bits(algs), pub, ("EC", jwk.kid, jwk.crv, x, y, algs), coord, order)
    if kty == "OKP":
        if jwk.crv != "Ed25519":
            raise ValueError(f"unsupported OKP curve {jwk.crv!r}")
        x = _b64(jwk.x, "x")
        if len(x) != 32:
            raise ValueError("Ed25519 key must be 32 bytes")
        _check_ed25519(x)
        pub = ed25519.Ed25519PublicKey.from_public_bytes(x)
        algs = _narrow(("EdDSA",), jwk.alg, kty)
        return Key(jwk.kid, _bits(algs), pub, ("OKP", jwk.kid, x, algs))
    if kty == "oct":
        secret = _b64(jwk.k, "k")
        algs = _narrow(tuple(_HS_MIN_LEN), jwk.alg, kty)
        algs = tuple(a for a in algs if len(secret) >= _HS_MIN_LEN[a])
        if not algs:
            raise ValueError(f"HMAC secret of {len(secret)} bytes is too short")
        import hashlib   # only for HMAC keys: hashlib loads OpenSSL's digests (~0.8 MB of a worker's memory)
        identity = ("oct", jwk.kid, hashlib.sha256(secret).digest(), algs)
        return Key(jwk.kid, _bits(algs), secret, identity)
    raise ValueError(f"unsupported kty {kty!r}")


def _bits(algs: tuple[str, ...]) -> int:
    out = 0
    for a in algs:
        out |= ALG_BITS[a]
    return out


def parse_jwks(data: bytes | str, *, allow_hmac: bool = True, source: str = "") -> list[Key]:
    """Usable keys of a JWKS document; skips (and logs) bad keys, raises JwksError when none remain."""
    if isinstance(data, str):
        data = data.encode()
    try:
        doc = msgspec.json.decode(data, type=_Doc)
    except (msgspec.ValidationError, msgspec.DecodeError) as err:
        raise JwksError(f"not a JWKS document: {err}") from None
    except RecursionError:  # msgspec's answer to very deep nesting: a bad document, not a crash
        raise JwksError("not a JWKS document: nested too deeply") from None
    keys: list[Key] = []
    problems: list[str] = []
    for i, raw in enumerate(doc.keys):
        label = f"keys[{i}]"
        try:
            jwk = msgspec.json.decode(raw, type=_Jwk)
            label = f"keys[{i}] (kid {jwk.kid!r})" if jwk.kid is not None else label
            if jwk.kty == "oct" and not allow_hmac:
                raise ValueError("oct (HMAC) keys are accepted only in inline or file JWKS")
            keys.append(build_key(jwk))
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as err:
            problems.append(f"{label}: {err}")
        except RecursionError:
            problems.append(f"{label}: nested too deeply")
    for p in problems:
        log.warning("jwks %s: skipping key %s", source or "-", p)
    if not keys:
        why = "; ".join(problems) if problems else "the key set is empty"
        raise JwksError(f"no usable key: {why}")
    return keys
