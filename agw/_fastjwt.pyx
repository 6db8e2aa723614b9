# cython: language_level=3
"""agw's JWT verification core.

Everything a request needs is here, in C-level code where it matters: finding the token, the verified-token
cache, splitting and strict base64url decoding, header and claim checks, key lookup by (issuer, kid) and the
signature check through `cryptography` key objects built once per JWKS. It never touches asyncio: when keys
must be fetched it returns a `Pending` and the Python layer (agw/jwt/policy.py) does the waiting.

Reasons are small ints (the `Reason` enum in _fastjwt.pxd); `REASONS` maps them to the stable codes. The
AuthResult objects for each reason are built by the policy (agw/jwt/errors.py has the text) and handed in.
"""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_GetItemWithError
from cpython.long cimport PyLong_FromUnsignedLongLong
from cpython.object cimport PyObject
from libc.stdint cimport uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memchr, memcmp, memcpy
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec


cdef extern from "Python.h":
    void PyObject_GC_UnTrack(void* op)
    object PyUnicode_DecodeASCII(const char* s, Py_ssize_t size, const char* errors)

import os as _os
from collections import OrderedDict

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding

cdef object _loads = orjson.loads
cdef object _dumps = orjson.dumps
# hmac and hashlib (OpenSSL's digests: ~0.8 MB) and cryptography's ECDSA objects (its OpenSSL backend: ~0.7 MB)
# are loaded on the first HS* / RS* / ES* verification: a worker that never sees those algorithms never pays.
cdef object _hmac_digest = None
cdef object _compare_digest = None
cdef object _InvalidSignature = InvalidSignature

# Stable reason codes, indexed by the Reason enum.
REASONS = ("missing", "malformed", "unsupported_algorithm", "expired", "not_yet_valid", "unknown_issuer",
           "audience_not_allowed", "missing_claim", "unknown_key", "invalid_signature", "keys_unavailable")

# --- algorithms -------------------------------------------------------------------------------------------

ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
              "ES256", "ES384", "ES512", "EdDSA")
cdef dict _ALG_IDS = {name: i for i, name in enumerate(ALGORITHMS)}
ALG_BITS = {name: 1 << i for i, name in enumerate(ALGORITHMS)}
cdef enum:
    A_HS256 = 0
    A_HS384 = 1
    A_HS512 = 2
    A_RS256 = 3
    A_RS384 = 4
    A_RS512 = 5
    A_PS256 = 6
    A_PS384 = 7
    A_PS512 = 8
    A_ES256 = 9
    A_ES384 = 10
    A_ES512 = 11
    A_EDDSA = 12

cdef tuple _HASHES = (hashes.SHA256(), hashes.SHA384(), hashes.SHA512())
cdef tuple _HMAC_NAMES = ("sha256", "sha384", "sha512")
cdef object _PKCS1 = padding.PKCS1v15()
# RS* is checked the way RFC 8017 8.2.2 describes: recover the encoded message from the signature (OpenSSL checks
# the 00 01 FF..FF 00 padding), then compare it whole with the DER DigestInfo of our own digest of the signing
# input. OpenSSL's own verify compares the same bytes (DigestInfo with NULL parameters only); doing the digest
# with hashlib saves cryptography's per-call hash setup (~10% of an RS256 check).
cdef tuple _DIGEST_INFO = (bytes.fromhex("3031300d060960864801650304020105000420"),
                           bytes.fromhex("3041300d060960864801650304020205000430"),
                           bytes.fromhex("3051300d060960864801650304020305000440"))
cdef tuple _SHA2 = None
cdef tuple _PSS = tuple(padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size) for h in _HASHES)
cdef tuple _ECDSA = None


cdef int _load_digests() except -1:
    global _hmac_digest, _compare_digest, _SHA2
    import hashlib
    import hmac
    _hmac_digest = hmac.digest
    _compare_digest = hmac.compare_digest
    _SHA2 = (hashlib.sha256, hashlib.sha384, hashlib.sha512)
    return 0


cdef tuple _ecdsa_params():
    global _ECDSA
    if _ECDSA is None:
        _ECDSA = tuple(ec.ECDSA(h) for h in _HASHES)
    return _ECDSA

# Group orders, big-endian, padded to the coordinate size: ECDSA r and s must lie in [1, n-1].
EC_CURVES = {
    # crv: (coordinate bytes, order, alg)
    "P-256": (32, 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551, "ES256"),
    "P-384": (48, 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
              "ES384"),
    "P-521": (66, int("01FF" + "FFFFFFFF" * 7 + "FFFFFFFA"
                      "51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409", 16), "ES512"),
}

# Required-claim bits (jwtValidationOptions.requiredClaims). CLAIM_BITS is the one list of claims agw can
# require: config validation accepts exactly its names, and the core sets a bit for each one it finds.
cdef enum:
    C_EXP = 1
    C_NBF = 2
    C_AUD = 4
    C_ISS = 8
    C_SUB = 16
    C_IAT = 32
CLAIM_BITS = {"exp": C_EXP, "nbf": C_NBF, "aud": C_AUD, "iss": C_ISS, "sub": C_SUB, "iat": C_IAT}

# --- time -------------------------------------------------------------------------------------------------

cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


def now() -> float:
    """The wall clock the core uses (seconds since the epoch)."""
    return _now()


# --- the verified-token cache key ---------------------------------------------------------------------------

# Slots of the cache's admission filter (8 bytes each; see Core._cache_put).
cdef enum:
    SEEN_SLOTS = 1 << 16

cdef uint64_t _KEY_SEED = <uint64_t>int.from_bytes(_os.urandom(8), "little")


cdef inline uint64_t _token_key(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """The cache key of a token: its length and last 32 bytes, mixed with a per-process seed.

    A compact JWS ends with its signature, whose bytes are uniformly spread for every algorithm we accept, so
    the tail spreads verified tokens evenly (only verified tokens are ever inserted) without hashing the whole
    ~1.3 KB token on every request as a bytes key would. A hit compares the whole token, so a shared key can
    only cost a miss, never a wrong result.
    """
    cdef uint64_t h = _KEY_SEED ^ (<uint64_t>n * <uint64_t>0x9E3779B97F4A7C15)
    cdef uint64_t w
    cdef Py_ssize_t i = n - 32 if n > 32 else 0
    while i + 8 <= n:
        memcpy(&w, p + i, 8)
        h = (h ^ w) * <uint64_t>0xFF51AFD7ED558CCD
        h ^= h >> 33
        i += 8
    while i < n:
        h = (h ^ p[i]) * <uint64_t>0x100000001B3
        i += 1
    h ^= h >> 29
    return h

# --- strict base64url ---------------------------------------------------------------------------------------

cdef signed char _B64[256]
# The 6-bit value of each character already shifted to its place in a 4-character group; _B64_BAD if invalid.
cdef unsigned int _B64_0[256]
cdef unsigned int _B64_1[256]
cdef unsigned int _B64_2[256]
cdef unsigned int _B64_3[256]
cdef unsigned int _B64_BAD = 0x80000000u


cdef void _init_b64() noexcept:
    cdef int i
    cdef bytes alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i in range(256):
        _B64[i] = -1
    for i in range(64):
        _B64[<unsigned char>alphabet[i]] = i
    for i in range(256):
        if _B64[i] < 0:
            _B64_0[i] = _B64_1[i] = _B64_2[i] = _B64_3[i] = _B64_BAD
        else:
            _B64_0[i] = (<unsigned int>_B64[i]) << 18
            _B64_1[i] = (<unsigned int>_B64[i]) << 12
            _B64_2[i] = (<unsigned int>_B64[i]) << 6
            _B64_3[i] = <unsigned int>_B64[i]


_init_b64()


cdef object _b64decode(const unsigned char* s, Py_ssize_t n):
    """Decode unpadded base64url; None for padding, non-alphabet bytes or non-canonical trailing bits."""
    cdef Py_ssize_t rem = n & 3
    if rem == 1:
        return None
    cdef Py_ssize_t full = n - rem
    cdef Py_ssize_t out_len = (full >> 2) * 3 + (rem - 1 if rem else 0)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, out_len)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    cdef Py_ssize_t i = 0, j = 0
    cdef int a, b, c, d
    cdef unsigned int v, seen = 0
    while i < full:
        # Four table reads give the 24 bits of three bytes at once; a bad character sets bit 31, collected
        # in `seen` and checked once after the loop.
        v = _B64_0[s[i]] | _B64_1[s[i + 1]] | _B64_2[s[i + 2]] | _B64_3[s[i + 3]]
        seen |= v
        o[j] = <unsigned char>(v >> 16)
        o[j + 1] = <unsigned char>(v >> 8)
        o[j + 2] = <unsigned char>v
        i += 4
        j += 3
    if seen & _B64_BAD:
        return None
    if rem == 2:
        a = _B64[s[i]]
        b = _B64[s[i + 1]]
        if (a | b) < 0 or (b & 15):
            return None
        o[j] = <unsigned char>((a << 2) | (b >> 4))
    elif rem == 3:
        a = _B64[s[i]]
        b = _B64[s[i + 1]]
        c = _B64[s[i + 2]]
        if (a | b | c) < 0 or (c & 3):
            return None
        o[j] = <unsigned char>((a << 2) | (b >> 4))
        o[j + 1] = <unsigned char>(((b & 15) << 4) | (c >> 2))
    return out


