"""What the email commands do: one plain function per command, all of one shape.

    handler(app, session, case, actor, arg, now, *, message=None) -> Result

`actor` is the sender's address, `arg` the text after the command word, `message` the id of
the inbound message (RawMessage) that carried it, for the audit trail. Each handler changes
the case, records the change on the timeline (`cases.event`, kind = what changed, `sender` =
the actor) and returns a short confirmation or a refusal saying why. Handlers do not check
who may use them: `run` does, through the one matrix in casework/authz.py; the parser of
`#word args` lines (casework/commands.py) looks a command up in `ACTIONS`, or calls `run`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from dateutil import parser as dateparser
from sqlmodel import Session, col, select

from mailflow import models
from mailflow.app import App
from mailflow.casework import authz, cases, deadlines, names, sharing, tokens
from mailflow.casework.enquiry import TYPES
from mailflow.outbound.render import new_message_id, render


@dataclass
class Result:
    ok: bool
    text: str


def ok(text: str) -> Result:
    return Result(True, text)


def refused(text: str) -> Result:
    return Result(False, text)


class Handler(Protocol):
    def __call__(self, app: App, session: Session, case: models.Case, actor: str, arg: str,
                 now: datetime, *, message: int | None = None) -> Result: ...


def _record(session: Session, case: models.Case, kind: str, actor: str, now: datetime,
            message: int | None, text: str, **data: Any) -> None:
    cases.event(session, case, kind, now, sender=actor, text=text, raw_message_id=message,
                **data)


def _closed(case: models.Case) -> Result | None:
    if case.merged_into_id is not None:
        return refused(f"{case.reference} was merged into another case; write to that one")
    if case.status == "closed":
        return refused(f"{case.reference} is closed; #reopen it first")
    return None


# -- the case's details --------------------------------------------------------------------
def _set(session: Session, case: models.Case, field: str, value: str, actor: str,
         now: datetime, message: int | None) -> Result:
    """One of the case's own fields, with its timeline event and audited change."""
    old = getattr(case, field)
    setattr(case, field, value)
    session.add(case)
    _record(session, case, field, actor, now, message, f"{field.capitalize()} set to {value}.",
            changes={field: [old, value]})
    return ok(f"{field} set to {value}")


def category(app: App, session: Session, case: models.Case, actor: str, arg: str,
             now: datetime, *, message: int | None = None) -> Result:
    choices = [n for s in app.settings.services for n in (s.name, *s.categories)]
    name, why = names.match(arg, choices, "category")
    if name is None:
        return refused(why)
    return _set(session, case, "category", name, actor, now, message)


def service(app: App, session: Session, case: models.Case, actor: str, arg: str,
            now: datetime, *, message: int | None = None) -> Result:
    if (stop := _closed(case)) is not None:
        return stop
    name, why = names.match(arg, [s.name for s in app.settings.services], "service")
    if name is None:
        return refused(why)
    svc = app.settings.service(name)
    assert svc is not None
    row = session.exec(select(models.Service).where(models.Service.name == name)).one()
    waiting = session.exec(
        select(models.Request).where(models.Request.case_id == case.id)
        .where(models.Request.service_id == row.id)
        .where(col(models.Request.state) != "answered")
    ).first()
    if waiting is not None:
        return refused(f"{case.reference} already has a request to {name}, due "
                       f"{waiting.due.isoformat()}")
    request = cases.send_request(app, session, case, svc, now, reason=f"#service from {actor}")
    changes: dict[str, Any] = {}
    if case.status != "open":
        changes["status"] = [case.status, "open"]
        case.status = "open"
    if not case.category:
        changes["category"] = [None, name]
        case.category = name
    session.add(case)
    for h in session.exec(select(models.Holding).where(models.Holding.case_id == case.id)
                          .where(models.Holding.kind == "needs_service")
                          .where(col(models.Holding.resolved_at).is_(None))):
        h.resolved_at = now
        session.add(h)
    _record(session, case, "service_added", actor, now, message,
            f"Request to {name} added.", service=name, request=request.id, changes=changes)
    return ok(f"request sent to {name} <{request.contact}>, due {request.due.isoformat()}")


