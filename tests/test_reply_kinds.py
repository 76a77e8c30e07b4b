"""What kind of reply an officer sent (issue 12, item 3), through real mail on a moving clock
and a real database: an acknowledgement leaves the request open and chased, the answer after
it answers; a CRM's automatic acknowledgement without auto-reply headers acknowledges too;
`#answer` and `#ack` overrule the words; `inspect --json` says `reply_kind`."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from sqlmodel import col, select

from mailflow import models
from mailflow.app import App
from mailflow.inbound import replykind
from mailflow.inbound.classify import Classification
from tests.conftest import run_cli
from tests.mail import JANE, message, outlook_forward
from tests.test_time import (
    DUE,
    MON,
    WASTE,
    at,
    bins,
    body,
    case_of,
    ingest,
    mail,
    officer_reply,
    outbox,
    request_of,
    run_days,
)

TODAY = date(2026, 11, 3)


def events(app: App, ref: str, kind: str) -> list[models.Event]:
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        return list(s.exec(select(models.Event).where(models.Event.case_id == case.id)
                           .where(models.Event.kind == kind).order_by(col(models.Event.id))))


def service_acks(app: App, ref: str) -> list[models.Event]:
    """The service's acknowledgements (our own to the member has no request)."""
    return [e for e in events(app, ref, "acknowledged") if e.request_id is not None]


# -- the words -----------------------------------------------------------------------------------
ACKNOWLEDGEMENTS = [
    "Thanks, received, we will come back to you.",
    "Received with thanks.",
    "Thanks, I've received it and will pass it to the team.",
    "This is an automated response: we have received it. Your reference is 12345.",
    "Thanks - noted. I'll look into this and get back to you.",
    "Dear Cllr Smith,\n\nThank you for your email. I have passed this to our inspection team "
    "and will get back to you once I hear from them.",
    "Your enquiry has been logged and passed to the Waste team.",
    "We are looking into this and will update you shortly.",
    "I'm currently investigating and will respond as soon as I can.",
    "Just to acknowledge your email - I'm on it.",
    "This is to acknowledge receipt of your enquiry.",
    "Thank you for contacting West Lothian Council. We aim to respond within 10 working days.",
    "Thank you for your enquiry. Your reference number is 1234567.",
    "Nous avons bien reçu votre message et reviendrons vers vous rapidement.",
    "Wir haben Ihre Anfrage erhalten und melden uns in Kürze.",
    "We hebben uw bericht ontvangen en komen er zo snel mogelijk op terug.",
    "Hemos recibido su consulta y le responderemos pronto.",
    "Abbiamo ricevuto la sua richiesta.",
    "Recebemos a sua mensagem e responderemos em breve.",
    "Otrzymaliśmy Pani wiadomość.",
    "Diolch am eich e-bost. Rydym wedi derbyn eich neges.",
]
ANSWERS = [
    "We have inspected the pothole and it will be filled by Friday.",
    "The bins were collected this morning.",
    "Done.",
    "Thanks, received the photos. The fly-tipping has been cleared.",
    "I can confirm that the streetlight has been repaired.",
    "Following an inspection, the pavement does not meet our intervention criteria.",
    "Your bins are collected on Tuesdays; the crew missed the street last week because of a "
    "blocked road and came back on Thursday. We have reminded them of the lane. " * 4
    + "If it happens again I will let you know.",
]


@pytest.mark.parametrize("text", ACKNOWLEDGEMENTS)
def test_acknowledgements_in_words(text: str) -> None:
    assert replykind.of(text, Classification("normal"), TODAY) == "acknowledgement"


@pytest.mark.parametrize("text", ANSWERS)
def test_answers_in_words(text: str) -> None:
    assert replykind.of(text, Classification("normal"), TODAY) == "answer"