def b64url_decode(data) -> bytes:
    """Strict base64url decoding (no padding, canonical); raises ValueError on anything else."""
    cdef bytes raw = data.encode("ascii") if isinstance(data, str) else bytes(data)
    out = _b64decode(<const unsigned char*>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))
    if out is None:
        raise ValueError("invalid base64url")
    return out


def b64url_encode(data: bytes) -> bytes:
    """Unpadded base64url (used by tests and tooling, not on the hot path)."""
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=")

# --- JSON hygiene -------------------------------------------------------------------------------------------

cdef Py_ssize_t _count_top_members(const unsigned char* s, Py_ssize_t n) noexcept:
    """Members of the top-level JSON object (colons at depth 1 outside strings); input already valid JSON.

    orjson keeps the last of duplicate keys silently; comparing this count with len(dict) refuses them.
    Strings (most of a claim set) are skipped with memchr to their closing quote: a quote ends the string
    unless an odd run of backslashes precedes it.
    """
    cdef Py_ssize_t i = 0, count = 0, j
    cdef int depth = 0
    cdef const unsigned char* q
    cdef unsigned char ch
    while i < n:
        ch = s[i]
        if ch == 34:
            while True:
                q = <const unsigned char*>memchr(s + i + 1, 34, n - i - 1)
                if q == NULL:
                    return -1
                i = q - s
                j = i - 1
                while s[j] == 92:   # stops at the opening quote at the latest
                    j -= 1
                if ((i - 1 - j) & 1) == 0:
                    break
        elif ch == 123 or ch == 91:
            depth += 1
        elif ch == 125 or ch == 93:
            depth -= 1
        elif ch == 58 and depth == 1:
            count += 1
        i += 1
    return count


# --- claims read in place ----------------------------------------------------------------------------------
# A verification needs six claims (iss, exp, nbf, iat, aud, sub), not a dict of all of them: building and freeing
# that dict was most of a cache miss's own work (orjson ~29k of ~37k instructions beside the signature). The
# scanner below validates the whole payload as JSON and reads those six in place, but only within a strict
# plain subset: ASCII, no escapes, no repeated top-level names, numbers without exponents, nesting up to
# SCAN_MAX_DEPTH; iss and sub strings, aud a string or an array of strings, exp, nbf and iat integers of up to
# 15 digits. Anything else (a null claim, a float exp, "\/" in a URL, non-ASCII, invalid JSON) is "not mine" and
# goes through orjson exactly as before, so the short path only takes payloads orjson reads the same way
# (differential tests against orjson in tests/unit/test_claims_scan.py).

cdef enum:
    SCAN_MAX_DEPTH = 32
    SCAN_MAX_MEMBERS = 64
    SCAN_MAX_DIGITS = 15      # integers below 10**15 are exact as doubles
    SCAN_MAX_INT_DIGITS = 300 # below 1e300: far from a double's overflow

cdef struct ClaimScan:
    Py_ssize_t iss_at         # offsets into the payload; -1: absent
    Py_ssize_t iss_len
    Py_ssize_t sub_at
    Py_ssize_t sub_len
    Py_ssize_t aud_at         # the string's first byte, or the array's "["
    Py_ssize_t aud_len        # the string's length, or the array's span up to its "]"
    bint aud_array
    bint has_exp
    bint has_nbf
    bint has_iat
    double exp
    double nbf
    double iat

# 1 for bytes that end or leave the plain-string subset: quote, backslash, control characters, non-ASCII.
cdef unsigned char _STR_STOP[256]

cdef void _init_str_stop() noexcept:
    cdef int i
    for i in range(256):
        _STR_STOP[i] = 1 if (i == 34 or i == 92 or i < 32 or i >= 128) else 0

_init_str_stop()


