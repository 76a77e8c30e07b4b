"""One step of a request's chase chain: reminder, chase, second chase, escalation. Steps go in
batches: the batch's steps are claimed first, in one conditional UPDATE on their requests
(RETURNING the ids this worker won), so each happens once however many ticks or nodes try;
a step another worker took is skipped before anything of it is done. What the won steps need
(cases, constituents, the first mail of each request to thread under, auto-replies since
the last step) is read in a few queries for the whole batch. Each step's mail is rendered
and queued and its event and notices built as plain values; a step that fails takes back
the mail it queued and its claim, and leaves nothing of itself. The steps that succeeded
have their events and notices inserted together, one statement each, at the end of the
batch, and the mail is flushed with them, all in the batch's transaction. No savepoint, no
flush and no round trip per step.

A step changes no statistic but an escalation's count, so that count alone is brought in step
(one UPDATE for the batch) instead of the case's statistics being rewritten at commit."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, union_all, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from mailflow import db, models
from mailflow.casework import deadlines, directory, notify
from mailflow.casework.cases import contact_details, event_values
from mailflow.casework.context import Context
from mailflow.outbound import mail

log = logging.getLogger(__name__)
ESCALATED = "escalated"  # the timeline event kind of an escalation (reports/stats.py counts it)


@dataclass
class Batch:
    """What a batch of steps reads once instead of once per step."""

    cases: dict[int, models.Case] = field(default_factory=dict)
    constituents: dict[int, models.Constituent] = field(default_factory=dict)
    threads: dict[int, str] = field(default_factory=dict)  # request id -> our first mail
    auto_replies: dict[int, list[tuple[int | None, str | None, datetime]]] = \
        field(default_factory=dict)  # case id -> (request id, sender, at)


@dataclass
class Rows:
    """What the steps that won write, inserted together when the batch's steps are done."""

    events: list[dict[str, Any]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    escalated: dict[int, int] = field(default_factory=dict)  # request id -> case id


CLAIMED = ("chase_step", "next_step", "next_step_on", "stepped_at", "chased_at")
WHERE = ("chase_step", "next_step", "next_step_on")  # the step as this tick saw it


def take_steps(ctx: Context, session: Session, requests: Sequence[models.Request],
               now: datetime) -> list[str | None]:
    """Take each request's next step if it is due today; per request, the step taken (or
    "skipped" for a reminder that came too late), None when another worker took it or the
    step failed (logged, nothing of it kept; the next tick tries again)."""
    today = ctx.calendar.today(now)
    due = [r for r in requests if r.next_step is not None and r.next_step_on is not None
           and r.next_step_on <= today and r.state == "sent"]
    claims = {r.id: _values(ctx, r, now) for r in due}
    won = _claim_all(session, due, claims)
    due = [r for r in due if r.id in won]  # the rest another worker took: nothing of them here
    batch = _load(session, due)
    if due and ctx.settings.outbound.max_per_recipient_per_hour is not None:
        mail.warm_recent(session, [r.case_id for r in due], now)  # each mail's rate limit
    rows = Rows()
    out: dict[int, str | None] = {}
    with session.no_autoflush:  # each step's reads must not write the steps before it
        for r in due:
            out[r.id] = _take(ctx, session, batch, rows, r, claims[r.id], now)  # type: ignore[index]
    _write(session, rows)
    return [out.get(r.id) for r in requests]  # type: ignore[arg-type]


def _values(ctx: Context, r: models.Request, now: datetime) -> dict[str, Any]:
    """The request's columns as its due step leaves them."""
    step = r.next_step
    assert step is not None
    today = ctx.calendar.today(now)
    late_reminder = step == "reminder" and today >= r.due
    next_step, next_on = deadlines.plan(ctx.calendar, ctx.settings.chasing, r.due,
                                        deadlines.REACHED[step], last_day=today)
    return {"chase_step": deadlines.REACHED[step], "next_step": next_step,
            "next_step_on": next_on,
            "stepped_at": (r.stepped_at or r.sent_at) if late_reminder else now,
            # a chase today leaves no room for a member's #chase today (followups.py)
            **({"chased_at": now} if step in ("chase", "chase_again") else {})}


def _claim_all(session: Session, due: Sequence[models.Request],
               claims: dict[Any, dict[str, Any]]) -> set[int]:
    """Claim the batch's steps in one conditional UPDATE (one round trip, not one a step): of
    two workers that saw a request at the same step only one moves it; RETURNING says which
    ids this one won."""
    if not due:
        return set()
    columns = {"w_id": [r.id for r in due],
               **{f"w_{k}": [getattr(r, k) for r in due] for k in WHERE},
               **{f"v_{k}": [claims[r.id].get(k) for r in due] for k in CLAIMED}}
    if db.is_postgres(session.get_bind()):  # type: ignore[arg-type]
        return set(session.execute(_claim_arrays(), columns).scalars())
    return set(session.execute(_claim_rows(len(due)), {
        f"{k}_{i}": v for k, vs in columns.items() for i, v in enumerate(vs)}).scalars())


def _columns() -> list[tuple[str, Any]]:
    """The claim's table: (id, the step as this tick saw it, the values it leaves)."""
    c = models.Request.__table__.c  # type: ignore[attr-defined]
    return [("w_id", c.id.type), *((f"w_{k}", c[k].type) for k in WHERE),
            *((f"v_{k}", c[k].type) for k in CLAIMED)]


@functools.cache
def _claim_arrays() -> Any:
    """PostgreSQL: the table as one array a column (unnest), so one short statement serves
    every batch (a statement of 450 parameters costs psycopg and the planner more than the
    rows)."""
    v = func.unnest(*(bindparam(name, type_=ARRAY(t)) for name, t in _columns())) \
        .table_valued(*(name for name, _ in _columns())).render_derived("v")
    return _claim_from(v)


@functools.cache
def _claim_rows(n: int) -> Any:
    """Elsewhere: the table as `n` rows of bound parameters, built once per batch length."""
    return _claim_from(union_all(*(
        select(*(bindparam(f"{name}_{i}", type_=t).label(name) for name, t in _columns()))
        for i in range(n))).subquery("v"))


def _claim_from(v: Any) -> Any:
    R = models.Request.__table__  # type: ignore[attr-defined]
    c = R.c
    return (update(R).where(c.id == v.c.w_id, c.state == "sent",
                            *(c[k] == v.c[f"w_{k}"] for k in WHERE))
            .values({k: v.c[f"v_{k}"] for k in CLAIMED if k != "chased_at"}
                    # only a chase sets it: None leaves it as it was
                    | {"chased_at": func.coalesce(v.c.v_chased_at, c.chased_at)})
            .returning(c.id))


@functools.cache
def _unclaim() -> Any:
    """A failed step's claim taken back: the row as it was (this transaction holds it)."""
    R = models.Request.__table__  # type: ignore[attr-defined]
    return (update(R).where(R.c.id == bindparam("w_id"))
            .values({k: bindparam(f"v_{k}") for k in CLAIMED}))


def _take(ctx: Context, session: Session, b: Batch, rows: Rows, r: models.Request,
          values: dict[str, Any], now: datetime) -> str | None:
    """The claimed step's mail queued and its rows built; a step that fails takes back its
    mail and its claim, so nothing of it is kept."""
    step = r.next_step
    assert step is not None
    since = r.stepped_at or r.sent_at
    late_reminder = step == "reminder" and ctx.calendar.today(now) >= r.due
    before = {k: getattr(r, k) for k in CLAIMED}
    pending = session.new
    mine = Rows()
    try:
        for k, v in values.items():  # the mail shows the request as the step leaves it
            set_committed_value(r, k, v)
        if not late_reminder:
            _step(ctx, session, b, mine, r, step, since, now)
    except Exception:  # noqa: BLE001 - one step's failure must not stop the others
        log.exception("chase: the %s of request %s failed", step, r.id)
        for k, v in before.items():
            set_committed_value(r, k, v)
        for o in session.new:
            if o not in pending:
                session.expunge(o)
        session.execute(_unclaim(), {"w_id": r.id, **{f"v_{k}": v for k, v in before.items()}})
        return None
    rows.events += mine.events
    rows.notices += mine.notices
    rows.escalated.update(mine.escalated)
    return "skipped" if late_reminder else step


def _write(session: Session, rows: Rows) -> None:
    """The won steps' events and notices, one INSERT each; an escalation's count in its
    statistics row (the only statistic a step changes)."""
    _insert(session, models.Event.__table__, rows.events)  # type: ignore[attr-defined]
    _insert(session, models.Notification.__table__, rows.notices)  # type: ignore[attr-defined]
    if rows.escalated:
        E, RS = models.Event, models.RequestStat
        count = (select(func.count()).select_from(E)
                 .where(col(E.request_id) == col(RS.request_id), E.kind == ESCALATED)
                 .scalar_subquery())
        done = session.execute(
            update(RS).where(col(RS.request_id).in_(list(rows.escalated)))
            .values(escalations=count).execution_options(synchronize_session=False))
        if done.rowcount != len(rows.escalated):  # type: ignore[attr-defined]
            # a request without its statistics row yet: the commit writes the case's whole
            touched = session.info.setdefault("touched_cases", {})
            for case_id in rows.escalated.values():
                touched[case_id] = case_id


def _insert(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Rows in one cached statement: on PostgreSQL one INSERT of arrays (unnest), about half
    the time of a pipelined statement a row; elsewhere an executemany (a multi-row VALUES is
    compiled afresh for each batch's length, and costs more than the rows)."""
    if not rows:
        return
    if db.is_postgres(session.get_bind()):  # type: ignore[arg-type]
        names = tuple(rows[0])
        session.execute(_insert_arrays(table, names), {k: [r[k] for r in rows] for k in names})
    else:
        session.execute(insert(table), rows)


@functools.cache
def _insert_arrays(table: Any, names: tuple[str, ...]) -> Any:
    v = func.unnest(*(bindparam(k, type_=ARRAY(table.c[k].type)) for k in names)) \
        .table_valued(*names).render_derived("v")
    return insert(table).from_select(names, select(*(v.c[k] for k in names)))


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


def _step(ctx: Context, session: Session, b: Batch, rows: Rows, r: models.Request, step: str,
          since: datetime, now: datetime) -> None:
    """Queue the step's mail and build its rows; nothing here writes to the database."""
    cal = ctx.calendar
    today = cal.today(now)
    case = b.cases[r.case_id]
    service = directory.get(session, models.Service, r.service_id)
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

    def event(kind: str, text: str, **data: Any) -> None:
        rows.events.append(event_values(case, kind, now, request_id=r.id, text=text, **data))

    if step == "reminder":
        to_service("reminder", [r.contact])
        event("reminded", f"Reminder sent to {r.contact}: due {r.due.isoformat()}.", step=step)
    elif step in ("chase", "chase_again"):
        cc = []
        if service.escalation and out_of_office(ctx, b, r, service, since):
            cc = [service.escalation]  # the contact is away: someone else must see it
        to_service("chase", [r.contact], cc, second=step == "chase_again")
        which = "Second chase" if step == "chase_again" else "Chase"
        event("chased", f"{which} sent to {r.contact}" + (f" (copy to {cc[0]}: out of office)"
                                                          if cc else "")
              + f": {overdue} working day(s) overdue, due {r.due.isoformat()}.",
              step=step, cc=cc)
        rows.notices.append(notify.member_values(
            ctx, session, case, "chased", f"{which} sent to {service.name}: "
            f"{overdue} working day(s) overdue.", now, request=r, email=False))
    else:
        to = [service.escalation] if service.escalation else \
            [st.email for st in ctx.settings.staff]
        if to:
            to_service("escalation", to, [r.contact], constituent=contact_details(
                b.constituents.get(case.constituent_id)  # type: ignore[arg-type]
                if case.constituent_id else None))
        nobody = "nobody (no escalation contact or staff)"
        event(ESCALATED, f"Escalated to {', '.join(to) or nobody}: {overdue} working days "
              "overdue.", step=step, to=to)
        text = (f"The request to {service.name} is {overdue} working days overdue and has been "
                f"escalated to {', '.join(to) or 'member services'}.")
        rows.notices.append(notify.member_values(
            ctx, session, case, "escalated", text, now, request=r,
            headline=f"{case.reference}: escalated to the head of {service.name}"))
        rows.notices.append(notify.staff_values(case, "escalated", text, now, request=r))
        rows.escalated[r.id] = r.case_id  # type: ignore[index]


def out_of_office(ctx: Context, b: Batch, r: models.Request, service_row: models.Service,
                  since: datetime) -> bool:
    """An auto-reply from the request's contact since the last step."""
    service = ctx.settings.service(service_row.name)
    addresses = {r.contact, *(service.contact_aliases if service else [])}
    return any(at > since and (request_id == r.id or sender in addresses)
               for request_id, sender, at in b.auto_replies.get(r.case_id, []))
