"""``cairn-server settings``, ``trash purge`` and ``audit list``."""

from __future__ import annotations

import argparse
from typing import Any

from server.cli.common import opened, operator, print_json, print_table
from server.config import Locations
from server.domain import archive, audit, settings
from server.domain.orgs import find_org


def cmd_settings_show(args: argparse.Namespace, loc: Locations) -> int:
    with opened(loc) as rt, rt.db.read() as session:
        values = settings.all_settings(session)
    if args.json:
        print_json(values)
    else:
        for key, value in values.items():
            print(f"{key:20} {value}")
    return 0


def cmd_settings_set(args: argparse.Namespace, loc: Locations) -> int:
    with opened(loc) as rt, rt.db.write() as session:
        value = settings.set_setting(session, args.key, args.value)
        audit.record(session, operator().actor, "settings.set", target=args.key, value=value)
    print(f"{args.key} = {value}")
    return 0


def cmd_trash_purge(args: argparse.Namespace, loc: Locations) -> int:
    with opened(loc) as rt:
        with rt.db.read() as session:
            grace_s = settings.load(session).trash_grace_s
        done = archive.maintain(rt.db, rt.store, grace_s)
    print(f"Purged {done['purged']} trashed object(s) older than {grace_s / 86400:g} days "
          f"from {done['archives']} archive(s); finished {done['deleted_archives']} pending "
          "archive deletion(s).")
    return 0


def cmd_audit_list(args: argparse.Namespace, loc: Locations) -> int:
    with opened(loc) as rt, rt.db.read() as session:
        scope = {find_org(session, args.org).id} if args.org else None
        rows = [audit.as_dict(e) for e in audit.events(session, scope, args.limit)]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ("at", "actor", "action", "target", "outcome", "detail"))
    return 0


def add_parsers(sub: Any, parent: argparse.ArgumentParser) -> None:
    cmds = sub.add_parser("settings", help="server-wide settings").add_subparsers(
        dest="command", required=True)
    p = cmds.add_parser("show", parents=[parent], help="show every setting")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_settings_show)
    p = cmds.add_parser("set", parents=[parent], help="change a setting")
    p.add_argument("key", choices=sorted(settings.DEFAULTS))
    p.add_argument("value")
    p.set_defaults(handler=cmd_settings_set)
    trash = sub.add_parser("trash", help="the trash of deleted objects").add_subparsers(
        dest="command", required=True)
    p = trash.add_parser("purge", parents=[parent],
                         help="delete trashed objects past the grace period now")
    p.set_defaults(handler=cmd_trash_purge)
    log = sub.add_parser("audit", help="the audit log").add_subparsers(dest="command",
                                                                       required=True)
    p = log.add_parser("list", parents=[parent], help="newest entries first")
    p.add_argument("--org", metavar="ORG")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_audit_list)
