"""Identity providers as users have them (issue 18), through the real proxy and the real test IdP: token
profiles, OIDC discovery, RFC 9728 protected resource metadata, PEM and x5c key sets."""
from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.e2e.test_jwt_e2e import bearer, config, remote, tamper_signature as tamper
from tests.support.idp import MockIdp
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e


# --- token profiles ----------------------------------------------------------------------------------------

def test_allowed_types_admit_at_jwt_and_refuse_id_tokens(agw_proxy, idp, httpbin_backend):
    proxy = agw_proxy(config(httpbin_backend.address, remote(idp, allowedTypes=["at+jwt"])), wait_readyz=True)
    assert proxy.get("/headers", bearer(idp.mint(header={"typ": "at+jwt"}))).status == 200
    refused = proxy.get("/headers", bearer(idp.mint(header={"typ": "JWT"})))   # an ID token's typ
    assert refused.status == 401 and refused.text == "authentication failure: token type not allowed"
    assert refused.header("www-authenticate") == 'Bearer realm="agw", error="invalid_token"'


def test_max_lifetime_bounds_exp_minus_iat(agw_proxy, idp, httpbin_backend):
    proxy = agw_proxy(config(httpbin_backend.address, remote(idp, maxLifetime="10m")), wait_readyz=True)
    assert proxy.get("/headers", bearer(idp.mint(expires_in=600))).status == 200
    refused = proxy.get("/headers", bearer(idp.mint(expires_in=601)))
    assert refused.status == 401 and refused.text == "authentication failure: token lifetime too long"


def test_subjects_exact_prefix_and_regex(agw_proxy, idp, httpbin_backend):
    subjects = [{"exact": "alice"}, {"prefix": "svc-"}, {"regex": "u[0-9]+"}]
    proxy = agw_proxy(config(httpbin_backend.address, remote(idp, subjects=subjects)), wait_readyz=True)
    for sub in ("alice", "svc-billing", "u42"):
        assert proxy.get("/headers", bearer(idp.mint({"sub": sub}))).status == 200, sub
    for sub in ("bob", "u42x"):
        refused = proxy.get("/headers", bearer(idp.mint({"sub": sub})))
        assert refused.status == 401 and refused.text == "authentication failure: subject not allowed", sub
    # The password grant's user1 is none of them.
    assert proxy.get("/headers", bearer(idp.password_token())).status == 401


def test_required_scopes_pass_or_answer_403_insufficient_scope(agw_proxy, idp, httpbin_backend):
    proxy = agw_proxy(config(httpbin_backend.address, remote(idp, requiredScopes=["profile", "email"])),
                      wait_readyz=True)
    # The IdP's password grant carries scope "profile email".
    token = idp.password_token()
    assert proxy.get("/headers", bearer(token)).status == 200
    assert proxy.get("/headers", bearer(token)).status == 200      # a cache hit
    assert proxy.get("/headers", bearer(idp.mint({"scope": None, "scp": ["email", "profile"]}))).status == 200
    refused = proxy.get("/headers", bearer(idp.mint({"scope": "profile"})))
    assert refused.status == 403, (refused.status, refused.text)
    assert refused.text == "authentication failure: insufficient scope"
    assert refused.header("www-authenticate") == \
        'Bearer realm="agw", error="insufficient_scope", scope="email profile"'


# --- OIDC discovery -----------------------------------------------------------------------------------------

def test_a_provider_given_by_its_issuer_alone_finds_its_keys_by_discovery(agw_proxy, idp, httpbin_backend):
    policy = {"providers": [{"issuer": idp.issuer, "audiences": ["my-application"]}]}
    proxy = agw_proxy(config(httpbin_backend.address, policy), wait_readyz=True)
    assert proxy.get("/headers", bearer(idp.password_token())).status == 200
    assert proxy.get("/headers").status == 401
    status, text = proxy.admin_get("/stats")
    stats = json.loads(text)
    provider = next(p for pol in stats["policies"] for p in pol.get("providers", []))
    assert provider["source"] == f"discovery {idp.issuer}"
    assert provider["jwks_uri"] == idp.jwks_url and provider["keys"] >= 1


def test_explicit_discovery_in_the_single_provider_shape(agw_proxy, idp, httpbin_backend):
    policy = {"issuer": idp.issuer, "jwks": {"discovery": True, "cacheDuration": "1m"}}
    proxy = agw_proxy(config(httpbin_backend.address, policy), wait_readyz=True)
    assert proxy.get("/headers", bearer(idp.password_token())).status == 200


def test_a_discovery_document_whose_issuer_differs_is_refused(agw_proxy, agw_logs_dir, httpbin_backend):
    port = free_port()
    real = f"http://127.0.0.1:{port}/realms/master"
    liar = MockIdp(agw_logs_dir, port=port, issuer=f"http://127.0.0.1:{port}/realms/master/").start()
    try:
        proxy = agw_proxy(config(httpbin_backend.address, {"issuer": real}))
        proxy.wait_for_output(r"discovery document .* names issuer 'http://127\.0\.0\.1:\d+/realms/master/', "
                              r"not the configured", timeout=15)
        assert proxy.admin_get("/readyz")[0] == 503
        # A token that names the configured issuer finds no keys: the document's jwks_uri was never used.
        refused = proxy.get("/headers", bearer(liar.mint({"iss": real})))
        assert refused.status == 401 and refused.text == "authentication failure: keys unavailable"
    finally:
        liar.process.stop()


