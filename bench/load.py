"""Load benchmark: agw against the proxies a user would otherwise pick, in one run, same layout for all.

    python bench/load.py [--duration 8] [--warmup 2] [--systems ...] [--scenarios ...] [--quick]
                         [--memory] [--out bench/last-run.md]

On 127.0.0.1: an nginx upstream (1 worker, ~100 bytes of JSON at /headers) and the load generator
(`wrk -t1 -c64 --latency`) share core 0; each system under test runs alone on core 1 (agw --workers 2 runs
unpinned, on the whole machine). Every system gets a fresh process per scenario. Before a JWT system's
figures are taken it must answer 200 to a valid token and 401 to a tampered, an expired and a missing one.
Ratios are within this run only: the machines are shared and absolute figures move 5-15% between runs.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import datetime
import http.client
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mint_tokens  # noqa: E402  (bench/ is not a package)
from mint_tokens import AUDIENCE, ISSUER  # noqa: E402

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
TOKENS_LUA = os.path.join(BENCH_DIR, "lua", "tokens.lua")
LOADGEN_CORE, SUT_CORE = "0", "1"
CONNECTIONS = 64
UPSTREAM_BODY = '{"headers": {"Accept": "*/*", "Host": "127.0.0.1", "User-Agent": "wrk"}, "origin": "127.0.0.1"}'
# A generous guess of the fastest new-token rate, to size the token pool: the run flags any wrap anyway.
MAX_EXPECTED_RPS = 40_000


# --- scenarios and systems ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    alg: Optional[str]          # None: no JWT involved
    token: str                  # "none" | "same" | "new"


SCENARIOS = {s.key: s for s in [
    Scenario("plain", "plain proxy, no JWT", None, "none"),
    Scenario("same-rs256", "RS256, same token", "RS256", "same"),
    Scenario("new-rs256", "RS256, new token each request", "RS256", "new"),
    Scenario("no-token", "no token (401)", "RS256", "none"),
    Scenario("same-es256", "ES256, same token", "ES256", "same"),
    Scenario("same-eddsa", "EdDSA, same token", "EdDSA", "same"),
    Scenario("new-es256", "ES256, new token each request", "ES256", "new"),
    Scenario("new-eddsa", "EdDSA, new token each request", "EdDSA", "new"),
]}
DEFAULT_SCENARIOS = ["plain", "same-rs256", "new-rs256", "no-token", "same-es256", "same-eddsa"]


@dataclass(frozen=True)
class System:
    key: str
    label: str
    jwt: bool                   # verifies tokens (runs the JWT scenarios)
    unsupported_algs: tuple = ()
    plain_label: str = ""       # its name when it runs as a plain proxy, if that differs

    def label_for(self, scenario: "Scenario") -> str:
        return self.plain_label if scenario.alg is None and self.plain_label else self.label


SYSTEMS = {s.key: s for s in [
    System("direct", "nginx upstream direct", jwt=False),
    System("nginx", "nginx proxy (keepalive 128)", jwt=False),
    System("haproxy", "HAProxy 2.6 jwt_verify", jwt=True, unsupported_algs=("EdDSA",), plain_label="HAProxy 2.6"),
    System("aiohttp", "aiohttp + PyJWT", jwt=True, plain_label="aiohttp (no verification)"),
    System("agw1", "agw 1 worker", jwt=True),
    System("agw2", "agw --workers 2 (unpinned)", jwt=True),
]}
DEFAULT_SYSTEMS = list(SYSTEMS)
REFERENCE_SYSTEM = "agw1"


@dataclass
class Result:
    system: System
    scenario: Scenario
    rps: Optional[float] = None
    p50_ms: Optional[float] = None
    p99_ms: Optional[float] = None
    requests: int = 0
    non_2xx: int = 0
    socket_errors: int = 0
    token_wraps: int = 0
    note: str = ""


# --- processes ------------------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    """Own process group (so the whole tree can be killed by its id) and SIGKILL if the harness dies."""
    os.setsid()
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Processes:
    """Every process this run started; stop() ends each one's process group, TERM then KILL."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.running: list[tuple[subprocess.Popen, str]] = []

    def start(self, name: str, argv: list[str], *, core: Optional[str] = None, cwd: Optional[str] = None,
              env: Optional[dict] = None) -> subprocess.Popen:
        if core is not None:
            argv = ["taskset", "-c", core] + argv
        log_path = os.path.join(self.workdir, f"{name}.log")
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=cwd, env=env, preexec_fn=_child_setup)
        self.running.append((proc, log_path))
        return proc

    def log_tail(self, proc: subprocess.Popen, lines: int = 15) -> str:
        for p, path in self.running:
            if p is proc:
                with contextlib.suppress(OSError), open(path, "rb") as f:
                    return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        return ""

    def stop(self, proc: subprocess.Popen, timeout: float = 5.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):   # workers left behind by a supervisor, if any
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        self.running = [(p, path) for p, path in self.running if p is not proc]

    def stop_all(self) -> None:
        for proc, _ in list(reversed(self.running)):
            self.stop(proc, timeout=3.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, headers: Optional[dict] = None, timeout: float = 5.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/headers", headers=headers or {})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def wait_ready(procs: Processes, proc: subprocess.Popen, port: int, name: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{procs.log_tail(proc)}")
        try:
            http_get(port, timeout=1.0)
            return
        except (OSError, http.client.HTTPException):
            time.sleep(0.05)
    raise RuntimeError(f"{name} not answering on port {port} after {timeout:.0f} s:\n{procs.log_tail(proc)}")