def test_commands_and_dates_decide_before_words() -> None:
    normal = Classification("normal")
    assert replykind.of("#answer\nThanks, received.", normal, TODAY) == "answer"
    assert replykind.of("#ack\nThe bins have been collected.", normal, TODAY) == "acknowledgement"
    assert replykind.of("#holding 2026-11-20\nCrew short.", normal, TODAY) == "holding"
    assert replykind.of("Received - I will reply by 20 November.", normal, TODAY) == "holding"
    oof = Classification("auto_reply", "out-of-office words", by_words=True)
    assert replykind.of("I am out of the office until Monday. Your message has been received.",
                        oof, TODAY) == "automatic"
    crm = "This is an automated response. Your enquiry has been received; reference 99."
    assert replykind.of(crm, oof, TODAY) == "acknowledgement"
    header = Classification("auto_reply", "Auto-Submitted: auto-replied")
    assert replykind.of(crm, header, TODAY) == "automatic"


# -- the request's state -------------------------------------------------------------------------
def test_acknowledgement_is_chased_on_time_then_answered_and_closed(app: App) -> None:
    ref = bins(app)
    tick_at = at("2026-11-03")
    out = ingest(app, officer_reply(app, ref, "Thanks, received, we will come back to you."),
                 tick_at)
    assert out.disposition == "update" and "acknowledgement" in out.reason, out
    r = request_of(app, ref)
    assert r.state == "sent" and r.answered_at is None and r.due == DUE
    assert r.acknowledged_at is not None and r.ack_due == date(2026, 11, 3)
    [ack] = service_acks(app, ref)
    assert ack.sender == WASTE and ack.data["on_time"] is True and ack.data["how"] == "words"
    assert case_of(app, ref).status == "open"
    run_days(app, ["2026-11-03", "2026-11-04"])
    assert outbox(app, "alert") == []  # not an answer: no "service replied" alert
    assert outbox(app, "command_reply") == []  # and nothing back to the officer
    digest = outbox(app, "member_digest")[-1]
    assert digest.recipients == [JANE] and "Waste acknowledged the request" in body(digest)

    run_days(app, ["2026-11-05", "2026-11-06", "2026-11-09"])
    assert outbox(app, "chase") == []
    run_days(app, ["2026-11-10"])  # the first chase, the day after the due date, as always
    [chase] = outbox(app, "chase")
    assert chase.recipients == [WASTE]

    out = ingest(app, reply_to_chase(chase, "The bins were collected this morning."),
                 at("2026-11-10", "14:00"))
    assert out.disposition == "update", out
    r = request_of(app, ref)
    assert r.state == "answered" and r.answered_by == WASTE
    assert case_of(app, ref).status == "answered"
    run_days(app, ["2026-11-10"])
    [alert] = outbox(app, "alert")
    assert "collected this morning" in body(alert)
    run_days(app, [f"2026-11-{d}" for d in (11, 12, 13, 16, 17, 18)])
    assert case_of(app, ref).status == "closed"


def reply_to_chase(chase: models.Outbox, text: str):  # type: ignore[no-untyped-def]
    from tests.mail import reply_to
    return reply_to(mail(chase), WASTE, text)


CRM = ("Thank you for contacting West Lothian Council.\n\nThis is an automated response to "
       "confirm that we have received your email. Your reference is 1234567.\n\nWe aim to "
       "respond within 10 working days.\n\nPlease do not reply to this email.")


def test_crm_acknowledgement_without_auto_headers(app: App, tmp_path: Path) -> None:
    ref = bins(app)
    msg = officer_reply(app, ref, CRM, sender="noreply.waste@council.example")
    out = ingest(app, msg, at("2026-11-04"))
    assert out.disposition == "update" and "acknowledg" in out.reason, out
    r = request_of(app, ref)
    assert r.state == "sent" and r.acknowledged_at is not None
    [ack] = service_acks(app, ref)
    assert ack.data["how"] == "automatic" and ack.data["on_time"] is False  # due 3 Nov
    # Automatic mail: nothing goes back to the robot, and the member is not alerted now.
    run_days(app, ["2026-11-04"])
    assert outbox(app, "alert") == [] and outbox(app, "command_reply") == []
    path = tmp_path / "crm.eml"
    path.write_bytes(msg.as_bytes())
    [seen] = [json.loads(x) for x in run_cli(app.settings.path, "inspect", "--json",
                                             str(path)).stdout.splitlines()]
    assert seen["classification"] == "auto_reply" and seen["reply_kind"] == "acknowledgement"


