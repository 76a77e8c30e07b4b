"""The casework loop through the pipeline, on a real database: forward -> case -> request ->
reply -> update -> alert, and everything that must end in the holding pen instead."""

from __future__ import annotations

from datetime import date

from sqlmodel import select

from mailflow import clock, models, tokens
from mailflow.app import App
from mailflow.inbound import pipeline
from mailflow.jobs import tick
from tests.mail import CASEWORK, JANE, ROADS, message, outlook_forward, reply_to, sent_of_kind

# Friday 20 November 2026, 10:00 in Scotland; St Andrew's Day (Mon 30 Nov) is a bank holiday.
FRIDAY = clock.parse("2026-11-20T10:00:00Z")


def ingest(app: App, msg, now=FRIDAY):  # type: ignore[no-untyped-def]
    raw = msg if isinstance(msg, bytes) else msg.as_bytes()
    raw_id, duplicate = pipeline.receive(app, raw, source="ingest", now=now)
    if duplicate:
        return pipeline.Outcome("duplicate_delivery", pipeline.describe(app, raw_id).case, "")
    return pipeline.process(app, raw_id, now)


def case(app: App, ref: str) -> models.Case:
    with app.session() as s:
        return s.exec(select(models.Case).where(models.Case.reference == ref)).one()


def requests(app: App, ref: str) -> list[models.Request]:
    with app.session() as s:
        c = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        return list(s.exec(select(models.Request).where(models.Request.case_id == c.id)))


def timeline(app: App, ref: str) -> list[models.Event]:
    with app.session() as s:
        c = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        return list(s.exec(select(models.Event).where(models.Event.case_id == c.id)
                           .order_by(models.Event.id)))


def ours(app: App, ref: str, kind: str = "acknowledgement") -> dict[str, str]:
    """Headers of a reply to our mail of this kind on the case: the proof a message needs
    before it may change the case (a subject tag alone proves nothing)."""
    with app.session() as s:
        c = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        mid = s.exec(select(models.Outbox.message_id).where(models.Outbox.case_id == c.id)
                     .where(models.Outbox.kind == kind).order_by(models.Outbox.id)).first()
    assert mid, f"no {kind} sent on {ref}"
    return {"In_Reply_To": mid, "References": mid}


def holding(app: App) -> list[models.Holding]:
    with app.session() as s:
        return list(s.exec(select(models.Holding).order_by(models.Holding.id)))


def test_forward_opens_case_sends_request_and_acknowledges(app: App) -> None:
    out = ingest(app, outlook_forward())
    assert out.disposition == "case_opened"
    assert out.case == "CW-2026-00001"
    c = case(app, out.case)
    assert c.status == "open"
    assert c.category == "Roads"
    assert "huge pothole" in c.issue
    assert "Can you look into this" in c.member_note
    with app.session() as s:
        who = s.get(models.Constituent, c.constituent_id)
    assert (who.name, who.email) == ("Mary Jones", "mary.jones@example.org")

    [req] = requests(app, out.case)
    # Received Friday 20 Nov; day 1 is Mon 23 Nov; St Andrew's Day (Mon 30 Nov) is skipped.
    assert req.due == date(2026, 12, 7)
    assert req.contact == ROADS

    tick.tick(app, FRIDAY)
    [request] = sent_of_kind(app.settings.maildir, "request")
    assert request["To"] == ROADS
    assert request["From"].addresses[0].addr_spec == CASEWORK
    assert "[CW-2026-00001]" in request["Subject"]
    assert request["Auto-Submitted"] == "auto-generated"
    assert request["Reply-To"] == f"casework+cw-2026-00001.{req.token}@council.example"
    body = request.get_body(("plain",)).get_content()
    assert "huge pothole" in body and "Monday 7 December 2026" in body
    assert request.get_body(("html",)) is not None

    [ack] = sent_of_kind(app.settings.maildir, "acknowledgement")
    assert ack["To"] == JANE
    ack_text = ack.get_body(("plain",)).get_content()
    assert "CW-2026-00001" in ack_text and "Mary Jones" in ack_text and "Roads" in ack_text


