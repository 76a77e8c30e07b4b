"""What the email commands do: one handler per command, all of one shape, in one registry,
and the one `run` that every path (email, tests) goes through.

    handler(call: Call, cmd: Command) -> str

Each handler changes the case, records the change on the timeline (`cases.event`, kind =
what changed, `sender` = who) and returns a short confirmation, or raises `CommandError`
saying why it could not. Handlers do not check who may use them: `run` does, through the one
matrix in casework/authz.py. Every message with commands gets one reply: what was done, what
was refused, why.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from mailflow import models, tokens
from mailflow.casework import (
    authz,
    cases,
    closing,
    directory,
    endterm,
    extensions,
    followups,
    names,
    parties,
    recovery,
    sharing,
)
from mailflow.casework.commands import Call, Command, CommandError, Result, parse
from mailflow.casework.context import Context
from mailflow.casework.dates import parse_date
from mailflow.casework.enquiry import TYPES
from mailflow.outbound import mail

Handler = Callable[[Call, Command], str]
REGISTRY: dict[str, Handler] = {}


def command(name: str) -> Callable[[Handler], Handler]:
    assert name in authz.BY_NAME, f"#{name} is not in the matrix (casework/authz.py)"

    def register(fn: Handler) -> Handler:
        REGISTRY[name] = fn
        return fn
    return register


def run(call: Call, cmds: list[Command], reply: bool = True) -> Result:
    """Carry out each command the sender may use (authz.py decides), record refusals on the
    case, and answer the sender once with what was done and what was refused (`reply`: not
    for the web pages, which show the result at once)."""
    result = Result()
    role = "contact" if call.role == "officer" else call.role  # an officer acts for the contact
    for cmd in cmds:
        if cmd.name not in REGISTRY:
            result.refused.append(f"#{cmd.name}: not a command. {authz.help_text(role)}")
            continue
        try:
            ok, why = authz.allowed(role, cmd.name)
            if not ok:
                raise CommandError(why)
            result.done.append(f"#{cmd.name}: {REGISTRY[cmd.name](call, cmd)}")
        except CommandError as e:
            result.refused.append(f"#{cmd.name}: {e}")
            cases.event(call.session, call.case, "command_refused", call.now, sender=call.sender,
                        text=f"#{cmd.name} {cmd.args}".strip() + f": {e}",
                        raw_message_id=call.raw_message_id, command=cmd.name)
    if reply and not all(c.implicit for c in cmds):
        mail.send(call.ctx, call.session, "command_reply",
                  {"done": result.done, "refused": result.refused},
                  to=[call.sender], now=call.now, case=call.case, in_reply_to=call.message_id)
    return result


def execute(ctx: Context, session: Session, case: models.Case, sender: str, text: str,
            now: datetime, *, raw_message_id: int | None = None, reply: bool = True) -> Result:
    """The commands at the top of `text` from `sender`, whose role is worked out here (for
    staff tools and tests; the pipeline passes the role it has proven)."""
    role, request = parties.role_of(session, ctx.settings, case, sender)
    cmds, _ = parse(text)
    return run(Call(ctx, session, case, role, request, sender.lower(), now, raw_message_id),
               cmds, reply)


def _record(call: Call, kind: str, text: str, **data: Any) -> None:
    cases.event(call.session, call.case, kind, call.now, sender=call.sender, text=text,
                raw_message_id=call.raw_message_id, **data)


def _not_closed(case: models.Case) -> None:
    if case.merged_into_id is not None:
        raise CommandError(f"{case.reference} was merged into another case; write to that one")
    if case.status == "closed":
        raise CommandError(f"{case.reference} is closed; #reopen it first")


def _choose(value: str, choices: Any, what: str) -> str:
    name, why = names.match(value, choices, what)
    if name is None:
        raise CommandError(why)
    return name


# -- the case's details --------------------------------------------------------------------
def _set(call: Call, field: str, value: str) -> str:
    """One of the case's own fields, with its timeline event and audited change."""
    old = getattr(call.case, field)
    setattr(call.case, field, value)
    call.session.add(call.case)
    _record(call, field, f"{field.capitalize()} set to {value}.", changes={field: [old, value]})
    return f"{field} set to {value}"


@command("category")
def category(call: Call, cmd: Command) -> str:
    choices = [n for s in call.ctx.settings.services for n in (s.name, *s.categories)]
    return _set(call, "category", _choose(cmd.args, choices, "category"))


