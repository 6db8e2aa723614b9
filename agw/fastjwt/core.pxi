# The core (included last by agw/_fastjwt.pyx): per-policy state, the request entry point, verification of one
# token from its split to its signature, and the claim headers a verified token yields.

cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


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


cdef Py_ssize_t HEADER_CACHE_MAX = 1024

# add_headers of every verified result without claimsToHeaders (never modified: see AuthResult).
cdef list _NO_HEADERS = []


cdef tuple _parse_header(const unsigned char* s, Py_ssize_t n):
    """(alg id, kid, typ) of a JOSE header segment (typ normalized, None when absent or not a string), or
    (-(reason + 1), None, None) when it is refused."""
    raw = _b64decode(s, n)
    if raw is None:
        return (-(R_MALFORMED + 1), None, None)
    header = _json_object(raw)
    if header is None:
        return (-(R_MALFORMED + 1), None, None)
    alg_name = (<dict>header).get("alg")
    if type(alg_name) is not str:
        return (-(R_MALFORMED + 1), None, None)
    found_alg = PyDict_GetItem(_ALG_IDS, alg_name)
    if found_alg == NULL:
        return (-(R_UNSUPPORTED_ALG + 1), None, None)  # includes "none" in every spelling
    kid = (<dict>header).get("kid")
    if kid is not None and type(kid) is not str:
        return (-(R_MALFORMED + 1), None, None)
    typ = (<dict>header).get("typ")
    typ = normalize_typ(<str>typ) if type(typ) is str else None
    # We understand no extensions, so any critical one is refused; JWE headers have no business here.
    if "crit" in <dict>header or "enc" in <dict>header or "zip" in <dict>header:
        return (-(R_MALFORMED + 1), None, None)
    # jwk / jku / x5u / x5c are ignored on purpose: keys come only from the configured JWKS.
    return (<object>found_alg, kid, typ)


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
                 Py_ssize_t cache_max_bytes=64 << 20, on_pending=None, on_unknown_issuer=None):
        if len(results) != R_COUNT:
            raise ValueError("results must have one AuthResult per reason")
        self.groups = {}
        self.header_cache = {}
        self.need_claims = False
        for p in providers:
            self.groups.setdefault((<Provider>p).issuer, []).append(p)
            if (<Provider>p).scopes is not None:
                self.need_claims = True    # `scope`/`scp` are not read by the in-place scanner
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
        self.cache = TokenCache(skew, cache_enabled, cache_max_entries, cache_max_bytes)
        self.cache_on = self.cache.enabled
        # authenticate() hands a Pending to on_pending(pending) and returns what it returns (the policy's fetch),
        # so the proxy calls this method directly, with no Python frame in front of it.
        self.on_pending = on_pending
        self.on_unknown_issuer = on_unknown_issuer

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
            now = _now()   # a vDSO read: cheap enough that a coarse clock saves nothing
            if self.cache_on:
                # Looked up in place in the header value: a hit allocates nothing and copies nothing.
                r = self.cache.get(p + start, end - start, now)
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
            r = self.cache.get(<const unsigned char*>PyBytes_AS_STRING(token), PyBytes_GET_SIZE(token), now)
            if r is not None:
                return r
        return self._verify_slow(token, now, allow_pending)

    cdef object _fail(self, int reason):
        return self.results[reason]

    cdef object _unknown_issuer(self, object iss):
        if self.on_unknown_issuer is not None:
            self.on_unknown_issuer(iss)     # the policy logs it (bounded), naming the closest configured issuer
        return self.results[R_UNKNOWN_ISSUER]

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
        cdef double iat_d = 0.0
        cdef bint has_exp, has_nbf, has_iat
        claims = None
        if not self.claim_headers and not self.need_claims and _scan_claims(<const unsigned char*>rp, PyBytes_GET_SIZE(raw), &cs):
            # The plain subset, read in place: every claim present already has a valid type.
            if cs.iss_at < 0:
                return self._fail(R_UNKNOWN_ISSUER)
            iss = PyUnicode_DecodeASCII(rp + cs.iss_at, cs.iss_len, NULL)
            found = PyDict_GetItem(self.groups, iss)
            if found == NULL:
                return self._unknown_issuer(iss)
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
            if has_iat:
                iat_d = cs.iat
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
                return self._unknown_issuer(iss)
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
            if has_iat:
                if not _is_number(iat):
                    return self._fail_for(R_MALFORMED, <str>iss)   # a NumericDate (RFC 7519 4.1.6), as exp and nbf
                iat_d = _as_double(iat)
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
        cdef int why
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
            if prov.profile:
                why = prov.check_profile(parsed[2], has_exp, exp_d, has_iat, iat_d, sub)
                if why >= 0:
                    if first_failure < 0:
                        first_failure = why
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
                elif prov.any_kid:
                    for k in prov.keys:
                        if (<Key>k).kid is None and (<Key>k).algs & alg_bit:
                            matches.append(k)
                            owners.append(prov)
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
        lacking = None
        for i in range(len(matches)):
            key = <Key>matches[i]
            if key.verify(alg, signing_input, sig):
                prov = <Provider>owners[i]
                if prov.scopes is not None and not _has_scopes(claims, <frozenset>prov.scopes):
                    # A verified token of this provider without its scopes: 403, unless another one takes it.
                    lacking = prov.scope_result if prov.scope_result is not None else self._fail_for(R_SCOPE, <str>iss)
                    continue
                result = self._success(claims, raw, prov.issuer, sub)
                if self.cache_on:
                    self.cache.put(token, result, exp_d, nbf_d, <Provider>owners[i])
                return result
        if lacking is not None:
            return lacking
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
        r.kind = "jwt"
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

    # -- housekeeping ---------------------------------------------------------------------------------------

    def purge_expired(self, double now=0.0) -> int:
        """Drop entries that are expired or belong to an old key set (called from a timer, off the hot path)."""
        return self.cache.purge(now if now > 0.0 else _now())

    def cache_stats(self) -> dict:
        return self.cache.stats()

    @property
    def hits(self) -> int:
        return self.cache.hits

    @property
    def misses(self) -> int:
        return self.cache.misses

    @property
    def providers(self) -> list:
        return [p for g in self.groups.values() for p in g]
