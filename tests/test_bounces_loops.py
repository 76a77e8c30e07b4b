"""Bounces, auto-replies and loops through the pipeline, on a real database: a bounce of a
request marks it undeliverable and puts it in front of staff; automatic mail never causes
mail back; no recipient gets more than the configured automatic mails per case per hour."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from mailflow import db, models, settings
from mailflow.app import App
from mailflow.jobs import tick
from mailflow.outbound import mail
from tests.mail import CASEWORK, JANE, ROADS, message, outlook_forward, sent_of_kind
from tests.test_automatic import corpus_bytes
from tests.test_loop import FRIDAY, holding, ingest, ours, requests, timeline


def sent_request(app: App) -> tuple[str, str, str]:
    """Open a case; return (reference, the request's Message-ID, its reply address)."""
    out = ingest(app, outlook_forward())
    tick.tick(app, FRIDAY)
    [req] = sent_of_kind(app.settings.maildir, "request")
    return out.case, str(req["Message-ID"]), str(req["Reply-To"])


def outbox_rows(app: App) -> list[models.Outbox]:
    with app.session() as s:
        return list(s.exec(select(models.Outbox).order_by(models.Outbox.id)))


@pytest.mark.parametrize("name", ["dsn_postfix.eml", "dsn_exchange_online.eml"])
def test_bounce_of_a_request_marks_it_undeliverable_and_holds_it(app: App, name: str) -> None:
    ref, msgid, reply_to = sent_request(app)
    mails = len(outbox_rows(app))
    res = ingest(app, corpus_bytes(name, msgid, reply_to))
    assert (res.disposition, res.case) == ("holding_pen", ref)
    assert "undeliverable" in res.reason and ROADS in res.reason
    [req] = requests(app, ref)
    assert req.state == "undeliverable"
    [bounce] = [e for e in timeline(app, ref) if e.kind == "bounce"]
    assert bounce.data["recipients"] == [ROADS] and bounce.data["permanent"] is True
    assert bounce.data["status"].startswith("5.1.1")
    [h] = holding(app)
    assert h.kind == "bounce" and h.case_id is not None
    assert len(outbox_rows(app)) == mails  # no mail in answer to a bounce


@pytest.mark.parametrize("name", ["qmail.eml", "exim.eml", "postfix_no_dsn.eml",
                                  "exchange_ndr_text.eml"])
def test_non_standard_bounce_matched_by_its_reply_address(app: App, name: str) -> None:
    ref, _, reply_to = sent_request(app)
    # The returned copy names a Message-ID we never sent: only our reply address matches.
    res = ingest(app, corpus_bytes(name, "<unknown@elsewhere.example>", reply_to))
    assert (res.disposition, res.case) == ("holding_pen", ref)
    [h] = holding(app)
    assert h.kind == "bounce" and ref in h.reason
    # Another address than the request's contact failed: recorded, the request stays sent.
    assert requests(app, ref)[0].state == "sent"


def test_delayed_delivery_is_recorded_but_not_held(app: App) -> None:
    ref, msgid, reply_to = sent_request(app)
    res = ingest(app, corpus_bytes("dsn_delayed.eml", msgid, reply_to))
    assert (res.disposition, res.case) == ("update", ref)
    assert requests(app, ref)[0].state == "sent" and holding(app) == []
    assert [e.data["permanent"] for e in timeline(app, ref) if e.kind == "bounce"] == [False]


def test_bounce_naming_only_the_subject_tag_changes_nothing(app: App) -> None:
    ref, _, _ = sent_request(app)
    res = ingest(app, corpus_bytes("dsn_postfix.eml", "<unknown@elsewhere.example>",
                                   "casework@council.example"))
    assert res.disposition == "holding_pen" and "matches no message we sent" in res.reason
    assert requests(app, ref)[0].state == "sent"
    assert [h.kind for h in holding(app)] == ["bounce"]


def test_bounce_of_nothing_we_sent_goes_to_the_holding_pen(app: App) -> None:
    res = ingest(app, corpus_bytes("exim.eml", "<x@y.example>", "nobody@example.org"))
    assert res.disposition == "holding_pen" and res.case is None
    [h] = holding(app)
    assert h.kind == "bounce" and "repairs@housing-partner.example" in h.reason


def test_out_of_office_matched_by_in_reply_to_is_not_an_answer(app: App) -> None:
    ref, msgid, reply_to = sent_request(app)
    mails = len(outbox_rows(app))
    res = ingest(app, corpus_bytes("oof_outlook.eml", msgid, reply_to))
    assert res.disposition == "update" and "not an answer" in res.reason
    assert "Auto-Submitted" in res.reason
    assert requests(app, ref)[0].state == "sent"
    assert timeline(app, ref)[-1].kind == "auto_reply"
    assert len(outbox_rows(app)) == mails


def test_own_mail_recognised_by_message_id_alone(app: App) -> None:
    ref, msgid, _ = sent_request(app)
    raw = corpus_bytes("own_message_id_only.eml").replace(
        b"<cw-2026-00001.0123456789abcdef0123@council.example>", msgid.encode())
    res = ingest(app, raw)
    assert res.disposition == "ignored" and "we minted" in res.reason


def test_no_automatic_mail_is_queued_in_answer_to_automatic_mail(app: App) -> None:
    with app.session() as s:
        # The loop guard is an argument of the one door: the context says what it answers.
        row = mail.send(app.context.answering("auto-reply 7"), s, "alert",
                        {"service_name": "Roads", "text": "x", "replied_by": None},
                        to=[JANE], now=FRIDAY, case=models.Case(reference="CW-2026-00009"))
        s.commit()
        assert row.state == "held" and "in answer to automatic mail" in (row.held_reason or "")
    assert tick.tick(app, FRIDAY)["deliver_outbox"] == {"sent": 0, "retrying": 0, "failed": 0,
                                                     "deferred": 0}


@pytest.fixture
def limited(config_file: Path) -> Iterator[App]:
    config_file.write_text(config_file.read_text().replace(
        "[outbound]\n", "[outbound]\nmax_per_recipient_per_hour = 3\n"))
    a = App(settings.load(config_file))
    db.upgrade(a.url)
    a.start(FRIDAY)
    yield a
    db.engine(a.url).dispose()


def test_rate_limit_holds_automatic_mail_per_recipient_per_case(limited: App) -> None:
    app = limited
    ref = ingest(app, outlook_forward()).case  # the acknowledgement is Jane's first
    later = FRIDAY
    for n in range(4):  # each service reply alerts Jane: the third alert is her fourth mail
        later += timedelta(minutes=5)
        ingest(app, message(ROADS, CASEWORK, f"Re: [{ref}] update {n}", f"Update {n}.",
                            **ours(app, ref, "request")), now=later)
    alerts = [o for o in outbox_rows(app) if o.kind == "alert"]
    assert [o.state for o in alerts] == ["queued", "queued", "held", "held"]
    assert "max_per_recipient_per_hour = 3" in (alerts[2].held_reason or "")
    tick.tick(app, later)
    assert len(sent_of_kind(app.settings.maildir, "alert")) == 2
    assert [o.state for o in outbox_rows(app) if o.kind == "alert"][2:] == ["held", "held"]
    # An hour after the first mails, there is room again.
    ingest(app, message(ROADS, CASEWORK, f"Re: [{ref}] later", "Later.",
                        **ours(app, ref, "request")), now=FRIDAY + timedelta(minutes=61))
    assert outbox_rows(app)[-1].state == "queued"
    # Another case for the same member has its own allowance.
    other = ingest(app, outlook_forward(subject="Pothole two"), now=later)
    with app.session() as s:
        case_id = s.exec(select(models.Case.id).where(models.Case.reference == other.case)).one()
    [ack] = [o for o in outbox_rows(app) if o.case_id == case_id and o.kind == "acknowledgement"]
    assert ack.state == "queued" and ack.recipients == [JANE]


def test_held_mail_is_listed_by_the_cli(limited: App, config_file: Path) -> None:
    from tests.conftest import run_cli
    from tests.test_cli import jsonl

    ref = ingest(limited, outlook_forward()).case
    for n in range(3):
        ingest(limited, message(ROADS, CASEWORK, f"Re: [{ref}] {n}", f"Update {n}.",
                                **ours(limited, ref, "request")))
    done = run_cli(config_file, "outbox", "--state", "held", "--json")
    [rows] = jsonl(done.stdout)
    assert [r["state"] for r in rows] == ["held"] and rows[0]["held_reason"].startswith("rate")
    assert rows[0]["next_attempt_at"] is None

    # A person decides it should go after all; a second release is refused.
    released = run_cli(config_file, "outbox", "--release", str(rows[0]["id"]))
    assert released.returncode == 0, released.stderr
    assert run_cli(config_file, "outbox", "--release", str(rows[0]["id"])).returncode == 2
    assert run_cli(config_file, "tick").returncode == 0
    assert len(sent_of_kind(limited.settings.maildir, "alert")) == 3


def test_the_configured_limit_holds_every_kind_of_automatic_mail(config_file: Path) -> None:
    """Not only the mail opening a case: a notice to the member (here, of a holding reply)
    goes through the same door and the same `max_per_recipient_per_hour`."""
    config_file.write_text(config_file.read_text().replace(
        "[outbound]\n", "[outbound]\nmax_per_recipient_per_hour = 1\n"))
    app = App(settings.load(config_file))
    db.upgrade(app.url)
    app.start(FRIDAY)
    try:
        ref = ingest(app, outlook_forward()).case  # Jane's acknowledgement: her one mail
        reply = message(ROADS, CASEWORK, f"Re: [{ref}]",
                        "#holding 2026-12-04\nWaiting for the contractor; we inspect Monday.",
                        **ours(app, ref, "request"))
        ingest(app, reply, now=FRIDAY + timedelta(minutes=5))
        to_jane = [o for o in outbox_rows(app) if o.recipients == [JANE]]
        assert [o.kind for o in to_jane] == ["acknowledgement", "update"]
        assert to_jane[1].state == "held"
        assert "max_per_recipient_per_hour = 1" in (to_jane[1].held_reason or "")
    finally:
        db.engine(app.url).dispose()
