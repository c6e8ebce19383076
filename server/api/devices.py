"""Admin routes for one device: view and deactivate (frees the user's device slot)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from server.api.deps import AdminDep, RuntimeDep, check_id
from server.api.schemas import DeviceOut
from server.domain import devices
from server.domain.access import NO_DEVICE, visible_device
from server.metadata.models import User

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])


@router.get("/{device_id}", response_model=DeviceOut)
def get_device(device_id: str, who: AdminDep, rt: RuntimeDep) -> dict[str, Any]:
    with rt.db.read() as session:
        device = visible_device(session, who, check_id(device_id, NO_DEVICE))
        return devices.device_dict(device, session.get(User, device.user_id))


@router.post("/{device_id}/deactivate", response_model=DeviceOut)
def deactivate_device(device_id: str, who: AdminDep, rt: RuntimeDep) -> dict[str, Any]:
    """Deactivate the device: its token stops working and its slot is freed.

    The user's archive is kept (other devices share it). Admins, or the
    device's own user, may do this.
    """
    with rt.db.write() as session:
        device = visible_device(session, who, check_id(device_id, NO_DEVICE))
        user = session.get_one(User, device.user_id)
        devices.deactivate(session, who.actor, device, user.org_id)
        return devices.device_dict(device, user)
