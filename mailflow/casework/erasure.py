"""Erasure: one constituent anonymised across every case, the case skeleton kept.

Found as a subject access request finds them (casework/sar.py). On their own cases (as
constituent) the subject and their words become `[erased]`; everywhere else (cases that name
them, notes, events, holding items, sent mail, audit details, the SAR register) each
mention of their name, address, email or phone is replaced by `[erased]`. Stored messages
that mention them (raw mail, sent mail) are emptied: what was read from them stays on the
case, scrubbed. Their attachments go (and any file that names them). The statistics
(models.CaseStat, RequestStat) hold no one's data and are not touched, so reports stay the
same. Refused while any case found is under a legal hold. One audit row, without personal
data: the references and the counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from mailflow import models
from mailflow.casework import audit, holds
from mailflow.casework.sar import Found, Person

ERASED = "[erased]"


class Refused(Exception):
    """A legal hold applies."""


@dataclass
class Scrubber:
    patterns: list[re.Pattern[str]]
    needles: list[bytes]

    @classmethod
    def for_(cls, values: list[str]) -> Scrubber:
        pats, needles = [], []
        for v in sorted({v.strip() for v in values if v and v.strip()}, key=len, reverse=True):
            digits = re.sub(r"\D", "", v)
            if len(digits) >= 7 and len(digits) >= len(v.replace(" ", "")) - 2:  # a phone
                pats.append(re.compile(r"[\s-]?".join(map(re.escape, digits))))
                needles += [digits.encode(), v.lower().encode()]
            else:
                pats.append(re.compile(r"\s+".join(map(re.escape, v.split())), re.I))
                needles.append(v.lower().encode())
        return cls(pats, needles)

    def text(self, value: str | None) -> str | None:
        if not value:
            return value
        for p in self.patterns:
            value = p.sub(ERASED, value)
        return value

    def data(self, value: Any) -> Any:
        """Every string inside a JSON value."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.data(v) for v in value]
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        return value

    def found_in(self, blob: bytes | str | None) -> bool:
        if not blob:
            return False
        b = (blob.encode() if isinstance(blob, str) else bytes(blob)).lower()
        return any(n in b for n in self.needles) or any(
            p.search(b.decode("utf-8", "replace")) for p in self.patterns)


def constituents(session: Session, email: str) -> list[models.Constituent]:
    return list(session.exec(select(models.Constituent)
                             .where(models.Constituent.email == email.lower())))


def person_of(session: Session, email: str, name: str | None = None,
              phone: str | None = None) -> tuple[Person, list[str]]:
    """The person as the SAR search wants them, and every value to scrub (their name, phone
    and address as recorded on any of their constituent rows)."""
    rows = constituents(session, email)
    names = [r.name for r in rows if r.name] + ([name] if name else [])
    phones = [r.phone for r in rows if r.phone] + ([phone] if phone else [])
    values = [email, *names, *phones, *[r.address for r in rows if r.address]]
    return Person(email.lower(), names[0] if names else None,
                  phones[0] if phones else None), [v for v in values if v]


def held(session: Session, found: Found, today: date) -> list[str]:
    out = []
    for case in found.cases:
        for h in holds.active(session, case.id, today):  # type: ignore[arg-type]
            out.append(f"{case.reference} ({h.source}, until {h.until or 'released'})")
    return out


