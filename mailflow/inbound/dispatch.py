"""Decide what one parsed message means: a new case, an update to a case, or the holding pen.

`From` is a claim: only a party to the case (its member, its services' contacts, staff), or
an officer in a trusted domain replying with strong evidence (our Message-ID or a valid
token), may change a case. Everything else waits in the holding pen with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from mailflow import models
from mailflow.app import App
from mailflow.casework import cases, commands, notify
from mailflow.casework.intake import typed_case
from mailflow.casework.routing import route
from mailflow.inbound import classify as cls
from mailflow.inbound import match
from mailflow.inbound.forwards import find_forward
from mailflow.inbound.parse import Parsed
from mailflow.inbound.reply import visible_text

_FWD_PREFIX = re.compile(r"^\s*((fwd?|fw|tr|wg|rv|pd|ymlaen|re|aw|sv)\s*:\s*)+", re.IGNORECASE)


@dataclass
class Outcome:
    disposition: str  # case_opened | update | holding_pen | duplicate_delivery | ignored
    case: str | None = None
    reason: str = ""


def dispatch(app: App, session: Session, raw: models.RawMessage, p: Parsed, now: datetime
             ) -> Outcome:
    s = app.settings
    sender = p.sender or (raw.envelope_from or "").lower() or None
    kind = cls.classify(p, s.is_ours(sender))
    if kind == cls.OWN_MAIL:
        return Outcome("ignored", None, "our own mail came back (loop)")

    found = match.by_message_id(session, p)
    problem = None
    if not found:
        found, problem = match.by_token(session, s, match.recipients(p, raw.envelope_to))
    if not found:
        found = match.by_tag(session, s, p)

    if found:
        return _to_case(app, session, raw, p, sender, kind, found, now)
    if kind != cls.NORMAL:
        return _hold(session, raw, p, sender, now, kind,
                     f"{kind.replace('_', '-')} that matches no case")
    member = s.member_for(sender)
    if member and not problem:
        return _open(app, session, raw, p, member, now)
    if problem:
        return _hold(session, raw, p, sender, now, "unmatched", problem)
    if s.parties(sender) or s.is_trusted(sender):
        return _hold(session, raw, p, sender, now, "unmatched",
                     f"from {sender}, a council address, but it names no case we know")
    return _hold(session, raw, p, sender, now, "unknown_sender",
                 f"unknown sender {sender or '(no From address)'}; it names no case")


def _open(app: App, session: Session, raw: models.RawMessage, p: Parsed,
          member: cases.Member, now: datetime) -> Outcome:
    s = app.settings
    fwd = find_forward(p.msg, is_internal=s.is_internal)
    if fwd:
        o = fwd.original
        subject = o.subject or _FWD_PREFIX.sub("", p.subject)
        new = cases.NewCase(
            member=member, subject=_FWD_PREFIX.sub("", subject).strip(), issue=o.body.strip(),
            member_note=visible_text(fwd.note) if fwd.note.strip() else "",
            constituent_name=o.sender.name if o.sender else None,
            constituent_email=o.sender.address if o.sender else None,
            original_date=o.date,
        )
        how = "a forward" + (" (attached)" if fwd.attached else "")
    else:
        typed = typed_case(p.text)
        new = cases.NewCase(
            member=member, subject=p.subject, issue=typed.text, member_note="",
            constituent_name=typed.name, constituent_email=typed.email,
            constituent_phone=typed.phone, constituent_address=typed.address,
        )
        how = "a case typed by the member"
    r = route(s.services, new.subject, f"{new.issue}\n{new.member_note}")
    new.service, new.route_reason = r.service, r.reason
    new.received_at, new.raw_message_id, new.message_id = raw.received_at, raw.id, p.message_id
    case = cases.open_case(app, session, new, now)
    where = f"sent to {r.service.name}" if r.service else "needs a service (" + r.reason + ")"
    return Outcome("case_opened", case.reference, f"{how} from {member.name}; {where}")


def _to_case(app: App, session: Session, raw: models.RawMessage, p: Parsed, sender: str | None,
             kind: str, found: match.Match, now: datetime) -> Outcome:
    s = app.settings
    case = found.case
    role, request = party_role(session, app, case, sender)
    if role is None and found.evidence in ("in-reply-to", "token") and s.is_trusted(sender):
        role, request = "officer", found.request  # the contact passed it to a colleague
    if role is None:
        why = {"tag": "uses the case tag", "token": "uses a reply address",
               "in-reply-to": "replies to our mail"}[found.evidence]
        return _hold(session, raw, p, sender, now, "stranger",
                     f"{sender or 'an unknown sender'} {why} for {case.reference} but is not "
                     f"a party to that case" + ("" if found.evidence == "tag"
                                                else " and not in a trusted domain"),
                     case_id=case.id)
    request = found.request if found.request is not None and role != "member" else request
    text = visible_text(p.text)
    if kind != cls.NORMAL:
        cases.event(session, case, kind, now, sender=sender, text=text, raw_message_id=raw.id,
                    request_id=request.id if request else None, evidence=found.evidence)
        if kind == cls.BOUNCE:
            notify.staff(session, case, "bounce", f"Mail about {case.reference} bounced "
                         f"({sender}).", now, request=request)
        return Outcome("update", case.reference,
                       f"{kind.replace('_', '-')} recorded on the case; not an answer")
    cmds, _ = commands.parse(text)
    if not cmds and role in ("contact", "officer") and request is not None:
        promised = commands.promised_date(text, app.calendar.today(now))
        if promised:  # "I will reply by 10 December": a holding reply, not the answer
            cmds = [commands.Command("holding", promised.isoformat(), text, implicit=True)]
    if cmds:
        ctx = commands.Context(app, session, case, role, request, sender or "", now, raw.id)
        result = commands.run(ctx, cmds)
        return Outcome("update", case.reference,
                       f"from the {role}, matched by {found.evidence}: {result}")
    if role in ("contact", "officer"):
        cases.record_service_reply(app, session, case, request, sender or "", text, now,
                                   raw_message_id=raw.id, message_id=p.message_id,
                                   evidence=found.evidence)
        return Outcome("update", case.reference,
                       f"reply from {sender} ({role}) matched by {found.evidence}")
    cases.event(session, case, f"{role}_update", now, sender=sender, text=text,
                raw_message_id=raw.id, evidence=found.evidence)
    return Outcome("update", case.reference, f"update from the {role} matched by {found.evidence}")


def party_role(session: Session, app: App, case: models.Case, sender: str | None
               ) -> tuple[str | None, models.Request | None]:
    """The sender's part in this case: member, contact (with their request), staff or None."""
    if not sender:
        return None, None
    s = app.settings
    member_row = session.get(models.Member, case.member_id)
    member = s.member(member_row.email) if member_row else None
    if member and sender in (member.email, *member.aliases):
        return "member", None
    requests = session.exec(select(models.Request).where(models.Request.case_id == case.id)
                            .order_by(models.Request.id)).all()
    for req in requests:
        service_row = session.get(models.Service, req.service_id)
        service = s.service(service_row.name) if service_row else None
        addresses = {req.contact, *(service and [service.contact, *service.contact_aliases] or [])}
        if service and service.escalation:
            addresses.add(service.escalation)
        if sender in addresses:
            return "contact", req
    if s.is_staff(sender):
        return "staff", None
    return None, None


def _hold(session: Session, raw: models.RawMessage, p: Parsed, sender: str | None,
          now: datetime, kind: str, reason: str, case_id: int | None = None) -> Outcome:
    session.add(models.Holding(raw_message_id=raw.id, case_id=case_id, kind=kind, reason=reason,
                               sender=sender, subject=p.subject[:500], created_at=now))
    return Outcome("holding_pen", None, reason)