def enquiry_type(app: App, session: Session, case: models.Case, actor: str, arg: str,
                 now: datetime, *, message: int | None = None) -> Result:
    kind, why = names.match(arg, TYPES, "enquiry type")
    if kind is None:
        return refused(why)
    old, case.enquiry_type = case.enquiry_type, kind
    session.add(case)
    moved = []
    for r in session.exec(select(models.Request).where(models.Request.case_id == case.id)
                          .where(models.Request.state == "sent")):
        svc_row = session.get(models.Service, r.service_id)
        svc = app.settings.service(svc_row.name if svc_row else None)
        if svc is None:
            continue
        days, why = deadlines.target(app.settings, svc.name, case.category, kind)
        extended = r.target_due is not None and r.due != r.target_due  # an agreed new date
        if days != r.target_days and not extended:
            cal = app.calendar
            r.target_days = r.due_days = days
            r.due = r.target_due = cal.due(case.received_at, days)
            r.due_rule = deadlines.rule_text(cal, days, why, case.received_at)
            deadlines.restart_chain(cal, app.settings.chasing, r, cal.today(now))
            session.add(r)
            moved.append(f"{svc.name} now due {r.due.isoformat()}")
    _record(session, case, "enquiry_type", actor, now, message, f"Enquiry type set to {kind}.",
            changes={"enquiry_type": [old, kind]}, requests=moved)
    return ok(f"enquiry type set to {kind}" + (f" ({'; '.join(moved)})" if moved else ""))


def priority(app: App, session: Session, case: models.Case, actor: str, arg: str,
             now: datetime, *, message: int | None = None) -> Result:
    level, why = names.match(arg, ("high", "normal"), "priority")
    if level is None:
        return refused(why)
    return _set(session, case, "priority", level, actor, now, message)


def _sharing_now(session: Session, case: models.Case) -> str:
    share = sharing.effective_share(case)
    if share == "private":
        if case.share != "private":
            return (f"sharing with the {case.share} takes effect once the constituent's "
                    "consent is recorded (#consent yes)")
        return "the case is private: only you and member services see it"
    if share == "ward":
        return "ward colleagues can now see the case"
    owner = session.get(models.Member, case.member_id)
    return f"ward colleagues of your party ({owner.party if owner else '?'}) can now see the case"


def share(app: App, session: Session, case: models.Case, actor: str, arg: str,
          now: datetime, *, message: int | None = None) -> Result:
    how, why = names.match(arg, sharing.SHARES, "sharing")
    if how is None:
        return refused(why)
    owner = session.get(models.Member, case.member_id)
    if how == "party" and not (owner and owner.party):
        return refused("you have no party in the council directory, so #share party cannot "
                       "work; ask member services, or use #share ward")
    old, case.share = case.share, how
    session.add(case)
    _record(session, case, "share", actor, now, message, f"Sharing set to {how}.",
            changes={"share": [old, how]}, effective=sharing.effective_share(case))
    return ok(f"sharing set to {how}: {_sharing_now(session, case)}")


def consent(app: App, session: Session, case: models.Case, actor: str, arg: str,
            now: datetime, *, message: int | None = None) -> Result:
    answer, why = names.match(arg, ("yes", "no"), "answer")
    if answer is None:
        return refused(why + " (#consent yes or #consent no)")
    old, case.consent = case.consent, answer == "yes"
    session.add(case)
    _record(session, case, "consent", actor, now, message,
            f"Constituent's consent to sharing recorded: {answer}.",
            changes={"consent": [old, case.consent]}, effective=sharing.effective_share(case))
    return ok(f"consent recorded: {answer}; {_sharing_now(session, case)}")


def note(app: App, session: Session, case: models.Case, actor: str, arg: str,
         now: datetime, *, message: int | None = None) -> Result:
    text = arg.strip()
    if not text:
        return refused("#note needs the text of the note on the same line")
    _record(session, case, "note", actor, now, message, text, private=True)
    return ok("note added (private: it is sent to no one)")


def parse_date(value: str, today: date) -> date | None:
    """`2026-12-18`, `18/12/2026` (UK order), `18 Dec`, `18 December 2026`; a date without a
    year is the next one to come (`18 Jan` said in December means next January)."""
    value = value.strip()
    if not value:
        return None
    try:
        d = dateparser.parse(value, dayfirst=True,
                             default=datetime(today.year, today.month, today.day)).date()
    except (ValueError, OverflowError):
        return None
    if d < today and not re.search(r"\d{4}|\d+[/.-]\d+[/.-]\d+", value):
        d = d.replace(year=d.year + 1)
    return d


def deadline(app: App, session: Session, case: models.Case, actor: str, arg: str,
             now: datetime, *, message: int | None = None) -> Result:
    today = app.calendar.local(now).date()
    if arg.strip().lower() in ("none", "clear", "off"):
        new = None
    else:
        new = parse_date(arg, today)
        if new is None:
            return refused(f"cannot read {arg.strip()!r} as a date; write it like "
                           f"{today:%Y-%m-%d} or {today.day} {today:%B %Y}")
        if new < today:
            return refused(f"{new.isoformat()} is in the past")
    old, case.deadline = case.deadline, new
    session.add(case)
    text = f"Deadline set to {new.isoformat()}." if new else "Deadline cleared."
    _record(session, case, "deadline", actor, now, message, text,
            changes={"deadline": [old.isoformat() if old else None,
                                  new.isoformat() if new else None]})
    return ok(text[0].lower() + text[1:-1])


