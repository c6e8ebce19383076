"""Archive object routes for devices: the calling device's user's archive only.

There is no archive id in these URLs: a device token reaches exactly one
archive, so no other tenant's objects can even be named. ``kind`` must be one
of keys, data, index, snapshots, locks and ``name`` 64 lowercase hex
characters (the SHA-256 of the bytes); anything else, including ``..``,
encoded slashes and NUL, is refused with 400 before storage is touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from server.api.deps import DeviceDep, RuntimeDep
from server.api.ranges import parse_range
from server.api.schemas import ObjectList, ObjectStored, TrashRequest, TrashResult
from server.api.upload import content_length, receive
from server.domain import archive, settings
from server.domain.archive import storage_call
from server.errors import BadRequest, Forbidden, NotFound
from server.runtime import Runtime
from server.storage.base import KINDS, NAME_RE, BlobStore, ObjectCorrupt, ObjectNotFound

router = APIRouter(prefix="/api/v1/archive", tags=["archive"])
READ_CHUNK = 1 << 20
NO_OBJECT = "No such object in this archive."


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise BadRequest(f"Unknown object kind {kind[:40]!r}; kinds are "
                         f"{', '.join(sorted(KINDS))}.")
    return kind


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise BadRequest("An object name is exactly 64 lowercase hex characters (the SHA-256 "
                         "of its bytes).")
    return name


def _size_or_none(store: BlobStore, namespace: str, kind: str, name: str) -> int | None:
    try:
        return storage_call(store.size, namespace, kind, name)
    except ObjectNotFound:
        return None


def _size(store: BlobStore, namespace: str, kind: str, name: str) -> int:
    size = _size_or_none(store, namespace, kind, name)
    if size is None:
        raise NotFound(NO_OBJECT)
    return size


@router.get("/objects/{kind}", response_model=ObjectList)
def list_objects(kind: str, auth: DeviceDep, rt: RuntimeDep) -> ObjectList:
    """Every live object of a kind in the caller's archive."""
    check_kind(kind)
    infos = storage_call(lambda: list(rt.store.list(auth.archive.id, kind)))
    return ObjectList(kind=kind, objects=[{"kind": i.kind, "name": i.name, "size": i.size}
                                          for i in infos])


@router.put("/objects/{kind}/{name:path}", status_code=201, response_model=ObjectStored,
            responses={200: {"model": ObjectStored, "description": "Already stored."}})
async def put_object(kind: str, name: str, request: Request, auth: DeviceDep,
                     rt: RuntimeDep) -> JSONResponse:
    """Upload an object (raw bytes, Content-Length required). Never overwrites.

    The quota is checked from Content-Length before the body is read (507).
    The body must hash to the name (else 400, nothing stored).
    """
    check_kind(kind)
    check_name(name)
    length = content_length(request, request.app.state.options.max_object_bytes)
    namespace = auth.archive.id
    existing = await run_in_threadpool(_size_or_none, rt.store, namespace, kind, name)
    if existing is None:
        await run_in_threadpool(_check_quota, rt, auth.user.org_id, length)
    spool = await receive(request, length, rt.locations.tmp_dir)
    try:
        size = await run_in_threadpool(_put, rt.store, namespace, kind, name, spool)
    finally:
        spool.close()
    await run_in_threadpool(archive.record_stored, rt.db, rt.store, auth, kind, size,
                            existing is None)
    body = ObjectStored(kind=kind, name=name, size=size, created=existing is None)
    return JSONResponse(body.model_dump(), status_code=201 if existing is None else 200)


def _check_quota(rt: Runtime, org_id: str, length: int) -> None:
    with rt.db.read() as session:
        archive.check_quota(session, org_id, length)


def _put(store: BlobStore, namespace: str, kind: str, name: str, body: object) -> int:
    """Store (the store verifies SHA-256(body) == name); a mismatch is the client's error."""
    try:
        return storage_call(store.put, namespace, kind, name, body)
    except ObjectCorrupt as exc:
        raise BadRequest(f"The uploaded {kind} object does not match its name; nothing was "
                         "stored.") from exc


@router.head("/objects/{kind}/{name:path}")
def head_object(kind: str, name: str, auth: DeviceDep, rt: RuntimeDep) -> Response:
    """Whether the object exists, and its size (Content-Length)."""
    check_kind(kind)
    check_name(name)
    size = _size(rt.store, auth.archive.id, kind, name)
    return Response(status_code=200, headers={"Content-Length": str(size),
                                              "Accept-Ranges": "bytes"})


@router.get("/objects/{kind}/{name:path}", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}},
                       206: {"description": "The requested byte range."}})
def get_object(kind: str, name: str, auth: DeviceDep, rt: RuntimeDep,
               range_: Annotated[str | None, Header(alias="Range")] = None) -> Response:
    """Download an object, or one byte range of it (``Range: bytes=A-B``)."""
    check_kind(kind)
    check_name(name)
    namespace = auth.archive.id
    size = _size(rt.store, namespace, kind, name)
    wanted = parse_range(range_, size)
    start, end = wanted or (0, size)
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start)}
    if wanted is not None:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    status = 206 if wanted is not None else 200
    if end - start <= READ_CHUNK:
        data = _read(rt.store, namespace, kind, name, start, end - start)
        return Response(data, status_code=status, headers=headers,
                        media_type="application/octet-stream")
    return StreamingResponse(_chunks(rt.store, namespace, kind, name, start, end),
                             status_code=status, headers=headers,
                             media_type="application/octet-stream")


def _read(store: BlobStore, namespace: str, kind: str, name: str, offset: int,
          length: int) -> bytes:
    try:
        return storage_call(store.get, namespace, kind, name, offset, length)
    except ObjectNotFound:
        raise NotFound(NO_OBJECT) from None


def _chunks(store: BlobStore, namespace: str, kind: str, name: str, start: int,
            end: int) -> Iterator[bytes]:
    for offset in range(start, end, READ_CHUNK):
        yield _read(store, namespace, kind, name, offset, min(READ_CHUNK, end - offset))


@router.delete("/objects/{kind}/{name:path}", status_code=204)
def delete_object(kind: str, name: str, auth: DeviceDep, rt: RuntimeDep) -> None:
    """Delete a lock object. Other kinds go through POST /api/v1/archive/trash."""
    check_kind(kind)
    check_name(name)
    if kind != "locks":
        raise Forbidden("Devices can only delete lock objects; move other objects to the "
                        "trash with POST /api/v1/archive/trash.")
    if not archive.delete_lock(rt.db, rt.store, auth, name):
        raise NotFound(NO_OBJECT)


@router.post("/trash", response_model=TrashResult)
def trash(body: TrashRequest, auth: DeviceDep, rt: RuntimeDep) -> TrashResult:
    """Move objects to the trash (prune); restorable by an admin for the grace period."""
    refs = [(ref.kind, ref.name) for ref in body.objects]
    count, missing = archive.trash_objects(rt.db, rt.store, auth, refs)
    with rt.db.read() as session:
        grace = settings.load(session).trash_grace_days
    return TrashResult(trashed=count, missing=[{"kind": k, "name": n} for k, n in missing],
                       grace_days=grace)
