"""Opening cases, sending requests and recording updates. Takes a session and `now`; never
touches sockets or the wall clock. Every mail it causes goes to the outbox in the caller's
transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, SQLModel, col, select

from mailflow import db, models, tokens
from mailflow.casework import (
    attachments,
    deadlines,
    directory,
    duplicates,
    enquiry,
    notify,
    parties,
    sharing,
)
from mailflow.casework.context import Context
from mailflow.outbound import mail
from mailflow.settings import Member, Service, Settings


@dataclass
class NewCase:
    member: Member
    subject: str
    issue: str
    member_note: str
    constituent_name: str | None
    constituent_email: str | None
    constituent_phone: str | None = None
    constituent_address: str | None = None
    service: Service | None = None
    route_reason: str = ""
    received_at: datetime | None = None  # when the member's message arrived
    original_date: datetime | None = None  # the constituent's own Date, for the record
    raw_message_id: int | None = None
    message_id: str | None = None
    files: list[attachments.File] = field(default_factory=list)  # what the forward carried
    enquiry_type: str | None = None  # None: from the member's note (casework/enquiry.py)
    # What routing reads instead of `issue`: a typed case without its labelled lines, so a
    # typed "Address: 4 Mill Road" does not send a bins case to Roads.
    route_text: str | None = None


def next_reference(session: Session, prefix: str, year: int) -> str:
    """Claim the next case number of the year in one statement, safe on two nodes."""
    return _numbers(session, prefix, year, request=False)[0]


def _numbers(session: Session, prefix: str, year: int, *, request: bool
             ) -> tuple[str, int | None]:
    """The next case number of the year and, when `request`, the id the case's first request
    will have, in one statement: the request is written with its signed token at once,
    instead of an INSERT and then an UPDATE of its token. On PostgreSQL in its own short
    transaction: taken in the message's, the counter row's lock would be held to the
    message's commit, and every pipeline worker of every node opening a case would wait its
    turn. A message that fails after taking a number leaves a gap (and, on PostgreSQL, a
    request id unused, as any rolled-back INSERT does)."""
    params = {"name": f"{prefix}-{year}"}
    bind = session.get_bind()
    if isinstance(bind, Engine) and db.is_postgres(bind):  # not a caller's own connection
        with Session(bind) as own:
            row = own.connection().execute(_numbers_statement("postgresql", request),
                                           params).one()
            own.commit()
    else:
        _flush_pending(session)  # SQLite's next request id counts a pending one
        row = session.connection().execute(_numbers_statement(bind.dialect.name, request),
                                           params).one()
    return tokens.format_reference(prefix, year, row[0]), row[1] if request else None


def next_request_id(session: Session) -> int:
    """The id a new request will have, taken before it is written (its token signs it): on
    PostgreSQL the id sequence's next value, on SQLite the next rowid, which is what SQLite
    would give it (the message's write transaction holds the database)."""
    _flush_pending(session)
    return int(session.connection().execute(
        select(_request_id(session.get_bind().dialect.name))).scalar_one())


def _flush_pending(session: Session) -> None:
    """Rows added and not yet written go first: a request written now may refer to them (its
    case), and SQLite's next request id counts them."""
    if session.new:
        session.flush()


def _request_id(dialect: str) -> Any:
    if dialect == "postgresql":
        return func.nextval(func.pg_get_serial_sequence("request", "id"))
    return select(func.coalesce(func.max(models.Request.id), 0) + 1).scalar_subquery()


_NUMBERS: dict[tuple[str, bool], Any] = {}


def _numbers_statement(dialect: str, request: bool) -> Any:
    """Built once per dialect: building the upsert cost more than running it."""
    key = (dialect, request)
    if key not in _NUMBERS:
        table = models.Counter.__table__  # type: ignore[attr-defined]
        ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
        upsert = (ins.values(name=bindparam("name"), value=1)
                  .on_conflict_do_update(index_elements=["name"],
                                         set_={"value": table.c.value + 1}))
        _NUMBERS[key] = (upsert.returning(table.c.value, _request_id(dialect)) if request
                         else upsert.returning(table.c.value))
    return _NUMBERS[key]


# The rows a case opens with, written at once by a prebuilt INSERT and kept in the session as
# if loaded (`_write`): the unit of work's flush of each cost about 0.3 ms.
_INSERTS = {m: insert(m.__table__)  # type: ignore[attr-defined]
            for m in (models.Constituent, models.Case, models.Request)}


def _write(session: Session, row: SQLModel) -> None:
    """INSERT `row` now and keep it in the session as persistent: a later change to it is
    an UPDATE at the next flush, as for any row read."""
    table = type(row).__table__  # type: ignore[attr-defined]
    values = {c.name: getattr(row, c.name) for c in table.columns}
    if values.get("id") is None:
        values.pop("id", None)
    result = session.connection().execute(_INSERTS[type(row)], values)
    if "id" not in values:
        row.id = result.inserted_primary_key[0]  # type: ignore[attr-defined]
    make_transient_to_detached(row)
    session.add(row)


def constituent_for(session: Session, name: str | None, email: str | None, **extra: Any
                    ) -> models.Constituent:
    """The same person writing again is the same constituent (by address)."""
    return _constituent(session, name, email, **extra)[0]


# The hot statements, built once with bound parameters: building one cost about as much as
# running it.
_CONSTITUENT = select(models.Constituent).where(models.Constituent.email == bindparam("email"))
_FOLLOWING = (select(models.Request).where(models.Request.case_id == bindparam("case"))
              .where(models.Request.follow_up_of == bindparam("request"))
              .where(models.Request.state == "sent"))
_WAITING = (select(models.Request).where(models.Request.case_id == bindparam("case"))
            .where(col(models.Request.state).in_(("sent", "undeliverable"))))
_MERGED_MEMBERS = select(models.Case.member_id).where(
    models.Case.merged_into_id == bindparam("case"))


def _constituent(session: Session, name: str | None, email: str | None, **extra: Any
                 ) -> tuple[models.Constituent, bool]:
    """`constituent_for`, and whether the row is new (a new constituent has no cases yet)."""
    row = None
    if email:
        row = session.exec(_CONSTITUENT, params={"email": email}).first()
    new = row is None
    if row is None:
        row = models.new_row(models.Constituent, name=name, email=email)
    row.name = row.name or name
    for k, v in extra.items():
        if v and not getattr(row, k):
            setattr(row, k, v)
    if new:
        _write(session, row)  # its id, for the case; a known one's change waits for the flush
    return row, new


def event(session: Session, case: models.Case, kind: str, at: datetime, *,
          sender: str | None = None, text: str = "", raw_message_id: int | None = None,
          request_id: int | None = None, **data: Any) -> models.Event:
    row = models.new_row(models.Event, **event_values(
        case, kind, at, sender=sender, text=text, raw_message_id=raw_message_id,
        request_id=request_id, **data))
    batch = session.info.get(_EVENTS)
    if batch is not None:
        batch.append(row)  # written with the others in one statement (`open_case`)
        # Its case's statistics are written again at the commit, as for an event flushed
        # (app.py note_touched).
        session.info.setdefault("touched_cases", {})[row.case_id] = row.case_id
    else:
        session.add(row)
    return row


_EVENTS = "event_batch"  # session.info key: `event` adds to this list while it is there
_INSERT_EVENTS = insert(models.Event.__table__)  # type: ignore[attr-defined]


def event_values(case: models.Case, kind: str, at: datetime, *, sender: str | None = None,
                 text: str = "", raw_message_id: int | None = None,
                 request_id: int | None = None, **data: Any) -> dict[str, Any]:
    """`event`'s columns, for a caller that inserts a batch of events in one statement."""
    return {"case_id": case.id, "kind": kind, "at": at, "sender": sender, "text": text,
            "raw_message_id": raw_message_id, "request_id": request_id, "data": data or None}


def open_case(ctx: Context, session: Session, new: NewCase, now: datetime) -> models.Case:
    """The case, its constituent and its request are written at once (`_write`), its events
    and its mail at the end in one statement each, in the order made; what else it adds
    (notices, files) is flushed with the message. Nothing it reads needs those first, so no
    read flushes them on the way (no_autoflush)."""
    events: list[models.Event] = []
    mails: list[models.Outbox] = []
    session.info[_EVENTS], session.info[mail.BATCH] = events, mails
    try:
        with session.no_autoflush:
            case = _open_case(ctx, session, new, now)
    finally:
        del session.info[_EVENTS], session.info[mail.BATCH]
    if events:
        session.connection().execute(_INSERT_EVENTS, [
            {k: getattr(e, k) for k in _EVENT_COLUMNS} for e in events])
    mail.write_batch(session, mails)
    return case


_EVENT_COLUMNS = [c.name for c in models.Event.__table__.columns  # type: ignore[attr-defined]
                  if c.name != "id"]


def _open_case(ctx: Context, session: Session, new: NewCase, now: datetime) -> models.Case:
    s = ctx.settings
    local_year = ctx.calendar.local(now).year
    member_row = directory.member_row(session, new.member.email)
    constituent, first_time = _constituent(
        session, new.constituent_name, new.constituent_email,
        phone=new.constituent_phone, address=new.constituent_address,
    )
    kind, kind_why = ((new.enquiry_type, "given") if new.enquiry_type
                      else enquiry.detect_type(s, new.member_note))
    reference, request_id = _numbers(session, s.council.reference_prefix, local_year,
                                     request=new.service is not None)
    case = models.new_row(models.Case,
        reference=reference,
        status="open" if new.service else "triage",
        member_id=member_row.id,  # type: ignore[arg-type]
        ward_id=member_row.ward_id,
        constituent_id=constituent.id,
        category=new.service.name if new.service else None,
        enquiry_type=kind,
        subject=new.subject,
        issue=new.issue,
        member_note=new.member_note,
        received_at=new.received_at or now,
        opened_at=now,
        source_message_id=new.raw_message_id,
    )
    _write(session, case)
    mail.none_stored(session, case.id, now)  # type: ignore[arg-type]
    event(session, case, "opened", now, sender=new.member.email, text=new.member_note,
          raw_message_id=new.raw_message_id,
          constituent={"name": constituent.name, "email": constituent.email},
          original_date=new.original_date.isoformat() if new.original_date else None,
          enquiry_type=kind, enquiry_type_reason=kind_why)
    rows = attachments.store(session, new.files, case_id=case.id,  # type: ignore[arg-type]
                             raw_message_id=new.raw_message_id, now=now,
                             max_size=s.attachments.max_size)
    note_too_large(ctx, session, case, rows, now)

    request = None
    if new.service:
        request = send_request(ctx, session, case, new.service, now, reason=new.route_reason,
                               opening=rows, request_id=request_id)
    else:
        session.add(models.new_row(models.Holding,
            case_id=case.id, kind="needs_service", raw_message_id=new.raw_message_id,
            reason=f"needs a service: {new.route_reason}", sender=new.member.email,
            subject=new.subject, created_at=now,
        ))
        event(session, case, "triage", now, text=f"Waiting for staff to choose a service "
              f"({new.route_reason}).")
    found = duplicates.find(session, s, case, now)  # newest first
    duplicates.index(session, case)  # after the search: a case is no duplicate of itself
    told = duplicates.told_before(session, [d.case.id for d in found])  # type: ignore[misc]
    for d in found:
        duplicates.link(session, case, d.case, d.reason, now)
        event(session, case, "possible_duplicate", now, text=f"Possible duplicate of "
              f"{d.case.reference} ({d.reason}).", other=d.case.reference, reason=d.reason)
        event(session, d.case, "possible_duplicate", now, text=f"Possible duplicate of "
              f"{case.reference} ({d.reason}).", other=case.reference, reason=d.reason)
    # One notice for the new case (its acknowledgement) listing the newest few, never one
    # per pair: 150 similar forwards once made 1,672 notices.
    listed = found[:duplicates.NOTICE_LIMIT]
    similar = [_similar(session, s, d.case, new.member.email, d.reason) for d in listed]
    _tell_other_members(ctx, session, case, found, told, now)
    acknowledge(ctx, session, case, new.member, constituent, new.service, request, now,
                in_reply_to=new.message_id, similar=similar,
                similar_more=len(found) - len(listed),
                earlier_cases=0 if first_time else duplicates.earlier_cases(session, case))
    acknowledge_constituent(ctx, session, case, new.member, constituent, now)
    notify.member(ctx, session, case, "opened", f"Case opened: {case.subject}", now,
                  request=request, email=False)
    changed(session, case)
    return case


def _similar(session: Session, settings: Settings, other: models.Case, viewer: str, reason: str
             ) -> dict[str, Any]:
    """What a member may be told about a similar case: its member and reference only when
    that case is shared with them (casework/sharing.py)."""
    revealed = sharing.can_see(session, settings, other, viewer)
    owner = directory.get(session, models.Member, other.member_id)
    return {"revealed": revealed, "reference": other.reference if revealed else None,
            "member": owner.name if revealed and owner else None,
            "reason": reason if revealed else None}


def _tell_other_members(ctx: Context, session: Session, new_case: models.Case,
                        found: list[duplicates.Similar], told: set[int], now: datetime) -> None:
    """The earlier cases' members, by the same rule of what they may see: each member once
    per new case, however many of their cases it resembles. A member none of whose cases
    had a possible duplicate yet gets a mail now; one who has heard of the cluster reads
    of it in their digest, where a cluster is named once (jobs/digests.py)."""
    by_member: dict[int, list[duplicates.Similar]] = {}
    for d in found:
        by_member.setdefault(d.case.member_id, []).append(d)
    for member_id, theirs in by_member.items():
        owner = directory.get(session, models.Member, member_id)
        if owner is None:
            continue
        newest = theirs[0]  # found is newest first
        similar = _similar(session, ctx.settings, new_case, owner.email, newest.reason)
        label = (f"Similar cases in your ward about {newest.place}" if newest.place else
                 f"Cases in your ward from the constituent of {newest.case.reference}")
        session.add(models.new_row(models.Notification,
            audience="member", recipient=owner.email, case_id=newest.case.id,
            kind="duplicate", text=label, created_at=now))
        if any(d.case.id in told for d in theirs):
            continue
        mail.send(ctx, session, "duplicate",
                  {"similar": similar, "yours": [d.case.reference for d in theirs]},
                  to=[owner.email], now=now, case=newest.case)


def changed(session: Session, case: models.Case) -> None:
    """Mark the case for its anonymised statistics, which ctx.py rewrites once per commit."""
    session.info.setdefault("touched_cases", {})[id(case)] = case


def contact_details(c: models.Constituent | None) -> dict[str, str | None]:
    """Where the problem is and how to reach the constituent: only for mail to the request's
    service contact or escalation contact, never for a colleague or a digest."""
    keys = ("name", "address", "phone", "email")
    return {k: (getattr(c, k) or "").strip() or None if c else None for k in keys}


def constituent_line(c: models.Constituent | None) -> str:
    if c is None or not (c.name or c.email):
        return "not known"
    if c.name and c.email:
        return f"{c.name} <{c.email}>"
    return c.name or c.email or ""


due_text = notify.date_text


@dataclass
class FollowUp:
    """A request sent after `#reopen`: the member's words and the request it follows."""

    reason: str
    of: int | None


def due_start(session: Session, case: models.Case, now: datetime) -> datetime:
    """Where a new request's due date counts from: the case's arrival for its first request,
    else the day this one is sent (a service added on day 8 gets its whole target)."""
    earlier = session.exec(select(models.Request.id)
                           .where(models.Request.case_id == case.id)).first()
    return now if earlier is not None else case.received_at


def send_request(ctx: Context, session: Session, case: models.Case, service: Service, now: datetime,
                 *, reason: str = "", follow_up: FollowUp | None = None,
                 opening: list[models.Attachment] | None = None,
                 request_id: int | None = None) -> models.Request:
    """`opening`: the case is being opened and these are its files, as stored by this
    session: its first request, due from its arrival, carries them without a query for
    either. `request_id`: the id taken for it (`_numbers`); else one is taken here."""
    s, cal = ctx.settings, ctx.calendar
    service_row = directory.service_row(session, service.name)
    days, why = deadlines.target(s, service.name, case.category, case.enquiry_type)
    start = (now if follow_up else case.received_at if opening is not None
             else due_start(session, case, now))
    due = cal.due(start, days)
    request_id = request_id or next_request_id(session)
    request = models.new_row(models.Request,
        id=request_id,
        case_id=case.id,  # type: ignore[arg-type]
        service_id=service_row.id,  # type: ignore[arg-type]
        contact=service.contact,
        token=tokens.token(s.secret, case.reference, request_id),
        sent_at=now,
        due=due,
        due_rule=deadlines.rule_text(cal, days, why, start),
        due_from=start,
        due_days=days,
        target_due=due,
        ack_due=cal.add_working_days(cal.received_day(now),
                                     deadlines.acknowledge_days(s, service.name)),
        target_days=days,
        follow_up_reason=follow_up.reason if follow_up else None,
        follow_up_of=follow_up.of if follow_up else None,
    )
    deadlines.restart_chain(cal, s.chasing, request, cal.today(now))
    _write(session, request)
    mail_request(ctx, session, case, request, service, now, files=opening)
    what = "Follow-up request" if follow_up else "Request"
    event(session, case, "request_sent", now, text=f"{what} sent to {service.name} "
          f"<{service.contact}>, due {due.isoformat()}.", request_id=request.id,
          service=service.name, due=due.isoformat(), rule=request.due_rule, routing=reason,
          follow_up_of=request.follow_up_of)
    changed(session, case)
    return request


def retarget(ctx: Context, case: models.Case, r: models.Request, service: str, now: datetime
             ) -> bool:
    """The case's category or enquiry type changed: move an open request to the target that
    now applies, unless the member agreed a new date. Returns whether it moved."""
    days, why = deadlines.target(ctx.settings, service, case.category, case.enquiry_type)
    extended = r.target_due is not None and r.due != r.target_due  # an agreed new date
    if days == r.target_days or extended:
        return False
    cal = ctx.calendar
    start = r.due_from or case.received_at  # counted from where this request's count began
    r.target_days = r.due_days = days
    r.due = r.target_due = cal.due(start, days)
    r.due_rule = deadlines.rule_text(cal, days, why, start)
    deadlines.restart_chain(cal, ctx.settings.chasing, r, cal.today(now))
    return True


def mail_request(ctx: Context, session: Session, case: models.Case, request: models.Request,
                 service: Service, now: datetime,
                 files: list[models.Attachment] | None = None) -> None:
    """The request email to the request's contact (a new request, a follow-up after
    `#reopen`, or one redirected, resent or re-addressed). `files`: the case's own, when
    the caller has them (a case being opened)."""
    s = ctx.settings
    member = s.member(_member_email(session, case))
    constituent = session.get(models.Constituent, case.constituent_id)
    # The files the member's forward carried go to the service with the request.
    if files is None:
        files = attachments.of_message(session, case.id, case.source_message_id)  # type: ignore
    carried = [mail.Attachment(f.name, f.content_type, data) for f in files
               if (data := attachments.load(session, f)) is not None]
    context = {
        "service": service, "member": member, "ward": member.ward if member else None,
        "constituent": contact_details(constituent), "due_text": due_text(request.due),
        "constituent_line": constituent_line(constituent),  # for councils' own templates
        "days": request.due_days or request.target_days or service.response_days,
        "ack_text": due_text(request.ack_due) if request.ack_due else None,
        "attachments": [f for f in files if f.stored],
        "too_large": [f for f in files if not f.stored], "human_size": attachments.human_size}
    template = "request"
    if request.follow_up_reason is not None:
        template = "follow_up"
        context.update(reason=request.follow_up_reason, answer=previous_answer(session, request))
    mail.send(ctx, session, template, context, to=[request.contact], now=now, case=case,
              request=request, signed=True, files=carried)


def previous_answer(session: Session, request: models.Request) -> models.Event | None:
    """The answer a follow-up quotes: the last reply filed on the request it follows."""
    if request.follow_up_of is None:
        return None
    return session.exec(select(models.Event).where(models.Event.case_id == request.case_id)
                        .where(models.Event.request_id == request.follow_up_of)
                        .where(models.Event.kind == "service_reply")
                        .order_by(col(models.Event.at).desc(), col(models.Event.id).desc())
                        ).first()


def _member_email(session: Session, case: models.Case) -> str:
    m = directory.get(session, models.Member, case.member_id)
    assert m is not None
    return m.email


def acknowledge(ctx: Context, session: Session, case: models.Case, member: Member,
                constituent: models.Constituent, service: Service | None,
                request: models.Request | None, now: datetime, in_reply_to: str | None,
                similar: list[dict[str, Any]] | None = None, earlier_cases: int = 0,
                similar_more: int = 0) -> None:
    mail.send(ctx, session, "acknowledgement",
              {"member": member, "service": service, "request": request,
               "constituent_line": constituent_line(constituent),
               "due_text": due_text(request.due) if request else None,
               "similar": similar or [], "similar_more": similar_more,
               "earlier_cases": earlier_cases},
              to=[member.email], now=now, case=case, in_reply_to=in_reply_to)
    event(session, case, "acknowledged", now, sender=ctx.settings.council.casework_address,
          text=f"Acknowledgement sent to {member.email}.")


def acknowledge_constituent(ctx: Context, session: Session, case: models.Case, member: Member,
                            constituent: models.Constituent, now: datetime) -> bool:
    """The constituent's acknowledgement, naming the member and the reference; only where the
    council and the member allow mail to constituents (settings.constituent_mail)."""
    if not (constituent.email and ctx.settings.constituent_mail(member.email)):
        return False
    mail.send(ctx, session, "constituent_acknowledgement",
              {"member": member, "constituent": constituent},
              to=[constituent.email], now=now, case=case, reply_to=member.email)
    event(session, case, "constituent_acknowledged", now,
          sender=ctx.settings.council.casework_address,
          text=f"Acknowledgement sent to the constituent ({constituent.email}).")
    return True


def record_service_reply(ctx: Context, session: Session, case: models.Case,
                         request: models.Request | None, sender: str, text: str, now: datetime,
                         *, raw_message_id: int | None, message_id: str | None,
                         evidence: str, loaded: parties.Loaded | None = None,
                         **data: Any) -> None:
    """A service's answer: the request is answered and the member alerted. `loaded`: what
    the match read of the case with it (parties.Loaded), so that is not read again.
    It reads first and writes with prebuilt statements (`_set`, `_insert_rows`): a read
    after an ORM change flushes it, and each flush costs more than the statements."""
    service_name = "the service"
    requests = loaded.requests if loaded else None
    if request is not None and request.state == "answered":
        # A reply in the thread of an answered request that a follow-up now asks again.
        request = _following(session, case, request, requests) or request
    merged = loaded.merged_members if loaded else None
    alerted = [m for m in alert_recipients(ctx, session, case, merged)
               if (prefs := ctx.settings.member(m)) is None or prefs.immediate_updates]
    if request is not None:
        service = directory.get(session, models.Service, request.service_id)
        service_name = service.name if service else service_name
        if request.state != "answered":
            if request.chase_step == "escalated" and service and service.escalation:
                # The head of service was told it was overdue; tell them it is answered.
                notify.service(ctx, session, case, request, "escalation_answered", now,
                               to=[service.escalation], answered_by=sender, text=text)
            _set(session, request, _ANSWER, state="answered",
                   acknowledged_at=request.acknowledged_at or now,  # an answer acknowledges
                   answered_at=now, answered_by=sender, next_step_on=None, proposed_due=None)
    events = [event_values(case, "service_reply", now, sender=sender, text=text,
                           raw_message_id=raw_message_id,
                           request_id=request.id if request else None, evidence=evidence,
                           contact=request.contact if request else None, **data)]
    # A withdrawn request (closed, then reopened) waits no more.
    if not _waiting(session, case, requests) and case.status in ("open", "triage"):
        # Kept open for follow-up; the after-answer job closes it when this day has passed.
        _set(session, case, _ANSWERED, status="answered",
               open_until=ctx.calendar.add_working_days(
                   ctx.calendar.today(now), ctx.settings.after_answer.keep_open_days))
    replied_by = sender if request is None or sender != request.contact else None
    # The digest shows its first line and, below it, the rest (jobs/digests.py _line).
    notice = notify.member_values(ctx, session, case, "reply",
                                  f"Reply from {service_name}: {text}", now, request=request,
                                  email=False)
    for member_email in alerted:  # the others read replies in their digest
        # Its rate-limit read counts the mail this session holds itself: no flush first.
        with session.no_autoflush:
            mail.send(ctx, session, "alert",
                      {"service_name": service_name, "replied_by": replied_by,
                       "text": notify.excerpt(text, case.reference)},
                      to=[member_email], now=now, case=case, request=request,
                      in_reply_to=message_id)
        events.append(event_values(case, "alert", now,
                                   text=f"Member alerted ({member_email})."))
    _insert_rows(session, case, events, [notice])
    changed(session, case)


def _set(session: Session, row: models.Request | models.Case, statement: Any,
         **values: Any) -> None:
    """Set `values` on a stored row with a prebuilt UPDATE, and on the object as committed
    values: the ORM has nothing of it left to flush (a flush costs more than the statement)."""
    if row.id is None:  # not stored yet: the flush writes it
        for k, v in values.items():
            setattr(row, k, v)
        return
    session.execute(statement, {"w_id": row.id, **{f"v_{k}": v for k, v in values.items()}})
    for k, v in values.items():
        set_committed_value(row, k, v)


def _update_of(model: Any, *columns: str) -> Any:
    t = model.__table__
    return (update(t).where(t.c.id == bindparam("w_id"))
            .values(**{c: bindparam(f"v_{c}") for c in columns}))


# Built once: what a reply writes.
_ANSWER = _update_of(models.Request, "state", "acknowledged_at", "answered_at", "answered_by",
                     "next_step_on", "proposed_due")
_ANSWERED = _update_of(models.Case, "status", "open_until")
_EVENT_ROWS = insert(models.Event.__table__)  # type: ignore[attr-defined]
_NOTICE_ROWS = insert(models.Notification.__table__)  # type: ignore[attr-defined]


def _insert_rows(session: Session, case: models.Case, events: list[dict[str, Any]],
                 notices: list[dict[str, Any]]) -> None:
    """Insert events and notifications with one statement a table instead of flushing ORM
    objects (a flush costs more than the statements). After what the session still holds
    of them, so their ids keep the order they were made in."""
    if case.id is None or any(isinstance(o, models.Event | models.Notification)
                              for o in session.new):
        session.flush()
    session.execute(_EVENT_ROWS, events)
    session.execute(_NOTICE_ROWS, notices)


def _following(session: Session, case: models.Case, request: models.Request,
               requests: list[models.Request] | None) -> models.Request | None:
    """The follow-up request (sent after `#reopen`) that asks `request` again, if any."""
    if requests is None:
        return session.exec(_FOLLOWING, params={"case": case.id, "request": request.id}
                            ).first()
    return next((r for r in requests if r.follow_up_of == request.id and r.state == "sent"),
                None)


def _waiting(session: Session, case: models.Case, requests: list[models.Request] | None
             ) -> list[models.Request]:
    """The case's requests still waiting for an answer, as they stand in this session."""
    if requests is None:
        return list(session.exec(_WAITING, params={"case": case.id}).all())
    return [r for r in requests if r.state in ("sent", "undeliverable")]


def record_acknowledgement(ctx: Context, session: Session, case: models.Case,
                           request: models.Request, sender: str, text: str, now: datetime, *,
                           raw_message_id: int | None, how: str) -> str:
    """A service's acknowledgement (received, passed on, being looked into): on the timeline
    (`acknowledged`, with the request), meeting the request's acknowledgement target, and in
    the member's digest. It is no answer: the request stays `sent` and is chased on its due
    date; the answer that follows answers it. `how`: `words`, `#ack` or `automatic` (a
    CRM's acknowledgement known by its words)."""
    first = request.acknowledged_at is None
    if first:
        request.acknowledged_at = now
        session.add(request)
    day = ctx.calendar.today(now)
    on_time = request.ack_due is None or day <= request.ack_due
    service = directory.get(session, models.Service, request.service_id)
    name = service.name if service else "The service"
    event(session, case, "acknowledged", now, sender=sender, text=text,
          raw_message_id=raw_message_id, request_id=request.id, by="service", how=how,
          first=first, on_time=on_time,
          ack_due=request.ack_due.isoformat() if request.ack_due else None)
    if request.state == "sent":
        notify.member(ctx, session, case, "acknowledged",
                      f"{name} acknowledged the request; the answer is due by "
                      f"{due_text(request.due)}.\n\n{text}".strip(), now, request=request,
                      email=False)
    changed(session, case)
    late = "" if on_time else f", after its target {request.ack_due.isoformat()}"  # type: ignore[union-attr]
    return (f"acknowledgement from {sender} recorded{late}; the request stays open, "
            f"due {request.due.isoformat()}")


def alert_recipients(ctx: Context, session: Session, case: models.Case,
                     merged: list[int] | None = None) -> list[str]:
    """The case's member, and the members whose own cases were merged into it (they agreed
    to follow this one): each only while the sharing rule lets them see it. `merged`: those
    members, when the caller has read them."""
    if merged is None:
        merged = list(session.exec(_MERGED_MEMBERS, params={"case": case.id}))
    ids = [case.member_id, *merged]
    emails = []
    for member_id in dict.fromkeys(ids):
        m = directory.get(session, models.Member, member_id)
        if m and sharing.can_see(session, ctx.settings, case, m.email):
            emails.append(m.email)
    return emails


def note_too_large(ctx: Context, session: Session, case: models.Case,
                   rows: list[models.Attachment], now: datetime) -> None:
    """Say on the case which files were too large to copy out of the message."""
    big = [r for r in rows if not r.stored]
    if big:
        limit = attachments.human_size(ctx.settings.attachments.max_size)
        names = ", ".join(f"{r.name} ({attachments.human_size(r.size)})" for r in big)
        event(session, case, "attachment_too_large", now, raw_message_id=big[0].raw_message_id,
              text=f"Over the {limit} limit, kept only in the original message: {names}.",
              files=[r.name for r in big])
