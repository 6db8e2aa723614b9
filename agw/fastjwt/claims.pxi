# Claims (included by agw/_fastjwt.pyx): the claims agw can require, JSON hygiene (one member per name),
# the in-place scanner of the plain JSON subset, and the checks of orjson's reading for everything else.

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
# that dict was most of a cache miss's own work beside the signature (figures in bench/RESULTS.md). The
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

# --- orjson's reading: type checks of the claims the scanner reads in place --------------------------------

cdef inline bint _is_number(object v) noexcept:
    return type(v) is int or type(v) is float


cdef inline double _as_double(object v):
    # orjson turns integers beyond 64 bits into floats, so float() cannot overflow here; stay careful anyway.
    try:
        return float(v)
    except OverflowError:
        return 1e300 if v > 0 else -1e300


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
