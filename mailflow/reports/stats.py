"""The anonymised statistics every report counts from: one `CaseStat` per case and one
`RequestStat` per request, rewritten from the case whenever it changes (`record`).

They hold no constituent and no text, and no foreign key to the case, so deleting or
anonymising old cases under a retention policy leaves past reports exactly as they were.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import func
from sqlmodel import Session, col, select

from mailflow import models
from mailflow.casework import directory
from mailflow.casework.calendar import Calendar
from mailflow.casework.chasing import ESCALATED


def _month(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def record(session: Session, calendar: Calendar, case: models.Case) -> None:
    """Bring the statistics of one case and its requests in step with the case itself."""
    record_all(session, calendar, [case])


def record_all(session: Session, calendar: Calendar, cases: list[models.Case]) -> None:
    """Bring the statistics of `cases` in step with them: one query each for their requests,
    escalations and existing statistics, whatever the number of cases (a new case is looked
    up too: on SQLite a new case may reuse the id of the newest case deleted, whose
    statistics stay)."""
    session.flush()
    if not cases:
        return
    ids = [c.id for c in cases]
    requests: dict[int, list[models.Request]] = {i: [] for i in ids}  # type: ignore[misc]
    for r in session.exec(select(models.Request).where(col(models.Request.case_id).in_(ids))
                          .order_by(col(models.Request.id))):
        requests[r.case_id].append(r)
    stats = {s.case_id: s for s in session.exec(
        select(models.CaseStat).where(col(models.CaseStat.case_id).in_(ids)))}
    with_requests = [i for i in ids if requests[i]]
    escalations: dict[int | None, int] = dict(session.exec(  # type: ignore[arg-type]
        select(models.Event.request_id, func.count())
        .where(col(models.Event.case_id).in_(with_requests), models.Event.kind == ESCALATED)
        .group_by(col(models.Event.request_id))
    ).all()) if with_requests else {}
    existing = {r.request_id: r for r in session.exec(
        select(models.RequestStat).where(col(models.RequestStat.case_id).in_(with_requests)))
    } if with_requests else {}
    services = directory.service_names(session)
    for case in cases:
        _record(session, calendar, case, requests[case.id], stats.get(case.id),  # type: ignore[index]
                escalations, existing, services)


def _record(session: Session, calendar: Calendar, case: models.Case,
            requests: list[models.Request], stat: models.CaseStat | None,
            escalations: dict[int | None, int], existing: dict[int, models.RequestStat],
            services: dict[int, str]) -> None:
    member = session.get(models.Member, case.member_id)
    common = {
        "case_id": case.id,
        "ward": directory.ward_name(session, case.ward_id),
        "member_id": case.member_id,
        "member": member.name if member else None,
        "category": case.category,
        "enquiry_type": case.enquiry_type,
    }
    stat = stat or models.CaseStat(
        case_id=case.id, opened_on=date.min, opened_month="")  # type: ignore[arg-type]
    opened = calendar.local(case.opened_at).date()
    closed = calendar.local(case.closed_at).date() if case.closed_at else None
    for k, v in common.items():
        setattr(stat, k, v)
    stat.service = services.get(requests[0].service_id) if requests else None
    stat.opened_on, stat.opened_month = opened, _month(opened)
    stat.closed_on, stat.closed_month = closed, _month(closed) if closed else None
    session.add(stat)
    if not requests:
        return
    received = calendar.received_day(case.received_at)
    for r in requests:
        row = existing.get(r.id) or models.RequestStat(  # type: ignore[call-arg, arg-type]
            request_id=r.id, sent_on=date.min, sent_month="", due=r.due)
        for k, v in common.items():
            setattr(row, k, v)
        sent = calendar.local(r.sent_at).date()
        row.service = services.get(r.service_id)
        row.state, row.due = r.state, r.due
        row.sent_on, row.sent_month = sent, _month(sent)
        row.escalations = escalations.get(r.id, 0)
        if r.answered_at is not None:
            answered = calendar.local(r.answered_at).date()
            row.answered_on = answered
            # From where this request's due date counts (a later request: the day it was sent).
            start = calendar.received_day(r.due_from) if r.due_from else received
            row.working_days = max(calendar.working_days_between(start, answered), 0)
            row.on_time = answered <= r.due
        else:
            row.answered_on = row.working_days = row.on_time = None
        session.add(row)


def backfill(session: Session, calendar: Calendar) -> int:
    """Statistics for cases that have none yet (a database from before statistics existed)."""
    missing = session.exec(
        select(models.Case).where(col(models.Case.id).not_in(select(models.CaseStat.case_id)))
    ).all()
    for case in missing:
        record(session, calendar, case)
    return len(missing)
