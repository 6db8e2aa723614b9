# cython: language_level=3
"""HTTP/1.1 heads scanned in C for the plain, common case, so no Python call is made per header.

httptools (llhttp) calls back into Python once per header, on both sides of a proxied request; with a
handful of headers that was over a third of agw's per-request work. These scanners read a complete head
straight from the received bytes, with typed char loops, and return everything the proxy needs in one
tuple.

They accept only a strict subset of HTTP/1.1 and return None for anything else: an incomplete head, an
unknown method, a byte outside the plain character sets, obs-fold, bare LF, a duplicated field, a body
framed by anything but Content-Length, Upgrade, a Connection header naming other fields, a head over the
limits. None means "let llhttp parse this message", so every unusual, hostile or malformed message keeps
llhttp's exact handling (errors, 400/431, smuggling defences); the subset only ever takes messages on
which the two agree.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

cdef enum:
    MAX_SPANS = 128      # fields per head on the fast path; more go to llhttp
    STACK_OUT = 4096     # output built in a stack buffer up to this size; larger heads use the heap

cdef unsigned char TCHAR[256]     # RFC 9110 token characters (field names, methods)
cdef unsigned char URLCHAR[256]   # RFC 3986 characters of a request-target, '#' excluded
cdef unsigned char VCHAR[256]     # field-value characters: VCHAR, SP, HTAB (obs-text goes to llhttp)
cdef unsigned char REGNAME[256]   # RFC 3986 reg-name / IPv4 characters of a Host (pct-encoded as '%')
cdef unsigned char IPLITERAL[256] # inside a Host's [ ]: hex digits, ':' and '.'


cdef void _fill_tables():
    cdef int c
    for c in range(256):
        TCHAR[c] = 0
        URLCHAR[c] = 0
        VCHAR[c] = 0
        REGNAME[c] = 0
        IPLITERAL[c] = 0
    for c in range(0x21, 0x7f):
        VCHAR[c] = 1
    VCHAR[0x20] = 1
    VCHAR[0x09] = 1
    for c in b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!#$%&'*+-.^_`|~":
        TCHAR[c] = 1
    for c in b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-._~:/?[]@!$&'()*+,;=%":
        URLCHAR[c] = 1
    for c in b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._~!$&'()*+,;=%-":
        REGNAME[c] = 1
    for c in b"0123456789abcdefABCDEF:.":
        IPLITERAL[c] = 1


_fill_tables()

# The methods the fast path knows (llhttp knows more; CONNECT and the rest go to it). Shared constants,
# so no bytes object is made for the method.
cdef bytes M_GET = b"GET", M_HEAD = b"HEAD", M_POST = b"POST", M_PUT = b"PUT", M_DELETE = b"DELETE"
cdef bytes M_OPTIONS = b"OPTIONS", M_PATCH = b"PATCH", M_TRACE = b"TRACE"
cdef bytes REASON_OK = b"OK"


cdef inline unsigned char _lower(unsigned char c) nogil:
    if c >= 65 and c <= 90:
        return c + 32
    return c


cdef inline bint _ieq(const unsigned char* p, Py_ssize_t n, const char* lit) nogil:
    """p[:n] equals the lowercase literal `lit`, ignoring ASCII case."""
    cdef Py_ssize_t i = 0
    while i < n:
        if lit[i] == 0 or _lower(p[i]) != <unsigned char>lit[i]:
            return False
        i += 1
    return lit[n] == 0


cdef object _method(const unsigned char* p, Py_ssize_t n):
    if n == 3:
        if p[0] == b'G' and p[1] == b'E' and p[2] == b'T':
            return M_GET
        if p[0] == b'P' and p[1] == b'U' and p[2] == b'T':
            return M_PUT
    elif n == 4:
        if p[0] == b'H' and p[1] == b'E' and p[2] == b'A' and p[3] == b'D':
            return M_HEAD
        if p[0] == b'P' and p[1] == b'O' and p[2] == b'S' and p[3] == b'T':
            return M_POST
    elif n == 5:
        if p[0] == b'P' and p[1] == b'A' and p[2] == b'T' and p[3] == b'C' and p[4] == b'H':
            return M_PATCH
        if p[0] == b'T' and p[1] == b'R' and p[2] == b'A' and p[3] == b'C' and p[4] == b'E':
            return M_TRACE
    elif n == 6:
        if p[0] == b'D' and p[1] == b'E' and p[2] == b'L' and p[3] == b'E' and p[4] == b'T' and p[5] == b'E':
            return M_DELETE
    elif n == 7:
        if p[0] == b'O' and p[1] == b'P' and p[2] == b'T' and p[3] == b'I' and p[4] == b'O' \
                and p[5] == b'N' and p[6] == b'S':
            return M_OPTIONS
    return None


cdef struct Field:
    Py_ssize_t name        # offset of the name
    Py_ssize_t name_len
    Py_ssize_t value       # offset of the value (leading whitespace skipped)
    Py_ssize_t value_len


cdef Py_ssize_t _scan_fields(const unsigned char* p, Py_ssize_t i, Py_ssize_t end, Field* fields,
                             Py_ssize_t max_fields, Py_ssize_t* count) nogil:
    """Field lines from p[i] up to the empty line. Returns the offset just past the head's final CRLF,
    or -1 when the head is incomplete, over `max_fields`, or outside the plain subset."""
    cdef Py_ssize_t n = 0, start, vstart
    cdef uint64_t w
    while True:
        if i >= end:
            return -1
        if p[i] == b'\r':
            if i + 1 < end and p[i + 1] == b'\n':
                count[0] = n
                return i + 2
            return -1
        if n >= max_fields:
            return -1
        start = i
        while i < end and TCHAR[p[i]]:
            i += 1
        if i == start or i >= end or p[i] != b':':
            return -1           # empty name, obs-fold, whitespace before the colon, odd bytes
        fields[n].name = start
        fields[n].name_len = i - start
        i += 1
        while i < end and (p[i] == b' ' or p[i] == b'\t'):
            i += 1
        vstart = i
        # Eight bytes at a time while all are printable ASCII (0x20-0x7e), then byte by byte (HTAB, CR).
        while i + 8 <= end:
            memcpy(&w, p + i, 8)
            if ((w - 0x2020202020202020ULL) | ((w + 0x0101010101010101ULL) | w)) & 0x8080808080808080ULL:
                break
            i += 8
        while i < end and VCHAR[p[i]]:
            i += 1
        if i + 1 >= end or p[i] != b'\r' or p[i + 1] != b'\n':
            return -1           # incomplete, bare CR/LF, control or non-ASCII bytes
        if i == vstart or p[i - 1] == b' ' or p[i - 1] == b'\t':
            return -1           # empty value or trailing whitespace: llhttp's trimming decides
        fields[n].value = vstart
        fields[n].value_len = i - vstart
        n += 1
        i += 2


cdef enum FieldKind:
    F_OTHER
    F_CONTENT_LENGTH
    F_TRANSFER_ENCODING
    F_CONNECTION
    F_UPGRADE
    F_HOP              # any other connection-specific field (RFC 9110 7.6.1), "proxy-*" included


cdef inline FieldKind _field_kind(const unsigned char* name, Py_ssize_t n) noexcept nogil:
    """What a field name means to a proxy; dispatched on length so most names cost one comparison."""
    if n >= 6 and (name[0] | 0x20) == b'p' and _ieq(name, 6, b"proxy-"):
        return F_HOP
    if n == 14:
        return F_CONTENT_LENGTH if _ieq(name, n, b"content-length") else F_OTHER
    if n == 10:
        if _ieq(name, n, b"connection"):
            return F_CONNECTION
        return F_HOP if _ieq(name, n, b"keep-alive") else F_OTHER
    if n == 17:
        return F_TRANSFER_ENCODING if _ieq(name, n, b"transfer-encoding") else F_OTHER
    if n == 7:
        if _ieq(name, n, b"upgrade"):
            return F_UPGRADE
        return F_HOP if _ieq(name, n, b"trailer") else F_OTHER
    if n == 2:
        return F_HOP if _ieq(name, n, b"te") else F_OTHER
    return F_OTHER


cdef inline int _connection_token(const unsigned char* v, Py_ssize_t n) nogil:
    """1 for "close", 2 for "keep-alive", 0 for anything else (a list, or other fields named)."""
    if _ieq(v, n, b"close"):
        return 1
    if _ieq(v, n, b"keep-alive"):
        return 2
    return 0


cdef inline Py_ssize_t _put_line(char* o, const unsigned char* p, Field* f) noexcept nogil:
    """Writes the field as "name: value\\r\\n" at `o`; returns the bytes written."""
    memcpy(o, p + f.name, f.name_len)
    o += f.name_len
    o[0] = b':'
    o[1] = b' '
    memcpy(o + 2, p + f.value, f.value_len)
    o += 2 + f.value_len
    o[0] = b'\r'
    o[1] = b'\n'
    return f.name_len + f.value_len + 4


cdef char* _out_buffer(char* small, Py_ssize_t cap) except NULL:
    # Each line is rewritten as "name: value\r\n", at most 1 byte longer than received ("name:value"):
    # `cap` (head length + field count) always suffices.
    cdef char* buf
    if cap <= STACK_OUT:
        return small
    buf = <char*>PyMem_Malloc(cap)
    if buf == NULL:
        raise MemoryError()
    return buf


def scan_request(bytes data, Py_ssize_t start, frozenset special, Py_ssize_t max_head_bytes,
                 Py_ssize_t max_headers):
    """One complete plain request head without a body at data[start:], or None (let llhttp parse it).

    Returns (end, method, target, special_fields, lines, fields, keep_alive, http10): `end` is the offset
    just past the head; `special_fields` lists (lowercase name, name, value) of the fields in `special`
    or named proxy-*; `lines` joins every other field as "name: value\\r\\n"; `fields` maps each
    lowercase name to its value.
    """
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t end = n if n - start <= max_head_bytes else start + max_head_bytes
    cdef Py_ssize_t i = start, tstart, head_end, count = 0, k
    cdef Field fields[MAX_SPANS]
    cdef Field* f
    cdef bint http10, close = False, keep = False
    cdef int token
    cdef FieldKind kind
    cdef bytes lname, value
    cdef char* lp
    cdef Py_ssize_t j

    if start < 0 or start >= n:
        return None
    while i < end and p[i] >= b'A' and p[i] <= b'Z':
        i += 1
    method = _method(p + start, i - start)
    if method is None or i >= end or p[i] != b' ':
        return None
    i += 1
    tstart = i
    while i < end and URLCHAR[p[i]]:
        i += 1
    if i == tstart or i + 10 >= end or p[i] != b' ':
        return None
    if not (p[i + 1] == b'H' and p[i + 2] == b'T' and p[i + 3] == b'T' and p[i + 4] == b'P'
            and p[i + 5] == b'/' and p[i + 6] == b'1' and p[i + 7] == b'.'
            and p[i + 9] == b'\r' and p[i + 10] == b'\n'):
        return None
    if p[i + 8] == b'1':
        http10 = False
    elif p[i + 8] == b'0':
        http10 = True
    else:
        return None
    target = PyBytes_FromStringAndSize(<const char*>p + tstart, i - tstart)
    head_end = _scan_fields(p, i + 11, end, fields, min(max_headers, MAX_SPANS), &count)
    if head_end < 0:
        return None

    cdef char small[STACK_OUT]
    cdef char* buf = _out_buffer(small, head_end - start + count)
    cdef Py_ssize_t used = 0
    cdef list special_fields = []
    cdef dict hdict = {}
    try:
        for k in range(count):
            f = &fields[k]
            lname = PyBytes_FromStringAndSize(NULL, f.name_len)
            lp = PyBytes_AS_STRING(lname)
            for j in range(f.name_len):
                lp[j] = _lower(p[f.name + j])
            if lname in hdict:
                return None          # repeated fields: llhttp's path combines them (and refuses two Hosts)
            kind = _field_kind(p + f.name, f.name_len)
            if kind == F_TRANSFER_ENCODING or kind == F_UPGRADE:
                return None
            if kind == F_CONTENT_LENGTH:
                if f.value_len != 1 or p[f.value] != b'0':
                    return None      # a body: llhttp frames it
            elif kind == F_CONNECTION:
                token = _connection_token(p + f.value, f.value_len)
                if token == 0:
                    return None      # names other fields: those become hop-by-hop (llhttp's path drops them)
                close = token == 1
                keep = token == 2
            value = PyBytes_FromStringAndSize(<const char*>p + f.value, f.value_len)
            hdict[lname] = value
            if lname in special or (kind == F_HOP and f.name_len >= 6 and _ieq(p + f.name, 6, b"proxy-")):
                special_fields.append((lname, PyBytes_FromStringAndSize(<const char*>p + f.name, f.name_len), value))
            else:
                used += _put_line(buf + used, p, f)
        lines = PyBytes_FromStringAndSize(buf, used)
    finally:
        if buf != small:
            PyMem_Free(buf)
    keep_alive = keep if http10 else not close
    return (head_end, method, target, special_fields, lines, hdict, keep_alive, http10)


def scan_response(bytes data, Py_ssize_t max_head_bytes):
    """One complete plain HTTP/1.1 response head at the start of `data`, framed by Content-Length, or None
    (let llhttp parse it: 1xx, 204, 304, chunked, close-delimited, HTTP/1.0, anything unusual).

    Returns (end, status, reason, lines, content_length, keep_alive): `lines` joins every field that is
    not hop-by-hop as "name: value\\r\\n", Content-Length included.
    """
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t end = n if n <= max_head_bytes else max_head_bytes
    cdef Py_ssize_t i, rstart, head_end, count = 0, k, j
    cdef Field fields[MAX_SPANS]
    cdef Field* f
    cdef int status, token
    cdef FieldKind kind
    cdef long long length = -1
    cdef bint close = False, seen_connection = False

    if end < 16 or not (p[0] == b'H' and p[1] == b'T' and p[2] == b'T' and p[3] == b'P' and p[4] == b'/'
                        and p[5] == b'1' and p[6] == b'.' and p[7] == b'1' and p[8] == b' '):
        return None
    for j in range(9, 12):
        if p[j] < b'0' or p[j] > b'9':
            return None
    status = (p[9] - 48) * 100 + (p[10] - 48) * 10 + (p[11] - 48)
    if status < 200 or status > 599 or status == 204 or status == 304 or p[12] != b' ':
        return None
    i = rstart = 13
    while i < end and (VCHAR[p[i]]):
        i += 1
    if i + 1 >= end or p[i] != b'\r' or p[i + 1] != b'\n':
        return None
    if i - rstart == 2 and p[rstart] == b'O' and p[rstart + 1] == b'K':
        reason = REASON_OK
    else:
        reason = PyBytes_FromStringAndSize(<const char*>p + rstart, i - rstart)
    head_end = _scan_fields(p, i + 2, end, fields, MAX_SPANS, &count)
    if head_end < 0:
        return None

    cdef char small[STACK_OUT]
    cdef char* buf = _out_buffer(small, head_end + count)
    cdef Py_ssize_t used = 0
    try:
        for k in range(count):
            f = &fields[k]
            kind = _field_kind(p + f.name, f.name_len)
            if kind == F_OTHER:
                used += _put_line(buf + used, p, f)
            elif kind == F_CONTENT_LENGTH:
                if length >= 0 or f.value_len > 15:
                    return None
                length = 0
                for j in range(f.value, f.value + f.value_len):
                    if p[j] < b'0' or p[j] > b'9':
                        return None
                    length = length * 10 + (p[j] - 48)
                used += _put_line(buf + used, p, f)
            elif kind == F_CONNECTION:
                token = _connection_token(p + f.value, f.value_len)
                if token == 0 or seen_connection:
                    return None      # llhttp's flags from several Connection lines accumulate
                seen_connection = True
                close = token == 1
            elif kind != F_HOP:
                return None          # Transfer-Encoding or Upgrade
        if length < 0:
            return None
        lines = PyBytes_FromStringAndSize(buf, used)
    finally:
        if buf != small:
            PyMem_Free(buf)
    return (head_end, status, reason, lines, length, not close)


def valid_host(bytes host) -> bool:
    """RFC 9112 3.2 / RFC 3986 host with an optional port: reg-name or IPv4 (possibly empty, for HTTP/1.0),
    or an [IP-literal]; the same grammar as exchange.py's regular expression, without a regex call."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(host)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(host), i = 0
    if n > 0 and p[0] == b'[':
        i = 1
        while i < n and IPLITERAL[p[i]]:
            i += 1
        if i == 1 or i >= n or p[i] != b']':
            return False
        i += 1
    else:
        while i < n and REGNAME[p[i]]:
            i += 1
    if i < n and p[i] == b':':
        i += 1
        while i < n and b'0' <= p[i] <= b'9':
            i += 1
    return i == n


def path_needs_normalizing(bytes target) -> bool:
    """Whether the path of a request-target holds a percent-encoding, a dot-segment candidate ("/.") or a
    doubled slash: the ones http.normalize_path may change. One C pass, stopping at the query."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(target)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(target), i
    for i in range(n):
        if p[i] == b'?':
            return False
        if p[i] == b'%':
            return True
        if p[i] == b'/' and i + 1 < n and (p[i + 1] == b'.' or p[i + 1] == b'/'):
            return True
    return False
