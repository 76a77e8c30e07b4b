"""Working the holding pen: a person files a held message on a case, opens a case from it, or
dismisses it (`mailflow holding file|open|dismiss`, or `#file`/`#open`/`#dismiss` in a reply
to a digest). Each is one conditional update of the item (`resolved_at IS NULL`), so two
people acting at once change it once; each is written to the audit trail with who did it, and
on the case's timeline when a case is involved.

Filing and opening reuse casework/filing.py: a filed message becomes what it would have been
had it matched that case (filing.file_held), an opened one is a new case as a member's
message opens one (filing.open_case). casework/ never parses MIME: the caller (the CLI, or
inbound/dispatch.py for mail) re-reads the held message into a `Held`.

Who may: member services, and the member concerned (the held mail is theirs, or names their
case), on their own cases only. Everyone else is refused, and the refusal is audited too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from mailflow import db, models, tokens
from mailflow.casework import audit, cases, directory, filing
from mailflow.casework.context import Context
from mailflow.casework.filing import Incoming, Outcome
from mailflow.outbound import mail
from mailflow.settings import Member, Settings

ACTIONS = ("file", "open", "dismiss")


class HoldingError(Exception):
    """Why an action on a held item cannot be done. `why`: not_found | resolved | refused |
    invalid (the CLI maps them to exit codes 1, 2, 77, 1)."""

    def __init__(self, message: str, why: str):
        super().__init__(message)
        self.why = why


@dataclass
class Held:
    """A held message, re-read from the spool for a person's decision."""

    msg: Incoming
    forwarded: bool
    new_case: Callable[[Member], tuple[cases.NewCase, str]]  # the case it opens for a member


Reader = Callable[[models.Holding], "Held | None"]  # None: no stored message (our own mail)


@dataclass
class Done:
    item: models.Holding
    outcome: Outcome


def item(session: Session, holding_id: int) -> models.Holding:
    h = session.get(models.Holding, holding_id)
    if h is None:
        raise HoldingError(f"no holding item {holding_id}", "not_found")
    if h.resolved_at is not None:
        raise HoldingError(f"holding item {holding_id} was already {h.resolution or 'resolved'}"
                           + (f" by {h.resolved_by}" if h.resolved_by else "")
                           + f" at {h.resolved_at:%Y-%m-%d %H:%M}", "resolved")
    return h


def case_by_reference(session: Session, s: Settings, ref: str) -> models.Case:
    reference = tokens.normalise_reference(ref, s.council.reference_prefix)
    case = session.exec(select(models.Case).where(models.Case.reference == reference)
                        ).first() if reference else None
    if case is None:
        raise HoldingError(f"no case {ref}", "not_found")
    return case


def _member_of(session: Session, case: models.Case) -> str | None:
    row = directory.get(session, models.Member, case.member_id)
    return row.email if row else None


CONSOLE = " (os user)"  # the CLI's actor without --as: `NAME (os user)`


def check(session: Session, s: Settings, h: models.Holding, actor: str, via: str, *,
          case: models.Case | None = None, member: Member | None = None) -> str:
    """`staff` or `member` when `actor` may work this item (onto this case, for this member);
    raises HoldingError(refused) otherwise. The operating-system user at the console is
    staff: they hold the database already."""
    if (via == "cli" and actor.endswith(CONSOLE)) or s.is_staff(actor):
        return "staff"
    m = s.member_for(actor)
    if m is None:
        raise HoldingError(f"{actor} is not member services or a member", "refused")
    mine = (m.email, *m.aliases)
    held_case = session.get(models.Case, h.case_id) if h.case_id else None
    if not (h.sender in mine or (held_case and _member_of(session, held_case) == m.email)):
        raise HoldingError(f"holding item {h.id} is not {m.email}'s mail and names none of "
                           "their cases: only member services may work it", "refused")
    if case is not None and _member_of(session, case) != m.email:
        raise HoldingError(f"{case.reference} is not {m.email}'s case", "refused")
    if member is not None and member.email != m.email:
        raise HoldingError(f"{m.email} may open a case only for themselves, not for "
                           f"{member.email}", "refused")
    return "member"


def _resolve(session: Session, h: models.Holding, resolution: str, actor: str, now: datetime,
             *, case: models.Case | None = None, note: str | None = None) -> None:
    """The item leaves the queue, once: a conditional update, so of two people acting at once
    one wins and the other is told it was already done."""
    values: dict[str, Any] = {"resolved_at": now, "resolution": resolution,
                              "resolved_by": actor, "resolution_note": note}
    if case is not None:
        values["case_id"] = case.id
    if not db.claim(session, models.Holding, {"id": h.id, "resolved_at": None}, values):
        raise HoldingError(f"holding item {h.id} was already resolved", "resolved")
    session.refresh(h)