@command("priority")
def priority(call: Call, cmd: Command) -> str:
    return _set(call, "priority", _choose(cmd.args, ("high", "normal"), "priority"))


@command("service")
def service(call: Call, cmd: Command) -> str:
    session, case, settings = call.session, call.case, call.ctx.settings
    _not_closed(case)
    name = _choose(cmd.args, [s.name for s in settings.services], "service")
    svc = settings.service(name)
    assert svc is not None
    row = session.exec(select(models.Service).where(models.Service.name == name)).one()
    waiting = session.exec(
        select(models.Request).where(models.Request.case_id == case.id)
        .where(models.Request.service_id == row.id)
        .where(col(models.Request.state).in_(("sent", "undeliverable")))
    ).first()
    if waiting is not None:
        raise CommandError(f"{case.reference} already has a request to {name}, due "
                           f"{waiting.due.isoformat()}")
    request = cases.send_request(call.ctx, session, case, svc, call.now,
                                 reason=f"#service from {call.sender}")
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
        h.resolved_at, h.resolution, h.resolved_by = call.now, "filed", call.sender
        session.add(h)
    _record(call, "service_added", f"Request to {name} added.", service=name,
            request=request.id, changes=changes)
    return f"request sent to {name} <{request.contact}>, due {request.due.isoformat()}"


@command("type")
def enquiry_type(call: Call, cmd: Command) -> str:
    session, case, ctx = call.session, call.case, call.ctx
    kind = _choose(cmd.args, TYPES, "enquiry type")
    old, case.enquiry_type = case.enquiry_type, kind
    session.add(case)
    moved = []
    for r in session.exec(select(models.Request).where(models.Request.case_id == case.id)
                          .where(models.Request.state == "sent")):
        svc_row = directory.get(session, models.Service, r.service_id)
        svc = ctx.settings.service(svc_row.name if svc_row else None)
        if svc is None:
            continue
        if cases.retarget(ctx, case, r, svc.name, call.now):
            session.add(r)
            moved.append(f"{svc.name} now due {r.due.isoformat()}")
    _record(call, "enquiry_type", f"Enquiry type set to {kind}.",
            changes={"enquiry_type": [old, kind]}, requests=moved)
    return f"enquiry type set to {kind}" + (f" ({'; '.join(moved)})" if moved else "")


def _sharing_now(session: Session, case: models.Case) -> str:
    share = sharing.effective_share(case)
    if share == "private":
        if case.share != "private":
            return (f"sharing with the {case.share} takes effect once the constituent's "
                    "consent is recorded (#consent yes)")
        return "the case is private: only you and member services see it"
    if share == "ward":
        return "ward colleagues can now see the case"
    owner = directory.get(session, models.Member, case.member_id)
    return f"ward colleagues of your party ({owner.party if owner else '?'}) can now see the case"


@command("share")
def share(call: Call, cmd: Command) -> str:
    session, case = call.session, call.case
    how = _choose(cmd.args, sharing.SHARES, "sharing")
    owner = directory.get(session, models.Member, case.member_id)
    if how == "party" and not (owner and owner.party):
        raise CommandError("you have no party in the council directory, so #share party "
                           "cannot work; ask member services, or use #share ward")
    old, case.share = case.share, how
    session.add(case)
    _record(call, "share", f"Sharing set to {how}.", changes={"share": [old, how]},
            effective=sharing.effective_share(case))
    return f"sharing set to {how}: {_sharing_now(session, case)}"


@command("consent")
def consent(call: Call, cmd: Command) -> str:
    session, case = call.session, call.case
    answer, why = names.match(cmd.args, ("yes", "no", "handover"), "answer")
    if answer is None:
        raise CommandError(why + " (#consent yes, #consent no or #consent handover)")
    if answer == "handover":  # to the member's successor at the end of term (endterm.py)
        _not_closed(case)
        _record(call, endterm.CONSENT, "Constituent's consent to hand-over to the member's "
                "successor at the end of term recorded.")
        return "consent to hand-over recorded: at the end of your term this case passes to " \
               "your successor"
    old, case.consent = case.consent, answer == "yes"
    session.add(case)
    _record(call, "consent", f"Constituent's consent to sharing recorded: {answer}.",
            changes={"consent": [old, case.consent]}, effective=sharing.effective_share(case))
    return f"consent recorded: {answer}; {_sharing_now(session, case)}"


@command("note")
def note(call: Call, cmd: Command) -> str:
    if not cmd.text:
        raise CommandError("#note needs the text of the note on the same line")
    _record(call, "note", cmd.text, private=True)
    return "note added (private: it is sent to no one)"


