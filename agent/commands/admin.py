"""`cairn admin-restore`: an organization admin restores a user's snapshot (standard key level).

The admin signs in with their own username and password (``CAIRN_ADMIN_PASSWORD``
or a prompt), the server releases the user's escrowed archive key sealed to a
one-time key pair of this run, and the normal engine restore reads the user's
archive through the read-only admin routes. Nothing is written to the archive
and the key is kept only in memory. See docs/agent-server.md ("Admin restore").
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from agent.archive.repository import Repository
from agent.cli import Context, print_json
from agent.commands.archive import print_warnings, require_given
from agent.engine.progress import Progress
from agent.engine.restore import RestoreOptions, run_restore
from agent.errors import IntegrityError, UsageError
from agent.term_progress import shown


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("admin-restore",
                       help="as an organization admin, restore a user's snapshot "
                            "(standard key level only)")
    p.add_argument("--server", required=True, metavar="URL", help="the Cairn server")
    p.add_argument("--admin", required=True, metavar="USERNAME", help="your admin username")
    p.add_argument("--user", required=True, metavar="USERNAME",
                   help="the user whose archive to read (username or user id)")
    p.add_argument("--pin-sha256", metavar="FP",
                   help="pin the server certificate's SHA-256 fingerprint")
    p.add_argument("--snapshots", action="store_true",
                   help="list the user's snapshots instead of restoring")
    p.add_argument("snapshot", nargs="?", help="snapshot id (or a prefix), or 'latest'")
    p.add_argument("--target", metavar="OUT", help="folder to restore into")
    p.add_argument("--include", action="append", default=[], metavar="PATH",
                   help="restore only this path (repeatable)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_admin_restore)


def cmd_admin_restore(args: argparse.Namespace, ctx: Context) -> int:
    from agent.dest.admin import (
        AdminArchiveDestination,
        admin_login,
        admin_logout,
        fetch_keys,
        find_user,
    )
    from agent.remote.http import ServerConfig, normalize_pin, normalize_url

    if not args.snapshots and (not args.snapshot or not args.target):
        raise UsageError("Name a SNAPSHOT and --target OUT, or use --snapshots to list them.")
    config = ServerConfig(url=normalize_url(args.server),
                          pin_sha256=normalize_pin(args.pin_sha256) if args.pin_sha256
                          else None)
    password = ctx.passphrase(var="CAIRN_ADMIN_PASSWORD", prompt=f"Password for {args.admin}: ")
    client = admin_login(config, args.admin, password)
    work = Path(tempfile.mkdtemp(prefix="cairn-admin-restore-"))
    try:
        user_id = find_user(client, args.user)
        keys = fetch_keys(client, user_id, args.user)
        dest = AdminArchiveDestination(client, user_id, work / "staging")
        repo = Repository(dest, keys, work / "cache")
        try:
            if args.snapshots:
                return _list(repo, args.json)
            return _restore(repo, args, ctx)
        finally:
            repo.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        admin_logout(client)


def _list(repo: Repository, as_json: bool) -> int:
    snaps = repo.readable_snapshots()
    print_warnings(repo)
    code = IntegrityError.exit_code if repo.unreadable_snapshots else 0
    if as_json:
        print_json([{"id": s.id, "short_id": s.id[:8], "time": s.time, "host": s.host,
                     "device": s.device, "paths": s.paths, "summary": s.summary}
                    for s in snaps])
        return code
    if not snaps:
        print("No snapshots yet.")
    for s in snaps:
        print(f"{s.id[:8]}  {s.time[:19].replace('T', ' ')}  {s.host:<16} "
              + ", ".join(s.paths))
    return code


def _restore(repo: Repository, args: argparse.Namespace, ctx: Context) -> int:
    repo.sync_index()
    snap = repo.find_snapshot(args.snapshot)
    print_warnings(repo)
    options = RestoreOptions(target=Path(require_given(args.target, "--target")).expanduser()
                             .absolute(),
                             includes=tuple(args.include))
    progress = Progress()
    with shown(progress, "Restoring", ctx.show_progress(args)):
        result = run_restore(repo, snap, options, progress)
    for error in result.errors:
        print(f"cairn: could not restore {error}", file=sys.stderr)
    if args.json:
        print_json({"snapshot_id": snap.id, "files": result.files, "dirs": result.dirs,
                    "symlinks": result.symlinks, "bytes": result.bytes,
                    "errors": result.errors, "target": str(options.target)})
    else:
        print(f"Restored {result.files} files, {result.dirs} folders, {result.symlinks} links "
              f"from {snap.id[:8]} into {options.target}")
    return IntegrityError.exit_code if result.errors else 0
