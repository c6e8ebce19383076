"""Admin API sessions: log in with username and password, get a bearer token."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.domain import audit, throttle, users
from server.domain.access import Principal
from server.errors import BadRequest, TooManyAttempts, Unauthenticated, WrongCredentials
from server.metadata.db import Database
from server.metadata.models import AdminSession, User, utcnow
from server.security import SESSION_TOKEN_PREFIX, new_session_token, token_hash, verify_password

SESSION_TTL = timedelta(hours=12)
WRONG = "The username or password is wrong."
EXPIRED = "Your session is not valid or has expired; log in again."


def login(db: Database, username: str, password: str,
          address: str = "") -> tuple[str, datetime, User]:
    """Check the password and open a session; WrongCredentials otherwise, or
    TooManyAttempts while the username is locked out for ``address`` (both audited)."""
    try:
        name = users.check_username(username)
    except BadRequest:  # cannot be anybody's username: nothing to look up or to time
        raise WrongCredentials(WRONG) from None
    with db.read() as session:
        user = users.find_active(session, name)
    try:
        throttle.check(db, name, address)
    except TooManyAttempts:  # refused before the password is looked at
        with db.write() as session:
            audit.record(session, f"user:{name}", "session.login",
                         org_id=user.org_id if user else None, outcome="refused",
                         reason=TooManyAttempts.slug)
        raise
    if user is None or not verify_password(user.password_hash, password):
        if user is None:
            verify_password(None, password)  # same cost as a wrong password
        with db.write() as session:
            throttle.record_failure(session, name, address)
            audit.record(session, f"user:{name}", "session.login",
                         org_id=user.org_id if user else None, outcome="refused")
        raise WrongCredentials(WRONG)
    token = new_session_token()
    now = utcnow()
    with db.write() as session:
        session.execute(delete(AdminSession).where(AdminSession.expires_at < now))
        session.add(AdminSession(token_hash=token_hash(token), user_id=user.id, created_at=now,
                                 expires_at=now + SESSION_TTL))
        audit.record(session, f"{user.role}:{user.username}", "session.login",
                     org_id=user.org_id, target=f"user:{user.id}")
    return token, now + SESSION_TTL, user


def principal_for(session: Session, token: str) -> Principal:
    """The caller behind a session token; Unauthenticated when unknown or expired."""
    if not token.startswith(SESSION_TOKEN_PREFIX):
        raise Unauthenticated(EXPIRED)
    row = session.execute(select(AdminSession, User).join(User)
                          .where(AdminSession.token_hash == token_hash(token))).first()
    if row is None:
        raise Unauthenticated(EXPIRED)
    sess, user = row
    if sess.expires_at <= utcnow() or not user.active:
        raise Unauthenticated(EXPIRED)
    return Principal(role=user.role, name=user.username, user_id=user.id, org_id=user.org_id)


def logout(session: Session, token: str) -> None:
    session.execute(delete(AdminSession).where(AdminSession.token_hash == token_hash(token)))
