"""One step of a request's chase chain: reminder, chase, second chase, escalation. The step is
claimed with a conditional update on the request, so it happens once however many ticks or
nodes try; the mail it causes is queued in the same transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_
from sqlmodel import Session, col, select

from mailflow import db, models
from mailflow.casework import deadlines, notify
from mailflow.casework.cases import contact_details, event
from mailflow.casework.context import Context


def take_step(ctx: Context, session: Session, r: models.Request, now: datetime) -> str | None:
    """Take the request's next step if it is due today; returns the step taken (or
    "skipped" for a reminder that came too late), None when another worker took it."""
    cal, policy = ctx.calendar, ctx.settings.chasing
    today = cal.today(now)
    step, step_on, reached_before = r.next_step, r.next_step_on, r.chase_step
    if step is None or step_on is None or step_on > today or r.state != "sent":
        return None
    since = r.stepped_at or r.sent_at
    reached = deadlines.REACHED[step]
    late_reminder = step == "reminder" and today >= r.due
    next_step, next_on = deadlines.plan(cal, policy, r.due, reached, last_day=today)
    if not db.claim(session, models.Request,
                    {"id": r.id, "state": "sent", "chase_step": reached_before,
                     "next_step": step, "next_step_on": step_on},
                    {"chase_step": reached, "next_step": next_step, "next_step_on": next_on,
                     "stepped_at": since if late_reminder else now,
                     # a chase today leaves no room for a member's #chase today (followups.py)
                     **({"chased_at": now} if step in ("chase", "chase_again") else {})}):
        return None
    session.refresh(r)
    if late_reminder:
        return "skipped"
    case = session.get(models.Case, r.case_id)
    service = session.get(models.Service, r.service_id)
    assert case is not None and service is not None
    overdue = cal.working_days_between(r.due, today)
    about = {"due_text": notify.date_text(r.due), "overdue": overdue}
    if step == "reminder":
        notify.service(ctx, session, case, r, "reminder", now, to=[r.contact], **about)
        event(session, case, "reminded", now, request_id=r.id, text=f"Reminder sent to "
              f"{r.contact}: due {r.due.isoformat()}.", step=step)
    elif step in ("chase", "chase_again"):
        cc = []
        if service.escalation and out_of_office(session, ctx, r, since):
            cc = [service.escalation]  # the contact is away: someone else must see it
        notify.service(ctx, session, case, r, "chase", now, to=[r.contact], cc=cc,
                       second=step == "chase_again", **about)
        which = "Second chase" if step == "chase_again" else "Chase"
        event(session, case, "chased", now, request_id=r.id, step=step, cc=cc,
              text=f"{which} sent to {r.contact}" + (f" (copy to {cc[0]}: out of office)"
                                                     if cc else "")
              + f": {overdue} working day(s) overdue, due {r.due.isoformat()}.")
        notify.member(ctx, session, case, "chased", f"{which} sent to {service.name}: "
                      f"{overdue} working day(s) overdue.", now, request=r, email=False)
    else:
        to = [service.escalation] if service.escalation else \
            [st.email for st in ctx.settings.staff]
        if to:
            notify.service(ctx, session, case, r, "escalation", now, to=to, cc=[r.contact],
                           constituent=contact_details(session.get(
                               models.Constituent, case.constituent_id)), **about)
        event(session, case, "escalated", now, request_id=r.id, step=step, to=to,
              text=f"Escalated to {', '.join(to) or 'nobody (no escalation contact or staff)'}"
                   f": {overdue} working days overdue.")
        text = (f"The request to {service.name} is {overdue} working days overdue and has been "
                f"escalated to {', '.join(to) or 'member services'}.")
        notify.member(ctx, session, case, "escalated", text, now, request=r,
                      headline=f"{case.reference}: escalated to the head of {service.name}")
        notify.staff(session, case, "escalated", text, now, request=r)
    return step


def out_of_office(session: Session, ctx: Context, r: models.Request, since: datetime) -> bool:
    """An auto-reply from the request's contact since the last step."""
    s = ctx.settings
    service_row = session.get(models.Service, r.service_id)
    service = s.service(service_row.name) if service_row else None
    addresses = {r.contact, *(service.contact_aliases if service else [])}
    return session.exec(
        select(models.Event.id).where(models.Event.case_id == r.case_id)
        .where(models.Event.kind == "auto_reply").where(col(models.Event.at) > since)
        .where(or_(col(models.Event.request_id) == r.id, col(models.Event.sender).in_(addresses)))
    ).first() is not None