cdef inline Py_ssize_t _skip_ws(const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    while i < n and (s[i] == 32 or s[i] == 10 or s[i] == 13 or s[i] == 9):
        i += 1
    return i


cdef inline Py_ssize_t _scan_string(const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """s[i] is a quote: the offset after the closing quote, or -1 (not a plain string)."""
    i += 1
    while i < n and not _STR_STOP[s[i]]:
        i += 1
    if i < n and s[i] == 34:
        return i + 1
    return -1


cdef Py_ssize_t _scan_number(const unsigned char* s, Py_ssize_t i, Py_ssize_t n, double* value) noexcept nogil:
    """A JSON number at s[i] in the plain subset: the offset after it, or -1. The subset has no exponents and
    at most SCAN_MAX_INT_DIGITS integer digits, so it never overflows a double (orjson refuses a number that
    does). With `value`, only an integer of at most SCAN_MAX_DIGITS digits qualifies, and *value gets it."""
    cdef Py_ssize_t digits_at
    cdef bint negative = False
    cdef double v = 0.0
    if i < n and s[i] == 45:
        negative = True
        i += 1
    digits_at = i
    if i >= n:
        return -1
    if s[i] == 48:
        i += 1
    elif 49 <= s[i] <= 57:
        while i < n and 48 <= s[i] <= 57:
            v = v * 10.0 + (s[i] - 48)
            i += 1
    else:
        return -1
    if i - digits_at > (SCAN_MAX_DIGITS if value != NULL else SCAN_MAX_INT_DIGITS):
        return -1
    if i < n and s[i] == 46:
        if value != NULL:
            return -1
        i += 1
        if i >= n or not (48 <= s[i] <= 57):
            return -1
        while i < n and 48 <= s[i] <= 57:
            i += 1
    if i < n and (s[i] == 101 or s[i] == 69):
        return -1
    if value != NULL:
        value[0] = -v if negative else v
    return i


cdef Py_ssize_t _scan_value(const unsigned char* s, Py_ssize_t i, Py_ssize_t n, int depth) noexcept nogil:
    """Any JSON value of the plain subset at s[i] (after whitespace): the offset after it, or -1."""
    cdef unsigned char c
    if i >= n:
        return -1
    c = s[i]
    if c == 34:
        return _scan_string(s, i, n)
    if c == 123 or c == 91:
        if depth >= SCAN_MAX_DEPTH:
            return -1
        i = _skip_ws(s, i + 1, n)
        if i < n and s[i] == c + 2:      # "{}" / "[]"
            return i + 1
        while True:
            if c == 123:
                if i >= n or s[i] != 34:
                    return -1
                i = _scan_string(s, i, n)
                if i < 0:
                    return -1
                i = _skip_ws(s, i, n)
                if i >= n or s[i] != 58:
                    return -1
                i = _skip_ws(s, i + 1, n)
            i = _scan_value(s, i, n, depth + 1)
            if i < 0:
                return -1
            i = _skip_ws(s, i, n)
            if i >= n:
                return -1
            if s[i] == 44:
                i = _skip_ws(s, i + 1, n)
                continue
            if s[i] == c + 2:
                return i + 1
            return -1
    if c == 116:
        return i + 4 if i + 4 <= n and memcmp(s + i, b"true", 4) == 0 else -1
    if c == 102:
        return i + 5 if i + 5 <= n and memcmp(s + i, b"false", 5) == 0 else -1
    if c == 110:
        return i + 4 if i + 4 <= n and memcmp(s + i, b"null", 4) == 0 else -1
    if c == 45 or 48 <= c <= 57:
        return _scan_number(s, i, n, NULL)
    return -1


cdef inline bint _name_is(const unsigned char* s, Py_ssize_t at, Py_ssize_t length, const char* name) noexcept nogil:
    return length == 3 and s[at] == name[0] and s[at + 1] == name[1] and s[at + 2] == name[2]


cdef bint _scan_claims(const unsigned char* s, Py_ssize_t n, ClaimScan* out) noexcept nogil:
    """True when the payload is a JSON object in the plain subset; *out then holds the six claims."""
    cdef Py_ssize_t key_at[SCAN_MAX_MEMBERS]
    cdef Py_ssize_t key_len[SCAN_MAX_MEMBERS]
    cdef Py_ssize_t members = 0, i, j, at, length, end
    cdef double* number
    out.iss_at = -1
    out.sub_at = -1
    out.aud_at = -1
    out.aud_array = False
    out.has_exp = False
    out.has_nbf = False
    out.has_iat = False
    i = _skip_ws(s, 0, n)
    if i >= n or s[i] != 123:
        return False
    i = _skip_ws(s, i + 1, n)
    if i < n and s[i] == 125:
        return _skip_ws(s, i + 1, n) == n
    while True:
        if i >= n or s[i] != 34 or members == SCAN_MAX_MEMBERS:
            return False
        end = _scan_string(s, i, n)
        if end < 0:
            return False
        at = i + 1
        length = end - 1 - at
        for j in range(members):
            # first and last byte before memcmp: a JWT's names are short and many share a length
            if key_len[j] == length and s[key_at[j]] == s[at] and s[key_at[j] + length - 1] == s[at + length - 1] \
                    and memcmp(s + key_at[j], s + at, length) == 0:
                return False          # a repeated name: orjson would keep the last; agw refuses (via orjson)
        key_at[members] = at
        key_len[members] = length
        members += 1
        i = _skip_ws(s, end, n)
        if i >= n or s[i] != 58:
            return False
        i = _skip_ws(s, i + 1, n)
        if i >= n:
            return False
        if length == 3 and (_name_is(s, at, length, b"iss") or _name_is(s, at, length, b"sub")):
            if s[i] != 34:
                return False
            end = _scan_string(s, i, n)
            if end < 0:
                return False
            if s[at] == 105:
                out.iss_at = i + 1
                out.iss_len = end - i - 2
            else:
                out.sub_at = i + 1
                out.sub_len = end - i - 2
            i = end
        elif length == 3 and (_name_is(s, at, length, b"exp") or _name_is(s, at, length, b"nbf")
                              or _name_is(s, at, length, b"iat")):
            if s[at] == 101:
                number = &out.exp
                out.has_exp = True
            elif s[at] == 110:
                number = &out.nbf
                out.has_nbf = True
            else:
                number = &out.iat
                out.has_iat = True
            i = _scan_number(s, i, n, number)
            if i < 0:
                return False          # not a number, or not a plain integer (orjson reads it)
        elif length == 3 and _name_is(s, at, length, b"aud"):
            out.aud_at = i
            if s[i] == 34:
                end = _scan_string(s, i, n)
                if end < 0:
                    return False
                out.aud_at = i + 1
                out.aud_len = end - i - 2
                i = end
            elif s[i] == 91:
                out.aud_array = True
                i = _skip_ws(s, i + 1, n)
                if i < n and s[i] != 93:
                    while True:
                        if i >= n or s[i] != 34:
                            return False      # an element that is not a string: orjson's path decides
                        i = _scan_string(s, i, n)
                        if i < 0:
                            return False
                        i = _skip_ws(s, i, n)
                        if i < n and s[i] == 44:
                            i = _skip_ws(s, i + 1, n)
                            continue
                        break
                if i >= n or s[i] != 93:
                    return False
                i += 1
                out.aud_len = i - out.aud_at
            else:
                return False
        else:
            i = _scan_value(s, i, n, 1)
            if i < 0:
                return False
        i = _skip_ws(s, i, n)
        if i >= n:
            return False
        if s[i] == 44:
            i = _skip_ws(s, i + 1, n)
            continue
        if s[i] == 125:
            return _skip_ws(s, i + 1, n) == n
        return False


cdef list _aud_strings(const unsigned char* s, Py_ssize_t at, Py_ssize_t length):
    """The strings of a scanned aud array (plain strings: no escapes, ASCII)."""
    cdef list out = []
    cdef Py_ssize_t i = at + 1, end = at + length - 1, close
    while i < end:
        if s[i] == 34:
            close = i + 1
            while s[close] != 34:
                close += 1
            out.append(PyUnicode_DecodeASCII(<const char*>s + i + 1, close - i - 1, NULL))
            i = close + 1
        else:
            i += 1
    return out


def scan_claims(bytes raw):
    """The short path's reading of a payload, for tests: None when it leaves the payload to orjson, else a
    dict of the claims it read (absent ones left out)."""
    cdef ClaimScan cs
    cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(raw)
    if not _scan_claims(s, PyBytes_GET_SIZE(raw), &cs):
        return None
    out = {}
    if cs.iss_at >= 0:
        out["iss"] = PyUnicode_DecodeASCII(<const char*>s + cs.iss_at, cs.iss_len, NULL)
    if cs.sub_at >= 0:
        out["sub"] = PyUnicode_DecodeASCII(<const char*>s + cs.sub_at, cs.sub_len, NULL)
    if cs.aud_at >= 0:
        out["aud"] = _aud_strings(s, cs.aud_at, cs.aud_len) if cs.aud_array else \
            PyUnicode_DecodeASCII(<const char*>s + cs.aud_at, cs.aud_len, NULL)
    if cs.has_exp:
        out["exp"] = cs.exp
    if cs.has_nbf:
        out["nbf"] = cs.nbf
    if cs.has_iat:
        out["iat"] = cs.iat
    return out


cdef object _json_object(bytes raw):
    """A dict from JSON bytes, or None (not JSON, not UTF-8, not an object, duplicate top-level keys)."""
    try:
        obj = _loads(raw)
    except Exception:
        return None
    if type(obj) is not dict:
        return None
    if _count_top_members(<const unsigned char*>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw)) != len(<dict>obj):
        return None
    return obj

# --- results ------------------------------------------------------------------------------------------------

@cython.final
@cython.no_gc   # holds strings, bytes and (built by hand) a claims dict only: it can be in no reference cycle
cdef class AuthResult:
    """The outcome of authenticating one request. Immutable; denials are shared, so never modify add_headers.

    A verified result keeps its claims as the token's JSON and decodes them on each access of `claims` (a fresh
    dict each time): the proxy's request path reads only `verified`, `subject`, `issuer` and `add_headers`, and
    a cache entry holding ~0.7 KB of JSON instead of a ~3.4 KB tree of ~60 objects costs less memory and far less
    work to evict.
    """

    def __init__(self, bint allowed, reason=None, message=None, www_authenticate=None, body=None, claims=None,
                 issuer=None, subject=None, add_headers=None, bint remove_credential=False, new_target=None,
                 new_cookie=None, str outcome=None):
        self.allowed = allowed
        self.status = 0 if allowed else 401
        self.answer_headers = ((b"www-authenticate", www_authenticate),) if www_authenticate else ()
        self.drop_header = None
        self.outcome = outcome if outcome is not None else (reason if reason is not None else "ok")
        self.label = issuer if issuer is not None else ""
        self.reason = reason
        self.message = message
        self.www_authenticate = www_authenticate
        self.body = body
        self._claims = claims
        self.claims_json = None
        self.verified = claims is not None
        self.issuer = issuer
        self.subject = subject
        self.add_headers = add_headers if add_headers is not None else []
        self.remove_credential = remove_credential
        self.new_target = new_target
        self.new_cookie = new_cookie

    @property
    def claims(self):
        """The verified token's claims (None when no token was verified)."""
        if self.claims_json is not None:
            return _loads(self.claims_json)
        return self._claims

    cpdef AuthResult with_rewrite(self, object new_target, object new_cookie):
        """A copy carrying the request-target / Cookie value with the credential removed."""
        cdef AuthResult r = AuthResult.__new__(AuthResult)
        r.allowed = self.allowed
        r.reason = self.reason
        r.message = self.message
        r.www_authenticate = self.www_authenticate
        r.body = self.body
        r._claims = self._claims
        r.claims_json = self.claims_json
        r.verified = self.verified
        r.issuer = self.issuer
        r.subject = self.subject
        r.add_headers = self.add_headers
        r.remove_credential = self.remove_credential
        r.new_target = new_target
        r.new_cookie = new_cookie
        r.status = self.status
        r.answer_headers = self.answer_headers
        r.drop_header = self.drop_header
        r.outcome = self.outcome
        r.label = self.label
        return r

    @property
    def log_fields(self):
        """What the access log records of this outcome besides `outcome`: who a verified token names."""
        return (("sub", self.subject), ("iss", self.issuer)) if self.verified else ()

    def __repr__(self):
        return (f"AuthResult(allowed={self.allowed}, reason={self.reason!r}, issuer={self.issuer!r}, "
                f"subject={self.subject!r})")


@cython.final
cdef class Pending:
    """Verification stopped for want of keys; the policy fetches and then calls Core.resolve()."""

    def __repr__(self):
        return f"Pending(reason={REASONS[self.reason]!r}, providers={[p.issuer for p in self.providers]!r})"

# --- keys ---------------------------------------------------------------------------------------------------

cdef bytes _raw_ecdsa_to_der(const unsigned char* sig, int coord):
    """ASN.1 DER of ECDSA (r, s) from JOSE's fixed-width r||s (both already checked non-zero)."""
    cdef int ri = 0, si = 0
    while sig[ri] == 0:
        ri += 1
    while sig[coord + si] == 0:
        si += 1
    cdef int rlen = coord - ri, slen = coord - si
    cdef int rpad = 1 if sig[ri] & 0x80 else 0
    cdef int spad = 1 if sig[coord + si] & 0x80 else 0
    cdef int body = 2 + rlen + rpad + 2 + slen + spad
    cdef int hdr = 2 if body < 128 else 3
    cdef bytes out = PyBytes_FromStringAndSize(NULL, hdr + body)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    cdef int p = 0, k
    o[p] = 0x30; p += 1
    if body >= 128:
        o[p] = 0x81; p += 1
    o[p] = <unsigned char>body; p += 1
    o[p] = 0x02; p += 1
    o[p] = <unsigned char>(rlen + rpad); p += 1
    if rpad:
        o[p] = 0; p += 1
    for k in range(rlen):
        o[p] = sig[ri + k]; p += 1
    o[p] = 0x02; p += 1
    o[p] = <unsigned char>(slen + spad); p += 1
    if spad:
        o[p] = 0; p += 1
    for k in range(slen):
        o[p] = sig[coord + si + k]; p += 1
    return out


cdef inline bint _is_zero(const unsigned char* p, int n) noexcept:
    cdef int i
    for i in range(n):
        if p[i]:
            return False
    return True


@cython.final
cdef class Key:
    """One usable JWK: a ready `cryptography` public key (or HMAC secret) and the algorithms it allows.

    Built by agw/jwt/keys.py, which does the JWK hygiene; `identity` is a stable fingerprint of the key
    material used to notice key-set changes.
    """

    def __init__(self, kid, int kind, unsigned int algs, pub, identity, int coord=0, ec_order=None,
                 Py_ssize_t modulus_len=0):
        self.kid = kid
        self.kind = kind
        self.algs = algs
        self.pub = pub
        self.identity = identity
        self.coord = coord
        self.ec_order = ec_order.to_bytes(coord, "big") if ec_order is not None else None
        self.modulus_len = modulus_len

    cdef int verify(self, int alg, bytes signing_input, bytes sig) except -1:
        """1 if the signature is valid, 0 if not."""
        cdef Py_ssize_t n = PyBytes_GET_SIZE(sig)
        cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(sig)
        cdef const unsigned char* order
        try:
            if alg <= A_HS512:
                if _hmac_digest is None:
                    _load_digests()
                return 1 if _compare_digest(_hmac_digest(self.pub, signing_input, _HMAC_NAMES[alg]), sig) else 0
            if alg <= A_RS512:
                # RFC 8017 8.2.2 step 1: a signature is exactly the modulus' length (OpenSSL's recover would
                # take a shorter one, its verify would not).
                if n != self.modulus_len:
                    return 0
                if _SHA2 is None:
                    _load_digests()
                encoded = self.pub.recover_data_from_signature(sig, _PKCS1, None)
                expected = _DIGEST_INFO[alg - A_RS256] + _SHA2[alg - A_RS256](signing_input).digest()
                return 1 if _compare_digest(encoded, expected) else 0
            if alg <= A_PS512:
                self.pub.verify(sig, signing_input, _PSS[alg - A_PS256], _HASHES[alg - A_PS256])
                return 1
            if alg <= A_ES512:
                if n != 2 * self.coord:
                    return 0
                order = <const unsigned char*>PyBytes_AS_STRING(self.ec_order)
                if _is_zero(s, self.coord) or _is_zero(s + self.coord, self.coord):
                    return 0
                if memcmp(s, order, self.coord) >= 0 or memcmp(s + self.coord, order, self.coord) >= 0:
                    return 0
                self.pub.verify(_raw_ecdsa_to_der(s, self.coord), signing_input, _ecdsa_params()[alg - A_ES256])
                return 1
            if alg == A_EDDSA:
                if n != 64:
                    return 0
                self.pub.verify(sig, signing_input)
                return 1
        except _InvalidSignature:
            return 0
        except (ValueError, TypeError):
            return 0
        return 0

    def verify_signature(self, str alg, bytes signing_input, bytes sig) -> bool:
        """Python-visible signature check (tests, tooling); False also when the key does not allow `alg`."""
        cdef int a = _ALG_IDS.get(alg, -1)
        if a < 0 or not (self.algs & (1u << a)):
            return False
        return self.verify(a, signing_input, sig) == 1

    def __repr__(self):
        names = [a for a in ALGORITHMS if self.algs & ALG_BITS[a]]
        return f"Key(kid={self.kid!r}, algs={names})"


@cython.final
cdef class Provider:
    """One configured issuer: its audience and required-claim rules and its current key set."""

    def __init__(self, str issuer, audiences=None, unsigned int required=C_EXP):
        self.issuer = issuer
        self.audiences = frozenset(audiences) if audiences else None
        self.required = required
        self.generation = 0
        self.keys_updated = 0.0
        self.by_kid = {}
        self.keys = []
        self.fingerprint = None
        self.source = None

    def set_keys(self, list keys) -> bool:
        """Install a new key set; returns True (and bumps the generation, killing cached tokens) on a change."""
        fingerprint = frozenset((<Key>k).identity for k in keys)
        self.keys_updated = _now()
        if fingerprint == self.fingerprint:
            return False
        cdef dict by_kid = {}
        for k in keys:
            if (<Key>k).kid is not None:
                by_kid.setdefault((<Key>k).kid, []).append(k)
        self.keys = list(keys)
        self.by_kid = by_kid
        self.fingerprint = fingerprint
        self.generation += 1
        return True

    @property
    def has_keys(self) -> bool:
        return bool(self.keys)

    @property
    def key_count(self) -> int:
        return len(self.keys)

    def key_ids(self) -> list:
        return [(<Key>k).kid for k in self.keys]


@cython.final
@cython.no_gc   # references its provider and result, neither of which refers back
cdef class CacheEntry:
    pass

# --- the core -----------------------------------------------------------------------------------------------

cdef inline bint _is_number(object v) noexcept:
    return type(v) is int or type(v) is float


cdef inline double _as_double(object v):
    # orjson turns integers beyond 64 bits into floats, so float() cannot overflow here; stay careful anyway.
    try:
        return float(v)
    except OverflowError:
        return 1e300 if v > 0 else -1e300


cdef bytes _header_value(object v):
    """A claim rendered for an HTTP header, or None when it cannot be sent safely."""
    cdef bytes out
    if type(v) is str:
        out = (<str>v).encode("utf-8")
    elif v is True:
        out = b"true"
    elif v is False:
        out = b"false"
    elif type(v) is int:
        out = str(v).encode()
    elif type(v) is float:
        out = str(int(v)).encode() if (<double>v).is_integer() and abs(<double>v) < 1e18 else repr(v).encode()
    elif type(v) is dict or type(v) is list:
        out = _dumps(v)
        # orjson hands back its whole (4 KB) output buffer; a cached result keeps an exact copy instead.
        out = PyBytes_FromStringAndSize(PyBytes_AS_STRING(out), PyBytes_GET_SIZE(out))
    else:
        return None
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(out)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(out)
    for i in range(n):
        # No control characters (CR/LF would split the header), DEL included; HTAB allowed.
        if (p[i] < 32 and p[i] != 9) or p[i] == 127:
            return None
    return out


cdef void _untrack_tree(object v, int depth):
    """Untrack a tree of dicts, lists and tuples from the cyclic GC (only for data that cannot form cycles and
    is never mutated afterwards, such as decoded claims)."""
    if depth > 64:
        return
    if type(v) is dict:
        for x in (<dict>v).values():
            _untrack_tree(x, depth + 1)
        PyObject_GC_UnTrack(<void*>v)
    elif type(v) is list:
        for x in <list>v:
            _untrack_tree(x, depth + 1)
        PyObject_GC_UnTrack(<void*>v)
    elif type(v) is tuple:
        for x in <tuple>v:
            _untrack_tree(x, depth + 1)
        PyObject_GC_UnTrack(<void*>v)


cdef object _aud_list(object aud):
    """`aud` as a list of strings; None if it is neither a string nor an array of strings."""
    if type(aud) is str:
        return [aud]
    if type(aud) is list:
        for a in <list>aud:
            if type(a) is not str:
                return None
        return aud
    return None

cdef Py_ssize_t HEADER_CACHE_MAX = 1024

# What one cache entry holds besides the token and claims JSON: the AuthResult, the entry, its int key, the
# subject string and the OrderedDict slot (bytes as tracemalloc counts them, rounded up; see the unit test
# that holds the cache to its max_bytes).
cdef Py_ssize_t ENTRY_OVERHEAD = 640
cdef Py_ssize_t CLAIM_HEADER_OVERHEAD = 160


cdef Py_ssize_t _entry_size(bytes token, AuthResult result):
    cdef Py_ssize_t size = PyBytes_GET_SIZE(token) + PyBytes_GET_SIZE(result.claims_json) + ENTRY_OVERHEAD
    if result.subject is not None:
        size += len(<str>result.subject)
    for _, value in result.add_headers:
        size += PyBytes_GET_SIZE(value) + CLAIM_HEADER_OVERHEAD
    return size

# add_headers of every verified result without claimsToHeaders (never modified: see AuthResult).
cdef list _NO_HEADERS = []


cdef tuple _parse_header(const unsigned char* s, Py_ssize_t n):
    """(alg id, kid) of a JOSE header segment, or (-(reason + 1), None) when it is refused."""
    raw = _b64decode(s, n)
    if raw is None:
        return (-(R_MALFORMED + 1), None)
    header = _json_object(raw)
    if header is None:
        return (-(R_MALFORMED + 1), None)
    alg_name = (<dict>header).get("alg")
    if type(alg_name) is not str:
        return (-(R_MALFORMED + 1), None)
    found_alg = PyDict_GetItem(_ALG_IDS, alg_name)
    if found_alg == NULL:
        return (-(R_UNSUPPORTED_ALG + 1), None)  # includes "none" in every spelling
    kid = (<dict>header).get("kid")
    if kid is not None and type(kid) is not str:
        return (-(R_MALFORMED + 1), None)
    # We understand no extensions, so any critical one is refused; JWE headers have no business here.
    if "crit" in <dict>header or "enc" in <dict>header or "zip" in <dict>header:
        return (-(R_MALFORMED + 1), None)
    # jwk / jku / x5u / x5c are ignored on purpose: keys come only from the configured JWKS.
    return (<object>found_alg, kid)


@cython.final
cdef class Core:
    """Per-policy verification state: providers by issuer, the token location, results and the token cache.

    `results` is a tuple of AuthResult indexed by Reason: the policy builds it for its mode (strict and
    optional deny; permissive allows; R_MISSING is an allow in optional and permissive).
    """

    def __init__(self, list providers, tuple results, *, double skew=60.0, Py_ssize_t max_token=8192,
                 bint remove_credential=True, list claim_headers=None, location="header",
                 bytes header_name=b"authorization", bytes prefix=b"Bearer ", bytes param_name=b"",
                 bytes cookie_name=b"", bint cache_enabled=True, Py_ssize_t cache_max_entries=100000,
                 Py_ssize_t cache_max_bytes=64 << 20):
        if len(results) != R_COUNT:
            raise ValueError("results must have one AuthResult per reason")
        self.groups = {}
        self.header_cache = {}
        for p in providers:
            self.groups.setdefault((<Provider>p).issuer, []).append(p)
        self.results = results
        self.issuer_results = {}
        self.skew = skew
        self.max_token = max_token
        self.remove_credential = remove_credential
        # (dotted path parts, literal claim name, header name bytes)
        self.claim_headers = [(tuple(c.split(".")), c, h) for c, h in (claim_headers or [])]
        self.location = {"header": LOC_HEADER, "query": LOC_QUERY, "cookie": LOC_COOKIE}[location]
        self.header_name = header_name.lower()
        # The header the proxy drops from a verified request (query and cookie tokens are rewritten instead).
        self.drop_header = self.header_name if remove_credential and self.location == LOC_HEADER else None
        self.prefix_lower = prefix.lower()
        self.prefix_len = len(prefix)
        self.param_name = _query_name_key(param_name)
        self.cookie_name = cookie_name
        self.cache_on = cache_enabled and cache_max_entries > 0 and cache_max_bytes > 0
        self.cache = OrderedDict()
        self.cache_max_entries = cache_max_entries
        self.cache_max_bytes = cache_max_bytes
        self.cache_bytes = 0
        self.hits = 0
        self.misses = 0
        if self.cache_on and self.seen == NULL:
            # calloc of a large block maps zero pages: only the slots actually marked take memory.
            self.seen = <uint64_t*>calloc(SEEN_SLOTS, sizeof(uint64_t))
            if self.seen == NULL:
                raise MemoryError()

    def __dealloc__(self):
        free(self.seen)

    def set_hooks(self, report=None, on_pending=None) -> None:
        """What authenticate() does besides verifying: `report(result)` is called with every AuthResult it
        returns; a Pending is handed to `on_pending(pending)` and its return value returned instead. The policy
        sets these so the proxy can call this method directly, with no Python frame in front of it."""
        self.report = report
        self.on_pending = on_pending

    # -- request entry point --------------------------------------------------------------------------------

    def authenticate(self, dict headers, bytes target):
        """AuthResult, or Pending when keys must be fetched first (or what the on_pending hook makes of it)."""
        return self._entry(headers, target)

    def apply(self, request):
        """The request-policy entry point (agw/chain.py): `request` offers `hdict` and `target`."""
        return self._entry(request.hdict, request.target)

    cdef object _entry(self, dict headers, bytes target):
        r = self._authenticate(headers, target)
        if type(r) is AuthResult:
            if self.report is not None:
                self.report(r)
            return r
        if self.on_pending is not None:
            return self.on_pending(r)
        return r

    cdef object _authenticate(self, dict headers, bytes target):
        cdef object token
        cdef object v
        cdef object r
        cdef PyObject* found
        cdef const unsigned char* p
        cdef const unsigned char* pl
        cdef Py_ssize_t n, start, end, i
        cdef double now
        cdef object new_target = None, new_cookie = None
        if self.location == LOC_HEADER:
            found = PyDict_GetItemWithError(headers, self.header_name)   # no error state saved and restored
            if found == NULL:
                return self.results[R_MISSING]
            v = <object>found
            n = PyBytes_GET_SIZE(v)
            p = <const unsigned char*>PyBytes_AS_STRING(v)
            if n < self.prefix_len:
                return self.results[R_MISSING]
            if self.prefix_len:
                pl = <const unsigned char*>PyBytes_AS_STRING(self.prefix_lower)
                for i in range(self.prefix_len):
                    # ASCII case-insensitive match of the scheme ("Bearer " == "bearer ")
                    if ((p[i] | 0x20) if 65 <= p[i] <= 90 else p[i]) != pl[i]:
                        return self.results[R_MISSING]
            start = self.prefix_len
            end = n
            while start < end and (p[start] == 32 or p[start] == 9):
                start += 1
            while end > start and (p[end - 1] == 32 or p[end - 1] == 9):
                end -= 1
            if start == end:
                return self.results[R_MISSING]
            now = _now()   # a precise read is ~20 ns here (vDSO); a coarse clock was measured to save nothing
            if self.cache_on:
                # Looked up in place in the header value: a hit allocates nothing and copies nothing.
                r = self._cache_get(p + start, end - start, now)
                if r is not None:
                    return r
            token = v if (start == 0 and end == n) else PyBytes_FromStringAndSize(<char*>p + start, end - start)
            return self._verify_slow(token, now, True)
        elif self.location == LOC_QUERY:
            token, new_target = _take_query_param(target, self.param_name)
            if token is None:
                return self.results[R_MISSING]
            if token is _AMBIGUOUS:
                return self.results[R_MALFORMED]
        else:
            v = headers.get(b"cookie")
            if v is None:
                return self.results[R_MISSING]
            token, new_cookie = _take_cookie(v, self.cookie_name)
            if token is None:
                return self.results[R_MISSING]
            if not token:
                return self.results[R_MISSING]
        r = self.verify_token(token, 0.0, True)
        if type(r) is Pending:
            (<Pending>r).new_target = new_target
            (<Pending>r).new_cookie = new_cookie
        elif (<AuthResult>r).verified and (<AuthResult>r).remove_credential:
            return (<AuthResult>r).with_rewrite(new_target, new_cookie)
        return r

    def resolve(self, Pending pending, double now=0.0):
        """Finish a Pending after the fetch: no further waiting, unknown kid / no keys become denials."""
        r = self.verify_token(pending.token, now, False)
        if (<AuthResult>r).verified and (<AuthResult>r).remove_credential and \
                (pending.new_target is not None or pending.new_cookie is not None):
            return (<AuthResult>r).with_rewrite(pending.new_target, pending.new_cookie)
        return r

    # -- token verification ---------------------------------------------------------------------------------

    cpdef object verify_token(self, bytes token, double now=0.0, bint allow_pending=True):
        """AuthResult for one token (or Pending when allow_pending and keys are missing). Never raises."""
        if now <= 0.0:
            now = _now()
        if self.cache_on:
            r = self._cache_get(<const unsigned char*>PyBytes_AS_STRING(token), PyBytes_GET_SIZE(token), now)
            if r is not None:
                return r
        return self._verify_slow(token, now, allow_pending)

    cdef object _cache_get(self, const unsigned char* p, Py_ssize_t n, double now):
        """The cached result for the token p[:n] if it still holds at `now` (exp and nbf with the skew, same key
        set), else None: a miss (an entry that no longer holds is dropped on the way)."""
        cdef PyObject* found
        cdef CacheEntry e
        key = PyLong_FromUnsignedLongLong(_token_key(p, n))
        found = PyDict_GetItemWithError(self.cache, key)
        if found != NULL:
            e = <CacheEntry>found
            if PyBytes_GET_SIZE(e.token) == n and memcmp(PyBytes_AS_STRING(e.token), p, n) == 0:
                if e.exp > now - self.skew and e.nbf <= now + self.skew and e.generation == e.provider.generation:
                    self.hits += 1
                    return e.result
                del self.cache[key]
                self.cache_bytes -= e.size
        self.misses += 1
        return None

    cdef object _fail(self, int reason):
        return self.results[reason]

    cdef object _fail_for(self, int reason, str issuer):
        """A denial for a token of a configured issuer: one shared result per (issuer, reason) that names the
        issuer, so metrics and logs can say which provider refused (issuers are configured: bounded)."""
        key = (issuer, reason)
        found = PyDict_GetItem(self.issuer_results, key)
        if found != NULL:
            return <object>found
        cdef AuthResult base = <AuthResult>self.results[reason]
        cdef AuthResult r = base.with_rewrite(base.new_target, base.new_cookie)
        r.issuer = issuer
        r.label = issuer
        self.issuer_results[key] = r
        return r

    cdef object _verify_slow(self, bytes token, double now, bint allow_pending):
        cdef Py_ssize_t n = PyBytes_GET_SIZE(token)
        cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(token)
        cdef const unsigned char* d1
        cdef const unsigned char* d2
        cdef Py_ssize_t i1, i2
        if n > self.max_token or n == 0:
            return self._fail(R_MALFORMED)
        d1 = <const unsigned char*>memchr(s, 46, n)
        if d1 == NULL:
            return self._fail(R_MALFORMED)
        i1 = d1 - s
        d2 = <const unsigned char*>memchr(d1 + 1, 46, n - i1 - 1)
        if d2 == NULL:
            return self._fail(R_MALFORMED)
        i2 = d2 - s
        if memchr(d2 + 1, 46, n - i2 - 1) != NULL:
            return self._fail(R_MALFORMED)  # JWE (five parts) or stray dots

        # header: issuers reuse a handful of headers, so the parsed (alg, kid) is memoised by segment
        cdef int alg
        hseg = PyBytes_FromStringAndSize(<char*>s, i1)
        found = PyDict_GetItem(self.header_cache, hseg)
        if found != NULL:
            parsed = <tuple>found
        else:
            parsed = _parse_header(s, i1)
            if len(self.header_cache) >= HEADER_CACHE_MAX:
                self.header_cache.clear()
            self.header_cache[hseg] = parsed
        alg = <int>parsed[0]
        if alg < 0:
            return self._fail(-alg - 1)
        kid = parsed[1]
        cdef unsigned int alg_bit = 1u << alg

        # claims
        raw = _b64decode(d1 + 1, i2 - i1 - 1)
        if raw is None:
            return self._fail(R_MALFORMED)
        cdef ClaimScan cs
        cdef const char* rp = PyBytes_AS_STRING(raw)
        cdef double exp_d = 1e300
        cdef double nbf_d = -1e300
        cdef bint has_exp, has_nbf, has_iat
        claims = None
        if not self.claim_headers and _scan_claims(<const unsigned char*>rp, PyBytes_GET_SIZE(raw), &cs):
            # The plain subset, read in place: every claim present already has a valid type.
            if cs.iss_at < 0:
                return self._fail(R_UNKNOWN_ISSUER)
            iss = PyUnicode_DecodeASCII(rp + cs.iss_at, cs.iss_len, NULL)
            found = PyDict_GetItem(self.groups, iss)
            if found == NULL:
                return self._fail(R_UNKNOWN_ISSUER)
            has_exp = cs.has_exp
            if has_exp:
                exp_d = cs.exp
                if exp_d <= now - self.skew:
                    return self._fail_for(R_EXPIRED, <str>iss)
            has_nbf = cs.has_nbf
            if has_nbf:
                nbf_d = cs.nbf
                if nbf_d > now + self.skew:
                    return self._fail_for(R_NOT_YET_VALID, <str>iss)
            has_iat = cs.has_iat
            auds = None
            if cs.aud_at >= 0:
                auds = _aud_strings(<const unsigned char*>rp, cs.aud_at, cs.aud_len) if cs.aud_array else \
                    [PyUnicode_DecodeASCII(rp + cs.aud_at, cs.aud_len, NULL)]
            sub = PyUnicode_DecodeASCII(rp + cs.sub_at, cs.sub_len, NULL) if cs.sub_at >= 0 else None
        else:
            claims = _json_object(raw)
            if claims is None:
                return self._fail(R_MALFORMED)
            iss = (<dict>claims).get("iss")
            if type(iss) is not str:
                return self._fail(R_UNKNOWN_ISSUER)
            found = PyDict_GetItem(self.groups, iss)
            if found == NULL:
                return self._fail(R_UNKNOWN_ISSUER)
            exp = (<dict>claims).get("exp")
            has_exp = exp is not None
            if has_exp:
                if not _is_number(exp):
                    return self._fail_for(R_MALFORMED, <str>iss)
                exp_d = _as_double(exp)
                if exp_d <= now - self.skew:
                    return self._fail_for(R_EXPIRED, <str>iss)
            nbf = (<dict>claims).get("nbf")
            has_nbf = nbf is not None
            if has_nbf:
                if not _is_number(nbf):
                    return self._fail_for(R_MALFORMED, <str>iss)
                nbf_d = _as_double(nbf)
                if nbf_d > now + self.skew:
                    return self._fail_for(R_NOT_YET_VALID, <str>iss)
            iat = (<dict>claims).get("iat")
            has_iat = iat is not None
            if has_iat and not _is_number(iat):
                return self._fail_for(R_MALFORMED, <str>iss)   # a NumericDate (RFC 7519 4.1.6), as exp and nbf
            aud = (<dict>claims).get("aud")
            auds = None
            if aud is not None:
                auds = _aud_list(aud)
                if auds is None:
                    return self._fail_for(R_MALFORMED, <str>iss)
            sub = (<dict>claims).get("sub")
            if sub is not None and type(sub) is not str:
                return self._fail_for(R_MALFORMED, <str>iss)
        cdef list group = <list>found

        # providers of this issuer whose claim rules the token meets
        cdef list candidates = []
        cdef int first_failure = -1
        cdef Provider prov
        cdef unsigned int present = C_ISS | (C_EXP if has_exp else 0) | (C_NBF if has_nbf else 0) \
            | (C_AUD if auds else 0) | (C_SUB if sub is not None else 0) | (C_IAT if has_iat else 0)
        for p in group:
            prov = <Provider>p
            if prov.required & ~present:
                if first_failure < 0:
                    first_failure = R_MISSING_CLAIM
                continue
            if prov.audiences is not None:
                if not auds or prov.audiences.isdisjoint(auds):
                    if first_failure < 0:
                        first_failure = R_AUDIENCE
                    continue
            candidates.append(prov)
        if not candidates:
            return self._fail_for(first_failure, <str>iss)

        sig = _b64decode(d2 + 1, n - i2 - 1)
        if sig is None:
            return self._fail_for(R_MALFORMED, <str>iss)
        if PyBytes_GET_SIZE(sig) == 0:
            return self._fail_for(R_INVALID_SIG, <str>iss)

        # keys
        cdef list matches = []
        cdef list owners = []
        cdef bint all_have_keys = True
        cdef bint alg_mismatch = False
        cdef Key key
        for p in candidates:
            prov = <Provider>p
            if not prov.keys:
                all_have_keys = False
                continue
            if kid is not None:
                found = PyDict_GetItem(prov.by_kid, kid)
                if found != NULL:
                    for k in <list>found:
                        if (<Key>k).algs & alg_bit:
                            matches.append(k)
                            owners.append(prov)
                        else:
                            alg_mismatch = True
            else:
                for k in prov.keys:
                    if (<Key>k).algs & alg_bit:
                        matches.append(k)
                        owners.append(prov)
        if kid is None and len(matches) > 1:
            return self._fail_for(R_UNKNOWN_KEY, <str>iss)  # ambiguous: a kid-less token needs exactly one fitting key
        if not matches:
            if alg_mismatch:
                return self._fail_for(R_UNSUPPORTED_ALG, <str>iss)
            reason = R_UNKNOWN_KEY if all_have_keys else R_KEYS_UNAVAILABLE
            if allow_pending:
                pending = Pending.__new__(Pending)
                (<Pending>pending).token = token
                (<Pending>pending).reason = reason
                (<Pending>pending).providers = candidates
                return pending
            return self._fail_for(reason, <str>iss)

        signing_input = PyBytes_FromStringAndSize(<char*>s, i2)
        cdef Py_ssize_t i
        for i in range(len(matches)):
            key = <Key>matches[i]
            if key.verify(alg, signing_input, sig):
                result = self._success(claims, raw, (<Provider>owners[i]).issuer, sub)
                if self.cache_on:
                    self._cache_put(token, result, exp_d, nbf_d, <Provider>owners[i])
                return result
        return self._fail_for(R_INVALID_SIG, <str>iss)

    cdef AuthResult _success(self, object claims, bytes claims_json, str issuer, object sub):
        # `issuer` is the configured string (equal to the token's), shared by every result of that provider.
        cdef AuthResult r = AuthResult.__new__(AuthResult)
        r.allowed = True
        r.claims_json = claims_json
        r.verified = True
        r.issuer = issuer
        r.subject = sub            # a str or None (checked by both claim readers)
        # `claims` is the decoded dict whenever claim headers are configured (the scanner is skipped then).
        r.add_headers = self._claim_header_values(<dict>claims) if self.claim_headers else _NO_HEADERS
        if self.claim_headers:
            _untrack_tree(r.add_headers, 0)
        r.remove_credential = self.remove_credential
        r.status = 0
        r.answer_headers = ()
        r.drop_header = self.drop_header
        r.outcome = "ok"
        r.label = issuer
        return r

    cdef list _claim_header_values(self, dict claims):
        cdef list out = []
        for parts, literal, header in self.claim_headers:
            v = claims
            for part in parts:
                if type(v) is not dict:
                    v = None
                    break
                v = (<dict>v).get(part)
                if v is None:
                    break
            if v is None and len(parts) > 1:
                v = claims.get(literal)  # a claim whose name contains dots, e.g. "https://example.com/role"
            if v is None:
                continue
            value = _header_value(v)
            if value is not None:
                out.append((header, value))
        return out

    cdef void _cache_put(self, bytes token, AuthResult result, double exp, double nbf, Provider provider):
        cdef uint64_t k = _token_key(<const unsigned char*>PyBytes_AS_STRING(token), PyBytes_GET_SIZE(token))
        cdef uint64_t* slot = &self.seen[(k >> 17) & (SEEN_SLOTS - 1)]
        if slot[0] != k:
            # Admission on the second sighting: a token verified once is only remembered (8 bytes); it is cached
            # when verified again while remembered. Clients reuse their token, so they pay one extra verify;
            # a stream of one-shot tokens (every request a new token, or a flood of them) never churns the
            # cache, which would otherwise evict the entries of the clients that do reuse theirs.
            slot[0] = k
            return
        slot[0] = 0
        cdef CacheEntry e = CacheEntry.__new__(CacheEntry)
        e.token = token
        e.exp = exp
        e.nbf = nbf
        e.generation = provider.generation
        e.provider = provider
        e.result = result
        e.size = _entry_size(token, result)
        if e.size > self.cache_max_bytes:
            return
        cache = self.cache
        key = PyLong_FromUnsignedLongLong(k)
        old = cache.pop(key, None)   # another verified token with the same key: the newer one stays
        if old is not None:
            self.cache_bytes -= (<CacheEntry>old).size
        while len(cache) >= self.cache_max_entries or self.cache_bytes + e.size > self.cache_max_bytes:
            _, old = cache.popitem(last=False)
            self.cache_bytes -= (<CacheEntry>old).size
        cache[key] = e
        self.cache_bytes += e.size

    # -- housekeeping ---------------------------------------------------------------------------------------

    def purge_expired(self, double now=0.0) -> int:
        """Drop entries that are expired or belong to an old key set (called from a timer, off the hot path)."""
        if now <= 0.0:
            now = _now()
        dead = [k for k, e in self.cache.items()
                if not ((<CacheEntry>e).exp > now - self.skew
                        and (<CacheEntry>e).generation == (<CacheEntry>e).provider.generation)]
        for k in dead:
            self.cache_bytes -= (<CacheEntry>self.cache.pop(k)).size
        return len(dead)

    def clear_cache(self) -> None:
        self.cache.clear()
        self.cache_bytes = 0

    def cache_stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self.cache), "bytes": self.cache_bytes,
                "max_entries": self.cache_max_entries, "max_bytes": self.cache_max_bytes,
                "enabled": self.cache_on}

    @property
    def providers(self) -> list:
        return [p for g in self.groups.values() for p in g]