def _record(session: Session, h: models.Holding, action: str, actor: str, now: datetime,
            via: str, case: models.Case | None, text: str, **detail: Any) -> None:
    """The audit row (`holding.file`, `holding.open`, `holding.dismiss`) and, when a case is
    involved, its timeline event (`holding_filed`, `holding_opened`, `holding_dismissed`)."""
    audit.record(session, actor=actor, action="change", what=f"holding.{action}", now=now,
                 case_ref=case.reference if case else None, via=via,
                 detail={"holding": h.id, "kind": h.kind, **detail})
    if case is not None:
        cases.event(session, case, f"holding_{h.resolution}", now, sender=actor, text=text,
                    raw_message_id=h.raw_message_id, holding=h.id, via=via)


def refused(session: Session, action: str, holding_id: int | None, actor: str, why: str,
            now: datetime, via: str) -> None:
    """A refusal is part of the trail too (who tried, on what, and why not)."""
    audit.record(session, actor=actor, action="refused", what=f"holding.{action}", now=now,
                 via=via, detail={"holding": holding_id, "why": why})


def _held(h: models.Holding, read: Reader, action: str) -> Held:
    held = read(h)
    if held is None:
        raise HoldingError(f"holding item {h.id} ({h.kind}) has no received message to "
                           f"{action}; dismiss it once dealt with", "invalid")
    return held


def file(ctx: Context, session: Session, holding_id: int, ref: str, actor: str, now: datetime,
         read: Reader, *, via: str = "cli") -> Done:
    """The held message is filed on `ref` as if it had matched it (filing.file_held)."""
    h = item(session, holding_id)
    case = case_by_reference(session, ctx.settings, ref)
    check(session, ctx.settings, h, actor, via, case=case)
    held = _held(h, read, "file")
    outcome = filing.file_held(ctx, session, held.msg, case, now, by=actor)
    if outcome.disposition != "update":
        raise HoldingError(f"holding item {h.id} cannot be filed on {case.reference}: "
                           f"{outcome.reason}", "invalid")
    _resolve(session, h, "filed", actor, now, case=case)
    _record(session, h, "file", actor, now, via, case,
            f"Held message {h.id} from {h.sender or 'an unknown sender'} filed on this case: "
            f"{outcome.reason}", outcome=outcome.reason)
    return Done(h, outcome)


def _member_named(session: Session, s: Settings, h: models.Holding, actor: str
                  ) -> Member | None:
    """Whom `#open` without an address is for: the member replying, else the member whose
    mail is held, else the member of the case the item names."""
    held_case = session.get(models.Case, h.case_id) if h.case_id else None
    for address in (actor, h.sender, held_case and _member_of(session, held_case)):
        if address and (m := s.member_for(address)):
            return m
    return None


def open_case(ctx: Context, session: Session, holding_id: int, member_address: str | None,
              service_name: str | None, actor: str, now: datetime, read: Reader, *,
              via: str = "cli") -> Done:
    """A case from the held message for `member_address` (None: the member the item names):
    its sender is the constituent (a forward's original sender), with the usual request and
    acknowledgement."""
    s = ctx.settings
    h = item(session, holding_id)
    member = s.member_for(member_address) if member_address else \
        _member_named(session, s, h, actor)
    if member is None:
        raise HoldingError(f"no member with address {member_address}" if member_address else
                           f"holding item {h.id} names no member: write #open {h.id} ADDRESS",
                           "invalid")
    service = None
    if service_name:
        service = next((sv for sv in s.services if sv.name.lower() == service_name.lower()
                        .strip()), None)
        if service is None:
            raise HoldingError(f"no service {service_name!r} (the services are "
                               f"{', '.join(sv.name for sv in s.services)})", "invalid")
    check(session, s, h, actor, via, member=member)
    held = _held(h, read, "open a case from")
    new, how = held.new_case(member)
    own = held.msg.sender in (member.email, *member.aliases)
    outcome = filing.open_case(ctx, session, held.msg, new, how, now, forwarded=held.forwarded,
                               service=service, obey=own)
    if outcome.disposition != "case_opened" or not outcome.case:
        raise HoldingError(f"holding item {h.id} opens no case: {outcome.reason}", "invalid")
    session.flush()
    case = case_by_reference(session, s, outcome.case)
    _resolve(session, h, "opened", actor, now, case=case)
    _record(session, h, "open", actor, now, via, case,
            f"Opened from held message {h.id} by {actor}.", outcome=outcome.reason)
    return Done(h, outcome)


def dismiss(ctx: Context, session: Session, holding_id: int, reason: str, actor: str,
            now: datetime, *, via: str = "cli") -> Done:
    """Kept (the raw message too), out of the queue, with the reason."""
    h = item(session, holding_id)
    reason = " ".join(reason.split())
    if not reason:
        raise HoldingError("say why it is dismissed (--reason TEXT, or #dismiss ID reason)",
                           "invalid")
    check(session, ctx.settings, h, actor, via)
    case = session.get(models.Case, h.case_id) if h.case_id else None
    _resolve(session, h, "dismissed", actor, now, note=reason[:1000])
    _record(session, h, "dismiss", actor, now, via, case,
            f"Held message {h.id} dismissed by {actor}: {reason}", reason=reason[:300])
    return Done(h, Outcome("ignored", case.reference if case else None,
                           f"holding item {h.id} dismissed: {reason}"))


