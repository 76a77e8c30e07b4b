"""Opening cases, sending requests and recording updates. Takes a session and `now`; never
touches sockets or the wall clock. Every mail it causes goes to the outbox in the caller's
transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from mailflow import models
from mailflow.app import App
from mailflow.casework import directory, tokens
from mailflow.outbound import outbox
from mailflow.outbound.render import new_message_id, render
from mailflow.reports import stats
from mailflow.settings import Member, Service


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


def next_reference(session: Session, prefix: str, year: int) -> str:
    """Claim the next case number of the year in one statement, safe on two nodes."""
    name = f"{prefix}-{year}"
    dialect = session.get_bind().dialect.name
    ins: Any = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(models.Counter)
    stmt = (
        ins.values(name=name, value=1)
        .on_conflict_do_update(index_elements=["name"], set_={"value": models.Counter.value + 1})
        .returning(models.Counter.value)
    )
    number = session.execute(stmt).scalar_one()
    return tokens.format_reference(prefix, year, number)


def constituent_for(session: Session, name: str | None, email: str | None, **extra: Any
                    ) -> models.Constituent:
    """The same person writing again is the same constituent (by address)."""
    row = None
    if email:
        row = session.exec(
            select(models.Constituent).where(models.Constituent.email == email)
        ).first()
    if row is None:
        row = models.Constituent(name=name, email=email)
    row.name = row.name or name
    for k, v in extra.items():
        if v and not getattr(row, k):
            setattr(row, k, v)
    session.add(row)
    session.flush()
    return row


def event(session: Session, case: models.Case, kind: str, at: datetime, *,
          sender: str | None = None, text: str = "", raw_message_id: int | None = None,
          request_id: int | None = None, **data: Any) -> models.Event:
    row = models.Event(case_id=case.id, kind=kind, at=at, sender=sender, text=text,
                       raw_message_id=raw_message_id, request_id=request_id, data=data or None)
    session.add(row)
    return row


def open_case(app: App, session: Session, new: NewCase, now: datetime) -> models.Case:
    s = app.settings
    local_year = app.calendar.local(now).year
    member_row = directory.member_row(session, new.member.email)
    constituent = constituent_for(
        session, new.constituent_name, new.constituent_email,
        phone=new.constituent_phone, address=new.constituent_address,
    )
    case = models.Case(
        reference=next_reference(session, s.council.reference_prefix, local_year),
        status="open" if new.service else "triage",
        member_id=member_row.id,  # type: ignore[arg-type]
        ward_id=member_row.ward_id,
        constituent_id=constituent.id,
        category=new.service.name if new.service else None,
        subject=new.subject,
        issue=new.issue,
        member_note=new.member_note,
        received_at=new.received_at or now,
        opened_at=now,
        source_message_id=new.raw_message_id,
    )
    session.add(case)
    session.flush()
    event(session, case, "opened", now, sender=new.member.email, text=new.member_note,
          raw_message_id=new.raw_message_id,
          constituent={"name": constituent.name, "email": constituent.email},
          original_date=new.original_date.isoformat() if new.original_date else None)

    request = None
    if new.service:
        request = send_request(app, session, case, new.service, now, reason=new.route_reason)
    else:
        session.add(models.Holding(
            case_id=case.id, kind="needs_service", raw_message_id=new.raw_message_id,
            reason=f"needs a service: {new.route_reason}", sender=new.member.email,
            subject=new.subject, created_at=now,
        ))
        event(session, case, "triage", now, text=f"Waiting for staff to choose a service "
              f"({new.route_reason}).")
    acknowledge(app, session, case, new.member, constituent, new.service, request, now,
                in_reply_to=new.message_id)
    changed(app, session, case)
    return case


def changed(app: App, session: Session, case: models.Case) -> None:
    """Keep the anonymised statistics (what reports count) in step with the case. Call it
    after anything that opens, closes or escalates a case or sends or answers a request."""
    stats.record(session, app.calendar, case)


def constituent_line(c: models.Constituent | None) -> str:
    if c is None or not (c.name or c.email):
        return "not known"
    if c.name and c.email:
        return f"{c.name} <{c.email}>"
    return c.name or c.email or ""


def due_text(app: App, due: date) -> str:
    return f"{due:%A} {due.day} {due:%B %Y}"


def _context(app: App, case: models.Case, **kw: Any) -> dict[str, Any]:
    return {"council": app.settings.council, "case": case, **kw}


def _sender(app: App) -> tuple[str, str]:
    c = app.settings.council
    return (f"{c.name} casework", c.casework_address)


def _domain(app: App) -> str:
    return app.settings.council.casework_address.partition("@")[2]


def send_request(app: App, session: Session, case: models.Case, service: Service, now: datetime,
                 *, reason: str = "") -> models.Request:
    s = app.settings
    service_row = directory.service_row(session, service.name)
    due = app.calendar.due(case.received_at, service.response_days)
    request = models.Request(
        case_id=case.id,  # type: ignore[arg-type]
        service_id=service_row.id,  # type: ignore[arg-type]
        contact=service.contact,
        token="",
        sent_at=now,
        due=due,
        due_rule=f"{service.response_days} working days ({s.council.nation}) from "
                 f"{app.calendar.received_day(case.received_at).isoformat()}",
    )
    session.add(request)
    session.flush()
    request.token = tokens.token(s.secret, case.reference, request.id)  # type: ignore[arg-type]
    member = s.member(_member_email(session, case))
    constituent = session.get(models.Constituent, case.constituent_id)
    msg = render(
        app.templates, "request",
        _context(app, case, service=service, member=member, ward=member.ward if member else None,
                 constituent_line=constituent_line(constituent), due_text=due_text(app, due)),
        sender=_sender(app), to=[service.contact], now=now,
        message_id=new_message_id(_domain(app), case.reference),
        reply_to=tokens.reply_address(s.council.casework_address, case.reference, request.token),
    )
    outbox.queue(session, msg, kind="request", now=now, case_id=case.id, request_id=request.id)
    event(session, case, "request_sent", now, text=f"Request sent to {service.name} "
          f"<{service.contact}>, due {due.isoformat()}.", request_id=request.id,
          service=service.name, due=due.isoformat(), rule=request.due_rule, routing=reason)
    changed(app, session, case)
    return request


def _member_email(session: Session, case: models.Case) -> str:
    m = session.get(models.Member, case.member_id)
    assert m is not None
    return m.email


def acknowledge(app: App, session: Session, case: models.Case, member: Member,
                constituent: models.Constituent, service: Service | None,
                request: models.Request | None, now: datetime, in_reply_to: str | None) -> None:
    msg = render(
        app.templates, "acknowledgement",
        _context(app, case, member=member, service=service, request=request,
                 constituent_line=constituent_line(constituent),
                 due_text=due_text(app, request.due) if request else None),
        sender=_sender(app), to=[member.email], now=now,
        message_id=new_message_id(_domain(app), case.reference),
        in_reply_to=in_reply_to, references=[in_reply_to] if in_reply_to else None,
    )
    outbox.queue(session, msg, kind="acknowledgement", now=now, case_id=case.id)
    event(session, case, "acknowledged", now, sender=app.settings.council.casework_address,
          text=f"Acknowledgement sent to {member.email}.")


def record_service_reply(app: App, session: Session, case: models.Case,
                         request: models.Request | None, sender: str, text: str, now: datetime,
                         *, raw_message_id: int | None, message_id: str | None,
                         evidence: str) -> None:
    """A service's answer: the request is answered and the member alerted."""
    service_name = "the service"
    if request is not None:
        service = session.get(models.Service, request.service_id)
        service_name = service.name if service else service_name
        if request.state != "answered":
            request.state = "answered"
            request.answered_at = now
            request.answered_by = sender
            session.add(request)
    event(session, case, "service_reply", now, sender=sender, text=text,
          raw_message_id=raw_message_id, request_id=request.id if request else None,
          evidence=evidence, contact=request.contact if request else None)
    open_requests = session.exec(
        select(models.Request).where(models.Request.case_id == case.id)
        .where(col(models.Request.state) != "answered")
    ).all()
    if not open_requests and case.status in ("open", "triage"):
        case.status = "answered"
        session.add(case)
    member_email = _member_email(session, case)
    replied_by = sender if request is None or sender != request.contact else None
    msg = render(
        app.templates, "alert",
        _context(app, case, service_name=service_name, text=text, replied_by=replied_by),
        sender=_sender(app), to=[member_email], now=now,
        message_id=new_message_id(_domain(app), case.reference),
        in_reply_to=message_id,
    )
    outbox.queue(session, msg, kind="alert", now=now, case_id=case.id,
                 request_id=request.id if request else None)
    event(session, case, "alert", now, text=f"Member alerted ({member_email}).")
    changed(app, session, case)
