"""TLS at the edge (issue 16): agw against nginx as TLS-terminating proxies, rounds interleaved in one run.

    python bench/tls.py [--duration 5] [--rounds 2] [--systems agw nginx] [--out FILE.md]

Layout as bench/load.py: the upstream (nginx, `return 200`, plain HTTP) and the load generator share core 0, the
system under test runs alone on core 1, one worker; an ECDSA P-256 certificate (made here with trustme). Per
system and round, in this order:
- `keep-alive`: wrk -t1 -c64 over HTTPS, connections kept;
- `new conn`: wrk -t1 -c64 with `Connection: close`: a full TLS handshake (wrk never resumes) per request;
- `s_time full` / `s_time resumed`: `openssl s_time -new` / `-reuse` (one connection at a time, TLS 1.3):
  handshakes per second without and with session resumption; their ratio is the resumption speed-up.
Rounds alternate the systems (A B A B) so that the noise of a shared machine falls on both. Needs nginx, wrk,
openssl and taskset.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cases import LOADGEN_CORE, SUT_CORE  # noqa: E402
from peer_configs import nginx_conf  # noqa: E402
from ports import free_port, wait_port  # noqa: E402

REPO = os.path.dirname(HERE)




def start(argv: list[str], log: str, core: str) -> subprocess.Popen:
    out = open(log, "ab")
    return subprocess.Popen(["taskset", "-c", core, *argv], stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": REPO})


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def nginx_tls_conf(prefix: str, port: int, upstream_port: int, cert: str, key: str) -> str:
    conf = nginx_conf(prefix, port, upstream_port)
    tls = (f"    listen 127.0.0.1:{port} ssl backlog=1024;\n    ssl_certificate {cert};\n"
           f"    ssl_certificate_key {key};\n    ssl_protocols TLSv1.2 TLSv1.3;\n"
           f"    ssl_session_cache shared:SSL:10m;\n    ssl_session_tickets on;\n")
    return conf.replace(f"    listen 127.0.0.1:{port} backlog=1024;\n", tls)


def agw_yaml(port: int, upstream_port: int, cert: str, key: str) -> str:
    return (f"binds:\n- port: {port}\n  address: 127.0.0.1\n  tls: {{cert: {cert}, key: {key}}}\n"
            f"  listeners:\n  - routes:\n    - backends: [{{host: 127.0.0.1:{upstream_port}}}]\n")


def wrk(port: int, duration: int, close: bool) -> tuple[float, int]:
    argv = ["taskset", "-c", LOADGEN_CORE, "wrk", "-t1", "-c64", f"-d{duration}s", "-H", "Host: a.test"]
    if close:
        argv += ["-H", "Connection: close"]
    out = subprocess.run(argv + [f"https://127.0.0.1:{port}/headers"], capture_output=True, text=True,
                         timeout=duration + 30).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    bad = (sum(int(x) for x in errors.groups()) if errors else 0) + (int(non2xx.group(1)) if non2xx else 0)
    return rate, bad


def s_time(port: int, seconds: int, reuse: bool) -> float:
    argv = ["taskset", "-c", LOADGEN_CORE, "openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-time",
            str(seconds), "-reuse" if reuse else "-new", "-tls1_3"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30).stdout
    m = re.findall(r"(\d+) connections in ([\d.]+)s", out)
    count, took = m[-1] if m else (0, 1)
    return int(count) / float(took)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--systems", nargs="+", default=["agw", "nginx"])
    p.add_argument("--out")
    args = p.parse_args()
    for tool in ("nginx", "wrk", "openssl", "taskset"):
        if shutil.which(tool) is None:
            print(f"missing: {tool}", file=sys.stderr)
            return 2
    import trustme
    work = tempfile.mkdtemp(prefix="agw-tls-bench-")
    ca = trustme.CA()
    leaf = ca.issue_cert("a.test", "127.0.0.1")   # ECDSA P-256
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    leaf.private_key_pem.write_to_path(key)
    with open(cert, "wb") as f:
        for blob in leaf.cert_chain_pems:
            f.write(blob.bytes())
    up_port = free_port()
    os.makedirs(os.path.join(work, "up", "tmp"), exist_ok=True)
    with open(os.path.join(work, "up.conf"), "w") as f:
        f.write(nginx_conf(os.path.join(work, "up"), up_port, None))
    upstream = start(["nginx", "-p", os.path.join(work, "up"), "-c", os.path.join(work, "up.conf")],
                     os.path.join(work, "up.log"), LOADGEN_CORE)
    rows: dict[str, list[tuple]] = {s: [] for s in args.systems}
    try:
        wait_port(up_port)
        for rnd in range(args.rounds):
            for system in args.systems:
                port = free_port()
                if system == "agw":
                    conf = os.path.join(work, "agw.yaml")
                    with open(conf, "w") as f:
                        f.write(agw_yaml(port, up_port, cert, key))
                    proc = start([sys.executable, "-m", "agw", "run", "-f", conf, "--access-log", "off",
                                  "--admin", "off"], os.path.join(work, "agw.log"), SUT_CORE)
                else:
                    prefix = os.path.join(work, f"ngx{rnd}")
                    os.makedirs(os.path.join(prefix, "tmp"), exist_ok=True)
                    with open(prefix + ".conf", "w") as f:
                        f.write(nginx_tls_conf(prefix, port, up_port, cert, key))
                    proc = start(["nginx", "-p", prefix, "-c", prefix + ".conf"], prefix + ".log", SUT_CORE)
                try:
                    wait_port(port)
                    wrk(port, 2, False)                          # warm-up
                    ka = wrk(port, args.duration, False)
                    nc = wrk(port, args.duration, True)
                    full = s_time(port, max(2, args.duration - 1), False)
                    resumed = s_time(port, max(2, args.duration - 1), True)
                finally:
                    stop(proc)
                rows[system].append((ka, nc, full, resumed))
                print(f"round {rnd} {system}: keep-alive {ka[0]:.0f}/s ({ka[1]} bad), new conn {nc[0]:.0f}/s "
                      f"({nc[1]} bad), s_time full {full:.0f}/s, resumed {resumed:.0f}/s", flush=True)
    finally:
        stop(upstream)
    lines = ["| system | round | keep-alive HTTPS req/s | new TLS conn per request req/s | s_time full hs/s | "
             "s_time resumed hs/s | resumed/full |", "|---|---|---|---|---|---|---|"]
    for system, results in rows.items():
        for rnd, (ka, nc, full, resumed) in enumerate(results):
            lines.append(f"| {system} | {rnd} | {ka[0]:.0f}{' (%d bad)' % ka[1] if ka[1] else ''} | "
                         f"{nc[0]:.0f}{' (%d bad)' % nc[1] if nc[1] else ''} | {full:.0f} | {resumed:.0f} | "
                         f"{resumed / full if full else 0:.2f} |")
    if "agw" in rows and "nginx" in rows:
        for i, name in ((0, "keep-alive"), (1, "new conn")):
            ratios = [a[i][0] / n[i][0] for a, n in zip(rows["agw"], rows["nginx"]) if n[i][0]]
            lines.append(f"\nagw/nginx {name}: " + ", ".join(f"{r:.2f}x" for r in ratios))
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
