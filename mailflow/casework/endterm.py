"""A member's end of term (lost the election, stood down, boundary change).

From the day (`on`, council-local) no new case opens for them: their forwards wait in the
holding pen with the reason (casework/filing.py asks `ended`, one indexed lookup). Each of
their open cases is listed for them to decide. A case whose constituent agreed to be handed
over (`#consent handover` by the member, an event on the case) passes to the successor, with
a note on its timeline; the others are closed on the day, and all the member's cases still
theirs go `[retention] end_of_term_days` after the later of their closing and the end of
term (jobs/retention.py), by the same deletion as retention. The member takes their own
casework with them first (`mailflow export --member`).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from mailflow import models
from mailflow.casework import audit, cases, closing, directory

CONSENT = "consent_handover"  # the event kind `#consent handover` records
OPEN = ("triage", "open", "answered")


class EndError(Exception):
    pass


def ended(session: Session, member_email: str, today: date) -> models.EndOfTerm | None:
    """The member's end of term when it has begun (the intake's one lookup per forward)."""
    row = session.exec(select(models.EndOfTerm)
                       .where(models.EndOfTerm.member_email == member_email.lower())).first()
    return row if row is not None and row.on <= today else None


def declare(session: Session, member: str, successor: str | None, on: date, *, by: str,
            now: datetime) -> models.EndOfTerm:
    """Record (or move) a member's end of term."""
    row = session.exec(select(models.EndOfTerm)
                       .where(models.EndOfTerm.member_email == member)).first()
    if row is not None and row.done_at is not None:
        raise EndError(f"{member}'s term ended on {row.on}; its cases were already dealt with")
    row = row or models.EndOfTerm(member_email=member, on=on, declared_at=now, declared_by=by)
    row.successor, row.on, row.declared_at, row.declared_by = successor, on, now, by
    session.add(row)
    session.flush()
    audit.record(session, actor=by, action="change", what="member.end_of_term", now=now,
                 detail={"member": member, "successor": successor, "on": on.isoformat()})
    return row


def consented(session: Session, case: models.Case) -> models.Event | None:
    """The latest `#consent handover`, when it was not withdrawn (`#consent no` after it)."""
    rows = session.exec(select(models.Event).where(models.Event.case_id == case.id)
                        .where(col(models.Event.kind).in_((CONSENT, "consent")))
                        .order_by(col(models.Event.at), col(models.Event.id))).all()
    last = rows[-1] if rows else None
    return last if last is not None and last.kind == CONSENT else None


def open_cases(session: Session, member_id: int) -> list[models.Case]:
    return list(session.exec(select(models.Case).where(models.Case.member_id == member_id)
                             .where(col(models.Case.status).in_(OPEN))
                             .order_by(col(models.Case.id))))


def listing(session: Session, row: models.EndOfTerm, now: datetime | None = None
            ) -> list[dict[str, Any]]:
    """Each open case, and what the end of term will do with it; with `now`, each also goes
    into the member's next digest, for them to decide."""
    member = directory.member_row(session, row.member_email)
    out = []
    for case in open_cases(session, member.id):  # type: ignore[arg-type]
        yes = consented(session, case) is not None
        action = "hand_over" if yes and row.successor else "close"
        out.append({"reference": case.reference, "status": case.status,
                    "subject": case.subject, "consent_handover": yes, "action": action})
        if now is not None:
            what = (f"passes to {row.successor}" if action == "hand_over" else
                    "will be closed" + (" (or passed to your successor if the constituent "
                                        "agrees: #consent handover)" if row.successor else ""))
            _notify(session, member.email, case, "end_of_term",
                    f"Your term ends on {row.on}: this case {what}.", now)
    return out


def _notify(session: Session, recipient: str, case: models.Case, kind: str, text: str,
            now: datetime) -> None:
    """A line for the member's next digest (no mail of its own)."""
    session.add(models.Notification(audience="member", recipient=recipient, case_id=case.id,
                                    kind=kind, text=text, created_at=now))


def carry_out(session: Session, row: models.EndOfTerm, now: datetime) -> list[dict[str, Any]]:
    """On the day: hand over the consented open cases, close the others. In the caller's
    transaction; marks the row done."""
    member = directory.member_row(session, row.member_email)
    successor = directory.member_row(session, row.successor) if row.successor else None
    done = []
    for case in open_cases(session, member.id):  # type: ignore[arg-type]
        yes = consented(session, case)
        if yes is not None and successor is not None:
            case.member_id, case.ward_id = successor.id, successor.ward_id  # type: ignore[assignment]
            case.share = "private"  # the constituent agreed to the hand-over, not to sharing
            session.add(case)
            cases.event(session, case, "handed_over", now, sender="mailflow",
                        text=f"Handed over from {member.name} to {successor.name} at the end "
                             f"of {member.name}'s term, with the constituent's consent "
                             f"(recorded {yes.at.date().isoformat()} by {yes.sender}).",
                        by=member.email, to=successor.email)
            _notify(session, successor.email, case, "handed_over",
                    f"Handed over to you from {member.name} at the end of their term, with "
                    "the constituent's consent.", now)
            done.append({"reference": case.reference, "action": "handed_over"})
        else:
            closing.close(session, case, "mailflow",
                          f"Closed at the end of {member.name}'s term.", now)
            done.append({"reference": case.reference, "action": "closed"})
        audit.record(session, actor="mailflow", action="change", what="member.end_of_term",
                     now=now, case_ref=case.reference, via="job",
                     detail={"action": done[-1]["action"]})
    row.done_at = now
    session.add(row)
    return done


def due(session: Session, days: int, now: datetime, today: date
        ) -> list[tuple[models.Case, datetime, str]]:
    """Closed cases of members whose term has ended, `days` after the later of their
    closing and the end of term: (case, due at, rule). Through ix_case_member_id."""
    out = []
    rule = f"end_of_term_days={days}"
    for row in session.exec(select(models.EndOfTerm).where(col(models.EndOfTerm.on) <= today)
                            .where(col(models.EndOfTerm.done_at).is_not(None))):
        member = directory.member_row(session, row.member_email)
        start = datetime.combine(row.on, datetime.min.time(), tzinfo=now.tzinfo)
        for case in session.exec(select(models.Case).where(models.Case.member_id == member.id)
                                 .where(models.Case.status == "closed")
                                 .order_by(col(models.Case.id))):
            at = max(case.closed_at or start, start) + timedelta(days=days)
            if at <= now:
                out.append((case, at, rule))
    return out


def pending(session: Session, today: date) -> list[models.EndOfTerm]:
    """Ends of term that have begun and whose open cases have not yet been dealt with."""
    return list(session.exec(select(models.EndOfTerm).where(col(models.EndOfTerm.on) <= today)
                             .where(col(models.EndOfTerm.done_at).is_(None))
                             .order_by(col(models.EndOfTerm.id))))

