"""Admin restore: read-only access to a user's archive, and its escrowed key for an admin.

An MSP admin reaches the users of the organizations below it, an org admin
the users of its own organization; anybody else (plain users included, even
for themselves) gets the same 404 as for a missing user. Only reads exist:
list objects by kind, GET an object (one Range), and the archive master key
re-sealed to an X25519 public key the admin's client sends (purpose
``admin-restore``), only at the ``standard`` key level. The server opens the
escrow in memory and never stores the unwrapped key. Every access is audited.
See docs/server-api.md ("Admin restore").
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from server.api.deps import AdminDep, RuntimeDep, check_id
from server.api.objects import READ_CHUNK, _chunks, _read, _size, check_kind, check_name
from server.api.ranges import parse_range
from server.api.schemas import ObjectList, Strict
from server.domain import audit, escrow
from server.domain.access import NO_USER, Principal, visible_user
from server.domain.archive import storage_call
from server.domain.archive_keys import KeyPolicyRequired, required_level
from server.errors import Conflict, NotFound
from server.metadata.db import Database
from server.metadata.key_models import ArchiveKey, OrgKeyPair
from server.metadata.models import Archive, User
from server.runtime import Runtime

router = APIRouter(prefix="/api/v1/users/{user_id}/archive", tags=["admin restore"])
ADMIN_RESTORE = "admin-restore"


class KeyNotRecoverable(Conflict):
    """The archive's key is not escrowed (password or custom level): admins cannot open it."""

    slug, title = "key-not-recoverable", "Archive key not recoverable"


class AdminKeyIn(Strict):
    public_key: str = Field(min_length=40, max_length=64,
                            description="The admin client's one-time X25519 public key "
                                        "(base64, 32 bytes).")


class AdminKeyOut(BaseModel):
    user_id: str
    username: str
    archive_key_id: str = Field(description="Public fingerprint of the master key.")
    sealed: dict[str, Any] = Field(description="The master key sealed to public_key "
                                               "(purpose admin-restore).")


def _target(db: Database, who: Principal, user_id: str) -> tuple[User, str]:
    """The active user in the caller's admin scope and their archive id, else NotFound."""
    with db.read() as session:
        user = visible_user(session, who, check_id(user_id, NO_USER), self_ok=False)
        archive_id = session.scalar(select(Archive.id).where(Archive.user_id == user.id))
        if not user.active or archive_id is None:
            raise NotFound(NO_USER)
        session.expunge(user)
        return user, archive_id


def _audit(rt: Runtime, who: Principal, user: User, action: str, **detail: Any) -> None:
    with rt.db.write() as session:
        audit.record(session, who.actor, action, org_id=user.org_id,
                     target=f"user:{user.id}", **detail)


@router.get("/objects/{kind}", response_model=ObjectList)
def admin_list(user_id: str, kind: str, who: AdminDep, rt: RuntimeDep) -> ObjectList:
    """Every live object of a kind in the user's archive (audited)."""
    user, archive_id = _target(rt.db, who, user_id)
    check_kind(kind)
    infos = storage_call(lambda: list(rt.store.list(archive_id, kind)))
    _audit(rt, who, user, "archive.admin_list", kind=kind, objects=len(infos))
    return ObjectList(kind=kind, objects=[{"kind": i.kind, "name": i.name, "size": i.size}
                                          for i in infos])


@router.get("/objects/{kind}/{name:path}", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}},
                       206: {"description": "The requested byte range."}})
def admin_get(user_id: str, kind: str, name: str, who: AdminDep, rt: RuntimeDep,
              range_: Annotated[str | None, Header(alias="Range")] = None) -> Response:
    """Download an object of the user's archive, or one byte range of it (audited)."""
    user, namespace = _target(rt.db, who, user_id)
    check_kind(kind)
    check_name(name)
    size = _size(rt.store, namespace, kind, name)
    wanted = parse_range(range_, size)
    start, end = wanted or (0, size)
    _audit(rt, who, user, "archive.admin_read", kind=kind, name=name, offset=start,
           length=end - start)
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start)}
    if wanted is not None:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    status = 206 if wanted is not None else 200
    if end - start <= READ_CHUNK:
        return Response(_read(rt.store, namespace, kind, name, start, end - start),
                        status_code=status, headers=headers,
                        media_type="application/octet-stream")
    return StreamingResponse(_chunks(rt.store, namespace, kind, name, start, end),
                             status_code=status, headers=headers,
                             media_type="application/octet-stream")


@router.post("/key", response_model=AdminKeyOut)
def admin_key(user_id: str, body: AdminKeyIn, who: AdminDep, rt: RuntimeDep) -> dict[str, Any]:
    """The user's escrowed master key re-sealed to the admin's public key (standard level)."""
    user, archive_id = _target(rt.db, who, user_id)
    recipient = escrow.unb64(body.public_key, 32, "public key")
    with rt.db.read() as session:
        row = session.get(ArchiveKey, archive_id)
        pair = session.get(OrgKeyPair, user.org_id)
        required = required_level(session, user.org_id)
    _refuse_unrecoverable(user, row, pair, required)
    assert row is not None and row.escrow is not None and pair is not None
    secret = escrow.server_secret(rt.locations.data_dir)
    private = escrow.org_private_key(secret, user.org_id, pair.private_key_sealed)
    master = escrow.open_sealed(private, json.loads(row.escrow), escrow.ORG_ESCROW)
    sealed = escrow.seal(recipient, master, ADMIN_RESTORE)
    _audit(rt, who, user, "archive.admin_key_release", archive_key_id=row.archive_key_id)
    return {"user_id": user.id, "username": user.username,
            "archive_key_id": row.archive_key_id, "sealed": sealed}


def _refuse_unrecoverable(user: User, row: ArchiveKey | None, pair: OrgKeyPair | None,
                          required: str) -> None:
    """Only an escrowed (standard) key that the org's policy still allows is released."""
    if row is None:
        raise KeyNotRecoverable(f"User {user.username!r} has no archive key yet (nothing was "
                                "backed up).", level=None)
    if row.level != "standard" or row.escrow is None or pair is None:
        raise KeyNotRecoverable(
            f"User {user.username!r}'s archive uses the {row.level} key level: the server "
            "holds no escrowed key, so an administrator cannot restore it; only the user "
            "can.", level=row.level)
    if required != "standard":
        raise KeyPolicyRequired(f"The organization requires the {required} key level, so "
                                "the escrowed key of this archive is no longer released.",
                                required_level=required)
