"""Admin routes for organizations, their registration keys, users, devices and audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from server.api.deps import AdminDep, RuntimeDep, check_id
from server.api.schemas import (
    AuditOut,
    DeviceOut,
    OrgCreate,
    OrgCreated,
    OrgOut,
    OrgUpdate,
    RegistrationKeyOut,
    UserCreate,
    UserOut,
)
from server.domain import audit, devices, orgs, users
from server.domain.access import NO_ORG, Principal, require_admin, visible_org
from server.metadata.db import Database
from server.security import hash_password

router = APIRouter(prefix="/api/v1/orgs", tags=["organizations"])


def _org_out(session: Any, org: Any) -> dict[str, Any]:
    return orgs.org_dict(org, orgs.org_counts(session, [org.id])[org.id])


@router.get("", response_model=list[OrgOut])
def list_orgs(who: AdminDep, rt: RuntimeDep) -> list[dict[str, Any]]:
    """Organizations the caller administers."""
    require_admin(who)
    with rt.db.read() as session:
        found = orgs.list_orgs(session, who)
        counts = orgs.org_counts(session, [o.id for o in found])
        return [orgs.org_dict(o, counts[o.id]) for o in found]


@router.post("", status_code=201, response_model=OrgCreated)
def create_org(body: OrgCreate, who: AdminDep, rt: RuntimeDep) -> dict[str, Any]:
    """Create a customer organization under one the caller administers (MSP admins).

    The response carries the registration key; it is never shown again.
    """
    check_id(body.parent_id, NO_ORG)
    with rt.db.write() as session:
        org, key = orgs.create_org(session, who, body.name, body.parent_id, body.license_cap,
                                   body.storage_quota_bytes)
        session.flush()
        return {**_org_out(session, org), "registration_key": key}


@router.get("/{org_id}", response_model=OrgOut)
def get_org(org_id: str, who: AdminDep, rt: RuntimeDep) -> dict[str, Any]:
    with rt.db.read() as session:
        return _org_out(session, visible_org(session, who, check_id(org_id, NO_ORG)))


@router.patch("/{org_id}", response_model=OrgOut)
def update_org(org_id: str, body: OrgUpdate, who: AdminDep, rt: RuntimeDep) -> dict[str, Any]:
    """Change the license cap and/or storage quota (null removes the limit)."""
    with rt.db.write() as session:
        org = visible_org(session, who, check_id(org_id, NO_ORG), lock=True)
        orgs.set_limits(session, who, org, body.model_dump(include=body.model_fields_set))
        return _org_out(session, org)


@router.post("/{org_id}/registration-key", response_model=RegistrationKeyOut)
def rotate_key(org_id: str, who: AdminDep, rt: RuntimeDep) -> RegistrationKeyOut:
    """Issue a new registration key (the old one stops working). Shown only now."""
    with rt.db.write() as session:
        org = visible_org(session, who, check_id(org_id, NO_ORG), lock=True)
        return RegistrationKeyOut(org_id=org.id, registration_key=orgs.rotate_key(session, who,
                                                                                  org))


@router.delete("/{org_id}/registration-key", status_code=204)
def revoke_key(org_id: str, who: AdminDep, rt: RuntimeDep) -> None:
    """Revoke the registration key; registrations fail until a new key is issued."""
    with rt.db.write() as session:
        org = visible_org(session, who, check_id(org_id, NO_ORG), lock=True)
        orgs.revoke_key(session, who, org)


@router.get("/{org_id}/users", response_model=list[UserOut])
def list_users(org_id: str, who: AdminDep, rt: RuntimeDep,
               include_inactive: bool = False) -> list[dict[str, Any]]:
    with rt.db.read() as session:
        org = visible_org(session, who, check_id(org_id, NO_ORG))
        return users.user_dicts(session, users.list_users(
            session, {org.id}, include_inactive=include_inactive))


@router.post("/{org_id}/users", status_code=201, response_model=UserOut)
async def create_user(org_id: str, body: UserCreate, who: AdminDep,
                      rt: RuntimeDep) -> dict[str, Any]:
    """Create a user (or admin) in the organization; a ``user`` takes a license."""
    with rt.db.read() as session:  # refuse before spending time on the password hash
        visible_org(session, who, check_id(org_id, NO_ORG))
    username = users.check_username(body.username)
    password_hash = await run_in_threadpool(hash_password,
                                            users.check_new_password(body.password))
    return await run_in_threadpool(_create_user, rt.db, who, org_id, username, password_hash,
                                   body.role)


def _create_user(db: Database, who: Principal, org_id: str, username: str,
                 password_hash: str, role: str) -> dict[str, Any]:
    with db.write() as session:
        org = visible_org(session, who, check_id(org_id, NO_ORG), lock=True)
        user = users.create_user(session, who, org, username, password_hash, role)
        session.flush()
        return users.user_dicts(session, [user])[0]


@router.get("/{org_id}/devices", response_model=list[DeviceOut])
def list_devices(org_id: str, who: AdminDep, rt: RuntimeDep,
                 include_inactive: bool = False) -> list[dict[str, Any]]:
    with rt.db.read() as session:
        org = visible_org(session, who, check_id(org_id, NO_ORG))
        return [devices.device_dict(d, u) for d, u in devices.list_devices(
            session, {org.id}, include_inactive=include_inactive)]


@router.get("/{org_id}/audit", response_model=list[AuditOut])
def audit_log(org_id: str, who: AdminDep, rt: RuntimeDep,
              limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> list[dict[str, Any]]:
    """The organization's audit log, newest first."""
    with rt.db.read() as session:
        org = visible_org(session, who, check_id(org_id, NO_ORG))
        return [audit.as_dict(e) for e in audit.events(session, {org.id}, limit)]
