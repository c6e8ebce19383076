"""The ``cairn-server`` command line: ``serve`` and the admin commands.

Every subcommand works on the same state as ``serve`` (the data folder, or
``--db``/``--storage``); those flags may appear anywhere after the command
name. Errors print one sentence on stderr. Exit codes: 0 success, 1 failure or
refusal, 2 bad arguments or values, 3 not found, 4 conflict or forbidden,
5 database or storage unavailable, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from server import __version__
from server.cli import devices, keys, maintenance, orgs, reports, serve, users
from server.cli.common import location_parent, split_location_flags
from server.config import resolve_locations
from server.errors import BadRequest, Conflict, Forbidden, NotFound, ServerError, ServiceUnavailable

EXIT_CODES = ((BadRequest, 2), (NotFound, 3), (Conflict, 4), (Forbidden, 4),
              (ServiceUnavailable, 5))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cairn-server", description="Cairn server: organizations, users, devices, "
                                         "licenses and encrypted storage for Cairn agents.")
    parser.add_argument("--version", action="version", version=f"cairn-server {__version__}")
    sub = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    parent = location_parent()
    for module in (serve, orgs, users, devices, reports, maintenance, keys):
        module.add_parsers(sub, parent)
    return parser


def exit_code(exc: ServerError) -> int:
    return next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), 1)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        flags, rest = split_location_flags(argv)
        args = build_parser().parse_args(rest)
        locations = resolve_locations(flags.get("data"), flags.get("db"),
                                      flags.get("storage"), os.environ)
        return int(args.handler(args, locations))
    except ServerError as exc:
        print(f"cairn-server: {exc.detail}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        print("cairn-server: interrupted", file=sys.stderr)
        return 130
