"""Users: creation (one license each), listing, and permanent deactivation.

A user *holds a license* from creation until deactivation when they are
``licensed`` (every ``user``, and any admin who registered a device); the
organization's license cap counts held licenses. Reports count licenses *in
use*: held by a user whose archive has data (see ``reports``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from server.domain import archive_keys, audit
from server.domain.access import Principal, require_rank_over
from server.errors import BadRequest, Conflict, Forbidden, LicenseCapReached
from server.metadata.models import (
    ROLES,
    AdminSession,
    Archive,
    Device,
    Org,
    TrashedObject,
    User,
    utcnow,
)
from server.security import new_id

MIN_PASSWORD = 8
MAX_PASSWORD = 1024


def check_username(username: str) -> str:
    """Usernames (usually email addresses) are compared in lower case."""
    clean = username.strip().lower()
    if not 1 <= len(clean) <= 254 or any(ch <= " " or ch == "\x7f" for ch in clean):
        raise BadRequest("A username has 1 to 254 characters without spaces or control "
                         "characters (usually an email address).")
    return clean


def check_new_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise BadRequest(f"A password has at least {MIN_PASSWORD} characters.")
    return password


def find_active(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username, User.active))


def licenses_held(session: Session, org_id: str) -> int:
    return session.scalar(select(func.count()).select_from(User).where(
        User.org_id == org_id, User.active, User.licensed)) or 0


def check_cap(session: Session, org: Org) -> None:
    """LicenseCapReached when one more license would exceed the cap (org row locked)."""
    if org.license_cap is not None and licenses_held(session, org.id) >= org.license_cap:
        raise LicenseCapReached(
            f"Organization {org.name!r} has used all {org.license_cap} licenses its cap "
            "allows. Ask its administrator to raise the license cap or deactivate a user.")


def create_user(session: Session, who: Principal, org: Org, username: str,
                password_hash: str, role: str = "user", *, licensed: bool | None = None,
                now: datetime | None = None) -> User:
    """Create a user and their (empty) archive in org, which the caller has locked."""
    if role not in ROLES:
        raise BadRequest(f"Unknown role {role!r}; roles are {', '.join(ROLES)}.")
    if role == "msp_admin" and org.parent_id is not None:
        raise BadRequest("MSP admins belong to a top-level organization.")
    require_rank_over(who, role, "create")
    if find_active(session, username) is not None:
        raise Conflict(f"The username {username!r} is already taken.")
    licensed = role == "user" if licensed is None else licensed
    if licensed:
        check_cap(session, org)
    now = now or utcnow()
    user = User(id=new_id(), org_id=org.id, username=username, password_hash=password_hash,
                role=role, active=True, licensed=licensed, created_at=now)
    session.add(user)
    session.flush()  # the archive row refers to the user row
    session.add(Archive(id=new_id(), user_id=user.id, bytes_stored=0, delete_pending=False,
                        created_at=now))
    audit.record(session, who.actor, "user.create", org_id=org.id, target=f"user:{user.id}",
                 username=username, role=role)
    return user


def deactivate(session: Session, who: Principal, user: User) -> Archive:
    """Deactivate for good: tokens and sessions die now; the archive is marked for deletion.

    The caller deletes the archive's objects right after commit
    (``archive.delete_archive_data``); a maintenance pass retries if that fails.
    """
    if not user.active:
        raise Conflict(f"User {user.username!r} is already deactivated.")
    if who.user_id == user.id:
        raise Forbidden("You cannot deactivate yourself; ask another administrator.")
    require_rank_over(who, user.role, "deactivate")
    now = utcnow()
    user.active = False
    user.deactivated_at = now
    devices = session.execute(update(Device).where(Device.user_id == user.id, Device.active)
                              .values(active=False, token_hash=None, deactivated_at=now))
    session.execute(delete(AdminSession).where(AdminSession.user_id == user.id))
    archive = session.scalars(select(Archive).where(Archive.user_id == user.id)).one()
    archive.delete_pending = True
    session.execute(delete(TrashedObject).where(TrashedObject.archive_id == archive.id))
    archive_keys.forget_archive(session, archive.id, user.id)  # escrowed key and device keys
    audit.record(session, who.actor, "user.deactivate", org_id=user.org_id,
                 target=f"user:{user.id}", username=user.username,
                 devices_deactivated=devices.rowcount, bytes_deleted=archive.bytes_stored)
    return archive


def list_users(session: Session, org_ids: set[str] | None, *,
               include_inactive: bool = False) -> list[User]:
    query = select(User).order_by(User.username, User.created_at)
    if org_ids is not None:
        query = query.where(User.org_id.in_(org_ids))
    if not include_inactive:
        query = query.where(User.active)
    return list(session.scalars(query))


def user_dicts(session: Session, users: list[User]) -> list[dict[str, Any]]:
    """The public view of users, with device counts and bytes stored."""
    ids = [u.id for u in users]
    stored = dict(session.execute(select(Archive.user_id, Archive.bytes_stored)
                                  .where(Archive.user_id.in_(ids))).all())
    devices = dict(session.execute(
        select(Device.user_id, func.count()).where(Device.user_id.in_(ids), Device.active)
        .group_by(Device.user_id)).all())
    return [{"id": u.id, "org_id": u.org_id, "username": u.username, "role": u.role,
             "active": u.active, "licensed": u.licensed, "created_at": u.created_at.isoformat(),
             "deactivated_at": u.deactivated_at.isoformat() if u.deactivated_at else None,
             "devices_active": devices.get(u.id, 0), "bytes_stored": stored.get(u.id, 0)}
            for u in users]