# --- configs of the systems -----------------------------------------------------------------------------------

def nginx_conf(prefix: str, port: int, upstream_port: Optional[int]) -> str:
    temp = "\n".join(f"  {kind}_temp_path {prefix}/tmp/{kind};" for kind in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    if upstream_port is None:
        body = UPSTREAM_BODY.replace("'", "\\'")
        server = (f"    location / {{\n      default_type application/json;\n      return 200 '{body}';\n    }}")
        upstream = ""
    else:
        upstream = (f"  upstream up {{\n    server 127.0.0.1:{upstream_port};\n    keepalive 128;\n"
                    f"    keepalive_requests 1000000;\n  }}\n")
        server = ("    location / {\n      proxy_pass http://up;\n      proxy_http_version 1.1;\n"
                  "      proxy_set_header Connection \"\";\n    }")
    return f"""worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{temp}
  keepalive_requests 1000000;
  keepalive_timeout 75s;
{upstream}  server {{
    listen 127.0.0.1:{port} backlog=1024;
{server}
  }}
}}
"""


def haproxy_cfg(port: int, upstream_port: int, alg: Optional[str], pem_path: Optional[str]) -> str:
    jwt_rules = ""
    if alg is not None:
        jwt_rules = f"""  http-request deny deny_status 401 content-type text/plain string "authentication failure: no bearer token found" unless {{ req.hdr(authorization) -m found }}
  http-request set-var(txn.alg) http_auth_bearer,jwt_header_query('$.alg')
  http-request set-var(txn.iss) http_auth_bearer,jwt_payload_query('$.iss')
  http-request set-var(txn.aud) http_auth_bearer,jwt_payload_query('$.aud')
  http-request set-var(txn.exp) http_auth_bearer,jwt_payload_query('$.exp','int')
  http-request deny deny_status 401 unless {{ var(txn.alg) -m str {alg} }}
  http-request deny deny_status 401 unless {{ var(txn.iss) -m str "{ISSUER}" }}
  http-request deny deny_status 401 unless {{ var(txn.aud) -m str "{AUDIENCE}" }}
  http-request set-var(txn.now) date()
  http-request deny deny_status 401 if {{ var(txn.exp),sub(txn.now) -m int lt 0 }}
  http-request deny deny_status 401 unless {{ http_auth_bearer,jwt_verify(txn.alg,"{pem_path}") -m int 1 }}
"""
    return f"""global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend f
  bind 127.0.0.1:{port}
{jwt_rules}  default_backend b
backend b
  http-reuse always
  server s1 127.0.0.1:{upstream_port}
"""


def agw_yaml(port: int, upstream_port: int, jwks_path: Optional[str]) -> str:
    """agw's native config (written as JSON, which is YAML): one route to the upstream, jwtAuth if jwks_path."""
    route: dict = {"name": "bench", "backends": [{"host": f"127.0.0.1:{upstream_port}"}]}
    if jwks_path is not None:
        route["policies"] = {"jwtAuth": {"mode": "strict", "issuer": ISSUER, "audiences": [AUDIENCE],
                                         "jwks": {"file": jwks_path}}}
    config = {"binds": [{"port": port, "address": "127.0.0.1", "listeners": [{"routes": [route]}]}]}
    return json.dumps(config, indent=2) + "\n"


# --- the run --------------------------------------------------------------------------------------------------

@dataclass
class Material:
    """Keys, key files and tokens: the same bytes for every system in the run."""
    keys: mint_tokens.BenchKeys
    jwks_path: str
    pem_paths: dict
    same: dict                  # alg -> one valid token
    expired: dict               # alg -> an expired token
    pools: dict = field(default_factory=dict)   # alg -> path of a file of distinct tokens


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: str, log: Callable[[str], None] = print) -> None:
        self.args = args
        self.workdir = workdir
        self.log = log
        self.procs = Processes(workdir)
        self.upstream_port = 0
        self.material: Optional[Material] = None
        self.checks: list[str] = []
        self.memory: Optional[tuple[float, float]] = None   # (idle, loaded) peak RSS in MB

    # material ---------------------------------------------------------------------------------------------
    def prepare(self, scenarios: list[Scenario]) -> None:
        keys = mint_tokens.load_or_create_keys()
        jwks_path = os.path.join(self.workdir, "jwks.json")
        with open(jwks_path, "w") as f:
            json.dump(keys.jwks(), f)
        pem_paths = {}
        for alg in ("RS256", "ES256", "EdDSA"):
            pem_paths[alg] = os.path.join(self.workdir, f"public-{alg}.pem")
            with open(pem_paths[alg], "wb") as f:
                f.write(keys.public_pem(alg))
        # Index 10**9 keeps the repeated token out of the pools (whose indexes count from 0).
        same = {alg: mint_tokens.mint_one(keys, alg, 10 ** 9) for alg in ("RS256", "ES256", "EdDSA")}
        expired = {alg: mint_tokens.mint_one(keys, alg, 10 ** 9 + 1, now=int(time.time()) - 7200, lifetime=3600)
                   for alg in ("RS256", "ES256", "EdDSA")}
        self.material = Material(keys, jwks_path, pem_paths, same, expired)
        for scenario in scenarios:
            if scenario.token == "new" and scenario.alg not in self.material.pools:
                self.material.pools[scenario.alg] = mint_tokens.token_file(scenario.alg, self.args.tokens,
                                                                           log=self.log)

    # processes --------------------------------------------------------------------------------------------
    def start_upstream(self) -> None:
        self.upstream_port = free_port()
        self._start_nginx("upstream", self.upstream_port, None, LOADGEN_CORE)

    def _start_nginx(self, name: str, port: int, upstream_port: Optional[int], core: str) -> subprocess.Popen:
        prefix = os.path.join(self.workdir, f"nginx-{name}")
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(prefix, "tmp", kind), exist_ok=True)
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(nginx_conf(prefix, port, upstream_port))
        proc = self.procs.start(f"nginx-{name}", ["nginx", "-p", prefix, "-c", conf, "-e",
                                                  os.path.join(prefix, "error.log")], core=core)
        wait_ready(self.procs, proc, port, f"nginx {name}")
        return proc

    def start_system(self, system: System, scenario: Scenario, port: int) -> Optional[subprocess.Popen]:
        m = self.material
        verify = scenario.alg is not None
        if system.key == "direct":
            return None
        if system.key == "nginx":
            return self._start_nginx("proxy", port, self.upstream_port, SUT_CORE)
        if system.key == "haproxy":
            cfg = os.path.join(self.workdir, f"haproxy-{scenario.key}.cfg")
            with open(cfg, "w") as f:
                f.write(haproxy_cfg(port, self.upstream_port, scenario.alg if verify else None,
                                    m.pem_paths.get(scenario.alg)))
            proc = self.procs.start(f"haproxy-{scenario.key}", ["haproxy", "-db", "-f", cfg], core=SUT_CORE)
        elif system.key == "aiohttp":
            argv = [sys.executable, os.path.join(BENCH_DIR, "aiohttp_proxy.py"), "--port", str(port),
                    "--upstream", f"127.0.0.1:{self.upstream_port}", "--issuer", ISSUER, "--audience", AUDIENCE]
            argv += ["--jwks", m.jwks_path] if verify else ["--no-verify"]
            proc = self.procs.start(f"aiohttp-{scenario.key}", argv, core=SUT_CORE)
        else:
            cfg = os.path.join(self.workdir, f"agw-{system.key}-{scenario.key}.yaml")
            with open(cfg, "w") as f:
                f.write(agw_yaml(port, self.upstream_port, m.jwks_path if verify else None))
            argv = [sys.executable, "-m", "agw", "run", "-f", cfg, "--access-log", "off", "--admin", "off",
                    "--log-level", "warning"]
            core = SUT_CORE
            if system.key == "agw2":
                argv += ["--workers", "2"]
                core = None
            proc = self.procs.start(f"{system.key}-{scenario.key}", argv, core=core, cwd=REPO_DIR)
        wait_ready(self.procs, proc, port, system.label)
        return proc

    # correctness before figures ---------------------------------------------------------------------------
    def check(self, system: System, scenario: Scenario, port: int) -> Optional[str]:
        """None when the system behaves; otherwise what went wrong."""
        m = self.material
        if scenario.alg is None:
            status = http_get(port)
            return None if status == 200 else f"plain GET answered {status}, not 200"
        token = m.same[scenario.alg]
        cases = [("valid", token, 200), ("tampered", mint_tokens.tamper(token), 401),
                 ("expired", m.expired[scenario.alg], 401), ("missing", None, 401)]
        seen = []
        for name, tok, want in cases:
            status = http_get(port, {"Authorization": f"Bearer {tok}"} if tok else {})
            seen.append(f"{name} {status}")
            if status != want:
                return f"{name} token answered {status}, not {want}"
        line = f"{system.label} [{scenario.label}]: " + ", ".join(seen)
        if line not in self.checks:
            self.checks.append(line)
        return None

    # load -------------------------------------------------------------------------------------------------
    def wrk(self, port: int, scenario: Scenario, duration: float, *, warmup: bool = False) -> str:
        m = self.material
        argv = ["taskset", "-c", LOADGEN_CORE, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(duration))}s",
                "--latency", "--timeout", "5s"]
        url = f"http://127.0.0.1:{port}/headers"
        if scenario.token == "same" or (scenario.token == "new" and warmup):
            # A warm-up must not spend pool tokens: the measured run would then meet them again.
            argv += ["-H", f"Authorization: Bearer {m.same[scenario.alg]}", url]
        elif scenario.token == "new":
            argv += ["-s", TOKENS_LUA, url, "--", m.pools[scenario.alg]]
        else:
            argv += [url]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, cwd=BENCH_DIR)
        if done.returncode != 0:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def measure(self, system: System, scenario: Scenario) -> Result:
        result = Result(system, scenario)
        if scenario.alg in system.unsupported_algs:
            result.note = "n/a (unsupported)"
            return result
        port = self.upstream_port if system.key == "direct" else free_port()
        proc = None
        try:
            proc = self.start_system(system, scenario, port)
            problem = self.check(system, scenario, port)
            if problem is not None:
                result.note = f"CHECK FAILED: {problem}"
                return result
            if self.args.warmup > 0:
                self.wrk(port, scenario, self.args.warmup, warmup=True)
            parse_wrk(self.wrk(port, scenario, self.args.duration), result)
            expected_status_ok = scenario.alg is not None and scenario.token == "none"
            if expected_status_ok:
                if result.non_2xx != result.requests:
                    result.note = f"{result.requests - result.non_2xx} answers were not 401"
            elif result.non_2xx:
                result.note = f"{result.non_2xx} non-2xx answers"
            if result.socket_errors:
                result.note = (result.note + "; " if result.note else "") + f"{result.socket_errors} socket errors"
            if result.token_wraps:
                result.note = (result.note + "; " if result.note else "") + (
                    f"token file wrapped {result.token_wraps}x: raise --tokens above {result.requests}")
        except (RuntimeError, OSError, subprocess.TimeoutExpired, http.client.HTTPException) as err:
            result.note = "ERROR: " + (" | ".join(str(err).splitlines()[:2]) or type(err).__name__)
            self.log(f"  {system.label} / {scenario.key}: {err}")
        finally:
            if proc is not None:
                self.procs.stop(proc)
        return result