@command("deadline")
def deadline(call: Call, cmd: Command) -> str:
    today, case = call.today, call.case
    if cmd.args.strip().lower() in ("none", "clear", "off"):
        new = None
    else:
        new = parse_date(cmd.args, today)
        if new is None:
            raise CommandError(f"cannot read {cmd.args.strip()!r} as a date; write it like "
                               f"{today:%Y-%m-%d} or {today.day} {today:%B %Y}")
        if new < today:
            raise CommandError(f"{new.isoformat()} is in the past")
    old, case.deadline = case.deadline, new
    call.session.add(case)
    text = f"Deadline set to {new.isoformat()}." if new else "Deadline cleared."
    _record(call, "deadline", text, changes={"deadline": [old.isoformat() if old else None,
                                                          new.isoformat() if new else None]})
    return text[0].lower() + text[1:-1]


# -- merging -------------------------------------------------------------------------------
@command("merge")
def merge(call: Call, cmd: Command) -> str:
    """`#merge REF`: the two cases are one enquiry. Staff, or a member who owns both, merge at
    once; otherwise it is a proposal to the other case's member, who agrees by sending
    `#merge` naming this case on theirs. The older case is kept; the other is closed as
    merged into it, and its member can still see the kept case."""
    session, case, settings = call.session, call.case, call.ctx.settings
    prefix = settings.council.reference_prefix
    ref = tokens.normalise_reference(cmd.args.split()[0] if cmd.args.split() else "", prefix)
    other = ref and session.exec(select(models.Case).where(models.Case.reference == ref)).first()
    if not other:
        raise CommandError(f"no case {cmd.args.strip() or '(no reference given)'}; write "
                           f"#merge {prefix}-2026-00042")
    if other.id == case.id:
        raise CommandError("a case cannot be merged with itself")
    for c in (case, other):
        if c.merged_into_id is not None or c.status == "closed":
            raise CommandError(f"{c.reference} is closed"
                               + (" (already merged)" if c.merged_into_id else ""))
    pending = session.exec(
        select(models.CaseLink).where(models.CaseLink.kind == "merge_proposed")
        .where(models.CaseLink.case_id == other.id).where(models.CaseLink.other_id == case.id)
    ).first()
    staff = settings.is_staff(call.sender)
    if staff or other.member_id == case.member_id or pending:
        keep, gone = _merge(call, other)
        return f"{gone.reference} merged into {keep.reference}" + (
            " (both members agreed)" if pending and not staff else "")
    mine = session.exec(
        select(models.CaseLink).where(models.CaseLink.kind == "merge_proposed")
        .where(models.CaseLink.case_id == case.id).where(models.CaseLink.other_id == other.id)
    ).first()
    if mine is None:
        session.add(models.CaseLink(case_id=case.id, other_id=other.id,  # type: ignore[arg-type]
                                    kind="merge_proposed", by=call.sender, created_at=call.now))
        _record(call, "merge_proposed",
                f"Merge with {other.reference} proposed; waiting for its member.",
                other=other.reference)
        _ask_to_agree(call, other)
    return (f"merge with {other.reference} proposed: its member must agree by sending "
            f"#merge {case.reference}")


def _merge(call: Call, other: models.Case) -> tuple[models.Case, models.Case]:
    session, now = call.session, call.now
    keep, gone = sorted((call.case, other), key=lambda c: (c.opened_at, c.id or 0))
    old = gone.status
    gone.status, gone.closed_at, gone.merged_into_id = "closed", now, keep.id
    session.add(gone)
    for x, y in ((keep, gone), (gone, keep)):
        session.add(models.CaseLink(case_id=x.id, other_id=y.id, kind="merged",  # type: ignore[arg-type]
                                    by=call.sender, created_at=now))
    for c, text, data in (
        (gone, f"Merged into {keep.reference}; this case is closed.",
         {"other": keep.reference,
          "changes": {"status": [old, "closed"], "merged_into": [None, keep.reference]}}),
        (keep, f"{gone.reference} was merged into this case.", {"other": gone.reference}),
    ):
        cases.event(session, c, "merged", now, sender=call.sender, text=text,
                    raw_message_id=call.raw_message_id, **data)
    return keep, gone


