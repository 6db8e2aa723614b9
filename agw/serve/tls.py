"""TLS at the edge: a bind's certificates, chosen per handshake by SNI, reloadable without a restart.

Three layers:
- `load_certificate()` reads one `{cert, key}` pair with `cryptography` first (so a bad file is refused with its
  field path and a reason, never half-loaded into a live context): the leaf's names (subjectAltName DNS names,
  else its common name), its key type, its validity, and that the key matches the certificate.
- `BindTls` is what one config compiles a bind's `tls:` into: one `ssl.SSLContext` per set of certificates a
  name can be answered with (an ECDSA and an RSA certificate for the same names share one context, and
  OpenSSL picks the one the client's signature algorithms allow), a name -> context table, and the default
  (the first certificate: clients without SNI, or with a name no certificate has).
- `TlsFront` is the context a listening socket is created with. It lives as long as the bind (reloads included)
  and carries what must outlive a config: the session-ticket keys (OpenSSL makes them when the context is made,
  and Python's ssl exposes no way to set or rotate them) and the TLS 1.2 session cache. Its `sni_callback`
  hands every handshake to the current `BindTls`'s context for the name the client asked for; a reload only
  swaps `BindTls`, so connections stay open, and a session resumes across certificate renewals. Made before
  `--workers` forks, one front's ticket keys are shared by every worker: a returning client resumes whichever
  worker SO_REUSEPORT hands it to.

Client certificates (`clientCertificate`) live here too; the RFC 8705 check of certificate-bound tokens is a
request policy, agw/jwt/binding.py.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import logging
import os
import ssl
from dataclasses import dataclass
from typing import Any, Optional

from ..config import ConfigError

log = logging.getLogger("agw.tls")

# Mozilla's "intermediate" configuration (v5.7) for TLS 1.2; TLS 1.3's suites are OpenSSL's defaults, which are
# Mozilla's list. Its DHE-RSA-* suites are left out: Python's ssl enables no finite-field DH group unless a
# dhparam file is loaded, so OpenSSL would never choose them anyway.
INTERMEDIATE_TLS12_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
))
ALPN = ["http/1.1"]          # `h2` joins once HTTP/2 is served
CLIENT_MODES = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL}
EXPIRY_WARNING = datetime.timedelta(days=14)


@dataclass(frozen=True)
class LoadedCertificate:
    """One certificate of a bind, checked: where it came from and what a handshake will present."""
    path: str                  # field path in the config, for messages
    cert_file: str
    key_file: str
    names: tuple[str, ...]     # lower-case DNS names (`*.example.com` kept as written), in certificate order
    key_type: str              # the OpenSSL certificate slot: RSA, EC, Ed25519, Ed448
    key_detail: str            # e.g. "EC P-256", "RSA 2048"
    not_after: datetime.datetime
    sha256: str                # hex of the leaf's DER


def _no_password() -> bytes:
    raise ValueError("encrypted private keys are not supported")


def _key_type(public_key: Any) -> tuple[str, str]:
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA", f"RSA {public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "EC", f"EC {public_key.curve.name}"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519", "Ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "Ed448", "Ed448"
    raise ValueError(f"unsupported key type {type(public_key).__name__}")


def _read(path: str, field: str, filename: str) -> bytes:
    try:
        with open(filename, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError([(f"{path}.{field}", f"cannot read {filename}: {e.strerror}")]) from None


def load_certificate(path: str, cert_file: str, key_file: str,
                     now: Optional[datetime.datetime] = None) -> LoadedCertificate:
    """Read and check one certificate chain and its key; raises ConfigError naming `path.cert` / `path.key`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    pem = _read(path, "cert", cert_file)
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ConfigError([(f"{path}.cert", f"{cert_file}: no PEM certificate in it")]) from None
    leaf = chain[0]
    key_pem = _read(path, "key", key_file)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise ConfigError([(f"{path}.key", f"{key_file}: encrypted private keys are not supported")]) from None
    except (ValueError, Exception) as e:   # noqa: BLE001 - cryptography raises several types for bad keys
        raise ConfigError([(f"{path}.key", f"{key_file}: not a PEM private key ({e})")]) from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
        raise ConfigError([(f"{path}.key", f"{key_file} is not the key of the certificate in {cert_file} "
                                           "(the first certificate of the file must be the server's own)")])
    try:
        key_type, key_detail = _key_type(leaf.public_key())
    except ValueError as e:
        raise ConfigError([(f"{path}.cert", f"{cert_file}: {e}")]) from None
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if leaf.not_valid_after_utc <= now:
        raise ConfigError([(f"{path}.cert", f"{cert_file}: expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")])
    if leaf.not_valid_before_utc > now:
        raise ConfigError([(f"{path}.cert", f"{cert_file}: not valid before "
                                            f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")])
    names: list[str] = []
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        pass
    if not names:   # no DNS name in subjectAltName: the common name, as older clients read it
        names = [a.value.lower() for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
                 if isinstance(a.value, str) and "." in a.value and " " not in a.value]
    der = leaf.public_bytes(serialization.Encoding.DER)
    return LoadedCertificate(path, cert_file, key_file, tuple(dict.fromkeys(names)), key_type, key_detail,
                             leaf.not_valid_after_utc, hashlib.sha256(der).hexdigest())


def base_context() -> ssl.SSLContext:
    """Server defaults: TLS 1.2 and 1.3, Mozilla intermediate ciphers in the client's order, no renegotiation,
    no compression, session tickets on (TLS 1.2 and 1.3), ALPN http/1.1."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_ciphers(INTERMEDIATE_TLS12_CIPHERS)
    ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE     # Mozilla intermediate: the client chooses
    ctx.options &= ~ssl.OP_NO_TICKET
    ctx.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    ctx.set_alpn_protocols(ALPN)
    return ctx


@dataclass(frozen=True)
class ClientAuth:
    mode: int                   # ssl.CERT_REQUIRED / ssl.CERT_OPTIONAL / ssl.CERT_NONE
    ca_file: Optional[str]


class BindTls:
    """One config's TLS for one bind: certificates checked and loaded into contexts, the SNI table."""

    def __init__(self, tls: Any, base_dir: str, path: str) -> None:
        if tls.certificates is not None:
            pairs = [(f"{path}.certificates[{i}]", c.cert, c.key) for i, c in enumerate(tls.certificates)]
        else:
            pairs = [(path, tls.cert, tls.key)]
        problems: list[tuple[str, str]] = []
        certs: list[LoadedCertificate] = []
        for p, cert, key in pairs:
            try:
                certs.append(load_certificate(p, os.path.join(base_dir, cert), os.path.join(base_dir, key)))
            except ConfigError as e:
                problems.extend(e.problems)
        self.client = ClientAuth(ssl.CERT_NONE, None)
        cc = tls.client_certificate
        if cc is not None:
            ca = os.path.join(base_dir, cc.ca_certificates)
            self.client = ClientAuth(CLIENT_MODES[cc.mode.strip().lower()], ca)
            try:
                base_context().load_verify_locations(cafile=ca)
            except (OSError, ssl.SSLError) as e:
                problems.append((f"{path}.clientCertificate.caCertificates", f"cannot load {ca}: {e}"))
        if problems:
            raise ConfigError(problems)
        for i, c in enumerate(certs):
            if i and not c.names:
                problems.append((f"{c.path}.cert", f"{c.cert_file} names no host (no DNS name in its "
                                                   "subjectAltName): only the first certificate can be one "
                                                   "without, as the default"))
        if problems:
            raise ConfigError(problems)
        self.certificates = certs
        # For each name: the first certificate of each key type that has it (ECDSA and RSA side by side).
        groups: dict[str, tuple[int, ...]] = {}
        for name in dict.fromkeys(n for c in certs for n in c.names):
            chosen: dict[str, int] = {}
            for i, c in enumerate(certs):
                if name in c.names:
                    chosen.setdefault(c.key_type, i)
            groups[name] = tuple(sorted(chosen.values()))
        default = groups[certs[0].names[0]] if certs[0].names else (0,)
        contexts: dict[tuple[int, ...], ssl.SSLContext] = {}
        for group in [default, *groups.values()]:
            if group not in contexts:
                try:
                    contexts[group] = self._context(group)
                except (OSError, ssl.SSLError, ValueError) as e:
                    raise ConfigError([(certs[group[0]].path, f"cannot load into OpenSSL: {e}")]) from None
        self.default = contexts[default]
        self.default_group = default
        self.exact: dict[str, ssl.SSLContext] = {}
        self.wildcard: dict[str, ssl.SSLContext] = {}   # "example.com" -> context of "*.example.com"
        for name, group in groups.items():
            if name.startswith("*."):
                self.wildcard[name[2:]] = contexts[group]
            else:
                self.exact[name] = contexts[group]

    def _context(self, group: tuple[int, ...]) -> ssl.SSLContext:
        ctx = base_context()
        for i in group:
            c = self.certificates[i]
            ctx.load_cert_chain(c.cert_file, c.key_file, password=_no_password)
        self._client_auth(ctx)
        return ctx

    def _client_auth(self, ctx: ssl.SSLContext) -> None:
        ctx.verify_mode = self.client.mode
        if self.client.ca_file is not None:
            ctx.load_verify_locations(cafile=self.client.ca_file)

    def select(self, server_name: Optional[str]) -> ssl.SSLContext:
        """The context for a ClientHello's server name: exact name, then `*.parent`, then the default."""
        if server_name:
            name = server_name.lower()
            ctx = self.exact.get(name)
            if ctx is not None:
                return ctx
            dot = name.find(".")
            if dot > 0:
                ctx = self.wildcard.get(name[dot + 1:])
                if ctx is not None:
                    return ctx
        return self.default

    def files(self) -> list[str]:
        out = [f for c in self.certificates for f in (c.cert_file, c.key_file)]
        if self.client.ca_file is not None:
            out.append(self.client.ca_file)
        return out

    def log_loaded(self, where: str) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        for c in self.certificates:
            soon = c.not_after - now < EXPIRY_WARNING
            (log.warning if soon else log.info)(
                "tls %s: %s: %s for %s, expires %s%s", where, c.path, c.key_detail, ", ".join(c.names) or "(no name)",
                f"{c.not_after:%Y-%m-%d}", " (soon)" if soon else "", extra={"event": "tls_certificate"})

    def new_front(self) -> ssl.SSLContext:
        """The long-lived context a socket is served with: the default certificates, this client-auth."""
        return self._context(self.default_group)


class TlsFront:
    """The SSLContext a bind's server is created with, for the life of the bind; see the module docstring."""

    def __init__(self, tls: BindTls) -> None:
        self.current = tls
        self.context = tls.new_front()
        self.context.sni_callback = self._sni

    def install(self, tls: BindTls) -> None:
        """Serve new handshakes with `tls` (a reload); connections already open keep their session."""
        self.current = tls
        # OpenSSL takes the verify mode from the context a connection starts with (the trust store from the
        # one the SNI callback switches to): keep the front's in step.
        self.context.verify_mode = tls.client.mode

    def _sni(self, ssl_object: Any, server_name: Optional[str], _ctx: ssl.SSLContext) -> None:
        ssl_object.context = self.current.select(server_name)


# --- the client's certificate, for request policies ------------------------------------------------------------

@dataclass(frozen=True)
class PeerCertificate:
    """A verified client certificate as authorization rules see it (`source.certificate.*`)."""
    subject: str                        # RFC 4514 string, e.g. "CN=client-1,O=Example"
    sans: tuple[str, ...]               # "DNS:...", "URI:...", "email:...", "IP:..."
    sha256: str                         # hex of the DER
    x5t_s256: str                       # base64url of the SHA-256 of the DER (RFC 8705 `cnf.x5t#S256`)


def _ssl_object(request: Any) -> Any:
    """The TLS object of a request's connection, or None on plain HTTP.

    Reached through the proxy's exchange (`request.proto.transport`): the proxy has no public hook for it yet
    (see issue 16's report: a `request.tls` / `peer_certificate` attribute set at connection_made)."""
    proto = getattr(request, "proto", None)
    transport = getattr(proto, "transport", None)
    if transport is None:
        return None
    return transport.get_extra_info("ssl_object")


def peer_certificate_der(request: Any) -> Optional[bytes]:
    obj = _ssl_object(request)
    if obj is None:
        return None
    return obj.getpeercert(binary_form=True)


def describe_certificate(der: bytes) -> PeerCertificate:
    from cryptography import x509
    cert = x509.load_der_x509_certificate(der)
    sans: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans += [f"DNS:{v}" for v in ext.get_values_for_type(x509.DNSName)]
        sans += [f"URI:{v}" for v in ext.get_values_for_type(x509.UniformResourceIdentifier)]
        sans += [f"email:{v}" for v in ext.get_values_for_type(x509.RFC822Name)]
        sans += [f"IP:{v}" for v in ext.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    digest = hashlib.sha256(der).digest()
    return PeerCertificate(cert.subject.rfc4514_string(), tuple(sans), digest.hex(),
                           base64.urlsafe_b64encode(digest).rstrip(b"=").decode())


def peer_certificate(request: Any) -> Optional[PeerCertificate]:
    """The verified client certificate of the request's connection (None: plain HTTP or none sent)."""
    der = peer_certificate_der(request)
    return describe_certificate(der) if der else None


__all__ = ["BindTls", "LoadedCertificate", "PeerCertificate", "TlsFront", "base_context",
           "describe_certificate", "load_certificate", "peer_certificate"]
