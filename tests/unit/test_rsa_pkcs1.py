"""RS256/384/512 are checked by recovering the encoded message and comparing it with our own encoding (RFC 8017
8.2.2). These tests build signatures by hand (raw RSA with the private exponent) over well-formed and malformed
encodings, and require agw's verdict to be the verdict of `cryptography`'s own PKCS#1 v1.5 verify on every one."""
from __future__ import annotations

import hashlib
import math
import os
import random
import sys

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vectors import mint  # noqa: E402

from agw._fastjwt import Core, Provider  # noqa: E402
from agw.jwt.errors import results_for_mode  # noqa: E402
from agw.jwt.keys import parse_jwks  # noqa: E402

SIGNING_INPUT = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9"
HASHES = {"RS256": (hashlib.sha256, hashes.SHA256(), "3031300d060960864801650304020105000420"),
          "RS384": (hashlib.sha384, hashes.SHA384(), "3041300d060960864801650304020205000430"),
          "RS512": (hashlib.sha512, hashes.SHA512(), "3051300d060960864801650304020305000440")}
# The same DigestInfo without the NULL parameters (05 00): some old signers wrote it; OpenSSL refuses it.
NO_NULL_PARAMS = {"RS256": "302f300b0609608648016503040201" "0420"}


def digest_info(alg: str, data: bytes = SIGNING_INPUT, prefix: str | None = None) -> bytes:
    sha, _, der = HASHES[alg]
    return bytes.fromhex(prefix or der) + sha(data).digest()


def encoded_message(k: int, t: bytes, block_type: bytes = b"\x01", fill: int = 0xFF,
                    ps_len: int | None = None) -> bytes:
    ps_len = k - 3 - len(t) if ps_len is None else ps_len
    return b"\x00" + block_type + bytes([fill]) * ps_len + b"\x00" + t


def modulus_bytes(key) -> int:
    """k of RFC 8017: the modulus' length in bytes, which every signature must have."""
    return (key.key_size + 7) // 8


def raw_sign(key, em: bytes) -> bytes:
    numbers = key.private_numbers()
    return pow(int.from_bytes(em, "big"), numbers.d, numbers.public_numbers.n).to_bytes(modulus_bytes(key), "big")


def agw_and_reference(key, alg: str, sig: bytes, data: bytes = SIGNING_INPUT) -> tuple[bool, bool]:
    (agw_key,) = parse_jwks(mint.jwks(mint.jwk_of(key, "k")))
    agw = agw_key.verify_signature(alg, data, sig)
    try:
        key.public_key().verify(sig, data, padding.PKCS1v15(), HASHES[alg][1])
        reference = True
    except InvalidSignature:
        reference = False
    return agw, reference


@pytest.mark.parametrize("alg", sorted(HASHES))
@pytest.mark.parametrize("bits", [2048, 3072])
def test_hand_made_pkcs1_signature_is_accepted_like_openssls_own(alg, bits):
    key = mint.rsa_key(bits)
    sig = raw_sign(key, encoded_message(modulus_bytes(key), digest_info(alg)))
    assert sig == key.sign(SIGNING_INPUT, padding.PKCS1v15(), HASHES[alg][1])  # PKCS#1 v1.5 is deterministic
    assert agw_and_reference(key, alg, sig) == (True, True)


MALFORMED = {
    "digest of other data": lambda k, alg: encoded_message(k, digest_info(alg, b"other")),
    "DigestInfo of another hash": lambda k, alg: encoded_message(
        k, digest_info("RS384" if alg != "RS384" else "RS256")),
    "block type 0": lambda k, alg: encoded_message(k, digest_info(alg), block_type=b"\x00"),
    "block type 2": lambda k, alg: encoded_message(k, digest_info(alg), block_type=b"\x02"),
    "padding not all FF": lambda k, alg: encoded_message(k, digest_info(alg), fill=0xFE),
    # Padding under 8 bytes leaves room for more than a DigestInfo with keys of 2048 bits and up, so this one is
    # also wrong in what follows the separator; it cannot be told apart from that case.
    "padding shorter than 8 bytes": lambda k, alg: encoded_message(
        k, digest_info(alg) + b"\x00" * (k - 3 - 7 - len(digest_info(alg))), ps_len=7),
    "trailing byte after the digest": lambda k, alg: encoded_message(k, digest_info(alg) + b"\x00"),
    "digest truncated": lambda k, alg: encoded_message(k, digest_info(alg)[:-1]),
    "no zero separator": lambda k, alg: b"\x00\x01" + b"\xff" * (k - 2 - len(digest_info(alg)))
    + digest_info(alg),
}


@pytest.mark.parametrize("alg", sorted(HASHES))
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_encodings_are_refused_like_openssl_refuses_them(alg, case):
    key = mint.rsa_key()
    em = MALFORMED[case](modulus_bytes(key), alg)
    assert len(em) == modulus_bytes(key)
    assert agw_and_reference(key, alg, raw_sign(key, em)) == (False, False)


