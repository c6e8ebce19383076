"""Self-registration of a device with an organization's registration key.

A device presents the key, a username and password, and its own description.
A new username creates that user in the key's organization (consuming a
license); an existing user of that organization is authenticated. Refusals,
each audited: unknown or revoked key, wrong password, license cap reached, four
active devices already (unless replacing one), agent older than the minimum.

Limits hold under concurrency: the write transaction locks the organization's
row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite serializes writers), so
registrations of one organization run one at a time from the cap and device
checks to the commit. Password hashing (slow on purpose) happens before that
transaction so it never holds the lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.domain import audit, devices, settings, throttle, users
from server.domain.access import Principal
from server.errors import (
    BadRequest,
    DeviceLimitReached,
    RegistrationKeyInvalid,
    ServerError,
    WrongCredentials,
)
from server.metadata.db import Database
from server.metadata.models import Device, Org, User, utcnow
from server.security import (
    hash_password,
    new_device_token,
    new_id,
    registration_key_hash,
    token_hash,
    verify_password,
)

KEY_REFUSED = ("The registration key is unknown or has been revoked. Ask your administrator "
               "for the organization's current registration key.")
WRONG_PASSWORD = "The username or password is wrong."


@dataclass(frozen=True)
class Registration:
    """What a registering device sends (already shape-checked by the API layer)."""

    registration_key: str
    username: str
    password: str
    guid: str
    device_name: str
    os: str
    agent_version: str
    replace_device: str | None = None
    address: str = ""  # the client's network address, for the wrong-password lockout


@dataclass(frozen=True)
class Registered:
    device_id: str
    device_token: str
    user_id: str
    username: str
    org_id: str
    org_name: str
    user_created: bool
    replaced_device_id: str | None


@dataclass(frozen=True)
class _Found:
    org_id: str
    key_hash: str
    user_id: str | None
    user_org_id: str | None
    password_hash: str | None


class _UsernameRace(Exception):
    """Another registration created the same username meanwhile: start over."""


def register(db: Database, req: Registration) -> Registered:
    """Register a device, or raise a ServerError after auditing the refusal."""
    try:
        username = users.check_username(req.username)
        throttle.check(db, username, req.address)
        for _attempt in range(3):
            try:
                return _register_once(db, req, username)
            except (_UsernameRace, IntegrityError):
                continue
        raise BadRequest("The registration collided with another one; try again.")
    except ServerError as exc:
        _audit_refusal(db, req, exc)
        raise


def _register_once(db: Database, req: Registration, username: str) -> Registered:
    found = _look_up(db, req, username)
    if found.user_id is not None:
        if found.user_org_id != found.org_id or not verify_password(found.password_hash,
                                                                     req.password):
            raise WrongCredentials(WRONG_PASSWORD)
        new_hash = None
    else:
        new_hash = hash_password(users.check_new_password(req.password))
    token = new_device_token()
    with db.write() as session:
        org = session.scalar(select(Org).where(Org.id == found.org_id).with_for_update())
        if org is None or org.reg_key_hash != found.key_hash:
            raise RegistrationKeyInvalid(KEY_REFUSED)
        user, created = _user_for(session, org, found, username, new_hash)
        replaced = _free_slot(session, user, req)
        device = _new_device(session, user, req, token)
        audit.record(session, f"user:{username}", "device.register", org_id=org.id,
                     target=f"device:{device.id}", guid=req.guid, name=req.device_name,
                     os=req.os, agent_version=req.agent_version, user_created=created,
                     replaced_device_id=replaced)
        return Registered(device.id, token, user.id, user.username, org.id, org.name,
                          created, replaced)


def _look_up(db: Database, req: Registration, username: str) -> _Found:
    key_hash = registration_key_hash(req.registration_key)
    with db.read() as session:
        devices.refuse_old_agent(req.agent_version, settings.load(session).min_agent_version)
        org_id = session.scalar(select(Org.id).where(Org.reg_key_hash == key_hash))
        if org_id is None:
            raise RegistrationKeyInvalid(KEY_REFUSED)
        user = users.find_active(session, username)
        if user is None:
            return _Found(org_id, key_hash, None, None, None)
        return _Found(org_id, key_hash, user.id, user.org_id, user.password_hash)


def _user_for(session: Session, org: Org, found: _Found, username: str,
              new_hash: str | None) -> tuple[User, bool]:
    """The existing user (re-checked under the lock) or a newly created one."""
    if found.user_id is None:
        if new_hash is None or users.find_active(session, username) is not None:
            raise _UsernameRace
        who = Principal(role="user", name=username)
        return users.create_user(session, who, org, username, new_hash), True
    user = session.scalar(select(User).where(User.id == found.user_id).with_for_update())
    if user is None or not user.active or user.password_hash != found.password_hash:
        raise WrongCredentials(WRONG_PASSWORD)
    if not user.licensed:  # an admin registering their first device takes a license
        users.check_cap(session, org)
        user.licensed = True
    return user, False


def _free_slot(session: Session, user: User, req: Registration) -> str | None:
    """Deactivate the device being replaced (or this computer's old registration)."""
    active = devices.active_devices(session, user.id)
    target = None
    if req.replace_device:
        target = next((d for d in active if req.replace_device in (d.id, d.guid)), None)
        if target is None:
            raise BadRequest(f"User {user.username!r} has no active device "
                             f"{req.replace_device!r} to replace.")
    else:
        target = next((d for d in active if d.guid == req.guid), None)
    if target is not None:
        devices.deactivate(session, f"user:{user.username}", target, user.org_id)
        return target.id
    if len(active) >= devices.MAX_ACTIVE_DEVICES:
        raise DeviceLimitReached(
            f"User {user.username!r} already has {devices.MAX_ACTIVE_DEVICES} active devices. "
            "Deactivate one of them, or register this computer as the replacement of one.",
            devices=[{"id": d.id, "guid": d.guid, "name": d.name, "os": d.os,
                      "last_seen": d.last_seen.isoformat()} for d in active])
    return None


def _new_device(session: Session, user: User, req: Registration, token: str) -> Device:
    now = utcnow()
    device = Device(id=new_id(), user_id=user.id, guid=req.guid, name=req.device_name,
                    os=req.os, agent_version=req.agent_version, token_hash=token_hash(token),
                    active=True, first_seen=now, last_seen=now, bytes_stored=0)
    session.add(device)
    return device


def _audit_refusal(db: Database, req: Registration, exc: ServerError) -> None:
    key_hash = registration_key_hash(req.registration_key)
    with db.write() as session:
        org_id = session.scalar(select(Org.id).where(Org.reg_key_hash == key_hash))
        username = req.username.strip().lower()[:254]
        if isinstance(exc, WrongCredentials):
            throttle.record_failure(session, username, req.address)
        audit.record(session, f"user:{username}", "device.register",
                     org_id=org_id, target=f"guid:{req.guid}", outcome="refused",
                     reason=exc.slug, detail=exc.detail, agent_version=req.agent_version)
