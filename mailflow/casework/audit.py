"""The controller's one trail (models.AuditEntry): who read or did what, when, through what.
A listing names the cases it showed in models.AuditCase, so "who looked at this case" is
an index lookup. A case's changes are its timeline's events; `rows` puts both together,
oldest first (`mailflow audit --case REF`, `mailflow case REF --audit`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, or_
from sqlmodel import Session, col, select

from mailflow import models
from mailflow.casework.views import _iso


def record(session: Session, *, actor: str, action: str, what: str, now: datetime,
           case_ref: str | None = None, via: str = "cli",
           detail: dict[str, Any] | None = None, cases: Iterable[str] = ()) -> None:
    """One row of the controller's trail: `action` is read, refused or change; `what` names
    the command or job (cases, search, holding.file, hold, retention…); `cases` the
    references a listing showed (one AuditCase row each)."""
    entry = models.AuditEntry(at=now, actor=actor, action=action, what=what,
                              case_ref=case_ref, via=via, detail=detail)
    session.add(entry)
    refs = sorted(set(cases))
    if refs:
        session.flush()  # the entry's id
        # Core executemany: the ORM's bulk insert is six times slower for a long listing.
        session.connection().execute(insert(models.AuditCase.__table__),  # type: ignore[attr-defined]
                                     [{"audit_id": entry.id, "case_ref": r} for r in refs])


def rows(session: Session, case_ref: str | None = None, by: str | None = None,
         since: datetime | None = None) -> list[dict[str, Any]]:
    """The trail, oldest first: every AuditEntry (for `case_ref`: naming it, or a listing
    that showed it, and the case's changes from its timeline), by `by`, from `since`."""
    entries = list(session.exec(entries_query(case_ref, by, since)))
    shown_by = _shown(session, [e.id for e in entries if e.id is not None])
    out = [(e.at, 1, e.id or 0, _entry(e, shown_by.get(e.id or 0, []))) for e in entries]
    case = (session.exec(select(models.Case).where(models.Case.reference == case_ref)).first()
            if case_ref else None)
    if case is not None:
        E = models.Event
        events = select(E).where(E.case_id == case.id)
        if by:
            events = events.where(E.sender == by)
        if since:
            events = events.where(E.at >= since)
        out += [(e.at, 0, e.id or 0, _change(e, case.reference))
                for e in session.exec(events.order_by(col(E.at), col(E.id)))]
    return [row for *_, row in sorted(out, key=lambda t: t[:3])]


def entries_query(case_ref: str | None = None, by: str | None = None,
                  since: datetime | None = None) -> Any:
    """AuditEntry rows, oldest first; for a case, by its reference or the listings that
    showed it: two index lookups (ix_auditentry_case_ref, ix_auditcase_case_ref)."""
    A = models.AuditEntry
    q = select(A)
    if case_ref:
        shown = select(models.AuditCase.audit_id).where(models.AuditCase.case_ref == case_ref)
        q = q.where(or_(A.case_ref == case_ref, col(A.id).in_(shown)))
    if by:  # an address, or the name of an OS user
        q = q.where(col(A.actor).in_([by, f"{by} (os user)"]))
    if since:
        q = q.where(A.at >= since)
    return q.order_by(col(A.at), col(A.id))


def shown_query(ids: list[int]) -> Any:
    AC = models.AuditCase
    return (select(AC.audit_id, AC.case_ref).where(col(AC.audit_id).in_(ids))
            .order_by(col(AC.audit_id), col(AC.case_ref)))


def _shown(session: Session, ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    for i in range(0, len(ids), 500):  # bound the IN list
        for audit_id, ref in session.exec(shown_query(ids[i:i + 500])):
            found[audit_id].append(ref)
    return found


def _entry(e: models.AuditEntry, shown: list[str]) -> dict[str, Any]:
    detail = e.detail or {}
    return {"at": _iso(e.at), "action": e.action, "who": e.actor, "what": e.what,
            "case": e.case_ref, "cases": shown, "via": e.via,
            "text": detail.get("reason", ""), "message": None, "data": detail}


def _change(e: models.Event, ref: str) -> dict[str, Any]:
    data = e.data or {}
    return {"at": _iso(e.at), "action": "change", "who": e.sender or "mailflow",
            "what": e.kind, "case": ref, "cases": [], "via": data.get(
                "via", "email" if e.raw_message_id else "mailflow"),
            "text": e.text, "message": e.raw_message_id, "data": data}
