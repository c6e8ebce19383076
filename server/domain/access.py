"""Who may see what: principals, organization scopes and role ranks.

A resource outside the caller's scope is answered exactly like a missing one
(``NotFound`` with the same sentence), so nobody learns what other tenants
have. Scopes:

- operator (the admin CLI, run by whoever controls the server): everything;
- ``msp_admin``: their organization and every organization below it;
- ``org_admin``: their own organization;
- ``user``: only themselves and their own devices.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.errors import Forbidden, NotFound
from server.metadata.models import Device, Org, User

ROLE_RANK = {"user": 0, "org_admin": 1, "msp_admin": 2, "operator": 3}
NO_ORG = "No such organization."
NO_USER = "No such user."
NO_DEVICE = "No such device."


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of an admin operation."""

    role: str  # "operator" or a user role
    name: str
    user_id: str | None = None
    org_id: str | None = None

    @classmethod
    def operator(cls, name: str) -> Principal:
        return cls(role="operator", name=name)

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"{self.role}:{self.name}"

    @property
    def is_admin(self) -> bool:
        return self.role in ("operator", "msp_admin", "org_admin")


def org_parents(session: Session) -> dict[str, str | None]:
    return dict(session.execute(select(Org.id, Org.parent_id)).all())


def descendants(parents: dict[str, str | None], root: str) -> set[str]:
    """root and every organization below it."""
    children: dict[str | None, list[str]] = {}
    for org_id, parent in parents.items():
        children.setdefault(parent, []).append(org_id)
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def account_root(parents: dict[str, str | None], org_id: str) -> str:
    """The top-level (MSP) organization above org_id."""
    return _chain(parents, org_id)[-1]


def depth(parents: dict[str, str | None], org_id: str) -> int:
    """0 for a top-level organization, 1 for a customer org, and so on."""
    return len(_chain(parents, org_id)) - 1


def _chain(parents: dict[str, str | None], org_id: str) -> list[str]:
    chain = [org_id]
    while (parent := parents.get(chain[-1])) is not None and parent not in chain:
        chain.append(parent)
    return chain


def ancestors(parents: dict[str, str | None], org_id: str) -> list[str]:
    """org_id and every organization above it, nearest first."""
    return _chain(parents, org_id)


def org_scope(session: Session, who: Principal) -> set[str] | None:
    """Organizations the caller administers; None means all of them."""
    if who.role == "operator":
        return None
    if who.role == "msp_admin" and who.org_id:
        return descendants(org_parents(session), who.org_id)
    if who.role == "org_admin" and who.org_id:
        return {who.org_id}
    return set()


def require_admin(who: Principal) -> None:
    if not who.is_admin:
        raise Forbidden("Only administrators may do this.")


def visible_org(session: Session, who: Principal, org_id: str, *, lock: bool = False) -> Org:
    """The organization if the caller administers it, else NotFound."""
    scope = org_scope(session, who)
    if scope is not None and org_id not in scope:
        raise NotFound(NO_ORG)
    query = select(Org).where(Org.id == org_id)
    org = session.scalar(query.with_for_update() if lock else query)
    if org is None:
        raise NotFound(NO_ORG)
    return org


def visible_user(session: Session, who: Principal, user_id: str, *,
                 self_ok: bool = True, lock: bool = False) -> User:
    """The user if the caller administers their org (or is them and self_ok)."""
    query = select(User).where(User.id == user_id)
    user = session.scalar(query.with_for_update() if lock else query)
    if user is None:
        raise NotFound(NO_USER)
    if self_ok and who.user_id == user.id:
        return user
    scope = org_scope(session, who)
    if scope is not None and user.org_id not in scope:
        raise NotFound(NO_USER)
    return user


def visible_device(session: Session, who: Principal, device_id: str) -> Device:
    """The device if it belongs to the caller or to a user the caller administers."""
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound(NO_DEVICE)
    try:
        visible_user(session, who, device.user_id)
    except NotFound:
        raise NotFound(NO_DEVICE) from None
    return device


def require_rank_over(who: Principal, role: str, doing: str) -> None:
    """Refuse acting on a user whose role ranks above the caller's."""
    if ROLE_RANK[who.role] < ROLE_RANK[role]:
        raise Forbidden(f"A {who.role.replace('_', ' ')} cannot {doing} a "
                        f"{role.replace('_', ' ')}.")
