"""Devices: up to four active per user, each with its own token; deactivation frees a slot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.domain import audit
from server.domain.versions import is_older
from server.errors import AgentTooOld, BadRequest, Conflict, Unauthenticated
from server.metadata.models import Archive, Device, User, utcnow
from server.security import DEVICE_TOKEN_PREFIX, token_hash

MAX_ACTIVE_DEVICES = 4
TOUCH_EVERY = timedelta(seconds=60)  # last_seen is written at most once a minute
BAD_TOKEN = ("This device's token is not valid: the device may have been deactivated. "
             "Register the device again.")


@dataclass(frozen=True)
class DeviceAuth:
    """What a valid device token reaches: its device, its user and their archive."""

    device: Device
    user: User
    archive: Archive


def refuse_old_agent(agent_version: str, minimum: str) -> None:
    if is_older(agent_version, minimum):
        raise AgentTooOld(
            f"This Cairn agent is version {agent_version}; the server requires version "
            f"{minimum} or newer. Upgrade the Cairn agent on this computer, then try again.",
            minimum_version=minimum)


def authenticate(session: Session, token: str) -> DeviceAuth:
    """The device behind a bearer token; Unauthenticated for unknown or dead tokens."""
    if not token.startswith(DEVICE_TOKEN_PREFIX):
        raise Unauthenticated(BAD_TOKEN)
    row = session.execute(
        select(Device, User, Archive).join(User, Device.user_id == User.id)
        .join(Archive, Archive.user_id == User.id)
        .where(Device.token_hash == token_hash(token))).first()
    if row is None:
        raise Unauthenticated(BAD_TOKEN)
    device, user, archive = row
    if not (device.active and user.active) or archive.delete_pending:
        raise Unauthenticated(BAD_TOKEN)
    return DeviceAuth(device, user, archive)


def needs_touch(device: Device, agent_version: str, now: datetime) -> bool:
    return device.agent_version != agent_version or now - device.last_seen >= TOUCH_EVERY


def touch(session: Session, device_id: str, agent_version: str, now: datetime) -> None:
    """Update last_seen and agent version (in a write transaction)."""
    device = session.get(Device, device_id)
    if device is not None and device.active:
        device.last_seen = max(device.last_seen, now)
        device.agent_version = agent_version


def record_backup(session: Session, device_id: str, completed_at: datetime) -> Device:
    """Record a completed backup reported by the device itself."""
    now = utcnow()
    if completed_at > now + timedelta(minutes=5):
        raise BadRequest("The backup completion time is in the future; check the clock of "
                         "this computer.")
    device = session.get(Device, device_id)
    if device is None or not device.active:
        raise Unauthenticated(BAD_TOKEN)
    device.last_backup_at = max(device.last_backup_at or completed_at, completed_at)
    device.last_seen = max(device.last_seen, now)
    return device


def active_devices(session: Session, user_id: str) -> list[Device]:
    return list(session.scalars(select(Device).where(Device.user_id == user_id, Device.active)
                                .order_by(Device.first_seen)))


def deactivate(session: Session, actor: str, device: Device, org_id: str) -> None:
    """Deactivate one device: its token dies and its slot is freed. Data stays."""
    if not device.active:
        raise Conflict("This device is already deactivated.")
    device.active = False
    device.token_hash = None
    device.deactivated_at = utcnow()
    audit.record(session, actor, "device.deactivate", org_id=org_id,
                 target=f"device:{device.id}", guid=device.guid, name=device.name)


def list_devices(session: Session, org_ids: set[str] | None, user_id: str | None = None,
                 include_inactive: bool = False) -> list[tuple[Device, User]]:
    query = select(Device, User).join(User, Device.user_id == User.id) \
        .order_by(User.username, Device.first_seen)
    if org_ids is not None:
        query = query.where(User.org_id.in_(org_ids))
    if user_id is not None:
        query = query.where(Device.user_id == user_id)
    if not include_inactive:
        query = query.where(Device.active)
    return [(d, u) for d, u in session.execute(query)]


def device_dict(device: Device, user: User | None = None) -> dict[str, Any]:
    """The public view of a device (never its token)."""
    data = {"id": device.id, "user_id": device.user_id, "guid": device.guid,
            "name": device.name, "os": device.os, "agent_version": device.agent_version,
            "active": device.active, "first_seen": device.first_seen.isoformat(),
            "last_seen": device.last_seen.isoformat(),
            "last_backup_at": _iso(device.last_backup_at), "bytes_stored": device.bytes_stored,
            "deactivated_at": _iso(device.deactivated_at)}
    if user is not None:
        data.update(username=user.username, org_id=user.org_id)
    return data


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
