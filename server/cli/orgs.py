"""``cairn-server org …``: create, list, show, set-cap, set-quota, rotate-key, revoke-key."""

from __future__ import annotations

import argparse
from typing import Any

from server.cli.common import opened, operator, parse_limit, print_json, print_table
from server.config import Locations
from server.domain import orgs

LIST_COLUMNS = ("id", "name", "parent", "license_cap", "licenses_held", "users_active",
                "devices_active", "bytes_stored")


def _org_view(session: Any, org: Any) -> dict[str, Any]:
    return orgs.org_dict(org, orgs.org_counts(session, [org.id])[org.id])


def cmd_create(args: argparse.Namespace, loc: Locations) -> int:
    who = operator()
    with opened(loc) as rt, rt.db.write() as session:
        parent = orgs.find_org(session, args.parent).id if args.parent else None
        org, key = orgs.create_org(session, who, args.name, parent, args.license_cap,
                                   args.quota)
        session.flush()
        view = {**_org_view(session, org), "registration_key": key}
    if args.json:
        print_json(view)
    else:
        kind = "customer organization" if parent else "top-level (MSP) organization"
        print(f"Created {kind} {view['name']!r} (id {view['id']}).")
        print(f"Registration key (shown only now; store it safely): {key}")
    return 0


def cmd_list(args: argparse.Namespace, loc: Locations) -> int:
    with opened(loc) as rt, rt.db.read() as session:
        found = orgs.list_orgs(session, operator())
        counts = orgs.org_counts(session, [o.id for o in found])
        names = {o.id: o.name for o in found}
        rows = [{**orgs.org_dict(o, counts[o.id]), "parent": names.get(o.parent_id or "")}
                for o in found]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, LIST_COLUMNS)
    return 0


def cmd_show(args: argparse.Namespace, loc: Locations) -> int:
    with opened(loc) as rt, rt.db.read() as session:
        view = _org_view(session, orgs.find_org(session, args.org))
    if args.json:
        print_json(view)
    else:
        for key, value in view.items():
            print(f"{key + ':':30} {'-' if value is None else value}")
    return 0


def cmd_set_limit(args: argparse.Namespace, loc: Locations) -> int:
    field, what = (("license_cap", "license cap") if args.command == "set-cap"
                   else ("storage_quota_bytes", "storage quota"))
    value = parse_limit(args.value, what)
    with opened(loc) as rt, rt.db.write() as session:
        org = orgs.find_org(session, args.org)
        orgs.set_limits(session, operator(), org, {field: value})
    print(f"{what.capitalize()} of {org.name!r} is now {'none' if value is None else value}.")
    return 0


def cmd_rotate_key(args: argparse.Namespace, loc: Locations) -> int:
    with opened(loc) as rt, rt.db.write() as session:
        org = orgs.find_org(session, args.org)
        key = orgs.rotate_key(session, operator(), org)
    if args.json:
        print_json({"id": org.id, "name": org.name, "registration_key": key})
    else:
        print(f"New registration key for {org.name!r} (the old one no longer works; shown "
              f"only now): {key}")
    return 0


def cmd_revoke_key(args: argparse.Namespace, loc: Locations) -> int:
    with opened(loc) as rt, rt.db.write() as session:
        org = orgs.find_org(session, args.org)
        orgs.revoke_key(session, operator(), org)
    print(f"Registration key of {org.name!r} revoked; `org rotate-key` issues a new one.")
    return 0


def add_parsers(sub: Any, parent: argparse.ArgumentParser) -> None:
    org = sub.add_parser("org", help="organizations").add_subparsers(dest="command",
                                                                      required=True)
    p = org.add_parser("create", parents=[parent], help="create an organization")
    p.add_argument("name")
    p.add_argument("--parent", metavar="ORG", help="parent organization (omit: top-level MSP)")
    p.add_argument("--license-cap", type=int, metavar="N")
    p.add_argument("--quota", type=int, metavar="BYTES", help="storage quota in bytes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_create)
    p = org.add_parser("list", parents=[parent], help="list organizations")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_list)
    p = org.add_parser("show", parents=[parent], help="show one organization")
    p.add_argument("org", help="id, name, or path MSP/Customer")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_show)
    for name, help_text in (("set-cap", "set or remove (none) the license cap"),
                            ("set-quota", "set or remove (none) the storage quota in bytes")):
        p = org.add_parser(name, parents=[parent], help=help_text)
        p.add_argument("org")
        p.add_argument("value", metavar="N|none")
        p.set_defaults(handler=cmd_set_limit)
    p = org.add_parser("rotate-key", parents=[parent], help="issue a new registration key")
    p.add_argument("org")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_rotate_key)
    p = org.add_parser("revoke-key", parents=[parent], help="revoke the registration key")
    p.add_argument("org")
    p.set_defaults(handler=cmd_revoke_key)
