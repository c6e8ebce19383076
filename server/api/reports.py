"""Admin reports as JSON or CSV: licenses, billing, stale devices, storage per org."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from server.api.deps import AdminDep, RuntimeDep, check_id
from server.domain import reports
from server.domain.access import (
    NO_ORG,
    Principal,
    account_root,
    descendants,
    org_parents,
    org_scope,
    require_admin,
    visible_org,
)
from server.errors import BadRequest, Forbidden
from server.metadata.models import utcnow

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
FormatQ = Annotated[str, Query(pattern=r"^(json|csv)$", description="json (default) or csv")]
DateQ = Annotated[str | None, Query(description="YYYY-MM-DD (default: today, UTC)")]
OrgQ = Annotated[str | None, Query(description="Limit to this organization and those below")]


def parse_day(text: str | None) -> date:
    if text is None:
        return utcnow().date()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{text[:40]!r} is not a date like 2025-02-20.") from None


def instant(text: str | None) -> datetime:
    """Now, or the end of the given day."""
    return utcnow() if text is None else reports.end_of_day(parse_day(text))


def scope(session: Session, who: Principal, org_id: str | None) -> set[str] | None:
    """The organizations a report covers: the caller's, or one subtree of them."""
    require_admin(who)
    if org_id is None:
        return org_scope(session, who)
    org = visible_org(session, who, check_id(org_id, NO_ORG))
    return descendants(org_parents(session), org.id)


def render(report: reports.Report, fmt: str) -> Response:
    if fmt == "csv":
        return Response(report.as_csv(), media_type="text/csv; charset=utf-8")
    return JSONResponse(report.as_json())


@router.get("/licenses")
def licenses(who: AdminDep, rt: RuntimeDep, date: DateQ = None, org_id: OrgQ = None,
             format: FormatQ = "json") -> Response:
    """Licenses in use per organization and per account at the end of a day."""
    day = parse_day(date)
    with rt.db.read() as session:
        return render(reports.licenses(session, scope(session, who, org_id), day), format)


@router.get("/billing")
def billing(who: AdminDep, rt: RuntimeDep, date: DateQ = None,
            format: FormatQ = "json") -> Response:
    """Charges for the tally date: licenses in use × price (MSP admins: their account)."""
    day = parse_day(date)
    if who.role != "msp_admin" or who.org_id is None:
        raise Forbidden("Billing reports are for MSP administrators.")
    with rt.db.read() as session:
        root = account_root(org_parents(session), who.org_id)
        return render(reports.billing_report(session, [root], day), format)


@router.get("/stale")
def stale(who: AdminDep, rt: RuntimeDep,
          days: Annotated[int, Query(ge=0, le=36500)] = 7, date: DateQ = None,
          org_id: OrgQ = None, format: FormatQ = "json") -> Response:
    """Active devices with no completed backup for ``days`` days."""
    at = instant(date)
    with rt.db.read() as session:
        return render(reports.stale(session, scope(session, who, org_id), days, at), format)


@router.get("/storage")
def storage(who: AdminDep, rt: RuntimeDep, org_id: OrgQ = None,
            format: FormatQ = "json") -> Response:
    """Bytes stored per organization, next to its quota."""
    with rt.db.read() as session:
        return render(reports.storage(session, scope(session, who, org_id), utcnow()), format)
