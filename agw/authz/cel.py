"""The CEL layer of the authorization policy: compiled rules, the variables handed to them, and evaluation where
any error counts as false.

Programs are compiled in the config's CEL environment (agw/config/cel.py), so a rule `agw check` accepts is the
rule that runs. What an expression reads is known at compile time: it compiles in an environment without
`request` (or `source`) exactly when it never reads it, so a rule over `jwt` alone is known to give one verdict
per token, and the request is turned into CEL values only when some rule reads it.
"""
from __future__ import annotations

from typing import Any, Optional

from ..config.cel import VARIABLES, CelError, compile_expression, environment

__all__ = ["CelError", "Program", "activation", "request_variables", "source_variables"]


def _without(name: str) -> tuple[str, ...]:
    return tuple(v for v in VARIABLES if v != name)


class Program:
    """One compiled expression and the variables it reads (a subset of VARIABLES)."""

    __slots__ = ("source", "expression", "reads")

    def __init__(self, source: str) -> None:
        self.source = source
        self.expression = compile_expression(source)    # raises CelError with the position
        reads = {"jwt"}
        for name in ("request", "source"):
            try:
                compile_expression(source, _without(name))
            except CelError:
                reads.add(name)      # undeclared without it: the expression reads it
        self.reads = frozenset(reads)

    def test(self, act: Any) -> bool:
        """True only when the expression evaluates to the boolean true: an error (a missing claim, a wrong
        type), a non-boolean result or no activation at all count as false."""
        if act is None:
            return False
        try:
            return self.expression.eval(act).value() is True
        except Exception:  # noqa: BLE001 - an evaluation error is a false, never a failed request
            return False

    def __repr__(self) -> str:
        return f"Program({self.source!r}, reads={sorted(self.reads)})"


def request_variables(request: Any) -> dict:
    """`request`: method, path (without the query), host (the Host header as sent), query (the raw query string,
    without `?`), headers (lower-case name -> value; repeated fields joined as the proxy joins them). Bytes are
    decoded as Latin-1: one character per byte, so no two different values become equal."""
    path, _, query = request.target.partition(b"?")
    hdict = request.hdict
    return {
        "method": request.method.decode("latin-1"),
        "path": path.decode("latin-1"),
        "host": hdict.get(b"host", b"").decode("latin-1"),
        "query": query.decode("latin-1"),
        "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in hdict.items()},
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
