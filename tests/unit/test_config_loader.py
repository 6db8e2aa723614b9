"""The native config loader: what a user reads when a config is wrong (`config error: <path>: <reason>`)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agw.config import ConfigError, load


def write(tmp_path: Path, text: str, name: str = "agw.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def errors(tmp_path: Path, text: str, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load([write(tmp_path, text)], env=env or {})
    return err.value.lines()


ROUTE = """
binds:
- port: 8080
  listeners:
  - routes:
    - backends: [{host: 127.0.0.1:8000}]
"""

R0 = "binds[0].listeners[0].routes[0]"


def with_jwt(jwt: str) -> str:
    body = textwrap.indent(textwrap.dedent(jwt).strip(), " " * 10)
    return ROUTE + "      policies:\n        jwtAuth:\n" + body + "\n"


def test_a_valid_config_loads(tmp_path):
    loaded = load([write(tmp_path, ROUTE)], env={})
    [bind] = loaded.config.binds
    assert (bind.port, bind.address) == (8080, "0.0.0.0")
    assert bind.listeners[0].routes[0].backends[0].host == "127.0.0.1:8000"
    assert loaded.statuses == [] and loaded.warnings == []


@pytest.mark.parametrize("text, line", [
    ("bind: []\n", "config error: bind: unknown field"),
    ("binds:\n- port: eighty\n", "config error: binds[0].port: expected int, got str"),
    ("""
     binds:
     - port: 8080
       listeners:
       - routes:
         - matches: [{path: {pathPrefx: /}}]
           backends: [{host: 127.0.0.1:1}]
     """, f"config error: {R0}.matches[0].path.pathPrefx: unknown field"),
    ("""
     binds:
     - port: 8080
       listeners:
       - routes:
         - backends: [{weight: 2}]
     """, f"config error: {R0}.backends[0].host: required"),
])
def test_decoding_errors_name_the_field(tmp_path, text, line):
    assert errors(tmp_path, text) == [line]


def test_invalid_yaml_names_file_line_and_column(tmp_path):
    path = tmp_path / "agw.yaml"
    assert errors(tmp_path, "binds:\n  - port: 8080\n   listeners: []\n") == [
        f"config error: {path}: invalid YAML: line 3, column 4: expected <block end>, but found "
        f"'<block mapping start>'"]


def test_a_document_must_be_a_mapping(tmp_path):
    assert errors(tmp_path, "- port: 8080\n") == [
        f"config error: {tmp_path / 'agw.yaml'}: a config document must be a mapping"]


def test_unreadable_file():
    with pytest.raises(ConfigError) as err:
        load(["/nonexistent/agw.yaml"], env={})
    assert err.value.lines() == ["config error: /nonexistent/agw.yaml: cannot read: No such file or directory"]


def test_upgrade_and_tunnel_settings_are_checked(tmp_path):
    text = """
    config: {maxTunnels: -1}
    binds:
    - port: 8080
      listeners:
      - routes:
        - backends: [{host: "h:1"}]
          upgrades: [websocket, h2c, "not a token"]
          policies: {timeout: {tunnelIdleTimeout: 0s}}
    """
    assert errors(tmp_path, text) == [
        "config error: config.maxTunnels: must be at least 0",
        f"config error: {R0}.upgrades[1]: h2c is not supported",
        f"config error: {R0}.upgrades[2]: invalid upgrade token 'not a token'",
        f"config error: {R0}.policies.timeout.tunnelIdleTimeout: must be greater than zero",
    ]
    from agw.config.compile import compile_config
    ok = write(tmp_path, "binds: [{port: 8080, listeners: [{routes: [{backends: [{host: 'h:1'}],"
               " upgrades: [WebSocket, x], policies: {timeout: {tunnelIdleTimeout: 90s}}},"
               " {backends: [{host: 'h:1'}]}]}]}]\n", "ok.yaml")
    first, second = compile_config(load([ok], env={}).config).binds[0].routes
    assert first.upgrades == {b"websocket", b"x"} and first.tunnel_idle_timeout == 90.0
    assert second.upgrades == {b"websocket"} and second.tunnel_idle_timeout == 3600.0


def test_every_routing_problem_is_reported_at_once(tmp_path):
    text = """
    binds:
    - port: 70000
      listeners:
      - protocol: UDP
        routes:
        - hostnames: ["a*.example.com"]
          matches:
          - path: {exact: headers}
          - path: {regex: "("}
          - path: {exact: /a, pathPrefix: /b}
          - headers: [{name: "bad header", value: {exact: x, regex: y}}]
          backends: [{host: "127.0.0.1"}, {host: "h:1", weight: 0}]
        - backends: []
    """
    assert errors(tmp_path, text) == [
        "config error: binds[0].port: port 70000 out of range",
        "config error: binds[0].listeners[0].protocol: unsupported protocol 'UDP' (HTTP or HTTPS)",
        f"config error: {R0}.hostnames[0]: invalid hostname 'a*.example.com' (a name, or *.suffix)",
        f"config error: {R0}.matches[0].path: must start with '/', got 'headers'",
        f"config error: {R0}.matches[1].path.regex: invalid regex: missing ), unterminated subpattern at position 0",
        f"config error: {R0}.matches[2].path: exactly one of exact, pathPrefix, regex is required",
        f"config error: {R0}.matches[3].headers[0].name: invalid header name 'bad header'",
        f"config error: {R0}.matches[3].headers[0].value: exactly one of exact, regex is required",
        f"config error: {R0}.backends[0].host: expected host:port, got '127.0.0.1'",
        f"config error: {R0}.backends[1].weight: must be at least 1",
        "config error: binds[0].listeners[0].routes[1].backends: at least one backend is required",
    ]


def test_the_same_port_twice(tmp_path):
    assert errors(tmp_path, "binds:\n- port: 8080\n- port: 8080\n") == [
        "config error: binds[1].port: port 8080 is already bound by binds[0]"]


def test_settings_durations(tmp_path):
    assert errors(tmp_path, "config: {connectTimeout: 5 seconds, responseTimeout: 0s}\n") == [
        "config error: config.connectTimeout: invalid duration '5 seconds' (use e.g. 30s, 5m, 1h)",
        "config error: config.responseTimeout: must be greater than zero",
    ]


def test_jwt_mode_and_shapes(tmp_path):
    text = with_jwt("""
        mode: sometimes
        issuer: https://i.example
        providers: []
        """)
    p = f"{R0}.policies.jwtAuth"
    assert errors(tmp_path, text) == [
        f"config error: {p}.mode: invalid mode 'sometimes' (Strict, Optional or Permissive)",
        f"config error: {p}.issuer: not allowed together with providers (set it on each provider)",
        f"config error: {p}.providers: at least one provider is required",
    ]


def test_jwt_single_provider_problems(tmp_path):
    text = with_jwt("""
        jwks: {url: "ftp://x", file: k.json, cacheDuration: 1 hour}
        jwtValidationOptions: {requiredClaims: [exp, foo]}
        """)
    p = f"{R0}.policies.jwtAuth"
    assert errors(tmp_path, text) == [
        f"config error: {p}.issuer: required",
        f"config error: {p}.jwks: exactly one of url, file, inline, pem, discovery is required (got url, file)",
        f"config error: {p}.jwks.url: invalid URL 'ftp://x' (http:// or https://)",
        f"config error: {p}.jwks.cacheDuration: invalid duration '1 hour' (use e.g. 30s, 5m, 1h)",
        f"config error: {p}.jwtValidationOptions.requiredClaims[1]: unsupported claim 'foo' "
        f"(one of exp, nbf, aud, iss, sub, iat)",
    ]


def test_jwt_unknown_field_in_a_provider(tmp_path):
    text = with_jwt("""
        providers:
        - issuer: https://i.example
          jwks: {url: "https://i.example/certs"}
          audience: [x]
        """)
    assert errors(tmp_path, text) == [f"config error: {R0}.policies.jwtAuth.providers[0].audience: unknown field"]


def test_environment_variables_are_expanded(tmp_path):
    text = ROUTE.replace("127.0.0.1:8000", '"${HOST}:$PORT"').replace("- backends",
                                                                     "- name: price-$$5\n      backends")
    loaded = load([write(tmp_path, text)], env={"HOST": "127.0.0.1", "PORT": "9000"})
    route = loaded.config.binds[0].listeners[0].routes[0]
    assert route.backends[0].host == "127.0.0.1:9000"
    assert route.name == "price-$5"     # $$ is a literal dollar


def test_an_unset_variable_is_named(tmp_path):
    text = ROUTE.replace("127.0.0.1:8000", '"${HOST}:$PORT"')
    assert errors(tmp_path, text, env={"HOST": "127.0.0.1"}) == [
        f"config error: {R0}.backends[0].host: environment variable PORT is not set"]


def test_several_files_are_one_config(tmp_path):
    first = write(tmp_path, ROUTE, "a.yaml")
    second = write(tmp_path, ROUTE.replace("8080", "8081"), "b.yaml")
    loaded = load([first, second], env={})
    assert [b.port for b in loaded.config.binds] == [8080, 8081]


RESERVED = "cannot carry a claim (framing, hop-by-hop, routing, forwarding and credential headers are reserved)"


@pytest.mark.parametrize("header", [
    "content-length", "Content-Length", "content_length", "transfer-encoding", "host", "Host", "connection",
    "keep-alive", "te", "trailer", "upgrade", "proxy-authorization", "Proxy-Connection", "proxy_authenticate",
    "x-forwarded-for", "X-Forwarded-Proto", "x-forwarded-host", "x_forwarded_for", "forwarded", "authorization",
    "Authorization", "cookie"])
def test_claims_to_headers_refuses_framing_routing_forwarding_and_credential_headers(tmp_path, header):
    """F16: a claim must not set the upstream framing, Host, a hop-by-hop header, what agw writes itself, or a
    credential."""
    text = with_jwt(f"""
        issuer: https://i.example
        jwks: {{inline: '{{"keys": []}}'}}
        claimsToHeaders: [{{claim: sub, header: "{header}"}}]
        """)
    assert errors(tmp_path, text) == [f"config error: {R0}.policies.jwtAuth.claimsToHeaders[0].header: "
                                      f"{header!r} {RESERVED}"]


@pytest.mark.parametrize("location, header", [
    ("{header: {name: x-api-token, prefix: ''}}", "x-api-token"),
    ("{header: {name: X-Api-Token, prefix: ''}}", "x_api_token"),
    ("{queryParameter: {name: access_token}}", "authorization"),
    ("{cookie: {name: jwt}}", "cookie"),
])
def test_claims_to_headers_refuses_the_credential_header_wherever_it_is(tmp_path, location, header):
    text = with_jwt(f"""
        issuer: https://i.example
        jwks: {{inline: '{{"keys": []}}'}}
        location: {location}
        claimsToHeaders: [{{claim: sub, header: {header}}}, {{claim: email, header: x-email}}]
        """)
    assert errors(tmp_path, text) == [f"config error: {R0}.policies.jwtAuth.claimsToHeaders[0].header: "
                                      f"{header!r} {RESERVED}"]


@pytest.mark.parametrize("header", ["x-user\\n", "x user", "x-user:", "", "x-\\u00e9", "x-user\\r\\nx-admin"])
def test_claims_to_headers_refuses_names_that_are_not_tokens(tmp_path, header):
    text = with_jwt(f"""
        issuer: https://i.example
        jwks: {{inline: '{{"keys": []}}'}}
        claimsToHeaders: [{{claim: sub, header: "{header}"}}]
        """)
    [line] = errors(tmp_path, text)
    assert line.startswith(f"config error: {R0}.policies.jwtAuth.claimsToHeaders[0].header: invalid header name")


def test_claims_to_headers_accepts_ordinary_names(tmp_path):
    text = with_jwt("""
        issuer: https://i.example
        jwks: {inline: '{"keys": [{"kty": "oct", "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}'}
        claimsToHeaders: [{claim: sub, header: x-user-id}, {claim: email, header: X_Email}, {claim: r, header: x-te}]
        """)
    load([write(tmp_path, text)], env={})
