"""Failed requests: a request whose mail bounced or could not be delivered is `undeliverable`
with the reason, in the staff digest until resolved; `#resend` sends it again to the same
contact, `#contact ADDRESS` to a named person in a trusted domain. Either way it stays the
same request of the same case (reference and reply address kept), and its due date counts
from the day it is sent again, under the target that applies (the service never had it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from mailflow import models
from mailflow.casework import cases, deadlines, directory, names
from mailflow.casework.commands import CommandError
from mailflow.casework.context import Context

LOST = ("bounce", "undeliverable")  # holding-pen kinds a failed request leaves


def mark_undeliverable(session: Session, request: models.Request, reason: str,
                       now: datetime) -> None:
    request.state = "undeliverable"
    request.undeliverable_reason = reason[:500]
    request.undeliverable_at = now
    request.next_step_on = None  # nothing to chase until it is sent again
    session.add(request)


def pick(session: Session, case: models.Case, service: str, *, waiting_too: bool
         ) -> list[models.Request]:
    """The case's undeliverable requests (or, with `waiting_too` and none undeliverable, its
    waiting ones), narrowed to `service` when named."""
    reqs = list(session.exec(select(models.Request).where(models.Request.case_id == case.id)
                             .order_by(col(models.Request.id))))
    found = [r for r in reqs if r.state == "undeliverable"]
    if not found and waiting_too:
        found = [r for r in reqs if r.state == "sent"]
    if not found:
        raise CommandError("no request on this case is undeliverable" + (
            " or waiting" if waiting_too else "") + (
            f" (its requests are {', '.join(sorted({r.state for r in reqs}))})" if reqs else ""))
    if not service.strip():
        return found
    by_name = {}
    for r in found:
        row = directory.get(session, models.Service, r.service_id)
        by_name.setdefault(row.name if row else "?", []).append(r)
    name, why = names.match(service, list(by_name), "service")
    if name is None:
        raise CommandError(why)
    return by_name[name]


def send_again(ctx: Context, session: Session, case: models.Case, r: models.Request,
               sender: str, now: datetime, *, contact: str | None = None,
               raw_message_id: int | None = None) -> str:
    """Send the request again (to `contact` when given): same request, new due date."""
    s, cal = ctx.settings, ctx.calendar
    row = directory.get(session, models.Service, r.service_id)
    svc = s.service(row.name if row else None)
    if svc is None:
        raise CommandError("this request's service is no longer in the council directory")
    old_state, old_contact = r.state, r.contact
    days, why = deadlines.target(s, svc.name, case.category, case.enquiry_type)
    how = "re-addressed" if contact else "resent"
    r.contact = contact or r.contact
    r.state, r.undeliverable_reason, r.undeliverable_at = "sent", None, None
    if old_state == "undeliverable":  # the service never had it: its count starts now
        r.proposed_due = None
        r.due_from, r.due_days, r.target_days = now, days, days
        r.due = r.target_due = cal.due(now, days)
        r.due_rule = deadlines.rule_text(cal, days, why, now) + f" ({how})"
        r.ack_due = cal.add_working_days(cal.received_day(now),
                                         deadlines.acknowledge_days(s, svc.name))
        deadlines.restart_chain(cal, s.chasing, r, cal.today(now))
    session.add(r)
    cases.mail_request(ctx, session, case, r, svc, now)
    changes = {"state": [old_state, "sent"]}
    if contact:
        changes["contact"] = [old_contact, contact]
    cases.event(session, case, "request_resent" if not contact else "request_readdressed",
                now, sender=sender, raw_message_id=raw_message_id, request_id=r.id,
                text=f"Request to {svc.name} {how}" + (f" from {old_contact}" if contact else "")
                + f" to {r.contact}, due {r.due.isoformat()}.", due=r.due.isoformat(),
                rule=r.due_rule, changes=changes)
    cases.changed(session, case)
    resolve_pen(session, case, now)
    return f"request to {svc.name} {how} to {r.contact}, due {r.due.isoformat()}"


def resolve_pen(session: Session, case: models.Case, now: datetime) -> None:
    """The holding-pen items a failed request left on the case are resolved once none of
    its requests is undeliverable any more."""
    if session.exec(select(models.Request.id).where(models.Request.case_id == case.id)
                    .where(models.Request.state == "undeliverable")).first() is not None:
        return
    session.execute(update(models.Holding).where(col(models.Holding.case_id) == case.id)
                    .where(col(models.Holding.kind).in_(LOST))
                    .where(col(models.Holding.resolved_at).is_(None))
                    .values(resolved_at=now).execution_options(synchronize_session=False))
