"""What an inbound message does to casework: one function per outcome (open a case, file an
update, file an automatic message, file a bounce, file a guess, hold). inbound/dispatch.py
reads the message and chooses the outcome; the domain's decisions (who may change the case,
what a reply means, when a request is undeliverable) are made here.

`From` is a claim: only a party to the case (casework/parties.py) with proof (our Message-ID
or a valid token, or an authenticated sender), or an officer in a trusted domain replying
with proof of receipt, may change a case. A subject tag or a guess is no proof. Anyone
else's mail waits in the holding pen with the reason and the cases it might belong to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from mailflow import models, tokens
from mailflow.casework import (
    actions,
    cases,
    commands,
    dates,
    endterm,
    followups,
    notify,
    parties,
    recovery,
)
from mailflow.casework.attachments import File, store
from mailflow.casework.commands import Call
from mailflow.casework.context import Context
from mailflow.casework.routing import Route, route
from mailflow.settings import Service


@dataclass
class Outcome:
    disposition: str  # case_opened | update | holding_pen | duplicate_delivery | ignored
    case: str | None = None
    reason: str = ""
    rule: str = ""  # the dispatch rule that decided (inbound/dispatch.py RULES)


@dataclass
class Incoming:
    """What casework needs of one inbound message; inbound/ reads it from the MIME."""

    raw_id: int
    message_id: str | None
    sender: str | None
    subject: str
    text: str  # the visible text: quoted history and signature folded away
    received_at: datetime | None = None
    files: list[File] = field(default_factory=list)
    # {case, why}; or what finds them, asked only when the message is held (`candidates`)
    candidates: list[dict[str, Any]] | Callable[[], list[dict[str, Any]]] = field(
        default_factory=list)
    automatic: str = ""  # auto_reply | bounce | own_mail: recorded, never obeyed
    why: str = ""  # the evidence that it is automatic
    # answer | holding | acknowledgement | automatic (inbound/replykind.py); None: no reply
    # to a request
    reply_kind: str | None = None


@dataclass
class Bounce:
    summary: str
    recipients: list[str]
    status: str | None
    permanent: bool
    diagnostic: str


def hold(session: Session, msg: Incoming, kind: str, reason: str, now: datetime, *,
         case: models.Case | None = None) -> Outcome:
    """The holding pen: kept, with the reason and the candidates, for staff."""
    session.add(models.Holding(raw_message_id=msg.raw_id, case_id=case.id if case else None,
                               kind=kind, reason=reason[:1000], sender=msg.sender,
                               subject=msg.subject[:500], candidates=candidates(msg) or None,
                               created_at=now))
    return Outcome("holding_pen", None, reason)


def candidates(msg: Incoming) -> list[dict[str, Any]]:
    """The cases a message might belong to, found now if they were left to be found."""
    if callable(msg.candidates):
        msg.candidates = msg.candidates()
    return msg.candidates


def open_case(ctx: Context, session: Session, msg: Incoming, new: cases.NewCase, how: str,
              now: datetime, *, forwarded: bool, service: Service | None = None,
              obey: bool = True) -> Outcome:
    """A member's forward or typed case: routed, opened, and steered by the commands at the
    top of the member's own text (their note above a forward, or what they typed).
    `service`: a person chose it (routing is skipped); `obey`: false when the text is not
    the member's own (a held message a person opened a case from), so no `#` line in it runs."""
    if msg.automatic:  # dispatch never sends one here; a robot opens nothing all the same
        return hold(session, msg, msg.automatic, f"{msg.automatic} opens no case ({msg.why})",
                    now)
    term = endterm.ended(session, new.member.email, ctx.calendar.local(now).date())
    if term is not None:
        return hold(session, msg, "end_of_term", f"{how} from {new.member.name}, whose term "
                    f"ended on {term.on}: no new case opens for them"
                    + (f" (successor: {term.successor})" if term.successor else ""), now)
    own = new.member_note if forwarded else new.issue
    cmds, _ = commands.parse(own) if obey else ([], "")
    if cmds:
        if forwarded:
            new.member_note = commands.strip(new.member_note)
        else:
            new.issue = commands.strip(new.issue)
            if new.route_text is not None:
                new.route_text = commands.strip(new.route_text)
    if not (new.issue.strip() or new.member_note.strip() or msg.files):
        return hold(session, msg, "empty", f"{how} from {new.member.name} with no text and no "
                    "files: an empty message opens no case", now)
    words = new.issue if new.route_text is None else new.route_text
    r = Route(service, {}, "chosen by a person") if service else \
        route(ctx.settings.services, new.subject, words, new.member_note)
    new.service, new.route_reason = r.service, r.reason
    new.raw_message_id, new.message_id, new.files = msg.raw_id, msg.message_id, msg.files
    new.received_at = msg.received_at
    case = cases.open_case(ctx, session, new, now)
    where = f"sent to {r.service.name}" if r.service else "needs a service (" + r.reason + ")"
    if cmds:
        call = Call(ctx, session, case, "member", None, msg.sender or new.member.email, now,
                    msg.raw_id, msg.message_id)
        where += f"; {actions.run(call, cmds)}"
    return Outcome("case_opened", case.reference, f"{how} from {new.member.name}; {where}")


