"""Archives: quotas, accounting of stored bytes, the trash protocol, and data deletion.

The BlobStore holds the bytes; the database holds per-archive and per-device
byte counts (updated with SQL arithmetic, so concurrent uploads never lose an
update) and the trash log. The log is written *before* objects move to the
trash, so every trashed object can be found and restored during the grace
period even if the server dies half-way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session

from server.domain import audit, users
from server.domain.access import Principal, ancestors, descendants, org_parents
from server.domain.devices import BAD_TOKEN, DeviceAuth
from server.errors import BadRequest, QuotaExceeded, ServiceUnavailable, Unauthenticated
from server.metadata.db import Database
from server.metadata.models import Archive, Device, Org, TrashedObject, User, utcnow
from server.storage.base import BlobStore, ObjectCorrupt, ObjectNotFound, StorageError

T = TypeVar("T")
STORAGE_DOWN = "The object storage is not reachable; try again shortly."


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"


def org_bytes(session: Session, org_ids: Iterable[str]) -> int:
    """Bytes stored by the active users of these organizations."""
    return int(session.scalar(
        select(func.coalesce(func.sum(Archive.bytes_stored), 0)).join(User)
        .where(User.org_id.in_(list(org_ids)), User.active)) or 0)


def check_quota(session: Session, org_id: str, incoming: int) -> None:
    """QuotaExceeded if incoming bytes would push this org or one above it over quota."""
    if not session.scalar(select(exists().where(Org.storage_quota_bytes.is_not(None)))):
        return  # no quotas anywhere: the common case costs one query
    parents = org_parents(session)
    chain = ancestors(parents, org_id)
    limited = session.execute(select(Org.id, Org.name, Org.storage_quota_bytes).where(
        Org.id.in_(chain), Org.storage_quota_bytes.is_not(None))).all()
    for limited_id, name, quota in limited:
        used = org_bytes(session, descendants(parents, limited_id))
        if used + incoming > quota:
            raise QuotaExceeded(
                f"This upload of {human_bytes(incoming)} would exceed the storage quota of "
                f"organization {name!r} ({human_bytes(quota)}, of which {human_bytes(used)} "
                "is in use). Ask your administrator to raise the quota, or free space by "
                "pruning old backups.", quota_bytes=quota, used_bytes=used)


def record_stored(db: Database, store: BlobStore, auth: DeviceAuth, kind: str, size: int,
                  new: bool) -> None:
    """Account for an uploaded object (only a new one adds bytes).

    If the user was deactivated while the upload ran, the archive is deleted
    again (the upload may have landed after the deletion) and the device is
    told its token is dead.
    """
    now = utcnow()
    with db.write() as session:
        archive = session.get(Archive, auth.archive.id)
        gone = archive is None or archive.delete_pending or archive.deleted_at is not None
        if not gone and new:
            session.execute(update(Archive).where(Archive.id == auth.archive.id)
                            .values(bytes_stored=Archive.bytes_stored + size))
            if kind != "locks":
                session.execute(update(Archive).where(Archive.id == auth.archive.id,
                                                      Archive.first_data_at.is_(None))
                                .values(first_data_at=now))
        if not gone:
            session.execute(update(Device).where(Device.id == auth.device.id).values(
                bytes_stored=Device.bytes_stored + (size if new else 0), last_seen=now))
    if gone:
        storage_call(store.delete_namespace, auth.archive.id)
        raise Unauthenticated(BAD_TOKEN)


def trash_objects(db: Database, store: BlobStore, auth: DeviceAuth,
                  refs: list[tuple[str, str]]) -> tuple[int, list[tuple[str, str]]]:
    """Move objects to the trash; returns (how many, the ones that were not there)."""
    namespace = auth.archive.id
    found, missing = [], []
    for kind, name in dict.fromkeys(refs):
        try:
            found.append((kind, name, storage_call(store.size, namespace, kind, name)))
        except ObjectNotFound:
            missing.append((kind, name))
    now = utcnow()
    with db.write() as session:
        for kind, name, size in found:
            if kind != "locks":
                session.add(TrashedObject(archive_id=namespace, kind=kind, name=name,
                                          size=size, trashed_at=now,
                                          trashed_by=auth.device.id))
        _add_bytes(session, namespace, -sum(size for _k, _n, size in found))
        audit.record(session, f"device:{auth.device.id}", "archive.trash",
                     org_id=auth.user.org_id, target=f"user:{auth.user.id}",
                     objects=len(found), bytes=sum(s for _k, _n, s in found))
    for kind, name, _size in found:
        storage_call(store.trash, namespace, kind, name)
    return len(found), missing


def delete_lock(db: Database, store: BlobStore, auth: DeviceAuth, name: str) -> bool:
    """Remove a lock object (devices may); False when there was none."""
    try:
        size = storage_call(store.size, auth.archive.id, "locks", name)
    except ObjectNotFound:
        return False
    storage_call(store.trash, auth.archive.id, "locks", name)
    with db.write() as session:
        _add_bytes(session, auth.archive.id, -size)
    return True


def restore_trash(db: Database, store: BlobStore, who: Principal, user: User,
                  since: datetime | None) -> int:
    """Bring back the user's trashed objects (those trashed at or after ``since``)."""
    with db.read() as session:
        archive = session.scalars(select(Archive).where(Archive.user_id == user.id)).one()
        query = select(TrashedObject).where(TrashedObject.archive_id == archive.id)
        if since is not None:
            query = query.where(TrashedObject.trashed_at >= since)
        rows = list(session.scalars(query))
    restored, restored_bytes = [], 0
    for row in rows:
        try:
            storage_call(store.restore_from_trash, archive.id, row.kind, row.name)
        except ObjectNotFound:
            continue  # purged already; its log entry goes below
        restored.append(row.id)
        restored_bytes += row.size
    with db.write() as session:
        session.execute(delete(TrashedObject).where(TrashedObject.id.in_([r.id for r in rows])))
        _add_bytes(session, archive.id, restored_bytes)
        audit.record(session, who.actor, "archive.restore_trash", org_id=user.org_id,
                     target=f"user:{user.id}", objects=len(restored), bytes=restored_bytes)
    return len(restored)


