"""Keys and tokens shared by every benchmark in one run, so all systems see the same bytes.

Keys (RSA-2048, P-256, Ed25519) are generated once and kept under bench/.cache/keys/, so a token file minted
earlier stays valid. Token files (one compact JWT per line, Keycloak-sized claims, a distinct `jti` each) are
cached under bench/.cache/ by key fingerprint, algorithm and count: signing 200,000 RS256 tokens costs about
80 s of CPU, spread over every core with multiprocessing.

`python bench/mint_tokens.py --alg RS256 --count 200000` mints (or finds) a file and prints its path.
"""
from __future__ import annotations

import argparse
import base64
import glob
import hashlib
import json
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

ISSUER = "https://bench.agw.test"
AUDIENCE = "bench"
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
CACHE_DIR = os.path.join(BENCH_DIR, ".cache")
KIDS = {"RS256": "bench-rsa", "PS256": "bench-rsa", "ES256": "bench-ec", "EdDSA": "bench-ed"}
# Bump when the claim set changes, so cached token files are not reused with a different shape.
CLAIMS_VERSION = 1
TOKEN_LIFETIME = 30 * 86400
MIN_REMAINING_LIFETIME = 86400


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_uint(n: int, size: Optional[int] = None) -> str:
    length = size if size is not None else max(1, (n.bit_length() + 7) // 8)
    return b64url(n.to_bytes(length, "big"))


@dataclass
class BenchKeys:
    rsa: rsa.RSAPrivateKey
    ec: ec.EllipticCurvePrivateKey
    ed: ed25519.Ed25519PrivateKey

    def private_for(self, alg: str) -> Any:
        return {"RS256": self.rsa, "PS256": self.rsa, "ES256": self.ec, "EdDSA": self.ed}[alg]

    def public_pem(self, alg: str) -> bytes:
        return self.private_for(alg).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def fingerprint(self) -> str:
        """Short hash of the three public keys: names cached token files."""
        digest = hashlib.sha256()
        for alg in ("RS256", "ES256", "EdDSA"):
            digest.update(self.public_pem(alg))
        return digest.hexdigest()[:12]

    def jwks(self) -> dict:
        rsa_pub = self.rsa.public_key().public_numbers()
        ec_pub = self.ec.public_key().public_numbers()
        ed_raw = self.ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"keys": [
            {"kty": "RSA", "kid": KIDS["RS256"], "use": "sig", "n": b64url_uint(rsa_pub.n),
             "e": b64url_uint(rsa_pub.e)},
            {"kty": "EC", "kid": KIDS["ES256"], "use": "sig", "alg": "ES256", "crv": "P-256",
             "x": b64url_uint(ec_pub.x, 32), "y": b64url_uint(ec_pub.y, 32)},
            {"kty": "OKP", "kid": KIDS["EdDSA"], "use": "sig", "alg": "EdDSA", "crv": "Ed25519", "x": b64url(ed_raw)},
        ]}


