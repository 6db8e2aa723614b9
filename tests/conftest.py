"""Fixtures shared by all of agw's tests: the real services end-to-end tests run against, and agw itself.

    idp              (session)  the oauth2-mock-server IdP behind Keycloak's paths  -> tests.support.idp.MockIdp
    idp_fresh        (function) the same, private to one test (stop/start, rotation without side effects)
    httpbin_backend  (session)  httpbin under gunicorn                               -> HttpbinServer
    agw_proxy        (function) factory: agw_proxy(config, **options) -> AgwProxy (stopped at teardown)
    agw_logs_dir     (session)  where the processes' logs go

The helpers themselves live in tests/support/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.support.httpbin import HttpbinServer
from tests.support.idp import IdpUnavailable, MockIdp
from tests.support.proxy import AgwProxy, ConfigSource, start_agw_proxy


def pytest_addoption(parser: pytest.Parser) -> None:
    # Registered here (the root conftest) so that `pytest tests --soak-duration N` works from anywhere.
    parser.addoption("--soak-duration", type=float, default=15.0, metavar="SECONDS",
                     help="how long the soak test (tests/soak) keeps its load on agw (default 15)")


@pytest.fixture(scope="session")
def agw_logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("process-logs")


def _start_idp(logs: Path) -> MockIdp:
    try:
        return MockIdp(logs).start()
    except IdpUnavailable as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def idp(agw_logs_dir: Path) -> Iterator[MockIdp]:
    """The shared test IdP. Tests that stop it or change its signing key must use `idp_fresh` instead."""
    server = _start_idp(agw_logs_dir)
    yield server
    server.process.stop()


@pytest.fixture
def idp_fresh(agw_logs_dir: Path) -> Iterator[MockIdp]:
    """A test IdP of this test's own (its own port and keys), free to stop, restart and rotate."""
    server = _start_idp(agw_logs_dir)
    yield server
    server.process.stop()


@pytest.fixture(scope="session")
def httpbin_backend(agw_logs_dir: Path) -> Iterator[HttpbinServer]:
    """httpbin on 127.0.0.1 (`.url`, `.port`, `.address` = "127.0.0.1:PORT")."""
    server = HttpbinServer(agw_logs_dir).start()
    yield server
    server.stop()


AgwProxyFactory = Callable[..., AgwProxy]


@pytest.fixture
def agw_proxy(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[AgwProxyFactory]:
    """Start agw as a subprocess:

        proxy = agw_proxy(yaml_text_or_dict, files=(), extra_args=(), ports_to_wait=None, env=None,
                          admin=True, wait_readyz=False, timeout=20.0)

    The config is written to this test's tmp_path; ports_to_wait defaults to the config's bind ports. All
    proxies are stopped at teardown; when the test failed, their output is printed to help the diagnosis."""
    started: list[AgwProxy] = []

    def factory(config: ConfigSource | None = None, **options: Any) -> AgwProxy:
        proxy = start_agw_proxy(tmp_path, config, name=f"agw{len(started)}", **options)
        started.append(proxy)
        return proxy

    yield factory
    for proxy in started:
        proxy.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for proxy in started:
            print(f"\n--- output of {proxy!r} ---\n{proxy.output()}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # Lets fixtures see whether the test body failed (request.node.rep_call), to print process output.
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
