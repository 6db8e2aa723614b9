"""JWT authentication through the real proxy: agw as a subprocess between a client on 127.0.0.1, a real IdP
(oauth2-mock-server behind Keycloak's paths) and a real httpbin. The seed's verification flow first, then
modes, token locations, key sources, algorithms, key rotation, IdP outages and the JWT metrics."""
from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from tests.support.idp import MockIdp
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e

NO_TOKEN_BODY = b"authentication failure: no bearer token found"
CHALLENGE = 'Bearer realm="agw"'
CHALLENGE_INVALID = 'Bearer realm="agw", error="invalid_token"'


def config(backend: str, jwt_auth: dict[str, Any], *, port: int | None = None) -> dict[str, Any]:
    """One listener, one catch-all route to httpbin, with the given jwtAuth policy."""
    return {"binds": [{
        "port": port or free_port(), "address": "127.0.0.1",
        "listeners": [{"name": "main", "routes": [{
            "name": "httpbin", "backends": [{"host": backend}], "policies": {"jwtAuth": jwt_auth},
        }]}],
    }]}


def remote(idp: MockIdp, **extra: Any) -> dict[str, Any]:
    """The single-provider policy of the seed: the IdP's issuer, its audience, its JWKS URL."""
    return {"issuer": idp.issuer, "audiences": ["my-application"], "jwks": {"url": idp.jwks_url}, **extra}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def echoed_headers(response) -> dict[str, str]:
    """httpbin's /headers, names lowercased."""
    assert response.status == 200, (response.status, response.text)
    return {k.lower(): v for k, v in response.json()["headers"].items()}


def tamper_signature(token: str) -> str:
    """Change one character in the middle of the signature (not the last one, whose low bits may be unused)."""
    head, payload, signature = token.split(".")
    middle = len(signature) // 2
    replacement = "A" if signature[middle] != "A" else "B"
    return f"{head}.{payload}.{signature[:middle]}{replacement}{signature[middle + 1:]}"


def assert_refused(response, reason: str, *, token_sent: bool = True) -> None:
    assert response.status == 401, (response.status, response.text)
    assert response.header("content-type", "").split(";")[0] == "text/plain"
    assert response.text == f"authentication failure: {reason}"
    assert response.header("www-authenticate") == (CHALLENGE_INVALID if token_sent else CHALLENGE)


@pytest.fixture
def strict_proxy(agw_proxy, idp, httpbin_backend):
    return agw_proxy(config(httpbin_backend.address, remote(idp)), wait_readyz=True)


# --- the seed's flow ---------------------------------------------------------------------------------------

def test_without_a_token_the_exact_401(strict_proxy):
    response = strict_proxy.get("/headers")
    assert response.status == 401
    assert response.header("content-type", "").split(";")[0] == "text/plain"
    assert response.body == NO_TOKEN_BODY
    assert response.header("www-authenticate") == CHALLENGE


def test_password_grant_token_passes_and_the_backend_never_sees_it(strict_proxy, idp):
    token = idp.password_token()
    echoed = echoed_headers(strict_proxy.get("/headers", bearer(token)))
    assert "authorization" not in echoed
    # The same token again (now from the verified-token cache) behaves the same.
    assert "authorization" not in echoed_headers(strict_proxy.get("/headers", bearer(token)))


def test_tampered_signature_is_refused(strict_proxy, idp):
    token = idp.password_token()
    assert_refused(strict_proxy.get("/headers", bearer(tamper_signature(token))), "signature invalid")
    # The genuine token still passes: the failure was not cached against it.
    assert strict_proxy.get("/headers", bearer(token)).status == 200


@pytest.mark.parametrize("claims, reason", [
    ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200, "nbf": None}, "token expired"),
    ({"nbf": int(time.time()) + 3600}, "token not yet valid"),
    ({"aud": "someone-else"}, "audience not allowed"),
    ({"iss": "http://127.0.0.1:1/realms/other"}, "unknown issuer"),
], ids=["expired", "not-yet-valid", "wrong-audience", "unknown-issuer"])
def test_bad_claims_are_refused_with_their_reason(strict_proxy, idp, claims, reason):
    assert_refused(strict_proxy.get("/headers", bearer(idp.mint(claims))), reason)


