"""`cairn key ...`: the archive key of a registered agent (status, export, import, set-level)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from agent.cli import Context, print_json
from agent.errors import UsageError
from agent.remote.levels import LEVELS

if TYPE_CHECKING:
    from agent.remote.keylevels import KeyStatus
    from agent.remote.session import RemoteSession


def register_commands(sub: argparse._SubParsersAction) -> None:
    key = sub.add_parser("key", help="the archive key (server archives)")
    cmds = key.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    p = cmds.add_parser("status", help="the archive's key level and the organization's policy")
    p.set_defaults(func=cmd_status)
    p = cmds.add_parser("export", help="write the archive key to a new file (keep it safe)")
    p.add_argument("file", type=Path, metavar="FILE")
    p.set_defaults(func=cmd_export)
    p = cmds.add_parser("import", help="take the archive key from an exported file")
    p.add_argument("file", type=Path, metavar="FILE")
    p.set_defaults(func=cmd_import)
    p = cmds.add_parser("set-level", help="move the archive to a stronger key level (one-way)")
    p.add_argument("level", choices=LEVELS[1:], metavar="LEVEL", help="password or custom")
    p.set_defaults(func=cmd_set_level)
    for parser in (cmds.choices.values()):
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.set_defaults(dest=None, limit_rate=None)


def _session(args: argparse.Namespace, ctx: Context) -> RemoteSession:
    session = ctx.remote(args)
    if session is None:
        raise UsageError("This computer is not registered with a Cairn server; archive keys "
                         "of local archives are managed with `cairn passphrase`.")
    return session


def _status_doc(status: KeyStatus, has_key: bool) -> dict:
    return {"level": status.level, "required_level": status.required_level,
            "archive_key_id": status.archive_key_id, "key_on_this_device": has_key}


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    session = _session(args, ctx)
    status = session.keys.status()
    local = session.keys.local_keys()
    has_key = local is not None and local.archive_id == status.archive_key_id
    if args.json:
        print_json(_status_doc(status, has_key))
        return 0
    print(f"Key level: {status.level or 'none yet'} (organization requires "
          f"{status.required_level} or stronger)")
    print(f"Archive key on this computer: {'yes' if has_key else 'no'}")
    return 0


def cmd_export(args: argparse.Namespace, ctx: Context) -> int:
    session = _session(args, ctx)
    session.keys.export(args.file)
    if args.json:
        print_json({"exported": str(args.file)})
    else:
        print(f"Archive key written to {args.file}. Whoever has this file can read every "
              "backup of this archive: keep it offline and safe.")
    return 0


def cmd_import(args: argparse.Namespace, ctx: Context) -> int:
    session = _session(args, ctx)
    status = session.keys.import_file(args.file)
    if args.json:
        print_json(_status_doc(status, True))
    else:
        print(f"Archive key imported from {args.file}; this computer can back up and restore.")
    return 0


def cmd_set_level(args: argparse.Namespace, ctx: Context) -> int:
    session = _session(args, ctx)
    status = session.keys.raise_level(args.level)
    if args.json:
        print_json(_status_doc(status, True))
        return 0
    print(f"The archive now uses the {status.level} key level; no data was re-uploaded.")
    if status.level == "custom":
        print("The server no longer holds any form of the key. Export it now with `cairn key "
              "export FILE`: a new computer cannot read this archive without it.")
    return 0
