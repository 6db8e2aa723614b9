"""The development tools (dev IdP, demo backend) and the test infrastructure everyone builds on (the
oauth2-mock-server IdP, httpbin, the raw client, the agw process factory), each against real processes."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request

import jwt
import pytest

from tests.support import ExternalProcess, RawConnection, free_port, wait_for_port_closed
from tests.support.proxy import agw_env, bind_ports
from tests.support.rawhttp import build_request, chunked, parse_responses

REALM = "/realms/master"


def http_json(method: str, url: str, form: dict[str, str] | None = None) -> tuple[int, dict]:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def verify_with_jwks(token: str, jwks: dict, *, issuer: str, audience: str = "my-application") -> dict:
    """Verify as an independent relying party would: PyJWT, key picked by kid from the published JWKS."""
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(key for key in jwks["keys"] if key["kid"] == kid)
    key = jwt.PyJWK(jwk)
    return jwt.decode(token, key.key, algorithms=[key.algorithm_name], audience=audience, issuer=issuer,
                      options={"require": ["exp", "iat", "iss", "aud", "sub"]})


# --- the development IdP (`agw dev-idp`) ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def dev_idp_process(tmp_path_factory):
    port = free_port()
    process = ExternalProcess(
        [sys.executable, "-m", "agw.devtools.dev_idp", "--port", str(port)],
        name="dev-idp", env=agw_env(), ports_to_wait=[port],
        log_path=tmp_path_factory.mktemp("dev-idp") / "dev-idp.log",
    ).start()
    process.base_url = f"http://127.0.0.1:{port}"
    yield process
    process.stop()


def test_dev_idp_says_loudly_it_is_for_development_only(dev_idp_process):
    output = dev_idp_process.wait_for_output(r"listening on").string
    assert "DEVELOPMENT-ONLY" in output
    assert f"issuer: {dev_idp_process.base_url}{REALM}" in output


def test_dev_idp_discovery_on_keycloak_paths(dev_idp_process):
    base = dev_idp_process.base_url
    for path in (f"{REALM}/.well-known/openid-configuration", "/.well-known/openid-configuration"):
        status, doc = http_json("GET", base + path)
        assert status == 200
        assert doc["issuer"] == f"{base}{REALM}"
        assert doc["jwks_uri"] == f"{base}{REALM}/protocol/openid-connect/certs"
        assert doc["token_endpoint"] == f"{base}{REALM}/protocol/openid-connect/token"


def test_dev_idp_password_grant_token_verifies_against_its_jwks(dev_idp_process):
    base = dev_idp_process.base_url
    status, body = http_json("POST", f"{base}{REALM}/protocol/openid-connect/token", {
        "grant_type": "password", "client_id": "my-application", "username": "user1", "password": "password"})
    assert status == 200
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    _, jwks = http_json("GET", f"{base}{REALM}/protocol/openid-connect/certs")
    assert [key["kty"] for key in jwks["keys"]] == ["RSA"]
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "RS256"
    claims = verify_with_jwks(body["access_token"], jwks, issuer=f"{base}{REALM}")
    assert claims["preferred_username"] == "user1"
    assert claims["azp"] == "my-application" and claims["typ"] == "Bearer"
    assert "default-roles-master" in claims["realm_access"]["roles"]
    assert claims["exp"] - claims["iat"] == 300
    assert claims["jti"]


def test_dev_idp_refuses_a_wrong_password(dev_idp_process):
    status, body = http_json("POST", f"{dev_idp_process.base_url}{REALM}/protocol/openid-connect/token", {
        "grant_type": "password", "client_id": "my-application", "username": "user1", "password": "wrong"})
    assert (status, body["error"]) == (401, "invalid_grant")


def test_dev_idp_unknown_grant_and_unknown_path(dev_idp_process):
    base = dev_idp_process.base_url
    status, body = http_json("POST", f"{base}{REALM}/protocol/openid-connect/token", {"grant_type": "magic"})
    assert (status, body["error"]) == (400, "unsupported_grant_type")
    status, _ = http_json("GET", f"{base}/realms/other/protocol/openid-connect/certs")
    assert status == 404


def test_dev_idp_client_credentials_with_basic_auth(dev_idp_process):
    base = dev_idp_process.base_url
    with RawConnection(int(base.rsplit(":", 1)[1])) as conn:
        response = conn.request("POST", f"{REALM}/protocol/openid-connect/token", {
            "Authorization": "Basic c2VydmljZS1hOnNlY3JldA==",  # service-a:secret
            "Content-Type": "application/x-www-form-urlencoded"}, b"grant_type=client_credentials")
        assert response.status == 200
        # the same connection serves the JWKS next (keep-alive)
        jwks = conn.request("GET", f"{REALM}/protocol/openid-connect/certs").json()
    token = response.json()["access_token"]
    claims = verify_with_jwks(token, jwks, issuer=f"{base}{REALM}", audience="service-a")
    assert claims["preferred_username"] == "service-account-service-a"
    # the default audience stays in `aud`, so a policy written for my-application accepts any client's token
    assert claims["aud"] == ["my-application", "service-a"] and claims["azp"] == "service-a"


def test_dev_idp_rejects_oversized_requests(dev_idp_process):
    port = int(dev_idp_process.base_url.rsplit(":", 1)[1])
    with RawConnection(port) as conn:
        body = b"grant_type=password&username=" + b"a" * (64 * 1024)
        response = conn.request("POST", f"{REALM}/protocol/openid-connect/token",
                                {"Content-Type": "application/x-www-form-urlencoded"}, body)
        assert response.status == 413
    with RawConnection(port) as conn:
        response = conn.request("GET", "/", {"X-Big": "b" * (64 * 1024)})
        assert response.status == 431


def test_dev_idp_stops_cleanly_on_sigterm(tmp_path):
    port = free_port()
    process = ExternalProcess([sys.executable, "-m", "agw.devtools.dev_idp", "--port", str(port)],
                              env=agw_env(), ports_to_wait=[port], log_path=tmp_path / "idp.log").start()
    assert process.stop() == 0
    wait_for_port_closed("127.0.0.1", port)


def test_agw_dev_idp_command_serves_the_guide_flow(tmp_path):
    port = free_port()
    process = ExternalProcess([sys.executable, "-m", "agw", "dev-idp", "--port", str(port)], env=agw_env(),
                              ports_to_wait=[port], log_path=tmp_path / "agw-dev-idp.log").start()
    try:
        base = f"http://127.0.0.1:{port}"
        status, body = http_json("POST", f"{base}{REALM}/protocol/openid-connect/token", {
            "grant_type": "password", "client_id": "my-application", "username": "user1", "password": "password"})
        assert status == 200
        _, jwks = http_json("GET", f"{base}{REALM}/protocol/openid-connect/certs")
        assert verify_with_jwks(body["access_token"], jwks, issuer=f"{base}{REALM}")["aud"] == "my-application"
        assert "DEVELOPMENT-ONLY" in process.output()
    finally:
        assert process.stop() == 0


def test_dev_idp_python_api_mints_tokens_and_serves_on_a_chosen_port():
    from agw.devtools.dev_idp import DevIdp

    async def scenario() -> tuple[str, dict, str, dict]:
        idp = DevIdp(port=0, issuer="https://idp.example/realms/master", users={"alice": "s3cret"})
        await idp.start()
        try:
            loop = asyncio.get_running_loop()
            jwks = await loop.run_in_executor(None, http_json, "GET", idp.jwks_url)
            status_body = await loop.run_in_executor(None, http_json, "POST", idp.token_url, {
                "grant_type": "password", "username": "alice", "password": "s3cret"})
            return idp.mint(sub="custom", exp=None), jwks[1], idp.issuer, status_body[1]
        finally:
            await idp.close()

    minted, jwks, issuer, token_body = asyncio.run(scenario())
    assert issuer == "https://idp.example/realms/master"
    key = jwt.PyJWK(jwks["keys"][0])
    claims = jwt.decode(minted, key.key, algorithms=["RS256"], audience="my-application", issuer=issuer,
                        options={"verify_exp": False})
    assert claims["sub"] == "custom" and "exp" not in claims
    assert verify_with_jwks(token_body["access_token"], jwks, issuer=issuer)["preferred_username"] == "alice"


# --- the demo backend, compared with the real httpbin --------------------------------------------------------

@pytest.fixture(scope="module")
def demo_backend_port(tmp_path_factory):
    port = free_port()
    process = ExternalProcess([sys.executable, "-m", "agw.devtools.demo_backend", "--port", str(port)],
                              name="demo-backend", env=agw_env(), ports_to_wait=[port],
                              log_path=tmp_path_factory.mktemp("demo") / "demo.log").start()
    yield port
    process.stop()


SAME_REQUEST_HEADERS = [
    ("Host", "backend.test"), ("User-Agent", "curl/8.5.0"), ("Accept", "*/*"), ("x-user-id", "u-1"),
    ("X-Dup", "a"), ("x-dup", "b"), ("X-Forwarded-For", "10.1.2.3"), ("X-REQUEST-ID", "hidden"),
]


def test_demo_backend_headers_match_httpbin(demo_backend_port, httpbin_backend):
    def fetch(port: int) -> tuple[dict, str | None]:
        with RawConnection(port) as conn:
            response = conn.request("GET", "/headers", SAME_REQUEST_HEADERS)
        assert response.status == 200
        return response.json(), response.header("content-type")

    ours, our_type = fetch(demo_backend_port)
    theirs, _ = fetch(httpbin_backend.port)
    assert ours == theirs
    assert ours == {"headers": {"Host": "backend.test", "User-Agent": "curl/8.5.0", "Accept": "*/*",
                                "X-User-Id": "u-1", "X-Dup": "a,b"}}
    assert our_type == "application/json"


def test_demo_backend_headers_output_is_pretty_like_httpbin(demo_backend_port):
    with RawConnection(demo_backend_port) as conn:
        body = conn.request("GET", "/headers", [("Host", "h"), ("Authorization", "Bearer x")]).text
    assert body == '{\n  "headers": {\n    "Authorization": "Bearer x",\n    "Host": "h"\n  }\n}\n'


def test_demo_backend_get_matches_httpbin(demo_backend_port, httpbin_backend):
    def fetch(port: int) -> dict:
        with RawConnection(port) as conn:
            return conn.request("GET", "/get?a=1&a=2&b=x%20y", [("Host", "backend.test")]).json()

    assert fetch(demo_backend_port) == fetch(httpbin_backend.port) == {
        "args": {"a": ["1", "2"], "b": "x y"}, "headers": {"Host": "backend.test"}, "origin": "127.0.0.1",
        "url": "http://backend.test/get?a=1&a=2&b=x%20y"}


def test_demo_backend_anything_and_status(demo_backend_port):
    with RawConnection(demo_backend_port) as conn:
        echoed = conn.request("PUT", "/anything/deep?q=1", {"Content-Type": "application/json"}, b'{"k": [1]}')
        assert echoed.status == 200
        doc = echoed.json()
        assert (doc["method"], doc["data"], doc["json"], doc["args"]) == ("PUT", '{"k": [1]}', {"k": [1]}, {"q": "1"})
        assert conn.request("GET", "/status/418").status == 418
        assert conn.request("DELETE", "/status/204").status == 204
        assert conn.request("GET", "/").text.startswith("agw demo backend")
        assert conn.request("GET", "/nope").status == 404


def test_demo_backend_keeps_alive_and_answers_pipelined_requests_in_order(demo_backend_port):
    with RawConnection(demo_backend_port) as conn:
        conn.send(build_request("GET", "/get?n=1") + build_request("HEAD", "/get?n=2")
                  + build_request("POST", "/anything?n=3", {"Transfer-Encoding": "chunked"}, chunked(b"ab", b"cd")))
        first = conn.read_response()
        head = conn.read_response("HEAD")
        third = conn.read_response()
        assert first.json()["args"] == {"n": "1"}
        assert head.status == 200 and head.body == b"" and int(head.header("content-length")) > 0
        assert third.json()["data"] == "abcd" and third.json()["args"] == {"n": "3"}
        assert not conn.is_closed_by_peer(wait=0.1)
        # HTTP/1.0 without keep-alive: answered, then closed.
        conn.send(b"GET /get HTTP/1.0\r\nHost: x\r\n\r\n")
        last = parse_responses(conn.read_until_closed())
        assert [r.status for r in last] == [200]


def test_demo_backend_rejects_garbage_with_400_and_keeps_serving(demo_backend_port):
    with RawConnection(demo_backend_port) as conn:
        conn.send(b"NOT HTTP\r\n\r\n")
        assert conn.read_response().status == 400
        assert conn.is_closed_by_peer()
    with RawConnection(demo_backend_port) as conn:
        assert conn.request("GET", "/headers").status == 200


# --- the oauth2-mock-server IdP fixture ----------------------------------------------------------------------

def test_idp_fixture_serves_keycloak_paths_and_real_tokens(idp):
    status, doc = http_json("GET", idp.discovery_url)
    assert status == 200
    assert doc["issuer"] == idp.issuer == f"http://127.0.0.1:{idp.port}{REALM}"
    assert doc["jwks_uri"] == idp.jwks_url
    assert doc["token_endpoint"] == idp.token_url
    token = idp.password_token()
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["kid"]
    claims = verify_with_jwks(token, idp.jwks(), issuer=idp.issuer)
    assert claims["aud"] == "my-application" and claims["preferred_username"] == "user1"
    assert claims["exp"] - claims["iat"] == 300


def test_idp_fixture_refuses_a_wrong_password(idp):
    status, body = idp.token_response(password="wrong")
    assert (status, body["error"]) == (401, "invalid_grant")
    status, _ = idp.token_response(username="nobody")
    assert status == 401


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "ES384", "EdDSA"])
def test_idp_fixture_mints_tokens_in_every_algorithm(idp, alg):
    token = idp.mint({"sub": "minted", "aud": ["my-application", "other"]}, alg=alg)
    assert jwt.get_unverified_header(token)["alg"] == alg
    claims = verify_with_jwks(token, idp.jwks(), issuer=idp.issuer)
    assert claims["sub"] == "minted"


def test_idp_fixture_mint_can_remove_claims_and_the_kid(idp):
    token = idp.mint({"exp": None, "aud": None}, header={"kid": None})
    assert "kid" not in jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert "exp" not in claims and "aud" not in claims and claims["iss"] == idp.issuer


def test_idp_fixture_key_rotation(idp_fresh):
    old_token = idp_fresh.password_token()
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    new_kid = idp_fresh.rotate()
    assert new_kid != old_kid
    kids = [key["kid"] for key in idp_fresh.jwks()["keys"]]
    assert new_kid in kids and old_kid not in kids
    new_token = idp_fresh.password_token()
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    verify_with_jwks(new_token, idp_fresh.jwks(), issuer=idp_fresh.issuer)
    # keep_old: both keys published, the newest signs
    newest = idp_fresh.rotate(keep_old=True)
    kids = [key["kid"] for key in idp_fresh.jwks()["keys"]]
    assert newest in kids and new_kid in kids
    verify_with_jwks(new_token, idp_fresh.jwks(), issuer=idp_fresh.issuer)


def test_idp_fixture_stop_and_start_keep_the_issuer(idp_fresh):
    issuer, first_kid = idp_fresh.issuer, idp_fresh.jwks()["keys"][0]["kid"]
    idp_fresh.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(idp_fresh.jwks_url, timeout=2)
    idp_fresh.start()
    assert idp_fresh.issuer == issuer
    assert idp_fresh.jwks()["keys"][0]["kid"] != first_kid  # a restarted IdP has new keys


# --- httpbin and the agw process factory ---------------------------------------------------------------------

def test_httpbin_fixture_keeps_connections_alive(httpbin_backend):
    with RawConnection(httpbin_backend.port) as conn:
        for _ in range(3):
            response = conn.request("GET", "/headers")
            assert response.status == 200 and response.keep_alive


def test_bind_ports_reads_native_and_gateway_configs():
    native = "binds:\n- port: 18080\n  listeners: []\n- port: ${OTHER_PORT}\n"
    assert bind_ports(native, {"OTHER_PORT": "18081"}) == [18080, 18081]
    gateway = (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\n"
        "spec:\n  listeners:\n  - {name: http, port: 8080, protocol: HTTP}\n---\nkind: HTTPRoute\n"
    )
    assert bind_ports(gateway) == [8080]


def test_agw_proxy_factory_runs_agw_in_front_of_httpbin(agw_proxy, httpbin_backend):
    port = free_port()
    proxy = agw_proxy({
        "binds": [{"port": port, "address": "127.0.0.1",
                   "listeners": [{"routes": [{"backends": [{"host": httpbin_backend.address}]}]}]}],
    })
    assert proxy.port == port and proxy.running
    response = proxy.get("/headers", {"X-Test": "1"})
    assert response.status == 200, proxy.output()
    assert response.json()["headers"]["X-Test"] == "1"
    status, _ = proxy.admin_get("/healthz")
    assert status == 200
    proxy.send_signal(signal.SIGTERM)
    assert proxy.wait(20) == 0
