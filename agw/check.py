"""`agw check`: load config files and report one status line per object, as `agw run` would judge them.

A service above config and jwt (it builds the policies to judge their key sets), so it lives beside cli.py.

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
from typing import TYPE_CHECKING, Optional

from .config.errors import ConfigError, join_path
from .config.loader import LoadedConfig, load
from .config.model import JwtAuth
from .jwt import JwtPolicy

if TYPE_CHECKING:
    from .config.kube import Translation


def check_files(paths: list[str], resolve: Optional[dict[str, str]] = None,
                env: Optional[dict[str, str]] = None) -> tuple[list[str], bool]:
    """The lines `agw check` prints, and whether everything is accepted (exit 0) or not (exit 1)."""
    try:
        loaded = load(paths, resolve=resolve, env=env)
    except ConfigError as err:
        return err.lines(), False
    return report(loaded)


def refusal_lines(loaded: LoadedConfig) -> list[str]:
    """What `agw run` prints before refusing to start: the lines of `agw check` that are not Accepted
    (empty when the config can run). Same wording as `agw check`, key-set problems included."""
    lines, ok = report(loaded)
    if ok:
        return []
    return [line for line in lines if not line.endswith(": Accepted") and not line.startswith("warning: ")]


def report(loaded: LoadedConfig) -> tuple[list[str], bool]:
    """`agw check`'s lines for a loaded config, and whether all is accepted. Safe to call more than once."""
    kube: Optional[Translation] = loaded.kube
    lines: list[str] = []
    errors: list[str] = []
    verdicts_ok = True
    if kube is not None:
        from .config.kube import INVALID   # only a config with Kubernetes objects needs the translation module
        for binding in kube.policies:
            if binding.keys_checked:
                continue
            binding.keys_checked = True
            for path, reason in key_set_problems(binding.jwt_auth, loaded.base_dir):
                binding.status.fail(INVALID, join_path(binding.path, path), reason)
        lines.extend(s.line() for s in kube.statuses)
    generated = {id(r) for r in kube.routes} if kube is not None else set()
    for bi, bind in enumerate(loaded.config.binds):
        for li, listener in enumerate(bind.listeners):
            lpath = f"binds[{bi}].listeners[{li}]"
            lname = listener.name or f"listener{li}"
            inherited = listener.policies.jwt_auth if listener.policies is not None else None
            inherited_problems = (_problems(inherited, f"{lpath}.policies.jwtAuth", loaded.base_dir)
                                  if inherited is not None else [])
            inherited_used = False
            for ri, route in enumerate(listener.routes):
                if id(route) in generated:
                    continue
                own = route.policies.jwt_auth if route.policies is not None else None
                if own is not None:
                    problems = _problems(own, f"{lpath}.routes[{ri}].policies.jwtAuth", loaded.base_dir)
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
    return lines + errors + [f"warning: {w}" for w in loaded.warnings], ok


def _verdict(label: str, problems: list[tuple[str, str]]) -> str:
    if not problems:
        return f"{label}: Accepted"
    return f"{label}: Invalid: " + "; ".join(f"{p}: {r}" for p, r in problems)


def _problems(jwt_auth: JwtAuth, path: str, base_dir: str) -> list[tuple[str, str]]:
    return [(join_path(path, p), r) for p, r in key_set_problems(jwt_auth, base_dir)]


def key_set_problems(jwt_auth: JwtAuth, base_dir: str) -> list[tuple[str, str]]:
    """Build the policy as `agw run` would (inline and file key sets parsed, nothing fetched) and return its
    problems. The JWT layer owns what makes a key usable, so `agw check` and `agw run` agree."""
    quiet = logging.getLogger("agw.jwt")
    level = quiet.level
    quiet.setLevel(logging.ERROR)   # skipped keys are reported as the problem itself, not as log noise
    try:
        JwtPolicy(jwt_auth, base_dir)
    except ConfigError as err:
        return list(err.problems)
    finally:
        quiet.setLevel(level)
    return []
