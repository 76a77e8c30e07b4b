"""Benchmark one `tick` on a big council: 200,000 open cases, 1,000,000 requests (answered,
not yet due, overdue at every chase step) and 100 members, on SQLite or PostgreSQL.

Times, in one run: finding what is due (the chase job's query), the chase job itself (the
steps due today, each rendered and queued), closing answered cases, and every digest (one per
member, staff, each service contact). Memory is the process's peak RSS before and after the
tick: the jobs stream in batches, so the tick should add little to what loading added.

    .venv/bin/python scripts/bench_tick.py                       # SQLite, full size
    .venv/bin/python scripts/bench_tick.py --database postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python scripts/bench_tick.py --cases 2000 --requests 10000   # a quick smoke run
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import random
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, insert, text
from sqlmodel import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailflow import clock, db, models, settings  # noqa: E402
from mailflow.app import App  # noqa: E402
from mailflow.casework import deadlines  # noqa: E402
from mailflow.jobs import chase, digests  # noqa: E402

NOW = clock.parse("2026-11-10T09:00:00Z")  # a Tuesday, in working hours
CHUNK = 20_000


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def config(folder: Path, url: str, members: int, services: int) -> Path:
    lines = [
        '[council]\nname = "Bench Council"\ncasework_address = "casework@bench.example"\n'
        'timezone = "Europe/London"\nnation = "SCT"\ntrusted_domains = ["bench.example"]\n'
        'secret = "bench"\n',
        f'[database]\nurl = "{url}"\n',
        '[outbound]\ntransport = "maildir"\nmaildir = "sent"\n',
        '[[wards]]\nname = "Ward"\n',
        '[[staff]]\nname = "Member Services"\nemail = "staff@bench.example"\n',
    ]
    for i in range(members):
        lines.append(f'[[members]]\nname = "Cllr {i}"\nemail = "m{i}@bench.example"\n'
                     'ward = "Ward"\n')
    for i in range(services):
        lines.append(f'[[services]]\nname = "Service {i}"\ncontact = "s{i}@bench.example"\n'
                     f'escalation = "head{i}@bench.example"\nresponse_days = 10\n')
    path = folder / "bench.toml"
    path.write_text("\n".join(lines))
    return path


def case_rows(n: int, members: list[int], year: int) -> Iterator[dict[str, Any]]:
    rnd = random.Random(1)
    for i in range(1, n + 1):
        received = NOW - timedelta(days=rnd.randint(0, 120), hours=rnd.randint(0, 8))
        answered = i % 1000 == 0  # a few answered cases whose follow-up days have passed
        yield {"id": i, "reference": f"CW-{year}-{i:06d}", "status":
               "answered" if answered else "open", "member_id": members[i % len(members)],
               "ward_id": None, "constituent_id": None, "category": None,
               "enquiry_type": "direct", "subject": f"Enquiry {i}", "issue": "Bench enquiry.",
               "member_note": "", "received_at": received, "opened_at": received,
               "closed_at": None, "source_message_id": None,
               "open_until": date(2026, 11, 6) if answered else None}


def request_rows(app: App, n_cases: int, n: int, services: list[tuple[int, str]]
                 ) -> Iterator[dict[str, Any]]:
    """A steady state: 60 % answered; the rest sent, due from 200 working days ago to 40 ahead,
    each at the chase step a running mailflow would have reached by now."""
    cal, policy = app.calendar, app.settings.chasing
    today = cal.today(NOW)
    rnd = random.Random(2)
    dues = [cal.add_working_days(today, k) for k in range(-200, 41)]
    steps: dict[date, tuple[str, str | None, date | None, datetime | None]] = {}
    for due in dues:  # walk each due date through the chain up to today
        reached, nxt, on, last = "none", *deadlines.plan(cal, policy, due, "none",
                                                         last_day=None), None
        while nxt and on and on < today:
            reached, last = deadlines.REACHED[nxt], on
            nxt, on = deadlines.plan(cal, policy, due, reached, last_day=on)
        stepped = datetime(last.year, last.month, last.day, 9, tzinfo=UTC) if last else None
        steps[due] = (reached, nxt, on, stepped)
    for i in range(1, n + 1):
        case_id = (i - 1) % n_cases + 1
        sid, contact = services[i % len(services)]
        due = dues[rnd.randrange(len(dues))]
        sent = datetime(due.year, due.month, due.day, 10, tzinfo=UTC) - timedelta(days=14)
        answered = case_id % 1000 == 0 or rnd.random() < 0.6
        reached, nxt, on, stepped = steps[due]
        yield {"id": i, "case_id": case_id, "service_id": sid, "contact": contact,
               "state": "answered" if answered else "sent", "token": "x", "sent_at": sent,
               "due": due, "due_rule": "10 working days", "due_from": sent, "due_days": 10,
               "target_due": due, "proposed_due": None, "ack_due": due,
               "chase_step": "none" if answered else reached,
               "next_step": None if answered else nxt,
               "next_step_on": None if answered else on,
               "stepped_at": None if answered else stepped,
               "answered_at": sent + timedelta(days=3) if answered else None,
               "answered_by": contact if answered else None}


def with_stats(requests: Iterator[dict[str, Any]], stats: list[dict[str, Any]]
               ) -> Iterator[dict[str, Any]]:
    """The requests, noting the statistics row of each one the chase may escalate: a running
    council has a row for every request (written when it was sent), and an escalation
    updates its count there; without it each escalated case's statistics would be rewritten
    whole, a cost no running council pays."""
    for r in requests:
        if r["next_step"] == "escalate":
            sent = r["sent_at"].date()
            stats.append({"id": len(stats) + 1, "request_id": r["id"], "case_id": r["case_id"],
                          "enquiry_type": "direct", "state": "sent", "sent_on": sent,
                          "sent_month": sent.strftime("%Y-%m"), "due": r["due"],
                          "escalations": 0})
        yield r


def notification_rows(members: list[str], per_member: int, n_cases: int
                      ) -> Iterator[dict[str, Any]]:
    rnd = random.Random(3)
    i = 0
    for m in members:
        for _ in range(per_member):
            i += 1
            yield {"id": i, "audience": "member", "recipient": m,
                   "case_id": rnd.randint(1, n_cases), "request_id": None, "kind": "reply",
                   "text": "Reply from Service: done.", "created_at": NOW - timedelta(hours=20),
                   "digest_id": None}


def load(url: str, table: Any, rows: Iterator[dict[str, Any]]) -> int:
    """Bulk load: COPY on PostgreSQL, executemany on SQLite, in chunks (memory stays flat)."""
    eng = create_engine(db.normalise_url(url))
    n = 0
    columns = [c.name for c in table.columns]
    pg = eng.dialect.name == "postgresql"
    with eng.begin() as conn:
        chunk: list[dict[str, Any]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= CHUNK:
                n += _write(conn, table, columns, chunk, pg)
                chunk = []
        n += _write(conn, table, columns, chunk, pg)
        if pg:
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'),"
                              f" (SELECT max(id) FROM \"{table.name}\"))"))
            conn.execute(text(f'ANALYZE "{table.name}"'))
    eng.dispose()
    return n


def _write(conn: Any, table: Any, columns: list[str], chunk: list[dict[str, Any]], pg: bool
           ) -> int:
    if not chunk:
        return 0
    if not pg:
        conn.execute(insert(table), chunk)
        return len(chunk)
    columns = [c for c in columns if c in chunk[0]]  # the rest take their server defaults
    buf = io.StringIO()
    for row in chunk:
        buf.write("\t".join(r"\N" if row[c] is None else str(row[c]) for c in columns) + "\n")
    cur = conn.connection.cursor()
    cols = ", ".join(f'"{c}"' for c in columns)
    with cur.copy(f'COPY "{table.name}" ({cols}) FROM STDIN') as copy:
        copy.write(buf.getvalue())
    return len(chunk)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", "--database", dest="url",
                    help="database URL (default: a new SQLite file); on PostgreSQL the run "
                    "uses a schema of its own, dropped at the end")
    ap.add_argument("--cases", type=int, default=200_000)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--members", type=int, default=100)
    ap.add_argument("--services", type=int, default=10)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--profile", metavar="FILE", help="run the chase job under cProfile and "
                    "write its stats to FILE (its time is then the profiler's)")
    a = ap.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench_tick_"))
    url, schema = a.url or f"sqlite:///{folder}/bench.db", None
    if url.startswith("postgres"):
        schema = "bench_" + uuid.uuid4().hex[:8]
        admin = create_engine(db.normalise_url(url), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{db.normalise_url(url)}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    try:
        figures = run(a, folder, url)
    finally:
        db.engine(url).dispose()
        shutil.rmtree(folder, ignore_errors=True)
        if schema:
            db.engine(url).dispose()
            with admin.connect() as c:
                c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    if a.json:
        print(json.dumps(figures))
    return 0


def run(a: argparse.Namespace, folder: Path, url: str) -> dict[str, Any]:
    app = App(settings.load(config(folder, url, a.members, a.services)))
    db.upgrade(app.url)
    app.start(clock.now())  # the directory, synchronised
    clock.pin(NOW)
    with app.session() as s:  # the directory, and the calendar remembered
        members = [m.id for m in s.exec(select(models.Member).order_by(models.Member.id))]
        services = [(sv.id, sv.contact) for sv in s.exec(select(models.Service))]
    t0 = time.perf_counter()
    load(url, models.Case.__table__, case_rows(a.cases, members, 2026))  # type: ignore[attr-defined]
    stats: list[dict[str, Any]] = []
    load(url, models.Request.__table__,  # type: ignore[attr-defined]
         with_stats(request_rows(app, a.cases, a.requests, services), stats))
    load(url, models.RequestStat.__table__, iter(stats))  # type: ignore[attr-defined]
    load(url, models.Notification.__table__,  # type: ignore[attr-defined]
         notification_rows([m.email for m in app.settings.members], 20, a.cases))
    load_s = time.perf_counter() - t0
    print(f"{db.engine(url).dialect.name}: loaded {a.cases:,} cases, {a.requests:,} requests, "
          f"{a.members} members in {load_s:.1f} s", flush=True)
    rss_before = rss_mb()

    today = app.calendar.today(NOW)
    with app.session() as s:
        t0 = time.perf_counter()
        due = chase.due_requests(s, today, limit=None)
        find_s = time.perf_counter() - t0
        open_n = s.exec(select(func.count()).select_from(models.Request)
                        .where(models.Request.state == "sent")).one()
        plan = _explain(s, today)
    n_due = len(due)
    del due
    print(f"  find what is due: {n_due:,} of {open_n:,} open requests in {find_s * 1000:.0f} ms"
          f"  [{plan}]", flush=True)
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}  # steadier than the wall clock on a shared machine
    results: dict[str, Any] = {}
    for name, job in [("chase", chase.chase), ("close_answered", chase.close_answered),
                      ("member_digests", digests.member_digests),
                      ("staff_digest", digests.staff_digest),
                      ("service_digests", digests.service_digests)]:
        profiler = cProfile.Profile() if a.profile and name == "chase" else None
        t0, c0 = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        results[name] = job(app, NOW)
        timings[name] = time.perf_counter() - t0
        cpu[name] = time.process_time() - c0
        if profiler:
            profiler.disable()
            profiler.dump_stats(a.profile)
        print(f"  {name}: {timings[name]:.2f} s ({cpu[name]:.2f} s of this process's CPU)  "
              f"{results[name]}", flush=True)
    digests_s = sum(timings[k] for k in ("member_digests", "staff_digest", "service_digests"))
    rss_after = rss_mb()
    print(f"  all digests: {digests_s:.2f} s; peak RSS {rss_before:.0f} MB before the tick, "
          f"{rss_after:.0f} MB after", flush=True)
    return {"backend": db.engine(url).dialect.name, "cases": a.cases, "requests": a.requests,
            "members": a.members, "load_s": round(load_s, 1), "due": n_due,
            "find_due_ms": round(find_s * 1000, 1), "jobs_s": {k: round(v, 3) for k, v in
                                                              timings.items()},
            "jobs_cpu_s": {k: round(v, 3) for k, v in cpu.items()},
            "digests_s": round(digests_s, 3), "results": results,
            "rss_before_mb": round(rss_before), "rss_after_mb": round(rss_after)}


def _explain(s: Any, today: date) -> str:
    """The query plan of the chase job's query (a later batch), to show it uses the index."""
    dialect = s.get_bind().dialect
    q = chase.due_query(today, (today - timedelta(days=30), 1))
    sql = str(q.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    prefix = "EXPLAIN QUERY PLAN " if dialect.name == "sqlite" else "EXPLAIN "
    rows = s.execute(text(prefix + sql)).all()
    return " / ".join(str(r[-1]).strip() for r in rows)[:200]


if __name__ == "__main__":
    sys.exit(main())