def erase(session: Session, email: str, found: Found, values: list[str], *, by: str,
          now: datetime, today: date) -> dict[str, Any]:
    """Anonymise, in the caller's transaction (roll it back for a dry run)."""
    blocked = held(session, found, today)
    if blocked:
        raise Refused("a legal hold applies to " + ", ".join(blocked))
    sc = Scrubber.for_(values)
    theirs = {r.id for r in constituents(session, email)}
    counts = dict.fromkeys(("constituents", "events", "messages", "holding", "sent",
                            "attachments", "notifications", "audit", "sar_requests"), 0)
    own_ids = set()
    for case in found.cases:
        own = case.constituent_id in theirs
        if own:
            own_ids.add(case.id)
            case.subject, case.issue = ERASED, ERASED
        else:
            case.subject, case.issue = sc.text(case.subject) or "", sc.text(case.issue) or ""
        case.member_note = sc.text(case.member_note) or ""
        session.add(case)
        for e in session.exec(select(models.Event).where(models.Event.case_id == case.id)):
            from_them = (e.sender or "").lower() == email.lower()
            if own and (from_them or e.kind == "update" and not e.sender):
                e.text = ERASED
            else:
                e.text = sc.text(e.text) or ""
            e.sender = ERASED if from_them else e.sender
            e.data = sc.data(e.data)
            session.add(e)
            counts["events"] += 1
        for n in session.exec(select(models.Notification)
                              .where(models.Notification.case_id == case.id)):
            n.text = sc.text(n.text) or ""
            session.add(n)
            counts["notifications"] += 1
        for h in session.exec(select(models.LegalHold)
                              .where(models.LegalHold.case_id == case.id)):
            h.reason = sc.text(h.reason) or ""
            session.add(h)
        for link in session.exec(select(models.CaseLink)
                                 .where(models.CaseLink.case_id == case.id)):
            link.reason = sc.text(link.reason) or ""
            session.add(link)
    # The duplicate search's keys of their cases are hashes of their address and email: a
    # hash of a known email still links, so they go too.
    if own_ids:
        session.execute(delete(models.CaseKey).where(col(models.CaseKey.case_id).in_(own_ids)))
    for c in session.exec(select(models.Constituent)
                          .where(col(models.Constituent.id).in_(theirs))):
        c.name, c.email, c.phone, c.address = ERASED, None, None, None
        session.add(c)
        counts["constituents"] += 1
    for raw in found.raws.values():
        if sc.found_in(raw.raw) or raw.case_id in own_ids or sc.found_in(raw.envelope_from):
            raw.raw, raw.size, raw.envelope_from, raw.envelope_to = b"", 0, None, None
            raw.reason = sc.text(raw.reason)
            session.add(raw)
            counts["messages"] += 1
    for h in found.holding:
        h.sender = ERASED if (h.sender or "").lower() == email.lower() else h.sender
        h.subject, h.reason = sc.text(h.subject), sc.text(h.reason) or ""
        h.candidates = sc.data(h.candidates)
        session.add(h)
        counts["holding"] += 1
    for o in found.outbox:
        if not (o.case_id in own_ids or sc.found_in(o.raw)
                or any(sc.found_in(a) for a in o.recipients)):
            continue
        o.raw = b""
        o.subject = sc.text(o.subject) or ""
        o.recipients = [sc.text(a) or "" for a in o.recipients]
        o.recipients_status = sc.data(o.recipients_status)
        o.last_error = sc.text(o.last_error)
        if o.state in ("queued", "sending", "held"):
            o.state, o.last_error = "failed", "erased before it was sent"
        session.add(o)
        counts["sent"] += 1
    counts["attachments"] = _attachments(session, found, own_ids, sc)
    for a in found.audit:
        a.detail = sc.data(a.detail)
        a.actor = ERASED if a.actor.lower() == email.lower() else a.actor
        session.add(a)
        counts["audit"] += 1
    for r in session.exec(select(models.SarRequest)
                          .where(models.SarRequest.email == email.lower())):
        r.email, r.name, r.phone = ERASED, None, None
        session.add(r)
        counts["sar_requests"] += 1
    session.flush()
    refs = sorted(c.reference for c in found.cases)
    audit.record(session, actor=by, action="change", what="erase", now=now,
                 detail={"cases": refs, **counts})
    return {"cases": refs, **counts}


def _attachments(session: Session, found: Found, own_ids: set[int], sc: Scrubber) -> int:
    """Their files (on their own cases) and any file that names them go; a file also kept
    on another case stays there only when it does not name them."""
    gone = 0
    for a in found.attachments:
        blob = session.get(models.Blob, a.sha256)
        names_them = blob is not None and sc.found_in(blob.data)
        if a.case_id not in own_ids and not names_them and not sc.found_in(a.name):
            continue
        sha = a.sha256
        session.execute(delete(models.Attachment).where(models.Attachment.id == a.id)
                        .execution_options(synchronize_session=False))
        gone += 1
        others = session.exec(select(models.Attachment.id)
                              .where(models.Attachment.sha256 == sha)).first()
        if names_them:  # nowhere else either: the others keep the name, not the bytes
            session.execute(update(models.Attachment).where(models.Attachment.sha256 == sha)
                            .values(stored=False).execution_options(synchronize_session=False))
        if names_them or others is None:
            session.execute(delete(models.Blob).where(models.Blob.sha256 == sha)
                            .execution_options(synchronize_session=False))
    return gone
