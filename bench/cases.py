"""What load.py measures: the scenarios, the systems, one measurement's result, and wrk's output parsed."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

# The layout: load generator and upstream share one core, the system under test has the other to itself.
LOADGEN_CORE, SUT_CORE = "0", "1"
CONNECTIONS = 64


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
    System("direct", "nginx upstream direct (wrk ceiling)", jwt=False, plain_label="nginx upstream direct"),
    System("nginx", "nginx proxy (keepalive 128)", jwt=False),
    System("haproxy", "HAProxy 2.6 jwt_verify", jwt=True, unsupported_algs=("EdDSA",), plain_label="HAProxy 2.6"),
    System("aiohttp", "aiohttp + PyJWT", jwt=True, plain_label="aiohttp (no verification)"),
    System("agw1", "agw 1 worker", jwt=True),
    System("agw2", "agw --workers 2 (unpinned)", jwt=True),
    # agw 1 worker from another checkout (load.py --ref-tree DIR, e.g. the previous main): A/B in one run.
    System("agwref", "agw 1 worker, reference tree", jwt=True),
]}
DEFAULT_SYSTEMS = [k for k in SYSTEMS if k != "agwref"]
# The load generator's own ceiling with a token header, and with a Lua script choosing a token per request
# (it shares core 0 with the upstream): measured by sending those requests straight to the upstream.
CEILING_SCENARIOS = ("same-rs256", "new-rs256")


def applies(system: System, scenario: Scenario) -> bool:
    """Whether a (system, scenario) pair is measured: JWT scenarios need a verifier, except the ceilings."""
    if system.key == "direct":
        return scenario.alg is None or scenario.key in CEILING_SCENARIOS
    return system.jwt or scenario.alg is None
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
    cpu_us_per_request: Optional[float] = None   # CPU time of the system's processes / requests
    note: str = ""


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


def median_result(results: list[Result]) -> Result:
    """The run with the median req/s (its own p50/p99 go with it); a failed run wins only if all failed."""
    measured = sorted((r for r in results if r.rps), key=lambda r: r.rps)
    return measured[(len(measured) - 1) // 2] if measured else results[-1]