# --- RFC 9728 protected resource metadata -----------------------------------------------------------------

def test_protected_resource_metadata_is_served_and_named_by_the_challenge(agw_proxy, idp, httpbin_backend):
    import urllib.request
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    policy = remote(idp, requiredScopes=["profile"], resourceMetadata={
        "resource": resource, "resourceDocumentation": "https://docs.example/mcp"})
    proxy = agw_proxy(config(httpbin_backend.address, policy, port=port), wait_readyz=True)
    refused = proxy.get("/mcp")
    metadata_url = f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp"
    assert refused.status == 401
    assert refused.header("www-authenticate") == f'Bearer realm="agw", resource_metadata="{metadata_url}"'
    bad = proxy.get("/mcp", bearer(tamper(idp.password_token())))
    assert bad.header("www-authenticate") == \
        f'Bearer realm="agw", error="invalid_token", resource_metadata="{metadata_url}"'
    lacking = proxy.get("/mcp", bearer(idp.mint({"scope": "email"})))
    assert lacking.status == 403 and lacking.header("www-authenticate") == \
        f'Bearer realm="agw", error="insufficient_scope", scope="profile", resource_metadata="{metadata_url}"'
    # A client follows the challenge, as an MCP client does, without a token.
    url = re.search(r'resource_metadata="([^"]+)"', refused.header("www-authenticate")).group(1)
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert response.headers.get_all("content-type") == ["application/json"]   # RFC 9728 3.2
        doc = json.loads(response.read())
    assert doc == {"resource": resource, "authorization_servers": [idp.issuer],
                   "bearer_methods_supported": ["header"], "scopes_supported": ["profile"],
                   "resource_documentation": "https://docs.example/mcp"}
    # The authorization server it names is the IdP, whose own metadata the client reads next.
    with urllib.request.urlopen(doc["authorization_servers"][0] + "/.well-known/openid-configuration") as r:
        assert json.loads(r.read())["issuer"] == idp.issuer
    root = proxy.get("/.well-known/oauth-protected-resource")
    assert root.status == 200 and json.loads(root.text) == doc
    # Everything else on the route still needs a token.
    assert proxy.get("/.well-known/oauth-protected-resource/other").status == 401
    assert proxy.get("/headers", bearer(idp.password_token())).status == 200


def test_agentgateway_mcp_authentication_loads_as_jwt_auth_with_metadata(agw_proxy, idp, httpbin_backend):
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    cfg = config(httpbin_backend.address, {}, port=port)
    route = cfg["binds"][0]["listeners"][0]["routes"][0]
    route["policies"] = {"mcpAuthentication": {
        "issuer": idp.issuer, "jwks": {"url": idp.jwks_url}, "audiences": ["my-application"],
        "resourceMetadata": {"resource": resource, "scopesSupported": ["profile", "email"],
                             "bearerMethodsSupported": ["header"]}}}
    proxy = agw_proxy(cfg, wait_readyz=True)
    metadata = proxy.get("/.well-known/oauth-protected-resource/mcp")
    assert metadata.status == 200
    assert json.loads(metadata.text)["scopes_supported"] == ["profile", "email"]
    refused = proxy.get("/mcp")
    assert refused.status == 401 and "resource_metadata=" in refused.header("www-authenticate")
    assert proxy.get("/headers", bearer(idp.password_token())).status == 200


# --- keys as they come: PEM and x5c -----------------------------------------------------------------------

def _certificate(private_key, public_key):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test idp signing key")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public_key)
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(private_key, hashes.SHA256()))


def _private_keys(idp) -> dict[str, Any]:
    """The IdP's private keys as `cryptography` objects, by kid (its RS256 signing key, and ES256 once used)."""
    import base64

    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    def num(v: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(v + "=" * (-len(v) % 4)), "big")
    out = {}
    for jwk in idp.private_jwks()["keys"]:
        if jwk["kty"] == "RSA":
            pub = rsa.RSAPublicNumbers(num(jwk["e"]), num(jwk["n"]))
            out[jwk["kid"]] = rsa.RSAPrivateNumbers(
                num(jwk["p"]), num(jwk["q"]), num(jwk["d"]), num(jwk["dp"]), num(jwk["dq"]), num(jwk["qi"]),
                pub).private_key()
        elif jwk["kty"] == "EC" and jwk["crv"] == "P-256":
            out[jwk["kid"]] = ec.EllipticCurvePrivateNumbers(num(jwk["d"]), ec.EllipticCurvePublicNumbers(
                num(jwk["x"]), num(jwk["y"]), ec.SECP256R1())).private_key()
    return out


def _kid(token: str) -> str:
    import base64
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"]


