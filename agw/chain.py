"""The contract between request policies (JWT authentication, authorization, ...) and the proxy.

A route holds its request policies in order. For each request the proxy calls `policy.apply(request)` on
each in turn; every call returns a `Verdict` (or a coroutine resolving to one, when the policy must wait,
e.g. for a key set), or None when the request is no concern of the policy (nothing is counted or logged).
A verdict that does not allow the request ends the chain with its answer; otherwise the
request goes on, and once every policy has allowed it, the proxy forwards it with all the verdicts' edits
applied. The proxy reads nothing else: it does not know what produced a verdict.

Nothing here is on the hot path: the classes below are for typing and for policies whose verdicts are plain
Python objects. The JWT core's own result type (agw._fastjwt.AuthResult) carries the same attributes.
"""
from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Optional, Protocol, Union


class Request(Protocol):
    """What a policy may read of the request being decided (the proxy's exchange)."""
    method: bytes
    target: bytes          # as received (origin-form), query included
    hdict: dict            # lower-case header name -> value; repeated fields joined with ", " ("; " for cookie)
    peer: bytes            # the client's address
    verdicts: Optional[list]   # the verdicts of the policies before this one, in order (None: none yet)


class Verdict(Protocol):
    allowed: bool
    # The answer when not allowed.
    status: int
    body: bytes
    answer_headers: tuple[tuple[bytes, bytes], ...]
    # Edits of an allowed request.
    drop_header: Optional[bytes]        # a lower-case request header to remove (e.g. the credential)
    add_headers: Sequence[tuple[bytes, bytes]]
    new_target: Optional[bytes]         # replaces the request-target
    new_cookie: Optional[bytes]         # replaces every Cookie line (b"": removes them)
    # For the access log and metrics: the policy kind that decided ("jwt", "authorization"), a short outcome
    # ("ok", "no_token", a reason) and a bounded label.
    kind: str
    outcome: str
    label: str
    log_fields: tuple[tuple[str, object], ...]


class RequestPolicy(Protocol):
    kind: str                           # names the policy in metrics and logs ("jwt", "authorization")
    strip_headers: frozenset[bytes]     # client-sent headers always removed (copies of what the policy adds)
    edited_headers: frozenset[bytes]    # headers a verdict may drop or replace (the proxy sets them aside)

    def apply(self, request: Request) -> Union[Verdict, Awaitable[Verdict], None]: ...


class Answer:
    """A verdict with no request edits: an allow, or a refusal with its status and body (shared, immutable)."""
    __slots__ = ("allowed", "status", "body", "answer_headers", "kind", "outcome", "label", "log_fields")
    drop_header = None
    add_headers: tuple = ()
    new_target = None
    new_cookie = None

    def __init__(self, allowed: bool, outcome: str, *, kind: str, status: int = 0, body: bytes = b"",
                 answer_headers: tuple[tuple[bytes, bytes], ...] = (), label: str = "",
                 log_fields: tuple[tuple[str, object], ...] = ()) -> None:
        self.allowed = allowed
        self.kind = kind
        self.status = status
        self.body = body
        self.answer_headers = answer_headers
        self.outcome = outcome
        self.label = label
        self.log_fields = log_fields

    def __repr__(self) -> str:
        return f"Answer(allowed={self.allowed}, outcome={self.outcome!r}, status={self.status})"
