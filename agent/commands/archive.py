"""Archive commands: backup, snapshots, ls, restore, check, passphrase."""

from __future__ import annotations

import argparse
import posixpath
import sys
from pathlib import Path

from agent.archive.repository import Repository
from agent.cli import Context, add_dest_options, print_json
from agent.engine.backup import BackupOptions, run_backup
from agent.engine.check import run_check, run_rebuild_index
from agent.engine.progress import Progress
from agent.engine.restore import RestoreOptions, not_in_snapshot, run_restore
from agent.errors import EXIT_PARTIAL, CairnError, IntegrityError, UsageError
from agent.model.tree import decode_name
from agent.scan.walker import source_path
from agent.term_progress import shown


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backup", help="back up files and folders")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="default (registered computers): what this device backed up last")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="skip names or paths matching GLOB (repeatable)")
    add_dest_options(p)
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("snapshots", help="list snapshots, newest first")
    p.add_argument("--device", metavar="GUID", help="only snapshots of this device")
    add_dest_options(p)
    p.set_defaults(func=cmd_snapshots)

    p = sub.add_parser("ls", help="list the files of a snapshot")
    p.add_argument("snapshot", metavar="SNAPSHOT", help="an ID prefix or 'latest'")
    p.add_argument("path", nargs="?", metavar="PATH", help="only below this original path")
    add_dest_options(p)
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("restore", help="restore a snapshot (or some of its paths)")
    p.add_argument("snapshot", metavar="SNAPSHOT", help="an ID prefix or 'latest'")
    p.add_argument("--target", required=True, metavar="OUT", help="folder to restore into")
    p.add_argument("--include", action="append", default=[], metavar="PATH",
                   help="restore only this original path (repeatable)")
    add_dest_options(p)
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("check", help="verify the archive's integrity")
    p.add_argument("--read-data", action="store_true", help="also read and verify every blob")
    add_dest_options(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("rebuild-index", help="replace the archive's index with one read from "
                                             "the packs (when check finds an index file damaged)")
    add_dest_options(p)
    p.set_defaults(func=cmd_rebuild_index)

    p = sub.add_parser("passphrase", help="change the archive passphrase (no data re-encrypted)")
    add_dest_options(p, json_flag=False)
    p.set_defaults(func=cmd_passphrase)


def _open_or_create(args: argparse.Namespace, ctx: Context) -> tuple[Repository, bool]:
    dest = ctx.destination(args)
    if ctx.remote(args) is not None or dest.list("keys"):
        return ctx.open_repo(args), False
    Repository.check_creatable(dest)  # before asking for a passphrase
    if not args.json:
        print(f"Creating a new archive in {dest.description}", file=sys.stderr)
    passphrase = ctx.passphrase(confirm=True, prompt="New archive passphrase: ")
    return Repository.create(dest, passphrase, ctx.paths.cache), True


def cmd_backup(args: argparse.Namespace, ctx: Context) -> int:
    if not args.paths:
        from agent.commands.service import backup_sets, has_backup_sets

        if has_backup_sets(ctx):  # every backup set, through the service when it runs
            return backup_sets(args, ctx)
    remote = ctx.remote(args)
    if not args.paths and remote is None:
        raise UsageError("Name the files or folders to back up.")
    paths = []
    for raw in args.paths:
        path = source_path(require_given(raw, "A path to back up"))
        if not path.exists() and not path.is_symlink():
            raise UsageError(f"Cannot back up {raw}: it does not exist.")
        if path.is_symlink():
            print(f"cairn: warning: {raw} is a symbolic link; it is backed up as the link "
                  f"itself, not what it points to ({path.resolve()}): name that to back it up.",
                  file=sys.stderr)
        paths.append(path)
    repo, _created = _open_or_create(args, ctx)
    if not paths and remote is not None:
        paths = remote.selection(repo.readable_snapshots())
        if not paths:
            raise UsageError("This device has no backup yet: name the files or folders.")
    options = BackupOptions(
        paths=tuple(paths), excludes=tuple(args.exclude), skip_paths=ctx.skip_paths(repo.dest),
        count_totals=ctx.show_progress(args), **(remote.backup_fields() if remote else {}))
    progress = Progress()
    try:
        with shown(progress, "Backing up", ctx.show_progress(args)):
            result = run_backup(repo, options, progress)
    finally:
        repo.close()
    print_warnings(repo)
    counts, snap = result.counts, result.snapshot
    if remote is not None:
        remote.report_backup(snap)
    doc = {"snapshot_id": snap.id, "files_total": counts.files_total, "files_new": counts.files_new,
           "files_changed": counts.files_changed, "files_unchanged": counts.files_unchanged,
           "dirs": counts.dirs, "bytes_total": counts.bytes_total,
           "bytes_stored": result.bytes_stored, "duration_s": round(result.duration_s, 3),
           "errors": result.errors, "destination": repo.dest.description}
    for error in result.errors:
        print(f"cairn: could not read {error}", file=sys.stderr)
    if args.json:
        print_json(doc)
    else:
        print(f"Snapshot {snap.id[:8]} saved to {repo.dest.description}\n"
              f"  files: {counts.files_total} ({counts.files_new} new, {counts.files_changed} "
              f"changed, {counts.files_unchanged} unchanged), folders: {counts.dirs}\n"
              f"  {_size(counts.bytes_total)} scanned, {_size(result.bytes_stored)} stored "
              f"in {result.duration_s:.1f} s")
    return EXIT_PARTIAL if result.errors else 0


def print_warnings(repo: Repository) -> None:
    """Print on stderr what the repository passed over: damaged snapshots or index files,
    and local cache writes that failed after the archive was written."""
    for warning in repo.warnings():
        print(f"cairn: warning: {warning}", file=sys.stderr)


def cmd_snapshots(args: argparse.Namespace, ctx: Context) -> int:
    repo = ctx.open_repo(args)
    snaps = [s for s in repo.readable_snapshots() if args.device in (None, s.device)]
    repo.close()
    print_warnings(repo)
    code = IntegrityError.exit_code if repo.unreadable_snapshots else 0
    if args.json:
        print_json([{"id": s.id, "short_id": s.id[:8], "time": s.time, "host": s.host,
                     "device": s.device, "paths": s.paths, "parent": s.parent,
                     "summary": s.summary} for s in snaps])
        return code
    if not snaps:
        print("No snapshots yet.")
    for s in snaps:
        files = s.summary.get("files_total", "?")
        print(f"{s.id[:8]}  {s.time[:19].replace('T', ' ')}  {s.host:<16} {files:>8} files  "
              + ", ".join(s.paths))
    return code


def cmd_ls(args: argparse.Namespace, ctx: Context) -> int:
    repo = ctx.open_repo(args)
    try:
        repo.sync_index()
        snap = repo.find_snapshot(args.snapshot)
        print_warnings(repo)
        entries = []
        damaged = []  # folders whose listing cannot be read: the rest is still listed
        stack = [(snap.tree, "")]
        while stack:
            tree_id, prefix = stack.pop()
            try:
                nodes = repo.tree(tree_id)
            except CairnError as exc:
                damaged.append(f"{prefix or '/'}: its listing cannot be read ({exc})")
                continue
            for node in nodes:
                path = f"{prefix}/{decode_name(node, 'name')}"
                if node["type"] == "dir" and node.get("subtree"):
                    stack.append((node["subtree"], path))
                if args.path is None or _below(path, args.path):
                    entries.append({"path": path, "type": node["type"],
                                    "size": node.get("size", 0), "mode": node.get("mode"),
                                    "mtime_ns": node.get("mtime_ns")})
    finally:
        repo.close()
    wanted = _normal(args.path) if args.path is not None else "/"
    if wanted != "/" and not damaged and not any(e["path"] == wanted for e in entries):
        raise not_in_snapshot(wanted, snap)
    entries.sort(key=lambda e: e["path"])
    for why in damaged:
        print(f"cairn: could not list {why}", file=sys.stderr)
    if args.json:
        print_json(entries)
    else:
        for e in entries:
            suffix = "/" if e["type"] == "dir" else ""
            print(f"{e['type']:<8}{e['size']:>14}  {e['path']}{suffix}")
    return IntegrityError.exit_code if damaged else 0


def _normal(wanted: str) -> str:
    """An ``ls`` PATH as the listing spells paths: from the root, ``/``-separated, with
    ``.`` and ``..`` resolved by name."""
    return posixpath.normpath("/" + wanted.replace("\\", "/").strip("/"))


def _below(path: str, wanted: str) -> bool:
    wanted = _normal(wanted)
    return path == wanted or path.startswith(wanted.rstrip("/") + "/")


def require_given(value: str, what: str) -> str:
    """``value``, unless it is empty (an unset variable in a script): a sentence then,
    since an empty path would mean the current folder."""
    if not value.strip():
        raise UsageError(f"{what} is empty (an unset variable?); name a path.")
    return value


def cmd_restore(args: argparse.Namespace, ctx: Context) -> int:
    require_given(args.target, "--target")
    for include in args.include:
        require_given(include, "An --include")
    repo = ctx.open_repo(args)
    progress = Progress()
    try:
        repo.sync_index()
        snap = repo.find_snapshot(args.snapshot)
        print_warnings(repo)
        options = RestoreOptions(target=Path(args.target).expanduser().absolute(),
                                 includes=tuple(args.include))
        with shown(progress, "Restoring", ctx.show_progress(args)):
            result = run_restore(repo, snap, options, progress)
    finally:
        repo.close()
    doc = {"snapshot_id": snap.id, "files": result.files, "dirs": result.dirs,
           "symlinks": result.symlinks, "bytes": result.bytes,
           "duration_s": round(result.duration_s, 3), "errors": result.errors,
           "target": str(options.target)}
    for error in result.errors:
        print(f"cairn: could not restore {error}", file=sys.stderr)
    if args.json:
        print_json(doc)
    else:
        print(f"Restored {result.files} files, {result.dirs} folders, {result.symlinks} links "
              f"({_size(result.bytes)}) from {snap.id[:8]} into {options.target} "
              f"in {result.duration_s:.1f} s")
    return IntegrityError.exit_code if result.errors else 0


def cmd_check(args: argparse.Namespace, ctx: Context) -> int:
    repo = ctx.open_repo(args)
    progress = Progress()
    try:
        with shown(progress, "Checking", ctx.show_progress(args) and args.read_data):
            report = run_check(repo, read_data=args.read_data, progress=progress)
    finally:
        repo.close()
    if args.json:
        print_json({"ok": report.ok, "snapshots": report.snapshots, "trees": report.trees,
                    "blobs": report.blobs, "packs": report.packs, "packs_read": report.packs_read,
                    "errors": report.errors, "damaged_packs": report.damaged_packs,
                    "affected_files": report.affected_files})
    else:
        print(f"{report.snapshots} snapshots, {report.trees} trees, {report.blobs} data blobs, "
              f"{report.packs} packs" + (f", {report.packs_read} packs read" if args.read_data
                                          else ""))
        for error in report.errors:
            print(f"error: {error}")
        for pack, reason in report.damaged_packs.items():
            print(f"damaged pack {pack}: {reason}")
        for path in report.affected_files:
            print(f"affected: {path}")
        print("No errors found." if report.ok else "The archive has errors (see above).")
    return 0 if report.ok else IntegrityError.exit_code


def cmd_rebuild_index(args: argparse.Namespace, ctx: Context) -> int:
    repo = ctx.open_repo(args)
    progress = Progress()
    try:
        with shown(progress, "Rebuilding the index", ctx.show_progress(args)):
            indexed, damaged = run_rebuild_index(repo, progress)
    finally:
        repo.close()
    if args.json:
        print_json({"packs_indexed": indexed, "packs_damaged": damaged})
    else:
        print(f"Index rebuilt from {indexed} packs."
              + (f" {damaged} pack(s) have a damaged header and were left out; "
                 "`cairn check --read-data` names the files they affect." if damaged else ""))
    return IntegrityError.exit_code if damaged else 0


def cmd_passphrase(args: argparse.Namespace, ctx: Context) -> int:
    if ctx.remote(args) is not None:  # a key file here would put the key on the server
        raise UsageError("This computer backs up to a Cairn server, whose archive key is "
                         "managed with `cairn key` (see docs/agent-server.md).")
    repo = ctx.open_repo(args)
    old = ctx.env.get("CAIRN_PASSPHRASE")
    new = ctx.passphrase(confirm=True, var="CAIRN_NEW_PASSPHRASE", prompt="New passphrase: ")
    if new == old:
        raise UsageError("The new passphrase is the same as the old one.")
    name = repo.add_passphrase(new)
    removed = repo.remove_other_passphrase_keys(keep=name, old_passphrase=ctx.passphrase())
    repo.close()
    print(f"Passphrase changed ({removed} old key file(s) removed); no data was re-encrypted.")
    return 0


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n} B"
