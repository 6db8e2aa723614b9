"""`agw check`: the exact lines for valid and broken configs, and the exit status they lead to."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agw.cli import main
from agw.check import check_files

REPO = Path(__file__).resolve().parents[2]
ENV = {"KEYCLOAK_ISSUER": "http://127.0.0.1:8081/realms/master",
       "KEYCLOAK_JWKS_PATH": "/realms/master/protocol/openid-connect/certs"}
RESOLVE = {"keycloak.keycloak:8080": "127.0.0.1:8081", "httpbin.httpbin:8000": "127.0.0.1:8000"}
GUIDE = (REPO / "examples" / "guide-policy.yaml").read_text()
POLICY = "AgentgatewayPolicy/agentgateway-system/jwt-auth-policy"
ACCEPTED_OBJECTS = ["Gateway/agentgateway-system/agentgateway-proxy: Accepted", "HTTPRoute/httpbin/httpbin: Accepted"]


def check_text(tmp_path: Path, text: str, env: dict | None = None) -> tuple[list[str], bool]:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return check_files([str(path)], RESOLVE, env=ENV if env is None else env)


def test_the_guide_example_is_accepted():
    lines, ok = check_files([str(REPO / "examples" / "guide-policy.yaml")], RESOLVE, env=ENV)
    assert (lines, ok) == (ACCEPTED_OBJECTS + [f"{POLICY}: Accepted"], True)


def test_the_native_example_is_accepted():
    lines, ok = check_files([str(REPO / "examples" / "native.yaml")], env={})
    assert (lines, ok) == (["Route/main/health: Accepted", "Route/main/app: Accepted"], True)


@pytest.mark.parametrize("edit, problem", [
    (("      - issuer: \"${KEYCLOAK_ISSUER}\"\n        jwks:", "      - jwks:"),
     "Invalid: spec.traffic.jwtAuthentication.providers[0].issuer: required"),
    (("mode: Strict", "mode: Foo"),
     'Invalid: spec.traffic.jwtAuthentication.mode: invalid mode "Foo" (Strict, Optional or Permissive)'),
    (('cacheDuration: "5m"', 'cacheDuration: "5 minutes"'),
     "Invalid: spec.traffic.jwtAuthentication.providers[0].jwks.remote.cacheDuration: invalid duration "
     "'5 minutes' (use e.g. 30s, 5m, 1h)"),
    (("kind: Gateway\n    name: agentgateway-proxy", "kind: Gateway\n    name: no-such-gateway"),
     "TargetNotFound: spec.targetRefs[0]: Gateway agentgateway-system/no-such-gateway not found"),
])
def test_broken_policies(tmp_path, edit, problem):
    old, new = edit
    assert old in GUIDE
    lines, ok = check_text(tmp_path, GUIDE.replace(old, new))
    assert (lines, ok) == (ACCEPTED_OBJECTS + [f"{POLICY}: {problem}"], False)


def test_unset_variable(tmp_path):
    lines, ok = check_text(tmp_path, GUIDE, env={"KEYCLOAK_JWKS_PATH": "/certs"})
    assert (lines, ok) == (ACCEPTED_OBJECTS + [
        f"{POLICY}: Invalid: spec.traffic.jwtAuthentication.providers[0].issuer: "
        f"environment variable KEYCLOAK_ISSUER is not set"], False)


def test_unset_variable_in_native_config(tmp_path):
    lines, ok = check_text(tmp_path, """
        binds:
        - port: 8080
          listeners:
          - routes:
            - backends: [{host: "${BACKEND}"}]
        """, env={})
    assert (lines, ok) == (["config error: binds[0].listeners[0].routes[0].backends[0].host: "
                            "environment variable BACKEND is not set"], False)


def test_several_problems_in_one_policy_are_one_line(tmp_path):
    text = GUIDE.replace("mode: Strict", "mode: Foo").replace('cacheDuration: "5m"', "cacheDuration: x")
    lines, ok = check_text(tmp_path, text)
    assert lines[-1] == (f'{POLICY}: Invalid: spec.traffic.jwtAuthentication.mode: invalid mode "Foo" (Strict, '
                         f"Optional or Permissive); spec.traffic.jwtAuthentication.providers[0].jwks.remote."
                         f"cacheDuration: invalid duration 'x' (use e.g. 30s, 5m, 1h)")
    assert not ok


def test_native_config_error_lines(tmp_path):
    lines, ok = check_text(tmp_path, """
        binds:
        - port: 8080
          listeners:
          - routes:
            - backends: [{hots: 127.0.0.1:8000}]
        """)
    assert (lines, ok) == (["config error: binds[0].listeners[0].routes[0].backends[0].hots: unknown field"], False)


def test_native_jwks_that_has_no_usable_key_makes_its_route_invalid(tmp_path):
    lines, ok = check_text(tmp_path, """
        binds:
        - port: 8080
          listeners:
          - name: main
            routes:
            - name: app
              backends: [{host: 127.0.0.1:8000}]
              policies:
                jwtAuth:
                  issuer: https://i.example
                  jwks: {inline: '{"keys": []}'}
        """)
    assert not ok
    [line] = lines
    assert line.startswith("Route/main/app: Invalid: binds[0].listeners[0].routes[0].policies.jwtAuth.jwks.inline: ")


MISSING_FILE = """
    binds:
    - port: 8080
      listeners:
      - name: main
        routes:
        - name: health
          backends: [{host: 127.0.0.1:8000}]
        - name: app
          backends: [{host: 127.0.0.1:8000}]
          policies:
            jwtAuth:
              issuer: https://i.example
              jwks: {file: missing.json}
    """


def test_a_missing_jwks_file_is_one_invalid_verdict_for_its_route(tmp_path):
    lines, ok = check_text(tmp_path, MISSING_FILE)
    assert (lines, ok) == (["Route/main/health: Accepted",
                            "Route/main/app: Invalid: binds[0].listeners[0].routes[1].policies.jwtAuth.jwks.file: "
                            f"cannot read {tmp_path / 'missing.json'}: No such file or directory"], False)


def test_a_listener_policy_with_a_missing_jwks_file_makes_the_routes_using_it_invalid(tmp_path):
    lines, ok = check_text(tmp_path, """
        binds:
        - port: 8080
          listeners:
          - name: main
            policies:
              jwtAuth: {issuer: https://i.example, jwks: {file: missing.json}}
            routes:
            - name: a
              backends: [{host: 127.0.0.1:8000}]
            - name: b
              backends: [{host: 127.0.0.1:8000}]
              policies:
                jwtAuth: {issuer: https://i.example, jwks: {inline: '{"keys": []}'}}
        """)
    problem = f"binds[0].listeners[0].policies.jwtAuth.jwks.file: cannot read {tmp_path / 'missing.json'}: " \
              "No such file or directory"
    assert not ok
    assert lines[0] == f"Route/main/a: Invalid: {problem}"
    assert lines[1].startswith("Route/main/b: Invalid: binds[0].listeners[0].routes[1].policies.jwtAuth.jwks.inline: ")
    assert len(lines) == 2


def test_an_unused_listener_policy_that_cannot_be_built_is_reported_on_its_listener(tmp_path):
    lines, ok = check_text(tmp_path, """
        binds:
        - port: 8080
          listeners:
          - name: main
            policies:
              jwtAuth: {issuer: https://i.example, jwks: {file: missing.json}}
            routes:
            - name: a
              backends: [{host: 127.0.0.1:8000}]
              policies:
                jwtAuth: {issuer: https://i.example, jwks: {url: "http://127.0.0.1:1/jwks"}}
        """)
    assert (lines, ok) == (["Route/main/a: Accepted",
                            "Listener/main: Invalid: binds[0].listeners[0].policies.jwtAuth.jwks.file: "
                            f"cannot read {tmp_path / 'missing.json'}: No such file or directory"], False)


def test_cli_check_and_run_refuse_a_missing_jwks_file(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(MISSING_FILE))
    assert main(["check", "-f", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Route/main/health: Accepted" and out[1].startswith("Route/main/app: Invalid: ")
    assert len(out) == 2
    with pytest.raises(SystemExit) as exit_:
        main(["run", "-f", str(path), "--admin", "off"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == out[1:]


def test_warnings_do_not_fail_the_check(tmp_path):
    lines, ok = check_text(tmp_path, GUIDE + "\n---\napiVersion: v1\nkind: Service\nmetadata: {name: httpbin}\n")
    assert ok
    assert lines[-1] == f"warning: {tmp_path / 'config.yaml'}#4: ignoring Service (agw reads Gateway, HTTPRoute, " \
                        f"AgentgatewayPolicy)"


def test_no_listener_at_all_fails(tmp_path):
    policy_only = GUIDE.split("---\n")[-1]
    lines, ok = check_text(tmp_path, policy_only)
    assert (lines, ok) == ([f"{POLICY}: TargetNotFound: spec.targetRefs[0]: Gateway "
                            f"agentgateway-system/agentgateway-proxy not found",
                            "config error: binds: no listener configured"], False)


def test_unreadable_file():
    lines, ok = check_files(["/nonexistent/agw.yaml"], env={})
    assert (lines, ok) == (["config error: /nonexistent/agw.yaml: cannot read: No such file or directory"], False)


def test_cli_check_prints_the_lines_and_exits_0_or_1(tmp_path, capsys, monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    good = tmp_path / "good.yaml"
    good.write_text(GUIDE)
    assert main(["check", "-f", str(good), "--resolve", "keycloak.keycloak:8080=127.0.0.1:8081"]) == 0
    assert capsys.readouterr().out.splitlines() == ACCEPTED_OBJECTS + [f"{POLICY}: Accepted"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(GUIDE.replace("mode: Strict", "mode: Foo"))
    assert main(["check", "-f", str(bad)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == (
        f'{POLICY}: Invalid: spec.traffic.jwtAuthentication.mode: invalid mode "Foo" (Strict, Optional or Permissive)')


def test_refusal_lines_are_what_agw_run_prints(tmp_path):
    from agw.check import check
    from agw.config import load

    path = tmp_path / "config.yaml"
    path.write_text(GUIDE.replace("jwks:\n          remote:", "jwks:\n          inline: '{\"keys\": []}'\n"
                                  "          remote:"))
    loaded = load([str(path)], resolve=RESOLVE, env=ENV)
    assert loaded.statuses[-1] == (f"{POLICY}: Invalid: spec.traffic.jwtAuthentication.providers[0].jwks: "
                                   f"exactly one of inline, remote is required")
    assert check(loaded).refusals == [loaded.statuses[-1]]
    assert check(loaded).lines == check(loaded).lines     # idempotent: the status is not reported twice
    path.write_text(GUIDE)
    assert check(load([str(path)], resolve=RESOLVE, env=ENV)).refusals == []


@pytest.mark.parametrize("grace, problem", [
    ("soon", "config error: config.startupGrace: invalid duration 'soon' (use e.g. 30s, 5m, 1h)"),
    ("-1s", "config error: config.startupGrace: invalid duration '-1s' (use e.g. 30s, 5m, 1h)"),
])
def test_startup_grace_is_a_duration_and_may_be_zero(tmp_path, grace, problem):
    text = f"""
        binds:
        - port: 8080
          listeners:
          - routes:
            - backends: [{{host: 127.0.0.1:8000}}]
        config:
          startupGrace: {grace}
        """
    assert check_text(tmp_path, text) == ([problem], False)
    assert check_text(tmp_path, text.replace(f"startupGrace: {grace}", "startupGrace: 0s"))[1]