def test_other_schemes_and_garbage(strict_proxy):
    basic = strict_proxy.get("/headers", {"Authorization": "Basic dXNlcjE6cGFzc3dvcmQ="})
    assert_refused(basic, "no bearer token found", token_sent=False)
    assert_refused(strict_proxy.get("/headers", bearer("nosuchkey")), "malformed token")


# --- modes -------------------------------------------------------------------------------------------------

def test_optional_mode(agw_proxy, idp, httpbin_backend):
    proxy = agw_proxy(config(httpbin_backend.address, remote(idp, mode="optional")), wait_readyz=True)
    assert proxy.get("/headers").status == 200
    assert proxy.get("/headers", bearer(idp.password_token())).status == 200
    assert_refused(proxy.get("/headers", bearer(tamper_signature(idp.password_token()))), "signature invalid")


def test_permissive_mode(agw_proxy, idp, httpbin_backend):
    policy = remote(idp, mode="Permissive", claimsToHeaders=[{"claim": "sub", "header": "x-user-id"}])
    proxy = agw_proxy(config(httpbin_backend.address, policy), wait_readyz=True)

    assert "x-user-id" not in echoed_headers(proxy.get("/headers"))
    bad = tamper_signature(idp.mint({"sub": "mallory"}))
    echoed = echoed_headers(proxy.get("/headers", bearer(bad)))
    assert echoed["authorization"] == f"Bearer {bad}"       # an invalid token is left for the backend
    assert "x-user-id" not in echoed

    echoed = echoed_headers(proxy.get("/headers", bearer(idp.mint({"sub": "alice"}))))
    assert echoed["x-user-id"] == "alice"
    assert "authorization" not in echoed


# --- what reaches the backend ------------------------------------------------------------------------------

def test_claims_to_headers_strips_client_sent_copies(agw_proxy, idp, httpbin_backend):
    policy = remote(idp, claimsToHeaders=[{"claim": "sub", "header": "x-user-id"},
                                          {"claim": "realm_access.roles", "header": "x-roles"},
                                          {"claim": "email", "header": "x-email"}])
    proxy = agw_proxy(config(httpbin_backend.address, policy), wait_readyz=True)
    token = idp.mint({"sub": "alice", "realm_access": {"roles": ["admin"]}, "email": None})
    spoofed = [("Authorization", f"Bearer {token}"), ("X-User-Id", "root"), ("x-user-id", "root2"),
               ("X-Email", "root@example.com")]
    echoed = echoed_headers(proxy.get("/headers", spoofed))
    assert echoed["x-user-id"] == "alice"
    assert "admin" in echoed["x-roles"]
    assert "x-email" not in echoed        # the claim is absent: the spoofed copy is gone and nothing replaces it


def test_forward_token_keeps_authorization(agw_proxy, idp, httpbin_backend):
    proxy = agw_proxy(config(httpbin_backend.address, remote(idp, forwardToken=True)), wait_readyz=True)
    token = idp.password_token()
    assert echoed_headers(proxy.get("/headers", bearer(token)))["authorization"] == f"Bearer {token}"


def test_token_in_a_query_parameter_is_removed_before_the_backend(agw_proxy, idp, httpbin_backend):
    policy = remote(idp, location={"queryParameter": {"name": "access_token"}})
    proxy = agw_proxy(config(httpbin_backend.address, policy), wait_readyz=True)
    token = idp.password_token()
    assert_refused(proxy.get("/get?x=1"), "no bearer token found", token_sent=False)
    response = proxy.get(f"/get?x=1&access_token={token}&y=2")
    assert response.status == 200, response.text
    assert response.json()["args"] == {"x": "1", "y": "2"}
    # In the header instead: not where this policy looks.
    assert proxy.get("/get", bearer(token)).status == 401


