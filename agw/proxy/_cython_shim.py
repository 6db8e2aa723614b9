"""Stand-in for the `cython` module when agw's proxy modules run uncompiled (Cython is a build-time tool).

The proxy's modules (protocol.py, exchange.py, upstream.py, ...) are Cython pure-Python-mode modules:
compiled by setup.py their classes become C extension types with typed attributes; run as plain Python,
these no-op decorators keep them working.
"""
from typing import Any

bint = bool
Py_ssize_t = int
double = float


def cclass(cls: type) -> type:
    return cls


def declare(*args: Any, **kwargs: Any) -> None:
    return None
