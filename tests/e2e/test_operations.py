"""Operations end to end (issue 6): metrics after known traffic (one worker and two), the JSON access log,
graceful drain on SIGTERM, reload on SIGHUP and --watch, and /readyz transitions.

agw runs as a subprocess (the `agw_proxy` fixture) in front of tests/e2e/backend_app.py, also a process.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.ports import free_port, port_is_open
from tests.support.rawhttp import RawConnection

HERE = os.path.dirname(__file__)
pytestmark = pytest.mark.e2e


def config(backend_port: int, *, port: int | None = None, extra_routes: tuple[dict, ...] = (),
           dead_port: int | None = None) -> dict:
    """Host app.test -> the backend (route "app"); dead.test -> a closed port (route "dead"); other hosts
    -> no route (404)."""
    routes = [dict(r) for r in extra_routes] + [
        {"name": "app", "hostnames": ["app.test"], "backends": [{"host": f"127.0.0.1:{backend_port}"}]},
        {"name": "dead", "hostnames": ["dead.test"], "backends": [{"host": f"127.0.0.1:{dead_port or free_port()}"}]},
    ]
    return {"binds": [{"port": port or free_port(), "address": "127.0.0.1",
                       "listeners": [{"name": "main", "routes": routes}]}]}


def route_to(name: str, prefix: str, backend_port: int) -> dict:
    return {"name": name, "hostnames": ["app.test"], "matches": [{"path": {"pathPrefix": prefix}}],
            "backends": [{"host": f"127.0.0.1:{backend_port}"}]}


def get(proxy, target: str, host: str = "app.test", headers=None):
    """One request on a fresh connection."""
    with RawConnection(proxy.port) as conn:
        return conn.request("GET", target, headers, host=host)


def scrape(proxy) -> dict[tuple[str, frozenset], float]:
    """/metrics parsed: {(sample name, frozenset(labels)): value}."""
    status, text = proxy.admin_get("/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: dict, name: str, **labels: str) -> float:
    """Sum of `name` over every label set that includes `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


# --- metrics -----------------------------------------------------------------------------------------------

def test_metrics_count_known_traffic_exactly(agw_proxy, backend):
    proxy = agw_proxy(config(backend), extra_args=("--access-log", "off"), wait_readyz=True)
    for _ in range(5):
        assert get(proxy, "/headers").status == 200
    for _ in range(3):
        assert get(proxy, "/status/503").status == 503
    for _ in range(2):
        assert get(proxy, "/x", host="nowhere.test").status == 404
    for _ in range(4):
        assert get(proxy, "/x", host="dead.test").status == 502

    samples = scrape(proxy)
    assert value(samples, "agw_requests_total", route="app", status="200") == 5
    assert value(samples, "agw_requests_total", route="app", status="503") == 3
    assert value(samples, "agw_requests_total", route="", status="404") == 2
    assert value(samples, "agw_requests_total", route="dead", status="502") == 4
    assert total(samples, "agw_requests_total") == 14
    # The duration histogram saw the same requests; its buckets are cumulative and end with +Inf.
    assert value(samples, "agw_request_duration_seconds_count", route="app") == 8
    assert value(samples, "agw_request_duration_seconds_bucket", route="app", le="+Inf") == 8
    assert value(samples, "agw_request_duration_seconds_count", route="dead") == 4
    assert total(samples, "agw_request_duration_seconds_count") == 14
    assert value(samples, "agw_request_duration_seconds_sum", route="app") > 0
    # Upstream pool: one keep-alive connection served the eight sequential requests and sits idle now;
    # every request to the closed port was a connect error.
    app_backend, dead_backend = f"127.0.0.1:{backend}", proxy_dead_backend(proxy)
    assert value(samples, "agw_upstream_connections", backend=app_backend, state="open") == 1
    assert value(samples, "agw_upstream_connections", backend=app_backend, state="idle") == 1
    assert value(samples, "agw_upstream_connect_errors_total", backend=app_backend) == 0
    assert value(samples, "agw_upstream_connect_errors_total", backend=dead_backend) == 4
    assert value(samples, "agw_upstream_connections", backend=dead_backend, state="open") == 0

    # Scraping is not traffic: a second scrape after one more request moves the counters by exactly one.
    assert get(proxy, "/headers").status == 200
    again = scrape(proxy)
    assert value(again, "agw_requests_total", route="app", status="200") == 6
    assert total(again, "agw_requests_total") == 15


def proxy_dead_backend(proxy) -> str:
    """The dead.test backend address, read back from the config the proxy was started with."""
    import yaml

    doc = yaml.safe_load(proxy.config_paths[0].read_text())
    routes = doc["binds"][0]["listeners"][0]["routes"]
    return next(r for r in routes if r["name"] == "dead")["backends"][0]["host"]


def test_metrics_cover_every_worker(agw_proxy, backend):
    """With --workers 2 each fresh connection lands on either worker; the admin listener sums them."""
    proxy = agw_proxy(config(backend), extra_args=("--workers", "2", "--access-log", "off"), wait_readyz=True)
    requests = 40
    for _ in range(requests):
        assert get(proxy, "/headers").status == 200
    samples = scrape(proxy)
    assert value(samples, "agw_requests_total", route="app", status="200") == requests
    assert total(samples, "agw_requests_total") == requests
    assert value(samples, "agw_request_duration_seconds_count", route="app") == requests
    # Each worker has its own pool: between one and two upstream connections in all, all idle.
    open_conns = value(samples, "agw_upstream_connections", backend=f"127.0.0.1:{backend}", state="open")
    assert 1 <= open_conns <= 2
    workers = subprocess.run(["pgrep", "-P", str(proxy.proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) == 2


# --- access log --------------------------------------------------------------------------------------------

def read_json_lines(path, count: int, timeout: float = 5.0) -> list[dict]:
    """Wait until `path` holds at least `count` lines (the log is flushed by a 250 ms ticker)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.05)


def test_access_log_one_json_line_per_request_without_secrets(agw_proxy, backend, tmp_path):
    log_path = tmp_path / "access.jsonl"
    proxy = agw_proxy(config(backend), extra_args=("--access-log", str(log_path)), wait_readyz=True)
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWNyZXQtdXNlciJ9.c2VjcmV0LXNpZ25hdHVyZQ"
    secret_headers = {"Authorization": f"Bearer {token}", "Cookie": "session=cookie-secret-value"}
    sent = [
        ("/headers?access_token=query-secret-value", "app.test", 200),
        ("/status/503?x=1", "app.test", 503),
        ("/nothing-here", "nowhere.test", 404),
        ("/down", "dead.test", 502),
    ]
    for target, host, status in sent:
        assert get(proxy, target, host=host, headers=secret_headers).status == status
    with RawConnection(proxy.port) as conn:   # keep-alive: two requests, two lines
        for _ in range(2):
            assert conn.request("POST", "/sha256", secret_headers, b"x" * 1000, host="app.test").status == 200

    entries = read_json_lines(log_path, 6)
    assert len(entries) == 6, entries
    for entry in entries:
        assert {"time", "method", "path", "status", "duration_ms", "bytes", "route", "client"} <= set(entry)
        assert entry["client"] == "127.0.0.1" and entry["duration_ms"] >= 0 and entry["time"] > 0
    assert [(e["method"], e["path"], e["status"], e["route"]) for e in entries] == [
        ("GET", "/headers", 200, "app"),
        ("GET", "/status/503", 503, "app"),
        ("GET", "/nothing-here", 404, None),
        ("GET", "/down", 502, "dead"),
        ("POST", "/sha256", 200, "app"),
        ("POST", "/sha256", 200, "app"),
    ]
    assert entries[0]["bytes"] > 0 and entries[2]["bytes"] == len(b"route not found\n")
    text = log_path.read_text()
    for secret in (token, token.split(".")[1], token.split(".")[2], "query-secret-value", "access_token",
                   "cookie-secret-value", "Bearer"):
        assert secret not in text
    assert secret_headers["Authorization"] not in proxy.output()


# --- SIGTERM: drain ----------------------------------------------------------------------------------------

def wait_refused(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while port_is_open("127.0.0.1", port, timeout=0.2):
        assert time.monotonic() < deadline, "new connections still accepted after SIGTERM"
        time.sleep(0.02)


def test_sigterm_lets_a_slow_request_finish_refuses_new_ones_and_exits_0(agw_proxy, backend):
    proxy = agw_proxy(config(backend), extra_args=("--access-log", "off", "--drain-timeout", "10"),
                      wait_readyz=True)
    assert proxy.admin_get("/readyz") == (200, "ready\n")
    with RawConnection(proxy.port) as slow:
        slow.send(b"GET /slow?delay=2 HTTP/1.1\r\nHost: app.test\r\n\r\n")
        time.sleep(0.3)   # the request is at the backend now
        proxy.send_signal(signal.SIGTERM)
        wait_refused(proxy.port)
        status, body = proxy.admin_get("/readyz")   # draining: not ready, while the request is in flight
        assert (status, body) == (503, "not ready\ndraining\n")
        resp = slow.read_response()
        assert resp.status == 200 and resp.body == b"slow\n"
        assert resp.header("connection") == "close"
    assert proxy.wait(10) == 0


def test_sigterm_while_streaming_a_large_response(agw_proxy, backend):
    """The client reads a 16 MiB response slowly across the SIGTERM; it arrives whole, then agw exits 0."""
    from tests.e2e.backend_app import pattern

    size = 16 * 1024 * 1024
    proxy = agw_proxy(config(backend), extra_args=("--access-log", "off"), wait_readyz=True)
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    try:
        sock.sendall(b"GET /stream?size=%d HTTP/1.1\r\nHost: app.test\r\n\r\n" % size)
        data = sock.recv(65536)
        time.sleep(0.3)       # the rest waits in buffers: the response is in flight
        proxy.send_signal(signal.SIGTERM)
        wait_refused(proxy.port)
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")   # its head went out before SIGTERM; the close came after the body
    assert len(body) == size and hashlib.sha256(body).digest() == hashlib.sha256(pattern(size)).digest()
    assert proxy.wait(10) == 0


def test_readyz_and_healthz(agw_proxy, backend):
    proxy = agw_proxy(config(backend), extra_args=("--access-log", "off"), wait_readyz=True)
    assert proxy.admin_get("/readyz") == (200, "ready\n")
    assert proxy.admin_get("/healthz") == (200, "ok\n")
    assert proxy.admin_get("/nope")[0] == 404


# --- reload ------------------------------------------------------------------------------------------------

def log_lines(output: str) -> list[dict]:
    out = []
    for line in output.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


def wait_for_log(proxy, predicate, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        for entry in log_lines(proxy.output()):
            if predicate(entry):
                return entry
        assert time.monotonic() < deadline, f"no such log line in:\n{proxy.output()}"
        time.sleep(0.05)


def count_logs(proxy, event: str) -> int:
    return sum(1 for e in log_lines(proxy.output()) if e.get("event") == event)


def test_sighup_good_config_adds_a_route_and_keeps_connections(agw_proxy, backend):
    port = free_port()
    proxy = agw_proxy(config(backend, port=port, extra_routes=(route_to("old", "/old", backend),)),
                      extra_args=("--access-log", "off"), wait_readyz=True)
    with RawConnection(proxy.port) as kept:
        assert kept.request("GET", "/old/headers", host="app.test").status == 200
        assert get(proxy, "/new/headers", host="nowhere.test").status == 404
        proxy.write_config(config(backend, port=port, extra_routes=(
            route_to("old", "/old", backend),
            {"name": "new", "hostnames": ["new.test"], "backends": [{"host": f"127.0.0.1:{backend}"}]})))
        proxy.send_signal(signal.SIGHUP)
        wait_for_log(proxy, lambda e: e.get("event") == "reloaded")
        assert get(proxy, "/new/headers", host="new.test").status == 200
        # The connection opened before the reload is still served, on the new routes too.
        assert kept.request("GET", "/old/headers", host="app.test").status == 200
        assert kept.request("GET", "/headers", host="new.test").status == 200
    samples = scrape(proxy)
    assert value(samples, "agw_requests_total", route="new", status="200") == 2
    assert proxy.running


def test_sighup_bad_config_is_refused_and_the_old_one_keeps_serving(agw_proxy, backend):
    port = free_port()
    good = config(backend, port=port)
    proxy = agw_proxy(good, extra_args=("--access-log", "off"), wait_readyz=True)
    with RawConnection(proxy.port) as kept:
        assert kept.request("GET", "/headers", host="app.test").status == 200
        bad = config(backend, port=port, extra_routes=(
            {"name": "broken", "hostnames": ["new.test"], "backends": [{"host": "no-port-here"}]},))
        proxy.write_config(bad)
        proxy.send_signal(signal.SIGHUP)
        refused = wait_for_log(proxy, lambda e: e.get("event") == "reload_refused")
        assert refused["level"] == "error"
        assert "reload refused" in refused["msg"]
        assert "expected host:port, got 'no-port-here'" in refused["msg"]
        assert kept.request("GET", "/headers", host="app.test").status == 200
        assert get(proxy, "/headers", host="new.test").status == 404     # the bad config's route is not there
    assert count_logs(proxy, "reloaded") == 0
    assert proxy.admin_get("/readyz")[0] == 200
    # A good config afterwards is taken.
    proxy.write_config(config(backend, port=port, extra_routes=(
        {"name": "fixed", "hostnames": ["new.test"], "backends": [{"host": f"127.0.0.1:{backend}"}]},)))
    proxy.send_signal(signal.SIGHUP)
    wait_for_log(proxy, lambda e: e.get("event") == "reloaded")
    assert get(proxy, "/headers", host="new.test").status == 200


def test_sighup_with_workers_drops_a_removed_bind_and_restarted_workers_keep_the_new_config(agw_proxy, backend):
    port, other = free_port(), free_port()
    two_binds = config(backend, port=port)
    two_binds["binds"].append(config(backend, port=other)["binds"][0])
    proxy = agw_proxy(two_binds, extra_args=("--workers", "2", "--access-log", "off"), wait_readyz=True)
    assert get(proxy, "/headers").status == 200
    with RawConnection(other) as conn:
        assert conn.request("GET", "/headers", host="app.test").status == 200
    proxy.write_config(config(backend, port=port, extra_routes=(
        {"name": "new", "hostnames": ["new.test"], "backends": [{"host": f"127.0.0.1:{backend}"}]},)))
    proxy.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while count_logs(proxy, "reloaded") < 2:
        assert time.monotonic() < deadline, proxy.output()
        time.sleep(0.05)
    # The dropped bind no longer accepts connections (none left queued where no worker reads).
    for _ in range(10):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", other), timeout=2).close()
    # A worker that dies is restarted on the reloaded config.
    workers = subprocess.run(["pgrep", "-P", str(proxy.proc.pid)], capture_output=True, text=True).stdout.split()
    os.kill(int(workers[0]), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while True:
        now = subprocess.run(["pgrep", "-P", str(proxy.proc.pid)], capture_output=True, text=True).stdout.split()
        if len(now) == 2 and workers[0] not in now:
            break
        assert time.monotonic() < deadline, proxy.output()
        time.sleep(0.05)
    while proxy.admin_get("/readyz")[0] != 200:
        assert time.monotonic() < deadline + 10, proxy.output()
        time.sleep(0.05)
    # Fresh connections land on either worker: every one sees the new route.
    assert [get(proxy, "/headers", host="new.test").status for _ in range(30)] == [200] * 30


def test_watch_picks_up_a_changed_file(agw_proxy, backend):
    port = free_port()
    proxy = agw_proxy(config(backend, port=port), extra_args=("--access-log", "off", "--watch"), wait_readyz=True)
    assert get(proxy, "/headers", host="watched.test").status == 404
    time.sleep(0.05)
    proxy.write_config(config(backend, port=port, extra_routes=(
        {"name": "watched", "hostnames": ["watched.test"], "backends": [{"host": f"127.0.0.1:{backend}"}]},)))
    deadline = time.monotonic() + 10
    while get(proxy, "/headers", host="watched.test").status != 200:
        assert time.monotonic() < deadline, f"--watch never reloaded\n{proxy.output()}"
        time.sleep(0.1)
    assert count_logs(proxy, "reloaded") == 1


# --- counters across reloads ----------------------------------------------------------------------------------

COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def secured_config(backend: int, idp, port: int, extra_routes: tuple[dict, ...] = ()) -> dict:
    """config() with a route "secure" (host secure.test) behind a strict jwtAuth with the IdP's remote JWKS."""
    secure = {"name": "secure", "hostnames": ["secure.test"], "backends": [{"host": f"127.0.0.1:{backend}"}],
              "policies": {"jwtAuth": {"issuer": idp.issuer, "jwks": {"url": idp.jwks_url}}}}
    return config(backend, port=port, extra_routes=(secure, *extra_routes))


@pytest.mark.parametrize("workers", [1, 2])
def test_every_counter_only_grows_across_a_reload(agw_proxy, backend, idp, workers):
    port = free_port()
    proxy = agw_proxy(secured_config(backend, idp, port),
                      extra_args=("--access-log", "off", "--workers", str(workers)), wait_readyz=True)
    token = idp.password_token()
    for _ in range(6):   # a token enters the cache at its second verification: hits and misses both move
        assert get(proxy, "/headers", host="secure.test", headers={"Authorization": f"Bearer {token}"}).status == 200
    assert get(proxy, "/headers", host="secure.test").status == 401
    assert get(proxy, "/headers", host="dead.test").status == 502
    before = scrape(proxy)
    counters = {k: v for k, v in before.items() if k[0].endswith(COUNTER_SUFFIXES)}
    for name in ("agw_jwt_cache_hits_total", "agw_jwt_cache_misses_total", "agw_jwks_fetches_total",
                 "agw_upstream_connect_errors_total", "agw_requests_total", "agw_jwt_authentications_total"):
        assert total(counters, name) > 0, name

    proxy.write_config(secured_config(backend, idp, port, extra_routes=(route_to("new", "/new", backend),)))
    proxy.send_signal(signal.SIGHUP)
    wait_for_log_count(proxy, "reloaded", workers)    # each worker logs its own reload
    after = scrape(proxy)
    shrunk = {k: (v, after.get(k)) for k, v in counters.items() if after.get(k, -1.0) < v}
    assert not shrunk, f"counters that went down or vanished across the reload: {shrunk}"


def wait_for_log_count(proxy, event: str, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while count_logs(proxy, event) < count:
        assert time.monotonic() < deadline, f"fewer than {count} {event!r} log lines"
        time.sleep(0.05)


# --- readiness: every remote JWKS holds keys -------------------------------------------------------------------

def wait_readyz(proxy, predicate, timeout: float = 30.0) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        answer = proxy.admin_get("/readyz")
        if predicate(answer):
            return answer
        assert time.monotonic() < deadline, f"/readyz never matched; last {answer}\n{proxy.output()}"
        time.sleep(0.05)


@pytest.mark.parametrize("workers", [1, 2])
def test_readyz_waits_for_keys_when_the_idp_is_down_at_start(agw_proxy, backend, idp_fresh, workers):
    idp_fresh.stop()
    port = free_port()
    cfg = secured_config(backend, idp_fresh, port)
    cfg["config"] = {"startupGrace": "0s"}     # take traffic at once, without keys
    proxy = agw_proxy(cfg, extra_args=("--access-log", "off", "--workers", str(workers)))
    proxy.wait_for_output("taking traffic without keys")
    status, body = proxy.admin_get("/readyz")
    assert status == 503
    first, reason = body.splitlines()
    assert first == "not ready", body
    assert reason.startswith(f"jwks: provider {idp_fresh.issuer}: no keys from {idp_fresh.jwks_url} "
                             f"(connection failed: "), body
    assert get(proxy, "/headers").status == 200          # routes without a policy serve meanwhile
    answer = get(proxy, "/headers", host="secure.test", headers={"Authorization": "Bearer x.y.z"})
    assert answer.status == 401

    idp_fresh.start()
    assert wait_readyz(proxy, lambda a: a[0] == 200) == (200, "ready\n")
    token = idp_fresh.password_token()
    assert get(proxy, "/headers", host="secure.test", headers={"Authorization": f"Bearer {token}"}).status == 200


def test_startup_grace_holds_traffic_until_the_keys_load(agw_proxy, backend, idp_fresh):
    idp_fresh.stop()
    cfg = secured_config(backend, idp_fresh, free_port())
    cfg["config"] = {"startupGrace": "60s"}
    proxy = agw_proxy(cfg, extra_args=("--access-log", "off"))
    status, body = wait_readyz(proxy, lambda a: "connection failed" in a[1])
    assert status == 503 and body.splitlines()[1] == "starting: waiting for JWKS keys (startupGrace)", body
    with RawConnection(proxy.port, timeout=30) as early:
        early.send(b"GET /headers HTTP/1.1\r\nHost: app.test\r\n\r\n")
        early.sock.settimeout(1.0)
        with pytest.raises(socket.timeout):     # connected, but in the backlog: no answer while keys are missing
            early.sock.recv(1, socket.MSG_PEEK)
        early.sock.settimeout(30)
        idp_fresh.start()
        assert early.read_response().status == 200
    assert proxy.admin_get("/readyz") == (200, "ready\n")
    assert "taking traffic without keys" not in proxy.output()
