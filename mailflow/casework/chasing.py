"""One step of a request's chase chain: reminder, chase, second chase, escalation. Steps go in
batches: what a batch's steps need (cases, constituents, the first mail of each request to
thread under, auto-replies since the last step) is read in a few queries for the whole batch,
then each step is taken in its own savepoint, so one that fails affects only itself. The step
is claimed with a conditional update on the request, so it happens once however many ticks or
nodes try; the mail it causes is queued in the same transaction."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from mailflow import db, models
from mailflow.casework import deadlines, directory, notify
from mailflow.casework.cases import contact_details, event
from mailflow.casework.context import Context
from mailflow.outbound import mail

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """What a batch of steps reads once instead of once per step."""

    cases: dict[int, models.Case] = field(default_factory=dict)
    constituents: dict[int, models.Constituent] = field(default_factory=dict)
    threads: dict[int, str] = field(default_factory=dict)  # request id -> our first mail
    auto_replies: dict[int, list[tuple[int | None, str | None, datetime]]] = \
        field(default_factory=dict)  # case id -> (request id, sender, at)


def take_steps(ctx: Context, session: Session, requests: Sequence[models.Request],
               now: datetime) -> list[str | None]:
    """Take each request's next step if it is due today; per request, the step taken (or
    "skipped" for a reminder that came too late), None when another worker took it or the
    step failed (rolled back to its savepoint and logged; the next tick tries again)."""
    today = ctx.calendar.today(now)
    due = [r for r in requests if r.next_step is not None and r.next_step_on is not None
           and r.next_step_on <= today and r.state == "sent"]
    batch = _load(session, due)
    out: dict[int, str | None] = {}
    for r in due:
        try:
            with session.begin_nested():
                out[r.id] = _step(ctx, session, batch, r, now)  # type: ignore[index]
        except Exception:  # noqa: BLE001 - one step's failure must not stop the others
            log.exception("chase: the %s of request %s failed", r.next_step, r.id)
            out[r.id] = None  # type: ignore[index]
    return [out.get(r.id) for r in requests]  # type: ignore[arg-type]


def _load(session: Session, due: Sequence[models.Request]) -> Batch:
    b = Batch()
    if not due:
        return b
    directory.warm(session)  # members and services without a query
    b.cases = {c.id: c for c in session.exec(select(models.Case).where(  # type: ignore[misc]
        col(models.Case.id).in_({r.case_id for r in due})))}
    # Held until the batch's session ends: the statistics hook at commit reads these cases,
    # and the session's identity map alone would let them go (it is weak).
    session.info["chase_cases"] = b.cases
    wanted = {b.cases[r.case_id].constituent_id for r in due if r.next_step == "escalate"}
    if wanted - {None}:
        b.constituents = {c.id: c for c in session.exec(  # type: ignore[misc]
            select(models.Constituent).where(col(models.Constituent.id).in_(wanted - {None})))}
    Out = models.Outbox
    for request_id, message_id in session.exec(
            select(Out.request_id, Out.message_id)
            .where(col(Out.request_id).in_([r.id for r in due]))
            .where(col(Out.kind).in_(("request", "follow_up"))).order_by(col(Out.id))):
        b.threads.setdefault(request_id, message_id)  # type: ignore[arg-type]
    chased = [r for r in due if r.next_step in ("chase", "chase_again")]
    if chased:
        E = models.Event
        since = min(r.stepped_at or r.sent_at for r in chased)
        for case_id, request_id, sender, at in session.exec(
                select(E.case_id, E.request_id, E.sender, E.at)
                .where(col(E.case_id).in_({r.case_id for r in chased}))
                .where(E.kind == "auto_reply").where(col(E.at) > since)):
            b.auto_replies.setdefault(case_id, []).append((request_id, sender, at))
    return b


def _step(ctx: Context, session: Session, b: Batch, r: models.Request, now: datetime
          ) -> str | None:
    cal, policy = ctx.calendar, ctx.settings.chasing
    today = cal.today(now)
    step, step_on, reached_before = r.next_step, r.next_step_on, r.chase_step
    assert step is not None and step_on is not None
    since = r.stepped_at or r.sent_at
    reached = deadlines.REACHED[step]
    late_reminder = step == "reminder" and today >= r.due
    next_step, next_on = deadlines.plan(cal, policy, r.due, reached, last_day=today)
    values = {"chase_step": reached, "next_step": next_step, "next_step_on": next_on,
              "stepped_at": since if late_reminder else now,
              # a chase today leaves no room for a member's #chase today (followups.py)
              **({"chased_at": now} if step in ("chase", "chase_again") else {})}
    if not db.claim(session, models.Request,
                    {"id": r.id, "state": "sent", "chase_step": reached_before,
                     "next_step": step, "next_step_on": step_on}, values):
        return None
    for k, v in values.items():  # what the claim wrote, without reading the row again
        set_committed_value(r, k, v)
    if late_reminder:
        return "skipped"
    case = b.cases[r.case_id]
    service = session.get(models.Service, r.service_id)
    assert service is not None
    overdue = cal.working_days_between(r.due, today)
    about = {"due_text": notify.date_text(r.due), "overdue": overdue}

    def to_service(template: str, to: list[str], cc: list[str] | None = None, **more: object
                   ) -> None:
        # notify.service, with the thread read for the whole batch
        mail.send(ctx, session, template,
                  {"request": r, "service": service, "member": notify.member_of(session, case),
                   **about, **more},
                  to=to, cc=cc, now=now, case=case, request=r, signed=True,
                  in_reply_to=b.threads.get(r.id))

    if step == "reminder":
        to_service("reminder", [r.contact])
        event(session, case, "reminded", now, request_id=r.id, text=f"Reminder sent to "
              f"{r.contact}: due {r.due.isoformat()}.", step=step)
    elif step in ("chase", "chase_again"):
        cc = []
        if service.escalation and out_of_office(ctx, b, r, service, since):
            cc = [service.escalation]  # the contact is away: someone else must see it
        to_service("chase", [r.contact], cc, second=step == "chase_again")
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
            to_service("escalation", to, [r.contact], constituent=contact_details(
                b.constituents.get(case.constituent_id)  # type: ignore[arg-type]
                if case.constituent_id else None))
        event(session, case, "escalated", now, request_id=r.id, step=step, to=to,
              text=f"Escalated to {', '.join(to) or 'nobody (no escalation contact or staff)'}"
                   f": {overdue} working days overdue.")
        text = (f"The request to {service.name} is {overdue} working days overdue and has been "
                f"escalated to {', '.join(to) or 'member services'}.")
        notify.member(ctx, session, case, "escalated", text, now, request=r,
                      headline=f"{case.reference}: escalated to the head of {service.name}")
        notify.staff(session, case, "escalated", text, now, request=r)
    return step


def out_of_office(ctx: Context, b: Batch, r: models.Request, service_row: models.Service,
                  since: datetime) -> bool:
    """An auto-reply from the request's contact since the last step."""
    service = ctx.settings.service(service_row.name)
    addresses = {r.contact, *(service.contact_aliases if service else [])}
    return any(at > since and (request_id == r.id or sender in addresses)
               for request_id, sender, at in b.auto_replies.get(r.case_id, []))
