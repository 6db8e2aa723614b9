"""Real processes for end-to-end tests: start, wait until they listen, capture their output, stop them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .ports import wait_for_port


class ProcessStartError(RuntimeError):
    """The process died or never listened; the message carries its output."""


class ExternalProcess:
    """One child process, with stdout and stderr together in a log file.

    The child runs in its own session (process group), so a final SIGKILL also reaches any workers it forked,
    and a Ctrl-C in the test runner does not hit it before the fixture's own shutdown.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        ports_to_wait: Iterable[int] = (),
        host: str = "127.0.0.1",
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.argv = [str(arg) for arg in argv]
        self.name = name or Path(self.argv[0]).name
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.ports_to_wait = list(ports_to_wait)
        self.host = host
        if log_path is None:
            fd, log_path = tempfile.mkstemp(prefix=f"agw-test-{self.name}-", suffix=".log")
            os.close(fd)
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file = None

    # --- lifecycle ---------------------------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> ExternalProcess:
        """Start the process and wait until every port in `ports_to_wait` accepts connections."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self.wait_for_ports(self.ports_to_wait, timeout)
        except (TimeoutError, RuntimeError) as err:
            code = self.stop()
            raise ProcessStartError(
                f"{self.name} did not start ({err}); exit code {code}; command {self.argv}\n"
                f"--- output ---\n{self.output()}"
            ) from None
        return self

    def wait_for_ports(self, ports: Iterable[int], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        for port in ports:
            wait_for_port(self.host, port, max(0.1, deadline - time.monotonic()), alive=lambda: self.running)

    def wait_for_output(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Wait until the output matches the regex `pattern`; returns the match."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = compiled.search(self.output())
            if match:
                return match
            if not self.running:
                raise ProcessStartError(f"{self.name} exited without printing {pattern!r}\n{self.output()}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.name} did not print {pattern!r} within {timeout}s\n{self.output()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        """Send `sig` (SIGTERM), wait up to `timeout`, then SIGKILL the process group. Returns the exit code
        (negative for death by signal, as subprocess reports it); None if it was never started."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
                self.proc.wait(5)
        # Children that outlived their parent (workers) must not keep the ports.
        self._kill_group()
        self._close_log()
        return self.proc.returncode

    def send_signal(self, sig: int) -> None:
        self._signal(sig)

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for the process to exit by itself; returns its exit code."""
        assert self.proc is not None, "not started"
        code = self.proc.wait(timeout)
        self._close_log()
        return code

    # --- state -------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far (across restarts)."""
        if self._log_file is not None:
            self._log_file.flush()
        try:
            return self.log_path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    # --- internals ---------------------------------------------------------------------------------------
    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def _kill_group(self) -> None:
        if self.proc is None:
            return
        try:
            # The group id is our child's pid (start_new_session); it holds only what that child started.
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> ExternalProcess:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ExternalProcess {self.name} pid={self.pid} running={self.running}>"
