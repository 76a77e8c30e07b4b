#!/usr/bin/env python3
"""Benchmark reports and search on a council's three years of casework.

    .venv/bin/python scripts/bench_reports.py [--cases 200000] [--postgres URL] [--keep DIR]
    .venv/bin/python scripts/bench_reports.py --database URL   # PostgreSQL only
    .venv/bin/python scripts/bench_reports.py --database URL --schema bench_xxxxxxxx
        # again on the cases a --keep run left, without loading them again

Bulk-loads N cases spread over 2024-2026 (constituents, requests, timeline events and the
anonymised statistics; the search index built once at the end, as for an import) into a fresh
SQLite file and, with --postgres, a fresh schema on that PostgreSQL; then times a
whole-council report grouped by service and month over the three years (with its
previous-period comparison and total, as `mailflow report` runs it), and search queries of
one and three words (as staff, 20 results).
Targets: the report in < 2 s, search median < 50 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text
from sqlmodel import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailflow import clock, db, models, settings  # noqa: E402
from mailflow.app import App  # noqa: E402
from mailflow.reports import report, search  # noqa: E402
from mailflow.reports.period import between  # noqa: E402

SERVICES = {  # name: (response days, subjects, words used in the constituents' text)
    "Roads": (10, ["Pothole on {street}", "Broken street light in {street}",
                   "Gritting needed on {street}", "Traffic calming for {street}"],
              "pothole tarmac kerb pavement junction resurfacing speed crossing lamp"),
    "Housing": (10, ["Damp in council flat at {street}", "Repair request for {street}",
                     "Housing transfer application", "Rent arrears advice"],
                "damp mould boiler heating tenancy repair landlord window roof overcrowding"),
    "Waste": (5, ["Missed bin collection on {street}", "Fly-tipping behind {street}",
                  "Recycling box not emptied", "Garden waste permit"],
              "bin collection recycling fly-tipping mattress lorry refuse bags permit"),
    "Environmental Health": (10, ["Noise from neighbours at {street}", "Rats near {street}",
                                  "Dog fouling on {street}"],
                             "noise music barking rats pest fouling smoke smell hygiene"),
    "Planning": (15, ["Planning application next to {street}", "Extension without permission"],
                 "planning extension hedge boundary objection application conservation"),
    "Parks": (10, ["Overgrown trees in {street} park", "Broken swings at the playpark"],
              "trees swings grass playpark bench litter pond football pitch"),
    "Education": (10, ["School transport from {street}", "School place appeal"],
                  "school bus pupils catchment placement teacher nursery uniform"),
    "Social Care": (10, ["Care package review", "Blue badge application"],
                    "carer assessment elderly mobility badge support visit"),
    "Council Tax": (10, ["Council tax band query", "Council tax reduction"],
                    "band valuation reduction discount arrears bill direct debit"),
    "Licensing": (10, ["Taxi licence complaint", "Late licence for {street} pub"],
                  "licence taxi pub premises alcohol hours event"),
    "Transport": (10, ["Bus stop moved on {street}", "Parking permit for {street}"],
                  "bus stop parking permit lines yellow timetable shelter"),
    "Benefits": (10, ["Housing benefit delay", "Crisis grant application"],
                 "benefit claim grant delay evidence payment universal credit"),
}
FIRST = ("Mary Peter Ann Bob Carol Dan Eve Fiona Gary Helen Ian Jean Karen Liam Moira Neil "
         "Olive Paul Rachel Sam Tina Umar Vera Will Yasmin Zoe Aisha Owen Priya Tom").split()
LAST = ("Jones Grant Lee Hill King Moss Stone Brown Smith Khan Davies Wilson Taylor Clark "
        "Walker Wright Scott Reid Murray Stewart Campbell Anderson Young Watson Ross "
        "Patel Singh Morrison Hughes Baird Paterson Kerr Fraser").split()
STREETS = ("Main Street|Mill Road|High Street|Church Lane|Station Road|Quarry Lane|Hill Road|"
           "Canal Basin|Park Avenue|Victoria Road|Union Street|Bridge Street|King Street|"
           "Glebe Road|Manse Road|School Brae|Learmonth Crescent|Burgh Mews").split("|")
TOWNS = "Linlithgow Bathgate Livingston Whitburn Armadale Broxburn Uphall Blackburn".split()
COMMON = ("please could you look into this again as soon as possible the residents are "
          "worried it has been weeks and nobody has replied since we reported it").split()
ONE_WORD = ["pothole", "damp", "mattress", "Grant", "rats", "licence", "Quarry", "boiler",
            "swings", "permit"]
THREE_WORDS = ["pothole Main Street", "damp mould boiler", "missed bin collection",
               "Mary Jones Linlithgow", "noise barking neighbours", "school bus pupils",
               "broken street light", "rent arrears advice", "trees overgrown park",
               "parking permit Glebe"]


def council_toml(url: str) -> str:
    wards = [f"Ward {i:02d}" for i in range(1, 21)]
    out = [f"""[council]
