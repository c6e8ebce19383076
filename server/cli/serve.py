"""``cairn-server serve``: run the HTTP API with uvicorn."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import uvicorn

from server.cli.common import opened
from server.config import DEFAULT_MAX_OBJECT_BYTES, DEFAULT_PORT, Locations, ServeOptions
from server.metadata.db import redact

log = logging.getLogger("cairn.server")


def cmd_serve(args: argparse.Namespace, loc: Locations) -> int:
    from server.api.app import create_app  # FastAPI loads only for serve

    options = ServeOptions(host=args.host, port=args.port, tls_cert=args.tls_cert,
                           tls_key=args.tls_key, insecure_http=args.insecure_http,
                           purge_interval_s=args.purge_interval,
                           max_object_bytes=args.max_object_bytes)
    options.check()
    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    with opened(loc) as rt:
        scheme = "https" if options.tls_cert else "http"
        log.info("Cairn server on %s://%s:%d (data %s, database %s, storage %s)", scheme,
                 options.host, options.port, loc.data_dir, redact(rt.db.url), loc.storage_url)
        config = uvicorn.Config(
            create_app(rt, options), host=options.host, port=options.port,
            ssl_certfile=str(options.tls_cert) if options.tls_cert else None,
            ssl_keyfile=str(options.tls_key) if options.tls_key else None,
            log_level=args.log_level, server_header=False, timeout_graceful_shutdown=10)
        uvicorn.Server(config).run()
    return 0


def add_parsers(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[parent], help="run the server")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                                                         "127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--tls-cert", type=Path, metavar="PEM")
    p.add_argument("--tls-key", type=Path, metavar="PEM")
    p.add_argument("--insecure-http", action="store_true",
                   help="allow plain HTTP on a non-loopback address (behind a TLS proxy)")
    p.add_argument("--purge-interval", type=float, default=3600.0, metavar="SECONDS",
                   help="how often to purge expired trash and re-count storage (0: never)")
    p.add_argument("--max-object-bytes", type=int, default=DEFAULT_MAX_OBJECT_BYTES,
                   metavar="N", help="largest object an agent may upload")
    p.add_argument("--log-level", default="info",
                   choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(handler=cmd_serve)
