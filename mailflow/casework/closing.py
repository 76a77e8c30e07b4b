"""After the answer: the member may reject it (the request goes back with a new due date),
reopen the case, or close it at once; otherwise it closes itself after the follow-up days."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from mailflow import db, models
from mailflow.casework import deadlines, directory, notify
from mailflow.casework.cases import event
from mailflow.casework.context import Context


def last_answered(session: Session, case: models.Case) -> models.Request | None:
    return session.exec(
        select(models.Request).where(models.Request.case_id == case.id)
        .where(models.Request.state == "answered")
        .order_by(col(models.Request.answered_at).desc(), col(models.Request.id).desc())
    ).first()


def reject(ctx: Context, session: Session, case: models.Case, request: models.Request, sender: str,
           reason: str, now: datetime, raw_message_id: int | None = None) -> str:
    """Send an answered request back to its service with a new due date."""
    cal, s = ctx.calendar, ctx.settings
    service = directory.get(session, models.Service, request.service_id)
    name = service.name if service else ""
    days, why = deadlines.target(s, name, case.category, case.enquiry_type)
    request.state, request.answered_at, request.answered_by = "sent", None, None
    request.due_from, request.due_days = now, days
    request.due = request.target_due = cal.due(now, days)
    request.due_rule = deadlines.rule_text(cal, days, why, now) + " (answer rejected)"
    deadlines.restart_chain(cal, s.chasing, request, cal.today(now))
    session.add(request)
    case.status, case.open_until, case.closed_at = "open", None, None
    session.add(case)
    event(session, case, "answer_rejected", now, sender=sender, text=reason,
          raw_message_id=raw_message_id, request_id=request.id, due=request.due.isoformat())
    notify.service(ctx, session, case, request, "service_notice", now, to=[request.contact],
                   kind="answer_rejected",
                   headline=f"The member has not accepted your answer. Please reply again by "
                            f"{notify.date_text(request.due)}.", text=reason)
    return f"answer from {name} rejected; due again by {request.due.isoformat()}"


def reopen(session: Session, case: models.Case, sender: str, note: str, now: datetime,
           raw_message_id: int | None = None) -> str:
    was = case.status
    case.status, case.open_until, case.closed_at = "open", None, None
    session.add(case)
    event(session, case, "reopened", now, sender=sender, text=note,
          raw_message_id=raw_message_id, was=was)
    return f"case reopened (was {was})"


def close(session: Session, case: models.Case, sender: str, outcome: str, now: datetime,
          raw_message_id: int | None = None) -> str:
    """Close at once. Requests still waiting (or undeliverable) are withdrawn, so nobody is
    chased for them and the staff digest no longer lists them."""
    was = case.status
    case.status, case.closed_at, case.open_until = "closed", now, None
    session.add(case)
    withdrawn = session.execute(
        update(models.Request).where(col(models.Request.case_id) == case.id)
        .where(col(models.Request.state).in_(("sent", "undeliverable")))
        .values(state="withdrawn", next_step_on=None, proposed_due=None)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    event(session, case, "closed", now, sender=sender, text=outcome,
          raw_message_id=raw_message_id, was=was, outcome=outcome or None,
          withdrawn=withdrawn)
    return f"case closed (was {was})" + (f", {withdrawn} request(s) withdrawn" if withdrawn else "")


def close_answered(ctx: Context, session: Session, case_id: int, open_until: date,
                   now: datetime) -> bool:
    """The after-answer job: close one answered case whose follow-up days have passed. The
    conditional update is the claim: a second node or tick changes nothing."""
    if not db.claim(session, models.Case,
                    {"id": case_id, "status": "answered", "open_until": open_until},
                    {"status": "closed", "closed_at": now, "open_until": None}):
        return False
    case = session.get(models.Case, case_id)
    assert case is not None
    session.refresh(case)
    days = ctx.settings.after_answer.keep_open_days
    event(session, case, "closed", now, text=f"Closed after {days} working days with no "
          "follow-up.", outcome="answered", automatic=True)
    notify.member(ctx, session, case, "closed",
                  f"Case closed: answered, and no follow-up in {days} working days. "
                  f"Reply #reopen to open it again.", now,
                  headline=f"Case {case.reference} closed")
    return True
