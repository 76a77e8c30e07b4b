#!/usr/bin/env python3
"""Benchmark the case list page (/cases) with its filters, over real HTTP.

    .venv/bin/python scripts/bench_web.py [--cases 2000] [--runs 30]

Opens N cases (as `mailflow` does: requests, timeline, outbox) for the sample council's
members over two months, answers a fifth of them and marks a tenth undeliverable, then times
GET /cases as staff with no filter (the baseline) and with each filter of the page.
Prints the median and 90th percentile of each, and its ratio to the baseline.
Target (issue 15): the unfiltered list's median < 100 ms at 2,000 cases.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlmodel import select  # noqa: E402

from mailflow import clock, db, models, settings  # noqa: E402
from mailflow.app import App  # noqa: E402
from mailflow.casework import cases, recovery  # noqa: E402
from mailflow.web import auth, health  # noqa: E402
from mailflow.web.server import WebServer  # noqa: E402

START = clock.parse("2026-10-01T10:00:00Z")
NOW = clock.parse("2026-12-01T10:00:00Z")


def council(dir_: Path, url: str) -> App:
    text = (ROOT / "config" / "mailflow.toml").read_text()
    text = text.replace('url = "sqlite:///../data/mailflow.db"', f'url = "{url}"')
    path = dir_ / "mailflow.toml"
    path.write_text(text)  # its [web] has insecure_cookies: local HTTP
    app = App(settings.load(path))
    db.upgrade(app.url)
    app.start(START)
    return app


def load(app: App, n: int) -> None:
    s = app.settings
    members, services = s.members, s.services
    with app.session() as session:
        for i in range(n):
            at = START + timedelta(minutes=i * 60 * 24 * 60 // n)
            clock.pin(at)
            case = cases.open_case(app.context, session, cases.NewCase(
                member=members[i % len(members)], subject=f"Enquiry {i}", issue=f"Issue {i}",
                member_note="", constituent_name=f"Resident {i}",
                constituent_email=f"resident{i}@example.org",
                service=services[i % len(services)], received_at=at), at)
            if i % 10 == 3:
                r = session.exec(select(models.Request)
                                 .where(models.Request.case_id == case.id)).first()
                if r is not None:
                    recovery.mark_undeliverable(session, r, "550 no such user", at)
            if i % 5 == 1:
                case.status = "answered"
                session.add(case)
            if i % 200 == 199:
                session.commit()
        session.commit()


def timed(base: str, cookie: str, path: str, runs: int) -> list[float]:
    host, _, port = base.removeprefix("http://").partition(":")
    out = []
    for _ in range(runs):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        t = time.perf_counter()
        conn.request("GET", path, headers={"Cookie": f"mailflow={cookie}", "Host": base[7:]})
        r = conn.getresponse()
        body = r.read()
        out.append((time.perf_counter() - t) * 1000)
        conn.close()
        assert r.status == 200 and b"<table>" in body, (path, r.status)
    return out


def bench(app: App, runs: int) -> None:
    clock.pin(NOW)
    staff = app.settings.staff[0].email
    member = app.settings.members[0].email
    with app.session() as s:
        cookie = auth.start(s, staff, NOW, "bench")
        s.commit()
    web = WebServer(health.create(app), "127.0.0.1", 0).start()
    paths = ["/cases", "/cases?overdue=yes", "/cases?waiting=service", "/cases?waiting=member",
             "/cases?waiting=address", f"/cases?member={member}",
             "/cases?from=2026-11-01&to=2026-11-15",
             f"/cases?waiting=service&member={member}&from=2026-10-15&overdue=yes"]
    try:
        timed(web.address, cookie, "/cases", 3)  # warm up
        base = None
        for p in paths:
            t = sorted(timed(web.address, cookie, p, runs))
            med = statistics.median(t)
            base = base or med
            print(f"  {p:70s} median {med:6.1f} ms  p90 {t[int(len(t) * 0.9) - 1]:6.1f} ms"
                  f"  x{med / base:.2f}")
    finally:
        web.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        app = council(Path(d), f"sqlite:///{d}/bench.db")
        t = time.perf_counter()
        load(app, args.cases)
        print(f"SQLite: {args.cases} cases loaded in {time.perf_counter() - t:.0f} s")
        bench(app, args.runs)


if __name__ == "__main__":
    main()
