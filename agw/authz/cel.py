"""The CEL layer of the authorization policy: compiled rules, the variables handed to them, and evaluation where
any error counts as false.

Programs are compiled in the config's CEL environment (agw/config/cel.py), so a rule `agw check` accepts is the
rule that runs. What an expression reads is known at compile time: compiled where no variable is declared, the
checker reports every reference it makes (`jwt.sub`, `request.headers`), so a rule over `jwt` alone is known to
give one verdict per token, the request is turned into CEL values only when some rule reads it, and only the
claims and headers the rules can reach are converted.
"""
from __future__ import annotations

import re
from typing import Any, Optional

from ..config.cel import CelError, compile_expression, environment

__all__ = ["CelError", "Program", "activation", "fields_read", "references", "request_variables",
           "source_variables"]


_UNDECLARED = re.compile(r"undeclared reference to '([^']*)'")
_LITERAL = re.compile(r"""[rRbB]?("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')""")
_HEADERS = re.compile(r"(?<![\w.])request\s*\.\s*headers(?!\w)")
_HEADER_INDEX = re.compile(r"\s*\[\s*(\"_*\"|'_*')\s*\]")
_HEADER_FIELD = re.compile(r"\s*\.\s*([A-Za-z_][\w]*)")
_IN_BEFORE = re.compile(r"(\"_*\"|'_*')\s+in\s+$")


def references(source: str) -> list[str]:
    """The names the checker resolves against the variables, as it resolves them: `jwt.sub` for `jwt.sub`,
    `has(jwt.sub)` or `jwt.sub.startsWith(...)`, bare `jwt` when the map itself is used (an index, a macro,
    size()). Found by compiling in an environment with no variables: every reference is then reported."""
    try:
        compile_expression(source, ())
    except CelError as err:
        return _UNDECLARED.findall(str(err))
    return []


def fields_read(source: str) -> tuple[frozenset, Optional[frozenset], Optional[frozenset]]:
    """(variables read, top-level claims it can reach, header names it can reach); None: any. The claims come
    from the checker's references; the headers too, plus literal indexes (`request.headers["x-env"]`) and
    `"name" in request.headers` tests read from the source, where it can be read safely (no comments, no
    escaped or prefixed literals); any other use of the map (a macro, size(), a computed key) reaches every
    header. The engine then gets only these: what an expression cannot reach cannot change its value."""
    refs = references(source)
    variables = frozenset(r.split(".")[0] for r in refs)
    claims: Optional[set] = set()
    headers: Optional[set] = set()
    for ref in refs:
        parts = ref.split(".")
        if parts[0] == "jwt" and claims is not None:
            if len(parts) == 1:
                claims = None
            else:
                claims.add(parts[1])
        elif parts[0] == "request" and headers is not None and (len(parts) == 1 or parts[1] == "headers"):
            if len(parts) == 1:
                headers = None
            elif len(parts) > 2:
                headers.add(parts[2])
            else:
                indexed = _header_literals(source)
                headers = None if indexed is None else headers | indexed
    return (variables, frozenset(claims) if claims is not None else None,
            frozenset(headers) if headers is not None else None)


def _header_literals(source: str) -> Optional[set]:
    """The names of `request.headers["name"]` and `"name" in request.headers` in the source, or None when some
    use of `request.headers` is neither (or the source cannot be read safely)."""
    if "//" in source or '"""' in source or "'''" in source:
        return None
    literals: dict[int, str] = {}
    masked_parts, last = [], 0
    for m in _LITERAL.finditer(source):
        text = m.group(0)
        plain = text[0] in "\"'" and "\\" not in text
        masked_parts.append(source[last:m.start()])
        masked_parts.append(text[0] + "_" * (len(text) - 2) + text[-1] if plain else "@" * len(text))
        literals[m.start()] = text[1:-1] if plain else ""
        last = m.end()
    masked = "".join(masked_parts) + source[last:]
    names: set = set()
    for m in _HEADERS.finditer(masked):
        index = _HEADER_INDEX.match(masked, m.end())
        field = _HEADER_FIELD.match(masked, m.end()) if index is None else None
        before = _IN_BEFORE.search(masked, 0, m.start())
        if index is not None:
            start = index.start(1)
        elif before is not None:
            start = before.start(1)
        elif field is not None and not masked[field.end():].lstrip().startswith("("):
            names.add(field.group(1))
            continue
        else:
            return None
        if not literals.get(start):
            return None
        names.add(literals[start])
    return names


class Program:
    """One compiled expression, the variables it reads (a subset of VARIABLES) and, where known, the claims and
    headers it can reach (None: any)."""

    __slots__ = ("source", "expression", "reads", "claims", "headers")

    def __init__(self, source: str) -> None:
        self.source = source
        self.expression = compile_expression(source)    # raises CelError with the position
        self.reads, self.claims, self.headers = fields_read(source)

    def test(self, act: Any) -> bool:
        """True only when the expression evaluates to the boolean true over `act` (an activation, or the
        variables dict): an error (a missing claim, a wrong type, a value the engine cannot convert), a
        non-boolean result or no activation at all count as false."""
        if act is None:
            return False
        try:
            if type(act) is dict:    # the variables themselves: converted by the call (one evaluation)
                return self.expression.eval(data=act).value() is True
            return self.expression.eval(act).value() is True
        except Exception:  # noqa: BLE001 - an evaluation error is a false, never a failed request
            return False

    def __repr__(self) -> str:
        return f"Program({self.source!r}, reads={sorted(self.reads)})"


def request_variables(request: Any, header_names: Optional[tuple] = None) -> dict:
    """`request`: method, path (without the query), host (the Host header as sent), query (the raw query string,
    without `?`), headers (lower-case name -> value; repeated fields joined as the proxy joins them). Bytes are
    decoded as Latin-1: one character per byte, so no two different values become equal. With `header_names`
    ((str, bytes) pairs), only those headers (when present) are in the map."""
    path, _, query = request.target.partition(b"?")
    hdict = request.hdict
    if header_names is None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in hdict.items()}
    else:
        headers = {}
        for name, key in header_names:
            v = hdict.get(key)
            if v is not None:
                headers[name] = v.decode("latin-1")
    return {
        "method": request.method.decode("latin-1"),
        "path": path.decode("latin-1"),
        "host": hdict.get(b"host", b"").decode("latin-1"),
        "query": query.decode("latin-1"),
        "headers": headers,
    }


def source_variables(request: Any) -> dict:
    """`source`: address (the client's IP address as text) and port (an int; 0 when unknown, e.g. a Unix
    socket)."""
    proto = getattr(request, "proto", None)
    transport = getattr(proto, "transport", None)
    peername = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peername, tuple) and len(peername) >= 2:
        return {"address": str(peername[0]), "port": int(peername[1])}
    peer = getattr(request, "peer", None) or getattr(proto, "peer", b"")
    return {"address": peer.decode("latin-1") if isinstance(peer, bytes) else str(peer or ""), "port": 0}


def activation(variables: dict) -> Optional[Any]:
    """The engine's activation over `variables` (converted once, shared by every rule of the request); None when
    a value cannot be converted (then every expression counts as false)."""
    try:
        return environment().Activation(variables)
    except Exception:  # noqa: BLE001 - e.g. an integer claim beyond 64 bits
        return None
