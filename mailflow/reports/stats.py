"""The anonymised statistics every report counts from: one `CaseStat` per case and one
`RequestStat` per request, rewritten from the case whenever it changes (`record`).

They hold no constituent and no text, and no foreign key to the case, so deleting or
anonymising old cases under a retention policy leaves past reports exactly as they were.
"""

from __future__ import annotations

from datetime import date
from functools import cache
from typing import Any

from sqlalchemy import Row, bindparam, func
from sqlmodel import Session, col, select

from mailflow import db, models
from mailflow.casework import directory
from mailflow.casework.calendar import Calendar
from mailflow.casework.chasing import ESCALATED


def _month(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def record(session: Session, calendar: Calendar, case: models.Case) -> None:
    """Bring the statistics of one case and its requests in step with the case itself."""
    record_all(session, calendar, [case])


def record_all(session: Session, calendar: Calendar, cases: list[models.Case]) -> None:
    """Bring the statistics of `cases` in step with them, whatever their number: one query
    for their requests (with each one's escalations), then one upsert of their case
    statistics and one of their request statistics. An upsert, not a read and an ORM write:
    it neither reads the rows it rewrites nor builds objects to flush them."""
    session.flush()
    if not cases:
        return
    ids = [c.id for c in cases]
    requests: dict[int, list[Row[Any]]] = {i: [] for i in ids}  # type: ignore[misc]
    for r in session.execute(_requests(), {"ids": ids}):
        requests[r.case_id].append(r)
    services = directory.service_names(session)
    case_rows, request_rows = [], []
    for case in cases:
        common = _common(session, case)
        case_rows.append(_case_row(calendar, case, requests[case.id], common, services))  # type: ignore[index]
        request_rows += _request_rows(calendar, case, requests[case.id], common, services)  # type: ignore[index]
    db.upsert(session, models.CaseStat, case_rows, ["case_id"])
    db.upsert(session, models.RequestStat, request_rows, ["request_id"])


@cache
def _requests() -> Any:
    """The requests of cases `ids`, with each one's escalations. Built once: building the
    statement cost more than running it."""
    R, E = models.Request, models.Event
    escalations = (select(func.count()).select_from(E)
                   .where(col(E.request_id) == col(R.id), E.kind == ESCALATED)
                   .correlate(R).scalar_subquery())
    return (select(R.id, R.case_id, R.service_id, R.state, R.due, R.due_from, R.sent_at,
                   R.answered_at, escalations.label("escalations"))
            .where(col(R.case_id).in_(bindparam("ids", expanding=True))).order_by(col(R.id)))


def _common(session: Session, case: models.Case) -> dict[str, Any]:
    """What a case's statistics and its requests' share."""
    member = directory.get(session, models.Member, case.member_id)
    return {
        "case_id": case.id,
        "ward": directory.ward_name(session, case.ward_id),
        "member_id": case.member_id,
        "member": member.name if member else None,
        "category": case.category,
        "enquiry_type": case.enquiry_type,
    }


def _case_row(calendar: Calendar, case: models.Case, requests: list[Row[Any]],
              common: dict[str, Any], services: dict[int, str]) -> dict[str, Any]:
    opened = calendar.local(case.opened_at).date()
    closed = calendar.local(case.closed_at).date() if case.closed_at else None
    return {**common,
            "service": services.get(requests[0].service_id) if requests else None,
            "opened_on": opened, "opened_month": _month(opened),
            "closed_on": closed, "closed_month": _month(closed) if closed else None}


def _request_rows(calendar: Calendar, case: models.Case, requests: list[Row[Any]],
                  common: dict[str, Any], services: dict[int, str]) -> list[dict[str, Any]]:
    if not requests:
        return []
    received = calendar.received_day(case.received_at)
    rows = []
    for r in requests:
        sent = calendar.local(r.sent_at).date()
        row = {**common, "request_id": r.id, "service": services.get(r.service_id),
               "state": r.state, "due": r.due, "sent_on": sent, "sent_month": _month(sent),
               "escalations": r.escalations,
               "answered_on": None, "working_days": None, "on_time": None}
        if r.answered_at is not None:
            answered = calendar.local(r.answered_at).date()
            # From where this request's due date counts (a later request: the day it was sent).
            start = calendar.received_day(r.due_from) if r.due_from else received
            row.update(answered_on=answered, on_time=answered <= r.due,
                       working_days=max(calendar.working_days_between(start, answered), 0))
        rows.append(row)
    return rows


def backfill(session: Session, calendar: Calendar) -> int:
    """Statistics for cases that have none yet (a database from before statistics existed)."""
    missing = session.exec(
        select(models.Case).where(col(models.Case.id).not_in(select(models.CaseStat.case_id)))
    ).all()
    for case in missing:
        record(session, calendar, case)
    return len(missing)
