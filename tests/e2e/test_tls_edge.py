"""TLS at the edge (issue 16), seen by real clients (Python's ssl, curl, openssl s_client) on 127.0.0.1:
several certificates per bind chosen by SNI (ECDSA and RSA side by side), modern defaults, certificates refused
at start with their field path, and session resumption (TLS 1.3 and 1.2 tickets, one worker and two)."""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import datetime

import pytest

from tests.support.ports import free_port
from tests.support.proxy import agw_env, REPO_ROOT

pytestmark = pytest.mark.e2e
trustme = pytest.importorskip("trustme")
OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")


@pytest.fixture(scope="module")
def ca() -> "trustme.CA":
    return trustme.CA()


def issue(ca, directory, stem: str, *names: str, key_type=None, **kwargs) -> dict:
    """A leaf certificate for `names`, written to directory/stem.pem (leaf first, then the chain) and .key."""
    leaf = ca.issue_cert(*names, key_type=key_type or trustme.KeyType.ECDSA, **kwargs)
    cert_path, key_path = os.path.join(directory, f"{stem}.pem"), os.path.join(directory, f"{stem}.key")
    leaf.private_key_pem.write_to_path(key_path)
    with open(cert_path, "wb") as out:
        for blob in leaf.cert_chain_pems:
            out.write(blob.bytes())
    return {"cert": cert_path, "key": key_path}


def fingerprint(files: dict) -> str:
    """SHA-256 of the leaf certificate in a cert file, as served on the wire."""
    with open(files["cert"]) as f:
        first = f.read().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(first)).hexdigest()


