# Strict base64url (included by agw/_fastjwt.pyx): unpadded, canonical, table-driven; RFC 7515 2.

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
