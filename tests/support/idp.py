"""The real identity provider of the end-to-end tests: oauth2-mock-server (npm) behind Keycloak's paths,
run by tests/idp/server.js as a Node process.

    idp = MockIdp(log_dir).start()
    idp.issuer      # http://127.0.0.1:PORT/realms/master
    idp.jwks_url    # .../protocol/openid-connect/certs
    idp.password_token()                       # a real RS256 token for user1/password
    idp.mint({"aud": "other"}, alg="ES256")    # any claims, any supported alg (None removes a claim)
    idp.rotate()                               # a new signing key; the old one leaves the JWKS
    idp.stop(); idp.start()                    # same port, new keys (as a restarted IdP)
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .ports import free_port, wait_for_port_closed
from .process import ExternalProcess

IDP_DIR = Path(__file__).resolve().parent.parent / "idp"
REALM_PATH = "/realms/master"
DEFAULT_USER = ("user1", "password")


class IdpUnavailable(RuntimeError):
    """Node or npm is not installed on this machine (the fixtures skip the tests that need the IdP)."""


def ensure_installed() -> None:
    """Install tests/idp's pinned npm dependencies once (npm ci from the committed lock file).

    A file lock makes concurrent test sessions (pytest-xdist) install only once."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise IdpUnavailable("node and npm are needed for the test identity provider (tests/idp)")
    marker = IDP_DIR / "node_modules" / "oauth2-mock-server" / "package.json"
    with open(IDP_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return
        command = ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"]
        done = subprocess.run(command, cwd=IDP_DIR, capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not marker.exists():
            # Not a skip: with node present, a failed install is a broken environment the run must show.
            raise RuntimeError(f"`{' '.join(command)}` in {IDP_DIR} failed:\n{done.stdout}\n{done.stderr}")


def _http(method: str, url: str, *, form: dict[str, str] | None = None, payload: Any = None,
          timeout: float = 10.0) -> tuple[int, Any]:
    data = None
    headers = {}
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif payload is not None:
        data = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        body = err.read()
        try:
            return err.code, json.loads(body)
        except ValueError:
            return err.code, body.decode(errors="replace")


class MockIdp:
    """A running (or stopped) test IdP on a fixed port, so a proxy configured with it survives restarts."""

    def __init__(
        self,
        log_dir: str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        users: dict[str, str] | None = None,
        audience: str = "my-application",
        ttl: int = 300,
        issuer: str | None = None,
    ) -> None:
        """`issuer`: what the IdP calls itself (discovery document, tokens) instead of its own realm URL."""
        ensure_installed()
        self.host = host
        self.port = port or free_port(host)
        self.audience = audience
        argv = ["node", str(IDP_DIR / "server.js"), "--host", host, "--port", str(self.port),
                "--audience", audience, "--ttl", str(ttl)]
        if issuer is not None:
            argv += ["--issuer", issuer]
        for name, password in (users or dict([DEFAULT_USER])).items():
            argv += ["--user", f"{name}:{password}"]
        log_path = Path(log_dir) / f"idp-{self.port}.log" if log_dir is not None else None
        self.process = ExternalProcess(argv, name="idp", cwd=IDP_DIR, ports_to_wait=[self.port], host=host,
                                       log_path=log_path)

    # --- lifecycle ---------------------------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> MockIdp:
        self.process.start(timeout)
        return self

    def stop(self) -> None:
        """Stop the IdP and wait until its port refuses connections."""
        self.process.stop()
        wait_for_port_closed(self.host, self.port)

    def restart(self) -> MockIdp:
        """Same port and issuer, fresh keys (as a restarted oauth2-mock-server)."""
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self.process.running

    def output(self) -> str:
        return self.process.output()

    # --- addresses ---------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}{REALM_PATH}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/certs"

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/token"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    # --- tokens and keys ---------------------------------------------------------------------------------
    def token_response(self, username: str = DEFAULT_USER[0], password: str = DEFAULT_USER[1],
                       client_id: str = "my-application") -> tuple[int, Any]:
        """POST the password grant; returns (status, JSON body) whatever the outcome."""
        form = {"grant_type": "password", "client_id": client_id, "client_secret": "secret",
                "username": username, "password": password}
        return _http("POST", self.token_url, form=form)

    def password_token(self, username: str = DEFAULT_USER[0], password: str = DEFAULT_USER[1],
                       client_id: str = "my-application") -> str:
        """An access token from the password grant (as the guide's curl gets it); raises on refusal."""
        status, body = self.token_response(username, password, client_id)
        if status != 200:
            raise AssertionError(f"password grant refused: {status} {body}")
        return body["access_token"]

    def mint(self, claims: dict[str, Any] | None = None, alg: str = "RS256", *,
             header: dict[str, Any] | None = None, expires_in: int | None = None) -> str:
        """A token signed by the IdP. Claims default to Keycloak's for user1 (iss, aud my-application, sub,
        exp, iat, nbf, ...); given claims override them and None removes one. `header` likewise (e.g.
        {"kid": None} for a token without kid). RS256 uses the current signing key; other algs (PS256,
        ES256, ES384, EdDSA, ...) a key of their own, published in the JWKS from first use."""
        payload: dict[str, Any] = {"alg": alg, "claims": claims or {}}
        if header is not None:
            payload["header"] = header
        if expires_in is not None:
            payload["expires_in"] = expires_in
        status, body = _http("POST", f"{self.base_url}/__control/mint", payload=payload)
        if status != 200:
            raise AssertionError(f"mint failed: {status} {body}")
        return body["token"]

    def rotate(self, alg: str = "RS256", keep_old: bool = False) -> str:
        """Make a new signing key; returns its kid. The old key leaves the JWKS unless keep_old."""
        status, body = _http("POST", f"{self.base_url}/__control/rotate", payload={"alg": alg, "keep_old": keep_old})
        if status != 200:
            raise AssertionError(f"rotate failed: {status} {body}")
        return body["kid"]

    def jwks(self) -> dict[str, Any]:
        status, body = _http("GET", self.jwks_url)
        assert status == 200, body
        return body

    def private_jwks(self) -> dict[str, Any]:
        """The private keys (test-only), for signing unusual tokens in the test itself."""
        status, body = _http("GET", f"{self.base_url}/__control/keys")
        assert status == 200, body
        return body

    def __repr__(self) -> str:
        return f"<MockIdp {self.issuer} running={self.running}>"
