"""The jobs that keep time: chase steps (reminder, chases, escalation) and closing answered
cases after their follow-up days. Both run only on working days in working hours, work
through what is due in small batches (keyset pagination, so memory stays flat) and claim
each row; on PostgreSQL the batch is also locked with FOR UPDATE SKIP LOCKED, so two nodes
share the work instead of queueing behind each other."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, col, select

from mailflow import db, models
from mailflow.app import App
from mailflow.casework import chasing, closing

log = logging.getLogger(__name__)
BATCH = 50  # rows claimed per transaction: small, so nodes share the work


DUE_ORDER = (col(models.Request.next_step_on), col(models.Request.id))


def _due(today: date) -> Any:
    """Open requests whose next chase step falls due on or before `today`: in DUE_ORDER, a
    range scan of ix_request_next_step (state, next_step_on)."""
    R = models.Request
    return select(R).where(col(R.state) == "sent").where(col(R.next_step_on) <= today)


def due_query(today: date, after: tuple[date, int] | None = None, limit: int | None = BATCH
              ) -> Any:
    return db.page(_due(today), DUE_ORDER, after, limit)


def due_requests(session: Session, today: date, limit: int | None = BATCH
                 ) -> list[models.Request]:
    return list(session.exec(due_query(today, None, limit)))


def chase(app: App, now: datetime) -> dict[str, Any]:
    cal = app.calendar
    if not cal.in_working_hours(now):
        return {"in_working_hours": False}
    counts: Counter[str] = Counter()
    for session, batch in db.batches(app.session, _due(cal.today(now)), DUE_ORDER, BATCH):
        counts.update(step for step in chasing.take_steps(app.context, session, batch, now)
                      if step)
    return {k: counts[k] for k in ("reminder", "chase", "chase_again", "escalate", "skipped")}


def close_answered(app: App, now: datetime) -> dict[str, Any]:
    """Answered cases whose follow-up days have passed close themselves; the member is told."""
    cal = app.calendar
    if not cal.in_working_hours(now):
        return {"in_working_hours": False}
    C = models.Case
    due = (select(C.id, C.open_until).where(col(C.status) == "answered")
           .where(col(C.open_until) < cal.today(now)))
    closed = 0
    for session, rows in db.batches(app.session, due, [col(C.id)], BATCH):
        for case_id, open_until in rows:
            closed += closing.close_answered(app.context, session, case_id, open_until, now)
    return {"closed": closed}
