"""Identity providers as users have them (issue 18), through the real proxy and the real test IdP: token
profiles, OIDC discovery, RFC 9728 protected resource metadata, PEM and x5c key sets."""
from __future__ import annotations

import pytest

from tests.e2e.test_jwt_e2e import bearer, config, remote

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