# --- token locations other than a header ---------------------------------------------------------------------

# A query token must be removed in every spelling a backend might decode to the configured name, or a second copy
# (verified or not) rides through beside the one agw checked: names are compared percent-decoded (repeatedly: some
# stacks decode twice), ASCII case-folded, with "." and " " read as "_" and a "[...]" suffix dropped (PHP's
# $_GET mangling, Rails' name[]), and pairs split on both "&" and ";".
cdef object _AMBIGUOUS = object()   # the first item of _take_query_param's answer when the target is refused
cdef bytes _QUERY_SEPARATORS = b"&;"


cdef bytes _query_name_key(bytes name):
    """The form of a parameter name (or the configured one) that spellings of one name share."""
    cdef int rounds = 0
    name = name.replace(b"+", b" ")
    while b"%" in name and rounds < 3:
        decoded = _unquote(name)
        if decoded == name:
            break
        name = decoded
        rounds += 1
    name = name.lstrip(b" ").lower().replace(b".", b"_").replace(b" ", b"_")
    cdef Py_ssize_t bracket = name.find(b"[")
    return name[:bracket] if bracket > 0 else name


cdef object _unquote(bytes data):
    from urllib.parse import unquote_to_bytes
    return unquote_to_bytes(data)


cdef list _query_pairs(bytes query, bytes separators):
    """(separator before it, pair) for each piece of `query` between any of `separators` (first: b"")."""
    cdef list out = []
    cdef Py_ssize_t i, start = 0, n = len(query)
    cdef bytes sep = b""
    for i in range(n):
        if query[i] in separators:
            out.append((sep, query[start:i]))
            sep = query[i:i + 1]
            start = i + 1
    out.append((sep, query[start:]))
    return out


