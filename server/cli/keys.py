"""``cairn-server key-policy …``: the weakest archive key level an organization allows."""

from __future__ import annotations

import argparse
from typing import Any

from server.cli.common import opened, operator, print_json
from server.config import Locations
from server.domain import archive_keys, orgs


def cmd_show(args: argparse.Namespace, loc: Locations) -> int:
    with opened(loc) as rt, rt.db.read() as session:
        view = archive_keys.policy_dict(session, orgs.find_org(session, args.org))
    if args.json:
        print_json(view)
    else:
        print(f"Required key level: {view['required_level']} (effective, with the "
              f"organizations above: {view['effective_level']})")
    return 0


def cmd_set(args: argparse.Namespace, loc: Locations) -> int:
    with opened(loc) as rt, rt.db.write() as session:
        org = orgs.find_org(session, args.org)
        archive_keys.set_policy(session, operator(), org, args.level)
    print(f"Organization {org.name!r} now requires the {args.level} archive key level or "
          "stronger for new archives; devices of archives below it are told to move up and "
          "no longer receive escrowed keys.")
    return 0


def add_parsers(sub: Any, parent: argparse.ArgumentParser) -> None:
    policy = sub.add_parser("key-policy", help="archive key level policy of organizations") \
        .add_subparsers(dest="command", required=True)
    p = policy.add_parser("show", parents=[parent], help="show an organization's policy")
    p.add_argument("org", help="id, name, or path MSP/Customer")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_show)
    p = policy.add_parser("set", parents=[parent], help="require a key level or stronger")
    p.add_argument("org", help="id, name, or path MSP/Customer")
    p.add_argument("level", choices=archive_keys.LEVELS)
    p.set_defaults(handler=cmd_set)
