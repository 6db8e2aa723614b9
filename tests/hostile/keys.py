"""Deterministic keys for the hostile corpus: the same label always gives the same key, so the corpus is the
same bytes on every run and machine (ECDSA signs deterministically, RFC 6979; PSS with salt length 0).

RSA primes come from a seeded PRNG and Miller-Rabin; EC and Ed25519 private keys from a hash of the label.
These keys protect nothing: they exist only to sign test tokens.
"""
from __future__ import annotations

import hashlib
import random
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

_SMALL_PRIMES = [p for p in range(3, 2000, 2) if all(p % d for d in range(3, int(p ** 0.5) + 1, 2))]


def _seed(label: str) -> int:
    return int.from_bytes(hashlib.sha256(label.encode()).digest(), "big")


def _is_probable_prime(n: int, rng: random.Random) -> bool:
    if n < 2:
        return False
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for _ in range(24):
        a = rng.randrange(2, n - 2)
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int, e: int, rng: random.Random) -> int:
    while True:
        candidate = rng.getrandbits(bits) | (3 << (bits - 2)) | 1  # top two bits set: p*q has 2*bits bits
        if (candidate - 1) % e and _is_probable_prime(candidate, rng):
            return candidate


@lru_cache(maxsize=None)
def rsa_key(label: str, bits: int = 2048, e: int = 65537) -> rsa.RSAPrivateKey:
    """An RSA key of exactly `bits` bits with public exponent `e` (3 and 65537 both work)."""
    rng = random.Random(_seed(f"rsa/{label}/{bits}/{e}"))
    while True:
        p = _prime(bits // 2, e, rng)
        q = _prime(bits - bits // 2, e, rng)
        if p != q and (p * q).bit_length() == bits:
            break
    phi = (p - 1) * (q - 1)
    d = pow(e, -1, phi)
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q),
        rsa.RSAPublicNumbers(e, p * q))
    return numbers.private_key(unsafe_skip_rsa_key_validation=True)


_CURVES = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}


@lru_cache(maxsize=None)
def ec_key(label: str, crv: str = "P-256") -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(hashlib.sha512(f"ec/{label}/{crv}".encode()).digest(), "big")
    return ec.derive_private_key(scalar % (2 ** 250) + 1, _CURVES[crv])


@lru_cache(maxsize=None)
def ed_key(label: str) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"ed/{label}".encode()).digest())


def hmac_secret(label: str, size: int = 64) -> bytes:
    return hashlib.shake_256(f"hmac/{label}".encode()).digest(size)
