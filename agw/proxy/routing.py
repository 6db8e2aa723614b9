"""Route tables compiled once from config: a request is matched by host, path, method and headers, in order."""
from __future__ import annotations

import re
from typing import Any, Callable, Optional, Sequence

try:
    import cython
except ImportError:  # running uncompiled without Cython installed
    from . import _cython_shim as cython  # type: ignore[no-redef]

from ..config.compile import ProxySettings, RoutePlan
from ..config.model import Match, Policies
from .upstream import BackendPool

Predicate = Callable[[bytes, bytes, dict], bool]   # (method, path, headers) -> matched
# (a route's policies config, route name) -> its request policies in order (agw/chain.py's RequestPolicy)
PolicyFactory = Callable[[Policies, str], Sequence[Any]]


def _compile_match(m: Match) -> Predicate:
    checks: list[Predicate] = []
    if m.path is not None:
        if m.path.exact is not None:
            exact = m.path.exact.encode()
            checks.append(lambda method, path, h: path == exact)
        elif m.path.path_prefix is not None:
            prefix = m.path.path_prefix.encode()
            if prefix != b"/":
                # Gateway API semantics: /foo matches /foo and /foo/bar, not /foobar.
                bare = prefix.rstrip(b"/")
                slash = bare + b"/"
                checks.append(lambda method, path, h: path == bare or path.startswith(slash))
        else:
            rx = re.compile(m.path.regex.encode())
            checks.append(lambda method, path, h: rx.search(path) is not None)
    if m.method is not None:
        want = m.method.upper().encode()
        checks.append(lambda method, path, h: method == want)
    for hm in m.headers:
        name = hm.name.lower().encode()
        if hm.value.exact is not None:
            val = hm.value.exact.encode()
            checks.append(lambda method, path, h, name=name, val=val: h.get(name) == val)
        else:
            rxv = re.compile(hm.value.regex.encode())
            checks.append(lambda method, path, h, name=name, rxv=rxv:
                          (v := h.get(name)) is not None and rxv.fullmatch(v) is not None)
    if not checks:
        return lambda method, path, h: True
    if len(checks) == 1:
        return checks[0]
    return lambda method, path, h: all(c(method, path, h) for c in checks)


def _is_trivial(m: Match) -> bool:
    """A match that every request satisfies (no method/header condition, path absent or prefix "/")."""
    return m.method is None and not m.headers and (m.path is None or m.path.path_prefix == "/")


class HostMatcher:
    __slots__ = ("exact", "suffixes", "any")

    def __init__(self, hostnames: list[str]) -> None:
        self.exact = frozenset(h.lower().encode() for h in hostnames if not h.startswith("*."))
        self.suffixes = tuple(h[1:].lower().encode() for h in hostnames if h.startswith("*."))
        self.any = not hostnames

    def __call__(self, host: bytes) -> bool:
        if self.any or host in self.exact:
            return True
        return any(host.endswith(s) and len(host) > len(s) for s in self.suffixes)


@cython.cclass
class RouteRuntime:
    """A route ready to serve: its matcher, its backend pool, its policies compiled (a C struct when
    compiled: the server reads these fields for every request)."""

    def __init__(self, plan: RoutePlan, settings: ProxySettings, policy_factory: PolicyFactory,
                 pools: dict[str, BackendPool]) -> None:
        self.name = plan.name
        self.host_matcher = HostMatcher(list(plan.hostnames))
        self.predicates = [_compile_match(m) for m in plan.matches]
        self.match_all = self.host_matcher.any and (
            not plan.matches or any(_is_trivial(m) for m in plan.matches))
        key = ",".join(f"{b.label}*{b.weight}" for b in plan.backends)
        if key not in pools:
            pools[key] = BackendPool(list(plan.backends), settings)
        self.pool = pools[key]
        # The request policies, in the order a request passes them (agw/chain.py).
        self.policies = tuple(policy_factory(plan.policies, plan.name)) if plan.policies is not None else ()
        self.strip_headers = frozenset().union(*(p.strip_headers for p in self.policies))
        self.edited_headers = frozenset().union(*(p.edited_headers for p in self.policies))
        self.request_timeout = plan.request_timeout
        self.response_timeout = plan.response_timeout
        self.upgrades = plan.upgrades
        self.tunnel_idle_timeout = plan.tunnel_idle_timeout

    def matches(self, host: bytes, method: bytes, path: bytes, headers: dict) -> bool:
        if not self.host_matcher(host):
            return False
        if not self.predicates:
            return True
        for pred in self.predicates:
            if pred(method, path, headers):
                return True
        return False


@cython.cclass
class Router:
    """The routes of one bind (all its listeners), tried in order; first match wins."""

    def __init__(self, routes: list[RouteRuntime]) -> None:
        self.routes = routes
        # Request headers some route's policies may drop or replace: the server sets these aside while
        # parsing; all others go upstream untouched.
        self.special_headers = frozenset().union(*(r.strip_headers | r.edited_headers for r in routes))
        # One unconditional route (the common edge setup): skip matching entirely.
        self.only = routes[0] if len(routes) == 1 and routes[0].match_all else None

    def match(self, host: bytes, method: bytes, path: bytes, headers: dict) -> Optional[RouteRuntime]:
        if self.only is not None:
            return self.only
        for r in self.routes:
            if r.matches(host, method, path, headers):
                return r
        return None


def build_router(routes: Sequence[RoutePlan], settings: ProxySettings, policy_factory: PolicyFactory,
                 pools: dict[str, BackendPool]) -> Router:
    """The route table of one bind, from its compiled routes (listener policies already merged in)."""
    return Router([RouteRuntime(plan, settings, policy_factory, pools) for plan in routes])
