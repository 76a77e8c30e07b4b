"""The pipeline's claim on PostgreSQL: any worker process on any node takes stored messages
from the spool, with no leader and no broker.

- A batch of candidates is read with `FOR UPDATE SKIP LOCKED`: the oldest `new` messages that
  are each the first `new` message of their thread key (inbound/threadkey.py), skipping rows
  another worker holds. A later message of a key is not a candidate while an earlier one is
  still `new` (waiting, or in another worker's hands), so two messages of one case are never
  processed at once, and they are processed in the order they were stored.
- Each message is then processed in its own transaction, which locks its row again (`SKIP
  LOCKED`, re-checking that it is still the first of its key) and holds it to the commit.
  If the worker dies (`kill -9`), PostgreSQL rolls the transaction back and the row is `new`
  again for the next worker: no lease, no timeout, nothing half done.

SQLite has one writer anyway: serve runs one pipeline thread there (serve.py), in spool
order."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.exc import OperationalError

from mailflow import models
from mailflow.app import App
from mailflow.inbound import pipeline
from mailflow.inbound.dispatch import Outcome
from mailflow.inbound.parse import parse

log = logging.getLogger(__name__)

BATCH = 20  # candidates read at once: one scan of the spool serves this many messages

_R = models.RawMessage.__table__  # type: ignore[attr-defined]
_EARLIER = _R.alias("earlier")
# No `new` message of the same thread key before this one (a NULL key never matches).
_FIRST = ~exists().where(_EARLIER.c.thread_key == _R.c.thread_key,
                         _EARLIER.c.state == "new", _EARLIER.c.id < _R.c.id)


def candidates(app: App, limit: int = BATCH) -> list[int]:
    """The next messages this worker may take, oldest first."""
    with app.session() as session:
        ids = session.execute(
            select(_R.c.id).where(_R.c.state == "new", _FIRST).order_by(_R.c.id).limit(limit)
            .with_for_update(of=_R, skip_locked=True)).scalars().all()
        session.commit()
    return list(ids)


def process_one(app: App, ids: list[int], now: datetime) -> tuple[int, Outcome] | None:
    """Take the first of `ids` still free and `new` (and the first of its key) and process it
    in one transaction that holds its row lock; returns its id and outcome, or None when
    none of them can be taken now."""
    raw_id = None
    with app.session() as session:
        try:
            raw = session.scalars(
                select(models.RawMessage).where(_R.c.id.in_(ids), _R.c.state == "new", _FIRST)
                .order_by(_R.c.id).limit(1).with_for_update(of=_R, skip_locked=True)
            ).first()
            if raw is None:
                session.rollback()
                return None
            raw_id = raw.id
            taken = pipeline.take(session, raw, now)
            assert taken  # its row is locked, and it was new
            outcome = pipeline.handle(app, session, raw, parse(raw.raw), now)
            session.commit()
            return raw_id, outcome
        except OperationalError:  # the database failed, not the message (a deadlock, a
            session.rollback()  # lost connection): it stays `new` for the next try
            raise
        except Exception as e:  # noqa: BLE001 - a message we cannot handle goes to quarantine
            session.rollback()
            if raw_id is None:
                raise
            log.exception("message %s could not be processed", raw_id)
            reason = f"{type(e).__name__}: {e}"
    return raw_id, pipeline.quarantine(app, raw_id, now, reason, state="new")


def batch(app: App, now: Callable[[], datetime],
          took: Callable[[float], None] = lambda _s: None,
          stopping: Callable[[], bool] = lambda: False) -> int:
    """One batch of candidates, each message processed as it is taken, until `stopping()`;
    the number processed. `took` is told each message's seconds (the worker relays them to
    the parent's metrics)."""
    ids = candidates(app)
    done = 0
    while ids and not stopping():
        start = time.perf_counter()
        taken = process_one(app, ids, now())
        if taken is None:
            break
        took(time.perf_counter() - start)
        ids.remove(taken[0])
        done += 1
    return done


def drain(app: App, now: datetime) -> int:
    """Everything waiting that this process can take (`tick`, `ingest` on PostgreSQL)."""
    done = 0
    while n := batch(app, lambda: now):
        done += n
    return done
