"""Act on what a message means (understand.py): a new case, an update to a case, or the
holding pen.

`From` is a claim: only a party to the case (its member, its services' contacts, staff), or
an officer in a trusted domain replying with strong evidence (our Message-ID or a valid
token), may change a case. A confident guess from anyone else is only attached to the case
for staff to review; it never changes a request. Everything else waits in the holding pen
with the reason and the open cases it might belong to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from mailflow import models
from mailflow.app import App
from mailflow.casework import attachments, cases, commands, notify, sharing
from mailflow.casework.intake import typed_case
from mailflow.casework.routing import route
from mailflow.inbound import classify as cls
from mailflow.inbound.parse import Parsed, clean
from mailflow.inbound.reply import visible_text
from mailflow.inbound.understand import Understanding, understand
from mailflow.outbound import outbox

SUBJECT_PREFIX = re.compile(r"^\s*((fwd?|fw|tr|wg|rv|pd|ymlaen|re|aw|sv)\s*:\s*)+", re.IGNORECASE)


@dataclass
class Outcome:
    disposition: str  # case_opened | update | holding_pen | duplicate_delivery | ignored
    case: str | None = None
    reason: str = ""


def dispatch(app: App, session: Session, raw: models.RawMessage, p: Parsed, now: datetime
             ) -> Outcome:
    u = understand(p, app.settings, session, envelope_from=raw.envelope_from,
                   envelope_to=raw.envelope_to)
    if u.classification.automatic:  # whatever it causes, no mail goes back to a robot
        session.info[outbox.IN_ANSWER_TO] = f"{u.kind.replace('_', '-')} {raw.id}"
    try:
        return _act(app, session, raw, u, now)
    finally:
        session.info.pop(outbox.IN_ANSWER_TO, None)


def _act(app: App, session: Session, raw: models.RawMessage, u: Understanding, now: datetime
         ) -> Outcome:
    s = app.settings
    if u.kind == cls.OWN_MAIL:
        return Outcome("ignored", None, f"our own mail came back (loop): {u.classification.why}")
    if u.kind == cls.BOUNCE:
        return _bounce(session, raw, u, now)
    if u.match:
        return _to_case(app, session, raw, u, now)
    if u.kind != cls.NORMAL:
        return _hold(session, raw, u, now, u.kind, f"{u.kind.replace('_', '-')} that matches no "
                     f"case ({u.classification.why})")
    if u.guess:
        return _guessed(app, session, raw, u, now)
    member = s.member_for(u.sender)
    if member and not u.problem:
        return _open(app, session, raw, u, member, now)
    if u.problem:
        return _hold(session, raw, u, now, "unmatched", u.problem)
    if len(u.candidates) > 1:
        return _hold(session, raw, u, now, "unmatched",
                     f"from {u.sender}; it might belong to {len(u.candidates)} open cases")
    if u.candidates:
        return _hold(session, raw, u, now, "unmatched",
                     f"from {u.sender}; {u.candidates[0].case.reference} is a candidate "
                     f"({'; '.join(u.candidates[0].why)}) but not a confident guess from them")
    if s.parties(u.sender) or s.is_trusted(u.sender):
        return _hold(session, raw, u, now, "unmatched",
                     f"from {u.sender}, a council address, but it names no case we know")
    return _hold(session, raw, u, now, "unknown_sender",
                 f"unknown sender {u.sender or '(no From address)'}; it names no case")


def _open(app: App, session: Session, raw: models.RawMessage, u: Understanding,
          member: cases.Member, now: datetime) -> Outcome:
    s, p, fwd = app.settings, u.parsed, u.forward
    if fwd:
        o = fwd.original
        subject = o.subject or SUBJECT_PREFIX.sub("", p.subject)
        new = cases.NewCase(
            member=member, subject=clean(SUBJECT_PREFIX.sub("", subject).strip()),
            issue=clean(o.body.strip()),
            member_note=clean(visible_text(fwd.note)) if fwd.note.strip() else "",
            constituent_name=clean(o.sender.name) if o.sender and o.sender.name else None,
            constituent_email=clean(o.sender.address) if o.sender else None,
            original_date=o.date,
        )
        how = "a forward" + (" (attached)" if fwd.attached else "")
    else:
        typed = typed_case(p.text)
        new = cases.NewCase(
            member=member, subject=p.subject, issue=clean(typed.text), member_note="",
            constituent_name=typed.name, constituent_email=typed.email,
            constituent_phone=typed.phone, constituent_address=typed.address,
        )
        how = "a case typed by the member"
    r = route(s.services, new.subject, f"{new.issue}\n{new.member_note}")
    new.service, new.route_reason = r.service, r.reason
    new.received_at, new.raw_message_id, new.message_id = raw.received_at, raw.id, p.message_id
    new.files = u.files
    # Commands at the top of the member's own text steer the new case once it is open.
    cmds, _ = commands.parse(new.member_note if fwd else new.issue)
    if cmds:
        if fwd:
            new.member_note = commands.strip(new.member_note)
        else:
            new.issue = commands.strip(new.issue)
    case = cases.open_case(app, session, new, now)
    where = f"sent to {r.service.name}" if r.service else "needs a service (" + r.reason + ")"
    if cmds:
        ctx = commands.Context(app, session, case, "member", None, u.sender or member.email,
                               now, raw.id, p.message_id)
        where += f"; {commands.run(ctx, cmds)}"
    return Outcome("case_opened", case.reference, f"{how} from {member.name}; {where}")


def _to_case(app: App, session: Session, raw: models.RawMessage, u: Understanding,
             now: datetime) -> Outcome:
    assert u.match is not None
    s, case, evidence = app.settings, u.match.case, u.match.evidence
    role, request = u.role, u.request
    if role is None and evidence in ("in-reply-to", "token") and s.is_trusted(u.sender):
        role, request = "officer", u.match.request  # the contact passed it to a colleague
    if role is None and u.sender and sharing.can_see(session, s, case, u.sender) \
            and s.member_for(u.sender):
        role = "colleague"  # a ward colleague the case is shared with: #note only
    if role is None:
        why = {"tag": "uses the case tag", "token": "uses a reply address",
               "in-reply-to": "replies to our mail"}[evidence]
        return _hold(session, raw, u, now, "stranger",
                     f"{u.sender or 'an unknown sender'} {why} for {case.reference} but is not "
                     f"a party to that case" + ("" if evidence == "tag"
                                                else " and not in a trusted domain"),
                     case_id=case.id)
    if u.match.request is not None and role != "member":
        request = u.match.request
    if u.kind != cls.NORMAL:
        cases.event(session, case, u.kind, now, sender=u.sender, text=clean(u.reply_text),
                    raw_message_id=raw.id, request_id=request.id if request else None,
                    evidence=evidence, why=u.classification.why)
        return Outcome("update", case.reference,
                       f"{u.kind.replace('_', '-')} recorded on the case; not an answer "
                       f"({u.classification.why})")
    return _update(app, session, raw, u, case, role, request, evidence, now)


def _update(app: App, session: Session, raw: models.RawMessage, u: Understanding,
            case: models.Case, role: str, request: models.Request | None, evidence: str,
            now: datetime, **data: object) -> Outcome:
    """A party's message filed on its case: a service's answer, or a member's or staff note."""
    text = clean(u.reply_text)
    _attach(app, session, raw, u, case, now)
    how = f"matched by {evidence}" + (f" ({'; '.join(u.guess.why)})" if u.guess else "")
    cmds, _ = commands.parse(text)
    send = commands.find_send(text) if not cmds and role == "member" else None
    if send:
        cmds = [send]
    if not cmds and role in ("contact", "officer") and request is not None:
        promised = commands.promised_date(text, app.calendar.today(now))
        if promised:  # "I will reply by 10 December": a holding reply, not the answer
            cmds = [commands.Command("holding", promised.isoformat(), text, implicit=True)]
    if cmds:
        ctx = commands.Context(app, session, case, role, request, u.sender or "", now, raw.id,
                               u.parsed.message_id)
        result = commands.run(ctx, cmds)
        return Outcome("update", case.reference, f"from the {role}, {how}: {result}")
    if role == "colleague":
        return _hold(session, raw, u, now, "stranger",
                     f"{u.sender} may see {case.reference} (shared) but only use #note on it",
                     case_id=case.id)
    if role in ("contact", "officer"):
        cases.record_service_reply(app, session, case, request, u.sender or "", text, now,
                                   raw_message_id=raw.id, message_id=u.parsed.message_id,
                                   evidence=evidence, **data)
        return Outcome("update", case.reference, f"reply from {u.sender} ({role}) {how}")
    cases.event(session, case, f"{role}_update", now, sender=u.sender, text=text,
                raw_message_id=raw.id, evidence=evidence, **data)
    return Outcome("update", case.reference, f"update from the {role} {how}")