def test_token_in_a_cookie_is_removed_before_the_backend(agw_proxy, idp, httpbin_backend):
    policy = remote(idp, location={"cookie": {"name": "jwt"}})
    proxy = agw_proxy(config(httpbin_backend.address, policy), wait_readyz=True)
    token = idp.password_token()
    response = proxy.get("/cookies", {"Cookie": f"theme=dark; jwt={token}; lang=en"})
    assert response.status == 200, response.text
    assert response.json()["cookies"] == {"theme": "dark", "lang": "en"}
    only_jwt = proxy.get("/headers", {"Cookie": f"jwt={token}"})
    assert "cookie" not in echoed_headers(only_jwt)
    assert_refused(proxy.get("/cookies", {"Cookie": "theme=dark"}), "no bearer token found", token_sent=False)
    # Issue 20 F5: a second Cookie line cannot carry a forged credential past the removal.
    for lines in ([("Cookie", f"jwt={token}"), ("Cookie", "jwt=FORGED")],
                  [("Cookie", f"jwt={token}; a=1"), ("Cookie", "b=2"), ("Cookie", "jwt=FORGED; c=3")]):
        response = proxy.get("/headers", lines)
        assert response.status == 200, response.text
        sent = echoed_headers(response).get("cookie", "")
        assert "jwt" not in sent and "FORGED" not in sent, sent
    response = proxy.get("/cookies", [("Cookie", f"jwt={token}; a=1"), ("Cookie", "b=2")])
    assert response.json()["cookies"] == {"a": "1", "b": "2"}


# --- key sources and providers -----------------------------------------------------------------------------

def test_two_providers_with_two_issuers_on_one_route(agw_proxy, idp, idp_fresh, httpbin_backend):
    policy = {"mode": "strict", "providers": [
        {"issuer": idp.issuer, "audiences": ["my-application"], "jwks": {"url": idp.jwks_url}},
        {"issuer": idp_fresh.issuer, "jwks": {"url": idp_fresh.jwks_url}},
    ]}
    proxy = agw_proxy(config(httpbin_backend.address, policy), wait_readyz=True)
    assert proxy.get("/headers", bearer(idp.password_token())).status == 200
    assert proxy.get("/headers", bearer(idp_fresh.password_token())).status == 200
    # The second IdP's key does not sign for the first issuer.
    forged = idp_fresh.mint({"iss": idp.issuer})
    response = proxy.get("/headers", bearer(forged))
    assert response.status == 401 and response.text in ("authentication failure: unknown key",
                                                        "authentication failure: signature invalid")


def test_inline_and_file_jwks(agw_proxy, idp, httpbin_backend, tmp_path):
    jwks_text = json.dumps(idp.jwks())
    (tmp_path / "keys.json").write_text(jwks_text)
    token = idp.password_token()
    for jwks in ({"inline": jwks_text}, {"file": str(tmp_path / "keys.json")}):
        proxy = agw_proxy(config(httpbin_backend.address, {"issuer": idp.issuer, "jwks": jwks}), wait_readyz=True)
        assert proxy.get("/headers", bearer(token)).status == 200, jwks
        assert_refused(proxy.get("/headers", bearer(tamper_signature(token))), "signature invalid")
        proxy.stop()


def test_file_jwks_relative_to_the_config_file(agw_proxy, idp, httpbin_backend, tmp_path):
    (tmp_path / "keys.json").write_text(json.dumps(idp.jwks()))
    proxy = agw_proxy(config(httpbin_backend.address, {"issuer": idp.issuer, "jwks": {"file": "keys.json"}}))
    assert proxy.get("/headers", bearer(idp.password_token())).status == 200


