"""Organizations: the tree (MSP → customers), registration keys, license caps, quotas."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.domain import audit, settings
from server.domain.access import (
    Principal,
    depth,
    org_parents,
    org_scope,
    visible_org,
)
from server.errors import BadRequest, Conflict, Forbidden, NotFound
from server.metadata.models import Archive, Device, Org, User, utcnow
from server.security import new_id, new_registration_key, registration_key_hash

MAX_CAP = 10_000_000


def check_name(name: str) -> str:
    clean = name.strip()
    if not 1 <= len(clean) <= 200 or any(ch < " " or ch in "/\x7f" for ch in clean):
        raise BadRequest("An organization name has 1 to 200 characters, without '/' or "
                         "control characters.")
    return clean


def check_limit(value: int | None, what: str) -> int | None:
    if value is not None and not 0 <= value <= (MAX_CAP if what == "license cap" else 1 << 62):
        raise BadRequest(f"The {what} must be a whole number of at least 0, or none.")
    return value


def create_org(session: Session, who: Principal, name: str, parent_id: str | None = None,
               license_cap: int | None = None,
               storage_quota_bytes: int | None = None) -> tuple[Org, str]:
    """Create an organization; returns it and its registration key (shown only now)."""
    name = check_name(name)
    check_limit(license_cap, "license cap")
    check_limit(storage_quota_bytes, "storage quota")
    if parent_id is None:
        if who.role != "operator":
            raise Forbidden("Only the server operator creates top-level organizations.")
    else:
        if who.role not in ("operator", "msp_admin"):
            raise Forbidden("Only MSP administrators create organizations.")
        visible_org(session, who, parent_id, lock=True)
        if depth(org_parents(session), parent_id) >= 1 and \
                not settings.load(session).allow_deep_orgs:
            raise Conflict("Customer organizations cannot have child organizations. The "
                           "server operator can allow deeper trees with `cairn-server "
                           "settings set allow-deep-orgs true`.")
    taken = session.scalar(select(func.count()).select_from(Org).where(
        Org.parent_id.is_(None) if parent_id is None else Org.parent_id == parent_id,
        func.lower(Org.name) == name.lower()))
    if taken:
        raise Conflict(f"An organization named {name!r} already exists there.")
    key = new_registration_key()
    now = utcnow()
    org = Org(id=new_id(), name=name, parent_id=parent_id, license_cap=license_cap,
              storage_quota_bytes=storage_quota_bytes, reg_key_hash=registration_key_hash(key),
              reg_key_hint=key[:4], reg_key_created_at=now, created_at=now)
    session.add(org)
    audit.record(session, who.actor, "org.create", org_id=org.id, target=f"org:{org.id}",
                 name=name, parent_id=parent_id, license_cap=license_cap,
                 storage_quota_bytes=storage_quota_bytes)
    return org, key


def rotate_key(session: Session, who: Principal, org: Org) -> str:
    """Replace the registration key; the old one stops working at once."""
    key = new_registration_key()
    org.reg_key_hash = registration_key_hash(key)
    org.reg_key_hint = key[:4]
    org.reg_key_created_at = utcnow()
    audit.record(session, who.actor, "org.rotate_key", org_id=org.id, target=f"org:{org.id}")
    return key


def revoke_key(session: Session, who: Principal, org: Org) -> None:
    """Revoke the registration key; registrations fail until a rotate."""
    org.reg_key_hash = None
    org.reg_key_hint = None
    audit.record(session, who.actor, "org.revoke_key", org_id=org.id, target=f"org:{org.id}")


def set_limits(session: Session, who: Principal, org: Org, changes: dict[str, Any]) -> None:
    """Change ``license_cap`` and/or ``storage_quota_bytes`` (None removes the limit)."""
    if who.role not in ("operator", "msp_admin"):
        raise Forbidden("Only MSP administrators change license caps and quotas.")
    if "license_cap" in changes:
        org.license_cap = check_limit(changes["license_cap"], "license cap")
    if "storage_quota_bytes" in changes:
        org.storage_quota_bytes = check_limit(changes["storage_quota_bytes"], "storage quota")
    audit.record(session, who.actor, "org.set_limits", org_id=org.id, target=f"org:{org.id}",
                 **changes)


def find_org(session: Session, ref: str) -> Org:
    """For the CLI: an organization by id, unique name, or path ``MSP/Customer``."""
    if not ref or any(ch < " " for ch in ref):
        raise NotFound(f"No organization {ref!r}.")
    org = session.get(Org, ref)
    if org is not None:
        return org
    parent_id: str | None = None
    found = None
    for part in ref.split("/"):
        candidates = list(session.scalars(select(Org).where(
            func.lower(Org.name) == part.strip().lower(),
            *([Org.parent_id == parent_id] if parent_id else []))))
        if "/" in ref and parent_id is None:
            candidates = [c for c in candidates if c.parent_id is None]
        if len(candidates) > 1:
            raise BadRequest(f"Several organizations are named {part!r}; use its id or a "
                             "path such as 'MSP/Customer'.")
        if not candidates:
            raise NotFound(f"No organization {ref!r}.")
        found = candidates[0]
        parent_id = found.id
    if found is None:
        raise NotFound(f"No organization {ref!r}.")
    return found


def list_orgs(session: Session, who: Principal) -> list[Org]:
    scope = org_scope(session, who)
    query = select(Org).order_by(Org.created_at, Org.id)
    if scope is not None:
        query = query.where(Org.id.in_(scope))
    return list(session.scalars(query))


def org_counts(session: Session, org_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per organization: active users, licenses held, active devices, bytes stored."""
    counts = {oid: {"users_active": 0, "licenses_held": 0, "devices_active": 0,
                    "bytes_stored": 0} for oid in org_ids}
    rows = session.execute(
        select(User.org_id, func.count(), func.count().filter(User.licensed),
               func.coalesce(func.sum(Archive.bytes_stored), 0))
        .select_from(User).outerjoin(Archive, Archive.user_id == User.id)
        .where(User.active, User.org_id.in_(org_ids)).group_by(User.org_id))
    for org_id, users, licensed, stored in rows:
        counts[org_id].update(users_active=users, licenses_held=licensed,
                              bytes_stored=int(stored))
    devices = session.execute(
        select(User.org_id, func.count()).select_from(Device).join(User)
        .where(Device.active, User.org_id.in_(org_ids)).group_by(User.org_id))
    for org_id, n in devices:
        counts[org_id]["devices_active"] = n
    return counts


def org_dict(org: Org, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """The public view of an organization (never the key itself)."""
    return {"id": org.id, "name": org.name, "parent_id": org.parent_id,
            "license_cap": org.license_cap, "storage_quota_bytes": org.storage_quota_bytes,
            "registration_key_active": org.reg_key_hash is not None,
            "registration_key_hint": org.reg_key_hint,
            "registration_key_created_at": _iso(org.reg_key_created_at),
            "created_at": _iso(org.created_at), **(counts or {})}


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()
