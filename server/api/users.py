"""Admin routes for one user: view, deactivate (deletes all data), devices, trash restore."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from server.api.deps import AdminDep, RuntimeDep, check_id
from server.api.schemas import (
    Count,
    DeviceOut,
    RestoreTrash,
    UserDeactivate,
    UserDeactivated,
    UserOut,
)
from server.domain import archive, devices, users
from server.domain.access import NO_USER, visible_user
from server.metadata.models import User

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.get("/{user_id}", response_model=UserOut)
def get_user(user_id: str, who: AdminDep, rt: RuntimeDep) -> dict[str, Any]:
    with rt.db.read() as session:
        user = visible_user(session, who, check_id(user_id, NO_USER))
        return users.user_dicts(session, [user])[0]


@router.post("/{user_id}/deactivate", response_model=UserDeactivated)
async def deactivate_user(user_id: str, body: UserDeactivate, who: AdminDep,
                          rt: RuntimeDep) -> dict[str, Any]:
    """Deactivate the user permanently: tokens die, devices are refused, and all their
    stored data and wrapped keys are deleted now (no grace period). The license is freed.
    Irreversible; ``confirm_username`` must repeat the username.
    """
    check_id(user_id, NO_USER)

    def pick(session: Session) -> User:
        return visible_user(session, who, user_id, self_ok=False, lock=True)

    done_id, deleted = await run_in_threadpool(archive.deactivate_user, rt.db, rt.store, who,
                                               pick, body.confirm_username)
    with rt.db.read() as session:
        out = users.user_dicts(session, [session.get(User, done_id)])[0]
    return {**out, "data_deleted": deleted}


@router.get("/{user_id}/devices", response_model=list[DeviceOut])
def user_devices(user_id: str, who: AdminDep, rt: RuntimeDep,
                 include_inactive: bool = False) -> list[dict[str, Any]]:
    with rt.db.read() as session:
        user = visible_user(session, who, check_id(user_id, NO_USER))
        return [devices.device_dict(d, u) for d, u in devices.list_devices(
            session, None, user.id, include_inactive=include_inactive)]


@router.post("/{user_id}/archive/restore-trash", response_model=Count)
async def restore_trash(user_id: str, body: RestoreTrash, who: AdminDep,
                        rt: RuntimeDep) -> Count:
    """Bring back objects the user's devices moved to the trash (within the grace period)."""
    with rt.db.read() as session:
        user = visible_user(session, who, check_id(user_id, NO_USER), self_ok=False)
    count = await run_in_threadpool(archive.restore_trash, rt.db, rt.store, who, user,
                                    body.since)
    return Count(count=count)
