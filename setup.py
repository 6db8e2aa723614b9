"""Builds agw's Cython extensions: the verification core (agw/_fastjwt.pyx), the head scanner and the proxy hot path.

Set AGW_DEBUG=1 for a build with bounds checks and assertions kept on (as CI's debug job would use).
"""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("AGW_DEBUG") == "1"

directives = {
    "language_level": "3",
    "boundscheck": debug,
    "wraparound": debug,
    "cdivision": True,
    "initializedcheck": debug,
    "embedsignature": True,
}

compile_args = ["-O2"] + (["-UNDEBUG", "-O0", "-g"] if debug else [])
# _fastjwt.pyx includes agw/fastjwt/*.pxi (one file per concern); cythonize rebuilds when any of them changes.
fastjwt = [Extension("agw._fastjwt", ["agw/_fastjwt.pyx"], extra_compile_args=compile_args),
           # C scanning of plain HTTP/1.1 heads (no Python call per header); falls back to llhttp
           Extension("agw.proxy.headscan", ["agw/proxy/headscan.pyx"], extra_compile_args=compile_args)]
# The proxy's hot path: Cython pure-Python-mode modules (they also run uncompiled). They are written with
# Python semantics (negative indexes, no manual bounds), so they keep Cython's safe indexing directives.
proxy = [
    Extension(f"agw.proxy.{name}", [f"agw/proxy/{name}.py"], extra_compile_args=compile_args)
    for name in ("batch", "context", "flow", "heads", "exchange", "protocol", "upstream", "metrics", "routing")
]
# The authorization policy's request path (agw/authz/policy.py): compiled the same way, runs uncompiled too.
proxy.append(Extension("agw.authz.policy", ["agw/authz/policy.py"], extra_compile_args=compile_args))
# The certificate-binding check runs on every jwtAuth route: compiled too (no interpreter frame per request).
proxy.append(Extension("agw.jwt.binding", ["agw/jwt/binding.py"], extra_compile_args=compile_args))
safe_directives = dict(directives, boundscheck=True, wraparound=True, initializedcheck=True, cdivision=False)

setup(ext_modules=cythonize(fastjwt, compiler_directives=directives)
      + cythonize(proxy, compiler_directives=safe_directives))
