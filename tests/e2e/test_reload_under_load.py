"""A reload loses nothing (issue 13, defect 3): SIGHUPs under load, each a real config change, with a remote
JWKS from the real test IdP, and every valid request answered 200.

The two configs alternate between the IdP's JWKS URL as is and the same URL with a query string: every reload
both carries a source over (the URL the old config also had) and brings a new one (fetched before the new
config takes traffic). A route added in one config and not the other makes each reload change the routes.
"""
from __future__ import annotations

import signal
import threading
import time
from collections import Counter

import pytest

from tests.support.ports import free_port
from tests.support.rawhttp import RawConnection

pytestmark = pytest.mark.e2e

CLIENTS = 8
RELOADS = 20


def config(idp, backend: str, port: int, variant: int) -> dict:
    url = idp.jwks_url if variant == 0 else f"{idp.jwks_url}?variant={variant}"
    secured = {"jwtAuth": {"issuer": idp.issuer, "jwks": {"url": url, "cacheDuration": "5m"}}}
    routes = [{"name": "secure", "hostnames": ["secure.test"], "backends": [{"host": backend}],
               "policies": secured},
              # the listener's own policy, always on the IdP's plain URL: carried over at every reload
              {"name": "listener-policy", "hostnames": ["listener.test"], "backends": [{"host": backend}]}]
    if variant:
        routes.append({"name": f"extra{variant}", "hostnames": ["extra.test"], "backends": [{"host": backend}]})
    return {"binds": [{"port": port, "address": "127.0.0.1", "listeners": [{
        "name": "main", "routes": routes,
        "policies": {"jwtAuth": {"issuer": idp.issuer, "jwks": {"url": idp.jwks_url}}}}]}]}


def reloads_logged(proxy) -> int:
    return proxy.output().count('"event":"reloaded"')


@pytest.mark.parametrize("workers", [1, 2])
def test_reloads_under_load_answer_every_valid_request(agw_proxy, idp, httpbin_backend, workers):
    port = free_port()
    proxy = agw_proxy(config(idp, httpbin_backend.address, port, 0), wait_readyz=True,
                      extra_args=("--access-log", "off", "--workers", str(workers)))
    token = idp.password_token()
    stop = threading.Event()
    answers: Counter[tuple[int, str]] = Counter()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def client(host: str) -> None:
        try:
            while not stop.is_set():
                with RawConnection(port, timeout=10) as conn:   # keep-alive: many requests per connection
                    for _ in range(200):
                        if stop.is_set():
                            break
                        response = conn.request("GET", "/get", {"Authorization": f"Bearer {token}"}, host=host)
                        key = (response.status, "" if response.status == 200 else response.text)
                        with lock:
                            answers[key] += 1
                        if response.header("connection") == "close":
                            break
        except BaseException as err:  # noqa: BLE001 - reported by the test thread
            errors.append(err)

    threads = [threading.Thread(target=client, args=("secure.test" if i % 2 else "listener.test",), daemon=True)
               for i in range(CLIENTS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    try:
        for n in range(1, RELOADS + 1):
            before = sum(answers.values())
            proxy.write_config(config(idp, httpbin_backend.address, port, n % 2 + (n % 4 == 3)))
            proxy.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 20
            while reloads_logged(proxy) < n * workers:
                assert time.monotonic() < deadline, f"reload {n} not logged\n{proxy.output()[-3000:]}"
                assert proxy.running
                time.sleep(0.02)
            while sum(answers.values()) < before + 50:   # traffic went through the new config too
                assert time.monotonic() < deadline and not errors, errors
                time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert not errors, errors
    assert "reload refused" not in proxy.output()
    assert set(answers) == {(200, "")}, answers
    assert sum(answers.values()) > RELOADS * 50
    assert time.monotonic() - started < 60