def _guessed(app: App, session: Session, raw: models.RawMessage, u: Understanding,
             now: datetime) -> Outcome:
    """One confident guess. A party's message is filed as usual, recorded as a guess; anyone
    else's is only attached to the case for staff to review: no request changes, no mail."""
    assert u.guess is not None
    case, why = u.guess.case, "; ".join(u.guess.why)
    if u.role:
        return _update(app, session, raw, u, case, u.role, u.request, "guess", now,
                       guess=u.guess.why)
    constituent = session.get(models.Constituent, case.constituent_id) \
        if case.constituent_id else None
    kind = "constituent_update" if constituent and constituent.email == u.sender \
        else "unverified_update"
    _attach(app, session, raw, u, case, now)
    cases.event(session, case, kind, now, sender=u.sender, text=clean(u.reply_text),
                raw_message_id=raw.id, evidence="guess", guess=u.guess.why, review=True)
    return Outcome("update", case.reference,
                   f"filed on {case.reference} as a guess ({why}); {u.sender or 'the sender'} is "
                   f"not a party, so it is attached for staff to review and changes no request")


def _bounce(session: Session, raw: models.RawMessage, u: Understanding, now: datetime
            ) -> Outcome:
    """A bounce of our mail is recorded on its case and put in front of staff; a permanent
    failure of a request marks it undeliverable. A bounce is never an answer."""
    b, m = u.bounce, u.match
    assert b is not None
    if m is None or m.evidence == "tag":  # a subject tag from a mailer-daemon proves nothing
        return _hold(session, raw, u, now, "bounce",
                     f"bounce that matches no message we sent: {b.summary()}",
                     case_id=m.case.id if m else None)
    case, request = m.case, m.request
    notify.staff(session, case, "bounce", f"Mail about {case.reference} bounced ({u.sender}).",
                 now, request=request)
    cases.event(session, case, "bounce", now, sender=u.sender, text=b.summary(),
                raw_message_id=raw.id, request_id=request.id if request else None,
                evidence=m.evidence, recipients=b.recipients, status=b.status,
                permanent=b.permanent, diagnostic=b.diagnostic[:300])
    if not b.permanent:
        return Outcome("update", case.reference, f"bounce recorded on the case: {b.summary()}")
    what = "mail"
    if request is not None:
        what = f"the request to {request.contact}"
        if request.state == "sent" and (not b.recipients or request.contact in b.recipients):
            request.state = "undeliverable"
            session.add(request)
            what += " (now undeliverable)"
    reason = f"{what} for {case.reference} bounced: {b.summary()}"
    _hold(session, raw, u, now, "bounce", reason, case_id=case.id)
    return Outcome("holding_pen", case.reference, reason)


def _attach(app: App, session: Session, raw: models.RawMessage, u: Understanding,
            case: models.Case, now: datetime) -> None:
    rows = attachments.store(session, u.files, case_id=case.id,  # type: ignore[arg-type]
                             raw_message_id=raw.id, now=now,
                             max_size=app.settings.attachments.max_size)
    cases.note_too_large(app, session, case, rows, now)


def _hold(session: Session, raw: models.RawMessage, u: Understanding, now: datetime, kind: str,
          reason: str, case_id: int | None = None) -> Outcome:
    session.add(models.Holding(raw_message_id=raw.id, case_id=case_id, kind=kind,
                               reason=clean(reason)[:1000], sender=u.sender,
                               subject=u.parsed.subject[:500],
                               candidates=[c.as_dict() for c in u.candidates] or None,
                               created_at=now))
    return Outcome("holding_pen", None, reason)