def hold_unproven(session: Session, msg: Incoming, case: models.Case, evidence: str,
                  now: datetime) -> Outcome:
    """A message that names a case but proves nothing of its sender: staff decide."""
    if not any(c.get("case") == case.reference for c in candidates(msg)):
        candidates(msg).insert(0, {"case": case.reference,
                                  "why": [f"{evidence}: names {case.reference}"]})
    how = {"tag": "only by its subject tag", "guess": "only by a guess"}.get(evidence, evidence)
    return hold(session, msg, "not_proven",
                f"sender not proven: {msg.sender or 'an unknown sender'} names "
                f"{case.reference} {how}, with no reply to our mail, no signed reply address "
                "and no authenticated sender", now, case=case)


def file_matched(ctx: Context, session: Session, msg: Incoming, case: models.Case,
                 request: models.Request | None, evidence: str, now: datetime, *,
                 automatic: str | None = None, why: str = "",
                 authenticated: bool = False, loaded: parties.Loaded | None = None
                 ) -> Outcome:
    """A message that names its case (our Message-ID, a token or the subject tag). Without
    proof (parties.proven) it changes nothing: an automatic one is only recorded, anything
    else is held. `loaded`: what the match read of the case with it."""
    if not automatic and not parties.proven(evidence, authenticated):
        return hold_unproven(session, msg, case, evidence, now)
    role, own = parties.role_of(session, ctx.settings, case, msg.sender, evidence=evidence,
                                request=request,
                                requests=loaded.requests if loaded else None)
    if role in (None, "constituent"):
        how = {"tag": "uses the case tag", "token": "uses a reply address",
               "in-reply-to": "replies to our mail"}[evidence]
        return hold(session, msg, "stranger",
                    f"{msg.sender or 'an unknown sender'} {how} for {case.reference} but is "
                    "not a party to that case" + ("" if evidence == "tag"
                                                  else " and not in a trusted domain"),
                    now, case=case)
    if request is None or role == "member":
        request = own
    if automatic or msg.automatic:
        return _automatic(ctx, session, msg, case, request, evidence, now,
                          automatic or msg.automatic, why or msg.why)
    return _update(ctx, session, msg, case, role, request, evidence, now, loaded=loaded)


