"""The claim vocabulary in db.py on a real database: insert once, a counter, a conditional
update, and the keyset batch walk. Two nodes are two sessions: the second tries while the
first holds its uncommitted claim (it waits for the lock, then sees the first's row) or just
after the first commits; it loses either way, which is the point."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select

from mailflow import db, models
from mailflow.app import App

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def second_node(app: App, work: Callable[[Session], Any]) -> Callable[[], Any]:
    """Start `work` in another session on another thread; the returned function waits for
    it to finish (it commits) and gives its result."""
    out: dict[str, Any] = {}

    def run() -> None:
        with db.session(app.url) as s:
            out["result"] = work(s)
            s.commit()

    t = threading.Thread(target=run)
    t.start()

    def result() -> Any:
        t.join(timeout=60)
        assert not t.is_alive(), "the second node never finished"
        return out["result"]
    return result


def raw_rows(app: App, n: int, received_at: Callable[[int], datetime] = lambda i: NOW
             ) -> list[int]:
    with db.session(app.url) as s:
        rows = [models.RawMessage(digest=hashlib.sha256(str(i).encode()).hexdigest(),
                                  received_at=received_at(i), source="ingest", size=1,
                                  raw=b"x") for i in range(n)]
        s.add_all(rows)
        s.commit()
        return [r.id for r in rows]  # type: ignore[misc]


def states(app: App) -> list[str]:
    with db.session(app.url) as s:
        return list(s.exec(select(models.RawMessage.state).order_by(models.RawMessage.id)))


def test_insert_once_has_one_winner(app: App) -> None:
    key = {"audience": "staff", "recipient": "staff", "period": "2026-11-20"}
    row = {**key, "created_at": NOW, "items": 0, "sent": False}
    with db.session(app.url) as first:
        assert db.insert_once(first, models.Digest, row, list(key))
        loser = second_node(app, lambda s: db.insert_once(s, models.Digest, row, list(key)))
        first.commit()
    assert loser() is False
    with db.session(app.url) as s:
        assert db.insert_once(s, models.Digest, {**row, "period": "2026-11-23"}, list(key))
        s.commit()
        assert len(s.exec(select(models.Digest)).all()) == 2


def test_increment_never_gives_a_number_twice(app: App) -> None:
    key = {"name": "CW-2026"}
    with db.session(app.url) as first:
        assert db.increment(first, models.Counter, key, "value") == 1
        other = second_node(app, lambda s: db.increment(s, models.Counter, key, "value"))
        first.commit()
    assert other() == 2
    with db.session(app.url) as s:
        assert db.increment(s, models.Counter, {"name": "CW-2027"}, "value") == 1
        assert db.increment(s, models.Counter, key, "value") == 3


def test_claim_has_one_winner(app: App) -> None:
    [raw_id] = raw_rows(app, 1)
    new_to_done = ({"id": raw_id, "state": "new"}, {"state": "done", "processed_at": NOW})
    with db.session(app.url) as first:
        assert db.claim(first, models.RawMessage, *new_to_done)
        loser = second_node(app, lambda s: db.claim(s, models.RawMessage, *new_to_done))
        first.commit()
    assert loser() is False
    assert states(app) == ["done"]
    # Two workers that both saw the row `done`: only the first moves it on.
    stale = [db.session(app.url) for _ in range(2)]
    sessions = [cm.__enter__() for cm in stale]
    try:
        for s in sessions:
            assert s.get(models.RawMessage, raw_id).state == "done"  # type: ignore[union-attr]
            s.commit()
        won = []
        for s in sessions:
            won.append(db.claim(s, models.RawMessage, {"id": raw_id, "state": "done"},
                                {"state": "failed"}))
            s.commit()
        assert won == [True, False]
    finally:
        for cm in stale:
            cm.__exit__(None, None, None)


def test_claim_takes_an_expression_and_matches_null(app: App) -> None:
    a, b = raw_rows(app, 2)
    R = models.RawMessage
    with db.session(app.url) as s:
        assert db.claim(s, R, {"id": a, "processed_at": None}, {"processed_at": NOW})
        assert not db.claim(s, R, {"id": a, "processed_at": None}, {"processed_at": NOW})
        assert db.claim(s, R, (col(R.id) == b) & (col(R.state) == "new"), {"state": "done"})
        assert not db.claim(s, R, (col(R.id) == b) & (col(R.state) == "new"), {"state": "x"})
        s.commit()
    assert states(app) == ["new", "done"]


def walk(app: App, size: int, order: list[Any], body: Callable[[Session, list[Any]], None],
         query: Any = None) -> list[int]:
    R = models.RawMessage
    sizes = []
    query = select(R).where(col(R.state) == "new") if query is None else query
    for session, rows in db.batches(lambda: db.session(app.url), query, order, size):
        body(session, rows)
        sizes.append(len(rows))
    return sizes


def test_batches_walk_each_row_once_in_small_transactions(app: App) -> None:
    R = models.RawMessage
    # Ties on the first key, and the body moves that key past the end (as a chase step moves
    # next_step_on past today): the keyset, read before the body runs, still visits each row
    # once; read after, the walk would stop after the first batch.
    ids = raw_rows(app, 7, lambda i: NOW + timedelta(minutes=i // 3))
    due = select(R).where(col(R.received_at) <= NOW + timedelta(hours=1))
    seen: list[int] = []

    def take(session: Session, rows: list[models.RawMessage]) -> None:
        for r in rows:
            seen.append(r.id)  # type: ignore[arg-type]
            r.received_at = NOW + timedelta(days=1)
            session.add(r)

    assert walk(app, 3, [col(R.received_at), col(R.id)], take, due) == [3, 3, 1]
    assert seen == ids
    # Rows as tuples, one key column.
    got = []
    for _, rows in db.batches(lambda: db.session(app.url), select(R.id, R.size), [col(R.id)], 4):
        got += [i for i, _ in rows]
    assert got == ids


def test_a_batch_that_fails_is_rolled_back_and_the_ones_before_kept(app: App) -> None:
    R = models.RawMessage
    raw_rows(app, 5)

    def done_then_fail(session: Session, rows: list[models.RawMessage]) -> None:
        for r in rows:
            db.claim(session, R, {"id": r.id, "state": "new"}, {"state": "done"})
        if rows[0].id == 3:
            raise RuntimeError("the job fails in its second batch")

    with pytest.raises(RuntimeError):
        walk(app, 2, [col(R.id)], done_then_fail)
    assert states(app) == ["done", "done", "new", "new", "new"]


def test_batches_skip_rows_another_node_has_locked(app: App) -> None:
    if not db.is_postgres(db.engine(app.url)):
        pytest.skip("FOR UPDATE SKIP LOCKED is PostgreSQL's; SQLite has one writer")
    R = models.RawMessage
    ids = raw_rows(app, 5)
    with db.session(app.url) as other:
        other.exec(select(R).where(col(R.id) == ids[1]).with_for_update()).one()
        seen: list[int] = []
        walk(app, 2, [col(R.id)], lambda _s, rows: seen.extend(r.id for r in rows))
        other.rollback()
    assert seen == [ids[0], *ids[2:]]


def test_the_first_calendar_run_plans_requests_from_before_chasing(app: App) -> None:
    """The calendar claim is an insert once. Its row count was -1 on PostgreSQL (SQLAlchemy
    2.1, psycopg), so an upgraded database there never planned its old requests' chases."""
    from mailflow.casework import deadlines
    from tests.mail import outlook_forward
    from tests.test_loop import FRIDAY, ingest

    ingest(app, outlook_forward())
    with app.session() as s:
        [r] = s.exec(select(models.Request)).all()
        r.next_step, r.next_step_on = None, None  # as a request from before chasing existed
        s.add(r)
        s.delete(s.get(models.Setting, "calendar"))
        s.commit()
        assert deadlines.follow_calendar(s, app.settings, app.calendar, FRIDAY) == 1
        s.commit()
        s.refresh(r)
        assert r.next_step is not None and r.next_step_on is not None
        assert deadlines.follow_calendar(s, app.settings, app.calendar, FRIDAY) == 0
