"""What the `authorization` policy costs agw (issue 14's targets), in three parts:

    python bench/authz_cost.py [--rounds 5] [-n 100000] [--callgrind]

1. start: 256 expressions from a config file to a built policy (the load's compile check plus the policy's own
   compile and its what-does-it-read analysis), in a fresh process, cold caches. Target: < 100 ms.
2. the policy alone: `AuthorizationPolicy.apply()` on a request shaped like the proxy's exchange (8 headers, a
   verified-token verdict of the JWT core, cache hit): a jwt-only rule (verdict cache hit), a rule reading
   `request.headers`, a mixed policy. Target: a header rule adds <= 10 us.
3. the whole request path: `bench/protocol_cpu.py` (the proxy's protocol code with in-memory transports) with the
   same RS256 token each request and jwtAuth alone, jwtAuth + the issue's jwt-only allow rule, jwtAuth + a rule
   on request.headers; processes run alternately, median of `--rounds`. CPU per request is what bounds req/s
   on a saturated core, so 1 / ratio is the expected req/s ratio. Target: jwt-only rule >= 0.97x.
   `--callgrind` also counts instructions per request under valgrind (deterministic; slow).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)
# The processes started here import this checkout's agw, not an installed one.
ENV = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}

import mint_tokens  # noqa: E402

ISSUE_RULE = 'jwt.sub == "user1" && "admin" in jwt.realm_access.roles'
HEADER_RULE = 'request.headers["x-env"] == "prod"'

START_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
from agw.config import load
from agw.authz import AuthorizationPolicy
t1 = time.perf_counter()
loaded = load([sys.argv[1]])
t2 = time.perf_counter()
authz = loaded.config.binds[0].listeners[0].routes[0].policies.authorization
policy = AuthorizationPolicy(authz)
t3 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "load": t2 - t1, "policy": t3 - t2, "rules": len(policy.rules)}))
"""


def rules_256() -> list[str]:
    shapes = ['jwt.sub == "user{i}"', '"role{i}" in jwt.realm_access.roles',
              'request.headers["x-tenant"] == "t{i}" && has(jwt.email)',
              'jwt.sub.startsWith("svc-{i}") || request.path.startsWith("/api/v{i}/")']
    return [shapes[i % len(shapes)].format(i=i) for i in range(256)]


def part_start(work: str, rounds: int) -> None:
    path = os.path.join(work, "rules256.yaml")
    with open(path, "w") as f:
        json.dump({"binds": [{"port": 18080, "listeners": [{"routes": [{
            "backends": [{"host": "127.0.0.1:9"}], "policies": {"authorization": {"rules": rules_256()}}}]}]}]}, f)
    runs = []
    for _ in range(rounds):
        out = subprocess.run([sys.executable, "-c", START_SCRIPT, path], capture_output=True, text=True, check=True,
                             env=ENV)
        runs.append(json.loads(out.stdout))
    med = {k: statistics.median(r[k] for r in runs) for k in ("imports", "load", "policy")}
    print(f"1. start, 256 expressions (median of {rounds} fresh processes): load with compile check "
          f"{med['load'] * 1e3:.1f} ms (the whole config load), policy build {med['policy'] * 1e3:.1f} ms, "
          f"together {(med['load'] + med['policy']) * 1e3:.1f} ms; importing agw.config + agw.authz "
          f"{med['imports'] * 1e3:.1f} ms")


class _Transport:
    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 5555) if name == "peername" else default


class _Proto:
    transport = _Transport()
    peer = b"127.0.0.1"


class FakeExchange:
    """What the policy reads of the proxy's Exchange."""

    def __init__(self, verdict) -> None:
        self.method = b"GET"
        self.target = b"/headers?page=2"
        self.hdict = {b"host": b"127.0.0.1:8080", b"user-agent": b"wrk", b"accept": b"*/*",
                      b"x-env": b"prod", b"x-request-id": b"5c2f7e0e-2b7b-4f7e-8d9b-0c3f1b1e2a77",
                      b"accept-encoding": b"gzip", b"content-type": b"application/json",
                      b"authorization": b"Bearer xyz"}
        self.proto = _Proto()
        self.verdicts = [verdict]


def per_call(fn, rounds: int, n: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)


