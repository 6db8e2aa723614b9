"""TLS at the edge (issue 16), part two: certificates renewed under load (SIGHUP and --watch, one worker and
two) with no failed request, a bad renewal refused with the old certificate kept; client certificates (mTLS)
required and optional; RFC 8705 certificate-bound tokens."""
from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import threading
import time

import pytest

from tests.e2e.test_tls_edge import fingerprint, issue
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e
trustme = pytest.importorskip("trustme")


@pytest.fixture(scope="module")
def ca() -> "trustme.CA":
    return trustme.CA()


def put(src: dict, live: dict) -> None:
    """Install a certificate and key as a renewal tool does: each file replaced atomically."""
    for k in ("cert", "key"):
        shutil.copy(src[k], live[k] + ".tmp")
        os.replace(live[k] + ".tmp", live[k])


def client_ctx(ca, cert=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if cert is not None:
        cert.configure_cert(ctx)
    return ctx


def served_fp(port: int, ctx: ssl.SSLContext) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="a.test") as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


@pytest.mark.parametrize("workers,trigger", [(1, "sighup"), (2, "watch")])
def test_renewed_certificate_under_load_fails_no_request(agw_proxy, backend, ca, tmp_path, workers, trigger):
    d = str(tmp_path)
    live = {"cert": os.path.join(d, "live.pem"), "key": os.path.join(d, "live.key")}
    put(issue(ca, d, "gen0", "a.test"), live)
    port = free_port()
    config = {"binds": [{"port": port, "address": "127.0.0.1", "tls": {"cert": live["cert"], "key": live["key"]},
                         "listeners": [{"routes": [{"backends": [{"host": f"127.0.0.1:{backend}"}]}]}]}]}
    args = ["--access-log", "off", "--workers", str(workers)] + (["--watch"] if trigger == "watch" else [])
    proxy = agw_proxy(config, extra_args=args, wait_readyz=True)
    ctx = client_ctx(ca)
    stop = threading.Event()
    results = {"ok": 0, "failed": []}
    lock = threading.Lock()

    def new_connections() -> None:       # a new TLS connection for every request
        while not stop.is_set():
            try:
                conn = http.client.HTTPSConnection("a.test", port, context=ctx, timeout=10)
                conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                            server_hostname="a.test")
                conn.request("GET", "/headers")
                status = conn.getresponse().status
                conn.close()
                with lock:
                    if status == 200:
                        results["ok"] += 1
                    else:
                        results["failed"].append(status)
            except Exception as e:  # noqa: BLE001
                with lock:
                    results["failed"].append(repr(e))

    def keep_alive() -> None:            # one connection across every renewal
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
        conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                    server_hostname="a.test")
        first_sock = conn.sock
        while not stop.is_set():
            try:
                conn.request("GET", "/headers", headers={"Host": "a.test"})
                resp = conn.getresponse()
                resp.read()
                with lock:
                    if resp.status == 200 and conn.sock is first_sock:
                        results["ok"] += 1
                    else:
                        results["failed"].append(f"keep-alive {resp.status}")
            except Exception as e:  # noqa: BLE001
                with lock:
                    results["failed"].append(f"keep-alive {e!r}")
                return
        conn.close()

    threads = [threading.Thread(target=new_connections) for _ in range(3)] + [threading.Thread(target=keep_alive)]
    for t in threads:
        t.start()
    try:
        renewals = 4
        for gen in range(1, renewals + 1):
            time.sleep(0.7)
            cert = issue(ca, d, f"gen{gen}", "a.test")
            put(cert, live)
            if trigger == "sighup":
                proxy.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 20
            while served_fp(port, ctx) != fingerprint(cert):
                assert time.monotonic() < deadline, f"renewal {gen} not served"
                time.sleep(0.2)
            if workers > 1:   # every worker serves it: 10 new connections in a row see it
                assert all(served_fp(port, ctx) == fingerprint(cert) for _ in range(10))
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert results["failed"] == []
    assert results["ok"] > 50


def test_a_bad_renewal_keeps_the_old_certificate_and_says_why(agw_proxy, backend, ca, tmp_path):
    d = str(tmp_path)
    live = {"cert": os.path.join(d, "live.pem"), "key": os.path.join(d, "live.key")}
    good = issue(ca, d, "good", "a.test")
    put(good, live)
    port = free_port()
    config = {"binds": [{"port": port, "address": "127.0.0.1", "tls": {"cert": live["cert"], "key": live["key"]},
                         "listeners": [{"routes": [{"backends": [{"host": f"127.0.0.1:{backend}"}]}]}]}]}
    proxy = agw_proxy(config, extra_args=("--access-log", "off", "--watch"), wait_readyz=True)
    other = issue(ca, d, "other", "a.test")
    shutil.copy(other["cert"], live["cert"] + ".tmp")   # a new certificate, the old key: a half-done renewal
    os.replace(live["cert"] + ".tmp", live["cert"])
    proxy.wait_for_output(r"reload refused, still serving the previous config: .*binds\[0\]\.tls\.key: .*"
                          r"is not the key of the certificate", timeout=20)
    assert served_fp(port, client_ctx(ca)) == fingerprint(good)
    # The key arrives: the renewal completes on the next change.
    shutil.copy(other["key"], live["key"] + ".tmp")
    os.replace(live["key"] + ".tmp", live["key"])
    deadline = time.monotonic() + 20
    while served_fp(port, client_ctx(ca)) != fingerprint(other):
        assert time.monotonic() < deadline
        time.sleep(0.2)


