"""RFC 9728 protected resource metadata, built from a jwtAuth policy and served by it (issue 18).

MCP clients find their authorization server this way: a 401 names `resource_metadata="URL"`, the client GETs it
and reads `authorization_servers`. The URL is the resource's with `/.well-known/oauth-protected-resource`
inserted before its path (RFC 9728 3.1); the route also answers the bare well-known path.
"""
from __future__ import annotations

import json
from typing import Optional
from urllib.parse import urlsplit

from ..chain import Answer
from ..config.model import JwtAuth, ResourceMetadata

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def bearer_methods(cfg: JwtAuth) -> list[str]:
    """The RFC 9728 bearer methods agw honours for this policy: `header` for an Authorization Bearer token,
    `query` for the RFC 6750 access_token parameter; a cookie or a custom header is none of them."""
    loc = cfg.location
    if loc is None or (loc.header is not None and loc.header.name.lower() == "authorization"
                       and loc.header.prefix.strip().lower() == "bearer"):
        return ["header"]
    if loc.query_parameter is not None and loc.query_parameter.name == "access_token":
        return ["query"]
    return []


def metadata_paths(resource: str) -> tuple[str, list[str]]:
    """(the metadata URL, the request paths that serve it)."""
    parts = urlsplit(resource)
    path = parts.path.rstrip("/")
    url = f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}{path}"
    return url, sorted({WELL_KNOWN + path, WELL_KNOWN})


def issuers_of(cfg: JwtAuth) -> list[str]:
    issuers = [cfg.issuer] if cfg.providers is None else [p.issuer for p in cfg.providers]
    return list(dict.fromkeys(i for i in issuers if i))


def document(cfg: JwtAuth, rm: ResourceMetadata) -> dict:
    doc: dict = {"resource": rm.resource, "authorization_servers": issuers_of(cfg),
                 "bearer_methods_supported": bearer_methods(cfg)}
    scopes = rm.scopes_supported
    if scopes is None:
        profiles = [cfg] if cfg.providers is None else cfg.providers
        scopes = sorted({s for p in profiles for s in (p.required_scopes or [])}) or None
    if scopes is not None:
        doc["scopes_supported"] = scopes
    if rm.resource_documentation is not None:
        doc["resource_documentation"] = rm.resource_documentation
    if rm.resource_policy_uri is not None:
        doc["resource_policy_uri"] = rm.resource_policy_uri
    return doc


class MetadataAnswer:
    """The route's answer to GET/HEAD of its metadata paths (None: not one of them)."""

    def __init__(self, cfg: JwtAuth, rm: ResourceMetadata) -> None:
        self.url, paths = metadata_paths(rm.resource)
        self.paths = frozenset(p.encode() for p in paths)
        body = json.dumps(document(cfg, rm), indent=None, separators=(",", ":")).encode()
        self.answer = Answer(False, "resource_metadata", kind="jwt", status=200, body=body,
                             answer_headers=((b"content-type", b"application/json"),
                                             (b"cache-control", b"public, max-age=300"),
                                             (b"access-control-allow-origin", b"*")))

    def match(self, request) -> Optional[Answer]:
        target = request.target
        q = target.find(b"?")
        path = target if q < 0 else target[:q]
        if path in self.paths and request.method in (b"GET", b"HEAD"):
            return self.answer
        return None