def test_officer_reply_answers_request_and_alerts_member(app: App) -> None:
    out = ingest(app, outlook_forward())
    tick.tick(app, FRIDAY)
    [request] = sent_of_kind(app.settings.maildir, "request")
    reply = reply_to(request, f"Bob Roads <{ROADS}>",
                     "We have inspected the pothole and it will be filled by Friday.")
    later = clock.parse("2026-11-24T11:00:00Z")
    res = ingest(app, reply, now=later)
    assert (res.disposition, res.case) == ("update", out.case)

    [req] = requests(app, out.case)
    assert req.state == "answered" and req.answered_by == ROADS
    assert case(app, out.case).status == "answered"
    update = [e for e in timeline(app, out.case) if e.kind == "service_reply"][0]
    assert update.text.startswith("We have inspected the pothole")
    assert "Kind regards" not in update.text and "> " not in update.text

    tick.tick(app, later)
    [alert] = sent_of_kind(app.settings.maildir, "alert")
    assert alert["To"] == JANE
    assert "filled by Friday" in alert.get_body(("plain",)).get_content()


def test_reply_matched_by_token_alone(app: App) -> None:
    out = ingest(app, outlook_forward())
    tick.tick(app, FRIDAY)
    [request] = sent_of_kind(app.settings.maildir, "request")
    reply = reply_to(request, ROADS, "Done.", threaded=False, subject="pothole")
    res = ingest(app, reply)
    assert (res.disposition, res.case) == ("update", out.case)
    assert "token" in res.reason


def test_token_is_forgiving_of_retyping(app: App) -> None:
    out = ingest(app, outlook_forward())
    [req] = requests(app, out.case)
    retyped = req.token.upper().replace("1", "l").replace("0", "O")
    address = f"Casework+CW-2026-000001.{retyped}@Council.Example"
    res = ingest(app, message(ROADS, address, "about your enquiry", "Fixed today."))
    assert (res.disposition, res.case) == ("update", out.case)


def test_colleague_in_trusted_domain_with_token_is_accepted(app: App) -> None:
    out = ingest(app, outlook_forward())
    [req] = requests(app, out.case)
    addr = tokens.reply_address(CASEWORK, out.case, req.token)
    res = ingest(app, message("dave.gang@council.example", addr, "RE: pothole", "Filled today."))
    assert res.disposition == "update"
    [req] = requests(app, out.case)
    assert req.state == "answered" and req.answered_by == "dave.gang@council.example"


def test_token_from_outside_trusted_domains_goes_to_holding_pen(app: App) -> None:
    out = ingest(app, outlook_forward())
    [req] = requests(app, out.case)
    addr = tokens.reply_address(CASEWORK, out.case, req.token)
    res = ingest(app, message("someone@gmail.example", addr, "RE: pothole", "I fixed it."))
    assert res.disposition == "holding_pen"
    assert "trusted domain" in res.reason
    assert requests(app, out.case)[0].state == "sent"
    [h] = holding(app)
    assert h.kind == "stranger" and h.sender == "someone@gmail.example"


def test_forged_token_is_not_evidence(app: App) -> None:
    out = ingest(app, outlook_forward())
    addr = f"casework+{out.case.lower()}.abcdefghjk@council.example"
    res = ingest(app, message("someone@gmail.example", addr, "hello", "hi"))
    assert res.disposition == "holding_pen" and "does not verify" in res.reason


def test_stranger_using_subject_tag_goes_to_holding_pen(app: App) -> None:
    out = ingest(app, outlook_forward())
    res = ingest(app, message("stranger@example.net", CASEWORK, f"Re: [{out.case}] pothole",
                              "Please close this."))
    assert res.disposition == "holding_pen"
    assert res.reason.startswith("sender not proven")
    assert [e.kind for e in timeline(app, out.case)].count("service_reply") == 0


def test_subject_tag_from_a_party_waits_for_proof(app: App) -> None:
    out = ingest(app, outlook_forward())
    res = ingest(app, message("noreply.roads@council.example", CASEWORK,
                              f"Your enquiry [{out.case}]", "Scheduled for repair."))
    assert (res.disposition, res.rule) == ("holding_pen", "not_proven")
    [h] = holding(app)
    assert h.kind == "not_proven" and h.candidates and h.candidates[0]["case"] == out.case
    assert requests(app, out.case)[0].state == "sent"
    # the same words in a reply to our mail are the party's
    res = ingest(app, message("noreply.roads@council.example", CASEWORK,
                              f"Your enquiry [{out.case}]", "Scheduled for repair.",
                              **ours(app, out.case, "request")))
    assert (res.disposition, res.case) == ("update", out.case)
    member = ingest(app, message("jane@home.example", CASEWORK, f"Re: [{out.case}]",
                                 "The constituent phoned again.", **ours(app, out.case)))
    assert member.disposition == "update"
    assert timeline(app, out.case)[-1].kind == "member_update"


