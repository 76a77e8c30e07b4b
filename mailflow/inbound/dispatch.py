"""Choose what a message's outcome is (understand.py says what it is) and hand it to the one
casework function for that outcome (casework/filing.py).

The choice is a named chain of rules, tried in order; the first whose condition holds
decides, and its name is recorded (`mailflow ingest --json` and `inspect --json` `rule`).
Dispatch decides nothing of the domain: who may change a case and what a reply means are
casework's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session

from mailflow import models
from mailflow.casework import cases, filing, holding
from mailflow.casework.context import Context
from mailflow.casework.filing import Outcome
from mailflow.casework.intake import typed_case
from mailflow.inbound import classify as cls
from mailflow.inbound.parse import Parsed, clean, line, parse
from mailflow.inbound.reply import visible_text
from mailflow.inbound.understand import Understanding, understand
from mailflow.settings import Member, Settings

SUBJECT_PREFIX = re.compile(r"^\s*((fwd?|fw|tr|wg|rv|pd|ymlaen|re|aw|sv)\s*:\s*)+", re.IGNORECASE)

__all__ = ["RULES", "Outcome", "decide", "dispatch"]


@dataclass
class Delivery:
    """One message on its way through the rules."""

    ctx: Context
    session: Session
    u: Understanding
    msg: filing.Incoming
    now: datetime

    def hold(self, kind: str, reason: str, case: models.Case | None = None) -> Outcome:
        return filing.hold(self.session, self.msg, kind, clean(reason), self.now, case=case)


@dataclass(frozen=True)
class Rule:
    name: str
    when: Callable[[Understanding, Settings], bool]
    act: Callable[[Delivery], Outcome]


def _own_mail(d: Delivery) -> Outcome:
    return Outcome("ignored", None, f"our own mail came back (loop): {d.u.classification.why}")


def _auth_failed(d: Delivery) -> Outcome:
    a = d.u.auth
    return d.hold("auth_failed", f"authentication failed: {a.why} (by {a.by})", d.u.case)


def _bad_from(d: Delivery) -> Outcome:
    return d.hold("bad_from", f"From names no one sender: {d.u.parsed.from_problem}", d.u.case)


def _not_proven(d: Delivery) -> Outcome:
    m = d.u.match
    assert m is not None
    return filing.hold_unproven(d.session, d.msg, m.case, m.evidence, d.now)


def _bounce(d: Delivery) -> Outcome:
    b, m = d.u.bounce, d.u.match
    assert b is not None
    if m is None or m.evidence == "tag":  # a subject tag from a mailer-daemon proves nothing
        return d.hold("bounce", f"bounce that matches no message we sent: {b.summary()}",
                      m.case if m else None)
    return filing.file_bounce(
        d.ctx, d.session, d.msg, m.case, m.request, m.evidence,
        filing.Bounce(b.summary(), b.recipients, b.status, b.permanent, clean(b.diagnostic)),
        d.now)


def _malformed(d: Delivery) -> Outcome:
    return d.hold("malformed", d.u.parsed.refused or "")


def _digest_reply(d: Delivery) -> Outcome:
    """A reply to a digest never opens a case: a robot's is dropped (the spool keeps it and
    the reason); a person's runs the commands that name their case, or waits for staff."""
    u = d.u
    if u.kind != cls.NORMAL:
        return Outcome("ignored", None, f"{u.kind.replace('_', '-')} to a digest "
                       f"({u.digest}; {u.classification.why}): dropped")
    if holding.asks(d.msg.text):  # #file / #open / #dismiss: working the holding pen
        return holding.reply(d.ctx, d.session, d.msg, u.digest or "", d.now,
                             lambda h: held(d.ctx, d.session, h))
    return filing.file_digest_reply(d.ctx, d.session, d.msg, u.digest or "", d.now)


