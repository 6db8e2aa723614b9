"""Builds agw's Cython verification core (agw/_fastjwt.pyx).

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
extensions = [
    Extension("agw._fastjwt", ["agw/_fastjwt.pyx"], extra_compile_args=compile_args),
    # The proxy's hot path: Cython pure-Python-mode modules (they also run uncompiled).
    Extension("agw.proxy.server", ["agw/proxy/server.py"], extra_compile_args=compile_args),
    Extension("agw.proxy.upstream", ["agw/proxy/upstream.py"], extra_compile_args=compile_args),
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
