"""Unmatched-mail triage: one confident guess is filed (and recorded as a guess); anything
less waits in the holding pen with the candidate cases listed. A guess is no proof: only an
authenticated party's guessed mail changes the case; a stranger's is held."""

from __future__ import annotations

import json
from pathlib import Path

from mailflow.app import App
from tests.conftest import run_cli
from tests.mail import CASEWORK, JANE, ROADS, message, outlook_forward
from tests.rules import make_app
from tests.test_loop import case, holding, ingest, requests, timeline

MARY = "mary.jones@example.org"


def test_constituent_writing_again_is_attached_for_review(app: App) -> None:
    ref = ingest(app, outlook_forward()).case
    res = ingest(app, message(f"Mary Jones <{MARY}>", CASEWORK, "pothole still there",
                              "It is still there and getting worse."))
    assert (res.disposition, res.case) == ("update", ref)
    assert "guess" in res.reason and "changes no request" in res.reason
    event = timeline(app, ref)[-1]
    assert event.kind == "constituent_update" and event.sender == MARY
    assert event.data["evidence"] == "guess" and event.data["review"] is True
    assert event.data["guess"] == [f"from the case's constituent {MARY}"]
    assert requests(app, ref)[0].state == "sent"  # never an answer


def test_constituent_with_two_open_cases_is_held_with_both_listed(app: App,
                                                                  config_file: Path) -> None:
    a = ingest(app, outlook_forward(subject="Pothole one")).case
    b = ingest(app, outlook_forward(subject="Bins not collected", body="The bins were missed."
                                    )).case
    res = ingest(app, message(MARY, CASEWORK, "hello", "Any news?"))
    assert res.disposition == "holding_pen" and "2 open cases" in res.reason
    [h] = holding(app)
    assert [c["case"] for c in h.candidates] == [a, b]
    rows = json.loads(run_cli(config_file, "holding", "--json").stdout)
    assert rows[0]["candidates"] == h.candidates
    assert rows[0]["candidates"][0]["why"] == [f"from the case's constituent {MARY}"]


def test_contact_quoting_the_reference_is_attached_unverified(app: App) -> None:
    """Anyone can write the contact's address and a reference: not proof of an answer."""
    ref = ingest(app, outlook_forward()).case
    res = ingest(app, message(ROADS, CASEWORK, "pothole", f"Re your {ref}: filled today."))
    assert (res.disposition, res.case) == ("update", ref)
    [req] = requests(app, ref)
    assert req.state == "sent"
    event = timeline(app, ref)[-1]
    assert event.kind == "contact_update" and event.data["verified"] is False
    assert event.data["guess"] == [f"quotes {ref} in the body"]


def test_authenticated_contact_quoting_the_reference_answers_the_request(
        tmp_path: Path, db_url: str) -> None:
    app = make_app(tmp_path, db_url,
                   '[authentication]\ntrusted_authserv_ids = ["mx.council.example"]')
    ref = ingest(app, outlook_forward()).case
    res = ingest(app, message(ROADS, CASEWORK, "pothole", f"Re your {ref}: filled today.",
                              Authentication_Results="mx.council.example; dmarc=pass "
                                                     "header.from=council.example"))
    assert (res.disposition, res.case) == ("update", ref)
    [req] = requests(app, ref)
    assert req.state == "answered"
    reply = [e for e in timeline(app, ref) if e.kind == "service_reply"][0]
    assert reply.data["evidence"] == "guess" and reply.data["guess"] == [
        f"quotes {ref} in the body"]


def test_stranger_quoting_a_reference_is_held_with_the_candidate(app: App) -> None:
    ref = ingest(app, outlook_forward()).case
    res = ingest(app, message("nosy@example.net", CASEWORK, "hi", f"What about {ref}?"))
    assert res.disposition == "holding_pen" and "not a confident guess" in res.reason
    [h] = holding(app)
    assert h.kind == "unmatched" and h.candidates == [
        {"case": ref, "why": [f"quotes {ref} in the body"]}]
    assert [e.kind for e in timeline(app, ref)].count("unverified_update") == 0


def test_member_replying_to_their_own_forward_updates_that_case(app: App) -> None:
    fwd = outlook_forward()
    ref = ingest(app, fwd).case
    follow = message(JANE, CASEWORK, f"RE: {fwd['Subject']}", "She phoned again today.",
                     In_Reply_To=str(fwd["Message-ID"]), References=str(fwd["Message-ID"]))
    res = ingest(app, follow)
    assert (res.disposition, res.case) == ("update", ref)
    assert timeline(app, ref)[-1].kind == "member_update"
    assert timeline(app, ref)[-1].data["evidence"] == "guess"
    assert timeline(app, ref)[-1].data["verified"] is False


def test_someone_else_on_the_thread_is_held_with_the_candidate(app: App) -> None:
    fwd = outlook_forward()
    ref = ingest(app, fwd).case
    reply = message("neighbour@example.net", CASEWORK, f"RE: {fwd['Subject']}",
                    "I live next door and it is dangerous.", In_Reply_To=str(fwd["Message-ID"]))
    res = ingest(app, reply)
    assert (res.disposition, res.rule) == ("holding_pen", "candidates")
    [h] = holding(app)
    assert h.candidates and h.candidates[0]["case"] == ref
    assert requests(app, ref)[0].state == "sent"


def test_member_forward_quoting_an_old_reference_still_opens_a_case(app: App) -> None:
    old = ingest(app, outlook_forward()).case
    new = ingest(app, outlook_forward(subject="Another pothole",
                                      body=f"Like my last one ({old}), there is a new one."))
    assert new.disposition == "case_opened" and new.case != old
    assert case(app, new.case).subject == "Another pothole"


def test_member_note_quoting_their_own_case_is_filed_there(app: App) -> None:
    ref = ingest(app, outlook_forward()).case
    res = ingest(app, message(JANE, CASEWORK, "news?", f"Any news on {ref}?"))
    assert (res.disposition, res.case) == ("update", ref)