# --- wrk output -----------------------------------------------------------------------------------------------

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def latency_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str, result: Result) -> Result:
    """Fill req/s, p50, p99, request/error counts from `wrk --latency` output."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if not rps:
        raise RuntimeError(f"no Requests/sec in wrk output:\n{output}")
    result.rps = float(rps.group(1))
    for pct, attr in (("50", "p50_ms"), ("99", "p99_ms")):
        match = re.search(rf"^\s+{pct}%\s+(\S+)", output, re.M)
        if match:
            setattr(result, attr, latency_ms(match.group(1)))
    total = re.search(r"^\s+(\d+) requests in", output, re.M)
    result.requests = int(total.group(1)) if total else 0
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    result.non_2xx = int(non_2xx.group(1)) if non_2xx else 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    result.socket_errors = sum(int(g) for g in errors.groups()) if errors else 0
    wraps = re.search(r"^token_file_wraps: (\d+)", output, re.M)
    result.token_wraps = int(wraps.group(1)) if wraps else 0
    return result


# --- memory ---------------------------------------------------------------------------------------------------

def proc_memory_mb(pid: int) -> dict:
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                values[key] = int(rest.split()[0]) / 1024.0
    return values


async def hold_connections(port: int, tokens: list[str], timeout: float = 60.0) -> list:
    """Open len(tokens) keep-alive connections, each sending one request and reading its whole answer."""
    async def one(token: str):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /headers HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
                     .encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        if length:
            await reader.readexactly(int(length.group(1)))
        return status, writer

    opened = []
    batch = 100   # keeps the listen backlog from overflowing while connections arrive
    async with asyncio.timeout(timeout):
        for start in range(0, len(tokens), batch):
            opened += await asyncio.gather(*(one(t) for t in tokens[start:start + batch]))
    return opened


def measure_memory(bench: Bench, connections: int = 1000) -> list[str]:
    m = bench.material
    port = free_port()
    system, scenario = SYSTEMS["agw1"], SCENARIOS["same-rs256"]
    proc = bench.start_system(system, scenario, port)
    lines = []
    try:
        if http_get(port, {"Authorization": f"Bearer {m.same['RS256']}"}) != 200:
            raise RuntimeError("agw did not accept the valid token")
        idle = proc_memory_mb(proc.pid)
        lines.append(f"agw 1 worker, idle after start and one request: peak RSS (VmHWM) {idle['VmHWM']:.1f} MB, "
                     f"RSS {idle['VmRSS']:.1f} MB")
        tokens = [mint_tokens.mint_one(m.keys, "RS256", 2 * 10 ** 9 + i) for i in range(connections)]

        async def under_load() -> dict:
            opened = await hold_connections(port, tokens)
            statuses = {s for s, _ in opened}
            await asyncio.sleep(0.5)
            mem = proc_memory_mb(proc.pid)
            mem["statuses"] = statuses
            for _, writer in opened:
                writer.close()
            return mem

        loaded = asyncio.run(under_load())
        lines.append(f"agw 1 worker, {connections} concurrent keep-alive connections (one request each, "
                     f"distinct RS256 tokens, answers {sorted(loaded['statuses'])}): peak RSS (VmHWM) "
                     f"{loaded['VmHWM']:.1f} MB, RSS {loaded['VmRSS']:.1f} MB")
        bench.memory = (idle["VmHWM"], loaded["VmHWM"])
    finally:
        bench.procs.stop(proc)
    return lines


# --- report ---------------------------------------------------------------------------------------------------

def fmt_rps(rps: Optional[float]) -> str:
    if rps is None:
        return "-"
    return f"{rps / 1000:.1f}k" if rps >= 1000 else f"{rps:.0f}"


def fmt_ms(ms: Optional[float]) -> str:
    return "-" if ms is None else f"{ms:.2f} ms"


def reference_rps(results: list[Result], scenario_key: str) -> Optional[float]:
    for r in results:
        if r.system.key == REFERENCE_SYSTEM and r.scenario.key == scenario_key:
            return r.rps
    return None


def table_rows(results: list[Result]) -> list[list[str]]:
    rows = []
    for r in results:
        ref = reference_rps(results, r.scenario.key)
        ratio = f"{r.rps / ref:.2f}x" if r.rps and ref else "-"
        if r.rps is None:
            rows.append([r.system.label_for(r.scenario), r.scenario.label, r.note or "-", "", "", "", ""])
        else:
            rows.append([r.system.label_for(r.scenario), r.scenario.label, fmt_rps(r.rps), fmt_ms(r.p50_ms), fmt_ms(r.p99_ms),
                         ratio, r.note])
    return rows


HEADERS = ["system", "scenario", "req/s", "p50", "p99", "req/s vs agw 1 worker", "note"]


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(HEADERS)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(HEADERS), line(["-" * w for w in widths])] + [line(r) for r in rows])


def markdown_table(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def targets(results: list[Result], memory: Optional[tuple]) -> list[str]:
    """The issue's targets, evaluated on this run's figures where both sides were measured."""
    def get(system: str, scenario: str) -> Optional[Result]:
        for r in results:
            if r.system.key == system and r.scenario.key == scenario and r.rps:
                return r
        return None

    lines = []

    def ratio(label: str, a: Optional[Result], b: Optional[Result], want: float) -> None:
        if a and b:
            value = a.rps / b.rps
            lines.append(f"{'PASS' if value >= want else 'MISS'}  {label}: {value:.2f}x (target >= {want}x)")

    agw_same, agw_new = get("agw1", "same-rs256"), get("agw1", "new-rs256")
    ratio("agw 1 worker / HAProxy jwt_verify, RS256 same token", agw_same, get("haproxy", "same-rs256"), 2.0)
    hap = get("haproxy", "same-rs256")
    if agw_same and hap and agw_same.p99_ms is not None and hap.p99_ms is not None:
        ok = agw_same.p99_ms <= hap.p99_ms
        lines.append(f"{'PASS' if ok else 'MISS'}  agw 1 worker p99 {agw_same.p99_ms:.2f} ms vs HAProxy "
                     f"{hap.p99_ms:.2f} ms, RS256 same token (target: no worse)")
    ratio("agw 1 worker (RS256 same token) / nginx plain proxy", agw_same, get("nginx", "plain"), 0.65)
    ratio("agw 1 worker / HAProxy jwt_verify, RS256 new token each request", agw_new, get("haproxy", "new-rs256"),
          1.0)
    ratio("agw 1 worker / aiohttp + PyJWT, RS256 same token", agw_same, get("aiohttp", "same-rs256"), 6.0)
    ratio("agw 1 worker / aiohttp + PyJWT, RS256 new token each request", agw_new, get("aiohttp", "new-rs256"), 6.0)
    ratio("agw --workers 2 / agw 1 worker, RS256 same token", get("agw2", "same-rs256"), agw_same, 1.8)
    if memory:
        idle, loaded = memory
        lines.append(f"{'PASS' if idle <= 40 else 'MISS'}  agw idle peak RSS {idle:.1f} MB (target <= 40 MB)")
        lines.append(f"{'PASS' if loaded <= 80 else 'MISS'}  agw peak RSS with 1,000 keep-alive connections "
                     f"{loaded:.1f} MB (target <= 80 MB)")
    return lines


def machine_description() -> str:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    def version(argv: list[str]) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (done.stdout + done.stderr).strip().splitlines()[0]
        return "?"

    commit = version(["git", "-C", REPO_DIR, "rev-parse", "--short", "HEAD"])
    return (f"{platform.node()}, {os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python "
            f"{platform.python_version()}; {version(['nginx', '-v'])}; {version(['haproxy', '-v'])}; "
            f"{version(['wrk', '--version'])}; agw commit {commit}")


# --- main -----------------------------------------------------------------------------------------------------

def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of measured load per case (8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up load per case (2; 0: none)")
    parser.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=DEFAULT_SYSTEMS, metavar="SYSTEM",
                        help=f"any of {', '.join(SYSTEMS)} (default: all)")
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=DEFAULT_SCENARIOS,
                        metavar="SCENARIO", help=f"any of {', '.join(SCENARIOS)} (default: "
                                                 f"{' '.join(DEFAULT_SCENARIOS)})")
    parser.add_argument("--repeat", type=int, default=1, help="rounds over every case; the table shows the "
                                                               "median round by req/s (1)")
    parser.add_argument("--quick", action="store_true", help="2 s per case, 1 s warm-up: checks the harness")
    parser.add_argument("--tokens", type=int, default=None,
                        help="distinct tokens for the new-token scenarios (default: max(200000, 40000 x duration))")
    parser.add_argument("--memory", action="store_true", help="also measure agw's peak RSS idle and with "
                                                              "1,000 keep-alive connections")
    parser.add_argument("--memory-only", action="store_true", help="only the memory measurement")
    parser.add_argument("--out", help="also write the results as markdown to this file")
    parser.add_argument("--keep-workdir", action="store_true", help="keep configs and logs (path printed)")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 2.0, 1.0
    if args.tokens is None:
        args.tokens = max(200_000, int(math.ceil(MAX_EXPECTED_RPS * args.duration / 10_000)) * 10_000)
    return args


def run(args: argparse.Namespace) -> int:
    missing = [tool for tool in ("nginx", "haproxy", "wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        print(f"missing tools: {', '.join(missing)} (apt-get install nginx haproxy wrk util-linux)", file=sys.stderr)
        return 2
    systems = [] if args.memory_only else [SYSTEMS[k] for k in args.systems]
    scenarios = [SCENARIOS[k] for k in args.scenarios]
    # Scenario-major: the systems compared in one scenario are measured minutes apart at most, so a change in
    # background load on a shared machine shifts them together; the table is printed system by system.
    cases = [(sy, sc) for sc in scenarios for sy in systems if sy.jwt or sc.alg is None]
    workdir = tempfile.mkdtemp(prefix="agw-bench-")
    bench = Bench(args, workdir, log=lambda m: print(m, flush=True))
    runs: dict[tuple[str, str], list[Result]] = {}
    memory_lines: list[str] = []
    started = datetime.datetime.now().astimezone()
    load_before = os.getloadavg()
    if load_before[0] > 0.7:
        print(f"note: load average {load_before[0]:.2f} before the run: other work shares these cores, "
              f"figures will be low and noisy (ratios suffer less)", flush=True)
    try:
        bench.prepare([sc for _, sc in cases])
        bench.start_upstream()
        print(f"upstream nginx on :{bench.upstream_port} (core {LOADGEN_CORE}); wrk -t1 -c{CONNECTIONS} "
              f"-d{args.duration:g}s --latency (core {LOADGEN_CORE}); systems on core {SUT_CORE}; "
              f"{len(cases)} cases x {args.repeat}, about "
              f"{args.repeat * len(cases) * (args.duration + args.warmup + 1.5) / 60:.1f} min", flush=True)
        for round_no in range(1, args.repeat + 1):
            if args.repeat > 1:
                print(f"round {round_no}/{args.repeat}", flush=True)
            for system, scenario in cases:
                result = bench.measure(system, scenario)
                runs.setdefault((system.key, scenario.key), []).append(result)
                figures = (f"{fmt_rps(result.rps)} req/s, p50 {fmt_ms(result.p50_ms)}, "
                           f"p99 {fmt_ms(result.p99_ms)}" if result.rps else "")
                print(f"  {system.label_for(scenario):30} {scenario.label:32} {figures} {result.note}".rstrip(),
                      flush=True)
        if args.memory or args.memory_only:
            try:
                memory_lines = measure_memory(bench)
            except (RuntimeError, OSError, TimeoutError, http.client.HTTPException) as err:
                memory_lines = [f"memory measurement failed: {err}"]
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process this run started", file=sys.stderr)
        return 130
    finally:
        bench.procs.stop_all()
        if args.keep_workdir:
            print(f"configs and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    load_after = os.getloadavg()
    results = [median_result(runs[(sy.key, sc.key)]) for sy in systems for sc in scenarios
               if (sy.key, sc.key) in runs]
    rows = table_rows(results)
    goal_lines = targets(results, bench.memory)
    print()
    if bench.checks:
        print("Checked before load (valid 200; tampered, expired, missing 401):")
        for line in bench.checks:
            print(f"  {line}")
        print()
    if rows:
        print(text_table(rows))
        print()
    for line in memory_lines + goal_lines:
        print(line)
    if args.out:
        write_markdown(args, started, rows, bench, memory_lines, goal_lines, (load_before, load_after))
        print(f"\nwritten to {args.out}")
    return 0


def write_markdown(args: argparse.Namespace, started: datetime.datetime, rows: list[list[str]], bench: Bench,
                   memory_lines: list[str], goal_lines: list[str], loads: tuple) -> None:
    checks = bench.checks
    pools = ", ".join(f"{alg} {count_lines(path)}" for alg, path in sorted(bench.material.pools.items())) \
        if bench.material and bench.material.pools else "none"
    repeat = f"; median of {args.repeat} rounds by req/s" if args.repeat > 1 else ""
    parts = [f"## Load benchmark, {started:%Y-%m-%d %H:%M %Z}", "",
             f"Machine: {machine_description()}", "",
             f"Layout: nginx upstream + `wrk -t1 -c{CONNECTIONS} -d{args.duration:g}s --latency` on core "
             f"{LOADGEN_CORE}, system under test on core {SUT_CORE} (agw --workers 2 unpinned); "
             f"{args.warmup:g} s warm-up per case{repeat}; distinct tokens in the new-token pools: {pools} "
             f"(tokens ~1.3 KB, Keycloak-like claims). Load average before/after: {loads[0][0]:.2f} / "
             f"{loads[1][0]:.2f}. Ratios hold within this run only.", ""]
    if rows:
        parts += [markdown_table(rows), ""]
    if checks:
        parts += ["Checked before each JWT system's load (valid 200; tampered, expired, missing 401):", ""]
        parts += [f"- {c}" for c in checks] + [""]
    if memory_lines:
        parts += ["Memory:", ""] + [f"- {m}" for m in memory_lines] + [""]
    if goal_lines:
        parts += ["Targets (issue 5) on this run:", ""] + [f"- {g}" for g in goal_lines] + [""]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(parts))


def count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def median_result(results: list[Result]) -> Result:
    """The run with the median req/s (its own p50/p99 go with it); a failed run wins only if all failed."""
    measured = sorted((r for r in results if r.rps), key=lambda r: r.rps)
    return measured[(len(measured) - 1) // 2] if measured else results[-1]


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)

    def terminate(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, terminate)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
