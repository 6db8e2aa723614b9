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
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# bench/ is not a package: its modules import each other by name.
import mint_tokens  # noqa: E402
from cases import (CONNECTIONS, DEFAULT_SCENARIOS, DEFAULT_SYSTEMS, LOADGEN_CORE, SCENARIOS,  # noqa: E402
                   SUT_CORE, SYSTEMS, Result, Scenario, System, applies, median_result, parse_wrk)
from mint_tokens import AUDIENCE, ISSUER  # noqa: E402
from peer_configs import agw_yaml, haproxy_cfg, nginx_conf  # noqa: E402
from ports import free_port  # noqa: E402
from report import fmt_ms, fmt_rps, table_rows, targets, text_table, write_markdown  # noqa: E402

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
TOKENS_LUA = os.path.join(BENCH_DIR, "lua", "tokens.lua")
# A generous guess of the fastest new-token rate, to size the token pool: the run flags any wrap anyway.
MAX_EXPECTED_RPS = 40_000


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


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every live process in a process group (a supervisor and its workers).

    Unlike req/s, CPU per request barely moves when other work shares the machine: it is the figure to trust
    on a busy host. Processes that ended are not counted (none do during a measured run)."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:          # fields after "(comm)": state ppid pgrp ... utime(11) stime(12)
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


OTHER_LOAD_NOTE = 0.1   # cores of CPU used by processes outside the run before a row says so


@dataclass
class CpuSnapshot:
    """Machine-wide CPU time (busy, and stolen by the hypervisor), this process's waited children (wrk) and
    some process groups (upstream, system under test), in seconds."""
    wall: float
    busy: float
    steal: float
    children: float
    groups: list[float]

    @classmethod
    def take(cls, pgids: list[int]) -> "CpuSnapshot":
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]   # user nice system idle iowait irq softirq steal
        hz = os.sysconf("SC_CLK_TCK")
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(time.monotonic(), (ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]) / hz, ticks[7] / hz,
                   usage.ru_utime + usage.ru_stime, [group_cpu_seconds(g) for g in pgids])

    def others_cores(self, before: "CpuSnapshot") -> tuple[float, float]:
        """Cores' worth of CPU used by work outside this run since `before`, and stolen by the hypervisor."""
        wall = self.wall - before.wall
        if wall <= 0:
            return 0.0, 0.0
        ours = (self.children - before.children) + sum(a - b for a, b in zip(self.groups, before.groups))
        return max(0.0, self.busy - before.busy - ours) / wall, (self.steal - before.steal) / wall



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
        self.upstream_pgid = 0
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
        self.upstream_pgid = self._start_nginx("upstream", self.upstream_port, None, LOADGEN_CORE).pid

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
                f.write(agw_yaml(port, self.upstream_port, m.jwks_path if verify else None,
                                 token_cache=not self.args.agw_no_cache))
            argv = [sys.executable, "-m", "agw", "run", "-f", cfg, "--access-log", "off", "--admin", "off",
                    "--log-level", "warning"]
            core = SUT_CORE
            if system.key == "agw2":
                argv += ["--workers", "2"]
                core = None
            cwd, env = REPO_DIR, None
            if system.key == "agwref":
                cwd = self.args.ref_tree   # its own agw package (built in place), not this checkout's
                env = dict(os.environ, PYTHONPATH=cwd)
            proc = self.procs.start(f"{system.key}-{scenario.key}", argv, core=core, cwd=cwd, env=env)
        wait_ready(self.procs, proc, port, system.label)
        return proc

    # correctness before figures ---------------------------------------------------------------------------
    def check(self, system: System, scenario: Scenario, port: int) -> Optional[str]:
        """None when the system behaves; otherwise what went wrong."""
        m = self.material
        if scenario.alg is None or not system.jwt:
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
        notes: list[str] = []
        try:
            proc = self.start_system(system, scenario, port)
            problem = self.check(system, scenario, port)
            if problem is not None:
                result.note = f"CHECK FAILED: {problem}"
                return result
            if self.args.warmup > 0:
                self.wrk(port, scenario, self.args.warmup, warmup=True)
            ours = [self.upstream_pgid] + ([proc.pid] if proc is not None else [])
            before = CpuSnapshot.take(ours)
            parse_wrk(self.wrk(port, scenario, self.args.duration), result)
            after = CpuSnapshot.take(ours)
            if proc is not None and result.requests:
                result.cpu_us_per_request = after.groups[1] - before.groups[1]
                result.cpu_us_per_request *= 1e6 / result.requests
            others, stolen = after.others_cores(before)
            if others > OTHER_LOAD_NOTE or stolen > OTHER_LOAD_NOTE:
                notes.append(f"other work used {others:.2f} cores, hypervisor steal {stolen:.2f}")
            expect_401 = scenario.alg is not None and scenario.token == "none"
            if expect_401:
                if result.non_2xx != result.requests:
                    notes.append(f"{result.requests - result.non_2xx} answers were not 401")
            elif result.non_2xx:
                notes.append(f"{result.non_2xx} non-2xx answers")
            if result.socket_errors:
                notes.append(f"{result.socket_errors} socket errors")
            if result.token_wraps:
                notes.append(f"token file wrapped {result.token_wraps}x: raise --tokens above {result.requests}")
            result.note = "; ".join(notes)
        except (RuntimeError, ValueError, OSError, subprocess.TimeoutExpired, http.client.HTTPException) as err:
            result.note = "ERROR: " + (" | ".join(str(err).splitlines()[:2]) or type(err).__name__)
            self.log(f"  {system.label} / {scenario.key}: {err}")
        finally:
            if proc is not None:
                self.procs.stop(proc)
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
    parser.add_argument("--agw-no-cache", action="store_true",
                        help="run agw with its verified-token cache off (jwtAuth cache.enabled: false)")
    parser.add_argument("--memory", action="store_true", help="also measure agw's peak RSS idle and with "
                                                              "1,000 keep-alive connections")
    parser.add_argument("--memory-only", action="store_true", help="only the memory measurement")
    parser.add_argument("--out", help="also write the results as markdown to this file")
    parser.add_argument("--keep-workdir", action="store_true", help="keep configs and logs (path printed)")
    parser.add_argument("--ref-tree", help="another agw checkout, built in place (python setup.py build_ext "
                        "--inplace): measured as system agwref, beside agw1, in the same run")
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
    if any(sy.key == "agwref" for sy in systems) and not args.ref_tree:
        print("system agwref needs --ref-tree DIR", file=sys.stderr)
        return 2
    scenarios = [SCENARIOS[k] for k in args.scenarios]
    # Scenario-major: the systems compared in one scenario are measured minutes apart at most, so a change in
    # background load on a shared machine shifts them together; the table is printed system by system.
    cases = [(sy, sc) for sc in scenarios for sy in systems if applies(sy, sc)]
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
        pools = {alg: count_lines(path) for alg, path in bench.material.pools.items()} if bench.material else {}
        write_markdown(args, started, rows, bench.checks, pools, memory_lines, goal_lines,
                       (load_before, load_after))
        print(f"\nwritten to {args.out}")
    return 0


def count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)

    def terminate(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, terminate)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
