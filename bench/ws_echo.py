"""WebSocket echo through agw and through nginx (issue 15): messages per second with 64 connections of small
messages, MB/s with 1 MiB messages. One run, figures on stdout; never an assertion.

    python bench/ws_echo.py [--seconds 5] [--systems agw,nginx]

On 127.0.0.1: the backend answers the RFC 6455 handshake (a real Sec-WebSocket-Accept), then echoes bytes;
the client (uvloop, raw sockets, so it costs little next to the proxy) sends masked frames and counts the
echoed bytes: 64 connections each with one 16-byte message in flight, then 4 connections each with one
1 MiB message in flight. The proxy runs on core 0 (taskset), backend and client on core 1. nginx: one
worker, `proxy_http_version 1.1` with the Upgrade and Connection headers set, as its docs show.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ports import free_port, wait_port  # noqa: E402

REPO = os.path.dirname(HERE)
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUT_CORE, LOAD_CORE = "0", "1"




# --- backend (run as `python ws_echo.py --backend PORT`) ---------------------------------------------------

async def backend(port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()   # a port probe
            return
        key = b""
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-key:"):
                key = line.split(b":", 1)[1].strip()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        while True:
            data = await reader.read(262144)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


# --- client ---------------------------------------------------------------------------------------------------

def frame(payload: bytes) -> bytes:
    """A masked binary frame (mask 0: the payload is sent as is, still a valid masked frame)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x82, 0x80 | n))
    elif n < 65536:
        head = bytes((0x82, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x82, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


async def open_ws(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
    key = base64.b64encode(os.urandom(16))
    writer.write(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                 b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"no switch: {head[:80]!r}")
    return reader, writer


async def echo_loop(port: int, size: int, seconds: float) -> int:
    """One connection, one message in flight: returns the messages echoed in `seconds`."""
    reader, writer = await open_ws(port)
    msg = frame(b"m" * size)
    n = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        writer.write(msg)
        await reader.readexactly(len(msg))
        n += 1
    writer.close()
    return n


async def run_client(port: int, conns: int, size: int, seconds: float) -> tuple[float, float]:
    for _ in range(2):   # warm up
        await echo_loop(port, size, 0.2)
    started = time.monotonic()
    counts = await asyncio.gather(*(echo_loop(port, size, seconds) for _ in range(conns)))
    elapsed = time.monotonic() - started
    msgs = sum(counts)
    return msgs / elapsed, msgs * size / elapsed / 1e6


# --- systems --------------------------------------------------------------------------------------------------

def nginx_conf(prefix: str, port: int, upstream: int) -> str:
    temp = "\n".join(f"  {k}_temp_path {prefix}/tmp/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                     "scgi"))
    return f"""worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{temp}
  server {{
    listen 127.0.0.1:{port} backlog=1024;
    location / {{
      proxy_pass http://127.0.0.1:{upstream};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 3600s;
    }}
  }}
}}
"""


def start_system(name: str, workdir: str, port: int, upstream: int) -> subprocess.Popen:
    if name == "nginx":
        prefix = os.path.join(workdir, "nginx")
        os.makedirs(os.path.join(prefix, "tmp"), exist_ok=True)
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(nginx_conf(prefix, port, upstream))
        cmd = ["nginx", "-p", prefix, "-c", conf, "-e", os.path.join(prefix, "error.log")]
    else:
        conf = os.path.join(workdir, "agw.yaml")
        with open(conf, "w") as f:
            f.write(f"binds:\n- port: {port}\n  address: 127.0.0.1\n  listeners:\n  - routes:\n"
                    f"    - name: ws\n      backends: [{{host: 127.0.0.1:{upstream}}}]\n")
        cmd = [sys.executable, "-m", "agw", "run", "-f", conf, "--access-log", "off", "--admin", "127.0.0.1:0"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", SUT_CORE] + cmd
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--systems", default="agw,nginx")
    ap.add_argument("--backend", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    if args.backend:
        asyncio.run(backend(args.backend))
        return
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {int(LOAD_CORE)})
    upstream = free_port()
    back = subprocess.Popen([sys.executable, __file__, "--backend", str(upstream)])
    wait_port(upstream)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            print(f"{'system':8} {'64 conns x 16 B: msg/s':>24} {'4 conns x 1 MiB: MB/s':>24}")
            for name in args.systems.split(","):
                port = free_port()
                proc = start_system(name, workdir, port, upstream)
                try:
                    small, _ = asyncio.run(run_client(port, 64, 16, args.seconds))
                    _, big = asyncio.run(run_client(port, 4, 1 << 20, args.seconds))
                finally:
                    proc.terminate()
                    proc.wait(20)
                print(f"{name:8} {small:24.0f} {big:24.1f}", flush=True)
    finally:
        back.terminate()
        back.wait(10)


if __name__ == "__main__":
    main()
