# Token locations other than a header (included by agw/_fastjwt.pyx): a query parameter and a cookie, each
# found and removed from what the backend receives.

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