def served(port: int, server_name: str | None, ca=None, *, tls12_ciphers: str | None = None,
           max_version=None) -> tuple[str, ssl.SSLSocket]:
    """Handshake (SNI `server_name`, none when None) and return (leaf SHA-256, the socket's details)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if tls12_ciphers:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(tls12_ciphers)
    if max_version:
        ctx.maximum_version = max_version
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
            return hashlib.sha256(der).hexdigest(), (tls.version(), tls.cipher()[0], tls.selected_alpn_protocol())


@pytest.fixture(scope="module")
def certs(ca, tmp_path_factory) -> dict:
    d = str(tmp_path_factory.mktemp("certs"))
    return {
        "a_ec": issue(ca, d, "a-ec", "a.test", "www.a.test"),
        "a_rsa": issue(ca, d, "a-rsa", "a.test", "www.a.test", key_type=trustme.KeyType.RSA),
        "b_wild": issue(ca, d, "b-wild", "*.b.test"),
        "b_exact": issue(ca, d, "b-exact", "exact.b.test", key_type=trustme.KeyType.RSA),
        "dir": d,
    }


def sni_config(backend: int, certs: dict, port: int) -> dict:
    return {"binds": [{"port": port, "address": "127.0.0.1",
                       "tls": {"certificates": [{"cert": certs[k]["cert"], "key": certs[k]["key"]}
                                                for k in ("a_ec", "a_rsa", "b_wild", "b_exact")]},
                       "listeners": [{"routes": [{"backends": [{"host": f"127.0.0.1:{backend}"}]}]}]}]}


@pytest.fixture
def sni_proxy(agw_proxy, backend, certs):
    return agw_proxy(sni_config(backend, certs, free_port()), extra_args=("--access-log", "off"), wait_readyz=True)


def test_sni_chooses_the_certificate_by_name_and_key_type(sni_proxy, certs):
    port = sni_proxy.port
    # ECDSA preferred when the client can use it; the RSA certificate of the same names when it cannot.
    assert served(port, "a.test")[0] == fingerprint(certs["a_ec"])
    assert served(port, "WWW.A.TEST")[0] == fingerprint(certs["a_ec"])
    assert served(port, "a.test", tls12_ciphers="ECDHE-RSA-AES128-GCM-SHA256")[0] == fingerprint(certs["a_rsa"])
    assert served(port, "a.test", tls12_ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")[0] == fingerprint(certs["a_ec"])
    # A wildcard answers one label under it, an exact name wins over it.
    assert served(port, "x.b.test")[0] == fingerprint(certs["b_wild"])
    assert served(port, "exact.b.test")[0] == fingerprint(certs["b_exact"])
    # No SNI, an unknown name, or a name two labels under the wildcard: the first certificate (the default).
    for name in (None, "unknown.test", "y.x.b.test"):
        assert served(port, name)[0] == fingerprint(certs["a_ec"]), name


def test_sni_with_curl_and_openssl(sni_proxy, ca, certs, tmp_path):
    if CURL is None or OPENSSL is None:
        pytest.skip("curl and openssl are needed")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    for host in ("a.test", "x.b.test", "exact.b.test"):
        done = subprocess.run([CURL, "-sS", "--cacert", str(ca_file), "--resolve", f"{host}:{sni_proxy.port}:127.0.0.1",
                               "-o", "/dev/null", "-w", "%{http_code} %{ssl_verify_result}",
                               f"https://{host}:{sni_proxy.port}/headers"], capture_output=True, text=True, timeout=20)
        assert done.stdout == "200 0", (host, done.stdout, done.stderr)
    # A name no certificate has: the default certificate, which curl rightly refuses.
    done = subprocess.run([CURL, "-sS", "--cacert", str(ca_file), "--resolve", f"nope.test:{sni_proxy.port}:127.0.0.1",
                           f"https://nope.test:{sni_proxy.port}/headers"], capture_output=True, text=True, timeout=20)
    assert done.returncode == 60, done.stderr     # CURLE_PEER_FAILED_VERIFICATION


def test_modern_defaults(sni_proxy):
    port = sni_proxy.port
    assert served(port, "a.test")[1] == ("TLSv1.3", "TLS_AES_256_GCM_SHA384", None)
    version, cipher, _ = served(port, "a.test", max_version=ssl.TLSVersion.TLSv1_2)[1]
    assert version == "TLSv1.2" and cipher.startswith("ECDHE-ECDSA-") and ("GCM" in cipher or "CHACHA" in cipher)
    if OPENSSL is None:
        pytest.skip("openssl is needed")

    def s_client(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "a.test",
                               *args], input="", capture_output=True, text=True, timeout=20)

    assert "ALPN protocol: http/1.1" in s_client("-alpn", "h2,http/1.1").stdout
    # Not in Mozilla's intermediate list: TLS 1.1, CBC and RSA key exchange suites.
    for refused in (["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
                    ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256"],
                    ["-tls1_2", "-cipher", "AES128-GCM-SHA256"]):
        done = s_client(*refused)
        assert "Cipher is (NONE)" in done.stdout or done.returncode != 0, refused
        assert not re.search(r"New, TLSv1\.[0-3], Cipher is [A-Z]", done.stdout), refused


def run_refused(tmp_path, config: dict) -> str:
    import yaml
    path = tmp_path / "refused.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "agw", "run", "-f", str(path), "--admin", "off"],
                          capture_output=True, text=True, timeout=30, env=agw_env(), cwd=str(REPO_ROOT))
    assert done.returncode == 2, done.stdout + done.stderr
    return done.stderr


def test_certificates_that_cannot_be_served_are_refused_with_their_path(ca, certs, tmp_path):
    d = str(tmp_path)
    expired = issue(ca, d, "expired", "old.test",
                    not_before=datetime.datetime(2020, 1, 1), not_after=datetime.datetime(2021, 1, 1))
    nameless = issue(ca, d, "nameless", "127.0.0.1")   # an IP address only: no DNS name to choose it by
    garbage = os.path.join(d, "garbage.pem")
    with open(garbage, "w") as f:
        f.write("not a certificate\n")

    def cfg(tls: dict) -> dict:
        return {"binds": [{"port": free_port(), "address": "127.0.0.1", "tls": tls,
                           "listeners": [{"routes": [{"backends": [{"host": "127.0.0.1:1"}]}]}]}]}

    a, b = certs["a_ec"], certs["b_wild"]
    cases = [
        ({"certificates": [a, {"cert": b["cert"], "key": a["key"]}]},
         r"binds\[0\]\.tls\.certificates\[1\]\.key: .*is not the key of the certificate"),
        ({"certificates": [a, expired]}, r"binds\[0\]\.tls\.certificates\[1\]\.cert: .*expired on 2021-01-01"),
        ({"certificates": [a, nameless]}, r"binds\[0\]\.tls\.certificates\[1\]\.cert: .*names no host"),
        ({"cert": garbage, "key": a["key"]}, r"binds\[0\]\.tls\.cert: .*no PEM certificate"),
        ({"cert": a["cert"], "key": os.path.join(d, "missing.key")}, r"binds\[0\]\.tls\.key: cannot read .*missing"),
        ({"cert": a["cert"], "key": a["key"], "certificates": [b]}, r"binds\[0\]\.tls\.certificates: not allowed"),
        ({}, r"binds\[0\]\.tls: a certificate is required"),
        ({"certificates": [a], "clientCertificate": {"mode": "sometimes", "caCertificates": garbage}},
         r"binds\[0\]\.tls\.clientCertificate\.mode: invalid mode"),
        ({"certificates": [a], "clientCertificate": {"mode": "required", "caCertificates": garbage}},
         r"binds\[0\]\.tls\.clientCertificate\.caCertificates: cannot load"),
        ({"certificates": [a], "minVersion": "TLSv1.0"}, r"binds\[0\]\.tls\.minVersion: unknown field"),
    ]
    for tls, expected in cases:
        assert re.search(expected, run_refused(tmp_path, cfg(tls))), (tls, expected)


# --- session resumption -------------------------------------------------------------------------------------------

def s_client_session(port: int, ca_file: str, sess: str, *, reuse: bool, tls12: bool = False) -> str:
    """One `openssl s_client` connection with a request, saving (-sess_out) or offering (-sess_in) a session;
    its `New, ...` / `Reused, ...` line."""
    args = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "a.test", "-CAfile", ca_file,
            "-ign_eof", "-sess_in" if reuse else "-sess_out", sess]
    if tls12:
        args.append("-tls1_2")
    # Connection: close makes agw end the connection after the answer: s_client has read the TLS 1.3
    # tickets (sent after the handshake) by then, and exits.
    request = "GET /headers HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
    done = subprocess.run(args, input=request, capture_output=True, text=True, timeout=20)
    assert "HTTP/1.1 200" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    return re.search(r"^(New|Reused), (TLSv1\.[23])", done.stdout, re.M).group(0)


@pytest.fixture(scope="module")
def ca_file(ca, tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("ca") / "ca.pem")
    ca.cert_pem.write_to_path(path)
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_a_returning_client_resumes_its_session(agw_proxy, backend, certs, ca_file, tmp_path, workers):
    """TLS 1.3 and TLS 1.2 session tickets, seen by openssl s_client (-sess_out, then -sess_in). With two
    workers (SO_REUSEPORT spreads connections over both), every resumption must succeed: the ticket keys are
    the same in both workers."""
    if OPENSSL is None:
        pytest.skip("openssl is needed")
    proxy = agw_proxy(sni_config(backend, certs, free_port()),
                      extra_args=("--access-log", "off", "--workers", str(workers)), wait_readyz=True)
    for tls12 in (False, True):
        version = "TLSv1.2" if tls12 else "TLSv1.3"
        sess = str(tmp_path / f"session-{version}")
        assert s_client_session(proxy.port, ca_file, sess, reuse=False, tls12=tls12) == f"New, {version}"
        for _ in range(6 if workers > 1 else 2):
            assert s_client_session(proxy.port, ca_file, sess, reuse=True, tls12=tls12) == f"Reused, {version}"


def test_python_client_resumes_across_a_certificate_reload(agw_proxy, backend, ca, certs, tmp_path):
    """Python's ssl: a saved session resumes (session_reused), also after SIGHUP installed a renewed
    certificate (the session-ticket keys live as long as the bind, not the config)."""
    import signal
    d = str(tmp_path)
    live = {"cert": os.path.join(d, "live.pem"), "key": os.path.join(d, "live.key")}
    first = issue(ca, d, "first", "a.test")
    for k in ("cert", "key"):
        shutil.copy(first[k], live[k])
    port = free_port()
    config = {"binds": [{"port": port, "address": "127.0.0.1", "tls": {"cert": live["cert"], "key": live["key"]},
                         "listeners": [{"routes": [{"backends": [{"host": f"127.0.0.1:{backend}"}]}]}]}]}
    proxy = agw_proxy(config, extra_args=("--access-log", "off"), wait_readyz=True)
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2   # Python exposes the TLS 1.2 session at once

    def connect(session=None) -> tuple[bool, ssl.SSLSession, str]:
        conn = http.client.HTTPSConnection("a.test", port, context=ctx, timeout=10)
        conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                    server_hostname="a.test", session=session)
        conn.request("GET", "/headers")
        assert conn.getresponse().status == 200
        result = (conn.sock.session_reused, conn.sock.session,
                  hashlib.sha256(conn.sock.getpeercert(binary_form=True)).hexdigest())
        conn.close()
        return result

    reused, session, served_fp = connect()
    assert not reused and served_fp == fingerprint(first)
    assert connect(session)[0]
    renewed = issue(ca, d, "renewed", "a.test")
    for k in ("cert", "key"):
        shutil.copy(renewed[k], live[k] + ".tmp")
        os.replace(live[k] + ".tmp", live[k])
    proxy.send_signal(signal.SIGHUP)
    proxy.wait_for_output(r"config reloaded", timeout=20)
    assert connect()[2] == fingerprint(renewed)       # new handshakes: the renewed certificate
    assert connect(session)[0]                         # the old session still resumes


def test_gateway_api_https_listeners_serve_their_secrets(agw_proxy, backend, ca, tmp_path):
    """Gateway API: two HTTPS listeners on one port, each with a Secret (read from AGW_SECRETS_DIR as
    <namespace>/<name>/tls.crt and tls.key, the layout of mounted Secrets); SNI chooses between them."""
    secrets = tmp_path / "mounted"
    fps = {}
    for host, secret in (("a.example.com", "a-cert"), ("b.example.com", "b-cert")):
        d = secrets / "edge" / secret
        d.mkdir(parents=True)
        files = issue(ca, str(d), "leaf", host)
        os.rename(files["cert"], d / "tls.crt")
        os.rename(files["key"], d / "tls.key")
        fps[host] = fingerprint({"cert": str(d / "tls.crt")})
    port = free_port()
    docs = [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
         "metadata": {"name": "gw", "namespace": "edge"},
         "spec": {"gatewayClassName": "agentgateway", "listeners": [
             {"name": name, "protocol": "HTTPS", "port": port, "hostname": host,
              "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": secret}]}}
             for name, host, secret in (("a", "a.example.com", "a-cert"), ("b", "b.example.com", "b-cert"))]}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
         "metadata": {"name": "app", "namespace": "edge"},
         "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "app", "port": 80}]}]}},
    ]
    agw_proxy(docs, extra_args=("--access-log", "off", "--resolve", f"app.edge:80=127.0.0.1:{backend}"),
              env={"AGW_SECRETS_DIR": str(secrets)}, wait_readyz=True)
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    for host, fp in fps.items():
        conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=10)
        conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=host)
        conn.request("GET", "/headers")
        resp = conn.getresponse()
        assert resp.status == 200
        assert hashlib.sha256(conn.sock.getpeercert(binary_form=True)).hexdigest() == fp
        conn.close()
