"""``cairn-server device list|deactivate``."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import or_, select

from server.cli.common import opened, operator, print_json, print_table
from server.cli.users import find_user
from server.config import Locations
from server.domain import devices, orgs
from server.errors import BadRequest, NotFound
from server.metadata.models import Device, User

LIST_COLUMNS = ("username", "name", "os", "agent_version", "last_seen", "last_backup_at",
                "active", "id")


def cmd_list(args: argparse.Namespace, loc: Locations) -> int:
    with opened(loc) as rt, rt.db.read() as session:
        scope = {orgs.find_org(session, args.org).id} if args.org else None
        user_id = find_user(session, args.user).id if args.user else None
        rows = [devices.device_dict(d, u) for d, u in devices.list_devices(
            session, scope, user_id, include_inactive=args.all)]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, LIST_COLUMNS)
    return 0


def cmd_deactivate(args: argparse.Namespace, loc: Locations) -> int:
    with opened(loc) as rt, rt.db.write() as session:
        found = list(session.execute(
            select(Device, User).join(User, Device.user_id == User.id)
            .where(Device.active, or_(Device.id == args.device, Device.guid == args.device))))
        if not found:
            raise NotFound(f"No active device {args.device!r}.")
        if len(found) > 1:
            raise BadRequest(f"Several active devices match {args.device!r}; use the device id.")
        device, user = found[0]
        devices.deactivate(session, operator().actor, device, user.org_id)
    print(f"Deactivated device {device.name!r} of {user.username!r}; its slot is free.")
    return 0


def add_parsers(sub: Any, parent: argparse.ArgumentParser) -> None:
    device = sub.add_parser("device", help="devices").add_subparsers(dest="command",
                                                                     required=True)
    p = device.add_parser("list", parents=[parent], help="list devices")
    p.add_argument("--org", metavar="ORG")
    p.add_argument("--user", metavar="USER")
    p.add_argument("--all", action="store_true", help="include deactivated devices")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_list)
    p = device.add_parser("deactivate", parents=[parent],
                          help="deactivate a device (frees its slot; data stays)")
    p.add_argument("device", metavar="DEVICE", help="device id or GUID")
    p.set_defaults(handler=cmd_deactivate)
