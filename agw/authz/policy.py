"""AuthorizationPolicy: the `authorization` request policy (agw/chain.py), CEL rules decided in agentgateway's
order, after JWT authentication.

- any deny rule that is true -> denied;
- any require rule that is not true -> denied;
- any allow rule that is true -> allowed; otherwise allowed only when there are no allow rules;
- then, for an allowed request, any shadow rule that is not true -> still allowed, counted and logged as
  `would_deny` (a require being rolled out: measured, never enforced).
An expression that errors at run time counts as false. Denied: 403, text/plain, `authorization failed`.

Verdicts are shared, immutable `Answer`s built here once, one per rule that can decide. A policy whose rules read
only `jwt` gives one verdict per token: it is kept in a bounded dict keyed by the verified claims (the JWT core's
`claims_json`, the same bytes object for every cache hit of a token, whose hash Python keeps), so a request with
a known token pays one dict lookup and no CEL evaluation. Rules that read the request too get, per token, the
claims they can reach, decoded once; the engine is handed only the claims and headers the rules can reach.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

from .._fastjwt import AuthResult
from ..chain import Answer
from ..config.model import Authorization
from .cel import Program, activation, request_variables, source_variables

DENIED_STATUS = 403
DENIED_BODY = b"authorization failed"
KIND = "authorization"
CACHE_ENTRIES = 4096
DEFAULT_LABEL = "default"     # the decision no rule made: no allow rule, or no allow rule matched


class Rule:
    __slots__ = ("action", "name", "program", "verdict")

    def __init__(self, action: str, source: str, name: str) -> None:
        self.action = action
        self.name = name
        self.program = Program(source)
        fields = (("authz_rule", name),)
        if action in ("deny", "require"):
            self.verdict = _denied(name, fields)
        elif action == "allow":
            self.verdict = Answer(True, "allow", kind=KIND, label=name, log_fields=fields)
        else:
            self.verdict = Answer(True, "would_deny", kind=KIND, label=name, log_fields=fields)

    def __repr__(self) -> str:
        return f"Rule({self.action}, {self.name!r}, {self.program.source!r})"


def _verified(verdicts: Optional[list]) -> Any:
    """The JWT core's verdict for a verified token among the verdicts before this policy (normally the last
    one), or None."""
    if verdicts:
        v = verdicts[-1]
        if type(v) is AuthResult:
            return v if v.verified else None
        for v in reversed(verdicts):
            if type(v) is AuthResult:
                return v if v.verified else None
    return None


def _union(sets: Iterable[Optional[frozenset]]) -> Optional[frozenset]:
    out: frozenset = frozenset()
    for s in sets:
        if s is None:
            return None
        out |= s
    return out


def _denied(label: str, fields: tuple = ()) -> Answer:
    return Answer(False, "deny", kind=KIND, status=DENIED_STATUS, body=DENIED_BODY, label=label,
                  log_fields=fields)


class AuthorizationPolicy:
    """A compiled `authorization` policy (all the rules that apply to one route, merged)."""

    kind = KIND
    strip_headers: frozenset = frozenset()
    edited_headers: frozenset = frozenset()

    def __init__(self, cfg: Authorization, *, name: str = "", cache_entries: int = CACHE_ENTRIES) -> None:
        """Compiles every rule; raises agw.config.cel.CelError (the caller adds the rule's path)."""
        self.name = name
        self.rules = [Rule(action, source, rule_name) for action, source, rule_name in cfg.actions()]
        self.deny = tuple(r for r in self.rules if r.action == "deny")
        self.require = tuple(r for r in self.rules if r.action == "require")
        self.allow = tuple(r for r in self.rules if r.action == "allow")
        self.shadow = tuple(r for r in self.rules if r.action == "shadow")
        reads = frozenset().union(*(r.program.reads for r in self.rules))
        self.reads_jwt = "jwt" in reads
        self.reads_request = "request" in reads
        self.reads_source = "source" in reads
        self.jwt_only = not (self.reads_request or self.reads_source)
        # Only what the rules can reach is converted for the engine (None: everything).
        self.claim_keys = _union(r.program.claims for r in self.rules if "jwt" in r.program.reads)
        names = _union(r.program.headers for r in self.rules if "request" in r.program.reads)
        self.header_names = None if names is None else tuple((n, n.encode("latin-1")) for n in sorted(names))
        # One rule: its variables go straight to the engine (no activation object to build first).
        self.single_eval = len(self.rules) == 1
        self.allowed_default = Answer(True, "allow", kind=KIND, label=DEFAULT_LABEL)
        self.denied_default = _denied(DEFAULT_LABEL)
        # Verified claims (the JWT core's claims_json bytes) -> the verdict (jwt-only rules) or the claims the
        # rules can reach (rules that also read the request), bounded.
        self.cache: dict[bytes, Any] = {}
        self.cache_entries = max(cache_entries, 2)
        # The verdict for a request without verified claims (no token, or Optional/Permissive passing an
        # invalid one): `jwt` is empty.
        self.anonymous = self.decide(activation({"jwt": {}})) if self.jwt_only else None

    # --- the request path ---------------------------------------------------------------------------------
    def apply(self, request: Any) -> Answer:
        found = _verified(request.verdicts)
        if self.jwt_only:
            if found is None:
                return self.anonymous
            key = found.claims_json
            hit = self.cache.get(key) if key is not None else None
            if hit is not None:
                return hit
            hit = self.decide(activation({"jwt": self._reachable(found.claims)}))
            if key is not None:
                self._remember(key, hit)
            return hit
        variables: dict = {}
        if self.reads_jwt:
            variables["jwt"] = self._claims_of(found) if found is not None else {}
        if self.reads_request:
            variables["request"] = request_variables(request, self.header_names)
        if self.reads_source:
            variables["source"] = source_variables(request)
        return self.decide(variables if self.single_eval else activation(variables))

    def decide(self, act: Any) -> Answer:
        """The verdict of the rules over one activation (or, for one rule, its variables; None: no variables
        could be built, every expression counts as false)."""
        for r in self.deny:
            if r.program.test(act):
                return r.verdict
        for r in self.require:
            if not r.program.test(act):
                return r.verdict
        verdict: Optional[Answer] = None
        if self.allow:
            for r in self.allow:
                if r.program.test(act):
                    verdict = r.verdict
                    break
            else:
                return self.denied_default
        for r in self.shadow:
            if not r.program.test(act):
                return r.verdict
        return verdict if verdict is not None else self.allowed_default

    def _reachable(self, claims: Optional[dict]) -> dict:
        keys = self.claim_keys
        if not claims:
            return {}
        if keys is None:
            return claims
        return {k: claims[k] for k in keys if k in claims}

    def _claims_of(self, found: Any) -> dict:
        key = found.claims_json
        if key is None:
            return self._reachable(found.claims)
        claims = self.cache.get(key)
        if claims is None:
            claims = self._reachable(found.claims)
            self._remember(key, claims)
        return claims

    def _remember(self, key: bytes, value: Any) -> None:
        cache = self.cache
        if len(cache) >= self.cache_entries:
            # Bounded: keep the newer half (dicts keep insertion order), amortised O(1) per insert.
            keep = list(cache.items())[len(cache) // 2:]
            cache.clear()
            cache.update(keep)
        cache[key] = value

    # --- what the runtime may call on a policy -----------------------------------------------------------
    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self.cache.clear()

    def ready(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"AuthorizationPolicy({self.name!r}, {len(self.rules)} rules, jwt_only={self.jwt_only})"
