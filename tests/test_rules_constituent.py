"""The constituent path (off unless the council and the member allow it), enquiry types and
complaint targets, and the audit trail through the command line."""

from __future__ import annotations

import getpass
import json
from datetime import date
from pathlib import Path

import pytest
from sqlmodel import select

from mailflow import db, models
from mailflow.app import App
from mailflow.jobs import tick
from tests.mail import ROADS, reply_to, sent_of_kind
from tests.rules import (
    FRIDAY,
    JANE,
    STAFF,
    cli,
    get_case,
    ingest,
    make_app,
    open_case,
    rules_app,
    run,
)

__all__ = ["rules_app"]

MARY = "mary.jones@example.org"
ON = "[casework]\nconstituent_mail = true\n"


def _answered(app: App) -> str:
    ref = open_case(app)
    tick.tick(app, FRIDAY)
    request = next(m for m in sent_of_kind(app.settings.maildir, "request")
                   if ref in m["Subject"])
    out = ingest(app, reply_to(request, ROADS, "The pothole will be filled on Friday."))
    assert out.disposition == "update"
    return ref


def _send(app: App, ref: str, text: str) -> tuple[bool, str]:
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        r = run(app, s, case, JANE, "send", text, FRIDAY)
        s.commit()
    return r.ok, r.text


@pytest.mark.parametrize(("council", "member", "allowed"), [
    ("", "", False),  # the default: off
    (ON, "", False),  # the council allows it, the member has not
    ("", "constituent_mail = true", False),  # the member wants it, the council does not
    (ON, "constituent_mail = true", True),
])
def test_constituent_path_switched_off_and_on(tmp_path: Path, db_url: str, council: str,
                                             member: str, allowed: bool) -> None:
    app = make_app(tmp_path, db_url, extra=council, jane=member)
    try:
        ref = _answered(app)
        ok, why = _send(app, ref, "Dear Mary, good news below.\nJane")
        assert ok == allowed, why
        tick.tick(app, FRIDAY)
        to_mary = [m for m in sent_of_kind(app.settings.maildir, "constituent_acknowledgement")
                   + sent_of_kind(app.settings.maildir, "constituent_update") if m["To"] == MARY]
        if not allowed:
            assert to_mary == []
            assert "constituent_mail" in why or "constituents" in why
            return
        ack, update = to_mary
        text = ack.get_body(("plain",)).get_content()
        assert ack["X-Mailflow-Kind"] == "constituent_acknowledgement"
        assert "Cllr Jane Smith" in text and ref in text
        assert ack["Reply-To"] == JANE
        assert ack["From"].addresses[0].addr_spec == "casework@council.example"
        body = update.get_body(("plain",)).get_content()
        assert body.startswith("Dear Mary, good news below.")
        assert "The pothole will be filled on Friday." in body
        assert "Kind regards" not in body  # the officer's signature stays on the case
        assert update["From"].addresses[0].addr_spec == "casework@council.example"
        assert get_case(app, ref).reference == ref
    finally:
        db.engine(app.url).dispose()


def test_send_needs_an_answer_and_an_address(tmp_path: Path, db_url: str) -> None:
    app = make_app(tmp_path, db_url, extra=ON, jane="constituent_mail = true")
    try:
        ref = open_case(app)
        ok, why = _send(app, ref, "")
        assert not ok and "no service has answered" in why
        nobody = open_case(app, constituent="Mary Jones")
        assert not _send(app, nobody, "")[0]
        with app.session() as s:
            case = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
            r = run(app, s, case, STAFF, "send", "", FRIDAY)
        assert not r.ok and "member only" in r.text
    finally:
        db.engine(app.url).dispose()


# -- enquiry types and complaints --------------------------------------------------------------
def test_type_from_the_note_and_the_complaint_target(tmp_path: Path, db_url: str) -> None:
    app = make_app(tmp_path, db_url, extra="[complaints]\nresponse_days = 20\n")
    try:
        plain = open_case(app)
        complaint = open_case(app, note="This is a formal complaint about the road repairs.")
        assert get_case(app, plain).enquiry_type == "direct"
        assert get_case(app, complaint).enquiry_type == "complaint"
        ids = get_case(app, plain).id, get_case(app, complaint).id
        with app.session() as s:
            [r1] = s.exec(select(models.Request).where(models.Request.case_id == ids[0])).all()
            [r2] = s.exec(select(models.Request).where(models.Request.case_id == ids[1])).all()
        # Friday 20 Nov, Scotland: 10 days -> Mon 7 Dec; 20 days -> Mon 21 Dec
        assert (r1.target_days, r1.due) == (10, date(2026, 12, 7))
        assert (r2.target_days, r2.due) == (20, date(2026, 12, 21))
        assert "complaint target" in r2.due_rule
        tick.tick(app, FRIDAY)
        req = next(m for m in sent_of_kind(app.settings.maildir, "request")
                   if complaint in m["Subject"])
        assert "20 working days, the complaint target" in req.get_body(("plain",)).get_content()
        with app.session() as s:  # #type moves an unanswered request to the new target
            case = s.exec(select(models.Case).where(models.Case.reference == plain)).one()
            r = run(app, s, case, JANE, "type", "complaint", FRIDAY)
            s.commit()
        assert r.ok and "Roads now due 2026-12-21" in r.text
    finally:
        db.engine(app.url).dispose()


# -- the audit trail -------------------------------------------------------------------------
def test_audit_trail_records_changes_and_reads(rules_app: App) -> None:
    app = rules_app
    ref = open_case(app)
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        assert run(app, s, case, JANE, "priority", "high", FRIDAY, message=1).ok
        s.commit()
    assert cli(app, "case", ref).returncode == 0
    assert cli(app, "case", ref, "--as", "jane@home.example", "--json").returncode == 0
    done = cli(app, "case", ref, "--audit", "--json")
    assert done.returncode == 0, done.stderr
    trail = json.loads(done.stdout)
    changes = [t for t in trail if t["action"] == "change"]
    reads = [t for t in trail if t["action"] == "read"]
    assert changes[0]["what"] == "opened" and changes[0]["who"] == JANE
    assert changes[0]["message"] is not None and changes[0]["via"] == "email"
    prio = next(t for t in changes if t["what"] == "priority")
    assert (prio["who"], prio["message"]) == (JANE, 1)
    assert prio["data"]["changes"] == {"priority": ["normal", "high"]}
    assert [(r["who"], r["what"]) for r in reads] == [
        (f"{getpass.getuser()} (os user)", "case"),
        ("jane@home.example", "case"),
        (f"{getpass.getuser()} (os user)", "audit"),
    ]
    assert [r["data"].get("json", False) for r in reads] == [False, True, True]
    assert {r["case"] for r in trail} == {ref}
    text = cli(app, "case", ref, "--audit")
    assert "priority" in text.stdout and "read" in text.stdout and "AT" in text.stdout
