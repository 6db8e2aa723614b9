# cython: language_level=3
"""agw's JWT verification core: one extension module, its parts in agw/fastjwt/ by concern.

Everything a request needs is here, in C-level code where it matters: finding the token, the verified-token
cache, splitting and strict base64url decoding, header and claim checks, key lookup by (issuer, kid) and the
signature check through `cryptography` key objects built once per JWKS. It never touches asyncio: when keys
must be fetched it returns a `Pending` and the Python layer (agw/jwt/policy.py) does the waiting.

    algorithms.pxi  the algorithm table (name, family, digest, key type) and each family's signature check
    b64.pxi         strict base64url
    claims.pxi      the claims agw can require (CLAIM_BITS), JSON hygiene, the in-place claims scanner
    results.pxi     AuthResult and Pending
    keys.pxi        Key (verifies by its algorithm's family) and Provider (an issuer's rules and key set)
    cache.pxi       the verified-token cache
    location.pxi    tokens in a query parameter or a cookie
    core.pxi        Core: the request entry point and the verification of one token

Declarations (classes, attributes, enums shared with other modules) are in _fastjwt.pxd; the Python-visible API
is typed in _fastjwt.pyi. Reasons are small ints (the `Reason` enum); `REASONS` maps them to the stable codes.
The AuthResult objects for each reason are built by the policy (agw/jwt/errors.py has the text) and handed in.
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

# Imported under private names: the module's namespace is its API (_fastjwt.pyi), nothing else.
import os as _os
from collections import OrderedDict as _OrderedDict

import orjson as _orjson
from cryptography.exceptions import InvalidSignature as _InvalidSignatureError
from cryptography.hazmat.primitives import hashes as _hashes
from cryptography.hazmat.primitives.asymmetric import ec as _ec, padding as _padding

cdef object _loads = _orjson.loads
cdef object _dumps = _orjson.dumps

# Stable reason codes, indexed by the Reason enum.
REASONS = ("missing", "malformed", "unsupported_algorithm", "expired", "not_yet_valid", "unknown_issuer",
           "audience_not_allowed", "missing_claim", "unknown_key", "invalid_signature", "keys_unavailable",
           "type_not_allowed", "lifetime_too_long", "subject_not_allowed", "insufficient_scope")

include "fastjwt/algorithms.pxi"
include "fastjwt/b64.pxi"
include "fastjwt/claims.pxi"
include "fastjwt/results.pxi"
include "fastjwt/keys.pxi"
include "fastjwt/cache.pxi"
include "fastjwt/location.pxi"
include "fastjwt/core.pxi"
