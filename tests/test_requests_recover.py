"""Issue 13, items 2-4, through email (and the CLI's `case --json`) with a moving clock, on
SQLite and PostgreSQL: `#reopen` sends the service a follow-up that is answered, chased and
closes the case; a member's follow-up with `#chase` chases at once, once a working day; a
bounced request is resent and re-addressed and the staff digest lists it until then; a
service added later counts its due date from the day it is sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlmodel import col, select

from mailflow import clock, db, models
from mailflow.app import App
from mailflow.casework import followups
from mailflow.inbound import pipeline
from mailflow.jobs import tick
from tests.mail import CASEWORK, JANE, ROADS, message, reply_to
from tests.rules import FRIDAY, STAFF, cli, make_app, open_case, rules_app
from tests.test_automatic import corpus_bytes
from tests.test_loop import ours
from tests.test_time import body, mail

__all__ = ["rules_app"]  # a fixture

WASTE = "waste@council.example"
NEW_PERSON = "new.person@council.example"
HOUSING = """
[[services]]
name = "Housing"
contact = "housing@council.example"
response_days = 10
keywords = ["damp", "repair"]
"""


def at(day: str, hhmm: str = "10:00") -> datetime:
    return clock.parse(f"2026-{day}T{hhmm}:00Z")  # GMT in winter: UTC is local time


def ingest(app: App, msg: object, now: datetime) -> pipeline.Outcome:
    raw = msg if isinstance(msg, bytes) else msg.as_bytes()  # type: ignore[attr-defined]
    raw_id, _ = pipeline.receive(app, raw, source="ingest", now=now)
    out = pipeline.process(app, raw_id, now)
    assert out is not None
    return out


def says(app: App, ref: str, text: str, now: datetime, sender: str = JANE) -> pipeline.Outcome:
    """A member's (or staff's) reply to the case's acknowledgement: proof of receipt."""
    return ingest(app, message(sender, CASEWORK, f"RE: [{ref}] Pothole on Main Street", text,
                               **ours(app, ref)), now)


def outbox(app: App, kind: str, to: str | None = None) -> list[models.Outbox]:
    with app.session() as s:
        rows = s.exec(select(models.Outbox).where(models.Outbox.kind == kind)
                      .order_by(col(models.Outbox.id))).all()
    return [r for r in rows if to is None or to in r.recipients]


def last_reply(app: App) -> str:
    return body(outbox(app, "command_reply")[-1])


def requests(app: App, ref: str) -> list[models.Request]:
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        return list(s.exec(select(models.Request).where(models.Request.case_id == case.id)
                           .order_by(col(models.Request.id))))


