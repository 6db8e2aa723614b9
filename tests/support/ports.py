"""Free ports and waiting for listeners, on 127.0.0.1."""

from __future__ import annotations

import socket
import time


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS just reported free (bind to port 0). Another process may take it before use; the
    fixtures start their servers right away to keep that window small."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 20.0, *, alive=None) -> None:
    """Wait until host:port accepts a TCP connection.

    `alive`, when given, is called between attempts; if it returns False the wait stops early (the process
    that should listen has died), raising RuntimeError. Raises TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        if port_is_open(host, port):
            return
        if alive is not None and not alive():
            raise RuntimeError(f"process exited before {host}:{port} opened")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{host}:{port} did not open within {timeout}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


def wait_for_port_closed(host: str, port: int, timeout: float = 10.0) -> None:
    """Wait until host:port refuses connections (a stopped server has really let go of it)."""
    deadline = time.monotonic() + timeout
    while port_is_open(host, port, timeout=0.2):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{host}:{port} still accepts connections after {timeout}s")
        time.sleep(0.05)
