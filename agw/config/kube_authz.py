"""`AgentgatewayPolicy.spec.traffic.authorization` -> the native `authorization` policy, and the merging of the
rules of every attachment point that applies to a route (Gateway, Gateway listener, HTTPRoute, HTTPRoute rule).

Each of the policy's `matchExpressions` becomes one rule of the policy's `action` (Allow, Deny or Require),
named `<namespace>/<policy>.matchExpressions[i]` in metrics and the access log. Every expression is compiled
here: one that does not compile makes the policy Invalid with its field path, the parser's message and position.
Unlike jwtAuthentication (the most specific policy wins), authorization rules are merged, never overridden.
"""
from __future__ import annotations

from typing import Any, Optional

import msgspec

from .authz import MAX_RULES, deny_warning
from .cel import compile_error
from .kube_model import AuthorizationSpec
from .model import Authorization, AuthzRule, Policies, merge_authorization

AUTHZ_PATH = "spec.traffic.authorization"
ACTIONS = {"allow": "allow", "deny": "deny", "require": "require"}


def translate_authorization(status: Any, spec: AuthorizationSpec, invalid: str,
                            warnings: list[str]) -> Optional[Authorization]:
    """The native policy of `spec`, or None after reporting its problems on `status` (condition `invalid`)."""
    namespace, name = status.label.split("/")[1:3]
    before = len(status.problems)
    action = "allow"    # agentgateway's default
    if spec.action is not None:
        action = ACTIONS.get(spec.action.strip().lower(), "")
        if not action:
            status.fail(invalid, f"{AUTHZ_PATH}.action", f'invalid action "{spec.action}" (Allow, Deny or Require)')
    expressions = spec.policy.match_expressions if spec.policy is not None else None
    epath = f"{AUTHZ_PATH}.policy.matchExpressions"
    if not expressions:
        status.fail(invalid, epath, "at least one expression is required")
    elif len(expressions) > MAX_RULES:
        status.fail(invalid, epath, f"at most {MAX_RULES} expressions (got {len(expressions)})")
    rules = []
    for i, source in enumerate(expressions or []):
        reason = compile_error(source)
        if reason is not None:
            status.fail(invalid, f"{epath}[{i}]", reason)
            continue
        if not action:
            continue
        rules.append(AuthzRule(name=f"{namespace}/{name}.matchExpressions[{i}]", **{action: source}))
        if action == "deny":
            warnings.extend(f"{status.label}: {w}" for w in deny_warning(f"{epath}[{i}]", source))
    if len(status.problems) != before:
        return None
    return Authorization(rules=rules)


class AuthzLevels:
    """The authorization rules attached at each level (0 route rule, 1 route, 2 Gateway listener, 3 Gateway),
    per target slot, so a route gets the rules of all its levels merged."""

    def __init__(self) -> None:
        self.levels: list[dict[tuple, Optional[Authorization]]] = [{}, {}, {}, {}]

    def add(self, level: int, slot: tuple, policies: Policies) -> None:
        if policies.authorization is not None:
            held = self.levels[level].get(slot)
            self.levels[level][slot] = merge_authorization(held, policies.authorization, "")

    def attach(self, policies: Optional[Policies], slots: list[tuple[int, tuple]]) -> Optional[Policies]:
        """`policies` (the route's jwtAuthentication, or None) with the rules of every level merged, outermost
        (Gateway) first."""
        merged: Optional[Authorization] = None
        for level, slot in reversed(slots):
            merged = merge_authorization(merged, self.levels[level].get(slot), "")
        if merged is None:
            return policies
        if policies is None:
            return Policies(authorization=merged)
        return msgspec.structs.replace(policies, authorization=merged)
