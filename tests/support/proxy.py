"""agw itself as a subprocess: `python -m agw run -f CONFIG --admin 127.0.0.1:PORT ...`.

    proxy = start_agw_proxy(tmp_dir, yaml_text)        # waits until every bind port (and admin) listens
    resp = proxy.get("/headers", headers={"Authorization": f"Bearer {token}"})
    proxy.send_signal(signal.SIGHUP); proxy.stop()
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import yaml

from .ports import free_port
from .process import ExternalProcess
from .rawhttp import RawConnection, RawResponse

REPO_ROOT = Path(__file__).resolve().parents[2]
ConfigSource = Union[str, Mapping[str, Any], Sequence[Mapping[str, Any]]]

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def agw_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for an agw subprocess: ours, the repository on PYTHONPATH, and `extra` on top."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    if extra:
        env.update(extra)
    return env


def config_text(config: ConfigSource) -> str:
    """YAML text from text, one document (dict) or several (list of dicts, written with ---)."""
    if isinstance(config, str):
        return config
    if isinstance(config, Mapping):
        return yaml.safe_dump(dict(config), sort_keys=False)
    return yaml.safe_dump_all([dict(doc) for doc in config], sort_keys=False)


def bind_ports(text: str, env: Mapping[str, str] | None = None) -> list[int]:
    """The ports a config listens on: native `binds[].port` and Gateway API `spec.listeners[].port`.
    `${VAR}` in the text is expanded from `env` first, as agw does at load time."""
    variables = env if env is not None else os.environ
    expanded = _VARIABLE.sub(lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), text)
    ports: list[int] = []
    for document in yaml.safe_load_all(expanded):
        if not isinstance(document, dict):
            continue
        for bind in document.get("binds") or []:
            if isinstance(bind, dict) and "port" in bind:
                ports.append(int(bind["port"]))
        if document.get("kind") == "Gateway":
            for listener in (document.get("spec") or {}).get("listeners") or []:
                if isinstance(listener, dict) and "port" in listener:
                    ports.append(int(listener["port"]))
    return list(dict.fromkeys(ports))


class AgwProxy:
    """A started agw process. `port` is the first bind port; `ports` all of them."""

    def __init__(self, process: ExternalProcess, ports: list[int], admin_port: int | None,
                 config_paths: list[Path]) -> None:
        self.process = process
        self.ports = ports
        self.admin_port = admin_port
        self.config_paths = config_paths
        self.host = "127.0.0.1"

    @property
    def port(self) -> int:
        if not self.ports:
            raise AttributeError("this proxy was started without any known listen port")
        return self.ports[0]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.host}:{self.admin_port}"

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        assert self.process.proc is not None
        return self.process.proc

    @property
    def running(self) -> bool:
        return self.process.running

    def output(self) -> str:
        return self.process.output()

    def wait_for_output(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        return self.process.wait_for_output(pattern, timeout)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (graceful drain), then SIGKILL after `timeout`; returns the exit code."""
        return self.process.stop(timeout)

    def send_signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = 20.0) -> int:
        return self.process.wait(timeout)

    def write_config(self, config: ConfigSource, index: int = 0) -> Path:
        """Replace config file `index` (for reload tests: write, then send SIGHUP)."""
        path = self.config_paths[index]
        path.write_text(config_text(config))
        return path

    def request(self, method: str, path: str, headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
                body: bytes | str = b"", *, port: int | None = None, host: str | None = None,
                timeout: float = 10.0) -> RawResponse:
        """One request on a fresh connection to the proxy (bind `port`, default the first)."""
        with RawConnection(port or self.port, timeout=timeout) as conn:
            return conn.request(method, path, headers, body, host=host)

    def get(self, path: str, headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
            **kwargs: Any) -> RawResponse:
        return self.request("GET", path, headers, **kwargs)

    def admin_get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        """GET on the admin listener; (status, body text)."""
        try:
            with urllib.request.urlopen(self.admin_url + path, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Poll the admin /readyz until it answers 200."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"agw exited before it was ready\n{self.output()}")
            try:
                status, body = self.admin_get("/readyz", timeout=1.0)
                if status == 200:
                    return
                last = (status, body)
            except OSError as err:
                last = err
            time.sleep(0.05)
        raise TimeoutError(f"agw /readyz not 200 within {timeout}s (last: {last})\n{self.output()}")

    def __repr__(self) -> str:
        return f"<AgwProxy ports={self.ports} admin={self.admin_port} running={self.running}>"


def start_agw_proxy(
    work_dir: str | os.PathLike[str],
    config: ConfigSource | None = None,
    *,
    files: Sequence[ConfigSource] = (),
    extra_args: Sequence[str] = (),
    ports_to_wait: Sequence[int] | None = None,
    env: Mapping[str, str] | None = None,
    admin: bool = True,
    wait_readyz: bool = False,
    timeout: float = 20.0,
    name: str = "agw",
) -> AgwProxy:
    """Write `config` (and `files`, each to its own -f file) into `work_dir`, start
    `python -m agw run -f ... --admin 127.0.0.1:<free> [extra_args]`, and wait until the listen ports open.

    `ports_to_wait` defaults to the bind ports found in the configs (see `bind_ports`). With `config=None`
    and no files, no -f is passed (the demo). `env` is added to the environment (for ${VAR} configs).
    Raises ProcessStartError (with agw's output) if agw exits or never listens."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    full_env = agw_env(env)
    sources = ([config] if config is not None else []) + list(files)
    paths: list[Path] = []
    texts: list[str] = []
    for source in sources:
        text = config_text(source)
        path = work / f"{name}-config-{len(list(work.glob(f'{name}-config-*.yaml')))}.yaml"
        path.write_text(text)
        paths.append(path)
        texts.append(text)
    argv = [sys.executable, "-m", "agw", "run"]
    for path in paths:
        argv += ["-f", str(path)]
    admin_port = free_port() if admin else None
    argv += ["--admin", f"127.0.0.1:{admin_port}" if admin_port else "off"]
    argv += list(extra_args)
    if ports_to_wait is None:
        ports = [port for text in texts for port in bind_ports(text, full_env)]
        ports = list(dict.fromkeys(ports))
    else:
        ports = list(ports_to_wait)
    wait_list = ports + ([admin_port] if admin_port else [])
    log_path = work / f"{name}-{int(time.time() * 1000)}.log"
    process = ExternalProcess(argv, name=name, cwd=work, env=full_env, ports_to_wait=wait_list, log_path=log_path)
    process.start(timeout)
    proxy = AgwProxy(process, ports, admin_port, paths)
    if wait_readyz and admin_port:
        proxy.wait_ready(timeout)
    return proxy


def run_agw(*args: str, env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `python -m agw ARGS` to completion (e.g. `agw check -f FILE`); stdout and stderr as text."""
    return subprocess.run([sys.executable, "-m", "agw", *args], env=agw_env(env), cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def stop_all(proxies: Iterable[AgwProxy]) -> None:
    for proxy in proxies:
        if proxy.running:
            proxy.stop()


__all__ = ["AgwProxy", "agw_env", "bind_ports", "config_text", "run_agw", "start_agw_proxy", "stop_all"]