def test_every_asymmetric_family(agw_proxy, idp, httpbin_backend):
    # Minted first: the IdP publishes a new alg's key on its first use, and the proxy fetches the JWKS at start.
    tokens = {alg: idp.mint({"sub": alg}, alg=alg) for alg in ("ES256", "ES384", "EdDSA", "PS256", "RS256")}
    proxy = agw_proxy(config(httpbin_backend.address, remote(idp)), wait_readyz=True)
    for alg, token in tokens.items():
        response = proxy.get("/headers", bearer(token))
        assert response.status == 200, (alg, response.text)
        assert_refused(proxy.get("/headers", bearer(tamper_signature(token))), "signature invalid")


# --- the IdP changing under a running proxy ------------------------------------------------------------------

def test_key_rotation_is_picked_up_through_the_unknown_kid_refetch(agw_proxy, idp_fresh, httpbin_backend):
    proxy = agw_proxy(config(httpbin_backend.address, remote(idp_fresh)), wait_readyz=True)
    assert proxy.get("/headers", bearer(idp_fresh.password_token())).status == 200
    idp_fresh.rotate()
    token = idp_fresh.password_token()
    response = proxy.get("/headers", bearer(token))     # first try: the proxy refetches on the new kid
    assert response.status == 200, response.text


def test_valid_tokens_keep_passing_when_the_idp_goes_away(agw_proxy, idp_fresh, httpbin_backend):
    proxy = agw_proxy(config(httpbin_backend.address, remote(idp_fresh)), wait_readyz=True)
    first, unseen = idp_fresh.password_token(), idp_fresh.password_token()
    assert proxy.get("/headers", bearer(first)).status == 200
    idp_fresh.stop()
    assert proxy.get("/headers", bearer(first)).status == 200
    assert proxy.get("/headers", bearer(unseen)).status == 200     # never seen: verified with the kept keys
    assert_refused(proxy.get("/headers", bearer(tamper_signature(unseen))), "signature invalid")
    assert proxy.get("/headers").status == 401


def test_idp_down_at_start_then_up(agw_proxy, idp_fresh, httpbin_backend):
    early, wrong_audience = idp_fresh.password_token(), idp_fresh.mint({"aud": "other"})
    idp_fresh.stop()
    cfg = config(httpbin_backend.address, remote(idp_fresh))
    cfg["config"] = {"startupGrace": "0s"}     # take traffic at once, without keys (not ready)
    proxy = agw_proxy(cfg)
    proxy.wait_for_output("taking traffic without keys")
    assert_refused(proxy.get("/headers", bearer(early)), "keys unavailable")
    # Key-free checks still come first: a bad audience is named as such, not as missing keys.
    assert_refused(proxy.get("/headers", bearer(wrong_audience)), "audience not allowed")
    idp_fresh.start()
    token = idp_fresh.password_token()
    deadline = time.monotonic() + 45
    while True:
        response = proxy.get("/headers", bearer(token))
        if response.status == 200 or time.monotonic() > deadline:
            break
        assert response.text in ("authentication failure: keys unavailable", "authentication failure: unknown key")
        time.sleep(0.25)
    assert response.status == 200, response.text


# --- metrics -----------------------------------------------------------------------------------------------

_SAMPLE = re.compile(r'^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$')


def samples(text: str, name: str) -> dict[frozenset, float]:
    out = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match["name"] == name:
            labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"] or ""))
            out[labels] = float(match["value"])
    return out


