# What a verification answers (included by agw/_fastjwt.pyx): AuthResult, or Pending when keys must be fetched.

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
                 new_cookie=None, str outcome=None, int status=0):
        self.allowed = allowed
        self.status = 0 if allowed else (status or 401)
        self.answer_headers = ((b"www-authenticate", www_authenticate),) if www_authenticate else ()
        self.drop_header = None
        self.outcome = outcome if outcome is not None else (reason if reason is not None else "ok")
        self.label = issuer if issuer is not None else ""
        self.kind = "jwt"
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
        r.kind = self.kind
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