def _pem_private(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_or_create_keys(cache_dir: str = CACHE_DIR) -> BenchKeys:
    key_dir = os.path.join(cache_dir, "keys")
    os.makedirs(key_dir, exist_ok=True)
    makers = {"rsa": lambda: rsa.generate_private_key(65537, 2048),
              "ec": lambda: ec.generate_private_key(ec.SECP256R1()),
              "ed": ed25519.Ed25519PrivateKey.generate}
    loaded = {}
    for name, make in makers.items():
        path = os.path.join(key_dir, f"{name}.pem")
        try:
            with open(path, "rb") as f:
                loaded[name] = serialization.load_pem_private_key(f.read(), None)
        except FileNotFoundError:
            loaded[name] = make()
            tmp = path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(_pem_private(loaded[name]))
            os.replace(tmp, path)
    return BenchKeys(**loaded)


def claims(i: int, now: int, lifetime: int = TOKEN_LIFETIME) -> dict:
    """Claims shaped like a Keycloak access token (about 1 KB once signed with RS256); `i` makes it unique."""
    uid = f"{i:08x}-5e1c-4b7d-9a0b-{i * 7919 % 16 ** 12:012x}"
    return {
        "exp": now + lifetime, "iat": now, "auth_time": now, "jti": f"onrtac:{uid}",
        "iss": ISSUER, "aud": AUDIENCE, "sub": "0f8c2a3e-7d41-4c65-b1f0-3c9e0d5a7b21", "typ": "Bearer",
        "azp": "bench-client", "sid": "b3d4f6a1-2c5e-4f8a-9b7d-1e0c3a5b7d9f", "acr": "1",
        "allowed-origins": ["https://bench.agw.test"],
        "realm_access": {"roles": ["default-roles-bench", "offline_access", "uma_authorization"]},
        "resource_access": {"account": {"roles": ["manage-account", "manage-account-links", "view-profile"]}},
        "scope": "openid email profile", "email_verified": True, "name": "Bench User",
        "preferred_username": "user1", "given_name": "Bench", "family_name": "User",
        "email": "user1@bench.agw.test",
    }


def sign(alg: str, key: Any, signing_input: bytes) -> bytes:
    if alg == "RS256":
        return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    if alg == "PS256":
        return key.sign(signing_input, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    if alg == "ES256":
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if alg == "EdDSA":
        return key.sign(signing_input)
    if alg == "HS256":
        from cryptography.hazmat.primitives import hmac
        mac = hmac.HMAC(key, hashes.SHA256())
        mac.update(signing_input)
        return mac.finalize()
    raise ValueError(f"unsupported alg {alg}")


def raw_verifier(alg: str, key: Any, token: str) -> Callable[[], None]:
    """The floor: `cryptography`'s check of the token's signing input and signature alone, already decoded (what
    no JWT library can go below). The callable raises InvalidSignature for a bad signature. `key` is the public
    key (the secret bytes for HS256)."""
    signing_input, _, sig_b64 = token.rpartition(".")
    data, sig = signing_input.encode("ascii"), base64.urlsafe_b64decode(sig_b64 + "=" * (-len(sig_b64) % 4))
    if alg == "RS256":
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
        return lambda: key.verify(sig, data, pkcs1, sha256)
    if alg == "PS256":
        pss, sha256 = padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()
        return lambda: key.verify(sig, data, pss, sha256)
    if alg == "ES256":
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        ecdsa = ec.ECDSA(hashes.SHA256())
        return lambda: key.verify(der, data, ecdsa)
    if alg == "EdDSA":
        return lambda: key.verify(sig, data)
    from cryptography.hazmat.primitives import hmac

    def hmac_verify() -> None:
        mac = hmac.HMAC(key, hashes.SHA256())
        mac.update(data)
        mac.verify(sig)
    return hmac_verify


def mint(alg: str, key: Any, payload: dict, kid: Optional[str] = None) -> str:
    header = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                     + b64url(json.dumps(payload, separators=(",", ":")).encode()))
    return signing_input + "." + b64url(sign(alg, key, signing_input.encode("ascii")))


def mint_one(keys: BenchKeys, alg: str, i: int = 0, now: Optional[int] = None,
             lifetime: int = TOKEN_LIFETIME) -> str:
    now = int(time.time()) if now is None else now
    return mint(alg, keys.private_for(alg), claims(i, now, lifetime), KIDS[alg])


def tamper(token: str) -> str:
    """Change one character in the middle of the signature (the last one may only touch padding bits)."""
    head, _, sig = token.rpartition(".")
    mid = len(sig) // 2
    replacement = "A" if sig[mid] != "A" else "B"
    return f"{head}.{sig[:mid]}{replacement}{sig[mid + 1:]}"


# --- bulk minting ---------------------------------------------------------------------------------------------

_worker_state: dict = {}


def _init_worker(cache_dir: str, alg: str, now: int) -> None:
    keys = load_or_create_keys(cache_dir)
    _worker_state.update(key=keys.private_for(alg), alg=alg, now=now)


def _mint_range(bounds: tuple[int, int]) -> str:
    start, stop = bounds
    st = _worker_state
    return "".join(mint(st["alg"], st["key"], claims(i, st["now"]), KIDS[st["alg"]]) + "\n"
                   for i in range(start, stop))


def _cached_token_file(cache_dir: str, stem: str, count: int) -> Optional[str]:
    """The smallest fresh cached file holding at least `count` tokens (more tokens than needed do no harm)."""
    found = []
    for meta_path in glob.glob(os.path.join(cache_dir, stem + ".json")):
        path = meta_path[:-5] + ".txt"
        try:
            with open(meta_path) as f:
                meta = json.load(f)
            fresh = meta["exp"] - time.time() > MIN_REMAINING_LIFETIME
            if fresh and meta["count"] >= count and os.path.getsize(path) == meta["bytes"]:
                found.append((meta["count"], path))
        except (OSError, ValueError, KeyError):
            continue
    return min(found)[1] if found else None


def token_file(alg: str, count: int, *, cache_dir: str = CACHE_DIR, processes: Optional[int] = None,
               log=print) -> str:
    """Path of a file of `count` distinct valid tokens, one per line (minted now unless a fresh one is cached)."""
    keys = load_or_create_keys(cache_dir)
    stem = f"tokens-{alg}-*-{keys.fingerprint()}-v{CLAIMS_VERSION}"
    cached = _cached_token_file(cache_dir, stem, count)
    if cached is not None:
        return cached
    base = os.path.join(cache_dir, stem.replace("*", str(count)))
    path, meta_path = base + ".txt", base + ".json"
    now = int(time.time())
    procs = processes or os.cpu_count() or 1
    chunk = 2000
    ranges = [(i, min(i + chunk, count)) for i in range(0, count, chunk)]
    started = time.monotonic()
    log(f"minting {count} {alg} tokens on {procs} processes (cached afterwards in {cache_dir}) ...")
    tmp = path + ".tmp"
    with multiprocessing.get_context("fork").Pool(procs, _init_worker, (cache_dir, alg, now)) as pool, \
            open(tmp, "w") as out:
        for done, text in enumerate(pool.imap(_mint_range, ranges), 1):
            out.write(text)
            if done % 20 == 0:
                log(f"  {min(done * chunk, count)}/{count} ({time.monotonic() - started:.0f} s)")
    os.replace(tmp, path)
    with open(meta_path, "w") as f:
        json.dump({"exp": now + TOKEN_LIFETIME, "count": count, "bytes": os.path.getsize(path)}, f)
    log(f"minted {count} {alg} tokens in {time.monotonic() - started:.1f} s: {path}")
    return path


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alg", default="RS256", choices=["RS256", "PS256", "ES256", "EdDSA"])
    parser.add_argument("--count", type=int, default=200_000)
    args = parser.parse_args(argv)
    print(token_file(args.alg, args.count, log=lambda m: print(m, file=sys.stderr)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
