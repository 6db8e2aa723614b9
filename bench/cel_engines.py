"""CEL engines for the `authorization` policy, measured side by side (issue 14).

    python bench/cel_engines.py [--engines cel-cpp cel-rust celpy] [--rounds 7]

For each engine that is installed: the time to compile 256 distinct rules (what a config with 256
`matchExpressions` costs at start), the time of one evaluation of a jwt-only rule over a realistic claims dict,
and of a rule reading `request.headers`, counting the conversion of the proxy's request (bytes headers) into the
engine's input, as the policy must do it for every request. Medians over `--rounds` rounds (min in brackets).

Engines (all on PyPI):
- cel-cpp:  `cel-expr-python` (Google's cel-cpp runtime, type-checked compile), module `cel_expr_python`
- cel-rust: `common-expression-language` (PyO3 bindings to cel-rust, agentgateway's engine), module `cel`
- celpy:    `cel-python` (pure Python, lark parser), module `celpy`
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any, Callable

JWT_RULE = 'jwt.sub == "user1" && "admin" in jwt.realm_access.roles'
HEADER_RULE = 'request.headers["x-env"] == "prod" && request.method == "GET"'
CLAIMS = {
    "exp": 2085317115, "iat": 1777733115, "nbf": 1777733115, "jti": "8c1d6c1e-3c1f-4c8e-9a3f-2a0f0e3f9b11",
    "iss": "http://127.0.0.1:8081/realms/master", "aud": ["my-application", "account"], "sub": "user1",
    "typ": "Bearer", "azp": "my-application", "scope": "openid profile email",
    "realm_access": {"roles": ["offline_access", "uma_authorization", "admin"]},
    "resource_access": {"account": {"roles": ["manage-account", "view-profile"]}},
    "email_verified": True, "preferred_username": "user1", "email": "user1@example.com",
}
HDICT = {
    b"host": b"www.example.com", b"user-agent": b"curl/8.5.0", b"accept": b"*/*",
    b"x-env": b"prod", b"x-request-id": b"5c2f7e0e-2b7b-4f7e-8d9b-0c3f1b1e2a77",
    b"content-type": b"application/json", b"accept-encoding": b"gzip, deflate",
}


def request_map(method: bytes, target: bytes, hdict: dict) -> dict:
    """What the policy hands the engine for `request` (headers decoded from the proxy's bytes)."""
    path, _, query = target.partition(b"?")
    return {"method": method.decode("latin-1"), "path": path.decode("latin-1"),
            "host": hdict.get(b"host", b"").decode("latin-1"), "query": query.decode("latin-1"),
            "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in hdict.items()}}


def rules_256() -> list[str]:
    shapes = ['jwt.sub == "user{i}"', '"role{i}" in jwt.realm_access.roles',
              'request.headers["x-tenant"] == "t{i}" && has(jwt.email)',
              'jwt.sub.startsWith("svc-{i}") || request.path.startsWith("/api/v{i}/")']
    return [shapes[i % len(shapes)].format(i=i) for i in range(256)]


class CelCpp:
    name = "cel-cpp (cel-expr-python)"

    def __init__(self) -> None:
        from cel_expr_python import cel
        dyn_map = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
        self.env = cel.NewEnv(variables={"jwt": dyn_map, "request": dyn_map, "source": dyn_map})

    def compile(self, src: str) -> Any:
        return self.env.compile(src)

    def evaluate(self, prog: Any, data: dict) -> Any:
        return prog.eval(data=data).value()


class CelRust:
    name = "cel-rust (common-expression-language)"

    def __init__(self) -> None:
        import cel
        self.cel = cel

    def compile(self, src: str) -> Any:
        return self.cel.compile(src)

    def evaluate(self, prog: Any, data: dict) -> Any:
        return prog.execute(data)


class CelPy:
    name = "celpy (cel-python, pure Python)"

    def __init__(self) -> None:
        import celpy
        self.celpy = celpy
        self.env = celpy.Environment()

    def compile(self, src: str) -> Any:
        return self.env.program(self.env.compile(src))

    def evaluate(self, prog: Any, data: dict) -> Any:
        return prog.evaluate({k: self.celpy.json_to_cel(v) for k, v in data.items()})


ENGINES = {"cel-cpp": CelCpp, "cel-rust": CelRust, "celpy": CelPy}


def per_call(fn: Callable[[], Any], rounds: int, budget: float = 0.2) -> tuple[float, float]:
    """Median and min seconds per call of `fn` over `rounds` rounds of about `budget` seconds each."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t0 > budget / 10:
            break
        n *= 4
    n = max(1, int(n * budget / max(time.perf_counter() - t0, 1e-9) / 10) * 10)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times), min(times)


def measure(key: str, rounds: int) -> dict:
    engine = ENGINES[key]()
    sources = rules_256()
    compile_times = []
    for _ in range(max(3, rounds // 2)):
        t0 = time.perf_counter()
        for s in sources:
            engine.compile(s)
        compile_times.append(time.perf_counter() - t0)
    jwt_prog = engine.compile(JWT_RULE)
    header_prog = engine.compile(HEADER_RULE)
    jwt_data = {"jwt": CLAIMS}
    assert engine.evaluate(jwt_prog, jwt_data) is True or engine.evaluate(jwt_prog, jwt_data) == True  # noqa: E712
    req = request_map(b"GET", b"/api/items?page=2", HDICT)
    assert engine.evaluate(header_prog, {"request": req, "jwt": CLAIMS}) == True  # noqa: E712
    jwt_eval = per_call(lambda: engine.evaluate(jwt_prog, jwt_data), rounds)
    header_eval = per_call(lambda: engine.evaluate(header_prog, {"request": req}), rounds)
    header_full = per_call(
        lambda: engine.evaluate(header_prog, {"request": request_map(b"GET", b"/api/items?page=2", HDICT)}), rounds)
    return {"engine": engine.name, "compile256": (statistics.median(compile_times), min(compile_times)),
            "jwt": jwt_eval, "header": header_eval, "header_full": header_full}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    conv = per_call(lambda: request_map(b"GET", b"/api/items?page=2", HDICT), args.rounds)
    print(f"Python {sys.version.split()[0]}; building the request map from 7 bytes headers: "
          f"{conv[0] * 1e6:.2f} us")
    print("| engine | compile 256 rules | jwt rule eval | header rule eval | header rule + request map |")
    print("|---|---|---|---|---|")
    for key in args.engines:
        try:
            r = measure(key, args.rounds)
        except ImportError as e:
            print(f"| {key} | not installed ({e}) | | | |")
            continue
        c, j, h, f = r["compile256"], r["jwt"], r["header"], r["header_full"]
        print(f"| {r['engine']} | {c[0] * 1e3:.1f} ms [{c[1] * 1e3:.1f}] | {j[0] * 1e6:.2f} us [{j[1] * 1e6:.2f}] "
              f"| {h[0] * 1e6:.2f} us [{h[1] * 1e6:.2f}] | {f[0] * 1e6:.2f} us [{f[1] * 1e6:.2f}] |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
