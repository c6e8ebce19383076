"""``cairn-server report licenses|billing|stale|storage [--date D] [--json|--csv]``."""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from sqlalchemy import select

from server.cli.common import opened, print_json, print_table
from server.config import Locations
from server.domain import reports
from server.domain.access import descendants, org_parents
from server.domain.orgs import find_org
from server.errors import BadRequest
from server.metadata.models import Org, utcnow


def _day(text: str | None) -> date:
    if text is None:
        return utcnow().date()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{text!r} is not a date like 2025-02-20.") from None


def cmd_report(args: argparse.Namespace, loc: Locations) -> int:
    day = _day(args.date)
    with opened(loc) as rt, rt.db.read() as session:
        root = find_org(session, args.org) if args.org else None
        scope = descendants(org_parents(session), root.id) if root else None
        if args.kind == "licenses":
            report = reports.licenses(session, scope, day)
        elif args.kind == "billing":
            accounts = [root.id] if root else list(session.scalars(
                select(Org.id).where(Org.parent_id.is_(None))))
            if root is not None and root.parent_id is not None:
                raise BadRequest("Billing is per account: give a top-level organization.")
            report = reports.billing_report(session, accounts, day)
        else:
            at = reports.end_of_day(day) if args.date else utcnow()
            report = (reports.stale(session, scope, args.days, at) if args.kind == "stale"
                      else reports.storage(session, scope, at))
    if args.csv:
        print(report.as_csv(), end="")
    elif args.json:
        print_json(report.as_json())
    else:
        print(f"{report.name} report, {report.as_of}"
              + "".join(f", {k.replace('_', ' ')} {v}" for k, v in report.meta.items()))
        print_table(report.rows, report.columns)
    return 0


def add_parsers(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("report", parents=[parent], help="licenses, billing, stale devices, "
                                                        "storage")
    p.add_argument("kind", choices=("licenses", "billing", "stale", "storage"))
    p.add_argument("--date", metavar="YYYY-MM-DD", help="tally date (default: today, UTC)")
    p.add_argument("--days", type=int, default=7, metavar="N",
                   help="stale: no completed backup for N days (default 7)")
    p.add_argument("--org", metavar="ORG", help="limit to this organization and below")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")
    p.set_defaults(handler=cmd_report)
