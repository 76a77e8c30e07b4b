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

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailflow import db, models
from mailflow.app import App
from mailflow.casework import chasing, closing

log = logging.getLogger(__name__)
BATCH = 200


def due_requests(session: Session, today: date, after_id: int = 0, limit: int | None = BATCH,
                 lock: bool = False) -> list[models.Request]:
    """Open requests whose next chase step falls due on or before `today` (index
    ix_request_next_step)."""
    q = (select(models.Request).where(col(models.Request.state) == "sent")
         .where(col(models.Request.next_step_on) <= today)
         .where(col(models.Request.id) > after_id).order_by(col(models.Request.id)))
    if limit:
        q = q.limit(limit)
    if lock:
        q = q.with_for_update(skip_locked=True)
    return list(session.exec(q))


def _is_pg(app: App) -> bool:
    eng: Engine = db.engine(app.url)
    return db.is_postgres(eng)


def chase(app: App, now: datetime) -> dict[str, Any]:
    cal = app.calendar
    if not cal.in_working_hours(now):
        return {"in_working_hours": False}
    today, pg = cal.today(now), _is_pg(app)
    counts: Counter[str] = Counter()
    after = 0
    while True:
        with app.session() as session:
            batch = due_requests(session, today, after, BATCH, lock=pg)
            if not batch:
                break
            for r in batch:
                step = chasing.take_step(app, session, r, now)
                if step:
                    counts[step] += 1
            after = batch[-1].id or after
            session.commit()
    return {k: counts[k] for k in ("reminder", "chase", "chase_again", "escalate", "skipped")}


def close_answered(app: App, now: datetime) -> dict[str, Any]:
    """Answered cases whose follow-up days have passed close themselves; the member is told."""
    cal = app.calendar
    if not cal.in_working_hours(now):
        return {"in_working_hours": False}
    today, pg = cal.today(now), _is_pg(app)
    closed, after = 0, 0
    while True:
        with app.session() as session:
            q = (select(models.Case.id, models.Case.open_until)
                 .where(col(models.Case.status) == "answered")
                 .where(col(models.Case.open_until) < today)
                 .where(col(models.Case.id) > after).order_by(col(models.Case.id)).limit(BATCH))
            if pg:
                q = q.with_for_update(skip_locked=True)
            rows = list(session.exec(q))
            if not rows:
                break
            for case_id, open_until in rows:
                closed += closing.close_answered(app, session, case_id, open_until, now)
            after = rows[-1][0]
            session.commit()
    return {"closed": closed}