def test_unknown_sender_goes_to_holding_pen(app: App) -> None:
    res = ingest(app, message("random@example.com", CASEWORK, "Help", "My bins were missed"))
    assert res.disposition == "holding_pen"
    assert "unknown sender" in res.reason
    [h] = holding(app)
    assert h.kind == "unknown_sender"
    with app.session() as s:
        assert s.exec(select(models.Case)).first() is None


def test_duplicate_delivery_changes_nothing(app: App) -> None:
    raw = outlook_forward().as_bytes()
    first = ingest(app, raw)
    again = ingest(app, b"Received: from relay2 by mx; Fri, 20 Nov 2026 10:00:05 +0000\r\n" + raw)
    assert again.disposition == "duplicate_delivery" and again.case == first.case
    with app.session() as s:
        assert len(s.exec(select(models.Case)).all()) == 1
        assert len(s.exec(select(models.Outbox)).all()) == 2  # one request, one acknowledgement


def test_no_matching_service_waits_for_triage(app: App) -> None:
    fwd = outlook_forward(subject="Council tax question", body="Why did my council tax go up?")
    out = ingest(app, fwd)
    assert out.disposition == "case_opened"
    assert case(app, out.case).status == "triage"
    assert requests(app, out.case) == []
    [h] = holding(app)
    assert h.kind == "needs_service" and "needs a service" in h.reason
    tick.tick(app, FRIDAY)
    [ack] = sent_of_kind(app.settings.maildir, "acknowledgement")
    assert "member services" in ack.get_body(("plain",)).get_content()


def test_typed_surgery_case(app: App) -> None:
    body = ("Name: Peter Grant\nEmail: peter.grant@example.org\nPhone: 07700 900123\n"
            "Address: 4 Mill Road, Linlithgow\n\n"
            "Street light outside his house has been out for three weeks.\n")
    out = ingest(app, message(JANE, CASEWORK, "Street light out", body))
    assert out.disposition == "case_opened"
    c = case(app, out.case)
    with app.session() as s:
        who = s.get(models.Constituent, c.constituent_id)
    assert (who.name, who.email, who.phone) == ("Peter Grant", "peter.grant@example.org",
                                                "07700 900123")
    assert who.address == "4 Mill Road, Linlithgow"
    assert c.category == "Roads"
    # the words as typed, labelled lines too: the officer's request shows them (issue 13)
    assert "three weeks" in c.issue and "Address: 4 Mill Road, Linlithgow" in c.issue


def test_our_own_mail_coming_back_is_ignored(app: App) -> None:
    ingest(app, outlook_forward())
    tick.tick(app, FRIDAY)
    [ack] = sent_of_kind(app.settings.maildir, "acknowledgement")
    res = ingest(app, ack)
    assert res.disposition == "ignored" and "loop" in res.reason


def test_out_of_office_is_recorded_but_not_an_answer(app: App) -> None:
    out = ingest(app, outlook_forward())
    tick.tick(app, FRIDAY)
    [request] = sent_of_kind(app.settings.maildir, "request")
    oof = reply_to(request, ROADS, "I am out of the office until Monday.",
                   subject=f"Automatic reply: {request['Subject']}")
    oof["Auto-Submitted"] = "auto-replied"
    res = ingest(app, oof)
    assert res.disposition == "update" and "not an answer" in res.reason
    assert requests(app, out.case)[0].state == "sent"
    tick.tick(app, FRIDAY)
    assert sent_of_kind(app.settings.maildir, "alert") == []


def test_references_are_numbered_per_year(app: App) -> None:
    a = ingest(app, outlook_forward(subject="Pothole one"))
    b = ingest(app, outlook_forward(subject="Pothole two"))
    c = ingest(app, outlook_forward(subject="Pothole three"),
               now=clock.parse("2027-01-05T10:00:00Z"))
    assert (a.case, b.case, c.case) == ("CW-2026-00001", "CW-2026-00002", "CW-2027-00001")


def test_unparseable_message_is_kept_in_holding_pen(app: App) -> None:
    res = ingest(app, b"\xff\xfe\x00garbage with no headers at all\r\n\r\n\x00\x01")
    assert res.disposition == "holding_pen"
    with app.session() as s:
        [raw] = s.exec(select(models.RawMessage)).all()
        assert raw.raw.startswith(b"\xff\xfe")
