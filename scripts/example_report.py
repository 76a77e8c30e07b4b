#!/usr/bin/env python3
"""Make docs/example-report.html: the HTML report of a known data set.

    .venv/bin/python scripts/example_report.py [--out docs/example-report.html] [--cases 600]

The sample council of config/mailflow.toml (four services, four members, Scottish bank
holidays), with `--cases` cases spread over 2026 from a fixed random seed, each opened and
answered through the casework domain itself (cases.open_case, record_service_reply), so the
statistics are the ones production writes. The report is the second half of 2026 by
service, as `mailflow report --period 2026H2 --by service --html FILE` makes it, on
15 January 2027.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailflow import clock, db, models, settings  # noqa: E402
from mailflow.app import App  # noqa: E402
from mailflow.casework import cases  # noqa: E402
from mailflow.reports import html, report  # noqa: E402
from mailflow.reports.period import parse  # noqa: E402

# How each service behaves: (share of cases, typical working days to answer, subjects)
BEHAVIOUR = {
    "Roads": (0.4, 6, ["Pothole on Main Street", "Street light out", "Gritting request"]),
    "Housing": (0.25, 8, ["Damp in council flat", "Repair not done", "Rent query"]),
    "Waste": (0.25, 3, ["Missed bin collection", "Fly-tipping in lane", "Recycling box"]),
    "Environmental Health": (0.1, 9, ["Noise complaint", "Rats in garden", "Dog fouling"]),
}
TODAY = date(2027, 1, 15)


def build(app: App, n: int, seed: int = 2026) -> None:
    rng = random.Random(seed)
    names = list(BEHAVIOUR)
    weights = [BEHAVIOUR[s][0] for s in names]
    for i in range(n):
        svc_name = rng.choices(names, weights)[0]
        _, typical, subjects = BEHAVIOUR[svc_name]
        day = date(2026, 1, 1) + timedelta(days=rng.randrange(365))
        received = datetime(day.year, day.month, day.day, rng.randint(8, 19), tzinfo=UTC)
        member = rng.choice(app.settings.members)
        service = app.settings.service(svc_name)
        with app.session() as s:
            case = cases.open_case(app.context, s, cases.NewCase(
                member=member, subject=rng.choice(subjects), issue="(example)", member_note="",
                constituent_name=f"Resident {i}", constituent_email=f"resident{i}@example.org",
                service=service, received_at=received), received)
            if rng.random() < 0.06 and received < datetime(2026, 12, 20, tzinfo=UTC):
                # Never answered: overdue by now, and escalated three weeks after receipt.
                [req] = list(s.exec(db_select(case.id)))
                cases.event(s, case, "escalated", received + timedelta(days=21),
                            request_id=req.id, text="Escalated to the head of service.")
                cases.changed(s, case)
                s.commit()
                continue
            # Slower in the autumn, as a service under pressure is.
            slow = 1.6 if day.month in (9, 10, 11) else 1.0
            took = int(rng.gammavariate(2.0, typical * slow / 2.0))
            answered = app.calendar.add_working_days(app.calendar.received_day(received), took)
            at = datetime(answered.year, answered.month, answered.day, 11, tzinfo=UTC)
            if at.date() < TODAY:
                [req] = list(s.exec(db_select(case.id)))
                cases.record_service_reply(app.context, s, case, req, req.contact, "Answered.", at,
                                           raw_message_id=None, message_id=None,
                                           evidence="example")
                closed = at + timedelta(days=7)  # kept open a week for follow-up, then closed
                if closed.date() < TODAY and rng.random() < 0.9:
                    case.status, case.closed_at = "closed", closed
                    cases.changed(s, case)
            s.commit()


def db_select(case_id: int | None):  # type: ignore[no-untyped-def]
    from sqlmodel import select

    return select(models.Request).where(models.Request.case_id == case_id)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "example-report.html"))
    ap.add_argument("--cases", type=int, default=600)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "council.toml"
        text = (ROOT / "config" / "mailflow.toml").read_text()
        text = text.replace('url = "sqlite:///../data/mailflow.db"',
                            'url = "sqlite:///example.db"')
        text = text.replace('maildir = "../data/sent"', 'maildir = "sent"')
        cfg.write_text(text)
        app = App(settings.load(cfg))
        db.upgrade(app.url)
        app.start(clock.now())  # the directory, synchronised
        build(app, args.cases)
        period = parse("2026H2")
        with app.session() as s:
            rows, total = report.with_total(s, period, ["service"], TODAY)
            page = html.page(app, s, period, ["service"], rows, total, TODAY)
        db.engine(app.url).dispose()
    Path(args.out).write_text(page, encoding="utf-8")
    print(f"wrote {args.out}: {total['opened']} cases opened in {period.label}, "
          f"{total['on_time_pct']}% answered on time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