def test_jwt_metrics_count_known_traffic(agw_proxy, idp, httpbin_backend):
    proxy = agw_proxy(config(httpbin_backend.address, remote(idp)), wait_readyz=True)
    token = idp.password_token()
    for _ in range(4):
        # verified twice (the cache admits a token at its second verification), then 2 cache hits
        assert proxy.get("/headers", bearer(token)).status == 200
    for _ in range(2):
        assert proxy.get("/headers").status == 401
    assert proxy.get("/headers", bearer(tamper_signature(token))).status == 401
    assert proxy.get("/headers", bearer(idp.mint({"aud": "other"}))).status == 401

    status, text = proxy.admin_get("/metrics")
    assert status == 200
    counted = samples(text, "agw_jwt_authentications_total")
    outcomes: dict[str, float] = {}
    for labels, value in counted.items():
        outcomes[dict(labels)["outcome"]] = outcomes.get(dict(labels)["outcome"], 0) + value
    assert outcomes == {"ok": 4.0, "missing": 2.0, "invalid_signature": 1.0, "audience_not_allowed": 1.0}
    # Labelled with the configured issuer the token named: successes and the failures past the issuer check;
    # a request without a token (or with an unknown issuer) has no provider.
    assert counted[frozenset({("provider", idp.issuer), ("outcome", "ok")})] == 4.0
    assert counted[frozenset({("provider", idp.issuer), ("outcome", "invalid_signature")})] == 1.0
    assert counted[frozenset({("provider", idp.issuer), ("outcome", "audience_not_allowed")})] == 1.0
    assert counted[frozenset({("provider", ""), ("outcome", "missing")})] == 2.0

    hits = samples(text, "agw_jwt_cache_hits_total")
    misses = samples(text, "agw_jwt_cache_misses_total")
    entries = samples(text, "agw_jwt_cache_entries")
    assert list(hits.values()) == [2.0], hits
    assert len(misses) == 1 and list(misses.values())[0] >= 1.0, misses
    assert list(entries.values()) == [1.0]
    assert [dict(k).get("policy") for k in hits] == ["httpbin"]

    fetches = {dict(k)["outcome"]: v for k, v in samples(text, "agw_jwks_fetches_total").items()
               if dict(k)["provider"] == idp.issuer}
    assert fetches.get("ok") == 1.0 and fetches.get("error", 0) == 0, fetches
    ages = samples(text, "agw_jwks_keys_age_seconds")
    assert [dict(k)["provider"] for k in ages] == [idp.issuer] and all(v >= 0 for v in ages.values())


# --- edges where the proxy and the policy meet -----------------------------------------------------------------

def test_scheme_is_case_insensitive_and_a_custom_header_location(agw_proxy, idp, httpbin_backend):
    strict = agw_proxy(config(httpbin_backend.address, remote(idp)), wait_readyz=True)
    token = idp.password_token()
    assert strict.get("/headers", {"authorization": f"bearer {token}"}).status == 200
    assert strict.get("/headers", {"AUTHORIZATION": f"BEARER {token}"}).status == 200

    policy = remote(idp, location={"header": {"name": "X-Token", "prefix": ""}})
    custom = agw_proxy(config(httpbin_backend.address, policy), wait_readyz=True)
    echoed = echoed_headers(custom.get("/headers", {"x-token": token, "Authorization": "Basic abc"}))
    assert "x-token" not in echoed
    assert echoed["authorization"] == "Basic abc"      # not the credential of this policy: left alone
    assert_refused(custom.get("/headers", bearer(token)), "no bearer token found", token_sent=False)


def test_token_without_kid_when_one_key_fits(agw_proxy, idp_fresh, httpbin_backend):
    proxy = agw_proxy(config(httpbin_backend.address, remote(idp_fresh)), wait_readyz=True)
    assert proxy.get("/headers", bearer(idp_fresh.mint(header={"kid": None}))).status == 200


def test_oversized_token_is_refused_as_malformed(strict_proxy, idp):
    token = idp.mint({"padding": "x" * 9000})
    assert len(token) > 8192
    assert_refused(strict_proxy.get("/headers", bearer(token)), "malformed token")


def test_cached_token_still_expires(agw_proxy, idp, httpbin_backend):
    proxy = agw_proxy(config(httpbin_backend.address, remote(idp, clockSkew="0s")), wait_readyz=True)
    token = idp.mint({"exp": int(time.time()) + 2})
    assert proxy.get("/headers", bearer(token)).status == 200        # verified, now in the cache
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = proxy.get("/headers", bearer(token))
        if response.status != 200:
            break
        time.sleep(0.2)
    assert_refused(response, "token expired")


