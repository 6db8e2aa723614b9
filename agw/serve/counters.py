"""Counters that outlive a reload: what a retired config counted, added to what the live one counts.

A reload builds new policies (each with a fresh token cache and its hit/miss counters) and new upstream pools
(with their connect-error counters). Prometheus counters must only grow for the life of the process, so when
a config is retired its totals move here and every snapshot adds them back, under the same labels.

JWKS fetch counters need none of this: a JWKS feed outlives the reload (agw/jwt/jwks.py) and keeps its own.
Several policies may share one feed, so its counts are kept once per (issuer, URL) in a snapshot.
"""
from __future__ import annotations

from typing import Any


class RetiredCounters:
    def __init__(self) -> None:
        self.cache: dict[str, list[int]] = {}          # policy name -> [hits, misses]
        self.connect_errors: dict[str, int] = {}       # backend label -> failed connects

    def retire(self, runtime: Any) -> None:
        """Keep the totals of a runtime that stops serving (taken once, when it is swapped out)."""
        for policy in runtime.policies:
            stats = policy.stats()
            cache = stats.get("cache", {})
            cur = self.cache.setdefault(str(stats.get("name", "")), [0, 0])
            cur[0] += int(cache.get("hits", 0))
            cur[1] += int(cache.get("misses", 0))
        for pool in runtime.pools.values():
            for target in pool.targets:
                if target.connect_errors:
                    self.connect_errors[target.label] = self.connect_errors.get(target.label, 0) + target.connect_errors

    def add_to(self, snap: dict) -> dict:
        """`snap` (a worker's Stats.snapshot) with the retired totals added and shared feeds counted once."""
        seen: set[tuple[Any, Any]] = set()
        for policy in snap["policies"]:
            for provider in policy.get("providers", []):
                if provider.get("fetches"):
                    key = (provider.get("issuer"), provider.get("source"))
                    if key in seen:
                        provider["fetches"] = {}
                    seen.add(key)
        for name, (hits, misses) in self.cache.items():
            snap["policies"].append({"name": name, "cache": {"hits": hits, "misses": misses, "entries": 0},
                                     "providers": []})
        if self.connect_errors:
            by_label = {u["backend"]: u for u in snap["upstreams"]}
            for label, n in self.connect_errors.items():
                entry = by_label.get(label)
                if entry is None:
                    entry = by_label[label] = {"backend": label, "idle": 0, "open": 0, "connect_errors": 0}
                    snap["upstreams"].append(entry)
                entry["connect_errors"] += n
        return snap
