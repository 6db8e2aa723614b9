"""Checks of the native `authorization` policy: each rule's shape, and its CEL expression compiled at load.

Errors are (field path, reason) problems like every other config check (`rules[1]: invalid CEL expression at
line 1, column 12: ...`); a deny rule reading a field that may be absent is a warning (`agw check` prints it),
since such a rule lets through the requests that lack the field.
"""
from __future__ import annotations

from typing import Any, Optional

from .cel import absent_reads, compile_error
from .model import AUTHZ_ACTIONS, Authorization, Config

MAX_RULES = 256


def check_authorization(p: Any, path: str, authz: Authorization) -> None:
    """Append the problems of `authz` (at `path`, e.g. `binds[0].listeners[0].policies.authorization`) to `p`."""
    if len(authz.rules) > MAX_RULES:
        p.add(f"{path}.rules", f"at most {MAX_RULES} rules (got {len(authz.rules)})")
    for i, rule in enumerate(authz.rules):
        rpath = f"{path}.rules[{i}]"
        if isinstance(rule, str):
            source = rule
        else:
            set_ = [a for a in AUTHZ_ACTIONS if getattr(rule, a) is not None]
            if len(set_) != 1:
                p.add(rpath, "exactly one of allow, deny, require, shadow is required"
                      + (f" (got {', '.join(set_)})" if set_ else ""))
                continue
            rpath = f"{rpath}.{set_[0]}"
            source = getattr(rule, set_[0])
            if rule.name is not None and not rule.name:
                p.add(f"{path}.rules[{i}].name", "must not be empty")
        reason = compile_error(source)
        if reason is not None:
            p.add(rpath, reason)


def deny_warning(path: str, source: str) -> list[str]:
    """Warnings for a deny rule at `path` reading fields that may be absent."""
    return [f"{path}: deny rule reads {field}, which may be absent: the rule then fails, a failure counts as "
            f"false, and it does not deny (if such requests must be denied, test for it with {guard})"
            for field, guard in absent_reads(source)]


def authorization_warnings(authz: Optional[Authorization], path: str) -> list[str]:
    if authz is None:
        return []
    out = []
    for i, rule in enumerate(authz.rules):
        if not isinstance(rule, str) and rule.deny is not None:
            out += deny_warning(f"{path}.rules[{i}].deny", rule.deny)
    return out


def config_warnings(cfg: Config, skip_routes: frozenset = frozenset()) -> list[str]:
    """The warnings of every native `authorization` policy (routes whose id() is in `skip_routes`, generated
    from Kubernetes objects, are reported under their policy instead)."""
    out: list[str] = []
    for bi, bind in enumerate(cfg.binds):
        for li, listener in enumerate(bind.listeners):
            lpath = f"binds[{bi}].listeners[{li}]"
            if listener.policies is not None:
                out += authorization_warnings(listener.policies.authorization, f"{lpath}.policies.authorization")
            for ri, route in enumerate(listener.routes):
                if id(route) in skip_routes or route.policies is None:
                    continue
                out += authorization_warnings(route.policies.authorization,
                                              f"{lpath}.routes[{ri}].policies.authorization")
    return out