def _matched(d: Delivery) -> Outcome:
    m, u = d.u.match, d.u
    assert m is not None
    automatic = u.kind if u.kind != cls.NORMAL else None
    return filing.file_matched(d.ctx, d.session, d.msg, m.case, m.request, m.evidence, d.now,
                               automatic=automatic, why=u.classification.why,
                               authenticated=u.authenticated, loaded=m.loaded)


def _automatic(d: Delivery) -> Outcome:
    u = d.u
    return d.hold(u.kind, f"{u.kind.replace('_', '-')} that matches no case "
                  f"({u.classification.why})")


def _guess(d: Delivery) -> Outcome:
    g = d.u.guess
    assert g is not None
    return filing.file_guess(d.ctx, d.session, d.msg, g.case, g.why, d.now,
                             authenticated=d.u.authenticated)


def _members_mail(d: Delivery) -> Outcome:
    """A member's message that names no case: a forward, or a case typed by the member."""
    member = d.ctx.settings.member_for(d.u.sender)
    assert member is not None
    new, how = new_case(d.u, member)
    return filing.open_case(d.ctx, d.session, d.msg, new, how, d.now,
                            forwarded=d.u.forward is not None)


def new_case(u: Understanding, member: Member) -> tuple[cases.NewCase, str]:
    """The case a message opens for `member`: a forward's original sender is the constituent;
    the member's own message is a typed case; anyone else's (a message from the holding pen)
    has its sender as the constituent and its text as their words."""
    p, fwd = u.parsed, u.forward
    if fwd:
        o = fwd.original
        subject = o.subject or SUBJECT_PREFIX.sub("", p.subject)
        new = cases.NewCase(
            member=member, subject=line(SUBJECT_PREFIX.sub("", line(subject))),
            issue=clean(o.body.strip()),
            member_note=clean(visible_text(fwd.note)) if fwd.note.strip() else "",
            constituent_name=line(o.sender.name) or None if o.sender else None,
            constituent_email=clean(o.sender.address) if o.sender else None,
            original_date=o.date,
        )
        return new, "a forward" + (" (attached)" if fwd.attached else "")
    if u.sender in (member.email, *member.aliases):
        typed = typed_case(p.text)
        # The constituent's words as typed, labelled lines too: the officer needs the
        # address and phone, and the case keeps them in the member's own layout.
        return cases.NewCase(
            member=member, subject=p.subject, issue=clean(p.text.strip()), member_note="",
            constituent_name=typed.name, constituent_email=typed.email,
            constituent_phone=typed.phone, constituent_address=typed.address,
            route_text=clean(typed.text),
        ), "a case typed by the member"
    return cases.NewCase(
        member=member, subject=line(SUBJECT_PREFIX.sub("", p.subject)),
        issue=clean(u.reply_text), member_note="",
        constituent_name=line(p.sender_name or "") or None, constituent_email=u.sender,
    ), f"a message from {u.sender or 'an unknown sender'}"


def _bad_token(d: Delivery) -> Outcome:
    return d.hold("unmatched", d.u.problem or "")


def _candidates(d: Delivery) -> Outcome:
    u = d.u
    if len(u.candidates) > 1:
        return d.hold("unmatched", f"from {u.sender}; it might belong to {len(u.candidates)} "
                      "open cases")
    c = u.candidates[0]
    return d.hold("unmatched", f"from {u.sender}; {c.case.reference} is a candidate "
                  f"({'; '.join(c.why)}) but not a confident guess from them")


def _council_address(d: Delivery) -> Outcome:
    return d.hold("unmatched",
                  f"from {d.u.sender}, a council address, but it names no case we know")


def _unknown_sender(d: Delivery) -> Outcome:
    return d.hold("unknown_sender",
                  f"unknown sender {d.u.sender or '(no From address)'}; it names no case")