def _automatic(ctx: Context, session: Session, msg: Incoming, case: models.Case,
               request: models.Request | None, evidence: str, now: datetime, kind: str,
               why: str) -> Outcome:
    """An out-of-office or auto-acknowledgement on its case: recorded, and nothing more. Its
    "I will respond by 10 December" is no holding reply, its `#` lines are no commands. A
    CRM's acknowledgement known only by its words (no auto-reply header) acknowledges the
    request all the same (cases.record_acknowledgement); it tells no one by mail now."""
    if msg.reply_kind == "acknowledgement" and request is not None:
        done = cases.record_acknowledgement(ctx, session, case, request, msg.sender or "",
                                            msg.text, now, raw_message_id=msg.raw_id,
                                            how="automatic")
        return Outcome("update", case.reference, f"{kind.replace('_', '-')} that acknowledges "
                       f"({why}): {done}")
    cases.event(session, case, kind, now, sender=msg.sender, text=msg.text,
                raw_message_id=msg.raw_id, request_id=request.id if request else None,
                evidence=evidence, why=why)
    return Outcome("update", case.reference, f"{kind.replace('_', '-')} recorded on "
                   f"the case; not an answer ({why})")


def file_digest_reply(ctx: Context, session: Session, msg: Incoming, evidence: str,
                      now: datetime) -> Outcome:
    """A person's reply to a digest. A digest is about many cases, so a command there names
    its case first (`#close CW-2026-00042`, `#note CW-2026-00042 text`) and runs on it with
    the sender's role there; anything else waits for staff. It never opens a case."""
    cmds, _ = commands.parse(msg.text)
    who = msg.sender or "an unknown sender"
    if not cmds:
        return hold(session, msg, "digest_reply", f"reply to digest from {who} ({evidence}); "
                    "it has no commands naming a case (#close CW-2026-00042)", now)
    prefix = ctx.settings.council.reference_prefix
    plan: list[tuple[models.Case, commands.Command]] = []
    for cmd in cmds:
        first, _, rest = cmd.args.partition(" ")
        reference = tokens.normalise_reference(first, prefix) if first else None
        case = session.exec(select(models.Case).where(models.Case.reference == reference)
                            ).first() if reference else None
        if case is None:
            return hold(session, msg, "digest_reply", f"reply to digest from {who} "
                        f"({evidence}); #{cmd.name} names no case we know: in a reply to a "
                        f"digest each command names its case first (#{cmd.name} "
                        f"{prefix}-2026-00042)", now)
        cmd.args = rest.strip()
        plan.append((case, cmd))
    calls: dict[int, tuple[Call, list[commands.Command]]] = {}
    for case, cmd in plan:
        if case.id not in calls:
            role, request = parties.role_of(session, ctx.settings, case, msg.sender)
            if role in (None, "constituent"):
                return hold(session, msg, "digest_reply", f"reply to digest from {who} "
                            f"({evidence}); {who} is not a party to {case.reference}", now,
                            case=case)
            calls[case.id] = (Call(ctx, session, case, role, request,  # type: ignore[index]
                                   msg.sender or "", now, msg.raw_id, msg.message_id), [])
        calls[case.id][1].append(cmd)  # type: ignore[index]
    done = [f"{call.case.reference}: {actions.run(call, cmds)}" for call, cmds in calls.values()]
    return Outcome("update", plan[0][0].reference,
                   f"commands from the {next(iter(calls.values()))[0].role} in a reply to a "
                   f"digest ({evidence}): " + "; ".join(done))


def file_guess(ctx: Context, session: Session, msg: Incoming, case: models.Case,
               why: list[str], now: datetime, *, authenticated: bool = False) -> Outcome:
    """One confident guess: filed only for a party of the case or its constituent; a
    stranger's mail is held. A guess proves nothing, so only an authenticated party's
    message acts (answers, runs commands); any other is attached for staff to review, marked
    `verified: false`: no request changes, no mail."""
    role, request = parties.role_of(session, ctx.settings, case, msg.sender)
    if role not in (*parties.PARTIES, "constituent"):
        return hold(session, msg, "stranger",
                    f"{msg.sender or 'an unknown sender'} might write about {case.reference} "
                    f"({'; '.join(why)}) but is not a party to it", now, case=case)
    if role != "constituent" and authenticated:
        return _update(ctx, session, msg, case, role, request, "guess", now, guess=why,
                       verified=True)
    _attach(ctx, session, msg, case, now)
    cases.event(session, case, f"{role}_update", now, sender=msg.sender, text=msg.text,
                raw_message_id=msg.raw_id, evidence="guess", guess=why, review=True,
                verified=authenticated)
    who = "its constituent" if role == "constituent" else f"the {role}, not proven,"
    # Marked for staff to review, so staff must hear of it: the staff digest carries it.
    notify.staff(session, case, "review", f"From {msg.sender or 'an unknown sender'} "
                 f"({who.removesuffix(',')}), filed as a guess ({'; '.join(why)}):\n{msg.text}",
                 now)
    return Outcome("update", case.reference,
                   f"filed on {case.reference} as a guess ({'; '.join(why)}); from {who} so it "
                   "is attached for staff to review and changes no request")


