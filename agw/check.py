"""`agw check`: load config files and report one status line per object, as `agw run` would judge them.

A service above config and jwt: judging a `jwtAuth` means building it (its inline and file key sets parsed,
every key object made), so `check()` builds every policy of a config once and hands the built policies to
`agw run` and to reloads (`Checked.policies`), which serve with those same objects.

Lines, in order:
- a config error (the files cannot be loaded at all): `config error: <path>: <reason>` lines only;
- `<Kind>/<namespace>/<name>: <condition>[: <path>: <reason>[; ...]]` for each Kubernetes object;
- `Route/<listener>/<route>: Accepted` for each route of the native config, or `Invalid: <path>: <reason>`
  when its `jwtAuth` (its own or its listener's) cannot be built (a key set that is missing or unusable);
- `Listener/<listener>: Invalid: ...` for a listener `jwtAuth` that cannot be built and that no route uses;
- `warning: <text>` for what was ignored (other kinds of Kubernetes objects). Warnings never fail the check.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Optional

from .config.errors import ConfigError, join_path
from .config.loader import LoadedConfig, load
from .config.model import JwtAuth
from .jwt import JwtPolicy


@dataclass
class Checked:
    """A loaded config judged: `agw check`'s lines, the verdict, and every policy that could be built."""
    loaded: LoadedConfig
    lines: list[str]
    ok: bool
    # id() of the JwtAuth struct -> the policy built from it (the structs live as long as `loaded`).
    policies: dict[int, JwtPolicy] = field(default_factory=dict)

    @property
    def refusals(self) -> list[str]:
        """What `agw run` prints before refusing to start: the lines that are not Accepted (empty when the
        config can run). Same wording as `agw check`, key-set problems included."""
        if self.ok:
            return []
        return [line for line in self.lines if not line.endswith(": Accepted") and not line.startswith("warning: ")]


def check_files(paths: list[str], resolve: Optional[dict[str, str]] = None,
                env: Optional[dict[str, str]] = None) -> tuple[list[str], bool]:
    """The lines `agw check` prints, and whether everything is accepted (exit 0) or not (exit 1)."""
    try:
        loaded = load(paths, resolve=resolve, env=env)
    except ConfigError as err:
        return err.lines(), False
    checked = check(loaded)
    return checked.lines, checked.ok


def load_checked(paths: list[str], resolve: Optional[dict[str, str]] = None,
                 env: Optional[dict[str, str]] = None) -> Checked:
    """Load and check, for `agw run` and reloads: raises ConfigError with the lines `agw check` refuses."""
    checked = check(load(paths, resolve=resolve, env=env))
    if not checked.ok:
        raise ConfigError([("", line) for line in checked.refusals])
    return checked


def check(loaded: LoadedConfig) -> Checked:
    """Judge a loaded config, building each of its policies once. Kubernetes statuses are updated in place
    (once per config, however often this is called)."""
    kube = loaded.kube
    names = _runtime_names(loaded)
    built: dict[int, JwtPolicy] = {}
    problems_of: dict[int, list[tuple[str, str]]] = {}

    def judge(jwt_auth: JwtAuth) -> list[tuple[str, str]]:
        key = id(jwt_auth)
        if key not in problems_of:
            policy, problems_of[key] = _build(jwt_auth, loaded.base_dir, names.get(key, ""))
            if policy is not None:
                built[key] = policy
        return problems_of[key]

    lines: list[str] = []
    errors: list[str] = []
    verdicts_ok = True
    if kube is not None:
        from .config.kube import INVALID   # only a config with Kubernetes objects needs the translation module
        for binding in kube.policies:
            problems = judge(binding.jwt_auth)
            if not binding.keys_checked:
                binding.keys_checked = True
                for path, reason in problems:
                    binding.status.fail(INVALID, join_path(binding.path, path), reason)
        lines.extend(s.line() for s in kube.statuses)
    generated = {id(r) for r in kube.routes} if kube is not None else set()
    for bi, bind in enumerate(loaded.config.binds):
        for li, listener in enumerate(bind.listeners):
            lpath = f"binds[{bi}].listeners[{li}]"
            lname = listener.name or f"listener{li}"
            inherited = listener.policies.jwt_auth if listener.policies is not None else None
            inherited_problems = (_at(f"{lpath}.policies.jwtAuth", judge(inherited))
                                  if inherited is not None else [])
            inherited_used = False
            for ri, route in enumerate(listener.routes):
                own = route.policies.jwt_auth if route.policies is not None else None
                if id(route) in generated:
                    continue   # judged with its Kubernetes objects above
                if own is not None:
                    problems = _at(f"{lpath}.routes[{ri}].policies.jwtAuth", judge(own))
                else:
                    problems, inherited_used = inherited_problems, inherited_used or inherited is not None
                lines.append(_verdict(f"Route/{lname}/{route.name or f'route{ri}'}", problems))
                verdicts_ok = verdicts_ok and not problems
            if inherited_problems and not inherited_used:
                # No route runs it, but it is still a policy the user wrote that cannot be built.
                lines.append(_verdict(f"Listener/{lname}", inherited_problems))
                verdicts_ok = False
    if not loaded.config.binds:
        errors.append("config error: binds: no listener configured")
    ok = verdicts_ok and not errors and (kube is None or all(s.accepted for s in kube.statuses))
    return Checked(loaded, lines + errors + [f"warning: {w}" for w in loaded.warnings], ok, built)


def _runtime_names(loaded: LoadedConfig) -> dict[int, str]:
    """The name the runtime gives each policy (its metrics label): the first route that uses it, named as
    the route table names routes, a listener's policy applying to the routes that set none of their own."""
    names: dict[int, str] = {}
    for bind in loaded.config.binds:
        for li, listener in enumerate(bind.listeners):
            lname = listener.name or f"listener{li}"
            inherited = listener.policies.jwt_auth if listener.policies is not None else None
            for ri, route in enumerate(listener.routes):
                own = route.policies.jwt_auth if route.policies is not None else None
                effective = own if own is not None else inherited
                if effective is not None:
                    names.setdefault(id(effective), route.name or f"{lname}/route{ri}")
    return names


def _verdict(label: str, problems: list[tuple[str, str]]) -> str:
    if not problems:
        return f"{label}: Accepted"
    return f"{label}: Invalid: " + "; ".join(f"{p}: {r}" for p, r in problems)


def _at(path: str, problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(join_path(path, p), r) for p, r in problems]


class _HoldRecords(logging.Filter):
    """Holds back what the JWT layer logs while this thread builds a policy (a reload builds in a worker
    thread while the event loop keeps logging): a key set that cannot be used is reported as the problem
    itself, so its log lines are dropped; those of a policy that builds (a skipped weak key) are replayed."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread:
            return True
        self.records.append(record)
        return False


def _build(jwt_auth: JwtAuth, base_dir: str, name: str) -> tuple[Optional[JwtPolicy], list[tuple[str, str]]]:
    """Build the policy as `agw run` serves it (inline and file key sets parsed, nothing fetched)."""
    jwt_log = logging.getLogger("agw.jwt")
    hold = _HoldRecords()
    jwt_log.addFilter(hold)
    try:
        policy = JwtPolicy(jwt_auth, base_dir, name=name)
    except ConfigError as err:
        return None, list(err.problems)
    finally:
        jwt_log.removeFilter(hold)
    for record in hold.records:
        jwt_log.handle(record)
    return policy, []
