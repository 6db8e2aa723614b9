"""The real httpbin (PyPI `httpbin`) under gunicorn, as the backend of the end-to-end tests."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

from .ports import free_port
from .process import ExternalProcess


@functools.lru_cache(maxsize=1)
def _gunicorn_has_control_socket_flag() -> bool:
    # gunicorn 24+ opens a control socket at a fixed path by default; two test runs would fight over it.
    done = subprocess.run([sys.executable, "-m", "gunicorn", "--help"], capture_output=True, text=True, timeout=30)
    return "--no-control-socket" in done.stdout


class HttpbinServer:
    """httpbin on 127.0.0.1:port. The gthread worker keeps connections alive, as a real backend would."""

    def __init__(self, log_dir: str | os.PathLike[str] | None = None, *, port: int | None = None,
                 threads: int = 8) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        argv = [sys.executable, "-m", "gunicorn", "--bind", f"{self.host}:{self.port}", "--workers", "1",
                "--worker-class", "gthread", "--threads", str(threads), "--keep-alive", "30",
                "--graceful-timeout", "2", "--log-level", "warning"]
        if _gunicorn_has_control_socket_flag():
            argv.append("--no-control-socket")
        argv.append("httpbin:app")
        log_path = Path(log_dir) / f"httpbin-{self.port}.log" if log_dir is not None else None
        self.process = ExternalProcess(argv, name="httpbin", ports_to_wait=[self.port], log_path=log_path)

    def start(self, timeout: float = 30.0) -> HttpbinServer:
        self.process.start(timeout)
        return self

    def stop(self) -> None:
        self.process.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        """host:port, as agw's `backends: [{host: ...}]` wants it."""
        return f"{self.host}:{self.port}"

    def output(self) -> str:
        return self.process.output()

    def __repr__(self) -> str:
        return f"<HttpbinServer {self.url}>"
