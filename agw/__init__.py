"""agw: a fast HTTP/1.1 reverse proxy that authenticates every request with a JSON Web Token."""
__version__ = "0.1.0"