def _ask_to_agree(call: Call, other: models.Case) -> None:
    owner = directory.get(call.session, models.Member, other.member_id)
    proposer = directory.get(call.session, models.Member, call.case.member_id)
    if owner is None:
        return
    mail.send(call.ctx, call.session, "merge_proposal",
              {"other": call.case, "proposer": proposer.name if proposer else "A colleague"},
              to=[owner.email], now=call.now, case=other)


# -- the service contact -------------------------------------------------------------------
@command("redirect")
def redirect(call: Call, cmd: Command) -> str:
    session, case, settings, request = call.session, call.case, call.ctx.settings, call.request
    if call.role != "contact" or request is None:
        raise CommandError("only the service contact of a request can redirect it")
    new = cmd.args.strip().strip("<>").lower()
    local, _, domain = new.partition("@")
    if not local or "." not in domain or " " in new:
        raise CommandError(f"{cmd.args.strip() or '(nothing)'} is not an email address; write "
                           "#redirect colleague@council.example")
    if not settings.is_trusted(new):
        raise CommandError(f"{new} is not a council address (trusted domains: "
                           f"{', '.join(settings.council.trusted_domains) or 'none'})")
    if request.state == "answered":
        raise CommandError("your request is already answered")
    if new == request.contact:
        raise CommandError(f"{new} already has this request")
    svc_row = directory.get(session, models.Service, request.service_id)
    svc = settings.service(svc_row.name if svc_row else None)
    if svc is None:
        raise CommandError("this request's service is no longer in the council directory")
    old, request.contact = request.contact, new
    session.add(request)
    cases.mail_request(call.ctx, session, case, request, svc, call.now)
    _record(call, "redirected", f"Request to {svc.name} redirected from {old} to {new}.",
            request_id=request.id, changes={"contact": [old, new]})
    return f"request passed to {new}; they have been sent it, due {request.due.isoformat()}"


@command("holding")
def holding(call: Call, cmd: Command) -> str:
    if call.request is None:
        raise CommandError("no request of yours on this case to move")
    new_due = parse_date(cmd.args, call.today)
    if new_due is None:
        raise CommandError(f"{cmd.args or '(nothing)'} is not a date; write #holding 2026-12-10")
    if not cmd.body.strip():
        raise CommandError("a holding reply needs the reason and next action below the date")
    if call.request.acknowledged_at is None:  # a holding reply acknowledges too
        call.request.acknowledged_at = call.now
        call.session.add(call.request)
    return extensions.propose(call.ctx, call.session, call.case, call.request, call.sender,
                              new_due, cmd.body, call.now, raw_message_id=call.raw_message_id,
                              how="fallback" if cmd.implicit else "#holding")


@command("answer")
def answer(call: Call, cmd: Command) -> str:
    """The officer says this reply is the answer, whatever its words ("Thanks, received" may
    be all there is to say)."""
    if call.request is None:
        raise CommandError("no request of yours on this case to answer")
    if not cmd.text:
        raise CommandError("write the answer below #answer")
    cases.record_service_reply(call.ctx, call.session, call.case, call.request, call.sender,
                               cmd.text, call.now, raw_message_id=call.raw_message_id,
                               message_id=call.message_id, evidence=call.evidence or "command",
                               forced="#answer")
    return "your request is answered and the member told"


@command("ack")
def ack(call: Call, cmd: Command) -> str:
    """An acknowledgement: typed as `#ack`, or read from the words (replykind.py)."""
    if call.request is None:
        raise CommandError("no request of yours on this case to acknowledge")
    return cases.record_acknowledgement(call.ctx, call.session, call.case, call.request,
                                        call.sender, cmd.text, call.now,
                                        raw_message_id=call.raw_message_id,
                                        how="words" if cmd.implicit else "#ack")


# -- the member's answer to a service ------------------------------------------------------
def _decide(call: Call, cmd: Command, agree: bool) -> str:
    request = extensions.pending(call.session, call.case)
    if request is None:
        raise CommandError("no extension is waiting for agreement on this case")
    return extensions.decide(call.ctx, call.session, call.case, request, call.sender, agree,
                             cmd.text, call.now, call.raw_message_id)


@command("agree")
def agree(call: Call, cmd: Command) -> str:
    return _decide(call, cmd, True)


@command("refuse")
def refuse(call: Call, cmd: Command) -> str:
    return _decide(call, cmd, False)


@command("reject")
def reject(call: Call, cmd: Command) -> str:
    if not cmd.text:
        raise CommandError("say why, e.g. #reject the pothole is still there")
    request = closing.last_answered(call.session, call.case)
    if request is None:
        raise CommandError("no answer on this case to reject")
    return closing.reject(call.ctx, call.session, call.case, request, call.sender, cmd.text,
                          call.now, call.raw_message_id)


