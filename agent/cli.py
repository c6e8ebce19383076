"""The `cairn` command line: parses arguments, runs a command, turns errors into sentences.

Commands live in ``agent.commands.*`` modules; each has ``register(subparsers)``
that adds its parsers with ``set_defaults(func=...)``. A command function takes
``(args, ctx)`` and returns an exit code.
"""

from __future__ import annotations

import argparse
import getpass
import io
import json
import logging
import os
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TYPE_CHECKING

from agent import __version__
from agent.archive.repository import Repository
from agent.config import AgentPaths
from agent.dest.local import LocalDestination
from agent.errors import CairnError, Interrupted, KeyNotAvailable, UsageError

if TYPE_CHECKING:
    from agent.dest.base import Destination
    from agent.remote.session import RemoteSession

log = logging.getLogger("cairn")


EXIT_BROKEN_PIPE = 141  # as a shell reports a process ended by SIGPIPE


@dataclass(frozen=True)
class Context:
    """What commands need from the outside world, read once."""

    paths: AgentPaths
    env: Mapping[str, str]
    interactive: bool

    def passphrase(self, *, confirm: bool = False, var: str = "CAIRN_PASSPHRASE",
                   prompt: str = "Archive passphrase: ") -> str:
        value = self.env.get(var)
        if value:
            return value
        if not self.interactive:
            raise UsageError(f"No passphrase: set {var} or run in a terminal to be asked.")
        value = getpass.getpass(prompt)
        if confirm and getpass.getpass("Repeat the passphrase: ") != value:
            raise UsageError("The passphrases do not match; nothing was changed.")
        if not value:
            raise UsageError("An empty passphrase is not allowed.")
        return value

    def archive_password(self, confirm: bool) -> str:
        """The password of a server archive at the "password" key level."""
        if not self.interactive and not self.env.get("CAIRN_ARCHIVE_PASSWORD"):
            raise KeyNotAvailable("This archive is protected by an archive password: set "
                                  "CAIRN_ARCHIVE_PASSWORD or run in a terminal to be asked.")
        return self.passphrase(confirm=confirm, var="CAIRN_ARCHIVE_PASSWORD",
                               prompt="New archive password: " if confirm else
                               "Archive password: ")

    @property
    def secret_store_mode(self) -> str:
        return self.env.get("CAIRN_SECRET_STORE", "auto")

    @cached_property
    def _sessions(self) -> dict[str, RemoteSession | None]:
        return {}

    def remote(self, args: argparse.Namespace) -> RemoteSession | None:
        """The server session when this agent is registered and no --dest is given."""
        if getattr(args, "dest", None):
            return None
        if "session" not in self._sessions:
            from agent.dest.throttle import parse_rate
            from agent.remote.session import open_session

            limit = getattr(args, "limit_rate", None)
            self._sessions["session"] = open_session(
                self.paths, self.secret_store_mode, self.archive_password,
                parse_rate(limit) if limit else None)
        return self._sessions["session"]

    def destination(self, args: argparse.Namespace) -> Destination:
        remote = self.remote(args)
        if remote is not None:
            return remote.dest
        return LocalDestination(Path(args.dest) if args.dest else self.paths.default_destination)

    def open_repo(self, args: argparse.Namespace) -> Repository:
        remote = self.remote(args)
        if remote is not None:
            return remote.open_repo()
        dest = self.destination(args)
        return Repository.open(dest, self.passphrase(), self.paths.cache)

    def skip_paths(self, dest: Destination) -> tuple[Path, ...]:
        """Never back up the agent home, nor a local archive into itself."""
        root = getattr(dest, "root", None)
        return (self.paths.home,) if root is None else (root, self.paths.home)

    def show_progress(self, args: argparse.Namespace) -> bool:
        return not getattr(args, "json", False) and sys.stderr.isatty()


def print_json(doc: object) -> None:
    print(json.dumps(doc, indent=2, sort_keys=True, default=str))


def add_dest_options(parser: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    parser.add_argument("--dest", metavar="DIR",
                        help="the archive's folder (default: the Cairn server this computer "
                             "is registered with, else the agent home's archive/)")
    parser.add_argument("--limit-rate", metavar="RATE",
                        help="limit server transfers to RATE bytes/s, e.g. 500K or 2M")
    if json_flag:
        parser.add_argument("--json", action="store_true", help="machine-readable output")


def build_parser() -> argparse.ArgumentParser:
    from agent.commands import admin, archive, keys, prune, server, service_args

    parser = argparse.ArgumentParser(
        prog="cairn", description="Cairn: encrypted, deduplicating backup.")
    parser.add_argument("--version", action="version", version=f"cairn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    archive.register(sub)
    server.register_commands(sub)
    keys.register_commands(sub)
    prune.register(sub)
    service_args.register(sub)
    admin.register(sub)
    return parser


def _setup_logging(paths: AgentPaths) -> None:
    logging.raiseExceptions = False  # a log line on a full disk is lost, not a traceback
    try:
        paths.logs.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = RotatingFileHandler(
            paths.logs / "cairn.log", maxBytes=5_000_000, backupCount=3, encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("cairn")
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        # File names need not be UTF-8: print their bytes as they are (as ls and find do).
        sys.stdout.reconfigure(errors="surrogateescape")
    ctx = Context(AgentPaths.from_env(), os.environ, sys.stdin.isatty())
    _setup_logging(ctx.paths)
    try:
        return int(args.func(args, ctx))
    except CairnError as exc:
        log.info("%s failed: %s", args.command, exc)
        print(f"cairn: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cairn: interrupted; earlier snapshots are intact, the next run resumes.",
              file=sys.stderr)
        return Interrupted.exit_code
    except BrokenPipeError:  # `cairn ls latest | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return EXIT_BROKEN_PIPE
    except Exception:
        log.error("internal error in %s:\n%s", args.command, traceback.format_exc())
        print(f"cairn: internal error (details in {ctx.paths.logs / 'cairn.log'}); "
              "please send a support bundle.", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
