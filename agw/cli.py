"""The `agw` command: run the proxy, check a config, or start the development identity provider."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import TYPE_CHECKING, Optional

from . import __version__
from .config import ConfigError, load

if TYPE_CHECKING:
    from .check import Checked

log = logging.getLogger("agw")


def _parse_resolve(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values or []:
        key, sep, addr = v.partition("=")
        if not sep or ":" not in key or ":" not in addr:
            raise SystemExit(f"agw: --resolve expects name.namespace:port=host:port, got {v!r}")
        out[key.strip()] = addr.strip()
    return out


def build_parser(dev_idp_options: bool = True) -> argparse.ArgumentParser:
    """The `agw` argument parser. `dev_idp_options=False` leaves out the options of `agw dev-idp` (only its
    own help needs them), so `agw run` never imports the development identity provider."""
    p = argparse.ArgumentParser(prog="agw", description="A fast reverse proxy that authenticates every "
                                "request with a JSON Web Token.")
    p.add_argument("--version", action="version", version=f"agw {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add_config_args(sp: argparse.ArgumentParser, required: bool) -> None:
        sp.add_argument("-f", "-c", "--file", "--config", dest="files", action="append", default=[],
                        required=required, metavar="FILE",
                        help="config file (native agw YAML and/or Gateway API + AgentgatewayPolicy "
                             "documents); repeatable")
        sp.add_argument("--resolve", action="append", default=[], metavar="NAME.NS:PORT=HOST:PORT",
                        help="map a Kubernetes Service port to an address (repeatable)")

    run = sub.add_parser("run", help="run the proxy (with no -f: a self-contained demo)",
                         description="Run the proxy with the config files given by -f. With no -f, agw run starts "
                                     "a self-contained demo: a development identity provider, a backend and a "
                                     "proxy between them, with the commands to try it.")
    add_config_args(run, required=False)
    run.add_argument("--workers", type=int, default=1, help="worker processes sharing the ports (SO_REUSEPORT)")
    run.add_argument("--admin", default="127.0.0.1:15000", metavar="ADDR",
                     help="admin listener for /healthz, /readyz, /metrics (default 127.0.0.1:15000; "
                          "'off' disables it)")
    run.add_argument("--drain-timeout", type=float, default=15.0, metavar="SECONDS",
                     help="on SIGTERM, how long requests in flight may take to finish (default 15)")
    run.add_argument("--access-log", default="-", metavar="PATH",
                     help="one JSON line per request: '-' stdout (default), a file, or 'off'")
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.add_argument("--log-format", default="json", choices=["json", "text"],
                     help="errors, JWKS events and reloads, on stderr (default json)")
    run.add_argument("--watch", action="store_true",
                     help="reload when a config file changes (SIGHUP always reloads)")

    check = sub.add_parser("check", help="validate config files and print the status of each policy and route")
    add_config_args(check, required=True)

    idp = sub.add_parser("dev-idp", help="FOR DEVELOPMENT ONLY: a local identity provider with Keycloak's "
                         "paths that issues tokens to anyone who knows user1/password")
    if dev_idp_options:
        from .devtools.dev_idp import build_arg_parser
        build_arg_parser(idp)
    return p


def load_or_exit(files: list[str], resolve: dict[str, str]) -> Checked:
    """Load, validate and check (every policy built once, for `run` to serve); on any problem print the
    same lines as `agw check` and exit 2."""
    from .check import check
    try:
        loaded = load(files, resolve=resolve)
    except ConfigError as e:
        for line in e.lines():
            print(line, file=sys.stderr)
        raise SystemExit(2)
    checked = check(loaded)
    if not checked.ok:
        for line in checked.refusals:
            print(line, file=sys.stderr)
        raise SystemExit(2)
    for w in loaded.warnings:
        log.warning("%s", w)
    return checked


def cmd_check(args: argparse.Namespace) -> int:
    from .check import check_files

    lines, ok = check_files(args.files, _parse_resolve(args.resolve))
    for line in lines:
        print(line)
    return 0 if ok else 1


def cmd_run(args: argparse.Namespace) -> int:
    from .serve.accesslog import AccessLog, open_sink
    from .serve.app import ConfigSource, Runtime, install_uvloop, parse_admin, serve

    if not args.files:
        from .devtools.demo import run_demo
        return run_demo(args)
    resolve = _parse_resolve(args.resolve)
    try:
        runtime = Runtime(load_or_exit(args.files, resolve))   # the policies `check` built, before binding
    except ConfigError as e:   # what only the runtime can judge: a certificate that cannot be served
        for line in e.lines():
            print(line, file=sys.stderr)
        return 2
    admin = parse_admin(args.admin)
    source = ConfigSource(args.files, resolve)
    if args.workers > 1:
        from .serve.workers import run_workers
        return run_workers(runtime, args.workers, admin=admin, drain_timeout=args.drain_timeout,
                           source=source, watch=args.watch, access_log=args.access_log)
    install_uvloop()
    sink = open_sink(args.access_log)
    try:
        return asyncio.run(serve(runtime, drain_timeout=args.drain_timeout, admin=admin, source=source,
                                 watch=args.watch, access_log=AccessLog(sink) if sink is not None else None))
    except OSError as e:
        print(f"agw: cannot listen: {e}", file=sys.stderr)
        return 1


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["dev-idp"] and not {"-h", "--help"} & set(argv):
        from .devtools.dev_idp import main as dev_idp_main
        return dev_idp_main(argv[1:])
    parser = build_parser(dev_idp_options=argv[:1] == ["dev-idp"])
    args = parser.parse_args(argv)
    from .serve.accesslog import setup_logging
    setup_logging(getattr(args, "log_level", "info"), getattr(args, "log_format", "text"))
    if args.command == "run":
        return cmd_run(args)
    if args.command == "check":
        return cmd_check(args)
    parser.print_help()
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
