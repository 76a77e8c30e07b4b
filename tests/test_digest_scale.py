"""Digests and chases at scale: the statements they run do not grow with the number of
members or of due steps (issue 16). Counted with a `before_cursor_execute` listener on the
real engine, SQLite and PostgreSQL; the only statements allowed to grow are each mail's own
(the outbox door's rate-limit check and insert) and each step's writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert
from sqlmodel import col, select

from mailflow import clock, db, models, settings
from mailflow.app import App
from mailflow.casework import directory
from mailflow.inbound import pipeline
from mailflow.jobs import chase, digests
from tests.conftest import COUNCIL
from tests.mail import outlook_forward

D1 = clock.parse("2026-11-10T09:00:00Z")  # a Tuesday, after the digests' 08:00
D2 = clock.parse("2026-11-11T09:00:00Z")


@contextmanager
def statements(app: App) -> Iterator[list[str]]:
    seen: list[str] = []

    def _count(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        seen.append(" ".join(sql.split()))

    eng = db.engine(app.url)
    event.listen(eng, "before_cursor_execute", _count)
    try:
        yield seen
    finally:
        event.remove(eng, "before_cursor_execute", _count)


def door(sql: str) -> bool:
    """A statement of the outbox door (outbound/mail.send): one mail's rate-limit check or
    its insert, which each mail needs whatever the batch."""
    return sql.startswith("INSERT INTO outbox") or (
        sql.startswith("SELECT outbox.") and "outbox.recipients FROM outbox" in sql)


def statistics(sql: str) -> bool:
    """A read of the statistics hook (app.py `_track_statistics`), which each commit runs for
    the cases it touched: reports/stats.py's business, not the chase's."""
    return sql.startswith("SELECT") and any(t in sql for t in (
        "FROM case_stat", "FROM request_stat", "FROM ward WHERE",
        "FROM request WHERE request.case_id", "GROUP BY event.request_id"))


def council(tmp_path: Path, db_url: str, members: int, name: str) -> App:
    extra = "".join(f'[[members]]\nname = "Cllr {i}"\nemail = "m{i}@council.example"\n'
                    'ward = "Linlithgow"\n\n' for i in range(members - 2))
    text = COUNCIL.format(db_url=db_url).replace("[[services]]", extra + "[[services]]", 1)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return App(settings.load(path))


def seed_members(app: App, now: datetime) -> None:
    """For every member: cases with overdue requests, an answered case about to close, a
    notification about a request and a holding-pen item from their address."""
    with app.session() as s:
        service = s.exec(select(models.Service.id)).first()
        members = list(s.exec(select(models.Member).order_by(col(models.Member.id))))
        cases, requests, notes, held = [], [], [], []
        for i, m in enumerate(members):
            for k in range(3):
                cid = i * 10 + k + 1
                cases.append({"id": cid, "reference": f"CW-2026-{cid:05d}", "member_id": m.id,
                              "status": "answered" if k == 2 else "open", "subject": f"Case {cid}",
                              "received_at": now - timedelta(days=30),
                              "opened_at": now - timedelta(days=30),
                              "open_until": date(2026, 11, 10) if k == 2 else None})
                requests.append({"id": cid, "case_id": cid, "service_id": service,
                                 "contact": "roads.enquiries@council.example", "state": "sent",
                                 "token": "t", "sent_at": now - timedelta(days=30),
                                 "due": date(2026, 10, 20) + timedelta(days=k)})
            notes.append({"audience": "member", "recipient": m.email, "case_id": i * 10 + 1,
                          "request_id": i * 10 + 1, "kind": "reply", "text": "Reply: done.",
                          "created_at": now - timedelta(days=2)})
            held.append({"kind": "unmatched", "reason": "no case", "sender": m.email,
                         "subject": "Hello", "created_at": now - timedelta(days=2)})
        for table, rows in ((models.Case, cases), (models.Request, requests),
                            (models.Notification, notes), (models.Holding, held)):
            s.execute(insert(table), rows)  # type: ignore[arg-type]
        s.commit()


def test_member_digests_statements_do_not_grow_with_members(tmp_path: Path, db_url: str
                                                            ) -> None:
    everyone = council(tmp_path, db_url, 30, "thirty")
    db.upgrade(everyone.url)
    everyone.start(D1)
    few = council(tmp_path, db_url, 3, "three")  # the same database, three of its members
    seed_members(everyone, D1)
    with everyone.session() as s:
        directory.warm(s)  # the process's directory, read once whatever follows
    try:
        with statements(few) as three:
            assert digests.member_digests(few, D1) == {"sent": 3, "empty": 0}
        with statements(everyone) as thirty:
            assert digests.member_digests(everyone, D2) == {"sent": 30, "empty": 0}
        ours = [[q for q in run if not door(q)] for run in (three, thirty)]
        assert len(ours[0]) == len(ours[1]), (ours[0], ours[1])
        assert len(thirty) - len(ours[1]) <= 2 * 30  # the door: a check and an insert a mail
        with everyone.session() as s:
            d = s.exec(select(models.Digest).where(models.Digest.recipient == "m5@council.example")
                       ).one()
            assert d.sent and d.items == 6  # a notice, 3 overdue, one about to close, one held
    finally:
        db.engine(everyone.url).dispose()


def forwards(app: App, n: int, now: datetime, start: int) -> None:
    for i in range(start, start + n):
        msg = outlook_forward(constituent=f"Person {i} <p{i}@example.org>",
                              subject=f"Bins not collected at {i} Elm Row {i}",
                              body=f"My bins at {i} Elm Row {i} were missed again.\n")
        raw_id, _ = pipeline.receive(app, msg.as_bytes(), source="ingest", now=now)
        out = pipeline.process(app, raw_id, now)
        assert out is not None and out.disposition == "case_opened", out


def test_chase_statements_per_batch_do_not_grow_with_steps(tmp_path: Path, db_url: str) -> None:
    app = council(tmp_path, db_url, 2, "council")
    db.upgrade(app.url)
    app.start(D1)
    try:
        # Waste answers in 5 working days: chased on the 6th working day after receipt, so
        # these three are chased on Tuesday 10 and the thirty on Wednesday 11 November.
        forwards(app, 3, clock.parse("2026-11-02T10:00:00Z"), 0)
        forwards(app, 30, clock.parse("2026-11-03T10:00:00Z"), 100)
        with app.session() as s:
            directory.warm(s)
        with statements(app) as three:
            assert chase.chase(app, D1 + timedelta(hours=1))["chase"] == 3
        with statements(app) as thirty:
            assert chase.chase(app, D2 + timedelta(hours=1))["chase"] == 30
        reads = [[q for q in run if q.startswith("SELECT") and not door(q)
                  and not statistics(q)] for run in (three, thirty)]
        assert len(reads[0]) == len(reads[1]) <= 6, (reads[0], reads[1])
        # A chase changes no statistic: none are read or rewritten at commit.
        assert not [q for q in thirty if statistics(q) or "case_stat" in q or "request_stat" in q]
        # Each step's own writes: its claim, and its mail's rate-limit check and insert; the
        # batch's events and notices are one INSERT each, with no savepoint.
        writes = [q for q in thirty if not q.startswith("SELECT")]
        assert not [q for q in writes if "SAVEPOINT" in q], writes
        assert len([q for q in writes if q.startswith("INSERT INTO event")]) == 1, writes
        assert len([q for q in writes if q.startswith("INSERT INTO notification")]) == 1
        assert len(thirty) - len(reads[1]) <= 3 * 30 + 4, thirty
        # The rate limit's check is read once for the batch's cases, not once a mail.
        assert len([q for q in thirty if door(q) and q.startswith("SELECT")]) == 1, thirty
        with app.session() as s:
            chased = s.exec(select(models.Request).where(models.Request.chase_step == "chased")
                            ).all()
            assert len(chased) == 33
            assert len(s.exec(select(models.Outbox).where(models.Outbox.kind == "chase")).all()
                       ) == 33
        # A second run the same day finds nothing: never a chase sent twice.
        assert chase.chase(app, D2 + timedelta(hours=2))["chase"] == 0
    finally:
        db.engine(app.url).dispose()


def test_a_failing_chase_step_affects_only_itself(tmp_path: Path, db_url: str) -> None:
    """A council's chase template that fails for one case: that step is rolled back to its
    savepoint and taken on the next run; the others in its batch go out."""
    own = tmp_path / "tpl"
    own.mkdir()
    shipped = (Path(__file__).resolve().parent.parent / "templates" / "chase.txt").read_text()
    subject, _, rest = shipped.partition("\n")
    (own / "chase.txt").write_text(
        subject + "\n{% if case.subject.endswith('Row 1') %}{{ no_such_value }}{% endif %}" + rest)
    app = council(tmp_path, db_url, 2, "council")
    path = tmp_path / "council.toml"
    path.write_text(path.read_text().replace('secret = "test-secret"',
                                             'secret = "test-secret"\ntemplates = "tpl"'))
    app = App(settings.load(path))
    db.upgrade(app.url)
    app.start(D1)
    try:
        forwards(app, 3, clock.parse("2026-11-02T10:00:00Z"), 0)
        assert chase.chase(app, D1 + timedelta(hours=1))["chase"] == 2
        with app.session() as s:
            steps = {c.subject: r.chase_step for r, c in s.exec(
                select(models.Request, models.Case).join(models.Case))}
        assert sorted(steps.values()) == ["chased", "chased", "none"]
        assert [k for k, v in steps.items() if v == "none"][0].endswith("Elm Row 1")
        (own / "chase.txt").write_text(shipped)  # the council mends its template
        fixed = App(settings.load(path))
        assert chase.chase(fixed, D1 + timedelta(hours=2))["chase"] == 1
    finally:
        db.engine(app.url).dispose()
