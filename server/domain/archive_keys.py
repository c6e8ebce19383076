"""Archive key levels: status, first key, moving up, escrow release, org policies.

Levels, weakest first: ``standard`` (the key is escrowed, sealed to the
organization's key: admins can recover), ``password`` (only a password-wrapped
key file in the archive; the server cannot open it) and ``custom`` (no form of
the key on the server). An archive's level only moves up, and moving up drops
the escrow. An organization's policy names the weakest level it allows; the
effective policy of a user is the strongest one on the path from their
organization up to the top. See docs/agent-server.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.domain import audit, devices, escrow
from server.domain.access import Principal, ancestors, org_parents, require_admin
from server.domain.devices import DeviceAuth
from server.errors import BadRequest, Conflict, Forbidden, NotFound
from server.metadata.db import Database
from server.metadata.key_models import ArchiveKey, DeviceKey, OrgKeyPair, OrgKeyPolicy
from server.metadata.models import Device, Org, utcnow

LEVELS = ("standard", "password", "custom")
_KEY_ID_RE = re.compile(r"\A[0-9a-f]{32}\Z")


class KeyPolicyRequired(Forbidden):
    slug, title = "key-policy", "Key level not allowed"


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise BadRequest(f"Unknown key level {level[:20]!r}; levels are {', '.join(LEVELS)}.")
    return level


def rank(level: str) -> int:
    return LEVELS.index(level)


def required_level(session: Session, org_id: str) -> str:
    """The strongest policy on the path from org_id to the top (standard when none)."""
    chain = ancestors(org_parents(session), org_id)
    found = session.scalars(select(OrgKeyPolicy.required_level)
                            .where(OrgKeyPolicy.org_id.in_(chain))).all()
    return max(found, key=rank, default="standard")


def _refuse_below(level: str, required: str) -> None:
    if rank(level) < rank(required):
        raise KeyPolicyRequired(
            f"Your organization requires the {required} archive key level or stronger; the "
            f"{level} level is not allowed.", required_level=required)


@dataclass(frozen=True)
class KeyStatus:
    level: str | None
    archive_key_id: str | None
    required_level: str
    org_public_key: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def org_public_key(db: Database, data_dir: Path, org_id: str) -> str:
    """The organization's escrow public key, making its key pair on first use."""
    with db.read() as session:
        pair = session.get(OrgKeyPair, org_id)
        if pair is not None:
            return pair.public_key
    public, sealed = escrow.new_org_key_pair(escrow.server_secret(data_dir), org_id)
    try:
        with db.write() as session:
            session.add(OrgKeyPair(org_id=org_id, public_key=public, private_key_sealed=sealed,
                                   created_at=utcnow()))
            audit.record(session, "server", "org.escrow_key_create", org_id=org_id,
                         target=f"org:{org_id}")
    except IntegrityError:
        pass  # another request made it first: use theirs
    with db.read() as session:
        pair = session.get(OrgKeyPair, org_id)
        assert pair is not None
        return pair.public_key


def status(db: Database, data_dir: Path, auth: DeviceAuth) -> KeyStatus:
    public = org_public_key(db, data_dir, auth.user.org_id)
    with db.read() as session:
        row = session.get(ArchiveKey, auth.archive.id)
        required = required_level(session, auth.user.org_id)
    return KeyStatus(row.level if row else None, row.archive_key_id if row else None,
                     required, public)


def set_device_key(db: Database, auth: DeviceAuth, public_b64: str) -> None:
    escrow.unb64(public_b64, 32, "device public key")
    with db.write() as session:
        row = session.get(DeviceKey, auth.device.id)
        if row is None:
            session.add(DeviceKey(device_id=auth.device.id, public_key=public_b64,
                                  created_at=utcnow()))
        else:
            row.public_key = public_b64


def initialize(db: Database, data_dir: Path, auth: DeviceAuth, level: str, key_id: str,
               sealed: object) -> KeyStatus:
    """Record the archive's first key (once per archive; 409 afterwards)."""
    check_level(level)
    if not _KEY_ID_RE.match(key_id):
        raise BadRequest("archive_key_id must be 32 lowercase hex characters.")
    stored = None
    if level == "standard":
        stored = escrow.check_sealed(sealed)
        _check_escrow_opens(db, data_dir, auth.user.org_id, json.loads(stored), key_id)
    elif sealed is not None:
        raise BadRequest(f"At the {level} level the server must not receive the key.")
    now = utcnow()
    try:
        with db.write() as session:
            _refuse_below(level, required_level(session, auth.user.org_id))
            if session.get(ArchiveKey, auth.archive.id) is not None:
                raise Conflict("This archive already has a key; get it instead of making one.")
            session.add(ArchiveKey(archive_id=auth.archive.id, level=level,
                                   archive_key_id=key_id, escrow=stored, created_at=now,
                                   updated_at=now))
            audit.record(session, f"device:{auth.device.id}", "archive.key_init",
                         org_id=auth.user.org_id, target=f"user:{auth.user.id}", level=level)
    except IntegrityError:
        raise Conflict("This archive already has a key; get it instead of making one.") \
            from None
    return status(db, data_dir, auth)


