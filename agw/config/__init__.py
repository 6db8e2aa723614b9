"""Configuration: typed structs, YAML loading with `${VAR}` expansion, validation, Kubernetes translation."""
from .durations import parse_duration
from .errors import ConfigError
from .loader import LoadedConfig, load
from .model import (Backend, Bind, Config, Jwks, JwtAuth, Listener, Location, Match, Policies, Provider,
                    Route, Settings)
from .validate import normalize_mode, split_host_port

__all__ = [
    "Backend", "Bind", "Config", "ConfigError", "Jwks", "JwtAuth", "Listener", "LoadedConfig", "Location",
    "Match", "Policies", "Provider", "Route", "Settings", "load", "normalize_mode", "parse_duration",
    "split_host_port",
]
