"""Telling people: every notice to a member (or to staff) is stored as a notification that
their digest carries later, and members who want updates at once also get an email now.
Notices to a service go out at once, threaded on the request and with its signed reply address.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from mailflow import models
from mailflow.app import App
from mailflow.casework import tokens
from mailflow.outbound import outbox
from mailflow.outbound.render import new_message_id, render


def sender(app: App) -> tuple[str, str]:
    c = app.settings.council
    return (f"{c.name} casework", c.casework_address)


def domain(app: App) -> str:
    return app.settings.council.casework_address.partition("@")[2]


def member_of(session: Session, case: models.Case) -> models.Member:
    m = session.get(models.Member, case.member_id)
    assert m is not None
    return m


def member(app: App, session: Session, case: models.Case, kind: str, text: str, now: datetime,
           *, request: models.Request | None = None, email: bool = True, urgent: bool = False,
           headline: str = "", template: str = "update", **context: Any) -> models.Notification:
    """A notice for the case's member: always in their digest; by email now when `urgent` (it
    needs their answer) or when it is an update and they asked for updates at once."""
    m = member_of(session, case)
    row = models.Notification(audience="member", recipient=m.email, case_id=case.id,
                              request_id=request.id if request else None, kind=kind,
                              text=text, created_at=now)
    session.add(row)
    prefs = app.settings.member(m.email)
    if urgent or (email and (prefs is None or prefs.immediate_updates)):
        msg = render(
            app.templates, template,
            {"council": app.settings.council, "case": case, "member": m, "kind": kind,
             "headline": headline or text.splitlines()[0], "text": text, **context},
            sender=sender(app), to=[m.email], now=now,
            message_id=new_message_id(domain(app), case.reference),
        )
        outbox.queue(session, msg, kind=template, now=now, case_id=case.id,
                     request_id=request.id if request else None)
    return row


def staff(session: Session, case: models.Case | None, kind: str, text: str, now: datetime,
          *, request: models.Request | None = None) -> None:
    """A notice for the staff digest."""
    session.add(models.Notification(audience="staff", recipient="staff",
                                    case_id=case.id if case else None,
                                    request_id=request.id if request else None, kind=kind,
                                    text=text, created_at=now))


def request_message_id(session: Session, request: models.Request) -> str | None:
    """Our first mail to the service about this request, to thread what follows under it."""
    return session.exec(
        select(models.Outbox.message_id).where(models.Outbox.request_id == request.id)
        .where(models.Outbox.kind == "request").order_by(col(models.Outbox.id))
    ).first()


def service(app: App, session: Session, case: models.Case, request: models.Request,
            template: str, now: datetime, *, to: list[str], cc: list[str] | None = None,
            kind: str | None = None, **context: Any) -> None:
    """Mail to a service about one request: threaded, and a reply to it finds the request."""
    service_row = session.get(models.Service, request.service_id)
    m = member_of(session, case)
    thread = request_message_id(session, request)
    msg = render(
        app.templates, template,
        {"council": app.settings.council, "case": case, "request": request,
         "service": service_row, "member": m, **context},
        sender=sender(app), to=to, cc=cc, now=now,
        message_id=new_message_id(domain(app), case.reference),
        reply_to=tokens.reply_address(app.settings.council.casework_address, case.reference,
                                      request.token),
        in_reply_to=thread, references=[thread] if thread else None,
    )
    outbox.queue(session, msg, kind=kind or template, now=now, case_id=case.id,
                 request_id=request.id)


def date_text(d: Any) -> str:
    return f"{d:%A} {d.day} {d:%B %Y}"
