"""Request dependencies: the runtime, admin principals and device credentials.

Two bearer token kinds exist: admin session tokens (``cst_…``, from
``POST /api/v1/auth/login``) and device tokens (``cdt_…``, from
``POST /api/v1/register``). Each route accepts exactly one kind.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from server.domain import devices, sessions, settings
from server.domain.access import Principal
from server.domain.devices import DeviceAuth
from server.errors import BadRequest, NotFound, Unauthenticated
from server.metadata.models import utcnow
from server.runtime import Runtime

AGENT_VERSION_HEADER = "Cairn-Agent-Version"
_ID_RE = re.compile(r"\A[0-9a-f]{32}\Z")
_admin_bearer = HTTPBearer(scheme_name="adminSession", auto_error=False,
                           description="Session token from POST /api/v1/auth/login.")
_device_bearer = HTTPBearer(scheme_name="deviceToken", auto_error=False,
                            description="Device token from POST /api/v1/register.")
NO_TOKEN = "Send an Authorization: Bearer header with a valid token."


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(runtime)]


def check_id(value: str, missing: str) -> str:
    """Ids are 32 hex characters; anything else is simply not found."""
    if not _ID_RE.match(value):
        raise NotFound(missing)
    return value


def client_address(request: Request) -> str:
    """The peer's network address (a reverse proxy's, when the server sits behind one)."""
    return request.client.host if request.client else ""


def agent_version(request: Request) -> str:
    value = request.headers.get(AGENT_VERSION_HEADER)
    if not value:
        raise BadRequest(f"Send the agent's version in the {AGENT_VERSION_HEADER} header.")
    return value.strip()[:40]


def admin_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_bearer)],
) -> Principal:
    if credentials is None:
        raise Unauthenticated(NO_TOKEN)
    with runtime(request).db.read() as session:
        return sessions.principal_for(session, credentials.credentials)


def session_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_bearer)],
) -> str:
    if credentials is None:
        raise Unauthenticated(NO_TOKEN)
    return credentials.credentials


def device_auth(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_device_bearer)],
) -> DeviceAuth:
    """The calling device; also refuses agents below the minimum version."""
    if credentials is None:
        raise Unauthenticated(NO_TOKEN)
    version = agent_version(request)
    db = runtime(request).db
    with db.read() as session:
        auth = devices.authenticate(session, credentials.credentials)
        minimum = settings.load(session).min_agent_version
    devices.refuse_old_agent(version, minimum)
    now = utcnow()
    if devices.needs_touch(auth.device, version, now):
        with db.write() as session:
            devices.touch(session, auth.device.id, version, now)
    return auth


AdminDep = Annotated[Principal, Depends(admin_principal)]
DeviceDep = Annotated[DeviceAuth, Depends(device_auth)]
