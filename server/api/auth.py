"""Admin API sessions: log in, log out, who am I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from server.api.deps import AdminDep, RuntimeDep, client_address, session_token
from server.api.schemas import LoginRequest, LoginResponse, Me
from server.domain import sessions

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/login", response_model=LoginResponse)
async def login(body: LoginRequest, request: Request, rt: RuntimeDep) -> LoginResponse:
    """Exchange username and password for a bearer session token (12 hours).

    Repeated wrong passwords lock the username out for a while (429, ``Retry-After``).
    """
    token, expires, user = await run_in_threadpool(sessions.login, rt.db, body.username,
                                                   body.password, client_address(request))
    return LoginResponse(token=token, expires_at=expires, user_id=user.id,
                         username=user.username, role=user.role, org_id=user.org_id)


@router.post("/logout", status_code=204)
def logout(_who: AdminDep, token: Annotated[str, Depends(session_token)],
           rt: RuntimeDep) -> None:
    """End the session whose token is sent."""
    with rt.db.write() as session:
        sessions.logout(session, token)


@router.get("/me", response_model=Me)
def me(who: AdminDep) -> Me:
    """The caller's role, username and organization."""
    return Me(role=who.role, username=who.name, user_id=who.user_id, org_id=who.org_id)
