"""Counters kept as plain dicts on the hot path, turned into Prometheus text only when /metrics is scraped.

A `prometheus_client` Counter costs about a microsecond per `.labels().inc()`; a dict increment costs a
twentieth of that. So each worker counts in `Stats`, and the admin listener (the worker itself, or the
supervisor summing every worker's `snapshot()`) renders the families with prometheus-client at scrape time.
"""
from __future__ import annotations

try:
    import cython
except ImportError:  # running uncompiled without Cython installed
    from . import _cython_shim as cython  # type: ignore[no-redef]
from typing import Any, Iterable


# Seconds; the usual latency buckets of a proxy (Envoy's are similar).
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@cython.cclass
class RouteStats:
    """One route's counters: answers by status and the duration histogram, updated without hashing tuples."""

    def __init__(self) -> None:
        self.statuses = {}                                   # status -> count
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)     # per bucket, then +Inf
        self.seconds = 0.0

    def add(self, status, seconds: float) -> None:
        statuses = self.statuses
        statuses[status] = statuses.get(status, 0) + 1
        i = 0
        bounds = DURATION_BUCKETS
        n = len(bounds)
        while i < n and seconds > bounds[i]:    # most requests land in the first few buckets
            i += 1
        self.buckets[i] += 1
        self.seconds += seconds


@cython.cclass
class Stats:
    """One worker's counters, per route (a `RouteStats`) and per request-policy (kind, label, outcome)."""

    def __init__(self) -> None:
        self.routes = {}       # route name -> RouteStats
        self.outcomes = {}     # (route, policy kind, label, outcome) -> count
        self.tunnels = {}      # route name -> [open now, opened, bytes client->backend, bytes backend->client]

    def tunnel_counters(self, route: str) -> list:
        """The (mutable) tunnel counters of a route: a tunnel adds to them as bytes move."""
        counters = self.tunnels.get(route)
        if counters is None:
            counters = self.tunnels[route] = [0, 0, 0, 0]
        return counters

    def record(self, route: str, status, seconds: float, verdicts) -> None:
        """Count one answered request and the verdicts of the policies it passed (called by the compiled
        exchange for every request: keep it cheap)."""
        counters = self.routes.get(route)
        if counters is None:
            counters = self.routes[route] = RouteStats()
        counters.add(status, seconds)
        if verdicts is not None:
            outcomes = self.outcomes
            i: cython.Py_ssize_t
            for i in range(len(verdicts)):
                verdict = verdicts[i]
                key = (route, verdict.kind, verdict.label, verdict.outcome)
                outcomes[key] = outcomes.get(key, 0) + 1

    def snapshot(self, runtime: Any = None) -> dict:
        """A JSON-able copy, with the gauges read from the runtime (pools, caches, JWKS)."""
        snap: dict = {
            "requests": [[r, s, n] for r, c in self.routes.items() for s, n in c.statuses.items()],
            "durations": {r: list(c.buckets) + [c.seconds] for r, c in self.routes.items()},
            "outcomes": [[r, k, p, o, n] for (r, k, p, o), n in self.outcomes.items()],
            "policies": [], "upstreams": [],
            "tunnels": [[r] + list(c) for r, c in self.tunnels.items()],
        }
        if runtime is not None:
            for policy in runtime.policies:
                try:
                    snap["policies"].append(policy.stats())
                except Exception:  # noqa: BLE001 - metrics must never break serving
                    pass
            for pool in runtime.pools.values():
                for t in pool.targets:
                    snap["upstreams"].append({"backend": t.label, "idle": len(t.idle), "open": len(t.all),
                                              "connect_errors": t.connect_errors})
        return snap


def merge(snapshots: Iterable[dict]) -> dict:
    """Sum the snapshots of several workers into one."""
    requests: dict = {}
    durations: dict = {}
    outcomes: dict = {}
    policies: list = []
    upstreams: dict = {}
    tunnels: dict = {}
    for snap in snapshots:
        for r, *counts in snap.get("tunnels", ()):
            cur = tunnels.setdefault(r, [0, 0, 0, 0])
            for i, v in enumerate(counts):
                cur[i] += v
        for r, s, n in snap["requests"]:
            requests[(r, s)] = requests.get((r, s), 0) + n
        for r, h in snap["durations"].items():
            cur = durations.setdefault(r, [0] * len(h))
            for i, v in enumerate(h):
                cur[i] += v
        for r, k, p, o, n in snap["outcomes"]:
            outcomes[(r, k, p, o)] = outcomes.get((r, k, p, o), 0) + n
        policies.extend(snap["policies"])
        for u in snap["upstreams"]:
            cur = upstreams.setdefault(u["backend"], {"backend": u["backend"], "idle": 0, "open": 0,
                                                      "connect_errors": 0})
            for k in ("idle", "open", "connect_errors"):
                cur[k] += u[k]
    return {"requests": [[r, s, n] for (r, s), n in requests.items()], "durations": durations,
            "outcomes": [[r, k, p, o, n] for (r, k, p, o), n in outcomes.items()], "policies": policies,
            "upstreams": list(upstreams.values()), "tunnels": [[r] + c for r, c in tunnels.items()]}


