"""Load config files: YAML (multi-document), `${VAR}` expansion, typed decoding, validation.

A file may hold the native config (`binds:`), Kubernetes documents (Gateway, HTTPRoute, AgentgatewayPolicy;
translated by `kube/`), or both. The result is one validated `Config`, or a `ConfigError` naming every
problem with its field path.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import msgspec
import yaml

from .authz import config_warnings
from .errors import ConfigError, from_validation_error, join_path
from .model import Config
from .validate import check_config

log = logging.getLogger("agw.config")

_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)|(?P<dollar>\$))")


def expand_env(value: Any, path: str, env: dict[str, str], problems: list[tuple[str, str]]) -> Any:
    """Expand `${VAR}` / `$VAR` in every string (`$$` is a literal `$`); an unset variable is a problem."""
    if isinstance(value, str):
        if "$" not in value:
            return value

        def sub(m: re.Match) -> str:
            if m.group("dollar"):
                return "$"
            name = m.group("braced") or m.group("bare")
            if name not in env:
                problems.append((path, f"environment variable {name} is not set"))
                return ""
            return env[name]

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_env(v, join_path(path, str(k)), env, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, f"{path}[{i}]", env, problems) for i, v in enumerate(value)]
    return value


@dataclass
class Document:
    source: str          # file name (and document index when several)
    body: dict
    base_dir: str
    # Problems found while reading a Kubernetes object (unset variables): reported in its status line.
    problems: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class LoadedConfig:
    config: Config
    base_dir: str = "."
    statuses: list[str] = field(default_factory=list)   # `agw check` lines for Kubernetes objects
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    kube: Any = None     # kube.Translation when Kubernetes objects were loaded (what `agw check` reports)


def is_kube_object(body: dict) -> bool:
    return "apiVersion" in body or "kind" in body


def read_documents(paths: Iterable[str], env: Optional[dict[str, str]] = None) -> list[Document]:
    env = dict(os.environ) if env is None else env
    docs: list[Document] = []
    problems: list[tuple[str, str]] = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                text = f.read()
        except OSError as e:
            raise ConfigError([(path, f"cannot read: {e.strerror}")]) from None
        try:
            raw_docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(e, "problem", None) or str(e)
            raise ConfigError([(path, f"invalid YAML: {where}{problem}")]) from None
        for i, raw in enumerate(raw_docs):
            src = path if len(raw_docs) == 1 else f"{path}#{i + 1}"
            if not isinstance(raw, dict):
                problems.append((src, "a config document must be a mapping"))
                continue
            if is_kube_object(raw):
                # A Kubernetes object reports its own problems in its status line (`agw check`).
                own: list[tuple[str, str]] = []
                body = expand_env(raw, "", env, own)
                docs.append(Document(src, body, os.path.dirname(os.path.abspath(path)), own))
                continue
            before = len(problems)
            body = expand_env(raw, "", env, problems)
            for j in range(before, len(problems)):
                p, r = problems[j]
                problems[j] = (p or src, r)
            docs.append(Document(src, body, os.path.dirname(os.path.abspath(path))))
    if problems:
        raise ConfigError(problems)
    return docs


def decode_native(body: dict, prefix: str = "") -> Config:
    try:
        return msgspec.convert(body, Config, str_keys=True)
    except msgspec.ValidationError as e:
        raise ConfigError([from_validation_error(e, prefix)]) from None


def _lift(policies):
    if policies is None or policies.mcp_authentication is None:
        return policies
    return msgspec.structs.replace(policies, jwt_auth=policies.mcp_authentication.as_jwt_auth(),
                                   mcp_authentication=None)


def lift_mcp_authentication(cfg: Config) -> Config:
    """agentgateway's `mcpAuthentication` becomes the `jwtAuth` (with resourceMetadata) it is, once it is
    checked: the rest of agw knows one JWT policy."""
    binds = []
    for bind in cfg.binds:
        listeners = []
        for ls in bind.listeners:
            routes = [msgspec.structs.replace(r, policies=_lift(r.policies)) for r in ls.routes]
            listeners.append(msgspec.structs.replace(ls, policies=_lift(ls.policies), routes=routes))
        binds.append(msgspec.structs.replace(bind, listeners=listeners))
    return msgspec.structs.replace(cfg, binds=binds)


def load(paths: list[str], resolve: Optional[dict[str, str]] = None,
         env: Optional[dict[str, str]] = None) -> LoadedConfig:
    """Load and validate; raises ConfigError. `resolve` maps `name.namespace:port` to `host:port`."""
    docs = read_documents(paths, env)
    native = [d for d in docs if not is_kube_object(d.body)]
    kube_docs = [d for d in docs if is_kube_object(d.body)]
    binds: list = []
    settings = Config().config
    problems: list[tuple[str, str]] = []
    base_dir = native[0].base_dir if native else (docs[0].base_dir if docs else ".")
    for d in native:
        cfg = decode_native(d.body)
        problems += check_config(cfg)
        binds.extend(lift_mcp_authentication(cfg).binds)
        if "config" in d.body:
            settings = cfg.config       # the last file that sets `config:` wins
    if problems:
        raise ConfigError(problems)
    result_cfg = msgspec.structs.replace(Config(), binds=binds, config=settings)
    loaded = LoadedConfig(result_cfg, base_dir=base_dir, files=list(paths))
    if kube_docs:
        from .kube import translate
        translate(kube_docs, loaded, resolve or {})
    problems = check_config(loaded.config)
    if problems:
        raise ConfigError(problems)
    generated = frozenset(id(r) for r in loaded.kube.routes) if loaded.kube is not None else frozenset()
    loaded.warnings.extend(config_warnings(loaded.config, generated))
    return loaded