def delete_archive_data(db: Database, store: BlobStore, archive_id: str) -> None:
    """Delete every object of a deactivated user's archive now (no grace period)."""
    storage_call(store.delete_namespace, archive_id)
    with db.write() as session:
        archive = session.get(Archive, archive_id)
        if archive is None:
            return
        archive.bytes_stored = 0
        archive.delete_pending = False
        archive.deleted_at = utcnow()
        session.execute(update(Device).where(Device.user_id == archive.user_id)
                        .values(bytes_stored=0))


def maintain(db: Database, store: BlobStore, grace_s: float) -> dict[str, int]:
    """Purge trash past its grace period, retry pending deletions, re-count bytes."""
    with db.read() as session:
        live = list(session.scalars(select(Archive.id).where(
            Archive.delete_pending.is_(False), Archive.deleted_at.is_(None))))
        pending = list(session.scalars(select(Archive.id).where(Archive.delete_pending)))
    purged = 0
    cutoff = utcnow() - timedelta(seconds=grace_s)
    for archive_id in live:
        purged += storage_call(store.purge_trash, archive_id, grace_s)
        stored = storage_call(store.namespace_bytes, archive_id)
        with db.write() as session:
            session.execute(delete(TrashedObject).where(TrashedObject.archive_id == archive_id,
                                                        TrashedObject.trashed_at < cutoff))
            session.execute(update(Archive).where(Archive.id == archive_id)
                            .values(bytes_stored=stored))
    for archive_id in pending:
        delete_archive_data(db, store, archive_id)
    return {"archives": len(live), "purged": purged, "deleted_archives": len(pending)}


def _add_bytes(session: Session, archive_id: str, delta: int) -> None:
    if delta:
        session.execute(update(Archive).where(Archive.id == archive_id)
                        .values(bytes_stored=Archive.bytes_stored + delta))


def storage_call(method: Callable[..., T], *args: Any) -> T:
    """Call a store method; storage outages become ServiceUnavailable."""
    try:
        return method(*args)
    except (ObjectNotFound, ObjectCorrupt):
        raise
    except StorageError as exc:
        raise ServiceUnavailable(STORAGE_DOWN) from exc


def deactivate_user(db: Database, store: BlobStore, who: Principal,
                    pick: Callable[[Session], User], confirm: str | None) -> tuple[str, bool]:
    """Deactivate the user ``pick`` selects (locked) and delete their data at once.

    ``confirm`` must repeat the username (None: the caller confirmed otherwise).
    Returns (user id, whether the data is gone); if storage fails the deletion
    stays pending and maintenance retries it.
    """
    with db.write() as session:
        user = pick(session)
        if confirm is not None and confirm.strip().lower() != user.username:
            raise BadRequest("The confirmation does not match the user's username; nothing "
                             "was changed.")
        archive_id = users.deactivate(session, who, user).id
        user_id = user.id
    try:
        delete_archive_data(db, store, archive_id)
    except ServiceUnavailable:
        return user_id, False
    return user_id, True
