"""Extensions: an officer who cannot answer in time sends a holding reply (`#holding DATE` or
"I will reply by …") with a new date, a reason and the next action. Within the limit the due
date moves and the member is told; beyond it the member must agree (`#agree`) or refuse
(`#refuse`, the date stays and the officer is told). Not to be confused with the holding pen."""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Session, col, select

from mailflow import models
from mailflow.casework import deadlines, directory, notify
from mailflow.casework.cases import event
from mailflow.casework.context import Context


def propose(ctx: Context, session: Session, case: models.Case, request: models.Request,
                  sender: str, new_due: date, reason: str, now: datetime, *,
                  raw_message_id: int | None = None, how: str = "#holding") -> str:
    cal, s = ctx.calendar, ctx.settings
    today = cal.today(now)
    service = directory.get(session, models.Service, request.service_id)
    name = service.name if service else "The service"
    if request.state != "sent":
        event(session, case, "holding_reply", now, sender=sender, text=reason,
              raw_message_id=raw_message_id, request_id=request.id, new_due=new_due.isoformat(),
              applied=False, how=how)
        return f"holding reply for a request that is {request.state}: recorded only"
    if new_due <= today:
        event(session, case, "holding_reply", now, sender=sender, text=reason,
              raw_message_id=raw_message_id, request_id=request.id, new_due=new_due.isoformat(),
              applied=False, how=how)
        notify.member(ctx, session, case, "holding", f"{name} sent a holding reply naming "
                      f"{new_due.isoformat()}, a date already past; the due date stays "
                      f"{request.due.isoformat()}.\n\n{reason}", now, request=request)
        return f"holding reply names a past date {new_due.isoformat()}: due date unchanged"
    base = request.target_due or request.due
    limit = cal.add_working_days(base, s.holding.max_extension_days)
    if new_due > limit:
        request.proposed_due = new_due
        session.add(request)
        event(session, case, "extension_requested", now, sender=sender, text=reason,
              raw_message_id=raw_message_id, request_id=request.id, new_due=new_due.isoformat(),
              limit=limit.isoformat(), how=how)
        notify.member(ctx, session, case, "extension",
                      f"{name} asks to move the due date from {request.due.isoformat()} to "
                      f"{new_due.isoformat()}, beyond the {s.holding.max_extension_days} "
                      f"working days allowed without your agreement.\n\n{reason}", now,
                      request=request, urgent=True, template="agreement",
                      service_name=name, old_due=notify.date_text(request.due),
                      new_due=notify.date_text(new_due), reason=reason)
        return f"holding reply to {new_due.isoformat()} is beyond {limit.isoformat()}: " \
               "asked the member to agree"
    old = request.due
    _move(ctx, request, new_due, f"holding reply from {sender} on {today.isoformat()}", today)
    session.add(request)
    event(session, case, "holding_reply", now, sender=sender, text=reason,
          raw_message_id=raw_message_id, request_id=request.id, old_due=old.isoformat(),
          new_due=new_due.isoformat(), applied=True, how=how)
    notify.member(ctx, session, case, "holding",
                  f"{name} cannot answer by {old.isoformat()}; the new date is "
                  f"{new_due.isoformat()}.\n\n{reason}", now, request=request,
                  headline=f"{name} will reply by {notify.date_text(new_due)}")
    return f"holding reply: due date moved from {old.isoformat()} to {new_due.isoformat()}"


def _move(ctx: Context, request: models.Request, new_due: date, why: str, today: date) -> None:
    request.due, request.due_from, request.due_days = new_due, None, None
    request.due_rule = f"{new_due.isoformat()}: {why}"
    request.proposed_due = None
    deadlines.restart_chain(ctx.calendar, ctx.settings.chasing, request, today)


def pending(session: Session, case: models.Case) -> models.Request | None:
    return session.exec(
        select(models.Request).where(models.Request.case_id == case.id)
        .where(col(models.Request.proposed_due).is_not(None))
        .where(models.Request.state == "sent").order_by(col(models.Request.id).desc())
    ).first()


def decide(ctx: Context, session: Session, case: models.Case, request: models.Request, sender: str,
           agree: bool, note: str, now: datetime, raw_message_id: int | None = None) -> str:
    """The member's answer to a request for a longer extension (see `pending`)."""
    assert request.proposed_due is not None
    today = ctx.calendar.today(now)
    proposed, old = request.proposed_due, request.due
    contacts = [request.contact]
    if agree:
        _move(ctx, request, proposed, f"extension agreed by {sender} on {today.isoformat()}",
              today)
        kind, line = "extension_agreed", (
            f"The member agreed: the answer is now due by {notify.date_text(proposed)}.")
    else:
        request.proposed_due = None
        kind, line = "extension_refused", (
            f"The member did not agree to {notify.date_text(proposed)}: the answer is still "
            f"due by {notify.date_text(old)}.")
    session.add(request)
    event(session, case, kind, now, sender=sender, text=note, raw_message_id=raw_message_id,
          request_id=request.id, proposed_due=proposed.isoformat(), due=request.due.isoformat())
    notify.service(ctx, session, case, request, "service_notice", now, to=contacts, kind=kind,
                   headline=line, text=note)
    return line
