"""Request and response bodies of the HTTP API (pydantic), as published in OpenAPI."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

GUID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:{}-]{0,63}$"
KIND_PATTERN = r"^(keys|data|index|snapshots|locks)$"
NAME_PATTERN = r"^[0-9a-f]{64}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceDescription(Strict):
    guid: str = Field(pattern=GUID_PATTERN, description="The agent's stable device GUID.")
    name: str = Field(min_length=1, max_length=200, description="Computer name.")
    os: str = Field(min_length=1, max_length=200, description="Operating system and version.")


class RegisterRequest(Strict):
    registration_key: str = Field(min_length=1, max_length=200)
    username: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    device: DeviceDescription
    replace_device: str | None = Field(
        default=None, max_length=64,
        description="Id or GUID of one of the user's active devices this computer replaces.")


class RegisterResponse(BaseModel):
    device_id: str
    device_token: str = Field(description="Bearer token for this device; shown only now.")
    user_id: str
    username: str
    org_id: str
    org_name: str
    user_created: bool
    replaced_device_id: str | None


class LoginRequest(Strict):
    username: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class LoginResponse(BaseModel):
    token: str
    expires_at: datetime
    user_id: str
    username: str
    role: str
    org_id: str


class Me(BaseModel):
    role: str
    username: str
    user_id: str | None
    org_id: str | None


class OrgOut(BaseModel):
    id: str
    name: str
    parent_id: str | None
    license_cap: int | None
    storage_quota_bytes: int | None
    registration_key_active: bool
    registration_key_hint: str | None
    registration_key_created_at: datetime | None
    created_at: datetime
    users_active: int = 0
    licenses_held: int = 0
    devices_active: int = 0
    bytes_stored: int = 0


class OrgCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    parent_id: str = Field(min_length=1, max_length=64)
    license_cap: int | None = Field(default=None, ge=0)
    storage_quota_bytes: int | None = Field(default=None, ge=0)


class OrgUpdate(Strict):
    license_cap: int | None = Field(default=None, ge=0)
    storage_quota_bytes: int | None = Field(default=None, ge=0)


class RegistrationKeyOut(BaseModel):
    org_id: str
    registration_key: str = Field(description="Shown only now; only its hash is stored.")


class OrgCreated(OrgOut):
    registration_key: str


class UserOut(BaseModel):
    id: str
    org_id: str
    username: str
    role: str
    active: bool
    licensed: bool
    created_at: datetime
    deactivated_at: datetime | None
    devices_active: int
    bytes_stored: int


class UserDeactivated(UserOut):
    data_deleted: bool = Field(description="False if storage failed; deletion is retried.")


class UserCreate(Strict):
    username: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    role: str = Field(default="user", pattern=r"^(user|org_admin|msp_admin)$")


class UserDeactivate(Strict):
    confirm_username: str = Field(
        min_length=1, max_length=254,
        description="The user's username again: deactivation deletes all their data.")


class RestoreTrash(Strict):
    since: AwareDatetime | None = Field(default=None,
                                   description="Only objects trashed at or after this time.")


class Count(BaseModel):
    count: int


class DeviceOut(BaseModel):
    id: str
    user_id: str
    guid: str
    name: str
    os: str
    agent_version: str
    active: bool
    first_seen: datetime
    last_seen: datetime
    last_backup_at: datetime | None
    bytes_stored: int
    deactivated_at: datetime | None
    username: str | None = None
    org_id: str | None = None


class BackupCompleted(Strict):
    completed_at: AwareDatetime | None = Field(
        default=None, description="When the backup finished (default: now).")


class ObjectOut(BaseModel):
    kind: str
    name: str
    size: int


class ObjectStored(ObjectOut):
    created: bool = Field(description="False when the object was already stored.")


class ObjectList(BaseModel):
    kind: str
    objects: list[ObjectOut]


class ObjectRef(Strict):
    kind: str = Field(pattern=KIND_PATTERN)
    name: str = Field(pattern=NAME_PATTERN)


class TrashRequest(Strict):
    objects: list[ObjectRef] = Field(min_length=1, max_length=10_000)


class TrashResult(BaseModel):
    trashed: int
    missing: list[ObjectRef]
    grace_days: float


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    org_id: str | None
    action: str
    target: str | None
    outcome: str
    detail: dict[str, object]


class Health(BaseModel):
    status: str
    version: str
    min_agent_version: str