# --- client certificates -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client_ca() -> "trustme.CA":
    return trustme.CA(organization_name="client CA")


def x5t(cert: "trustme.LeafCert") -> str:
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def https_get(port: int, ctx: ssl.SSLContext, token: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection("a.test", port, context=ctx, timeout=10)
    conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="a.test")
    conn.request("GET", "/headers", headers={"Authorization": f"Bearer {token}"} if token else {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    """An ES256 key in a JWKS file, and a function minting tokens with it."""
    jwt = pytest.importorskip("jwt")
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="k1", alg="ES256", use="sig")
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))

    def mint(**claims) -> str:
        body = {"iss": "https://issuer.test", "sub": "alice", "exp": int(time.time()) + 600, **claims}
        return jwt.encode(body, key, algorithm="ES256", headers={"kid": "k1"})

    return str(path), mint


@pytest.fixture
def mtls_proxy(agw_proxy, backend, ca, client_ca, signer, tmp_path):
    """Three TLS binds: clientCertificate required, optional, and none; each with a strict jwtAuth route at
    /headers (JWKS file) and, on a second listener hostname, no policy."""
    d = str(tmp_path)
    server = issue(ca, d, "server", "a.test")
    client_ca_file = os.path.join(d, "client-ca.pem")
    client_ca.cert_pem.write_to_path(client_ca_file)
    jwks, _ = signer
    routes = [{"name": "open", "hostnames": ["open.test"], "backends": [{"host": f"127.0.0.1:{backend}"}]},
              {"name": "jwt", "backends": [{"host": f"127.0.0.1:{backend}"}],
               "policies": {"jwtAuth": {"issuer": "https://issuer.test", "jwks": {"file": jwks}}}}]

    def bind(mode):
        tls = {"certificates": [server]}
        if mode:
            tls["clientCertificate"] = {"mode": mode, "caCertificates": client_ca_file}
        return {"port": free_port(), "address": "127.0.0.1", "tls": tls, "listeners": [{"routes": routes}]}

    return agw_proxy({"binds": [bind("required"), bind("optional"), bind(None)]},
                     extra_args=("--access-log", "off"), wait_readyz=True)


def test_client_certificate_required(mtls_proxy, ca, client_ca, signer):
    port = mtls_proxy.ports[0]
    _, mint = signer
    alice = client_ca.issue_cert("alice@example.com", common_name="alice")
    assert https_get(port, client_ctx(ca, alice), mint())[0] == 200
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
        https_get(port, client_ctx(ca), mint())             # no certificate: the handshake fails
    stranger = trustme.CA().issue_cert("mallory@example.com")
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
        https_get(port, client_ctx(ca, stranger), mint())   # a certificate from another CA: refused too


def test_client_certificate_optional(mtls_proxy, ca, client_ca, signer):
    port = mtls_proxy.ports[1]
    _, mint = signer
    alice = client_ca.issue_cert("alice@example.com")
    assert https_get(port, client_ctx(ca, alice), mint())[0] == 200
    assert https_get(port, client_ctx(ca), mint())[0] == 200     # none sent: fine
    stranger = trustme.CA().issue_cert("mallory@example.com")
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
        https_get(port, client_ctx(ca, stranger), mint())        # sent but not verified: refused


def test_certificate_bound_token(mtls_proxy, ca, client_ca, signer):
    """RFC 8705: a token carrying cnf.x5t#S256 is accepted with that certificate only."""
    required, optional, plain_tls = mtls_proxy.ports
    _, mint = signer
    alice, bob = client_ca.issue_cert("alice@example.com"), client_ca.issue_cert("bob@example.com")
    bound = mint(cnf={"x5t#S256": x5t(alice)})
    for port in (required, optional):
        assert https_get(port, client_ctx(ca, alice), bound)[0] == 200
        status, body = https_get(port, client_ctx(ca, bob), bound)
        assert (status, body) == (401, b"authentication failure: token bound to another certificate")
        assert https_get(port, client_ctx(ca, bob), mint())[0] == 200           # an unbound token: fine
        assert https_get(port, client_ctx(ca, bob), mint(cnf={"jkt": "x"}))[0] == 200   # another cnf method
    # Without a certificate (optional bind, or a bind that asks for none): refused.
    for port in (optional, plain_tls):
        status, body = https_get(port, client_ctx(ca), bound)
        assert status == 401 and b"without a client certificate" in body
    # Refused twice in a row (the verified-token cache must not skip the binding check).
    assert https_get(optional, client_ctx(ca, bob), bound)[0] == 401
