"""RFC 8705 section 3, certificate-bound access tokens: a token whose `cnf` claim holds `x5t#S256` is accepted
only on a connection whose client certificate has that SHA-256 thumbprint.

A request policy (agw/chain.py) that runs after jwtAuth on its routes (strict and optional modes; permissive
never refuses). A token without `cnf` is no concern of it: `apply` returns None (no verdict: nothing counted or
logged), and the answer for each verified token is kept by its claims, so a token seen before costs one dict
lookup. Compiled by Cython (setup.py); runs uncompiled too.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, Optional

from ..chain import Answer

KIND = "certificate_binding"
CHALLENGE = ((b"www-authenticate", b'Bearer realm="agw", error="invalid_token"'),)
NO_CERTIFICATE = Answer(False, "certificate_required", kind=KIND, status=401, answer_headers=CHALLENGE, label="cnf",
                        body=b"authentication failure: certificate-bound token without a client certificate")
MISMATCH = Answer(False, "certificate_mismatch", kind=KIND, status=401, answer_headers=CHALLENGE, label="cnf",
                  body=b"authentication failure: token bound to another certificate")
BOUND_OK = Answer(True, "ok", kind=KIND, label="cnf")
_UNBOUND = ""                  # cached: the token carries no x5t#S256
_CACHE_LIMIT = 10_000


def peer_certificate_der(request: Any) -> Optional[bytes]:
    """The DER of the verified client certificate of the request's connection (None: plain HTTP, none sent)."""
    transport = request.proto.transport
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None


class CertificateBinding:
    kind = KIND
    strip_headers: frozenset = frozenset()
    edited_headers: frozenset = frozenset()

    def __init__(self) -> None:
        self.thumbprints: dict = {}   # claims JSON (bytes, its hash cached) -> x5t#S256, or "" when unbound

    def apply(self, request: Any) -> Any:
        verdicts = request.verdicts
        if verdicts is None:
            return None
        verdict = verdicts[len(verdicts) - 1]   # jwtAuth's: this policy follows it in the chain
        claims_json = verdict.claims_json
        if claims_json is None:
            return None     # no verified token (optional mode without one)
        want = self.thumbprints.get(claims_json)
        if want is None:
            want = self._thumbprint(verdict, claims_json)
        if want is _UNBOUND or not want:
            return None
        der = peer_certificate_der(request)
        if not der:
            return NO_CERTIFICATE
        got = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
        return BOUND_OK if hmac.compare_digest(got, want) else MISMATCH

    def _thumbprint(self, verdict: Any, claims_json: bytes) -> str:
        want = _UNBOUND
        if claims_json.find(b'"cnf"') >= 0:
            cnf = verdict.claims.get("cnf")
            value = cnf.get("x5t#S256") if isinstance(cnf, dict) else None
            if value is not None:   # other confirmation methods (jkt: DPoP) are not this check's
                # A thumbprint that is not a string can match no certificate: refused as a mismatch.
                want = value if isinstance(value, str) and value else "\x00invalid"
        if len(self.thumbprints) >= _CACHE_LIMIT:
            self.thumbprints.clear()
        self.thumbprints[claims_json] = want
        return want