# -- merging -------------------------------------------------------------------------------
def merge(app: App, session: Session, case: models.Case, actor: str, arg: str,
          now: datetime, *, message: int | None = None) -> Result:
    """`#merge REF`: the two cases are one enquiry. Staff, or a member who owns both, merge at
    once; otherwise it is a proposal to the other case's member, who agrees by sending
    `#merge` naming this case on theirs. The older case is kept; the other is closed as
    merged into it, and its member can still see the kept case."""
    ref = tokens.normalise_reference(arg.split()[0] if arg.split() else "",
                                     app.settings.council.reference_prefix)
    other = ref and session.exec(select(models.Case).where(models.Case.reference == ref)).first()
    if not other:
        return refused(f"no case {arg.strip() or '(no reference given)'}; write #merge "
                       f"{app.settings.council.reference_prefix}-2026-00042")
    if other.id == case.id:
        return refused("a case cannot be merged with itself")
    for c in (case, other):
        if c.merged_into_id is not None or c.status == "closed":
            return refused(f"{c.reference} is closed" + (" (already merged)"
                                                         if c.merged_into_id else ""))
    pending = session.exec(
        select(models.CaseLink).where(models.CaseLink.kind == "merge_proposed")
        .where(models.CaseLink.case_id == other.id).where(models.CaseLink.other_id == case.id)
    ).first()
    if app.settings.is_staff(actor) or other.member_id == case.member_id or pending:
        how = "agreed" if pending and not app.settings.is_staff(actor) else "merged"
        keep, gone = _merge(session, case, other, actor, now, message)
        return ok(f"{gone.reference} merged into {keep.reference}"
                  + (" (both members agreed)" if how == "agreed" else ""))
    mine = session.exec(
        select(models.CaseLink).where(models.CaseLink.kind == "merge_proposed")
        .where(models.CaseLink.case_id == case.id).where(models.CaseLink.other_id == other.id)
    ).first()
    if mine is None:
        session.add(models.CaseLink(case_id=case.id, other_id=other.id,  # type: ignore[arg-type]
                                    kind="merge_proposed", by=actor, created_at=now))
        _record(session, case, "merge_proposed", actor, now, message,
                f"Merge with {other.reference} proposed; waiting for its member.",
                other=other.reference)
        _ask_to_agree(app, session, case, other, now)
    return ok(f"merge with {other.reference} proposed: its member must agree by sending "
              f"#merge {case.reference}")


def _merge(session: Session, a: models.Case, b: models.Case, actor: str, now: datetime,
           message: int | None) -> tuple[models.Case, models.Case]:
    keep, gone = sorted((a, b), key=lambda c: (c.opened_at, c.id or 0))
    old = gone.status
    gone.status, gone.closed_at, gone.merged_into_id = "closed", now, keep.id
    session.add(gone)
    for x, y in ((keep, gone), (gone, keep)):
        session.add(models.CaseLink(case_id=x.id, other_id=y.id, kind="merged", by=actor,  # type: ignore[arg-type]
                                    created_at=now))
    _record(session, gone, "merged", actor, now, message,
            f"Merged into {keep.reference}; this case is closed.", other=keep.reference,
            changes={"status": [old, "closed"], "merged_into": [None, keep.reference]})
    _record(session, keep, "merged", actor, now, message,
            f"{gone.reference} was merged into this case.", other=gone.reference)
    return keep, gone


def _ask_to_agree(app: App, session: Session, case: models.Case, other: models.Case,
                  now: datetime) -> None:
    owner = session.get(models.Member, other.member_id)
    proposer = session.get(models.Member, case.member_id)
    if owner is None:
        return
    c = app.settings.council
    msg = render(app.templates, "merge_proposal",
                 {"council": c, "case": other, "other": case,
                  "proposer": proposer.name if proposer else "A colleague"},
                 sender=(f"{c.name} casework", c.casework_address), to=[owner.email], now=now,
                 message_id=new_message_id(c.casework_address.partition("@")[2],
                                           other.reference))
    cases.queue_mail(app, session, msg, kind="merge_proposal", now=now, case_id=other.id)