def test_answer_command_on_an_acknowledgement_looking_text(app: App) -> None:
    ref = bins(app)
    out = ingest(app, officer_reply(app, ref, "#answer\nThanks, received - we will come "
                                    "back to you if anything changes."), at("2026-11-03"))
    assert "#answer" in out.reason, out
    r = request_of(app, ref)
    assert r.state == "answered" and r.answered_by == WASTE
    assert case_of(app, ref).status == "answered" and service_acks(app, ref) == []
    [reply] = events(app, ref, "service_reply")
    assert reply.text.startswith("Thanks, received") and "#answer" not in reply.text


def test_ack_command_on_an_answer_looking_text(app: App) -> None:
    ref = bins(app)
    out = ingest(app, officer_reply(app, ref, "#ack\nThe bins have been collected, but I am "
                                    "checking the lane with the crew."), at("2026-11-03"))
    assert "#ack" in out.reason, out
    r = request_of(app, ref)
    assert r.state == "sent" and r.answered_at is None and r.acknowledged_at is not None
    [ack] = service_acks(app, ref)
    assert ack.data["how"] == "#ack" and "checking the lane" in ack.text
    assert case_of(app, ref).status == "open" and events(app, ref, "service_reply") == []


def test_out_of_office_does_not_acknowledge(app: App) -> None:
    ref = bins(app)
    oof = officer_reply(app, ref, "I am on leave until 23 November. Your message has been "
                        "received.")
    oof.replace_header("Subject", "Automatic reply: " + str(oof["Subject"]))
    oof["Auto-Submitted"] = "auto-replied"
    assert "not an answer" in ingest(app, oof, at("2026-11-03")).reason
    r = request_of(app, ref)
    assert r.state == "sent" and r.acknowledged_at is None and service_acks(app, ref) == []


def test_inspect_reply_kind(app: App, tmp_path: Path) -> None:
    ref = bins(app)
    files = {
        "answer.eml": officer_reply(app, ref, "The bins were collected this morning."),
        # Only the visible text counts, not the acknowledgement it quotes.
        "plain.eml": officer_reply(app, ref, "Her street is on the Tuesday round.\n\nOn Tue, "
                                   "3 Nov 2026 at 10:02, Waste <waste@council.example> wrote:\n"
                                   "> Thanks, received, we will come back to you.\n"),
        "ack.eml": officer_reply(app, ref, "Received, thanks - passed to the crew supervisor."),
        "holding.eml": officer_reply(app, ref, "I will reply by 20 November; the crew is "
                                     "short this week."),
        "forward.eml": outlook_forward(),
        "member.eml": message(JANE, "casework@council.example", "New", "Another case"),
    }
    oof = officer_reply(app, ref, "I am out of the office until Monday.")
    oof["Auto-Submitted"] = "auto-replied"
    files["oof.eml"] = oof
    for name, msg in files.items():
        (tmp_path / name).write_bytes(msg.as_bytes())
    done = run_cli(app.settings.path, "inspect", "--json", *(str(tmp_path / n) for n in files))
    seen = {Path(d["file"]).name: d["reply_kind"] for d in map(json.loads,
                                                               done.stdout.splitlines())}
    assert seen == {"answer.eml": "answer", "plain.eml": "answer", "ack.eml": "acknowledgement",
                    "holding.eml": "holding", "oof.eml": "automatic", "forward.eml": None,
                    "member.eml": None}
    # Inspecting changes nothing: the request is as it was.
    assert request_of(app, ref).acknowledged_at is None and MON