def file_held(ctx: Context, session: Session, msg: Incoming, case: models.Case, now: datetime,
              *, by: str) -> Outcome:
    """A held message a person (`by`) filed on a case: what it would have been had it matched
    with proof. A party's is an update, a service's reply answers its request, a party's
    commands run with the sender's role (actions.run); a trusted-domain officer's counts as
    the contact's; anyone else's is attached for review and changes nothing."""
    role, request = parties.role_of(session, ctx.settings, case, msg.sender)
    if role is None and msg.sender and ctx.settings.is_trusted(msg.sender):
        role, request = "officer", session.exec(
            select(models.Request).where(models.Request.case_id == case.id)
            .where(col(models.Request.state) != "answered").order_by(col(models.Request.id))
        ).first()
    if msg.automatic:
        return _automatic(ctx, session, msg, case, request, "filed", now, msg.automatic, msg.why)
    if role in (*parties.PARTIES, "officer"):
        return _update(ctx, session, msg, case, role, request, "filed", now,  # type: ignore[arg-type]
                       filed_by=by)
    if not (msg.text.strip() or msg.files):
        return hold(session, msg, "empty", f"{msg.sender} sent a message with no text and no "
                    "files: it is no update", now, case=case)
    _attach(ctx, session, msg, case, now)
    kind = "constituent_update" if role == "constituent" else "unverified_update"
    cases.event(session, case, kind, now, sender=msg.sender, text=msg.text,
                raw_message_id=msg.raw_id, evidence="filed", filed_by=by, review=True,
                verified=False)
    who = "its constituent" if role == "constituent" else f"{msg.sender or 'an unknown sender'}" \
        ", not a party"
    return Outcome("update", case.reference, f"filed on {case.reference} by {by}; from {who}, "
                   "so it is attached for review and changes no request")


def file_bounce(ctx: Context, session: Session, msg: Incoming, case: models.Case,
                request: models.Request | None, evidence: str, bounce: Bounce,
                now: datetime) -> Outcome:
    """A bounce of our mail is recorded on its case and put in front of staff; a permanent
    failure of a request marks it undeliverable. A bounce is never an answer."""
    notify.staff(session, case, "bounce", f"Mail about {case.reference} bounced ({msg.sender}).",
                 now, request=request)
    cases.event(session, case, "bounce", now, sender=msg.sender, text=bounce.summary,
                raw_message_id=msg.raw_id, request_id=request.id if request else None,
                evidence=evidence, recipients=bounce.recipients, status=bounce.status,
                permanent=bounce.permanent, diagnostic=bounce.diagnostic[:300])
    if not bounce.permanent:
        return Outcome("update", case.reference, f"bounce recorded on the case: {bounce.summary}")
    what = "mail"
    if request is not None:
        what = f"the request to {request.contact}"
        if request.state == "sent" and (not bounce.recipients
                                        or request.contact in bounce.recipients):
            recovery.mark_undeliverable(session, request, f"bounced: {bounce.summary}"
                                        + (f" ({bounce.diagnostic})" if bounce.diagnostic
                                           else ""), now)
            what += " (now undeliverable)"
    reason = f"{what} for {case.reference} bounced: {bounce.summary}"
    hold(session, msg, "bounce", reason, now, case=case)
    return Outcome("holding_pen", case.reference, reason)


