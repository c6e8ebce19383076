"""Device-facing routes: registration, the device's own record, backup completion."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from server.api.deps import DeviceDep, RuntimeDep, agent_version, client_address
from server.api.schemas import BackupCompleted, DeviceOut, RegisterRequest, RegisterResponse
from server.domain import devices, registration
from server.metadata.models import utcnow

router = APIRouter(prefix="/api/v1", tags=["device"])


@router.post("/register", status_code=201, response_model=RegisterResponse)
async def register(body: RegisterRequest, request: Request, rt: RuntimeDep) -> RegisterResponse:
    """Register this computer with an organization's registration key.

    Creates the user (consuming a license) when the username is new in the
    key's organization, or authenticates the existing user. Send the agent's
    version in the ``Cairn-Agent-Version`` header.
    """
    req = registration.Registration(
        registration_key=body.registration_key, username=body.username,
        password=body.password, guid=body.device.guid, device_name=body.device.name,
        os=body.device.os, agent_version=agent_version(request),
        replace_device=body.replace_device, address=client_address(request))
    done = await run_in_threadpool(registration.register, rt.db, req)
    return RegisterResponse(**done.__dict__)


@router.get("/device", response_model=DeviceOut)
def device_info(auth: DeviceDep) -> dict[str, object]:
    """The calling device's own record."""
    return devices.device_dict(auth.device, auth.user)


@router.post("/device/backup-completed", response_model=DeviceOut)
def backup_completed(body: BackupCompleted, auth: DeviceDep,
                     rt: RuntimeDep) -> dict[str, object]:
    """Report a completed backup: updates last completed backup and last seen."""
    with rt.db.write() as session:
        device = devices.record_backup(session, auth.device.id, body.completed_at or utcnow())
        return devices.device_dict(device, auth.user)