name = "Bench Council"
casework_address = "casework@council.example"
nation = "SCT"
trusted_domains = ["council.example"]

[database]
url = "{url}"

[outbound]
maildir = "sent"
"""]
    out += [f'[[wards]]\nname = "{w}"\n' for w in wards]
    for i in range(60):
        out.append(f'[[members]]\nname = "Cllr {FIRST[i % 30]} {LAST[(i * 7) % 33]} {i}"\n'
                   f'email = "member{i}@council.example"\nward = "{wards[i % 20]}"\n')
    for i, (name, (days, _, _)) in enumerate(SERVICES.items()):
        out.append(f'[[services]]\nname = "{name}"\ncontact = "service{i}@council.example"\n'
                   f'escalation = "head{i}@council.example"\nresponse_days = {days}\n')
    out.append('[[staff]]\nname = "Member Services"\nemail = "staff@council.example"\n')
    return "\n".join(out)


class WorkingDays:
    """Calendar arithmetic by table lookup (the same calendar, precomputed), for the load."""

    def __init__(self, app: App, start: date, end: date):
        self.cal = app.calendar
        self.start = start
        self.cum = [0]
        d = start
        while d <= end:
            self.cum.append(self.cum[-1] + self.cal.is_working_day(d))
            d += timedelta(days=1)

    def between(self, a: date, b: date) -> int:
        return self.cum[(b - self.start).days + 1] - self.cum[(a - self.start).days + 1]

    def add(self, d: date, n: int) -> date:
        while n > 0:
            d += timedelta(days=1)
            n -= self.cal.is_working_day(d)
        return d


def load(app: App, n: int, seed: int = 7) -> float:
    """Bulk-load n cases; returns seconds taken."""
    rng = random.Random(seed)
    t0 = time.perf_counter()
    with app.session() as s:
        members = [(m.id, m.name, m.ward_id) for m in s.exec(select(models.Member))]
        wards = {w.id: w.name for w in s.exec(select(models.Ward))}
        services = {sv.name: (sv.id, sv.contact) for sv in s.exec(select(models.Service))}
    first, last = date(2024, 1, 1), date(2026, 12, 31)
    wd = WorkingDays(app, first - timedelta(days=10), last + timedelta(days=120))
    span = (last - first).days + 1
    names = list(SERVICES)
    eng = db.engine(app.url)
    batch = 10_000
    case_id = req_id = 0
    for lo in range(0, n, batch):
        people, cases, reqs, events, cstats, rstats = [], [], [], [], [], []
        for _ in range(lo, min(lo + batch, n)):
            case_id += 1
            svc = names[min(int(rng.expovariate(0.35)), len(names) - 1)]
            days, subjects, words = SERVICES[svc]
            street = rng.choice(STREETS)
            member_id, member_name, ward_id = rng.choice(members)
            fn, ln = rng.choice(FIRST), rng.choice(LAST)
            people.append({"id": case_id, "name": f"{fn} {ln}",
                           "email": f"{fn}.{ln}{case_id}@example.org".lower(),
                           "address": f"{rng.randint(1, 120)} {street}, {rng.choice(TOWNS)}"})
            day = first + timedelta(days=rng.randrange(span))
            received = datetime(day.year, day.month, day.day, rng.randint(7, 18),
                                rng.randint(0, 59), tzinfo=UTC)
            vocab = words.split()
            issue = " ".join(rng.choice(vocab) if rng.random() < 0.3 else rng.choice(COMMON)
                             for _ in range(rng.randint(15, 60)))
            cases.append({"id": case_id, "reference": f"CW-{day.year}-{case_id:06d}",
                          "status": "open", "member_id": member_id, "ward_id": ward_id,
                          "constituent_id": case_id, "category": svc,
                          "enquiry_type": rng.choice(["direct"] * 6 + ["complaint",
                                                      "service request", "community issue"]),
                          "subject": rng.choice(subjects).format(street=street),
                          "issue": issue, "member_note": "Can you look into this please?",
                          "received_at": received, "opened_at": received})
            local_day = app.calendar.received_day(received)
            due = wd.add(local_day, days)
            req_id += 1
            roll = rng.random()
            answered_at = None
            if roll < 0.93:  # most answered, a tail of them late
                took = max(0, int(rng.gammavariate(2.2, days / 3.2)))
                a = wd.add(local_day, took)
                answered_at = datetime(a.year, a.month, a.day, 11, tzinfo=UTC)
            if answered_at and answered_at.date() > last + timedelta(days=20):
                answered_at = None
            reqs.append({"id": req_id, "case_id": case_id, "service_id": services[svc][0],
                         "contact": services[svc][1], "token": "x",
                         "state": "answered" if answered_at else "sent",
                         "sent_at": received, "due": due, "due_rule": "",
                         "answered_at": answered_at,
                         "answered_by": services[svc][1] if answered_at else None})
            events.append({"case_id": case_id, "at": received, "kind": "opened", "text": ""})
            events.append({"case_id": case_id, "request_id": req_id, "at": received,
                           "kind": "request_sent", "text": f"Request sent to {svc}."})
            if answered_at:
                events.append({"case_id": case_id, "request_id": req_id, "at": answered_at,
                               "kind": "service_reply", "text": "Thank you. " + " ".join(
                                   rng.choice(vocab) for _ in range(12))})
            escalations = 0
            if not answered_at or answered_at.date() > due + timedelta(days=7):
                if rng.random() < 0.6:
                    escalations = 1
                    events.append({"case_id": case_id, "request_id": req_id,
                                   "at": received + timedelta(days=21), "kind": "escalated",
                                   "text": "Escalated."})
            closed = answered_at + timedelta(days=7) if answered_at and rng.random() < 0.8 \
                else None
            if closed:
                cases[-1].update(status="closed", closed_at=closed)
            month = f"{day.year:04d}-{day.month:02d}"
            common = {"case_id": case_id, "ward": wards[ward_id], "member_id": member_id,
                      "member": member_name, "category": svc, "service": svc,
                      "enquiry_type": cases[-1]["enquiry_type"]}
            cstats.append({**common, "opened_on": day, "opened_month": month,
                           "closed_on": closed.date() if closed else None,
                           "closed_month": closed.strftime("%Y-%m") if closed else None})
            a_day = answered_at.date() if answered_at else None
            rstats.append({**common, "request_id": req_id, "state": reqs[-1]["state"],
                           "sent_on": day, "sent_month": month, "due": due,
                           "answered_on": a_day,
                           "working_days": max(wd.between(local_day, a_day), 0)
                           if a_day else None,
                           "on_time": a_day <= due if a_day else None,
                           "escalations": escalations})
        with eng.begin() as c:
            for model, rows in ((models.Constituent, people), (models.Case, cases),
                                (models.Request, reqs), (models.Event, events),
                                (models.CaseStat, cstats), (models.RequestStat, rstats)):
                c.execute(insert(model), _same_keys(rows))
        print(f"  loaded {min(lo + batch, n):>7} cases  {time.perf_counter() - t0:6.1f} s",
              flush=True)
    return time.perf_counter() - t0


def analyze(app: App) -> None:
    """What autovacuum does to a live database after a while: statistics for the planner and,
    on PostgreSQL, the visibility map (so the first searches are not the vacuum's)."""
    eng = db.engine(app.url)
    if eng.dialect.name == "postgresql":
        with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("VACUUM ANALYZE")
    else:
        with eng.begin() as c:
            c.exec_driver_sql("ANALYZE")


def _same_keys(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = {k for r in rows for k in r}
    return [{k: r.get(k) for k in keys} for r in rows]


def timed(fn: Any, repeat: int) -> tuple[list[float], Any]:
    out, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - t)
    return out, result


def bench(app: App, label: str, n: int, loaded: bool = False) -> dict[str, float]:
    load_s = index_s = 0.0
    if not loaded:
        print(f"{label}: loading {n} cases ...", flush=True)
        t = time.perf_counter()
        with search.index_suspended(db.engine(app.url)):  # as an import would
            load_s = load(app, n)
        index_s = time.perf_counter() - t - load_s
        analyze(app)
    today = date(2027, 1, 15)
    period = between(date(2024, 1, 1), date(2026, 12, 31))
    with app.session() as s:
        def whole() -> list[dict[str, Any]]:  # as `mailflow report` runs it: rows and total
            rows, total = report.with_total(s, period, ["service", "month"], today)
            return [*rows, total]

        report_times, rows = timed(whole, 5)
        total = rows[-1]
        year = between(date(2026, 1, 1), date(2026, 12, 31))
        year_times, _ = timed(lambda: report.report(s, year, ["ward", "member"], today), 5)

        def searches(queries: list[str]) -> list[float]:
            times = []
            for q in queries:
                ts, _ = timed(lambda q=q: search.search(s, app.settings, app.calendar, q), 3)
                times += ts[1:]  # the first run of each warms the cache
            return times

        one, three = searches(ONE_WORD), searches(THREE_WORDS)
    figures = {
        "load_s": load_s,
        "index_build_s": index_s,
        "report_median_s": statistics.median(report_times),
        "report_max_s": max(report_times),
        "report_year_ward_member_s": statistics.median(year_times),
        "search_1_median_ms": 1000 * statistics.median(one),
        "search_1_max_ms": 1000 * max(one),
        "search_3_median_ms": 1000 * statistics.median(three),
        "search_3_max_ms": 1000 * max(three),
    }
    print(f"{label}: {len(rows) - 1} groups (service x month), council: "
          f"{total['opened']} cases, {total['requests']} requests, "
          f"{total['on_time_pct']}% on time, median {total['median_days']} days")
    for k, v in figures.items():
        print(f"  {k:<28} {v:10.3f}")
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=200_000)
    ap.add_argument("--postgres", help="a PostgreSQL URL: a fresh schema is made and dropped")
    ap.add_argument("--keep", help="folder to keep the SQLite file in (default: a temp dir); "
                                   "the PostgreSQL schema is kept too")
    ap.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    ap.add_argument("--database", metavar="URL",
                    help="PostgreSQL only, on this database (as --postgres URL --no-sqlite)")
    ap.add_argument("--schema", help="time the cases a --keep run left in this PostgreSQL "
                                     "schema (named at its end) instead of loading new ones")
    args = ap.parse_args()
    if args.database:
        if not args.database.startswith("postgres"):
            ap.error("--database: a PostgreSQL URL (without it the run is on SQLite)")
        args.postgres, args.no_sqlite = args.database, True
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "bench.db"
        path.unlink(missing_ok=True)
        if not args.no_sqlite:
            results["sqlite"] = bench(_app(folder, f"sqlite:///{path}"), "sqlite", args.cases)
        if args.postgres:
            schema = args.schema or "bench_" + uuid.uuid4().hex[:8]
            admin = create_engine(db.normalise_url(args.postgres), isolation_level="AUTOCOMMIT")
            if not args.schema:
                with admin.connect() as c:
                    c.execute(text(f'CREATE SCHEMA "{schema}"'))
            try:
                url = db.normalise_url(args.postgres)
                url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
                results["postgresql"] = bench(_app(folder, url), "postgresql", args.cases,
                                              loaded=bool(args.schema))
            finally:
                if args.keep or args.schema:
                    print(f"kept PostgreSQL schema {schema}")
                else:
                    with admin.connect() as c:
                        c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    ok = all(r["report_median_s"] < 2 and r["search_1_median_ms"] < 50
             and r["search_3_median_ms"] < 50 for r in results.values())
    print("targets (report < 2 s, search median < 50 ms):", "met" if ok else "MISSED")
    return 0


def _app(folder: Path, url: str) -> App:
    cfg = folder / f"bench-{uuid.uuid4().hex[:6]}.toml"
    cfg.write_text(council_toml(url))
    app = App(settings.load(cfg))
    db.upgrade(app.url)
    app.start(clock.now())  # the directory, synchronised
    return app


if __name__ == "__main__":
    sys.exit(main())
