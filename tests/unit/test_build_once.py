"""`agw run` and a reload build each JWT policy once: the objects `agw check` built to judge the config are
the ones that serve (each key set parsed once, each policy constructed once)."""
from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from vectors import mint  # noqa: E402

import agw.jwt.policy as policy_module  # noqa: E402
from agw.cli import main  # noqa: E402
from agw.serve import app  # noqa: E402

KEY_SETS = 3   # below: one inline set, one file set on the listener (two routes share it), one route's file set


def write_config(tmp_path) -> str:
    (tmp_path / "listener.json").write_text(mint.default_jwks())
    (tmp_path / "route.json").write_text(mint.default_jwks())
    inline = json.dumps(mint.default_jwks())
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(f"""
        binds:
        - port: 18080
          address: 127.0.0.1
          listeners:
          - name: main
            policies:
              jwtAuth: {{issuer: {mint.ISSUER}, jwks: {{file: listener.json}}}}
            routes:
            - name: a
              backends: [{{host: 127.0.0.1:9}}]
            - name: b
              backends: [{{host: 127.0.0.1:9}}]
            - name: c
              backends: [{{host: 127.0.0.1:9}}]
              policies:
                jwtAuth:
                  providers:
                  - {{issuer: {mint.ISSUER}, jwks: {{inline: {inline}}}}}
                  - {{issuer: https://other.test, jwks: {{file: route.json}}}}
        """))
    return str(path)


@pytest.fixture
def counts(monkeypatch):
    """How many key sets were parsed and policies constructed."""
    seen = {"parses": 0, "policies": 0}
    parse, init = policy_module.parse_jwks, policy_module.JwtPolicy.__init__

    def counting_parse(*args, **kwargs):
        seen["parses"] += 1
        return parse(*args, **kwargs)

    def counting_init(self, *args, **kwargs):
        seen["policies"] += 1
        init(self, *args, **kwargs)

    monkeypatch.setattr(policy_module, "parse_jwks", counting_parse)
    monkeypatch.setattr(policy_module.JwtPolicy, "__init__", counting_init)
    return seen


def test_a_reload_builds_each_policy_once(tmp_path, counts):
    runtime = app.ConfigSource([write_config(tmp_path)], {}).build()
    assert counts == {"parses": KEY_SETS, "policies": 2}
    assert len(runtime.policies) == 2
    # The routes serve the very objects that were built (the listener's policy shared by a and b).
    [(_, router)] = runtime.routers
    (a, _), (b, _), (c, _) = (route.policies for route in router.routes)   # jwtAuth, then the RFC 8705 check
    assert a is b and a is not c and {id(a), id(c)} == {id(p) for p in runtime.policies}


def test_agw_run_builds_each_policy_once(tmp_path, counts, monkeypatch):
    served = []

    async def fake_serve(runtime, **kwargs):
        served.append(runtime)
        return 0

    monkeypatch.setattr(app, "serve", fake_serve)
    assert main(["run", "-f", write_config(tmp_path), "--admin", "off", "--access-log", "off"]) == 0
    assert counts == {"parses": KEY_SETS, "policies": 2}
    assert len(served) == 1 and len(served[0].policies) == 2
