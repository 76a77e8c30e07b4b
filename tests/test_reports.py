"""`mailflow report` on a known data set (tests/reportdata.py) with answers counted by hand
across weekends and Scottish bank holidays; every output format parsed back; statistics that
survive the deletion of cases."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import delete
from sqlmodel import select

from mailflow import models
from mailflow.app import App
from mailflow.reports import period, report
from tests import reportdata as rd
from tests.conftest import run_cli

TODAY = date(2026, 12, 15)
NOV = period.parse("2026-11")


def rows(app: App, p: period.Period, by: list[str], today: date = TODAY) -> list[dict]:
    with app.session() as s:
        return report.report(s, p, by, today)


def by_group(result: list[dict]) -> dict:
    return {r["group"]: r for r in result}


def test_council_totals_for_november(app: App) -> None:
    rd.council_autumn(app)
    [all_] = rows(app, NOV, [])
    assert all_["group"] == "all"
    # Six cases and requests in November; answered on time: 1 and 3; late: 2 and 4; overdue:
    # 5; not yet due: 6. On time 2 of the 5 whose outcome is known.
    assert {k: all_[k] for k in report.METRICS} == {
        "opened": 6, "closed": 1, "requests": 6, "answered": 4, "answered_on_time": 2,
        "on_time_pct": 40.0, "median_days": 6, "p90_days": 12, "overdue_now": 1,
        "escalations": 1}
    # October: one request, answered on time in 5 days.
    assert (all_["opened_prev"], all_["on_time_pct_prev"], all_["median_days_prev"]) \
        == (1, 100.0, 5)
    assert (all_["opened_change"], all_["on_time_pct_change"], all_["median_days_change"]) \
        == (5, -60.0, 1)
    assert (all_["from"], all_["to"], all_["previous_from"], all_["previous_to"]) == (
        "2026-11-01", "2026-11-30", "2026-10-01", "2026-10-31")


def test_by_service_and_by_ward(app: App) -> None:
    rd.council_autumn(app)
    service = by_group(rows(app, NOV, ["service"]))
    assert list(service) == ["Roads", "Waste"]
    roads, waste = service["Roads"], service["Waste"]
    # Roads: 1 (6 days, on time), 2 (12, late), 6 (not yet due).
    assert (roads["requests"], roads["answered_on_time"], roads["on_time_pct"]) == (3, 1, 50.0)
    assert (roads["median_days"], roads["p90_days"], roads["overdue_now"]) == (9, 12, 0)
    # Waste: 3 (5 days, on time), 4 (6, late), 5 (overdue, escalated).
    assert (waste["requests"], waste["answered_on_time"], waste["on_time_pct"]) == (3, 1, 33.3)
    assert (waste["median_days"], waste["p90_days"], waste["overdue_now"]) == (5.5, 6, 1)
    assert waste["escalations"] == 1 and roads["escalations"] == 0
    assert roads["on_time_pct_prev"] == 100.0 and waste["on_time_pct_prev"] is None

    ward = by_group(rows(app, NOV, ["ward"]))
    assert ward["Bathgate"]["on_time_pct"] == 50.0  # 3 on time, 4 late, 6 not yet due
    assert ward["Linlithgow"]["on_time_pct"] == 33.3  # 1 on time, 2 late, 5 overdue


def test_quarter_across_christmas_and_new_year(app: App) -> None:
    rd.council_autumn(app)
    [q4] = rows(app, period.parse("2026Q4"), [], today=date(2027, 1, 20))
    # Days to answer: 5 (Oct), 6, 12, 5, 6, 9 (case 7: 21 Dec to 7 Jan is 9 working days).
    assert (q4["requests"], q4["answered"], q4["answered_on_time"]) == (8, 6, 4)
    # Overdue on 20 Jan: 5 and 6 (due 15 Dec): on time 4 of 8.
    assert (q4["overdue_now"], q4["on_time_pct"]) == (2, 50.0)
    assert (q4["median_days"], q4["p90_days"]) == (6, 12)
    assert q4["closed"] == 2 and q4["opened_prev"] == 0


def test_several_groupings_and_months(app: App) -> None:
    rd.council_autumn(app)
    result = rows(app, period.parse("2026Q4"), ["service", "month"])
    keys = [(r["service"], r["month"]) for r in result]
    assert keys == [("Roads", "2026-10"), ("Roads", "2026-11"), ("Roads", "2026-12"),
                    ("Waste", "2026-11")]
    assert "group" not in result[0]
    roads_dec = result[2]
    assert (roads_dec["opened"], roads_dec["closed"], roads_dec["requests"]) == (1, 1, 1)
    months = rows(app, period.parse("2026H2"), ["month"])
    assert [m["group"] for m in months] == [f"2026-{m:02d}" for m in range(7, 13)]
    assert [m["opened"] for m in months] == [0, 0, 0, 1, 6, 1]
    # A month compares with the month six months before (the previous half-year's).
    assert months[4]["opened_prev"] == 0


def test_types_members_and_categories(app: App) -> None:
    rd.council_autumn(app)
    assert by_group(rows(app, NOV, ["type"]))["direct"]["opened"] == 6
    members = by_group(rows(app, NOV, ["member"]))
    assert (members["Cllr Jane Smith"]["opened"], members["Cllr Tom Brown"]["opened"]) == (3, 3)
    assert set(by_group(rows(app, NOV, ["category"]))) == {"Roads", "Waste"}


def test_statistics_survive_deletion_and_anonymisation(app: App) -> None:
    ids = rd.council_autumn(app)
    before = rows(app, period.parse("2026Q4"), ["service", "ward"])
    with app.session() as s:  # what a retention job will do: remove the old cases entirely
        for key in ("c1", "c2", "oct"):
            cid = ids[key]
            s.execute(delete(models.Outbox).where(models.Outbox.case_id == cid))
            s.execute(delete(models.Notification).where(models.Notification.case_id == cid))
            s.execute(delete(models.Attachment).where(models.Attachment.case_id == cid))
            s.execute(delete(models.CaseLink).where((models.CaseLink.case_id == cid)
                                                    | (models.CaseLink.other_id == cid)))
            s.execute(delete(models.Event).where(models.Event.case_id == cid))
            s.execute(delete(models.Holding).where(models.Holding.case_id == cid))
            s.execute(delete(models.Request).where(models.Request.case_id == cid))
            s.execute(delete(models.Case).where(models.Case.id == cid))
        for c in s.exec(select(models.Constituent)):
            c.name, c.email, c.address = None, None, None
            s.add(c)
        s.commit()
        assert s.get(models.Case, ids["c1"]) is None
        stat_columns = set(models.CaseStat.model_fields) | set(models.RequestStat.model_fields)
    assert before == rows(app, period.parse("2026Q4"), ["service", "ward"])
    # Nothing personal is kept: no constituent, no text, no subject.
    assert not stat_columns & {"constituent_id", "subject", "issue", "text", "contact", "name",
                               "email", "address"}


def test_periods() -> None:
    assert period.parse("2026H1") == period.Period(date(2026, 1, 1), date(2026, 6, 30), "2026H1")
    assert period.parse("2026Q3").previous() == period.parse("2026Q2")
    assert period.parse("2026Q1").previous() == period.parse("2025Q4")
    assert period.parse("2026H1").previous().label == "2025H2"
    assert period.parse("2026-10").end == date(2026, 10, 31)
    assert period.parse("2024-02").end == date(2024, 2, 29)
    assert period.parse("2026").previous().label == "2025"
    p = period.between(date(2026, 3, 10), date(2026, 3, 19))
    assert (p.previous().start, p.previous().end) == (date(2026, 2, 28), date(2026, 3, 9))
    for bad in ("2026H3", "2026Q5", "2026-13", "26Q1", "last month"):
        with pytest.raises(ValueError):
            period.parse(bad)


def test_percentiles() -> None:
    assert report.percentile([], 50) is None
    assert report.percentile([(7, 1)], 50) == 7
    assert report.percentile([(5, 1), (6, 2), (12, 1)], 50) == 6
    assert report.percentile([(1, 1), (2, 1)], 50) == 1.5
    values = [(d, 1) for d in range(1, 11)]  # 1..10: p90 by nearest rank is the 9th value
    assert report.percentile(values, 90) == 9
    assert report.percentile([(3, 9), (20, 1)], 90) == 3


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts_or_links = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "script" or (tag == "link") or (a.get("src") or "").startswith("http"):
            self.scripts_or_links += 1


def test_every_format_parses(app: App, config_file: Path, tmp_path: Path) -> None:
    rd.council_autumn(app)
    now = ["--now", "2026-12-15T12:00:00Z"]

    done = run_cli(config_file, "report", "--period", "2026-11", "--by", "service", "--json",
                   *now)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [r["group"] for r in data] == ["Roads", "Waste"]
    required = {"group", "opened", "closed", "requests", "answered_on_time", "on_time_pct",
                "median_days", "p90_days", "overdue_now", "escalations"}
    assert all(required <= set(r) for r in data)
    assert data[1]["median_days"] == 5.5 and data[1]["on_time_pct"] == 33.3

    done = run_cli(config_file, "report", "--period", "2026-11", "--by", "ward,member", "--csv",
                   *now)
    assert done.returncode == 0, done.stderr
    table = list(csv.DictReader(io.StringIO(done.stdout)))
    assert {"ward", "member"} <= set(table[0]) and "group" not in table[0]
    assert (required - {"group"}) <= set(table[0])
    assert [(r["ward"], r["member"], r["opened"]) for r in table] == [
        ("Bathgate", "Cllr Tom Brown", "3"), ("Linlithgow", "Cllr Jane Smith", "3")]

    done = run_cli(config_file, "report", "--from", "2026-11-01", "--to", "2026-11-30", *now)
    assert done.returncode == 0, done.stderr
    assert "2026-11-01 to 2026-11-30" in done.stdout and " 40 " in done.stdout

    out = tmp_path / "report.html"
    done = run_cli(config_file, "report", "--period", "2026Q4", "--by", "service",
                   "--html", str(out), *now)
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    parser = _Page()
    parser.feed(page)
    assert parser.scripts_or_links == 0  # self-contained: nothing to fetch, nothing to run
    svgs = [a for t, a in parser.tags if t == "svg"]
    assert [a["data-chart"] for a in svgs] == ["bars", "trend", "on-time"]
    for chunk in page.split("<svg")[1:]:  # each chart is well-formed XML
        ET.fromstring("<svg" + chunk.split("</svg>")[0] + "</svg>")
    bars = [a for t, a in parser.tags if t == "rect" and a.get("class") == "bar"]
    assert len(bars) >= 4
    [target] = [a for t, a in parser.tags if t == "line" and a.get("class") == "target"]
    assert target["data-target"] == "95"
    trend = [a for t, a in parser.tags if t == "polyline"]
    assert trend and trend[0]["data-series"] == "cases opened"
    assert "Roads" in page and "Waste" in page


@pytest.mark.parametrize("args", [["--by", "street"], ["--period", "2026Q5"],
                                  ["--from", "2026-13-01"], ["--period", "2026", "--from",
                                                              "2026-01-01"],
                                  ["--from", "2026-05-01", "--to", "2026-04-01"]])
def test_bad_arguments_exit_64(app: App, config_file: Path, args: list[str]) -> None:
    done = run_cli(config_file, "report", *args)
    assert done.returncode == 64, done.stdout + done.stderr


def test_init_backfills_statistics_for_older_cases(app: App, config_file: Path) -> None:
    rd.council_autumn(app)
    before = rows(app, period.parse("2026Q4"), ["service"])
    with app.session() as s:  # a database from before statistics existed
        s.execute(delete(models.RequestStat))
        s.execute(delete(models.CaseStat))
        s.commit()
    assert rows(app, period.parse("2026Q4"), ["service"]) == []
    done = run_cli(config_file, "init")
    assert done.returncode == 0, done.stderr
    assert "statistics written for 8 cases" in done.stdout
    assert rows(app, period.parse("2026Q4"), ["service"]) == before
