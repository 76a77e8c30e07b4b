"""`mailflow inspect`: what mailflow sees in a message, as the stable JSON documented in the
README. Built from the same `understand()` the pipeline acts on; changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import getaddresses
from typing import Any

from sqlmodel import Session

from mailflow.inbound.dispatch import decide
from mailflow.inbound.forwards import Party
from mailflow.inbound.parse import Parsed, addresses, clean, header, parse
from mailflow.inbound.understand import understand
from mailflow.settings import Settings


def inspect(raw: bytes, s: Settings, session: Session | None, file: str) -> dict[str, Any]:
    p = parse(raw)
    u = understand(p, s, session)
    fwd, b = u.forward, u.bounce
    o = fwd.original if fwd else None
    return {
        "file": file,
        "message_id": p.message_id,
        "from": {"name": p.sender_name, "address": u.sender, "problem": p.from_problem},
        "authentication": {"result": u.auth.state, "why": u.auth.why, "by": u.auth.by or None},
        "to": _people(p, "To"),
        "cc": _people(p, "Cc"),
        "subject": p.subject,
        "date": _iso(p.date),
        "forwarded": fwd is not None,
        "original": None if o is None else {
            "from": _party(o.sender),
            "to": [_party(x) for x in o.to],
            "cc": [_party(x) for x in o.cc],
            "subject": clean(o.subject) or None,
            "date": _iso(o.date),
            "body": clean(o.body),
            "attached": fwd.attached if fwd else False,
        },
        "note": clean(fwd.note) if fwd else None,
        "reply_text": clean(u.reply_text),
        "classification": u.kind,
        "classification_reason": u.classification.why or None,
        "reply_kind": u.reply_kind,
        "bounce": None if b is None else {
            "recipients": b.recipients, "status": b.status, "permanent": b.permanent,
            "original_message_id": b.original_message_id, "diagnostic": clean(b.diagnostic),
        },
        "match": {
            "case": u.case.reference if u.case else None,
            "evidence": u.evidence,
            "why": _why(u),
            "sender_role": u.role,
            "proven": u.proven,
        },
        "rule": decide(u, s).name,
        "candidates": [c.as_dict() for c in u.candidates],
        "attachments": [f.as_dict() for f in u.files],
        "defects": p.defects,
    }


def _why(u: Any) -> list[str]:
    if u.match:
        return [f"{u.match.evidence}: {u.match.detail}"]
    if u.guess:
        return list(u.guess.why)
    return [u.problem] if u.problem else []


def _people(p: Parsed, name: str) -> list[dict[str, str | None]]:
    values = [header(p.msg, name)] if header(p.msg, name) else []
    known = set(addresses(p.msg, name))
    return [{"name": clean(n) or None, "address": clean(a).lower()}
            for n, a in getaddresses(values) if a.lower() in known]


def _party(x: Party | None) -> dict[str, str | None] | None:
    return {"name": clean(x.name) or None, "address": clean(x.address)} if x else None


def _iso(d: datetime | None) -> str | None:
    if d is None:
        return None
    if d.tzinfo is None:  # the forward gave no offset: say so by leaving it off
        return d.isoformat()
    return d.astimezone(UTC).isoformat().replace("+00:00", "Z")
