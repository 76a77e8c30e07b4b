"""Legal holds: a case under hold is never deleted by retention (nor, later, erased), until
the hold's `until` date has passed or it is released. A hold is placed by hand (`mailflow
hold`, source `manual`) or by another process that names itself as the source (a subject
access request: `sar:<id>`, held until it is answered plus four months); each source
releases only its own holds. Every hold and release is on the audit trail, without the
reason (which may name people): the hold row keeps it while the case exists."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ColumnElement, exists
from sqlmodel import Session, col, select

from mailflow import models
from mailflow.casework import audit


def active(session: Session, case_id: int, today: date) -> list[models.LegalHold]:
    """The holds in force on a case on `today` (council-local), longest first."""
    rows = session.exec(select(models.LegalHold).where(models.LegalHold.case_id == case_id)
                        .where(models.LegalHold.in_force(today))
                        .order_by(col(models.LegalHold.id))).all()
    return sorted(rows, key=lambda h: h.until or date.max, reverse=True)


def is_held(session: Session, case_id: int, today: date) -> bool:
    """The predicate retention (and erasure) ask before touching a case."""
    return bool(active(session, case_id, today))


def not_held(today: date) -> ColumnElement[bool]:
    """The same predicate as a condition on `Case`, for a query that must skip held cases."""
    return ~exists().where(models.LegalHold.case_id == models.Case.id) \
        .where(models.LegalHold.in_force(today))


def place(session: Session, case: models.Case, *, reason: str, by: str, now: datetime,
          until: date | None = None, source: str = "manual", via: str = "cli"
          ) -> models.LegalHold:
    row = models.LegalHold(case_id=case.id, source=source, reason=reason, placed_by=by,  # type: ignore[arg-type]
                           placed_at=now, until=until)
    session.add(row)
    session.flush()
    audit.record(session, actor=by, action="change", what="hold", now=now,
                 case_ref=case.reference, via=via,
                 detail={"hold": row.id, "source": source,
                         "until": until.isoformat() if until else None})
    return row


def set_until(session: Session, case: models.Case, source: str, until: date | None, *,
              by: str, now: datetime, today: date, via: str = "cli") -> int:
    """Move the end of a source's holds on a case in force (a subject access request that has
    been answered: until the answer plus four months). Returns how many moved."""
    rows = [h for h in active(session, case.id, today) if h.source == source]  # type: ignore[arg-type]
    for h in rows:
        h.until = until
        session.add(h)
        audit.record(session, actor=by, action="change", what="hold", now=now,
                     case_ref=case.reference, via=via,
                     detail={"hold": h.id, "source": source,
                             "until": until.isoformat() if until else None})
    return len(rows)


def release(session: Session, case: models.Case, *, by: str, now: datetime, today: date,
            source: str = "manual", via: str = "cli") -> list[models.LegalHold]:
    """Release a source's holds in force on a case; the others stay."""
    rows = [h for h in active(session, case.id, today) if h.source == source]  # type: ignore[arg-type]
    for h in rows:
        h.released_at, h.released_by = now, by
        session.add(h)
        audit.record(session, actor=by, action="change", what="hold.release", now=now,
                     case_ref=case.reference, via=via, detail={"hold": h.id, "source": source})
    return rows
