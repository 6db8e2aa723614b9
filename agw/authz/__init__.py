"""Authorization: the `authorization` request policy (policy.py), CEL rules over the JWT claims, the request and
the client's address, compiled once and evaluated by Google's cel-cpp (cel.py; README "Authorization")."""
from ..config.cel import CelError
from .policy import DENIED_BODY, DENIED_STATUS, AuthorizationPolicy

__all__ = ["AuthorizationPolicy", "CelError", "DENIED_BODY", "DENIED_STATUS"]
