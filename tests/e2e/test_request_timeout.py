"""The whole-request timeout (issue 13 defect 2, issue 20 F12): native `timeout.requestTimeout` and Gateway
API `HTTPRoute.spec.rules[].timeouts.request` bound the time from the request head to the end of the answer,
whatever the phase: a backend slower than that gets the client a 504 `request timeout`."""
from __future__ import annotations

import time

import pytest

from tests.support.ports import free_port
from tests.support.rawhttp import RawConnection

pytestmark = pytest.mark.e2e


def native(backend: int, timeout: dict) -> dict:
    return {"binds": [{"port": free_port(), "address": "127.0.0.1", "listeners": [{"name": "main", "routes": [
        {"name": "slow", "backends": [{"host": f"127.0.0.1:{backend}"}], "policies": {"timeout": timeout}},
    ]}]}]}


def timed_get(proxy, target: str):
    started = time.monotonic()
    with RawConnection(proxy.port, timeout=15) as conn:
        resp = conn.request("GET", target, host="slow.test")
    return resp, time.monotonic() - started


def test_native_request_timeout_answers_504(agw_proxy, backend):
    proxy = agw_proxy(native(backend, {"requestTimeout": "1s"}), extra_args=("--access-log", "off"))
    resp, took = timed_get(proxy, "/slow?delay=4")
    assert (resp.status, resp.body) == (504, b"request timeout\n")
    assert took < 3.0, took
    fast, _ = timed_get(proxy, "/headers")
    assert fast.status == 200


def test_the_shorter_of_request_and_backend_timeouts_wins(agw_proxy, backend):
    proxy = agw_proxy(native(backend, {"requestTimeout": "6s", "backendRequestTimeout": "1s"}),
                      extra_args=("--access-log", "off"))
    resp, took = timed_get(proxy, "/slow?delay=4")
    assert (resp.status, resp.body) == (504, b"upstream request timeout\n") and took < 3.0


def test_without_a_request_timeout_a_slow_backend_is_answered(agw_proxy, backend):
    proxy = agw_proxy(native(backend, {"backendRequestTimeout": "10s"}), extra_args=("--access-log", "off"))
    resp, took = timed_get(proxy, "/slow?delay=2")
    assert resp.status == 200 and took >= 2.0


def test_httproute_timeouts_request_answers_504(agw_proxy, backend):
    port = free_port()
    documents = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: agentgateway
  listeners: [{{name: http, port: {port}, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: slow, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - backendRefs: [{{name: backend, port: 80}}]
    timeouts: {{request: 1s}}
"""
    proxy = agw_proxy(documents,
                      extra_args=("--access-log", "off", "--resolve", f"backend.default:80=127.0.0.1:{backend}"))
    resp, took = timed_get(proxy, "/slow?delay=4")
    assert (resp.status, resp.body) == (504, b"request timeout\n") and took < 3.0