def case_json(app: App, ref: str) -> dict:  # type: ignore[type-arg]
    out = cli(app, "case", ref, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def kinds(app: App, ref: str) -> list[str]:
    return [e["kind"] for e in case_json(app, ref)["timeline"]]


def answered_by_roads(app: App, ref: str, text: str, now: datetime) -> None:
    [request] = outbox(app, "request", ROADS)
    assert ingest(app, reply_to(mail(request), f"Bob Roads <{ROADS}>", text), now).case == ref


# -- #reopen -----------------------------------------------------------------------------------
def test_reopen_sends_a_follow_up_that_is_chased_answered_and_closes(rules_app: App) -> None:
    app = rules_app
    ref = open_case(app)
    tick.tick(app, FRIDAY)
    answered_by_roads(app, ref, "We filled the pothole on Monday.", at("11-24", "11:00"))
    assert case_json(app, ref)["status"] == "answered"

    out = says(app, ref, "#reopen it has opened up again\nThe patch has already broken up.",
               at("11-25"))
    assert "follow-up request sent to Roads" in out.reason, out.reason
    first, follow = requests(app, ref)
    assert (follow.follow_up_of, follow.state, follow.contact) == (first.id, "sent", ROADS)
    assert follow.follow_up_reason == "it has opened up again\nThe patch has already broken up."
    # A fresh due date: 10 working days from Wednesday 25 November (St Andrew's Day skipped).
    assert follow.due == date(2026, 12, 10) and first.due == date(2026, 12, 7)
    data = case_json(app, ref)
    assert data["status"] == "open" and data["open_until"] is None
    shown = data["requests"][1]
    assert shown["follow_up_of"] == first.id and shown["due_from"] == "2026-11-25T10:00:00Z"
    assert "from 2026-11-25" in shown["due_rule"]
    assert "reopened" in kinds(app, ref)

    tick.tick(app, at("11-25"))
    [sent] = outbox(app, "follow_up", ROADS)
    text = body(sent)
    assert "has reopened the enquiry" in text and "it has opened up again" in text
    assert "> We filled the pothole on Monday." in text  # the previous answer, quoted
    assert "Thursday 10 December 2026" in text
    assert mail(sent)["Reply-To"] == f"casework+{ref.lower()}.{follow.token}@council.example"
    assert "follow-up request sent to Roads" in last_reply(app)

    # The chase policy: a chase the working day after it is due, not before.
    assert (follow.next_step, follow.next_step_on) == ("chase", date(2026, 12, 11))
    tick.tick(app, at("12-10"))
    assert outbox(app, "chase") == []
    tick.tick(app, at("12-11"))
    [chase] = outbox(app, "chase", ROADS)
    assert chase.request_id == follow.id
    assert mail(chase)["In-Reply-To"] == mail(sent)["Message-ID"]  # threaded on the follow-up

    # Roads answers the chase: the follow-up is answered, then the case closes by itself.
    ingest(app, reply_to(mail(chase), ROADS, "Resurfaced the whole stretch today."),
           at("12-11", "14:00"))
    first, follow = requests(app, ref)
    assert (first.state, follow.state) == ("answered", "answered")
    assert case_json(app, ref)["status"] == "answered"
    tick.tick(app, at("12-21"))
    data = case_json(app, ref)
    assert data["status"] == "closed"
    assert [e["data"].get("outcome") for e in data["timeline"] if e["kind"] == "closed"] == \
        ["answered"]


def test_reopen_naming_a_service_asks_that_service(rules_app: App) -> None:
    app = rules_app
    ref = open_case(app)
    tick.tick(app, FRIDAY)
    answered_by_roads(app, ref, "Not ours: the verge is full of dumped rubbish.",
                      at("11-24", "11:00"))
    says(app, ref, "#close", at("11-24", "12:00"))
    assert case_json(app, ref)["status"] == "closed"

    out = says(app, ref, "#reopen Waste", at("11-25"), sender=STAFF)  # staff may, too
    assert "follow-up request sent to Waste" in out.reason, out.reason
    roads, waste = requests(app, ref)
    assert (waste.contact, waste.follow_up_of, waste.follow_up_reason) == (WASTE, roads.id, "")
    assert waste.due == date(2026, 12, 3)  # Waste's 5 working days, from 25 November
    tick.tick(app, at("11-25"))
    [sent] = outbox(app, "follow_up", WASTE)
    assert "> Not ours: the verge is full of dumped rubbish." in body(sent)
    # While the follow-up waits, the case is open: a second #reopen is refused and says why.
    says(app, ref, "#reopen Roads", at("11-25", "11:00"))
    assert "the case is open, not answered or closed" in last_reply(app)

    ingest(app, reply_to(mail(sent), WASTE, "Cleared the rubbish this morning."),
           at("11-27"))
    assert [r.state for r in requests(app, ref)] == ["answered", "answered"]
    assert case_json(app, ref)["status"] == "answered"


def test_reopen_after_closing_unanswered_asks_the_last_service_again(rules_app: App) -> None:
    app = rules_app
    ref = open_case(app)
    says(app, ref, "#close she sorted it herself", at("11-23"))
    assert [r.state for r in requests(app, ref)] == ["withdrawn"]
    says(app, ref, "#reopen\nIt is back.", at("11-24"))
    withdrawn, follow = requests(app, ref)
    assert (follow.follow_up_of, follow.follow_up_reason, follow.contact) == \
        (None, "It is back.", ROADS)  # no answer to quote
    tick.tick(app, at("11-24"))
    [sent] = outbox(app, "follow_up", ROADS)
    assert "The previous answer" not in body(sent)
    ingest(app, reply_to(mail(sent), ROADS, "Filled again."), at("11-26"))
    assert [r.state for r in requests(app, ref)] == ["withdrawn", "answered"]
    assert case_json(app, ref)["status"] == "answered"  # the withdrawn one waits no more


def test_reopen_parse_rule(rules_app: App) -> None:
    s = rules_app.settings
    assert followups.parse_reopen(s, "Waste", "") == ("Waste", "")
    assert followups.parse_reopen(s, "waste: bins still there", "see photo") == \
        ("Waste", "bins still there\nsee photo")
    assert followups.parse_reopen(s, "Waste was never collected", "") == \
        (None, "Waste was never collected")  # a sentence is a reason, even if it names one
    assert followups.parse_reopen(s, "", "they did not fix it") == (None, "they did not fix it")


# -- #chase --------------------------------------------------------------------------------------
def test_follow_up_with_chase_chases_at_once_and_once_a_working_day(rules_app: App) -> None:
    app = rules_app
    ref = open_case(app)
    tick.tick(app, FRIDAY)
    [request] = outbox(app, "request", ROADS)

    out = says(app, ref, "Any news from Roads? The resident phoned again. #chase",
               at("11-24"))
    assert out.disposition == "update"
    [chase] = outbox(app, "chase", ROADS)
    text = body(chase)
    assert "asks for news" in text and "Any news from Roads? The resident phoned again." in text
    assert "#chase" not in text
    assert mail(chase)["In-Reply-To"] == mail(request)["Message-ID"]
    [req] = requests(app, ref)
    assert mail(chase)["Reply-To"] == f"casework+{ref.lower()}.{req.token}@council.example"
    assert "chase sent to Roads" in last_reply(app)
    data = case_json(app, ref)
    [update] = [e for e in data["timeline"] if e["kind"] == "member_update"]
    assert update["text"].startswith("Any news from Roads?")  # the follow-up is recorded
    assert data["requests"][0]["chased_at"] == "2026-11-24T10:00:00Z"

    # A second chase the same working day is refused, saying when the last one went.
    says(app, ref, "#chase", at("11-24", "15:00"))
    reply = " ".join(last_reply(app).split())
    assert "Refused #chase: Roads was chased at 10:00 on Tuesday 24 November 2026" in reply
    assert "try again on Wednesday 25 November 2026" in reply
    assert len(outbox(app, "chase", ROADS)) == 1
    assert kinds(app, ref).count("command_refused") == 1

    # A plain follow-up is recorded and chases nobody.
    says(app, ref, "Still nothing? She is getting worried.", at("11-24", "16:00"))
    assert kinds(app, ref).count("member_update") == 2
    assert len(outbox(app, "chase", ROADS)) == 1

    # The next working day it may be chased again.
    says(app, ref, "#chase", at("11-25", "09:00"))
    assert len(outbox(app, "chase", ROADS)) == 2


# -- failed requests -----------------------------------------------------------------------------
def staff_digest(app: App) -> str:
    return body(outbox(app, "staff_digest")[-1])


def test_bounced_request_is_resent_then_readdressed_and_in_the_staff_digest(
        rules_app: App) -> None:
    app = rules_app
    ref = open_case(app)
    tick.tick(app, FRIDAY)
    [first] = outbox(app, "request", ROADS)
    reply_address = str(mail(first)["Reply-To"])
    ingest(app, corpus_bytes("dsn_postfix.eml", mail(first)["Message-ID"], reply_address),
           at("11-23", "09:00"))

    [shown] = case_json(app, ref)["requests"]
    assert shown["state"] == "undeliverable"
    assert "bounced" in shown["undeliverable_reason"] and "5.1.1" in shown["undeliverable_reason"]
    assert shown["undeliverable_at"] == "2026-11-23T09:00:00Z"
    tick.tick(app, at("11-23"))
    text = staff_digest(app)
    assert "Bounced requests (1)" in text, text
    assert f"{ref}  [undeliverable]  Roads <{ROADS}>: bounced" in text
    assert "; #resend, or #contact ADDRESS" in text
    assert "Other notices" not in text  # the bounce is not a stray notice any more
    tick.tick(app, at("11-24", "08:30"))
    assert "Bounced requests (1)" in staff_digest(app)  # listed every day until resolved

    # #resend: the same request (same reply address) again, due counted from today.
    says(app, ref, "#resend", at("11-24"))
    assert "request to Roads resent to" in last_reply(app)
    [req] = requests(app, ref)
    assert (req.state, req.undeliverable_reason) == ("sent", None)
    assert req.due == date(2026, 12, 9) and "(resent)" in req.due_rule
    tick.tick(app, at("11-24"))
    again = outbox(app, "request", ROADS)[-1]
    assert again.id != first.id and str(mail(again)["Reply-To"]) == reply_address
    with app.session() as s:
        assert all(h.resolved_at for h in s.exec(select(models.Holding)))
    tick.tick(app, at("11-25", "08:30"))
    with app.session() as s:  # resolved: nothing left for the staff digest
        assert s.exec(select(models.Digest.items).where(models.Digest.audience == "staff")
                      .where(models.Digest.period == "2026-11-25")).one() == 0

    # It bounces again; staff re-address it, but only to a trusted domain.
    ingest(app, corpus_bytes("dsn_postfix.eml", mail(again)["Message-ID"], reply_address),
           at("11-25", "09:00"))
    assert requests(app, ref)[0].state == "undeliverable"
    says(app, ref, "#contact someone@gmail.example", at("11-25"), sender=STAFF)
    assert "someone@gmail.example is not in a trusted domain" in last_reply(app)
    assert requests(app, ref)[0].state == "undeliverable"
    says(app, ref, f"#contact {NEW_PERSON}", at("11-25"), sender=STAFF)
    assert f"request to Roads re-addressed to {NEW_PERSON}" in last_reply(app)
    [req] = requests(app, ref)
    assert (req.state, req.contact, req.due) == ("sent", NEW_PERSON, date(2026, 12, 10))
    tick.tick(app, at("11-25"))
    [to_new] = outbox(app, "request", NEW_PERSON)
    assert str(mail(to_new)["Reply-To"]) == reply_address
    assert "request_readdressed" in kinds(app, ref)

    # The named person answers, as the request's contact.
    ingest(app, reply_to(mail(to_new), NEW_PERSON, "Filled on Thursday."), at("11-27"))
    assert requests(app, ref)[0].state == "answered"
    assert case_json(app, ref)["status"] == "answered"


def test_resend_with_nothing_undeliverable_is_refused(rules_app: App) -> None:
    app = rules_app
    ref = open_case(app)
    says(app, ref, "#resend", at("11-23"))
    assert "no request on this case is undeliverable (its requests are sent)" in \
        " ".join(last_reply(app).split())


# -- due dates per request -----------------------------------------------------------------------
@pytest.fixture
def housing_app(tmp_path: Path, db_url: str) -> Iterator[App]:
    a = make_app(tmp_path, db_url, extra=HOUSING)
    yield a
    db.engine(a.url).dispose()


@pytest.mark.parametrize(("sent", "due"), [("12-03", date(2026, 12, 17)),  # working day 8
                                            ("12-04", date(2026, 12, 18))])  # the issue's
def test_a_service_added_later_counts_from_the_day_it_is_sent(housing_app: App, sent: str,
                                                              due: date) -> None:
    app = housing_app
    ref = open_case(app)  # Friday 20 November, to Roads
    says(app, ref, "#service Housing", at(sent))
    roads, housing = case_json(app, ref)["requests"]
    assert roads["due"] == "2026-12-07"  # the first request counts from the case's arrival
    assert housing["service"] == "Housing"
    assert housing["due"] == due.isoformat() and housing["due_from"] == f"2026-{sent}T10:00:00Z"
    assert f"10 working days (service Housing; SCT) from 2026-{sent}" == housing["due_rule"]
