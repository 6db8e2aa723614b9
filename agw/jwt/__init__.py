"""JWT authentication: the `jwtAuth` policy (policy.py), key sets (keys.py, jwks.py), reasons (errors.py).

The proxy builds one `JwtPolicy` per configured policy and calls `authenticate(headers, target)` per request;
the checks themselves run in the Cython core, agw/_fastjwt.pyx.
"""
from .._fastjwt import REASONS, AuthResult
from .errors import MESSAGES
from .keys import JwksError, parse_jwks
from .policy import JwtPolicy

__all__ = ["AuthResult", "JwksError", "JwtPolicy", "MESSAGES", "REASONS", "parse_jwks"]
