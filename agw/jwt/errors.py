"""Reason codes and their user-facing text, in one place.

A token failure has one stable code (used alike in metrics labels and logs) and one message (the 401 body is
`authentication failure: <message>`). The codes' order is the Cython core's `Reason` enum (`REASONS`).
"""
from __future__ import annotations

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
}
assert set(MESSAGES) == set(REASONS), "errors.MESSAGES must name every reason of the core"

BODY_PREFIX = b"authentication failure: "
CHALLENGE = b'Bearer realm="agw"'
CHALLENGE_INVALID = b'Bearer realm="agw", error="invalid_token"'

MODES = ("strict", "optional", "permissive")

# Optional / permissive without a token: the request goes on, unauthenticated.
ANONYMOUS = AuthResult(True, outcome="no_token")


def denial(reason: str) -> AuthResult:
    """The 401 result for a reason (strict and optional modes)."""
    message = MESSAGES[reason]
    return AuthResult(
        False, reason=reason, message=message,
        www_authenticate=CHALLENGE if reason == "missing" else CHALLENGE_INVALID,
        body=BODY_PREFIX + message.encode(),
    )


def passed_through(reason: str) -> AuthResult:
    """Permissive mode: the failure is recorded (reason/message for logs and metrics) but the request passes,
    with the credential left in place."""
    return AuthResult(True, reason=reason, message=MESSAGES[reason])


_DENIALS = {r: denial(r) for r in REASONS}
_PASSED = {r: passed_through(r) for r in REASONS}


def results_for_mode(mode: str) -> tuple[AuthResult, ...]:
    """One AuthResult per reason, in the core's order, for a policy mode."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    out = []
    for r in REASONS:
        if r == "missing" and mode != "strict":
            out.append(ANONYMOUS)
        elif mode == "permissive":
            out.append(_PASSED[r])
        else:
            out.append(_DENIALS[r])
    return tuple(out)
