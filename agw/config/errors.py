"""Config errors that name the field path and the reason, as `agw check` and `agw run` print them."""
from __future__ import annotations

import re

import msgspec


class ConfigError(Exception):
    """One or more problems in a config; each is (field path, reason)."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "") -> None:
        self.problems = problems
        self.source = source
        super().__init__("; ".join(f"{p}: {r}" if p else r for p, r in problems))

    def lines(self) -> list[str]:
        return [f"config error: {p}: {r}" if p else f"config error: {r}" for p, r in self.problems]


def join_path(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_EXPECTED = re.compile(r"Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`")


def from_validation_error(err: msgspec.ValidationError, prefix: str = "") -> tuple[str, str]:
    """Turn msgspec's "Object contains unknown field `x` - at `$.a[0]`" into ("a[0].x", "unknown field")."""
    m = _AT.match(str(err))
    msg = m.group("msg") if m else str(err)
    path = (m.group("path") or "").lstrip(".") if m else ""
    if um := _UNKNOWN.match(msg):
        return join_path(prefix, join_path(path, um.group("field"))), "unknown field"
    if mm := _MISSING.match(msg):
        return join_path(prefix, join_path(path, mm.group("field"))), "required"
    if em := _EXPECTED.match(msg):
        return join_path(prefix, path), f"expected {em.group('want')}, got {em.group('got')}"
    return join_path(prefix, path), msg[0].lower() + msg[1:] if msg else "invalid"
