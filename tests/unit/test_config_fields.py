"""Every setting a user may write has a test of its effect, or is refused (issue 13, "Compiled config").

The field paths are walked from the model itself (agw.config.model.Config for the native config, the specs of
agw.config.kube_model for the Kubernetes objects agw.config.kube reads, plus the agentgateway keys it refuses by
name), so a field added to a Struct appears here at once. Each must be listed in tests/config_fields.py with
the tests that prove its observable effect, or as refused with the test that proves the refusal: the list of
accepted-and-ignored settings is empty, and stays empty.
"""
from __future__ import annotations

import ast
import functools
import typing
from pathlib import Path

import msgspec
from msgspec import structs

from agw.config import kube, kube_model, model
from tests.config_fields import EFFECT, FIELDS, REFUSED

REPO = Path(__file__).resolve().parents[2]

# The Kubernetes objects agw reads: each spec Struct, under the kind that holds it. `metadata` is common to all.
KUBE_SPECS = {"Gateway": kube_model.GatewaySpec, "HTTPRoute": kube_model.HTTPRouteSpec,
              "AgentgatewayPolicy": kube_model.PolicySpec}


def _walk(tp: object, prefix: str, out: list[str]) -> None:
    """Append the path of every field under `tp` (a Struct, or Optional/list of one) to `out`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union:
        for arg in args:
            if arg is not type(None):
                _walk(arg, prefix, out)
        return
    if origin is list:
        _walk(args[0], prefix + "[]", out)
        return
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        hints = typing.get_type_hints(tp)
        for f in structs.fields(tp):
            path = f"{prefix}.{f.encode_name}" if prefix else f.encode_name
            out.append(path)
            _walk(hints[f.name], path, out)


def field_paths() -> list[str]:
    """Every field path of the native config (`binds[].port`) and of the Kubernetes objects
    (`HTTPRoute spec.rules[].timeouts.request`), in model order."""
    out: list[str] = []
    _walk(model.Config, "", out)
    meta: list[str] = []
    _walk(kube_model.Metadata, "metadata", meta)
    out.extend(f"Kubernetes {p}" for p in meta)
    for kind, spec in KUBE_SPECS.items():
        paths: list[str] = []
        _walk(spec, "spec", paths)
        out.extend(f"{kind} {p}" for p in paths)
    # agentgateway's keys that agw.config.kube.policy refuses by name (stripped before decoding, so not in the model).
    out.extend(f"AgentgatewayPolicy spec.{name}" for name in kube.UNSUPPORTED_POLICY_SPEC)
    out.extend(f"AgentgatewayPolicy spec.traffic.{name}" for name in kube.UNSUPPORTED_TRAFFIC)
    return out


@functools.lru_cache(maxsize=None)
def _test_names(relpath: str) -> frozenset[str]:
    tree = ast.parse((REPO / relpath).read_text(), filename=relpath)
    return frozenset(node.name for node in ast.walk(tree)
                     if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"))


def test_the_walk_sees_the_whole_model():
    paths = field_paths()
    assert len(paths) == len(set(paths))
    for expected in ("binds[].listeners[].routes[].policies.timeout.requestTimeout", "config.startupGrace",
                     "binds[].listeners[].policies.jwtAuth.providers[].jwks.caCertificates",
                     "HTTPRoute spec.rules[].timeouts.request", "Gateway spec.listeners[].allowedRoutes.kinds",
                     "AgentgatewayPolicy spec.traffic.jwtAuthentication.providers[].jwks.remote.backendRef.port",
                     "AgentgatewayPolicy spec.traffic.rateLimit", "Kubernetes metadata.namespace"):
        assert expected in paths


def test_every_field_has_a_test_of_its_effect_or_is_refused():
    missing = [p for p in field_paths() if p not in FIELDS]
    assert not missing, ("fields with neither a test of their effect nor a refusal (add each to "
                         "tests/config_fields.py, with the test that shows what it does, or refuse it in "
                         "validation and name the test of the refusal):\n  " + "\n  ".join(missing))


def test_the_table_names_only_fields_that_exist():
    known = set(field_paths())
    stale = sorted(p for p in FIELDS if p not in known)
    assert not stale, "tests/config_fields.py lists fields the model no longer has:\n  " + "\n  ".join(stale)


def test_every_entry_names_tests_that_exist():
    problems: dict[str, str] = {}     # problem -> the first field naming it (a test is named by many fields)
    for path, (verdict, tests) in FIELDS.items():
        if verdict not in (EFFECT, REFUSED):
            problems.setdefault(f"verdict {verdict!r} (effect or refused)", path)
        if not tests:
            problems.setdefault("no test named", path)
        for ref in tests:
            relpath, sep, name = ref.partition("::")
            if not sep or not relpath.startswith("tests/") or not relpath.endswith(".py"):
                problems.setdefault(f"{ref!r} is not tests/<file>.py::<test>", path)
            elif not (REPO / relpath).is_file():
                problems.setdefault(f"{relpath} does not exist", path)
            elif name not in _test_names(relpath):
                problems.setdefault(f"{relpath} has no test {name}", path)
    assert not problems, "\n".join(f"{path}: {problem}" for problem, path in problems.items())


def test_the_refused_kubernetes_keys_are_refused_entries():
    for name in kube.UNSUPPORTED_TRAFFIC:
        assert FIELDS[f"AgentgatewayPolicy spec.traffic.{name}"][0] == REFUSED, name
    for name in kube.UNSUPPORTED_POLICY_SPEC:
        assert FIELDS[f"AgentgatewayPolicy spec.{name}"][0] == REFUSED, name
