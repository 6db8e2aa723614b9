"""The CEL dialect of the config: the environment authorization expressions are compiled in, and what the
config check says about an expression (a compile error with its position; fields a deny rule reads that may be
absent).

The engine is Google's cel-cpp through `cel-expr-python` (bench/cel_engines.py measures it against cel-rust
and celpy). Checking an expression at load is like checking a regex with `re.compile`: the config layer needs
the language, not the policy that runs it. The policy layer (agw.authz) compiles its programs in the same
environment (`environment()`), so what `agw check` accepts is exactly what `agw run` evaluates.
"""
from __future__ import annotations

import functools
import re
from typing import Any, Optional

# The variables every expression may read (each a map; see README "Authorization"): the validated claims, the
# request, the client's address.
VARIABLES = ("jwt", "request", "source")


class CelError(ValueError):
    """An expression that does not compile; `str()` is the reason with its position."""


@functools.lru_cache(maxsize=None)
def environment(variables: tuple[str, ...] = VARIABLES) -> Any:
    """A cel-cpp environment declaring `variables` as maps of string to any value, with the standard functions
    and macros and the strings extension (lowerAscii, split, replace, ...). Built once per variable set."""
    from cel_expr_python import cel
    from cel_expr_python.ext.ext_strings import ExtStrings

    dyn_map = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
    return cel.NewEnv(variables={name: dyn_map for name in variables}, extensions=[ExtStrings()])


NO_CONTAINER = " (in container '')"
_ERROR = re.compile(r"ERROR: <input>:(?P<line>\d+):(?P<col>\d+): (?P<msg>[^\n]*)")


@functools.lru_cache(maxsize=4096)
def compile_expression(source: str, variables: tuple[str, ...] = VARIABLES) -> Any:
    """The engine's compiled (parsed and type-checked) expression, immutable and shared (the config check, the
    Kubernetes translation and the policy compile each expression once between them); raises CelError."""
    if not isinstance(source, str) or not source.strip():
        raise CelError("empty expression")
    try:
        return environment(variables).compile(source)
    except RuntimeError as err:
        raise CelError(_reason(str(err))) from None


def _reason(message: str) -> str:
    """cel-cpp's "INVALID_ARGUMENT: ERROR: <input>:1:12: Syntax error: ...\n | src\n | ...^" as one line:
    "invalid CEL expression at line 1, column 12: Syntax error: ..." (each error when there are several)."""
    found = [f"line {m['line']}, column {m['col']}: " + m["msg"].replace(NO_CONTAINER, "").strip()
             for m in _ERROR.finditer(message)]
    if not found:
        return "invalid CEL expression: " + message.strip().splitlines()[0]
    return "invalid CEL expression at " + "; at ".join(found)


def compile_error(source: str) -> Optional[str]:
    """The reason `source` does not compile, or None."""
    try:
        compile_expression(source)
    except CelError as err:
        return str(err)
    return None


# --- fields that may be absent -------------------------------------------------------------------------------

_STRING = re.compile(r"""[rRbB]?("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')""")
_JWT_PATH = re.compile(r"(?<![\w.])jwt((?:\s*\.\s*[A-Za-z_]\w*)+)")
_HEADER = re.compile(r"""(?<![\w.])request\s*\.\s*headers\s*(?:\[\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*\]"""
                     r"""|\.\s*([A-Za-z_]\w*))""")


def absent_reads(source: str) -> list[tuple[str, str]]:
    """Fields an expression reads that a request may not have, and are not guarded by `has()` (or `"name" in
    request.headers`): (field, suggested guard). A deny rule reading one does not deny a request without it
    (the error counts as false). Read from the source text: a lint, not a proof."""
    masked = _STRING.sub(lambda m: '"' + "_" * (len(m.group(0)) - 2) + '"', source)
    compact = re.sub(r"\s+", "", masked)
    compact_source = re.sub(r"\s+", "", source)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for m in _JWT_PATH.finditer(masked):
        parts = [p for p in re.sub(r"\s+", "", m.group(1)).split(".") if p]
        if masked[m.end():].lstrip().startswith("("):
            parts = parts[:-1]   # a method call ends the path: jwt.sub.startsWith("x") reads jwt.sub
        for depth in range(1, len(parts) + 1):
            field = "jwt." + ".".join(parts[:depth])
            if field in seen:
                continue
            seen.add(field)
            if f"has({field})" not in compact:
                guards = " && ".join(f"has(jwt.{'.'.join(parts[:d])})" for d in range(1, depth + 1))
                out.append((field, guards))
                break
    for m in _HEADER.finditer(source):
        if m.group(1) is not None:
            name = m.group(1)[1:-1]
            field = f"request.headers[{m.group(1)}]"
        else:
            name = m.group(2)
            field = f"request.headers.{name}"
        if field in seen:
            continue
        seen.add(field)
        guarded = (f'"{name}"inrequest.headers' in compact_source or f"'{name}'inrequest.headers" in compact_source
                   or f"has(request.headers.{name})" in compact_source)
        if not guarded:
            out.append((field, f'"{name}" in request.headers'))
    return out