def test_body_and_pipelined_requests_wait_for_the_unknown_kid_refetch(agw_proxy, idp_fresh, httpbin_backend):
    """A request held while agw fetches the JWKS keeps its body, and pipelined requests behind it are answered
    in order."""
    from tests.support.rawhttp import RawConnection, build_request

    proxy = agw_proxy(config(httpbin_backend.address, remote(idp_fresh)), wait_readyz=True)
    idp_fresh.rotate()
    token = idp_fresh.password_token()           # a kid agw has not seen: the first request waits for a fetch
    body = b"x" * 200_000
    with RawConnection(proxy.port) as conn:
        conn.send(build_request("POST", "/post", bearer(token), body)
                  + build_request("GET", "/get?second=1", bearer(token))
                  + build_request("GET", "/get?third=1"))
        first, second, third = conn.read_response("POST"), conn.read_response(), conn.read_response()
    assert first.status == 200, first.text
    assert first.json()["data"] == body.decode()
    assert (second.status, second.json()["args"]) == (200, {"second": "1"})
    assert third.status == 401


def test_metrics_add_up_across_workers(agw_proxy, idp, httpbin_backend):
    proxy = agw_proxy(config(httpbin_backend.address, remote(idp)), extra_args=["--workers", "2"],
                      wait_readyz=True)
    token = idp.password_token()
    for _ in range(10):       # new connections: the kernel spreads them over both workers
        assert proxy.get("/headers", bearer(token)).status == 200
        assert proxy.get("/headers").status == 401
    status, text = proxy.admin_get("/metrics")
    assert status == 200
    outcomes: dict[str, float] = {}
    for labels, value in samples(text, "agw_jwt_authentications_total").items():
        outcomes[dict(labels)["outcome"]] = outcomes.get(dict(labels)["outcome"], 0) + value
    assert outcomes == {"ok": 10.0, "missing": 10.0}
    hits = samples(text, "agw_jwt_cache_hits_total")
    misses = samples(text, "agw_jwt_cache_misses_total")
    assert len(hits) == 1 and sum(hits.values()) + sum(misses.values()) >= 10
    assert 1 <= sum(misses.values()) <= 4          # two misses at most per worker that saw the token
    fetches = {dict(k)["outcome"]: v for k, v in samples(text, "agw_jwks_fetches_total").items()}
    assert fetches.get("ok") == 2.0, fetches       # each worker fetched the key set once


def test_audience_array_overlap_and_optional_mode_leaves_other_schemes_alone(agw_proxy, idp, httpbin_backend):
    proxy = agw_proxy(config(httpbin_backend.address, remote(idp, mode="optional")), wait_readyz=True)
    assert proxy.get("/headers", bearer(idp.mint({"aud": ["other", "my-application"]}))).status == 200
    assert_refused(proxy.get("/headers", bearer(idp.mint({"aud": ["other", "more"]}))), "audience not allowed")
    echoed = echoed_headers(proxy.get("/headers", {"Authorization": "Basic dXNlcjE6cGFzc3dvcmQ="}))
    assert echoed["authorization"] == "Basic dXNlcjE6cGFzc3dvcmQ="


def test_reload_rereads_a_file_jwks_and_applies_a_new_mode(agw_proxy, idp_fresh, httpbin_backend, tmp_path):
    import signal

    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(idp_fresh.jwks()))
    policy = {"issuer": idp_fresh.issuer, "jwks": {"file": str(keys)}}
    proxy = agw_proxy(config(httpbin_backend.address, policy), wait_readyz=True)
    old_token = idp_fresh.password_token()
    assert proxy.get("/headers", bearer(old_token)).status == 200
    idp_fresh.rotate()
    new_token = idp_fresh.password_token()
    assert_refused(proxy.get("/headers", bearer(new_token)), "unknown key")

    keys.write_text(json.dumps(idp_fresh.jwks()))          # the new key only
    proxy.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while proxy.get("/headers", bearer(new_token)).status != 200:
        assert time.monotonic() < deadline, proxy.output()
        time.sleep(0.1)
    assert_refused(proxy.get("/headers", bearer(old_token)), "unknown key")   # the cache died with its keys

    document = config(httpbin_backend.address, {**policy, "mode": "optional"},
                      port=proxy.port)
    proxy.write_config(document)
    proxy.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while proxy.get("/headers").status != 200:
        assert time.monotonic() < deadline, proxy.output()
        time.sleep(0.1)
    assert proxy.get("/headers", bearer(new_token)).status == 200