def mail_failed(session: Session, case: models.Case, request: models.Request | None,
                reason: str, now: datetime, *, recipients: list[str], sender: str | None = None,
                subject: str | None = None) -> models.Holding:
    """Our mail about a case could not be delivered (the relay refused it, or it was
    retried until `[outbound] give_up_hours`): recorded on the case, put in front of staff
    (holding pen kind `undeliverable`, staff notification), and a request whose contact is
    among `recipients` is marked undeliverable, as a permanent bounce would."""
    lost = {r.lower() for r in recipients}
    if request is not None and request.state == "sent" and request.contact.lower() in lost:
        recovery.mark_undeliverable(session, request, reason, now)
    cases.event(session, case, "undeliverable", now, text=reason,
                request_id=request.id if request else None, recipients=recipients)
    notify.staff(session, case, "undeliverable", reason, now, request=request)
    row = models.Holding(case_id=case.id, kind="undeliverable", reason=reason[:1000],
                         sender=sender, subject=(subject or "")[:500] or None, created_at=now)
    session.add(row)
    return row


def _update(ctx: Context, session: Session, msg: Incoming, case: models.Case, role: str,
            request: models.Request | None, evidence: str, now: datetime, *,
            loaded: parties.Loaded | None = None, **data: Any) -> Outcome:
    """A party's message filed on its case: a service's answer, or a member's or staff note.
    `loaded`: what the match read of the case with it."""
    if msg.automatic:  # callers send robots to _automatic; this keeps it so
        return _automatic(ctx, session, msg, case, request, evidence, now, msg.automatic, msg.why)
    text = msg.text
    if not (text.strip() or msg.files):
        return hold(session, msg, "empty", f"{msg.sender} sent {case.reference} a message with "
                    "no text and no files: it is no answer or update", now, case=case)
    _attach(ctx, session, msg, case, now)
    how = f"matched by {evidence}" + (f" ({'; '.join(data['guess'])})" if data.get("guess")
                                      else "")
    cmds, _ = commands.parse(text)
    send = commands.find_send(text) if not cmds and role == "member" else None
    if send:
        cmds = [send]
    if not cmds and role in ("member", "staff") and followups.wants_chase(text):
        # A follow-up ("any news from Roads? #chase"): recorded by #chase, which it asks for.
        cmds = [commands.Command("chase", "", followups.without_chase(text))]
    if not cmds and role in ("contact", "officer") and request is not None:
        promised = dates.promised_date(text, ctx.calendar.today(now))
        if promised:  # "I will reply by 10 December": a holding reply, not the answer
            cmds = [commands.Command("holding", promised.isoformat(), text, implicit=True)]
        elif msg.reply_kind == "acknowledgement":  # "received, we will come back to you"
            cmds = [commands.Command("ack", "", text, implicit=True)]
    if cmds:
        call = Call(ctx, session, case, role, request, msg.sender or "", now, msg.raw_id,
                    msg.message_id, evidence=evidence)
        result = actions.run(call, cmds)
        return Outcome("update", case.reference, f"from the {role}, {how}: {result}")
    if role == "colleague":
        return hold(session, msg, "stranger",
                    f"{msg.sender} may see {case.reference} (shared) but only use #note on it",
                    now, case=case)
    if role in ("contact", "officer"):
        cases.record_service_reply(ctx, session, case, request, msg.sender or "", text, now,
                                   raw_message_id=msg.raw_id, message_id=msg.message_id,
                                   evidence=evidence, loaded=loaded, **data)
        return Outcome("update", case.reference, f"reply from {msg.sender} ({role}) {how}")
    cases.event(session, case, f"{role}_update", now, sender=msg.sender, text=text,
                raw_message_id=msg.raw_id, evidence=evidence, **data)
    return Outcome("update", case.reference, f"update from the {role} {how}")


def _attach(ctx: Context, session: Session, msg: Incoming, case: models.Case,
            now: datetime) -> None:
    rows = store(session, msg.files, case_id=case.id,  # type: ignore[arg-type]
                 raw_message_id=msg.raw_id, now=now, max_size=ctx.settings.attachments.max_size)
    cases.note_too_large(ctx, session, case, rows, now)