@command("reopen")
def reopen(call: Call, cmd: Command) -> str:
    return followups.reopen(call.ctx, call.session, call.case, call.sender, cmd.args, cmd.body,
                            call.now, call.raw_message_id)


@command("chase")
def chase(call: Call, cmd: Command) -> str:
    if cmd.body:  # the member's follow-up ("any news?"): on the timeline as their update
        _record(call, f"{call.role}_update", cmd.body)
    return followups.chase(call.ctx, call.session, call.case, call.sender, cmd.args, cmd.body,
                           call.now)


# -- failed requests -----------------------------------------------------------------------
@command("resend")
def resend(call: Call, cmd: Command) -> str:
    _not_closed(call.case)
    return "; ".join(recovery.send_again(call.ctx, call.session, call.case, r, call.sender,
                                         call.now, raw_message_id=call.raw_message_id)
                     for r in recovery.pick(call.session, call.case, cmd.args,
                                            waiting_too=False))


@command("contact")
def contact(call: Call, cmd: Command) -> str:
    _not_closed(call.case)
    first, _, service_name = cmd.args.strip().partition(" ")
    new = first.strip("<>").lower()
    local, _, domain = new.partition("@")
    if not local or "." not in domain:
        raise CommandError(f"{first or '(nothing)'} is not an email address; write #contact "
                           "new.person@council.example")
    if not call.ctx.settings.is_trusted(new):
        raise CommandError(f"{new} is not in a trusted domain ("
                           f"{', '.join(call.ctx.settings.council.trusted_domains) or 'none'}):"
                           " a request goes only to a council address")
    found = recovery.pick(call.session, call.case, service_name, waiting_too=True)
    if len(found) > 1:
        raise CommandError("more than one request could be meant; name its service: "
                           f"#contact {new} SERVICE")
    if found[0].contact == new and found[0].state == "sent":
        raise CommandError(f"{new} already has this request")
    return recovery.send_again(call.ctx, call.session, call.case, found[0], call.sender,
                               call.now, contact=new, raw_message_id=call.raw_message_id)


@command("close")
def close(call: Call, cmd: Command) -> str:
    if call.case.status == "closed":
        raise CommandError("the case is already closed")
    return closing.close(call.session, call.case, call.sender, cmd.text, call.now,
                         call.raw_message_id)


# -- the constituent -----------------------------------------------------------------------
@command("send")
def send(call: Call, cmd: Command) -> str:
    """Relay the service's latest answer to the constituent from the casework address, with
    the member's own text above it. Never sent unless the council and the member allow it."""
    session, case, s = call.session, call.case, call.ctx.settings
    owner = directory.get(session, models.Member, case.member_id)
    member = s.member(owner.email) if owner else None
    if member is None:
        raise CommandError("the case's member is no longer in the council directory")
    if not s.casework.constituent_mail:
        raise CommandError("the council does not send mail to constituents "
                           "([casework] constituent_mail is off)")
    if not member.constituent_mail:
        raise CommandError("your settings do not allow mail to constituents; ask member "
                           "services to switch on constituent_mail for you")
    who = session.get(models.Constituent, case.constituent_id) if case.constituent_id else None
    if who is None or not who.email:
        raise CommandError("the case has no email address for the constituent")
    answer = session.exec(select(models.Event).where(models.Event.case_id == case.id)
                          .where(models.Event.kind == "service_reply")
                          .order_by(col(models.Event.at).desc(), col(models.Event.id).desc())
                          ).first()
    if answer is None:
        raise CommandError("no service has answered yet, so there is nothing to send")
    request = session.get(models.Request, answer.request_id) if answer.request_id else None
    svc = directory.get(session, models.Service, request.service_id) if request else None
    service_name = svc.name if svc else "the council"
    mail.send(call.ctx, session, "constituent_update",
              {"member": member, "member_text": cmd.text, "answer": answer.text,
               "service_name": service_name},
              to=[who.email], now=call.now, case=case, reply_to=member.email, automatic=False)
    _record(call, "constituent_sent", cmd.text, to=who.email, answer_event=answer.id,
            service=service_name)
    return f"{service_name}'s answer sent to the constituent ({who.email})"


@command("help")
def help_(call: Call, cmd: Command) -> str:
    return authz.help_text("contact" if call.role == "officer" else call.role)