# -- by email: a reply to a digest ------------------------------------------------------------
_LINE = re.compile(r"^#(file|open|dismiss)\b[ \t]*(.*)$", re.IGNORECASE)
_ID = re.compile(r"#?(\d{1,12})$")


def asks(text: str) -> bool:
    """Does the reply start with a holding-pen command?"""
    first = next((x.strip() for x in text.strip().splitlines() if x.strip()), "")
    return bool(_LINE.match(first))


def _commands(text: str) -> list[tuple[str, str]]:
    out = []
    for raw_line in text.strip().splitlines():
        line_ = raw_line.strip()
        if not line_:
            continue
        m = _LINE.match(line_)
        if not m:
            break
        out.append((m.group(1).lower(), m.group(2).strip()))
    return out


def _only_item(session: Session, s: Settings, actor: str) -> int | None:
    """The item a command that names none means: the one item waiting that `actor` may work
    (for staff, the one item in the pen), or None when there are several (or none)."""
    # From the unresolved items (ix_holding_resolved_at), never from the member's cases.
    q = select(models.Holding.id).where(col(models.Holding.resolved_at).is_(None))
    m = s.member_for(actor)
    if not s.is_staff(actor) and m is not None:
        q = (q.outerjoin(models.Case, col(models.Case.id) == models.Holding.case_id)
             .outerjoin(models.Member, col(models.Member.id) == models.Case.member_id)
             .where(or_(col(models.Holding.sender).in_([m.email, *m.aliases]),
                        col(models.Member.email) == m.email)))
    ids = session.exec(q.limit(2)).all()
    return ids[0] if len(ids) == 1 else None


def reply(ctx: Context, session: Session, msg: Incoming, evidence: str, now: datetime,
          read: Reader) -> Outcome:
    """`#file 17 CW-2026-00042`, `#open 17 [member address] [service]`, `#dismiss 17 reason`,
    one a line at the top of a reply to a digest (its signed address or Message-ID is the
    proof of receipt): each names its item, as the digest lists several (a command naming
    none means the one item waiting that the sender may work, if there is only one). Each is
    done or refused on its own (a savepoint each); the sender gets one answer saying which."""
    actor = (msg.sender or "").lower()
    s = ctx.settings
    if not (s.is_staff(actor) or s.member_for(actor)):  # no answer to a stranger
        for action, args in _commands(msg.text):
            m = _ID.match(args.split()[0]) if args.split() else None
            refused(session, action, int(m.group(1)) if m else None, actor or "(no sender)",
                    "not member services or a member", now, "email")
        return filing.hold(session, msg, "digest_reply", f"reply to digest from "
                           f"{actor or 'an unknown sender'} ({evidence}) with holding-pen "
                           "commands, but not from member services or a member", now)
    done: list[str] = []
    refusals: list[str] = []
    first_case: str | None = None
    for action, args in _commands(msg.text):
        words = args.split()
        m = _ID.match(words[0]) if words else None
        holding_id = int(m.group(1)) if m else None
        rest = words[1:] if m else words
        try:
            if holding_id is None:
                holding_id = _only_item(session, s, actor)
            if holding_id is None:
                raise HoldingError(f"name the item first, as the digest shows it: #{action} 17"
                                   + {"file": f" {ctx.settings.council.reference_prefix}"
                                      "-2026-00042", "open": "", "dismiss": " spam"}[action]
                                   + " (not exactly one item is waiting)", "invalid")
            with session.begin_nested():
                if action == "file":
                    if not rest:
                        raise HoldingError(f"#file {holding_id} needs the case reference",
                                           "invalid")
                    r = file(ctx, session, holding_id, rest[0], actor, now, read, via="email")
                elif action == "open":
                    who = next((w for w in rest if "@" in w), None)
                    svc = " ".join(w for w in rest if "@" not in w) or None
                    r = open_case(ctx, session, holding_id, who, svc, actor, now, read,
                                  via="email")
                else:
                    r = dismiss(ctx, session, holding_id, " ".join(rest), actor, now,
                                via="email")
            done.append(f"#{action} {holding_id}: {r.outcome.reason}")
            first_case = first_case or r.outcome.case
        except HoldingError as e:
            refusals.append(f"#{action} {args}".strip() + f": {e}")
            if e.why == "refused":
                refused(session, action, holding_id, actor, str(e), now, "email")
    mail.send(ctx, session, "holding_reply", {"done": done, "refused": refusals},
              to=[actor], now=now, in_reply_to=msg.message_id)
    summary = "; ".join([*done, *(f"refused: {r}" for r in refusals)])
    if not done:
        return filing.hold(session, msg, "digest_reply", f"reply to digest from "
                           f"{actor or 'an unknown sender'} ({evidence}); holding-pen commands "
                           f"refused: {summary}", now)
    return Outcome("update", first_case, f"holding-pen commands from {actor} in a reply to a "
                   f"digest ({evidence}): {summary}")
