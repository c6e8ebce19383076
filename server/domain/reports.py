"""Reports: licenses in use, billing, stale devices, storage per organization.

A license is *in use* at an instant T when its user held a license then (was
created before T and not deactivated before T) and their archive had received
data before T (``first_data_at``; lock files do not count). Reports "for date D"
look at the end of day D, UTC. Every report renders as JSON and as CSV.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from server.domain import billing
from server.domain.access import account_root, org_parents
from server.metadata.models import Archive, Device, Org, User


@dataclass(frozen=True)
class Report:
    name: str
    as_of: str
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"report": self.name, "as_of": self.as_of, **self.meta, "rows": self.rows}

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns, extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()}
                         for row in self.rows)
        return out.getvalue()


def end_of_day(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)


def in_use_by_org(session: Session, at: datetime) -> dict[str, int]:
    """Licenses in use at instant ``at``, per organization id."""
    rows = session.execute(
        select(User.org_id, func.count()).join(Archive, Archive.user_id == User.id)
        .where(User.licensed, User.created_at < at,
               or_(User.deactivated_at.is_(None), User.deactivated_at >= at),
               Archive.first_data_at.is_not(None), Archive.first_data_at < at)
        .group_by(User.org_id))
    return dict(rows.all())


def _orgs(session: Session, org_ids: set[str] | None) -> list[Org]:
    query = select(Org).order_by(Org.name, Org.id)
    if org_ids is not None:
        query = query.where(Org.id.in_(org_ids))
    return list(session.scalars(query))


def licenses(session: Session, org_ids: set[str] | None, day: date) -> Report:
    """Licenses in use per organization, and per account (top-level org) in scope."""
    used = in_use_by_org(session, end_of_day(day))
    parents = org_parents(session)
    orgs = _orgs(session, org_ids)
    names = {o.id: o.name for o in session.scalars(select(Org))}
    rows = [{"level": "org", "account": names[account_root(parents, o.id)], "org_id": o.id,
             "org": o.name, "licenses_in_use": used.get(o.id, 0), "license_cap": o.license_cap}
            for o in orgs]
    for root in (o for o in orgs if o.parent_id is None):
        total = sum(n for oid, n in used.items() if account_root(parents, oid) == root.id)
        rows.append({"level": "account", "account": root.name, "org_id": root.id,
                     "org": root.name, "licenses_in_use": total, "license_cap": None})
    return Report("licenses", day.isoformat(), ("level", "account", "org_id", "org",
                                                "licenses_in_use", "license_cap"), rows)


def billing_report(session: Session, account_ids: list[str], day: date) -> Report:
    """Charges per account for the tally date ``day`` (see ``billing``)."""
    previous = billing.previous_cycle(day)
    used, used_before = (in_use_by_org(session, end_of_day(d)) for d in (day, previous))
    parents = org_parents(session)
    names = {o.id: o.name for o in session.scalars(select(Org))}
    rows: list[dict[str, Any]] = []
    for root in sorted(account_ids, key=lambda oid: names[oid]):
        members = sorted((oid for oid in parents if account_root(parents, oid) == root),
                         key=lambda oid: (oid != root, names[oid]))
        before = sum(used_before.get(oid, 0) for oid in members)
        unit = billing.unit_price_cents(before)
        for oid in members:
            rows.append(_bill_row("org", names[root], oid, names[oid], used.get(oid, 0),
                                  unit, before))
        total = sum(used.get(oid, 0) for oid in members)
        rows.append(_bill_row("account", names[root], root, names[root], total, unit, before))
    return Report("billing", day.isoformat(),
                  ("level", "account", "org_id", "org", "licenses_in_use",
                   "previous_cycle_licenses", "unit_price", "amount"), rows,
                  {"previous_cycle_date": previous.isoformat(), "currency": "USD"})


def _bill_row(level: str, account: str, org_id: str, org: str, users: int, unit: int,
              before: int) -> dict[str, Any]:
    return {"level": level, "account": account, "org_id": org_id, "org": org,
            "licenses_in_use": users, "previous_cycle_licenses": before,
            "unit_price": billing.dollars(unit), "amount": billing.dollars(users * unit)}


def stale(session: Session, org_ids: set[str] | None, days: int, at: datetime) -> Report:
    """Active devices whose last completed backup (or first sight) is over N days old."""
    cutoff = at - timedelta(days=days)
    query = (select(Device, User, Org).join(User, Device.user_id == User.id)
             .join(Org, User.org_id == Org.id)
             .where(Device.active, Device.first_seen < cutoff,
                    or_(Device.last_backup_at.is_(None), Device.last_backup_at < cutoff))
             .order_by(Org.name, User.username, Device.name))
    if org_ids is not None:
        query = query.where(User.org_id.in_(org_ids))
    rows = [{"org_id": org.id, "org": org.name, "username": user.username,
             "device_id": dev.id, "device": dev.name, "guid": dev.guid, "os": dev.os,
             "last_backup_at": dev.last_backup_at.isoformat() if dev.last_backup_at else None,
             "last_seen": dev.last_seen.isoformat(),
             "days_since_backup": (at - dev.last_backup_at).days if dev.last_backup_at else None}
            for dev, user, org in session.execute(query)]
    return Report("stale", at.isoformat(), ("org_id", "org", "username", "device_id", "device",
                                            "guid", "os", "last_backup_at", "last_seen",
                                            "days_since_backup"), rows, {"days": days})


def storage(session: Session, org_ids: set[str] | None, at: datetime) -> Report:
    """Bytes stored per organization by its active users, next to its quota."""
    stored = dict(session.execute(
        select(User.org_id, func.coalesce(func.sum(Archive.bytes_stored), 0)).join(Archive)
        .where(User.active).group_by(User.org_id)).all())
    rows = [{"org_id": o.id, "org": o.name, "bytes_stored": int(stored.get(o.id, 0)),
             "storage_quota_bytes": o.storage_quota_bytes} for o in _orgs(session, org_ids)]
    return Report("storage", at.isoformat(), ("org_id", "org", "bytes_stored",
                                              "storage_quota_bytes"), rows)