def test_a_refused_request_with_a_body_leaves_the_connection_usable_or_closes_it(strict_proxy, idp):
    """The body of a refused request must never be read as the next request (request smuggling)."""
    from tests.support.rawhttp import RawConnection, build_request, chunked

    token = idp.password_token()
    smuggled = build_request("GET", "/headers", bearer(token))     # a valid request hidden in a body
    for framing in ({"Content-Length": str(len(smuggled))}, {"Transfer-Encoding": "chunked"}):
        body = smuggled if "Content-Length" in framing else chunked(smuggled)
        with RawConnection(strict_proxy.port) as conn:
            conn.send(build_request("POST", "/post", framing, body) + build_request("GET", "/get?next=1"))
            refused = conn.read_response("POST")
            assert refused.status == 401
            if refused.keep_alive:
                following = conn.read_response()
                assert following.status == 401, following.text     # /get?next=1, not the smuggled request
            else:
                assert conn.is_closed_by_peer(2.0)


def test_query_token_alone_leaves_a_clean_target(agw_proxy, idp, httpbin_backend):
    policy = remote(idp, location={"queryParameter": {"name": "access_token"}})
    proxy = agw_proxy(config(httpbin_backend.address, policy), wait_readyz=True)
    token = idp.password_token()
    response = proxy.get(f"/anything/path?access_token={token}")
    assert response.status == 200, response.text
    assert response.json()["url"].endswith("/anything/path")
    assert response.json()["args"] == {}


@pytest.mark.parametrize("mode", ["optional", "permissive"])
def test_a_request_without_a_token_is_its_own_outcome(agw_proxy, idp, httpbin_backend, tmp_path, mode):
    """Issue 13 defect 6: no token is `no_token` in metrics and the access log, not `ok`; an invalid token that
    permissive mode lets through is logged and counted with its reason."""
    log_path = tmp_path / "access.jsonl"
    proxy = agw_proxy(config(httpbin_backend.address, remote(idp, mode=mode)),
                      extra_args=("--access-log", str(log_path)), wait_readyz=True)
    assert proxy.get("/headers").status == 200
    assert proxy.get("/headers", bearer(idp.password_token())).status == 200
    bad = proxy.get("/headers", bearer(tamper_signature(idp.password_token())))
    assert bad.status == (200 if mode == "permissive" else 401)

    _, text = proxy.admin_get("/metrics")
    outcomes = {dict(labels)["outcome"]: value for labels, value in
                samples(text, "agw_jwt_authentications_total").items()}
    assert outcomes == {"no_token": 1.0, "ok": 1.0, "invalid_signature": 1.0}
    decisions = samples(text, "agw_policy_decisions_total")
    assert decisions[frozenset({("route", "httpbin"), ("policy", "jwt"), ("label", idp.issuer),
                                ("outcome", "ok")})] == 1.0
    assert decisions[frozenset({("route", "httpbin"), ("policy", "jwt"), ("label", ""),
                                ("outcome", "no_token")})] == 1.0
    deadline = time.monotonic() + 10
    while len(log_path.read_text().splitlines() if log_path.exists() else []) < 3:
        assert time.monotonic() < deadline, "the access log did not get three lines"
        time.sleep(0.05)
    entries = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [e["jwt"] for e in entries] == ["no_token", "ok", "invalid_signature"]
    assert "sub" not in entries[0] and entries[1]["iss"] == idp.issuer and "sub" not in entries[2]
