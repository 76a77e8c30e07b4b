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

from sqlalchemy import tuple_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailflow import db, models
from mailflow.app import App
from mailflow.casework import chasing, closing

log = logging.getLogger(__name__)
BATCH = 50  # rows claimed per transaction: small, so nodes share the work


def due_query(today: date, after: tuple[date, int] | None = None, limit: int | None = BATCH
              ) -> Any:
    """Open requests whose next chase step falls due on or before `today`, in (day, id)
    order from `after`: a range scan of ix_request_next_step (state, next_step_on)."""
    R = models.Request
    q = select(R).where(col(R.state) == "sent").where(col(R.next_step_on) <= today)
    if after is not None:
        q = q.where(tuple_(col(R.next_step_on), col(R.id)) > tuple_(*after))
    q = q.order_by(col(R.next_step_on), col(R.id))
    return q.limit(limit) if limit else q


def due_requests(session: Session, today: date, after: tuple[date, int] | None = None,
                 limit: int | None = BATCH, lock: bool = False) -> list[models.Request]:
    q = due_query(today, after, limit)
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
    after: tuple[date, int] | None = None
    while True:
        with app.session() as session:
            batch = due_requests(session, today, after, BATCH, lock=pg)
            if not batch:
                break
            last = batch[-1]  # the keyset, read before the steps move next_step_on
            after = (last.next_step_on or today, last.id or 0)
            for r in batch:
                step = chasing.take_step(app.context, session, r, now)
                if step:
                    counts[step] += 1
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
                closed += closing.close_answered(app.context, session, case_id, open_until, now)
            after = rows[-1][0]
            session.commit()
    return {"closed": closed}
