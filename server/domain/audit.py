"""The audit log: every admin action and every registration, refused ones included.

Entries never contain secrets (passwords, tokens, registration keys).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.metadata.models import AuditEvent, utcnow


def record(session: Session, actor: str, action: str, *, org_id: str | None = None,
           target: str | None = None, outcome: str = "ok", **detail: Any) -> None:
    """Add one entry in the caller's transaction."""
    session.add(AuditEvent(at=utcnow(), actor=actor[:300], org_id=org_id, action=action,
                           target=None if target is None else target[:300],
                           outcome=outcome, detail=json.dumps(detail, sort_keys=True,
                                                              default=str)))


def events(session: Session, org_ids: set[str] | None, limit: int = 500) -> list[AuditEvent]:
    """Newest first; ``org_ids=None`` means every organization (and server-wide events)."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if org_ids is not None:
        query = query.where(AuditEvent.org_id.in_(org_ids))
    return list(session.scalars(query))


def as_dict(event: AuditEvent) -> dict[str, Any]:
    return {"id": event.id, "at": event.at.isoformat(), "actor": event.actor,
            "org_id": event.org_id, "action": event.action, "target": event.target,
            "outcome": event.outcome, "detail": json.loads(event.detail)}
