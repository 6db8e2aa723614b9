# The algorithm table (included by agw/_fastjwt.pyx): every JWS algorithm agw accepts, its family and digest, and
# the signature check of each family. `Key.verify` (keys.pxi) dispatches on `_ALGS[alg].family`.

# cryptography's ECDSA objects (its OpenSSL backend) and hmac/hashlib (OpenSSL's digests) take a worker's memory:
# they load on the first ES* / HS* or RS* verification, so a worker that never sees those algorithms never pays.
cdef object _hmac_digest = None
cdef object _compare_digest = None
cdef object _InvalidSignature = _InvalidSignatureError

cdef enum AlgFamily:
    FAM_HMAC = 0
    FAM_RSA_PKCS1 = 1
    FAM_RSA_PSS = 2
    FAM_ECDSA = 3
    FAM_EDDSA = 4

cdef struct AlgSpec:
    AlgFamily family
    int digest          # index into the SHA-2 tables below: 0 SHA-256, 1 SHA-384, 2 SHA-512

# Algorithm ids: the index of each name in ALGORITHMS (and the bit of ALG_BITS).
cdef enum:
    A_COUNT = 13

# The one list: (name, family, digest, the JWK kty whose keys verify it), in id order.
_ALG_TABLE = (
    ("HS256", FAM_HMAC, 0, "oct"), ("HS384", FAM_HMAC, 1, "oct"), ("HS512", FAM_HMAC, 2, "oct"),
    ("RS256", FAM_RSA_PKCS1, 0, "RSA"), ("RS384", FAM_RSA_PKCS1, 1, "RSA"), ("RS512", FAM_RSA_PKCS1, 2, "RSA"),
    ("PS256", FAM_RSA_PSS, 0, "RSA"), ("PS384", FAM_RSA_PSS, 1, "RSA"), ("PS512", FAM_RSA_PSS, 2, "RSA"),
    ("ES256", FAM_ECDSA, 0, "EC"), ("ES384", FAM_ECDSA, 1, "EC"), ("ES512", FAM_ECDSA, 2, "EC"),
    ("EdDSA", FAM_EDDSA, 0, "OKP"),
)
ALGORITHMS = tuple(row[0] for row in _ALG_TABLE)
ALG_BITS = {name: 1 << i for i, name in enumerate(ALGORITHMS)}
ALG_KTY = {row[0]: row[3] for row in _ALG_TABLE}
cdef dict _ALG_IDS = {name: i for i, name in enumerate(ALGORITHMS)}
cdef AlgSpec _ALGS[A_COUNT]


cdef void _init_algs() except *:
    if len(_ALG_TABLE) != A_COUNT:
        raise RuntimeError("A_COUNT does not match the algorithm table")
    for i, row in enumerate(_ALG_TABLE):
        _ALGS[i].family = row[1]
        _ALGS[i].digest = row[2]


_init_algs()

cdef tuple _HASHES = (_hashes.SHA256(), _hashes.SHA384(), _hashes.SHA512())
cdef tuple _HMAC_NAMES = ("sha256", "sha384", "sha512")
cdef object _PKCS1 = _padding.PKCS1v15()
# RS* is checked the way RFC 8017 8.2.2 describes: recover the encoded message from the signature (OpenSSL checks
# the 00 01 FF..FF 00 padding), then compare it whole with the DER DigestInfo of our own digest of the signing
# input. OpenSSL's own verify compares the same bytes (DigestInfo with NULL parameters only); doing the digest
# with hashlib saves cryptography's per-call hash setup.
cdef tuple _DIGEST_INFO = (bytes.fromhex("3031300d060960864801650304020105000420"),
                           bytes.fromhex("3041300d060960864801650304020205000430"),
                           bytes.fromhex("3051300d060960864801650304020305000440"))
cdef tuple _SHA2 = None
cdef tuple _PSS = tuple(_padding.PSS(mgf=_padding.MGF1(h), salt_length=h.digest_size) for h in _HASHES)
cdef tuple _ECDSA = None

# Group orders, big-endian, padded to the coordinate size: ECDSA r and s must lie in [1, n-1].
EC_CURVES = {
    # crv: (coordinate bytes, order, alg)
    "P-256": (32, 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551, "ES256"),
    "P-384": (48, 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
              "ES384"),
    "P-521": (66, int("01FF" + "FFFFFFFF" * 7 + "FFFFFFFA"
                      "51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409", 16), "ES512"),
}


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
        _ECDSA = tuple(_ec.ECDSA(h) for h in _HASHES)
    return _ECDSA

# --- one check per family: 1 if the signature is valid, 0 if not (cryptography's exceptions are the caller's) ---

cdef int _verify_hmac(object secret, int digest, bytes signing_input, bytes sig) except -1:
    if _hmac_digest is None:
        _load_digests()
    return 1 if _compare_digest(_hmac_digest(secret, signing_input, _HMAC_NAMES[digest]), sig) else 0


cdef int _verify_rsa_pkcs1(object pub, Py_ssize_t modulus_len, int digest, bytes signing_input,
                           bytes sig) except -1:
    # RFC 8017 8.2.2 step 1: a signature is exactly the modulus' length (OpenSSL's recover would take a shorter
    # one, its verify would not).
    if PyBytes_GET_SIZE(sig) != modulus_len:
        return 0
    if _SHA2 is None:
        _load_digests()
    encoded = pub.recover_data_from_signature(sig, _PKCS1, None)
    return 1 if _compare_digest(encoded, _DIGEST_INFO[digest] + _SHA2[digest](signing_input).digest()) else 0


cdef int _verify_rsa_pss(object pub, int digest, bytes signing_input, bytes sig) except -1:
    pub.verify(sig, signing_input, _PSS[digest], _HASHES[digest])
    return 1


cdef int _verify_ecdsa(object pub, int coord, bytes order, int digest, bytes signing_input, bytes sig) except -1:
    """JOSE's fixed-width r || s, each in [1, n-1], checked before OpenSSL sees the DER form."""
    cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(sig)
    cdef const unsigned char* n = <const unsigned char*>PyBytes_AS_STRING(order)
    if PyBytes_GET_SIZE(sig) != 2 * coord:
        return 0
    if _is_zero(s, coord) or _is_zero(s + coord, coord):
        return 0
    if memcmp(s, n, coord) >= 0 or memcmp(s + coord, n, coord) >= 0:
        return 0
    pub.verify(_raw_ecdsa_to_der(s, coord), signing_input, _ecdsa_params()[digest])
    return 1


cdef int _verify_eddsa(object pub, bytes signing_input, bytes sig) except -1:
    if PyBytes_GET_SIZE(sig) != 64:
        return 0
    pub.verify(sig, signing_input)
    return 1


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
