"""TLS on a bind (issue 6): `tls: {cert, key}` with a trustme certificate, HTTP/1.1 over TLS through the same
proxy path to a plain-HTTP backend (tests/e2e/backend_app.py as a process)."""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import ssl

import pytest

from tests.support.ports import free_port

HERE = os.path.dirname(__file__)
pytestmark = pytest.mark.e2e

trustme = pytest.importorskip("trustme")


@pytest.fixture(scope="module")
def ca() -> "trustme.CA":
    return trustme.CA()


def write_cert(ca: "trustme.CA", directory) -> tuple[str, str]:
    """A server cert for 127.0.0.1 and localhost: (cert chain file, key file)."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert.private_key_pem.write_to_path(str(key_path))
    with open(cert_path, "wb") as out:          # leaf first, then the chain
        for blob in cert.cert_chain_pems:
            out.write(blob.bytes())
    return str(cert_path), str(key_path)


@pytest.fixture
def tls_proxy(agw_proxy, backend, ca, tmp_path):
    """agw with one TLS bind (cert for 127.0.0.1 and localhost, files in tmp_path) and one plain bind."""
    cert_path, key_path = write_cert(ca, tmp_path)
    routes = [{"name": "app", "backends": [{"host": f"127.0.0.1:{backend}"}]}]
    config = {"binds": [
        {"port": free_port(), "address": "127.0.0.1", "tls": {"cert": str(cert_path), "key": str(key_path)},
         "listeners": [{"name": "secure", "routes": routes}]},
        {"port": free_port(), "address": "127.0.0.1", "listeners": [{"name": "plain", "routes": routes}]},
    ]}
    return agw_proxy(config, extra_args=("--access-log", "off"), wait_readyz=True)


def client_context(ca: "trustme.CA") -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.set_alpn_protocols(["h2", "http/1.1"])   # agw speaks HTTP/1.1 only and must pick it
    return ctx


def https(proxy, ca, host: str = "127.0.0.1") -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection(host, proxy.ports[0], timeout=10, context=client_context(ca))


def test_https_request_reaches_the_backend_with_forwarded_proto_https(tls_proxy, ca):
    conn = https(tls_proxy, ca)
    try:
        conn.request("GET", "/headers?q=1", headers={"X-Forwarded-Proto": "http", "X-Custom": "kept"})
        resp = conn.getresponse()
        got = json.loads(resp.read())
        assert resp.status == 200
        headers = {name.lower(): value for name, value in got["headers"]}
        assert got["target"] == "/headers?q=1"
        assert headers["x-forwarded-proto"] == "https"        # the client's own value is replaced
        assert [n.lower() for n, _ in got["headers"]].count("x-forwarded-proto") == 1
        assert headers["x-custom"] == "kept"
        assert conn.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert conn.sock.selected_alpn_protocol() == "http/1.1"
    finally:
        conn.close()
    # The plain bind of the same proxy says http.
    plain = http.client.HTTPConnection("127.0.0.1", tls_proxy.ports[1], timeout=10)
    try:
        plain.request("GET", "/headers")
        got = json.loads(plain.getresponse().read())
        assert {n.lower(): v for n, v in got["headers"]}["x-forwarded-proto"] == "http"
    finally:
        plain.close()


def test_keepalive_over_tls(tls_proxy, ca):
    """Ten requests on one TLS connection (client side) and one pooled upstream connection."""
    conn = https(tls_proxy, ca, host="localhost")
    try:
        conn.connect()
        tls_socket = conn.sock
        upstream_ids = set()
        for i in range(10):
            conn.request("GET", f"/headers?n={i}")
            resp = conn.getresponse()
            got = json.loads(resp.read())
            assert resp.status == 200 and got["target"] == f"/headers?n={i}"
            assert not resp.will_close
            upstream_ids.add(got["conn"])
        assert conn.sock is tls_socket       # never reconnected
        assert len(upstream_ids) == 1
    finally:
        conn.close()


def test_large_bodies_both_ways_over_tls(tls_proxy, ca):
    from tests.e2e.backend_app import pattern

    size = 6 * 1024 * 1024 + 3
    data = os.urandom(size)
    conn = https(tls_proxy, ca)
    try:
        conn.request("POST", "/sha256", body=data)
        resp = conn.getresponse()
        assert json.loads(resp.read()) == {"sha256": hashlib.sha256(data).hexdigest(), "length": size,
                                           "chunked": False}
        conn.request("GET", f"/stream?size={size}&chunked=1")
        resp = conn.getresponse()
        assert resp.status == 200
        assert hashlib.sha256(resp.read()).digest() == hashlib.sha256(pattern(size)).digest()
    finally:
        conn.close()


def test_untrusted_or_plaintext_clients_fail_without_harming_the_listener(tls_proxy, ca):
    untrusted = http.client.HTTPSConnection("127.0.0.1", tls_proxy.ports[0], timeout=10,
                                            context=ssl.create_default_context())
    with pytest.raises(ssl.SSLCertVerificationError):
        untrusted.request("GET", "/headers")
    untrusted.close()
    with socket.create_connection(("127.0.0.1", tls_proxy.ports[0]), timeout=10) as raw:
        raw.sendall(b"GET /headers HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")   # plain HTTP to the TLS port
        received = b""
        try:
            while chunk := raw.recv(4096):
                received += chunk
        except ConnectionResetError:
            pass
        assert b"HTTP/1.1 200" not in received      # the handshake failed; nothing was proxied
    conn = https(tls_proxy, ca)
    try:
        conn.request("GET", "/headers")
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    assert tls_proxy.running


def test_stalled_tls_handshake_is_closed_after_the_header_timeout(agw_proxy, backend, ca, tmp_path):
    """A client that opens a TLS connection and never finishes the handshake is a slowloris too: it is cut
    after config.requestHeaderTimeout, not after asyncio's default 60 s handshake timeout."""
    cert_path, key_path = write_cert(ca, tmp_path)
    proxy = agw_proxy({"config": {"requestHeaderTimeout": "1s"}, "binds": [
        {"port": free_port(), "address": "127.0.0.1", "tls": {"cert": cert_path, "key": key_path},
         "listeners": [{"routes": [{"backends": [{"host": f"127.0.0.1:{backend}"}]}]}]}]},
        extra_args=("--access-log", "off"), wait_readyz=True)
    for first_bytes in (b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"):   # nothing; half a ClientHello
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
            raw.sendall(first_bytes)
            try:
                assert raw.recv(4096) == b""   # closed well before this socket's own 10 s timeout
            except ConnectionResetError:
                pass
    conn = https(proxy, ca)
    try:
        conn.request("GET", "/headers")
        assert conn.getresponse().status == 200
    finally:
        conn.close()
