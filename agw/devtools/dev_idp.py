"""A development identity provider with Keycloak's paths. FOR DEVELOPMENT ONLY.

It lets `agw run` (the demo) and `agw dev-idp` show JWT authentication without installing Keycloak:

    POST /realms/master/protocol/openid-connect/token        password and client_credentials grants
    GET  /realms/master/protocol/openid-connect/certs        the JWKS
    GET  /realms/master/.well-known/openid-configuration     discovery (also at /.well-known/...)

It signs RS256 tokens with an RSA-2048 key generated at start (so tokens die with the process), checks the
users' passwords from an in-memory table, and accepts any client: never expose it beyond a developer machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import signal
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from agw.devtools._http import HttpServer, Request, Response

REALM_PATH = "/realms/master"
TOKEN_PATH = f"{REALM_PATH}/protocol/openid-connect/token"
CERTS_PATH = f"{REALM_PATH}/protocol/openid-connect/certs"
DISCOVERY_PATHS = (f"{REALM_PATH}/.well-known/openid-configuration", "/.well-known/openid-configuration")
TOKEN_LIFETIME_SECONDS = 300
MAX_REQUEST_BODY_BYTES = 16 * 1024
DEFAULT_USERS: Mapping[str, str] = {"user1": "password"}
REALM_ROLES = ["default-roles-master", "offline_access", "uma_authorization"]

_BANNER_LINES = (
    "agw dev-idp: a DEVELOPMENT-ONLY identity provider.",
    "Anyone who can reach it can get tokens (fixed passwords, any client).",
    "Its key is generated at start and lives only in memory. Never use it in",
    "production; point agw at your real identity provider instead.",
)
DEVELOPMENT_ONLY_BANNER = "\n".join(
    ["*" * 78, *(f"* {line:<74} *" for line in _BANNER_LINES), "*" * 78]
)

_JSON = "application/json"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint_b64url(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _json_response(status: int, document: Any, extra_headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, orjson.dumps(document), _JSON, extra_headers or [])


def _oauth_error(status: int, error: str, description: str) -> Response:
    return _json_response(
        status,
        {"error": error, "error_description": description},
        [("Cache-Control", "no-store"), ("Pragma", "no-cache")],
    )


def _subject_for(username: str) -> str:
    # Stable per user, shaped like Keycloak's subject (a UUID), so a restart keeps the same `sub`.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"agw-dev-idp:{username}"))


class DevIdp:
    """The development IdP. `start()` binds the port; `mint()` works at any time."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8081,
        issuer: str | None = None,
        users: Mapping[str, str] = DEFAULT_USERS,
        audience: str = "my-application",
    ) -> None:
        self.host = host
        self._issuer_override = issuer
        self.users = dict(users)
        self.audience = audience
        self._private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_numbers = self._private_key.public_key().public_numbers()
        self._public_jwk = {"kty": "RSA", "e": _uint_b64url(public_numbers.e), "n": _uint_b64url(public_numbers.n)}
        self.kid = self._thumbprint(self._public_jwk)
        self._jwks_body = orjson.dumps(
            {"keys": [{"kid": self.kid, "kty": "RSA", "alg": "RS256", "use": "sig", **self._public_jwk}]}
        )
        self._header_segment = _b64url(orjson.dumps({"alg": "RS256", "typ": "JWT", "kid": self.kid}))
        self._server = HttpServer(self._handle, host, port, max_body_bytes=MAX_REQUEST_BODY_BYTES)

    @staticmethod
    def _thumbprint(public_jwk: Mapping[str, str]) -> str:
        # RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace.
        canonical = orjson.dumps({"e": public_jwk["e"], "kty": "RSA", "n": public_jwk["n"]})
        return _b64url(hashlib.sha256(canonical).digest())

    # --- addresses -----------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._server.port

    @property
    def issuer(self) -> str:
        if self._issuer_override is not None:
            return self._issuer_override
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{REALM_PATH}"

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def jwks_url(self) -> str:
        return self.base_url + CERTS_PATH

    @property
    def token_url(self) -> str:
        return self.base_url + TOKEN_PATH

    @property
    def jwks(self) -> dict[str, Any]:
        return orjson.loads(self._jwks_body)

    # --- lifecycle -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self._server.start()

    async def close(self) -> None:
        await self._server.close()

    # --- tokens --------------------------------------------------------------------------------------------
    def mint(self, **claims: Any) -> str:
        """A signed RS256 token with Keycloak-like defaults; `claims` override them, and None removes one."""
        now = int(time.time())
        username = claims.get("preferred_username", "user1")
        payload: dict[str, Any] = {
            "exp": now + TOKEN_LIFETIME_SECONDS,
            "iat": now,
            "nbf": now,
            "jti": str(uuid.uuid4()),
            "iss": self.issuer,
            "aud": self.audience,
            "sub": _subject_for(str(username)),
            "typ": "Bearer",
            "azp": self.audience,
            "preferred_username": username,
            "realm_access": {"roles": list(REALM_ROLES)},
            "scope": "profile email",
        }
        for name, value in claims.items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        signing_input = f"{self._header_segment}.{_b64url(orjson.dumps(payload))}".encode("ascii")
        signature = self._private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode('ascii')}.{_b64url(signature)}"

    # --- HTTP ----------------------------------------------------------------------------------------------
    def _handle(self, request: Request) -> Response:
        path = request.path
        if path == TOKEN_PATH:
            if request.method != "POST":
                return _json_response(405, {"error": "HTTP 405 Method Not Allowed"}, [("Allow", "POST")])
            return self._token(request)
        if request.method not in ("GET", "HEAD"):
            return _json_response(405, {"error": "HTTP 405 Method Not Allowed"}, [("Allow", "GET, HEAD")])
        if path == CERTS_PATH:
            return Response(200, self._jwks_body, _JSON, [("Cache-Control", "no-cache")])
        if path in DISCOVERY_PATHS:
            return _json_response(200, self._discovery())
        if path == "/":
            return Response(200, f"agw dev-idp (development only). Issuer: {self.issuer}\n".encode())
        return _json_response(404, {"error": "Unable to find matching target resource method"})

    def _discovery(self) -> dict[str, Any]:
        issuer = self.issuer
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/protocol/openid-connect/auth",
            "token_endpoint": self.token_url,
            "jwks_uri": self.jwks_url,
            "grant_types_supported": ["password", "client_credentials"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "azp", "preferred_username"],
        }

    def _token(self, request: Request) -> Response:
        content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return _oauth_error(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
        try:
            form = dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
        except UnicodeDecodeError:
            return _oauth_error(400, "invalid_request", "Form body is not UTF-8")
        client_id = form.get("client_id") or self._basic_auth_client(request) or self.audience
        # The configured audience is always in `aud`, so a policy written for it accepts tokens whatever
        # client_id the user's curl sends (as a Keycloak audience mapper would arrange); the client is added.
        audience: str | list[str] = self.audience if client_id == self.audience else [self.audience, client_id]
        grant_type = form.get("grant_type")
        if grant_type == "password":
            username = form.get("username", "")
            password = form.get("password")
            if not username or password is None:
                return _oauth_error(401, "invalid_grant", "Invalid user credentials")
            if self.users.get(username) != password:
                return _oauth_error(401, "invalid_grant", "Invalid user credentials")
            token = self.mint(preferred_username=username, aud=audience, azp=client_id)
        elif grant_type == "client_credentials":
            account = f"service-account-{client_id}"
            token = self.mint(preferred_username=account, aud=audience, azp=client_id)
        elif grant_type is None:
            return _oauth_error(400, "invalid_request", "Missing form parameter: grant_type")
        else:
            return _oauth_error(400, "unsupported_grant_type", f"Unsupported grant_type {grant_type}")
        body = {
            "access_token": token,
            "expires_in": TOKEN_LIFETIME_SECONDS,
            "refresh_expires_in": 0,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": "profile email",
        }
        return _json_response(200, body, [("Cache-Control", "no-store"), ("Pragma", "no-cache")])

    @staticmethod
    def _basic_auth_client(request: Request) -> str | None:
        authorization = request.header("authorization") or ""
        if authorization[:6].lower() != "basic ":
            return None
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        return decoded.split(":", 1)[0] or None


def _install_event_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:  # uvloop is a dependency, but the dev IdP also runs fine on the default loop
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _serve_until_signalled(idp: DevIdp) -> None:
    await idp.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(DEVELOPMENT_ONLY_BANNER, file=sys.stderr, flush=True)
    print(
        f"dev-idp listening on {idp.base_url}\n"
        f"  issuer: {idp.issuer}\n"
        f"  jwks:   {idp.jwks_url}\n"
        f"  token:  {idp.token_url}   (grant_type=password, users: {', '.join(sorted(idp.users))})",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await idp.close()


def run_dev_idp(
    host: str = "127.0.0.1",
    port: int = 8081,
    issuer: str | None = None,
    users: Mapping[str, str] = DEFAULT_USERS,
    audience: str = "my-application",
) -> None:
    """Serve the dev IdP until SIGINT or SIGTERM."""
    _install_event_loop_policy()
    idp = DevIdp(host=host, port=port, issuer=issuer, users=users, audience=audience)
    asyncio.run(_serve_until_signalled(idp))


def build_arg_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The `agw dev-idp` options; pass a subparser to add them to it."""
    if parser is None:
        parser = argparse.ArgumentParser(
            prog="agw dev-idp",
            description="Development-only identity provider with Keycloak's paths. Never use it in production.",
        )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port to listen on (default 8081)")
    parser.add_argument("--issuer", default=None, help="issuer URL (default http://HOST:PORT/realms/master)")
    parser.add_argument(
        "--user",
        action="append",
        default=None,
        metavar="NAME:PASSWORD",
        help="a user for the password grant (repeatable; default user1:password)",
    )
    parser.add_argument("--audience", default="my-application", help="default aud claim (default my-application)")
    return parser


def users_from_args(values: Sequence[str] | None) -> dict[str, str]:
    if not values:
        return dict(DEFAULT_USERS)
    users: dict[str, str] = {}
    for value in values:
        name, sep, password = value.partition(":")
        if not sep or not name:
            raise ValueError(f"--user wants NAME:PASSWORD, got {value!r}")
        users[name] = password
    return users


def main(argv: Sequence[str] | None = None) -> int:
    """`agw dev-idp [--host H] [--port N] [--issuer URL] [--user NAME:PASSWORD] [--audience A]`."""
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    try:
        users = users_from_args(args.user)
    except ValueError as err:
        parser.error(str(err))
    try:
        run_dev_idp(args.host, args.port, args.issuer, users, args.audience)
    except OSError as err:
        print(f"agw dev-idp: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