cdef tuple _take_query_param(bytes target, bytes key):
    """(token, target without that parameter), or (None, None) when it is absent, or (_AMBIGUOUS, None) when the
    target cannot be trusted: two values for the parameter, or the parameter in a target with a "#" (a fragment
    is never sent by a client, and servers differ on where one starts). `key` is _query_name_key(name)."""
    cdef Py_ssize_t q = target.find(b"?")
    cdef Py_ssize_t h = target.find(b"#")
    if h >= 0:
        start = min(q, h) if q >= 0 else h
        for _, part in _query_pairs(target[start + 1:], b"&;#?"):
            if _query_name_key(part.partition(b"=")[0]) == key:
                return _AMBIGUOUS, None
        return None, None
    if q < 0:
        return None, None
    token = None
    kept = []
    for sep, part in _query_pairs(target[q + 1:], _QUERY_SEPARATORS):
        name, _, value = part.partition(b"=")
        if _query_name_key(name) != key:
            kept.append(sep + part if kept else part)
            continue
        if b"%" in value or b"+" in value:
            value = _unquote(value.replace(b"+", b" "))
        if token is None:
            token = value
        elif value != token:
            return _AMBIGUOUS, None
    if token is None:
        return None, None
    return token, target[:q] + (b"?" + b"".join(kept) if kept else b"")


cdef tuple _take_cookie(bytes header, bytes name):
    """(token, Cookie value without that cookie; b"" when none remain) or (None, None)."""
    token = None
    kept = []
    for part in header.split(b";"):
        part = part.strip()
        if not part:
            continue
        eq = part.find(b"=")
        if eq >= 0 and part[:eq].strip() == name:
            if token is None:
                token = part[eq + 1:].strip()
                if len(token) >= 2 and token.startswith(b'"') and token.endswith(b'"'):
                    token = token[1:len(token) - 1]
            continue
        kept.append(part)
    if token is None:
        return None, None
    return token, b"; ".join(kept)


def take_query_param(bytes target, bytes name):
    """(token, target without it) for the query parameter `name` in any spelling, or (None, None) when absent;
    ValueError when the target carries it ambiguously (two values, or beside a "#")."""
    token, new_target = _take_query_param(target, _query_name_key(name))
    if token is _AMBIGUOUS:
        raise ValueError("ambiguous query token")
    return token, new_target


def take_cookie(bytes header, bytes name):
    return _take_cookie(header, name)