class _SnapshotCollector:
    def __init__(self, snap: dict) -> None:
        self.snap = snap

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        snap = self.snap
        req = CounterMetricFamily("agw_requests", "Requests answered, by route and status",
                                  labels=["route", "status"])
        for r, s, n in snap["requests"]:
            req.add_metric([r, str(s)], n)
        yield req
        hist = HistogramMetricFamily("agw_request_duration_seconds",
                                     "Time from request head to the end of the response", labels=["route"])
        for r, h in snap["durations"].items():
            cumulative, buckets = 0, []
            for bound, count in zip(DURATION_BUCKETS + (float("inf"),), h[:-1]):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            hist.add_metric([r], buckets, h[-1])
        yield hist
        jwt = CounterMetricFamily("agw_jwt_authentications", "JWT outcomes by provider (issuer) and reason",
                                  labels=["provider", "outcome"])
        decisions = CounterMetricFamily("agw_policy_decisions", "Request-policy verdicts by route, policy, "
                                        "label (e.g. provider, rule) and outcome",
                                        labels=["route", "policy", "label", "outcome"])
        by_provider: dict = {}
        for r, k, p, o, n in snap["outcomes"]:
            decisions.add_metric([r, k, p, o], n)
            if k == "jwt":
                by_provider[(p, o)] = by_provider.get((p, o), 0) + n
        for (p, o), n in by_provider.items():
            jwt.add_metric([p, o], n)
        yield jwt
        yield decisions
        yield from _policy_families(snap["policies"])
        conn_err = CounterMetricFamily("agw_upstream_connect_errors", "Failed upstream connects",
                                       labels=["backend"])
        pool = GaugeMetricFamily("agw_upstream_connections", "Upstream connections by state",
                                 labels=["backend", "state"])
        for u in snap["upstreams"]:
            conn_err.add_metric([u["backend"]], u["connect_errors"])
            pool.add_metric([u["backend"], "idle"], u["idle"])
            pool.add_metric([u["backend"], "open"], u["open"])
        yield conn_err
        yield pool
        open_ = GaugeMetricFamily("agw_tunnels_open", "Upgraded (WebSocket) connections open", labels=["route"])
        opened = CounterMetricFamily("agw_tunnels", "Upgraded (WebSocket) connections opened", labels=["route"])
        moved = CounterMetricFamily("agw_tunnel_bytes", "Bytes relayed through upgraded connections, by "
                                    "direction (upstream: client to backend)", labels=["route", "direction"])
        for r, n_open, n_opened, up, down in snap.get("tunnels", ()):
            open_.add_metric([r], n_open)
            opened.add_metric([r], n_opened)
            moved.add_metric([r, "upstream"], up)
            moved.add_metric([r, "downstream"], down)
        yield open_
        yield opened
        yield moved


def _policy_families(policies: list[dict]):
    """Cache and JWKS figures from each JwtPolicy.stats() (summed over workers by name)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    hits = CounterMetricFamily("agw_jwt_cache_hits", "Verified-token cache hits", labels=["policy"])
    misses = CounterMetricFamily("agw_jwt_cache_misses", "Verified-token cache misses", labels=["policy"])
    size = GaugeMetricFamily("agw_jwt_cache_entries", "Verified-token cache entries", labels=["policy"])
    fetches = CounterMetricFamily("agw_jwks_fetches", "JWKS fetches by outcome", labels=["provider", "outcome"])
    age = GaugeMetricFamily("agw_jwks_keys_age_seconds", "Age of the keys in use", labels=["provider"])
    sums: dict = {}
    fetch_sums: dict = {}
    ages: dict = {}
    for st in policies:
        # JwtPolicy.stats(): {"name", "mode", "cache": {"hits", "misses", "entries", ...},
        #                     "providers": [{"issuer", "source", "fetches": {outcome: n}, "key_age_seconds"}]}
        name = str(st.get("name", ""))
        cache = st.get("cache", {})
        cur = sums.setdefault(name, [0, 0, 0])
        cur[0] += int(cache.get("hits", 0))
        cur[1] += int(cache.get("misses", 0))
        cur[2] += int(cache.get("entries", 0))
        fetch_seen: set = set()
        for prov in st.get("providers", []):
            issuer = str(prov.get("issuer", ""))
            # Providers sharing one JWKS URL share one fetcher: count its fetches once per (issuer, source).
            source_key = (issuer, prov.get("source"))
            if source_key not in fetch_seen:
                fetch_seen.add(source_key)
                for outcome, n in (prov.get("fetches") or {}).items():
                    fetch_sums[(issuer, outcome)] = fetch_sums.get((issuer, outcome), 0) + int(n)
            if prov.get("key_age_seconds") is not None:
                ages[issuer] = max(ages.get(issuer, 0.0), float(prov["key_age_seconds"]))
    for name, (h, m, s) in sums.items():
        hits.add_metric([name], h)
        misses.add_metric([name], m)
        size.add_metric([name], s)
    for (issuer, outcome), n in fetch_sums.items():
        fetches.add_metric([issuer, outcome], n)
    for issuer, a in ages.items():
        age.add_metric([issuer], a)
    yield from (hits, misses, size, fetches, age)


def render(snap: dict) -> tuple[bytes, bytes]:
    # Imported at the first scrape: prometheus-client pulls in a lot of the standard library (~8 MB RSS).
    from prometheus_client.core import CollectorRegistry
    from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snap))
    return CONTENT_TYPE_LATEST.encode(), generate_latest(registry)