def test_digest_info_without_null_parameters_is_refused_like_openssl():
    key = mint.rsa_key()
    em = encoded_message(modulus_bytes(key), digest_info("RS256", prefix=NO_NULL_PARAMS["RS256"]))
    assert agw_and_reference(key, "RS256", raw_sign(key, em)) == (False, False)


def test_signature_of_the_wrong_length_is_refused_even_when_its_value_is_right():
    """A signature whose first byte is zero, sent without it: the same integer, so OpenSSL's recover would
    accept it, but RFC 8017 8.2.2 step 1 (and OpenSSL's verify) require exactly the modulus' length."""
    key = mint.rsa_key()
    for i in range(4096):
        data = SIGNING_INPUT + str(i).encode()
        sig = mint.sign("RS256", key, data)
        if sig[0] == 0:
            break
    else:  # pragma: no cover - one signature in 256 starts with a zero byte
        pytest.fail("no signature with a leading zero byte in 4096 tries")
    assert agw_and_reference(key, "RS256", sig, data) == (True, True)
    assert agw_and_reference(key, "RS256", sig[1:], data) == (False, False)
    assert agw_and_reference(key, "RS256", b"\x00" + sig, data) == (False, False)


def test_signature_not_below_the_modulus_is_refused():
    key = mint.rsa_key()
    n = key.public_key().public_numbers().n
    k = modulus_bytes(key)
    values = [value for value in (n - 1, n, n + 1, 2 ** (8 * k) - 1) if value < 2 ** (8 * k)]
    assert len(values) >= 3
    for value in values:
        assert agw_and_reference(key, "RS256", value.to_bytes(k, "big")) == (False, False)


_SMALL_PRIMES_PRODUCT = math.prod(q for q in range(3, 2000, 2) if all(q % d for d in range(3, int(q ** 0.5) + 1, 2)))


def _probable_prime(bits: int, rng: random.Random) -> int:
    """The first Fermat-probable prime from a random odd start with its top two bits set (so that the product of
    two has exactly the sum of their lengths)."""
    candidate = rng.getrandbits(bits) | (3 << (bits - 2)) | 1
    while True:
        if (math.gcd(candidate, _SMALL_PRIMES_PRODUCT) == 1 and candidate % 65537 != 1
                and all(pow(a, candidate - 1, candidate) == 1 for a in (2, 3, 5, 7))):
            return candidate
        candidate += 2


def rsa_key_of_exactly(bits: int, seed: int = 1):
    """`generate_private_key` rounds odd sizes down (2049 -> 2048); a modulus whose length in bits is not a
    multiple of 8 is built from primes here (Fermat-probable primes suffice for a test key)."""
    rng = random.Random(seed)
    p, q = _probable_prime(bits // 2, rng), _probable_prime(bits - bits // 2, rng)
    assert p != q and (p * q).bit_length() == bits
    d = pow(65537, -1, (p - 1) * (q - 1))
    public = rsa.RSAPublicNumbers(65537, p * q)
    return rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q),
                                 rsa.rsa_crt_iqmp(p, q), public).private_key()


@pytest.mark.parametrize("bits", [2049, 2055, 3073])
def test_moduli_of_any_bit_length_take_signatures_of_their_byte_length(bits):
    key = rsa_key_of_exactly(bits)
    assert key.key_size == bits
    sig = mint.sign("RS256", key, SIGNING_INPUT)
    assert len(sig) == modulus_bytes(key)
    assert agw_and_reference(key, "RS256", sig) == (True, True)
    assert agw_and_reference(key, "RS256", b"\x00" + sig) == (False, False)
    assert agw_and_reference(key, "RS256", sig[:-1]) == (False, False)


def test_a_key_of_another_size_under_the_same_kid_does_not_stop_the_search():
    """Two RSA keys share a kid (a rotation in progress); the token is signed by the second, larger one. The first
    key refuses the signature on its length alone, and the second must still be tried."""
    small, large = mint.rsa_key(2048), mint.rsa_key(3072)
    provider = Provider(mint.ISSUER, [mint.AUDIENCE], 1)
    provider.set_keys(parse_jwks(mint.jwks(mint.jwk_of(small, "shared"), mint.jwk_of(large, "shared"))))
    core = Core([provider], results_for_mode("strict"))
    assert core.verify_token(mint.token("RS256", key=large, kid="shared")).allowed
    assert core.verify_token(mint.token("RS256", key=small, kid="shared")).allowed
    other = mint.rsa_key(3072, seed=1)
    assert core.verify_token(mint.token("RS256", key=other, kid="shared")).reason == "invalid_signature"


@pytest.mark.parametrize("alg", sorted(HASHES))
def test_every_single_bit_flip_in_a_signature_is_refused(alg):
    key = mint.rsa_key()
    sig = mint.sign(alg, key, SIGNING_INPUT)
    (agw_key,) = parse_jwks(mint.jwks(mint.jwk_of(key, "k")))
    assert agw_key.verify_signature(alg, SIGNING_INPUT, sig)
    for bit in range(0, len(sig) * 8, 7):
        flipped = bytearray(sig)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert not agw_key.verify_signature(alg, SIGNING_INPUT, bytes(flipped)), bit
