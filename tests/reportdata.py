"""A small council year with known answers, built through the casework domain itself
(open_case, record_service_reply), so the statistics are written the way production writes
them. Scotland: St Andrew's Day (Mon 30 Nov 2026), Christmas (Fri 25 Dec, Mon 28 Dec for
Boxing Day) and New Year (Fri 1 Jan 2027, Mon 4 Jan for 2 January) are not working days."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import select

from mailflow import clock, models
from mailflow.app import App
from mailflow.casework import cases

JANE = "jane.smith@council.example"
TOM = "tom.brown@council.example"


def at(text: str) -> datetime:
    return clock.parse(text)


def open_case(app: App, member: str, service: str, when: str, subject: str,
              name: str = "Mary Jones", email: str | None = None, issue: str = "",
              address: str | None = None) -> int:
    now = at(when)
    with app.session() as s:
        new = cases.NewCase(
            member=app.settings.member(member),  # type: ignore[arg-type]
            subject=subject, issue=issue or subject, member_note="",
            constituent_name=name,
            constituent_email=email or f"{name.lower().replace(' ', '.')}@example.org",
            constituent_address=address,
            service=app.settings.service(service), received_at=now)
        case = cases.open_case(app.context, s, new, now)
        s.commit()
        assert case.id is not None
        return case.id


def the_request(s, case_id: int) -> models.Request:  # type: ignore[no-untyped-def]
    return s.exec(select(models.Request).where(models.Request.case_id == case_id)).one()


def answer(app: App, case_id: int, when: str, text: str = "Done.") -> None:
    now = at(when)
    with app.session() as s:
        case = s.get(models.Case, case_id)
        req = the_request(s, case_id)
        cases.record_service_reply(app.context, s, case, req, req.contact, text, now,  # type: ignore[arg-type]
                                   raw_message_id=None, message_id=None, evidence="test")
        s.commit()


def escalate(app: App, case_id: int, when: str) -> None:
    """What the time issue's escalation does to the timeline: an `escalated` event."""
    with app.session() as s:
        case = s.get(models.Case, case_id)
        assert case is not None
        req = the_request(s, case_id)
        cases.event(s, case, "escalated", at(when), text="Escalated.", request_id=req.id)
        cases.changed(s, case)
        s.commit()


def close(app: App, case_id: int, when: str) -> None:
    with app.session() as s:
        case = s.get(models.Case, case_id)
        assert case is not None
        case.status, case.closed_at = "closed", at(when)
        s.add(case)
        cases.changed(s, case)
        s.commit()


def council_autumn(app: App) -> dict[str, int]:
    """The data set of tests/test_reports.py; the comments give each request's due date and
    its working days to answer, counted by hand."""
    ids = {}
    # October: received Thu 1 Oct, due Thu 15 Oct; answered Thu 8 Oct: 5 days, on time.
    ids["oct"] = open_case(app, JANE, "Roads", "2026-10-01T09:00:00Z", "Cracked kerb")
    answer(app, ids["oct"], "2026-10-08T12:00:00Z")
    # 1: Fri 20 Nov, due Mon 7 Dec (30 Nov skipped); answered Tue 1 Dec: 6 days, on time.
    ids["c1"] = open_case(app, JANE, "Roads", "2026-11-20T10:00:00Z", "Pothole on Main Street",
                          name="Mary Jones", issue="A huge pothole outside number 12",
                          address="12 Main Street, Linlithgow")
    answer(app, ids["c1"], "2026-12-01T11:00:00Z", "The pothole will be filled by Friday.")
    # 2: Mon 2 Nov, due Mon 16 Nov; answered Wed 18 Nov: 12 days, late.
    ids["c2"] = open_case(app, JANE, "Roads", "2026-11-02T10:00:00Z", "Broken street light",
                          name="Peter Grant", address="4 Mill Road, Linlithgow")
    answer(app, ids["c2"], "2026-11-18T10:00:00Z")
    # 3: Fri 27 Nov 16:59, before the cut-off; due Mon 7 Dec; answered Mon 7 Dec: 5, on time.
    ids["c3"] = open_case(app, TOM, "Waste", "2026-11-27T16:59:00Z", "Missed bin collection",
                          name="Ann Lee")
    answer(app, ids["c3"], "2026-12-07T16:00:00Z")
    # 4: Fri 27 Nov 17:30, after the cut-off: counts from Tue 1 Dec; due Tue 8 Dec;
    #    answered Wed 9 Dec: 6 days, late.
    ids["c4"] = open_case(app, TOM, "Waste", "2026-11-27T17:30:00Z", "Recycling not collected",
                          name="Bob Hill")
    answer(app, ids["c4"], "2026-12-09T10:00:00Z")
    # 5: Thu 12 Nov, due Thu 19 Nov; never answered: overdue; escalated once.
    ids["c5"] = open_case(app, JANE, "Waste", "2026-11-12T10:00:00Z", "Fly-tipping in the lane",
                          name="Mary Jones")
    escalate(app, ids["c5"], "2026-11-24T09:00:00Z")
    # 6: Mon 30 Nov (a bank holiday): counts from Tue 1 Dec, due Tue 15 Dec; unanswered and
    #    not yet overdue on 15 Dec, so not counted in the on-time share.
    ids["c6"] = open_case(app, TOM, "Roads", "2026-11-30T10:00:00Z", "Gritting on Hill Road",
                          name="Carol King")
    # 7: Mon 21 Dec, due Fri 8 Jan 2027 (25, 28 Dec, 1, 4 Jan skipped); answered Thu 7 Jan:
    #    9 days, on time.
    ids["c7"] = open_case(app, JANE, "Roads", "2026-12-21T10:00:00Z", "Ice on the pavement",
                          name="Dan Moss")
    answer(app, ids["c7"], "2027-01-07T10:00:00Z")
    close(app, ids["c2"], "2026-11-25T10:00:00Z")
    close(app, ids["c1"], "2026-12-02T10:00:00Z")
    return ids
