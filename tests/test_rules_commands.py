"""The authorisation matrix and the command handlers, called directly on a real database:
every command from every role, allowed and refused."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import select

from mailflow import models
from mailflow.app import App
from mailflow.casework import authz, names
from mailflow.casework.actions import REGISTRY
from tests.mail import ROADS, sent_of_kind
from tests.rules import (
    ALAN,
    BETH,
    FRIDAY,
    JANE,
    STAFF,
    STRANGER,
    TOM,
    Said,
    get_case,
    open_case,
    rules_app,
    run,
    set_case,
)

__all__ = ["rules_app"]

M, S, C, K = "member", "staff", "contact", "colleague"
# Written out by hand, not read from authz.COMMANDS, so that a change to the table fails here.
EXPECTED = {
    "close": {M, S}, "reopen": {M, S}, "category": {M, S}, "service": {M, S}, "type": {M, S},
    "priority": {M, S}, "share": {M}, "consent": {M}, "note": {M, S, K}, "deadline": {M, S},
    "holding": {C}, "agree": {M, S}, "refuse": {M, S}, "reject": {M, S}, "merge": {M, S},
    "redirect": {C}, "send": {M}, "help": {M, S, C, K}, "answer": {C}, "ack": {C},
    "chase": {M, S}, "resend": {M, S}, "contact": {M, S},
}
ACTORS = {M: JANE, S: STAFF, C: ROADS, K: ALAN}


def test_matrix_is_the_table() -> None:
    assert {c.name for c in authz.COMMANDS} == set(EXPECTED)
    for command, roles in EXPECTED.items():
        for role in (*authz.ROLES, None):
            ok, why = authz.allowed(role, command)
            assert ok == (role in roles), (command, role)
            assert ok or why  # a refusal always says why
    assert authz.allowed(C, "note")[1].endswith("only answer, hold (#holding) or redirect "
                                                "(#redirect) their own request")
    assert "may only #note" in authz.allowed(K, "close")[1]
    assert "not a party" in authz.allowed(None, "help")[1]
    assert not authz.allowed(M, "frobnicate")[0]
    # One registry: every command in the matrix has its handler, and no handler is outside it.
    assert set(REGISTRY) == set(EXPECTED)


GOOD_ARGS = {
    "category": "roads", "service": "waste", "type": "complaint", "priority": "high",
    "share": "ward", "consent": "yes", "note": "Phoned her back", "deadline": "18/12/2026",
    "merge": "", "redirect": "dave.gang@council.example", "send": "", "help": "",
    "chase": "", "contact": "new.person@council.example",
}


@pytest.mark.parametrize("command", sorted(GOOD_ARGS))
def test_every_command_from_every_role(rules_app: App, command: str) -> None:
    app = rules_app
    for role, actor in [*ACTORS.items(), ("stranger", STRANGER), ("other member", TOM),
                        ("unshared ward colleague", BETH)]:
        ref = open_case(app)
        set_case(app, ref, share="party", consent=True)  # Alan (Green) sees it, Beth does not
        arg = GOOD_ARGS[command]
        if command == "merge":
            arg = open_case(app)  # another of Jane's own cases: merged at once when allowed
        with app.session() as s:
            case = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
            before = len(s.exec(select(models.Event).where(models.Event.case_id == case.id)).all())
            result = run(app, s, case, actor, command, arg, FRIDAY, message=None)
            s.commit()
            after = s.exec(select(models.Event).where(models.Event.case_id == case.id)).all()
        allowed = role in EXPECTED[command]
        if not allowed:
            assert not result.ok, (command, role, result.text)
            # A refused command changes nothing; the refusal itself is on the timeline.
            assert [e.kind for e in after[before:]] == ["command_refused"]
            continue
        if command == "send":  # allowed, but the constituent path is off by default
            assert not result.ok and "constituent" in result.text
            continue
        assert result.ok, (command, role, result.text)
        if command != "help":
            assert after[-1].sender == actor.lower()  # who did it, on the timeline


def test_forged_from_is_refused(rules_app: App) -> None:
    ref = open_case(rules_app)
    with rules_app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        for forged in ("jane.smith@council.example.evil.example", "jane.smith@gmail.example",
                       TOM, ""):
            r = run(rules_app, s, case, forged, "close", "", FRIDAY)
            assert not r.ok
        r = run(rules_app, s, case, "Jane.Smith@Council.Example", "priority", "high", FRIDAY)
        assert r.ok  # the member's address in another case is still the member


def test_unknown_command_answers_with_help(rules_app: App) -> None:
    ref = open_case(rules_app)
    with rules_app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        r = run(rules_app, s, case, JANE, "frobnicate", "", FRIDAY)
    assert not r.ok and "#frobnicate: not a command" in r.text
    assert "#category NAME" in r.text and "#merge REF" in r.text


def test_help_lists_what_the_role_may_use(rules_app: App) -> None:
    ref = open_case(rules_app)
    with rules_app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        contact = run(rules_app, s, case, ROADS, "help", "", FRIDAY).text
        member = run(rules_app, s, case, JANE, "help", "", FRIDAY).text
    assert "#redirect" in contact and "#holding" in contact and "#close" not in contact
    assert "#close [outcome]" in member and "#redirect" not in member


def test_names_are_matched_forgivingly() -> None:
    services = ["Roads", "Waste", "Environmental Health", "Housing"]
    assert names.match("ROADS", services)[0] == "Roads"
    assert names.match("  environmental   health ", services)[0] == "Environmental Health"
    assert names.match("env", services)[0] == "Environmental Health"
    assert names.match("health", services)[0] == "Environmental Health"
    assert names.match("serv", ["service-request", "direct"])[0] == "service-request"
    none, why = names.match("co", ["complaint", "community"], "type")
    assert none is None and "complaint or community" in why
    none, why = names.match("parks", services, "service")
    assert none is None and "unknown service 'parks'" in why and "Roads" in why


def _call(app: App, ref: str, command: str, arg: str, actor: str = JANE,
          now=FRIDAY) -> Said:  # type: ignore[no-untyped-def]
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        r = run(app, s, case, actor, command, arg, now)
        s.commit()
    return r


def test_service_adds_a_second_request_and_refuses_a_repeat(rules_app: App) -> None:
    ref = open_case(rules_app)
    r = _call(rules_app, ref, "service", "waste")
    assert r.ok and "request sent to Waste" in r.text
    with rules_app.session() as s:
        reqs = s.exec(select(models.Request).join(models.Case)
                      .where(models.Case.reference == ref)).all()
    assert len(reqs) == 2
    again = _call(rules_app, ref, "service", "WASTE")
    assert not again.ok and "already has a request to Waste" in again.text
    bad = _call(rules_app, ref, "service", "parks")
    assert not bad.ok and "unknown service" in bad.text


def test_service_on_a_triage_case_sends_it_and_clears_the_holding_pen(rules_app: App) -> None:
    ref = open_case(rules_app, subject="Council tax question", body="Why did it go up?")
    assert get_case(rules_app, ref).status == "triage"
    assert _call(rules_app, ref, "service", "roads", actor=STAFF).ok
    c = get_case(rules_app, ref)
    assert (c.status, c.category) == ("open", "Roads")
    with rules_app.session() as s:
        [h] = s.exec(select(models.Holding)).all()
    assert h.resolved_at is not None


def test_type_complaint_moves_the_due_date_to_the_complaint_target(rules_app: App) -> None:
    ref = open_case(rules_app)
    r = _call(rules_app, ref, "type", "comp")
    assert r.ok and "complaint" in r.text
    # no complaint target configured: the service's own 10 days, so nothing moves
    assert get_case(rules_app, ref).enquiry_type == "complaint"
    assert not _call(rules_app, ref, "type", "co").ok  # complaint or community?


def test_note_deadline_priority(rules_app: App) -> None:
    ref = open_case(rules_app)
    assert _call(rules_app, ref, "note", "Constituent phoned, very upset").ok
    assert not _call(rules_app, ref, "note", "   ").ok
    assert _call(rules_app, ref, "priority", "HIGH").ok
    assert not _call(rules_app, ref, "deadline", "yesterday-ish").ok
    assert not _call(rules_app, ref, "deadline", "2026-11-01").ok  # in the past
    assert _call(rules_app, ref, "deadline", "18 Dec").ok
    c = get_case(rules_app, ref)
    assert (c.priority, c.deadline) == ("high", date(2026, 12, 18))
    assert not sent_of_kind(rules_app.settings.maildir, "note")  # a note is sent to no one


@pytest.mark.parametrize(("written", "meant"), [
    ("2027-02-03", date(2027, 2, 3)),  # ISO is year-month-day, never day-first
    ("2027-12-01", date(2027, 12, 1)),
    ("03/02/2027", date(2027, 2, 3)),  # UK numeric is day/month
    ("3 February 2027", date(2027, 2, 3)),
    ("Thursday 10th December", date(2026, 12, 10)),
])
def test_deadline_dates_with_a_day_of_twelve_or_less(rules_app: App, written: str,
                                                     meant: date) -> None:
    ref = open_case(rules_app)
    assert _call(rules_app, ref, "deadline", written).ok
    assert get_case(rules_app, ref).deadline == meant


def test_share_and_consent_in_either_order(rules_app: App) -> None:
    from mailflow.casework import sharing

    for order in (("share", "consent"), ("consent", "share")):
        ref = open_case(rules_app)
        args = {"share": "ward", "consent": "yes"}
        first = _call(rules_app, ref, order[0], args[order[0]])
        assert first.ok
        with rules_app.session() as s:
            c = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
            assert not sharing.can_see(s, rules_app.settings, c, BETH)
        assert _call(rules_app, ref, order[1], args[order[1]]).ok
        with rules_app.session() as s:
            c = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
            assert sharing.can_see(s, rules_app.settings, c, BETH)
    r = _call(rules_app, ref, "consent", "no")
    assert r.ok and "takes effect once" in r.text


def test_share_party_needs_a_party(tmp_path, db_url) -> None:  # type: ignore[no-untyped-def]
    from tests.rules import make_app

    app = make_app(tmp_path, db_url)
    ref = open_case(app, member="Cllr Tom Brown <tom.brown@council.example>")
    r = _call(app, ref, "share", "party", actor=TOM)
    assert not r.ok and "no party" in r.text


def test_redirect_records_the_new_contact_and_sends_the_request(rules_app: App) -> None:
    ref = open_case(rules_app)
    assert not _call(rules_app, ref, "redirect", "dave@gmail.example", actor=ROADS).ok
    assert not _call(rules_app, ref, "redirect", "not an address", actor=ROADS).ok
    r = _call(rules_app, ref, "redirect", "<Dave.Gang@council.example>", actor=ROADS)
    assert r.ok, r.text
    with rules_app.session() as s:
        [req] = s.exec(select(models.Request).join(models.Case)
                       .where(models.Case.reference == ref)).all()
    assert req.contact == "dave.gang@council.example"
    from mailflow.jobs import tick

    tick.tick(rules_app, FRIDAY)
    to = [m["To"] for m in sent_of_kind(rules_app.settings.maildir, "request")]
    assert "dave.gang@council.example" in to
    # the new contact is now a party to the case, and may hold or redirect it in turn
    assert _call(rules_app, ref, "redirect", "erin@council.example",
                 actor="dave.gang@council.example").ok
