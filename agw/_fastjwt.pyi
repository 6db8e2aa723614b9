"""Type stub for the Cython verification core (agw/_fastjwt.pyx)."""
from typing import Any, Callable, Optional

REASONS: tuple[str, ...]
ALGORITHMS: tuple[str, ...]
ALG_BITS: dict[str, int]
CLAIM_BITS: dict[str, int]
EC_CURVES: dict[str, tuple[int, int, str]]

def now() -> float: ...
def b64url_decode(data: bytes | str) -> bytes: ...
def b64url_encode(data: bytes) -> bytes: ...
def take_query_param(target: bytes, name: bytes) -> tuple[Optional[bytes], Optional[bytes]]: ...
def take_cookie(header: bytes, name: bytes) -> tuple[Optional[bytes], Optional[bytes]]: ...

class AuthResult:
    allowed: bool
    reason: Optional[str]
    message: Optional[str]
    www_authenticate: Optional[bytes]
    body: Optional[bytes]
    @property
    def claims(self) -> Optional[dict[str, Any]]: ...   # decoded from claims_json on each access
    claims_json: Optional[bytes]
    verified: bool
    issuer: Optional[str]
    subject: Optional[str]
    add_headers: list[tuple[bytes, bytes]]
    remove_credential: bool
    new_target: Optional[bytes]
    new_cookie: Optional[bytes]
    def __init__(self, allowed: bool, reason: Optional[str] = ..., message: Optional[str] = ...,
                 www_authenticate: Optional[bytes] = ..., body: Optional[bytes] = ...,
                 claims: Optional[dict[str, Any]] = ..., issuer: Optional[str] = ..., subject: Optional[str] = ...,
                 add_headers: Optional[list[tuple[bytes, bytes]]] = ..., remove_credential: bool = ...,
                 new_target: Optional[bytes] = ..., new_cookie: Optional[bytes] = ...) -> None: ...
    def with_rewrite(self, new_target: Optional[bytes], new_cookie: Optional[bytes]) -> AuthResult: ...

class Key:
    kid: Optional[str]
    kind: int
    algs: int
    identity: object
    def __init__(self, kid: Optional[str], kind: int, algs: int, pub: Any, identity: object, coord: int = ...,
                 ec_order: Optional[int] = ..., modulus_len: int = ...) -> None: ...
    def verify_signature(self, alg: str, signing_input: bytes, sig: bytes) -> bool: ...

class Provider:
    issuer: str
    audiences: Optional[frozenset[str]]
    required: int
    generation: int
    keys_updated: float
    fingerprint: object
    source: Any
    has_keys: bool
    key_count: int
    def __init__(self, issuer: str, audiences: Optional[list[str]] = ..., required: int = ...) -> None: ...
    def set_keys(self, keys: list[Key]) -> bool: ...
    def key_ids(self) -> list[Optional[str]]: ...

class Pending:
    token: bytes
    reason: int
    providers: list[Provider]
    new_target: Optional[bytes]
    new_cookie: Optional[bytes]

class Core:
    hits: int
    misses: int
    providers: list[Provider]
    def __init__(self, providers: list[Provider], results: tuple[AuthResult, ...], *, skew: float = ...,
                 max_token: int = ..., remove_credential: bool = ...,
                 claim_headers: Optional[list[tuple[str, bytes]]] = ...,
                 location: str = ..., header_name: bytes = ..., prefix: bytes = ..., param_name: bytes = ...,
                 cookie_name: bytes = ..., cache_enabled: bool = ..., cache_max_entries: int = ...,
                 cache_max_bytes: int = ...) -> None: ...
    def set_hooks(self, report: Optional[Callable[[AuthResult], None]] = ...,
                  on_pending: Optional[Callable[[Pending], Any]] = ...) -> None: ...
    def authenticate(self, headers: dict[bytes, bytes], target: bytes) -> Any: ...
    def resolve(self, pending: Pending, now: float = ...) -> AuthResult: ...
    def verify_token(self, token: bytes, now: float = ..., allow_pending: bool = ...) -> AuthResult | Pending: ...
    def purge_expired(self, now: float = ...) -> int: ...
    def clear_cache(self) -> None: ...
    def cache_stats(self) -> dict[str, Any]: ...
