"""Lockout after repeated wrong passwords, for log-in and device registration alike.

Every wrong password is stored (``auth_failures``: time, username, client
address). Before a password is checked, the recent failures for that username
are counted over ``WINDOW``:

- ``PER_ADDRESS`` from the same address lock that username out for that
  address: one machine guessing one account;
- ``PER_USERNAME`` from all addresses lock the username out everywhere: a
  guess spread over many machines. It is higher, so that somebody who merely
  knows a username cannot easily lock its owner out from elsewhere.

A locked-out attempt is refused with 429 and ``Retry-After`` before the
password is looked at, so a guess made while locked out learns nothing; the
refusal itself is not counted, so the lock ends ``WINDOW`` after the last
wrong password. A correct password does not clear earlier failures. Counting
in the database makes the lock hold across server processes and restarts.
"""

from __future__ import annotations

import math
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.errors import TooManyAttempts
from server.metadata.db import Database
from server.metadata.models import AuthFailure, utcnow

WINDOW = timedelta(minutes=15)
PER_ADDRESS = 10
PER_USERNAME = 50
LOCKED = "Too many wrong passwords for this user; try again in {minutes} minute{s}."


def check(db: Database, username: str, address: str) -> None:
    """Raise ``TooManyAttempts`` while ``username`` is locked out for ``address``."""
    now = utcnow()
    since = now - WINDOW
    with db.read() as session:
        recent = select(AuthFailure.at, AuthFailure.address).where(
            AuthFailure.username == username, AuthFailure.at > since)
        rows = session.execute(recent.order_by(AuthFailure.at.desc())
                               .limit(PER_USERNAME)).all()
    from_here = [at for at, addr in rows if addr == address]
    if len(rows) >= PER_USERNAME:
        until = rows[-1].at + WINDOW
    elif len(from_here) >= PER_ADDRESS:
        until = from_here[PER_ADDRESS - 1] + WINDOW
    else:
        return
    wait_s = max(1, math.ceil((until - now).total_seconds()))
    minutes = math.ceil(wait_s / 60)
    raise TooManyAttempts(LOCKED.format(minutes=minutes, s="" if minutes == 1 else "s"),
                          retry_after_s=wait_s)


def record_failure(session: Session, username: str, address: str) -> None:
    """Remember one wrong password for ``username`` from ``address`` (in the caller's
    transaction, beside its audit entry); forget the ones that no longer count."""
    now = utcnow()
    session.execute(delete(AuthFailure).where(AuthFailure.at <= now - WINDOW))
    session.add(AuthFailure(at=now, username=username[:254], address=address[:64]))


def clear(session: Session, username: str) -> int:
    """Forget every wrong password for ``username`` (an operator's unlock); how many."""
    result = session.execute(delete(AuthFailure).where(AuthFailure.username == username))
    return result.rowcount or 0