def test_a_pem_file_of_a_public_key_and_a_certificate(agw_proxy, idp, httpbin_backend, tmp_path):
    from cryptography.hazmat.primitives import serialization
    es_token = idp.mint(alg="ES256")          # makes the IdP's ES256 key
    rs_token = idp.password_token()
    # The session's IdP may hold more keys by now (other tests rotate them): take the ones these tokens name.
    keys = _private_keys(idp)
    rsa_key = keys[_kid(rs_token)]
    ec_key = keys[_kid(es_token)]
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem += _certificate(ec_key, ec_key.public_key()).public_bytes(serialization.Encoding.PEM)
    (tmp_path / "idp.pem").write_bytes(pem)
    policy = {"issuer": idp.issuer, "jwks": {"pem": str(tmp_path / "idp.pem")}}
    proxy = agw_proxy(config(httpbin_backend.address, policy), wait_readyz=True)
    # The IdP's tokens name a kid; the PEM keys have none and verify them whatever kid they name.
    assert proxy.get("/headers", bearer(rs_token)).status == 200
    assert proxy.get("/headers", bearer(es_token)).status == 200
    bad = proxy.get("/headers", bearer(tamper(rs_token)))
    assert bad.status == 401 and bad.text == "authentication failure: signature invalid"


def test_jwks_entries_that_carry_only_x5c(agw_proxy, idp, httpbin_backend, tmp_path):
    import base64

    from cryptography.hazmat.primitives import serialization
    es_token = idp.mint(alg="ES256")
    entries = []
    for kid, key in _private_keys(idp).items():
        der = _certificate(key, key.public_key()).public_bytes(serialization.Encoding.DER)
        entries.append({"kty": "RSA" if hasattr(key.private_numbers(), "p") else "EC", "kid": kid, "use": "sig",
                        "x5c": [base64.b64encode(der).decode()]})
    (tmp_path / "x5c.json").write_text(json.dumps({"keys": entries}))
    policy = {"issuer": idp.issuer, "jwks": {"file": str(tmp_path / "x5c.json")}}
    proxy = agw_proxy(config(httpbin_backend.address, policy), wait_readyz=True)
    assert proxy.get("/headers", bearer(idp.password_token())).status == 200
    assert proxy.get("/headers", bearer(es_token)).status == 200
    assert proxy.get("/headers", bearer(tamper(es_token))).status == 401


# --- the operator's view ------------------------------------------------------------------------------------

def test_start_up_log_names_binds_routes_policies_admin_and_key_sources(agw_proxy, idp, httpbin_backend):
    policy = {"providers": [{"issuer": idp.issuer}]}
    proxy = agw_proxy(config(httpbin_backend.address, policy), wait_readyz=True)
    port = proxy.ports[0]
    proxy.wait_for_output(rf"bind 127\.0\.0\.1:{port}: 1 route\(s\)")
    proxy.wait_for_output(r"  route httpbin: jwtAuth \(strict\)")
    proxy.wait_for_output(rf"admin listening on 127\.0\.0\.1:{proxy.admin_port}")
    proxy.wait_for_output(rf"jwt provider {re.escape(idp.issuer)}: \d+ key\(s\) from discovery "
                          rf"{re.escape(idp.issuer)} \(jwks_uri {re.escape(idp.jwks_url)}\)")


def test_unknown_issuer_logs_the_closest_configured_one_once(agw_proxy, idp, httpbin_backend):
    proxy = agw_proxy(config(httpbin_backend.address, remote(idp)), wait_readyz=True)
    typo = idp.issuer + "/"
    for _ in range(3):
        assert proxy.get("/headers", bearer(idp.mint({"iss": typo}))).status == 401
    proxy.wait_for_output(rf"unknown issuer '{re.escape(typo)}' in a token; the closest configured issuer is "
                          rf"'{re.escape(idp.issuer)}'")
    assert proxy.output().count("unknown issuer '") == 1


def test_text_logs_and_the_access_log_use_iso_8601_times(agw_proxy, idp, httpbin_backend):
    proxy = agw_proxy(config(httpbin_backend.address, remote(idp)), wait_readyz=True,
                      extra_args=["--log-format", "text"])
    assert proxy.get("/headers").status == 401
    proxy.wait_for_output(r'"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","method":"GET"')
    proxy.wait_for_output(r"(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO agw: listening on")


def test_address_already_in_use_names_the_address(agw_proxy, httpbin_backend, tmp_path):
    import socket
    import subprocess
    import sys

    import yaml
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        cfg = config(httpbin_backend.address, {"issuer": "https://idp.example", "jwks": {"inline": '{"keys": []}'}},
                     port=port)
        del cfg["binds"][0]["listeners"][0]["routes"][0]["policies"]
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
        done = subprocess.run([sys.executable, "-m", "agw", "run", "-f", str(tmp_path / "c.yaml"), "--admin", "off"],
                              capture_output=True, text=True, timeout=30)
    finally:
        busy.close()
    assert done.returncode == 1
    assert f"agw: cannot listen: [Errno 98] 127.0.0.1:{port}: address already in use" in done.stderr
