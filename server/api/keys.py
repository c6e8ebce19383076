"""Archive key routes (devices), device self-unregistration, and org key-level policy (admins).

Device routes reach only the caller's own archive. The server never receives
an unwrapped key: at the standard level it receives the key sealed to the
organization's public key and hands it out sealed to a device's public key.
See docs/agent-server.md and server.domain.archive_keys.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from server.api.deps import AdminDep, DeviceDep, RuntimeDep, check_id
from server.api.schemas import Strict
from server.domain import archive_keys
from server.domain.access import NO_ORG, visible_org

router = APIRouter(prefix="/api/v1", tags=["archive keys"])
LEVEL_PATTERN = r"^(standard|password|custom)$"


class KeyStatusOut(BaseModel):
    level: str | None = Field(description="standard, password, custom; null before the "
                                          "first device made the key.")
    archive_key_id: str | None = Field(description="Public fingerprint of the master key.")
    required_level: str = Field(description="The weakest level the organization allows.")
    org_public_key: str = Field(description="Organization escrow X25519 public key (base64).")


class DeviceKeyIn(Strict):
    public_key: str = Field(min_length=40, max_length=64,
                            description="This device's X25519 public key (base64, 32 bytes).")


class KeyInit(Strict):
    level: str = Field(pattern=LEVEL_PATTERN)
    archive_key_id: str = Field(min_length=32, max_length=32)
    escrow: dict[str, Any] | None = Field(
        default=None, description="Standard level only: the master key sealed to "
                                  "org_public_key (purpose org-escrow).")


class LevelIn(Strict):
    level: str = Field(pattern=LEVEL_PATTERN)


class SealedOut(BaseModel):
    sealed: dict[str, Any] = Field(description="The master key sealed to this device's public "
                                               "key (purpose device).")


class PolicyIn(Strict):
    required_level: str = Field(pattern=LEVEL_PATTERN)


class PolicyOut(BaseModel):
    org_id: str
    required_level: str
    effective_level: str = Field(description="Strongest policy of this org and those above.")


@router.get("/keys", response_model=KeyStatusOut)
async def key_status(auth: DeviceDep, rt: RuntimeDep) -> dict[str, Any]:
    """The archive's key level, fingerprint, the org's policy and escrow public key."""
    done = await run_in_threadpool(archive_keys.status, rt.db, rt.locations.data_dir, auth)
    return done.as_dict()


@router.put("/keys/device", status_code=204)
def put_device_key(body: DeviceKeyIn, auth: DeviceDep, rt: RuntimeDep) -> Response:
    """Record this device's X25519 public key (sent right after registration)."""
    archive_keys.set_device_key(rt.db, auth, body.public_key)
    return Response(status_code=204)


@router.post("/keys/init", status_code=201, response_model=KeyStatusOut)
async def init_key(body: KeyInit, auth: DeviceDep, rt: RuntimeDep) -> dict[str, Any]:
    """Record the archive's first key. 409 if another device already did."""
    done = await run_in_threadpool(archive_keys.initialize, rt.db, rt.locations.data_dir, auth,
                                   body.level, body.archive_key_id, body.escrow)
    return done.as_dict()


@router.post("/keys/level", response_model=KeyStatusOut)
async def set_level(body: LevelIn, auth: DeviceDep, rt: RuntimeDep) -> dict[str, Any]:
    """Move the archive to a stronger key level (one-way); above standard the escrow goes."""
    done = await run_in_threadpool(archive_keys.raise_level, rt.db, rt.locations.data_dir,
                                   auth, body.level)
    return done.as_dict()


@router.get("/keys/escrow", response_model=SealedOut)
async def get_escrow(auth: DeviceDep, rt: RuntimeDep) -> dict[str, Any]:
    """The escrowed key, re-sealed to the calling device's public key (standard level)."""
    sealed = await run_in_threadpool(archive_keys.release_to_device, rt.db,
                                     rt.locations.data_dir, auth)
    return {"sealed": sealed}


@router.post("/device/unregister", status_code=204)
def unregister(auth: DeviceDep, rt: RuntimeDep) -> Response:
    """Deactivate the calling device: its token stops working and its slot is freed."""
    archive_keys.unregister_device(rt.db, auth)
    return Response(status_code=204)


@router.get("/orgs/{org_id}/key-policy", response_model=PolicyOut)
def get_policy(org_id: str, who: AdminDep, rt: RuntimeDep) -> dict[str, Any]:
    with rt.db.read() as session:
        org = visible_org(session, who, check_id(org_id, NO_ORG))
        return archive_keys.policy_dict(session, org)


@router.put("/orgs/{org_id}/key-policy", response_model=PolicyOut)
def put_policy(org_id: str, body: PolicyIn, who: AdminDep, rt: RuntimeDep) -> dict[str, Any]:
    """Set the weakest archive key level the organization allows (e.g. password for PHI)."""
    with rt.db.write() as session:
        org = visible_org(session, who, check_id(org_id, NO_ORG), lock=True)
        archive_keys.set_policy(session, who, org, body.required_level)
        session.flush()
        return archive_keys.policy_dict(session, org)
