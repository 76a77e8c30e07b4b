"""Scheduled reports arrive in the maildir when the clock reaches them, once."""

from __future__ import annotations

import csv
import io
from email.message import EmailMessage

from mailflow import clock
from mailflow.app import App
from mailflow.jobs import tick
from tests import reportdata as rd
from tests.mail import read_sent

STAFF = "member.services@council.example"


def reports(app: App) -> list[EmailMessage]:
    return [m for m in read_sent(app.settings.maildir) if m["X-Mailflow-Kind"] == "report"]


def attachment(msg: EmailMessage, suffix: str) -> str:
    [part] = [p for p in msg.iter_attachments() if p.get_filename().endswith(suffix)]
    return part.get_content()


def test_monthly_report_arrives_on_the_first_at_seven_once(app: App) -> None:
    rd.council_autumn(app)
    tick.tick(app, clock.parse("2026-11-30T23:59:00Z"))
    tick.tick(app, clock.parse("2026-12-01T06:59:00Z"))
    assert reports(app) == []

    result = tick.tick(app, clock.parse("2026-12-01T07:00:00Z"))
    assert result["send_reports"] == {"sent": 3}
    sent = {m["To"]: m for m in reports(app)}
    assert set(sent) == {STAFF, "head.roads@council.example", "head.waste@council.example"}

    staff = sent[STAFF]
    assert "service performance, 2026-11" in staff["Subject"]
    assert staff["Auto-Submitted"] == "auto-generated"
    table = list(csv.DictReader(io.StringIO(attachment(staff, ".csv"))))
    assert [(r["group"], r["on_time_pct"]) for r in table] == [
        ("Roads", "50.0"), ("Waste", "33.3"), ("Council", "40.0")]
    html = staff.get_body(("html",)).get_content()
    assert html.count("<svg") == 3 and 'data-target="95"' in html
    # The same page (one of the two may end in a line break: the stdlib reads an attached
    # text/html file as text and adds one).
    assert attachment(staff, ".html").rstrip("\n") == html.rstrip("\n")
    assert "40" in staff.get_body(("plain",)).get_content()

    roads = sent["head.roads@council.example"]
    assert "Roads against the council" in roads["Subject"]
    assert [r["group"] for r in csv.DictReader(io.StringIO(attachment(roads, ".csv")))] == [
        "Roads", "Council"]

    # Later ticks, a second node, a restart: nothing is sent twice.
    for moment in ("2026-12-01T07:00:00Z", "2026-12-01T07:01:00Z", "2026-12-02T09:00:00Z"):
        assert tick.tick(app, clock.parse(moment))["send_reports"] == {"sent": 0}
    assert len(reports(app)) == 3


def test_six_monthly_enquiry_types_in_summer_time(app: App) -> None:
    rd.council_autumn(app)
    # 07:00 in London on 1 January is 07:00 UTC: December's report and the half-year's.
    tick.tick(app, clock.parse("2027-01-01T07:00:00Z"))
    subjects = sorted(m["Subject"] for m in reports(app) if m["To"] == STAFF)
    assert subjects == ["Test Council casework: enquiry types, 2026H2",
                        "Test Council casework: service performance, 2026-12"]
    types = [m for m in reports(app) if "enquiry types" in m["Subject"]][0]
    table = list(csv.DictReader(io.StringIO(attachment(types, ".csv"))))
    assert [(r["group"], r["opened"]) for r in table] == [("direct", "8"), ("Council", "8")]
    # On 1 July, 07:00 British Summer Time is 06:00 UTC.
    before = len(reports(app))
    tick.tick(app, clock.parse("2027-07-01T05:59:00Z"))
    assert len(reports(app)) == before
    tick.tick(app, clock.parse("2027-07-01T06:00:00Z"))
    new = sorted(m["Subject"] for m in reports(app)[before:] if m["To"] == STAFF)
    assert new == ["Test Council casework: enquiry types, 2027H1",
                   "Test Council casework: service performance, 2027-06"]


def test_a_late_server_catches_up_but_a_new_one_does_not_mail_old_periods(app: App) -> None:
    tick.tick(app, clock.parse("2026-12-03T10:00:00Z"))  # down on the 1st, back on the 3rd
    assert len(reports(app)) == 3
    tick.tick(app, clock.parse("2027-01-09T10:00:00Z"))  # more than a week after 1 January
    assert len(reports(app)) == 3
