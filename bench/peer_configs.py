"""Configs of the systems under test and of the upstream, generated per run (ports and key paths vary)."""
from __future__ import annotations

import json
from typing import Optional

from mint_tokens import AUDIENCE, ISSUER

UPSTREAM_BODY = '{"headers": {"Accept": "*/*", "Host": "127.0.0.1", "User-Agent": "wrk"}, "origin": "127.0.0.1"}'


def nginx_conf(prefix: str, port: int, upstream_port: Optional[int]) -> str:
    temp = "\n".join(f"  {kind}_temp_path {prefix}/tmp/{kind};" for kind in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    if upstream_port is None:
        body = UPSTREAM_BODY.replace("'", "\\'")
        server = (f"    location / {{\n      default_type application/json;\n      return 200 '{body}';\n    }}")
        upstream = ""
    else:
        upstream = (f"  upstream up {{\n    server 127.0.0.1:{upstream_port};\n    keepalive 128;\n"
                    f"    keepalive_requests 1000000;\n  }}\n")
        server = ("    location / {\n      proxy_pass http://up;\n      proxy_http_version 1.1;\n"
                  "      proxy_set_header Connection \"\";\n    }")
    return f"""worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{temp}
  keepalive_requests 1000000;
  keepalive_timeout 75s;
{upstream}  server {{
    listen 127.0.0.1:{port} backlog=1024;
{server}
  }}
}}
"""


def haproxy_cfg(port: int, upstream_port: int, alg: Optional[str], pem_path: Optional[str]) -> str:
    jwt_rules = ""
    if alg is not None:
        deny_no_token = 'deny_status 401 content-type text/plain string "authentication failure: no bearer token found"'
        jwt_rules = f"""\
  http-request deny {deny_no_token} unless {{ req.hdr(authorization) -m found }}
  http-request set-var(txn.alg) http_auth_bearer,jwt_header_query('$.alg')
  http-request set-var(txn.iss) http_auth_bearer,jwt_payload_query('$.iss')
  http-request set-var(txn.aud) http_auth_bearer,jwt_payload_query('$.aud')
  http-request set-var(txn.exp) http_auth_bearer,jwt_payload_query('$.exp','int')
  http-request deny deny_status 401 unless {{ var(txn.alg) -m str {alg} }}
  http-request deny deny_status 401 unless {{ var(txn.iss) -m str "{ISSUER}" }}
  http-request deny deny_status 401 unless {{ var(txn.aud) -m str "{AUDIENCE}" }}
  http-request set-var(txn.now) date()
  http-request deny deny_status 401 if {{ var(txn.exp),sub(txn.now) -m int lt 0 }}
  http-request deny deny_status 401 unless {{ http_auth_bearer,jwt_verify(txn.alg,"{pem_path}") -m int 1 }}
"""
    return f"""global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend f
  bind 127.0.0.1:{port}
{jwt_rules}  default_backend b
backend b
  http-reuse always
  server s1 127.0.0.1:{upstream_port}
"""


def agw_yaml(port: int, upstream_port: int, jwks_path: Optional[str], *, token_cache: bool = True) -> str:
    """agw's native config (written as JSON, which is YAML): one route to the upstream, jwtAuth if jwks_path."""
    route: dict = {"name": "bench", "backends": [{"host": f"127.0.0.1:{upstream_port}"}]}
    if jwks_path is not None:
        jwt_auth = {"mode": "strict", "issuer": ISSUER, "audiences": [AUDIENCE], "jwks": {"file": jwks_path}}
        if not token_cache:
            jwt_auth["cache"] = {"enabled": False}
        route["policies"] = {"jwtAuth": jwt_auth}
    config = {"binds": [{"port": port, "address": "127.0.0.1", "listeners": [{"routes": [route]}]}]}
    return json.dumps(config, indent=2) + "\n"
