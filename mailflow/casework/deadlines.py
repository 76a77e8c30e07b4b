"""Deadlines: which target a request gets, when each chase step falls due, and keeping both
true when the council's calendar changes. Pure arithmetic over the Calendar plus the updates
that store it; never reads the clock."""

from __future__ import annotations

import logging
from datetime import date, datetime

from sqlmodel import Session, col, select

from mailflow import db, models
from mailflow.casework.calendar import Calendar
from mailflow.settings import Chasing, Settings

log = logging.getLogger(__name__)

# The chase chain, in order: the step a request has reached -> the next step and its name.
NEXT_STEP = {"none": "reminder", "reminded": "chase", "chased": "chase_again",
             "chased_again": "escalate", "escalated": None}
REACHED = {"reminder": "reminded", "chase": "chased", "chase_again": "chased_again",
           "escalate": "escalated"}


def target(settings: Settings, service: str, category: str | None,
           enquiry_type: str | None) -> tuple[int, str]:
    """(working days, why), the one rule: a service's own complaint target, then an enquiry
    type's target, then the council's complaint target, then a category's, then the service's."""
    t = settings.targets
    s = settings.service(service)
    if enquiry_type == "complaint" and s and s.complaint_response_days:
        return s.complaint_response_days, f"complaint target of {service}"
    if enquiry_type and enquiry_type in t.enquiry_types:
        return t.enquiry_types[enquiry_type], f"enquiry type {enquiry_type}"
    if enquiry_type == "complaint" and settings.complaints.response_days:
        return settings.complaints.response_days, "complaint target"
    if category and category in t.categories:
        return t.categories[category], f"category {category}"
    return (s.response_days if s else 10), f"service {service}"


def acknowledge_days(settings: Settings, service: str) -> int:
    s = settings.service(service)
    return (s.acknowledge_days if s and s.acknowledge_days else settings.targets.acknowledge_days)


def rule_text(cal: Calendar, days: int, why: str, start: datetime) -> str:
    return f"{days} working days ({why}; {cal.nation}) from {cal.received_day(start).isoformat()}"


def plan(cal: Calendar, policy: Chasing, due: date, reached: str, *,
         last_day: date | None, not_before: date | None = None) -> tuple[str | None, date | None]:
    """(the next chase step, the council-local day it falls due) for a request that has
    `reached` a step. Later steps count from the day the previous one actually happened, so a
    node that was down for a week sends one chase a day, not the whole chain at once."""
    step = NEXT_STEP[reached]
    if step == "reminder":
        day = cal.add_working_days(due, -policy.reminder_days_before)
        if policy.reminder and (not_before is None or day > not_before):
            return step, day
        step = "chase"
    if step == "chase":
        return step, cal.add_working_days(due, policy.first_chase_days_after)
    if step is None:
        return None, None
    after_last = cal.add_working_days(last_day or due, 1)
    if step == "chase_again":
        base = last_day or cal.add_working_days(due, policy.first_chase_days_after)
        return step, max(cal.add_working_days(base, policy.second_chase_days_after), after_last)
    return step, max(cal.add_working_days(due, policy.escalate_days_after), after_last)


def restart_chain(cal: Calendar, policy: Chasing, r: models.Request, today: date) -> None:
    """A new due date starts the chase chain again (holding reply, rejection, calendar)."""
    r.chase_step = "none"
    r.next_step, r.next_step_on = plan(cal, policy, r.due, "none", last_day=None,
                                       not_before=today)


def follow_calendar(session: Session, settings: Settings, cal: Calendar, now: datetime) -> int:
    """When the calendar or the chase policy in the config changed since the last run, work
    out every open deadline again and record each change on its case. Returns how many
    requests moved. The first run also plans the chases of requests sent before there were
    any (an upgraded database)."""
    policy = settings.chasing
    fingerprint = f"{cal.fingerprint}:{policy.model_dump_json()}"
    row = session.get(models.Setting, "calendar")
    if row is not None and row.value == fingerprint:
        return 0
    # Claim the change, so two nodes starting together recompute once.
    if row is None:
        claimed = db.insert_once(session, models.Setting,
                                 {"name": "calendar", "value": fingerprint}, ["name"])
    else:
        claimed = db.claim(session, models.Setting, {"name": "calendar", "value": row.value},
                           {"value": fingerprint})
    if not claimed:
        return 0
    today = cal.today(now)
    moved = 0
    q = (select(models.Request).where(col(models.Request.state) == "sent")
         .order_by(col(models.Request.id)).execution_options(yield_per=1000))
    if row is None:  # first run: only requests from before chasing existed need a plan
        q = q.where(col(models.Request.chase_step) == "none") \
            .where(col(models.Request.next_step).is_(None))
    for r in session.exec(q):
        old_due, old_step_on = r.due, r.next_step_on
        if r.due_from is not None and r.due_days is not None:
            r.due = cal.due(r.due_from, r.due_days)
            if r.target_due == old_due:
                r.target_due = r.due
        last = cal.today(r.stepped_at) if r.stepped_at else None
        if r.chase_step == "none":  # a reminder already due stays skipped
            r.next_step, r.next_step_on = plan(cal, policy, r.due, "none", last_day=None,
                                               not_before=today)
        else:
            r.next_step, r.next_step_on = plan(cal, policy, r.due, r.chase_step, last_day=last)
        if (r.due, r.next_step_on) == (old_due, old_step_on):
            continue
        moved += 1
        if r.due != old_due:
            r.due_rule = (r.due_rule.split(" [", 1)[0]
                          + f" [recomputed {today.isoformat()}: calendar changed]")
            session.add(models.Event(
                case_id=r.case_id, request_id=r.id, at=now, kind="deadline_changed",
                text=f"The council's calendar changed ({cal.describe()}): due "
                     f"{old_due.isoformat()} is now {r.due.isoformat()}.",
                data={"old_due": old_due.isoformat(), "due": r.due.isoformat()}))
        session.add(r)
    log.info("calendar changed: %s open requests rescheduled", moved)
    return moved