# -- the service contact -------------------------------------------------------------------
def redirect(app: App, session: Session, case: models.Case, actor: str, arg: str,
             now: datetime, *, message: int | None = None) -> Result:
    role, request = authz.role_of(session, app, case, actor)
    if role != "contact" or request is None:
        return refused("only the service contact of a request can redirect it")
    new = arg.strip().strip("<>").lower()
    local, _, domain = new.partition("@")
    if not local or "." not in domain or " " in new:
        return refused(f"{arg.strip() or '(nothing)'} is not an email address; write "
                       "#redirect colleague@council.example")
    if not app.settings.is_trusted(new):
        return refused(f"{new} is not a council address (trusted domains: "
                       f"{', '.join(app.settings.council.trusted_domains) or 'none'})")
    if request.state == "answered":
        return refused("your request is already answered")
    if new == request.contact:
        return refused(f"{new} already has this request")
    svc_row = session.get(models.Service, request.service_id)
    svc = app.settings.service(svc_row.name if svc_row else None)
    if svc is None:
        return refused("this request's service is no longer in the council directory")
    old, request.contact = request.contact, new
    session.add(request)
    cases.mail_request(app, session, case, request, svc, now)
    _record(session, case, "redirected", actor, now, message,
            f"Request to {svc.name} redirected from {old} to {new}.", request_id=request.id,
            changes={"contact": [old, new]})
    return ok(f"request passed to {new}; they have been sent it, due {request.due.isoformat()}")


# -- the constituent -----------------------------------------------------------------------
def send_to_constituent(app: App, session: Session, case: models.Case, member_text: str,
                        now: datetime, *, actor: str | None = None,
                        message: int | None = None) -> Result:
    """Relay the service's latest answer to the constituent from the casework address, with
    the member's own text above it. Never sent unless the council and the member allow it."""
    s = app.settings
    owner = session.get(models.Member, case.member_id)
    member = s.member(owner.email) if owner else None
    if member is None:
        return refused("the case's member is no longer in the council directory")
    if not s.casework.constituent_mail:
        return refused("the council does not send mail to constituents "
                       "([casework] constituent_mail is off)")
    if not member.constituent_mail:
        return refused("your settings do not allow mail to constituents; ask member services "
                       "to switch on constituent_mail for you")
    who = session.get(models.Constituent, case.constituent_id) if case.constituent_id else None
    if who is None or not who.email:
        return refused("the case has no email address for the constituent")
    answer = session.exec(select(models.Event).where(models.Event.case_id == case.id)
                          .where(models.Event.kind == "service_reply")
                          .order_by(col(models.Event.at).desc(), col(models.Event.id).desc())
                          ).first()
    if answer is None:
        return refused("no service has answered yet, so there is nothing to send")
    request = session.get(models.Request, answer.request_id) if answer.request_id else None
    svc = session.get(models.Service, request.service_id) if request else None
    service_name = svc.name if svc else "the council"
    msg = render(app.templates, "constituent_update",
                 {"council": s.council, "case": case, "member": member,
                  "member_text": member_text.strip(), "answer": answer.text,
                  "service_name": service_name},
                 sender=(f"{s.council.name} casework", s.council.casework_address),
                 to=[who.email], now=now, reply_to=member.email, automatic=False,
                 message_id=new_message_id(s.council.casework_address.partition("@")[2],
                                           case.reference))
    cases.queue_mail(app, session, msg, kind="constituent_update", now=now, case_id=case.id)
    _record(session, case, "constituent_sent", actor or member.email, now, message,
            member_text.strip(), to=who.email, answer_event=answer.id, service=service_name)
    return ok(f"{service_name}'s answer sent to the constituent ({who.email})")


def send(app: App, session: Session, case: models.Case, actor: str, arg: str,
         now: datetime, *, message: int | None = None) -> Result:
    return send_to_constituent(app, session, case, arg, now, actor=actor, message=message)


def help_(app: App, session: Session, case: models.Case, actor: str, arg: str,
          now: datetime, *, message: int | None = None) -> Result:
    role, _ = authz.role_of(session, app, case, actor)
    return ok(authz.help_text(role))


ACTIONS: dict[str, Callable[..., Result]] = {
    "category": category,
    "service": service,
    "type": enquiry_type,
    "priority": priority,
    "share": share,
    "consent": consent,
    "note": note,
    "deadline": deadline,
    "merge": merge,
    "redirect": redirect,
    "send": send,
    "help": help_,
}


def run(app: App, session: Session, case: models.Case, actor: str, command: str, arg: str,
        now: datetime, *, message: int | None = None,
        registry: dict[str, Callable[..., Result]] | None = None) -> Result:
    """One command from one sender: the matrix decides, then the handler acts."""
    registry = ACTIONS if registry is None else registry
    command = command.lstrip("#").lower()
    role, _ = authz.role_of(session, app, case, actor)
    allowed, why = authz.allowed(role, command)
    if not allowed:
        if command not in authz.BY_NAME and role is not None:
            return refused(f"{why}\n\n{authz.help_text(role)}")
        return refused(why)
    handler = registry.get(command)
    if handler is None:
        return refused(f"#{command} is not available on this server yet")
    return handler(app, session, case, actor.lower(), arg, now, message=message)
