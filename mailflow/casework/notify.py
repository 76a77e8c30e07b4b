"""Telling people: every notice to a member (or to staff) is stored as a notification that
their digest carries later, and members who want updates at once also get an email now.
Notices to a service go out at once, threaded on the request and with its signed reply address.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from mailflow import models
from mailflow.casework import directory
from mailflow.casework.context import Context
from mailflow.outbound import mail

EXCERPT = 500  # characters of a reply an alert or a digest line carries


def excerpt(text: str, reference: str) -> str:
    """What an alert or a digest carries of a service's reply: its visible text, the first
    500 characters, then where the whole of it is. "Reply from Waste: Hi," told nobody
    anything."""
    text = text.strip()
    cut = text[:EXCERPT].rstrip() + (" [...]" if len(text) > EXCERPT else "")
    return f"{cut}\n(All of it, and the case: mailflow case {reference})"


def shown(text: str, reference: str) -> str:
    """A notice as mail shows it: its first line whole, what follows (a reply's text, a
    holding reply's reason) as an excerpt."""
    head, _, rest = text.strip().partition("\n")
    return f"{head}\n\n{excerpt(rest, reference)}" if rest.strip() else head


def member_of(session: Session, case: models.Case) -> models.Member:
    m = directory.get(session, models.Member, case.member_id)
    assert m is not None
    return m


def member(ctx: Context, session: Session, case: models.Case, kind: str, text: str,
           now: datetime, *, request: models.Request | None = None, email: bool = True,
           urgent: bool = False, headline: str = "", template: str = "update",
           **context: Any) -> models.Notification:
    """A notice for the case's member: always in their digest; by email now when `urgent` (it
    needs their answer) or when it is an update and they asked for updates at once."""
    row = models.new_row(models.Notification, **member_values(
        ctx, session, case, kind, text, now, request=request, email=email, urgent=urgent,
        headline=headline, template=template, **context))
    session.add(row)
    return row


def member_values(ctx: Context, session: Session, case: models.Case, kind: str, text: str,
                  now: datetime, *, request: models.Request | None = None, email: bool = True,
                  urgent: bool = False, headline: str = "", template: str = "update",
                  **context: Any) -> dict[str, Any]:
    """`member`, with the notification's columns returned instead of added (the chase job
    inserts a batch's notices in one statement); the email, if any, is queued as usual."""
    m = member_of(session, case)
    prefs = ctx.settings.member(m.email)
    if urgent or (email and (prefs is None or prefs.immediate_updates)):
        mail.send(ctx, session, template,
                  {"member": m, "kind": kind, "headline": headline or text.splitlines()[0],
                   "text": shown(text, case.reference), **context},
                  to=[m.email], now=now, case=case, request=request)
    return {"audience": "member", "recipient": m.email, "case_id": case.id,
            "request_id": request.id if request else None, "kind": kind, "text": text,
            "created_at": now, "digest_id": None}


def staff(session: Session, case: models.Case | None, kind: str, text: str, now: datetime,
          *, request: models.Request | None = None) -> None:
    """A notice for the staff digest."""
    session.add(models.new_row(models.Notification,
                               **staff_values(case, kind, text, now, request=request)))


def staff_values(case: models.Case | None, kind: str, text: str, now: datetime, *,
                 request: models.Request | None = None) -> dict[str, Any]:
    return {"audience": "staff", "recipient": "staff", "case_id": case.id if case else None,
            "request_id": request.id if request else None, "kind": kind, "text": text,
            "created_at": now, "digest_id": None}


def service(ctx: Context, session: Session, case: models.Case, request: models.Request,
            template: str, now: datetime, *, to: list[str], cc: list[str] | None = None,
            kind: str | None = None, **context: Any) -> None:
    """Mail to a service about one request: threaded, and a reply to it finds the request."""
    mail.send(ctx, session, template,
              {"request": request,
               "service": directory.get(session, models.Service, request.service_id),
               "member": member_of(session, case), **context},
              to=to, cc=cc, now=now, kind=kind, case=case, request=request, signed=True,
              thread=True)


def date_text(d: Any) -> str:
    return f"{d:%A} {d.day} {d:%B %Y}"
