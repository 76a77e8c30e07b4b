"""The audit trail of a case: every change (the timeline's events: who, when, what, from which
message) and every read through the CLI (`CaseRead`), oldest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from mailflow import models
from mailflow.casework.views import _iso


def record_read(session: Session, case: models.Case, reader: str, now: datetime,
                what: str = "case", via: str = "cli") -> None:
    session.add(models.CaseRead(case_id=case.id, at=now, reader=reader, via=via,  # type: ignore[arg-type]
                                what=what))


def trail(session: Session, case: models.Case) -> list[dict[str, Any]]:
    events = session.exec(select(models.Event).where(models.Event.case_id == case.id)
                          .order_by(col(models.Event.at), col(models.Event.id))).all()
    reads = session.exec(select(models.CaseRead).where(models.CaseRead.case_id == case.id)
                         .order_by(col(models.CaseRead.at), col(models.CaseRead.id))).all()
    rows: list[tuple[datetime, int, dict[str, Any]]] = [
        (e.at, 0, {"at": _iso(e.at), "action": "change", "who": e.sender or "mailflow",
                   "what": e.kind, "text": e.text, "message": e.raw_message_id,
                   "via": (e.data or {}).get("via", "email" if e.raw_message_id else "mailflow"),
                   "data": e.data or {}})
        for e in events
    ] + [
        (r.at, 1, {"at": _iso(r.at), "action": "read", "who": r.reader, "what": r.what,
                   "text": "", "message": None, "via": r.via, "data": {}})
        for r in reads
    ]
    return [row for _, _, row in sorted(rows, key=lambda t: (t[0], t[1]))]


def record(session: Session, *, actor: str, action: str, what: str, now: datetime,
           case_ref: str | None = None, via: str = "cli",
           detail: dict[str, Any] | None = None) -> None:
    """One row of the controller's trail (models.AuditEntry): `action` is read, refused or
    change; `what` names the command or job (cases, search, holding.file, hold, retention…)."""
    session.add(models.AuditEntry(at=now, actor=actor, action=action, what=what,
                                  case_ref=case_ref, via=via, detail=detail))
