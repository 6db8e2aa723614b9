# Declarations of the verification core's classes (implemented in _fastjwt.pyx and the files it includes).
# Other Cython modules may `cimport` these so calls between them stay C-level.
from libc.stdint cimport uint64_t

cdef enum Reason:
    R_MISSING = 0
    R_MALFORMED = 1
    R_UNSUPPORTED_ALG = 2
    R_EXPIRED = 3
    R_NOT_YET_VALID = 4
    R_UNKNOWN_ISSUER = 5
    R_AUDIENCE = 6
    R_MISSING_CLAIM = 7
    R_UNKNOWN_KEY = 8
    R_INVALID_SIG = 9
    R_KEYS_UNAVAILABLE = 10
    R_TYPE = 11
    R_LIFETIME = 12
    R_SUBJECT = 13
    R_SCOPE = 14
    R_COUNT = 15

cdef enum Location:
    LOC_HEADER = 0
    LOC_QUERY = 1
    LOC_COOKIE = 2


cdef class AuthResult:
    cdef readonly bint allowed
    cdef readonly object reason
    cdef readonly object message
    cdef readonly object www_authenticate
    cdef readonly object body
    cdef object _claims
    cdef readonly bytes claims_json
    cdef readonly bint verified
    cdef readonly object issuer
    cdef readonly object subject
    cdef readonly object add_headers
    cdef readonly bint remove_credential
    cdef readonly object new_target
    cdef readonly object new_cookie
    # The request-policy verdict the proxy applies (agw/chain.py): it reads only these and the rewrites above.
    cdef readonly int status
    cdef readonly tuple answer_headers
    cdef readonly object drop_header
    cdef readonly str outcome
    cdef readonly str label
    cdef readonly str kind

    cpdef AuthResult with_rewrite(self, object new_target, object new_cookie)


cdef class Key:
    cdef readonly object kid
    cdef readonly unsigned int algs
    cdef readonly object identity
    cdef object pub
    cdef bytes ec_order
    cdef int coord
    cdef Py_ssize_t modulus_len

    cdef int verify(self, int alg, bytes signing_input, bytes sig) except -1


cdef class Provider:
    cdef readonly str issuer
    cdef readonly object audiences
    cdef readonly unsigned int required
    cdef readonly long long generation
    cdef dict by_kid
    cdef list keys
    cdef readonly object fingerprint
    cdef public object source
    # Token profile (issue 18): checked at verification (a cache miss) only.
    cdef readonly object types          # frozenset of normalized JOSE `typ` values, or None
    cdef readonly double max_lifetime   # exp - iat bound in seconds; 0: none
    cdef readonly object subjects       # (frozenset exact, tuple prefixes, tuple compiled regexes) or None
    cdef readonly object scopes         # frozenset of scopes every token must carry, or None
    cdef public object scope_result     # the answer to a verified token that lacks a scope (403)
    cdef bint profile                   # types, max_lifetime or subjects set
    cdef public bint any_kid            # kid-less keys (a PEM file) verify tokens whatever kid they name

    cdef int check_profile(self, object typ, bint has_exp, double exp_d, bint has_iat, double iat_d, object sub)


cdef class CacheEntry:
    cdef bytes token
    cdef double exp
    cdef double nbf
    cdef long long generation
    cdef Provider provider
    cdef AuthResult result
    cdef Py_ssize_t size


cdef class TokenCache:
    cdef readonly bint enabled
    cdef double skew
    cdef object entries
    cdef Py_ssize_t max_entries
    cdef Py_ssize_t max_bytes
    cdef Py_ssize_t bytes
    cdef uint64_t* seen
    cdef readonly long long hits
    cdef readonly long long misses

    cdef object get(self, const unsigned char* p, Py_ssize_t n, double now)
    cdef void put(self, bytes token, AuthResult result, double exp, double nbf, Provider provider)
    cdef Py_ssize_t purge(self, double now)
    cdef dict stats(self)


cdef class Pending:
    cdef readonly bytes token
    cdef readonly int reason
    cdef readonly list providers
    cdef readonly object new_target
    cdef readonly object new_cookie


cdef class Core:
    cdef dict groups
    cdef dict header_cache
    cdef double skew
    cdef Py_ssize_t max_token
    cdef tuple results
    cdef dict issuer_results
    cdef bint remove_credential
    cdef list claim_headers
    cdef int location
    cdef bytes header_name
    cdef object drop_header
    cdef bytes prefix_lower
    cdef Py_ssize_t prefix_len
    cdef bytes param_name
    cdef bytes cookie_name
    cdef bint cache_on
    cdef TokenCache cache
    cdef object on_pending
    cdef bint need_claims
    cdef object on_unknown_issuer

    cpdef object verify_token(self, bytes token, double now=*, bint allow_pending=*)
    cdef object _authenticate(self, dict headers, bytes target)
    cdef object _entry(self, dict headers, bytes target)
    cdef object _verify_slow(self, bytes token, double now, bint allow_pending)
    cdef object _fail(self, int reason)
    cdef object _unknown_issuer(self, object iss)
    cdef object _fail_for(self, int reason, str issuer)
    cdef AuthResult _success(self, object claims, bytes claims_json, str issuer, object sub)
    cdef list _claim_header_values(self, dict claims)