def _check_escrow_opens(db: Database, data_dir: Path, org_id: str, doc: dict[str, Any],
                        key_id: str) -> None:
    """The escrow must open with the org key and be the key of ``key_id`` (admins rely on it)."""
    org_public_key(db, data_dir, org_id)
    with db.read() as session:
        pair = session.get(OrgKeyPair, org_id)
        assert pair is not None
        private = escrow.org_private_key(escrow.server_secret(data_dir), org_id,
                                         pair.private_key_sealed)
    master = escrow.open_sealed(private, doc, escrow.ORG_ESCROW)
    if len(master) != 32 or escrow.archive_key_id(master) != key_id:
        raise BadRequest("The escrowed key does not match archive_key_id.")


def raise_level(db: Database, data_dir: Path, auth: DeviceAuth, level: str) -> KeyStatus:
    """Move the archive up to ``level``; the escrow is dropped above standard."""
    check_level(level)
    with db.write() as session:
        row = session.get(ArchiveKey, auth.archive.id)
        if row is None:
            raise Conflict("This archive has no key yet.")
        if rank(level) < rank(row.level):
            raise Conflict(f"The archive uses the {row.level} key level; levels only move up.")
        _refuse_below(level, required_level(session, auth.user.org_id))
        if level != row.level:
            audit.record(session, f"device:{auth.device.id}", "archive.key_level",
                         org_id=auth.user.org_id, target=f"user:{auth.user.id}",
                         before=row.level, after=level)
            row.level, row.updated_at = level, utcnow()
            if level != "standard":
                row.escrow = None
    return status(db, data_dir, auth)


def release_to_device(db: Database, data_dir: Path, auth: DeviceAuth) -> dict[str, Any]:
    """The escrowed key sealed to the calling device's public key (audited)."""
    with db.read() as session:
        row = session.get(ArchiveKey, auth.archive.id)
        device_key = session.get(DeviceKey, auth.device.id)
        pair = session.get(OrgKeyPair, auth.user.org_id)
        required = required_level(session, auth.user.org_id)
    if row is None or row.level != "standard" or row.escrow is None or pair is None:
        raise NotFound("The server holds no escrowed key for this archive (its key level is "
                       "not standard).")
    _refuse_below(row.level, required)
    if device_key is None:
        raise Conflict("This device has not sent its public key; register it again.")
    private = escrow.org_private_key(escrow.server_secret(data_dir), auth.user.org_id,
                                     pair.private_key_sealed)
    master = escrow.open_sealed(private, json.loads(row.escrow), escrow.ORG_ESCROW)
    sealed = escrow.seal(escrow.unb64(device_key.public_key, 32), master, escrow.DEVICE)
    with db.write() as session:
        audit.record(session, f"device:{auth.device.id}", "archive.key_release",
                     org_id=auth.user.org_id, target=f"user:{auth.user.id}")
    return sealed


def unregister_device(db: Database, auth: DeviceAuth) -> None:
    """The device deactivates itself: its token dies and its slot is freed; data stays."""
    with db.write() as session:
        device = session.get(Device, auth.device.id)
        if device is None:
            raise NotFound("No such device.")
        devices.deactivate(session, f"device:{device.id}", device, auth.user.org_id)
        session.execute(delete(DeviceKey).where(DeviceKey.device_id == device.id))


def forget_archive(session: Session, archive_id: str, user_id: str) -> None:
    """Drop an archive's key records and its devices' public keys (user deactivation)."""
    session.execute(delete(ArchiveKey).where(ArchiveKey.archive_id == archive_id))
    device_ids = select(Device.id).where(Device.user_id == user_id)
    session.execute(delete(DeviceKey).where(DeviceKey.device_id.in_(device_ids)))


def set_policy(session: Session, who: Principal, org: Org, level: str) -> None:
    """Set the weakest archive key level an organization allows (admins of the org)."""
    require_admin(who)
    check_level(level)
    row = session.get(OrgKeyPolicy, org.id)
    if row is None:
        session.add(OrgKeyPolicy(org_id=org.id, required_level=level, updated_at=utcnow()))
    else:
        row.required_level, row.updated_at = level, utcnow()
    audit.record(session, who.actor, "org.key_policy", org_id=org.id, target=f"org:{org.id}",
                 required_level=level)


def policy_dict(session: Session, org: Org) -> dict[str, Any]:
    row = session.get(OrgKeyPolicy, org.id)
    return {"org_id": org.id, "required_level": row.required_level if row else "standard",
            "effective_level": required_level(session, org.id)}
