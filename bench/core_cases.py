"""What the verification-core benchmarks share (pytest-benchmark suite and bench/core_ratio.py): per algorithm,
one ~1.3 KB Keycloak-like token, its key as a JWK, the floor verifier, and agw's policy called as the proxy calls
it."""
from __future__ import annotations

import hashlib
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any, Callable

import mint_tokens
from mint_tokens import AUDIENCE, ISSUER

ALGS = ["RS256", "ES256", "EdDSA", "PS256", "HS256"]
HS_SECRET = hashlib.sha256(b"agw bench HS256 secret").digest()
HS_KID = "bench-hs"


@dataclass
class Case:
    alg: str
    token: str
    jwk: dict                   # the verifying key as a JWK
    verify_key: Any             # cryptography public key (bytes secret for HS256)
    floor: Callable[[], None]   # raw signature check of the token's signing input


def build_cases(bench_keys: mint_tokens.BenchKeys) -> dict[str, Case]:
    jwks = bench_keys.jwks()["keys"]
    by_kid = {k["kid"]: k for k in jwks}
    now = int(time.time())
    out = {}
    for alg in ALGS:
        if alg == "HS256":
            jwk = {"kty": "oct", "kid": HS_KID, "alg": "HS256", "k": mint_tokens.b64url(HS_SECRET)}
            token = mint_tokens.mint("HS256", HS_SECRET, mint_tokens.claims(1, now), HS_KID)
            key = HS_SECRET
        else:
            kid = mint_tokens.KIDS[alg]
            jwk = dict(by_kid[kid])
            token = mint_tokens.mint(alg, bench_keys.private_for(alg), mint_tokens.claims(1, now), kid)
            key = bench_keys.private_for(alg).public_key()
        out[alg] = Case(alg, token, jwk, key, mint_tokens.raw_verifier(alg, key, token))
    return out


def jwks_doc_for(cases: dict[str, Case]) -> str:
    return json.dumps({"keys": [c.jwk for alg, c in cases.items() if alg != "PS256"]})  # PS256 shares the RSA key


def agw_policy(jwks_doc: str, cache: bool) -> Any:
    """agw's JwtPolicy for the bench issuer and audience, its verified-token cache on or off."""
    import msgspec
    from agw.config.model import JwtAuth
    from agw.jwt import JwtPolicy
    cfg = msgspec.convert({"mode": "strict", "issuer": ISSUER, "audiences": [AUDIENCE],
                           "jwks": {"inline": jwks_doc}, "cache": {"enabled": cache}}, JwtAuth)
    return JwtPolicy(cfg)


def request_headers(token: str) -> dict[bytes, bytes]:
    """What the proxy hands the policy for `wrk`'s request: lower-case names, bytes."""
    return {b"host": b"127.0.0.1", b"user-agent": b"wrk", b"accept": b"*/*",
            b"authorization": b"Bearer " + token.encode("ascii")}


def distinct_requests(token: str, count: int = 1024) -> list[dict[bytes, bytes]]:
    """Header dicts as the proxy builds them, one per request: equal values but distinct bytes objects, so no
    hash cached on a reused object flatters a lookup keyed by the header or token bytes."""
    return [{name: bytes(bytearray(value)) for name, value in request_headers(token).items()} for _ in range(count)]


def agw_call(authenticate: Callable[[dict, bytes], Any], token: str) -> Callable[[], Any]:
    """One request per call, as the proxy makes it: `authenticate(headers, target)` on the next request's
    headers (cycling through distinct objects costs ~30 ns, included in the figure)."""
    requests = itertools.cycle(distinct_requests(token))

    def call():
        return authenticate(next(requests), b"/headers")
    result = call()
    call()   # the token cache admits a token at its second verification: the cache-hit benchmarks start warm
    assert getattr(result, "allowed", False), f"agw refused the token: {getattr(result, 'reason', result)}"
    return call
