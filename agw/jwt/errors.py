"""Reason codes and their user-facing text, in one place.

A token failure has one stable code (used alike in metrics labels and logs) and one message (the 401 body is
`authentication failure: <message>`). The codes' order is the Cython core's `Reason` enum (`REASONS`).
"""
from __future__ import annotations

from typing import Iterable, Optional

from .._fastjwt import REASONS, AuthResult

MESSAGES: dict[str, str] = {
    "missing": "no bearer token found",
    "malformed": "malformed token",
    "unsupported_algorithm": "unsupported algorithm",
    "expired": "token expired",
    "not_yet_valid": "token not yet valid",
    "unknown_issuer": "unknown issuer",
    "audience_not_allowed": "audience not allowed",
    "missing_claim": "missing required claim",
    "unknown_key": "unknown key",
    "invalid_signature": "signature invalid",
    "keys_unavailable": "keys unavailable",
    "type_not_allowed": "token type not allowed",
    "lifetime_too_long": "token lifetime too long",
    "subject_not_allowed": "subject not allowed",
    "insufficient_scope": "insufficient scope",
}
assert set(MESSAGES) == set(REASONS), "errors.MESSAGES must name every reason of the core"

BODY_PREFIX = b"authentication failure: "
CHALLENGE = b'Bearer realm="agw"'
CHALLENGE_INVALID = b'Bearer realm="agw", error="invalid_token"'
CHALLENGE_SCOPE = b'Bearer realm="agw", error="insufficient_scope"'

MODES = ("strict", "optional", "permissive")

# Optional / permissive without a token: the request goes on, unauthenticated.
ANONYMOUS = AuthResult(True, outcome="no_token")


def _quoted(value: str) -> bytes:
    return b'"' + value.replace("\\", "\\\\").replace('"', '\\"').encode("latin-1") + b'"'


def denial(reason: str, *, resource_metadata: str = "", scopes: Optional[Iterable[str]] = None,
           issuer: Optional[str] = None) -> AuthResult:
    """The result for a reason (strict and optional modes): 401, or 403 for insufficient_scope (RFC 6750 3.1).
    `resource_metadata`: the RFC 9728 metadata URL the challenge names; `scopes`: the scope attribute of a 403."""
    message = MESSAGES[reason]
    challenge = CHALLENGE if reason == "missing" else CHALLENGE_SCOPE if reason == "insufficient_scope" \
        else CHALLENGE_INVALID
    if scopes:
        challenge += b", scope=" + _quoted(" ".join(scopes))
    if resource_metadata:
        challenge += b", resource_metadata=" + _quoted(resource_metadata)
    return AuthResult(
        False, reason=reason, message=message, www_authenticate=challenge, body=BODY_PREFIX + message.encode(),
        status=403 if reason == "insufficient_scope" else 401, issuer=issuer,
    )


def passed_through(reason: str) -> AuthResult:
    """Permissive mode: the failure is recorded (reason/message for logs and metrics) but the request passes,
    with the credential left in place."""
    return AuthResult(True, reason=reason, message=MESSAGES[reason])


_DENIALS = {r: denial(r) for r in REASONS}
_PASSED = {r: passed_through(r) for r in REASONS}


def results_for_mode(mode: str, resource_metadata: str = "") -> tuple[AuthResult, ...]:
    """One AuthResult per reason, in the core's order, for a policy mode (challenges naming `resource_metadata`
    when the route publishes RFC 9728 metadata)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    out = []
    for r in REASONS:
        if r == "missing" and mode != "strict":
            out.append(ANONYMOUS)
        elif mode == "permissive":
            out.append(_PASSED[r])
        else:
            out.append(denial(r, resource_metadata=resource_metadata) if resource_metadata else _DENIALS[r])
    return tuple(out)


def scope_result(mode: str, issuer: str, scopes: Iterable[str], resource_metadata: str = "") -> AuthResult:
    """What a verified token of `issuer` that lacks one of `scopes` gets: 403 naming the scopes (permissive: passes)."""
    if mode == "permissive":
        return _PASSED["insufficient_scope"]
    return denial("insufficient_scope", resource_metadata=resource_metadata, scopes=sorted(scopes), issuer=issuer)