def part_policy(keys, token: str, rounds: int) -> None:
    from agw.authz import AuthorizationPolicy
    from agw.config.model import Authorization, AuthzRule, Jwks, JwtAuth
    from agw.jwt import JwtPolicy

    jp = JwtPolicy(JwtAuth(issuer=mint_tokens.ISSUER, jwks=Jwks(inline=json.dumps(keys.jwks()))))
    headers = {b"authorization": b"Bearer " + token.encode()}
    for _ in range(3):
        verdict = jp.authenticate(headers, b"/")     # the second verification enters the token cache
    assert verdict.verified and jp.authenticate(headers, b"/") is verdict
    ex = FakeExchange(verdict)
    cases = [
        ("jwt-only rule (the issue's), verdict cache hit", [ISSUE_RULE]),
        ("rule reading request.headers", [HEADER_RULE]),
        ("jwt + request.headers in one rule", [f"{ISSUE_RULE} && {HEADER_RULE}"]),
        ("5 rules: deny on a header, require, 3 allows", [AuthzRule(deny='request.headers["x-env"] == "dev"'),
                                                          AuthzRule(require="has(jwt.sub)"),
                                                          'jwt.sub == "nobody"', 'request.method == "PUT"',
                                                          ISSUE_RULE]),
    ]
    jwt_cost = per_call(lambda: jp.authenticate(headers, b"/"), rounds, 200_000)
    print(f"2. the policy alone (median of {rounds} rounds; for scale: the JWT cache hit itself "
          f"{jwt_cost * 1e6:.2f} us)")
    for label, rules in cases:
        policy = AuthorizationPolicy(Authorization(rules=rules))
        assert policy.apply(ex).allowed, label
        n = 200_000 if policy.jwt_only else 50_000
        print(f"   {label}: {per_call(lambda: policy.apply(ex), rounds, n) * 1e6:.2f} us per request")


def write_route_policies(work: str, keys, rules: list | None) -> str:
    pol: dict = {"jwtAuth": {"issuer": mint_tokens.ISSUER, "jwks": {"inline": json.dumps(keys.jwks())}}}
    if rules is not None:
        pol["authorization"] = {"rules": rules}
    name = os.path.join(work, f"policies-{len(os.listdir(work))}.yaml")
    with open(name, "w") as f:
        json.dump(pol, f)
    return name


def protocol_cpu(policies: str, token: str, n: int) -> float:
    argv = [sys.executable, os.path.join(HERE, "protocol_cpu.py"), "-n", str(n), "--jwt-config", policies,
            "--token", token, "--with-metrics"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env=ENV)
    return float(out.stdout.split()[0])


def instructions(policies: str, token: str, n: int) -> int:
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
            os.path.join(HERE, "protocol_cpu.py"), "-n", str(n), "--jwt-config", policies, "--token", token,
            "--with-metrics"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env=ENV)
    return int(re.search(r"Collected : (\d+)", out.stderr).group(1))


def per_request_instructions(policies: str, token: str) -> float:
    """Instructions per request: the difference of two runs (5,000 and 15,000 requests) over 10,000, so the
    start-up (imports, config, warm-up) cancels out."""
    return (instructions(policies, token, 15_000) - instructions(policies, token, 5_000)) / 10_000


def part_protocol(work: str, keys, token: str, rounds: int, n: int, callgrind: bool) -> None:
    configs = {"jwtAuth alone": write_route_policies(work, keys, None),
               "+ jwt-only allow rule": write_route_policies(work, keys, [ISSUE_RULE]),
               "+ rule on request.headers": write_route_policies(work, keys, [HEADER_RULE])}
    results: dict[str, list[float]] = {k: [] for k in configs}
    for _ in range(rounds):
        for label, path in configs.items():
            results[label].append(protocol_cpu(path, token, n))
    base = statistics.median(results["jwtAuth alone"])
    print(f"3. bench/protocol_cpu.py, same RS256 token, +metrics ({n} requests per process, median of {rounds} "
          f"alternating rounds)")
    for label, values in results.items():
        med = statistics.median(values)
        print(f"   {label}: {med:.2f} us per request ({', '.join(f'{v:.2f}' for v in values)}); "
              f"+{med - base:.2f} us, expected req/s ratio {base / med:.3f}x")
    if callgrind:
        counted = {label: per_request_instructions(path, token) for label, path in configs.items()}
        base_i = counted["jwtAuth alone"]
        for label, ins in counted.items():
            print(f"   callgrind {label}: {ins / 1e3:.1f}k instructions per request (ratio {base_i / ins:.3f}x)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("-n", type=int, default=100_000, help="requests per protocol_cpu process")
    ap.add_argument("--callgrind", action="store_true")
    ap.add_argument("--parts", default="123")
    args = ap.parse_args()
    keys = mint_tokens.load_or_create_keys()
    payload = mint_tokens.claims(0, int(time.time()))
    payload["sub"] = "user1"
    payload["realm_access"]["roles"].append("admin")
    token = mint_tokens.mint("RS256", keys.rsa, payload, mint_tokens.KIDS["RS256"])
    print(f"Python {sys.version.split()[0]}; load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as work:
        if "1" in args.parts:
            part_start(work, args.rounds)
        if "2" in args.parts:
            part_policy(keys, token, args.rounds)
        if "3" in args.parts:
            part_protocol(work, keys, token, args.rounds, args.n, args.callgrind)
    return 0


if __name__ == "__main__":
    sys.exit(main())