RULES: tuple[Rule, ...] = (
    Rule("malformed", lambda u, s: bool(u.parsed.refused), _malformed),
    Rule("own_mail", lambda u, s: u.kind == cls.OWN_MAIL, _own_mail),
    # Who sent it comes before what it says: a failed authentication or a From that does not
    # name exactly one sender is held whatever token or tag it carries. A delivery report is
    # the exception to the second (`From: MAILER-DAEMON (Mail Delivery System)`): it is
    # matched by the copy of our own mail it returns, never by its From.
    Rule("auth_failed", lambda u, s: u.auth.failed, _auth_failed),
    Rule("bounce", lambda u, s: u.kind == cls.BOUNCE, _bounce),
    Rule("bad_from", lambda u, s: bool(u.parsed.from_problem), _bad_from),
    Rule("digest_reply", lambda u, s: bool(u.digest), _digest_reply),
    # A subject tag names a case but proves nothing (casework/parties.py proven); an automatic
    # message is only recorded, so it may still be filed by its tag.
    Rule("not_proven", lambda u, s: u.match is not None and u.kind == cls.NORMAL
         and not u.proven, _not_proven),
    Rule("matched", lambda u, s: u.match is not None, _matched),
    Rule("automatic", lambda u, s: u.kind != cls.NORMAL, _automatic),
    Rule("guess", lambda u, s: u.guess is not None, _guess),
    Rule("members_mail", lambda u, s: bool(s.member_for(u.sender)) and not u.problem,
         _members_mail),
    Rule("bad_token", lambda u, s: bool(u.problem), _bad_token),
    Rule("candidates", lambda u, s: bool(u.candidates), _candidates),
    Rule("council_address", lambda u, s: bool(s.parties(u.sender) or s.is_trusted(u.sender)),
         _council_address),
    Rule("unknown_sender", lambda u, s: True, _unknown_sender),
)


def decide(u: Understanding, s: Settings) -> Rule:
    """The first rule whose condition holds: the pipeline acts on it, `inspect` shows it."""
    return next(r for r in RULES if r.when(u, s))


def read(ctx: Context, session: Session | None, raw: models.RawMessage, p: Parsed,
         today: date | None = None) -> tuple[Understanding, filing.Incoming]:
    """What a stored message is, and what casework needs of it. Without a session nothing is
    matched: a message from the holding pen, re-read for a person who decided where it goes.
    `today` reads "I will reply by Friday" (without it, the message's own Date)."""
    u = understand(p, ctx.settings, session, envelope_from=raw.envelope_from,
                   envelope_to=raw.envelope_to, today=today)
    msg = filing.Incoming(raw_id=raw.id,  # type: ignore[arg-type]
                          message_id=u.parsed.message_id, sender=u.sender,
                          subject=u.parsed.subject, text=clean(u.reply_text), files=u.files,
                          received_at=raw.received_at,
                          candidates=lambda: [c.as_dict() for c in u.candidates],
                          automatic="" if u.kind == cls.NORMAL else u.kind,
                          why=u.classification.why, reply_kind=u.reply_kind)
    return u, msg


def held(ctx: Context, session: Session, h: models.Holding) -> holding.Held | None:
    """A held message re-read from the spool for a person's decision (casework/holding.py):
    matched against nothing, as the person decides where it goes."""
    raw = session.get(models.RawMessage, h.raw_message_id) if h.raw_message_id else None
    if raw is None:
        return None
    u, msg = read(ctx, None, raw, parse(raw.raw))
    msg.candidates = list(h.candidates or [])
    return holding.Held(msg, u.forward is not None, lambda member: new_case(u, member))


def dispatch(ctx: Context, session: Session, raw: models.RawMessage, p: Parsed,
             now: datetime) -> Outcome:
    u, msg = read(ctx, session, raw, p, ctx.calendar.today(now))
    if u.classification.automatic:  # whatever it causes, no mail goes back to a robot
        ctx = ctx.answering(f"{u.kind.replace('_', '-')} {raw.id}")
    rule = decide(u, ctx.settings)
    outcome = rule.act(Delivery(ctx, session, u, msg, now))
    outcome.rule = rule.name
    return outcome
