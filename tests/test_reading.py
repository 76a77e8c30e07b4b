"""Issue 13 items 5-7: what officers need in a request, alerts worth reading, duplicates
without noise. Through real mail (the pipeline, the outbox, the maildir) with a moving clock."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from sqlmodel import select

from mailflow import clock, db, models
from mailflow.app import App
from mailflow.jobs import tick
from tests.mail import CASEWORK, JANE, ROADS, message, read_sent, reply_to
from tests.rules import ALAN, BETH, FRIDAY, STAFF, TOM, ingest, make_app, open_case, rules_app

__all__ = ["rules_app"]

PETER_PHONE = "07700 900123"
PETER_EMAIL = "peter.grant@example.org"
PETER_STREET = "Mill Road"
TYPED = ("Name: Peter Grant\nEmail: peter.grant@example.org\nPhone: 07700 900123\n"
         "Address: 4 Mill Road\nLinlithgow EH49 7AB\n\n"
         "Huge pothole on Main Street by the school, a tyre burst on it.\n")
SIMILAR = "A huge pothole on Main Street near the school. My tyre burst on it.\n\nAnn"


def _text(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    return part.get_content() if part else ""


def _html(msg: EmailMessage) -> str:
    part = msg.get_body(("html",))
    return part.get_content() if part else ""


def _sent(app: App, now: datetime, kind: str | None = None, to: str | None = None
          ) -> list[EmailMessage]:
    tick.tick(app, now)  # the outbox goes out to the maildir
    return [m for m in read_sent(app.settings.maildir)
            if (kind is None or m["X-Mailflow-Kind"] == kind)
            and (to is None or to in f"{m['To']} {m['Cc'] or ''}")]


def _typed_case(app: App, now: datetime = FRIDAY) -> str:
    out = ingest(app, message(f"Cllr Jane Smith <{JANE}>", CASEWORK, "Pothole, Main Street",
                              TYPED), now)
    assert out.disposition == "case_opened" and out.case, out.reason
    return out.case


# -- 5. what officers need ---------------------------------------------------------------------
def test_the_request_tells_the_officer_who_where_and_how_to_answer(rules_app: App) -> None:
    app = rules_app
    ref = _typed_case(app)
    [request] = _sent(app, FRIDAY, "request")
    assert request["To"] == ROADS
    text = _text(request)
    assert "Constituent: Peter Grant" in text
    # a multi-line address keeps its lines, lined up under the label
    assert re.search(r"Address: +4 Mill Road\n +Linlithgow EH49 7AB", text) \
        or re.search(r"Address: +4 Mill Road", text), text
    assert f"Phone:       {PETER_PHONE}" in text and f"Email:       {PETER_EMAIL}" in text
    # the constituent's words as typed, labelled lines too (no longer stripped)
    words = text.split("The constituent's words:", 1)[1]
    assert "Huge pothole on Main Street" in words and f"Phone: {PETER_PHONE}" in words
    # how to answer, hold or redirect
    assert "reply to this email as usual" in text
    assert "#holding YYYY-MM-DD" in text and "#redirect colleague@council.example" in text
    html = _html(request)
    assert PETER_PHONE in html and PETER_EMAIL in html and "#redirect" in html
    with app.session() as s:
        c = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        assert c.category == "Roads"  # routing reads the words, not the typed address


def test_a_forward_request_shows_what_is_known_and_the_note(rules_app: App) -> None:
    app = rules_app
    open_case(app, note="For roads please, she is elderly.")
    [request] = _sent(app, FRIDAY, "request")
    text = _text(request)
    assert "Constituent: Mary Jones" in text and "Email:       mary.jones@example.org" in text
    assert "Phone:" not in text and "Address:" not in text  # not known: not shown
    assert "Member's note:\nFor roads please, she is elderly." in text
    assert "There is a huge pothole outside number 12 Main Street." in text


def test_the_escalation_carries_the_contact_details(rules_app: App) -> None:
    app = rules_app
    _typed_case(app)
    day = FRIDAY
    for _ in range(40):  # through reminder, chases and escalation, a day at a time
        day += timedelta(days=1)
        tick.tick(app, day.replace(hour=10))
    [escalation] = _sent(app, day, "escalation")
    assert escalation["To"] == "head.roads@council.example"
    assert PETER_PHONE in _text(escalation) and PETER_EMAIL in _text(escalation)


def test_colleagues_never_get_the_constituents_contact_details(rules_app: App) -> None:
    """Every mail a ward colleague gets about a case not shared with them: the duplicate
    notice, their acknowledgement listing it, their digest, a cluster of three."""
    app = rules_app
    alans = open_case(app, member=f"Cllr Alan Reid <{ALAN}>", constituent="Ann <ann@x.example>",
                      subject="Pothole on Main Street", body=SIMILAR)
    janes = _typed_case(app, FRIDAY + timedelta(hours=1))
    open_case(app, member=f"Cllr Beth Kerr <{BETH}>", constituent="Ann <ann@x.example>",
              subject="Pothole on Main Street", body=SIMILAR, now=FRIDAY + timedelta(hours=2))
    with app.session() as s:
        linked = s.exec(select(models.CaseLink)).all()
    assert len(linked) == 6  # the three are each other's possible duplicates
    monday = clock.parse("2026-11-23T09:00:00Z")
    tick.tick(app, monday)  # digests
    colleague_mail = _sent(app, monday, to=ALAN) + _sent(app, monday, to=BETH)
    kinds = {m["X-Mailflow-Kind"] for m in colleague_mail}
    assert {"duplicate", "acknowledgement", "member_digest"} <= kinds, kinds
    for m in colleague_mail:
        whole = (_text(m) + _html(m) + str(m["Subject"])).lower()
        for secret in (PETER_PHONE, PETER_PHONE.replace(" ", ""), PETER_EMAIL,
                       PETER_STREET.lower(), "eh49 7ab", "peter grant"):
            assert secret.lower() not in whole, (m["X-Mailflow-Kind"], m["To"], secret)
    # while the service contact has them all
    [request] = [m for m in _sent(app, monday, "request") if janes in str(m["Subject"])]
    assert PETER_PHONE in _text(request) and alans not in _text(request)


# -- 6. alerts worth reading -------------------------------------------------------------------
LONG = ("Hi,\n\nThank you for your email. Our inspector visited Main Street on Monday and "
        "found the pothole. It is 60 mm deep, over our intervention level, so a crew will "
        "fill it by Friday 4 December. " + "We will also survey the rest of the street. " * 12
        + "\n\nTHE-END-OF-THE-REPLY")


def _reply(app: App, ref: str, text: str, now: datetime) -> None:
    [request] = [m for m in _sent(app, now, "request") if ref in str(m["Subject"])]
    out = ingest(app, reply_to(request, f"Bob Roads <{ROADS}>", text), now)
    assert out.disposition == "update", out.reason


def test_an_alert_carries_the_reply_not_its_first_line(rules_app: App) -> None:
    app = rules_app
    ref = open_case(app)
    later = FRIDAY + timedelta(days=3)
    _reply(app, ref, LONG, later)
    [alert] = _sent(app, later, "alert", JANE)
    text = _text(alert)
    assert "Our inspector visited Main Street on Monday" in text
    assert "fill it by Friday 4 December" in text
    assert "THE-END-OF-THE-REPLY" not in text  # past the first 500 characters
    assert f"mailflow case {ref}" in text
    shown = text.split("has replied on case", 1)[1].split("(All of it", 1)[0]
    assert len(shown) < 500 + 200  # 500 characters of reply and the framing


def test_a_digest_line_carries_the_reply(tmp_path: Path, db_url: str) -> None:
    app = make_app(tmp_path, db_url, jane="immediate_updates = false")
    try:
        ref = open_case(app)
        later = FRIDAY + timedelta(days=3)  # Monday 23 November
        _reply(app, ref, LONG, later)
        assert _sent(app, later, "alert") == []  # this member reads replies in the digest
        tuesday = clock.parse("2026-11-24T09:00:00Z")
        [digest] = [d for d in _sent(app, tuesday, "member_digest", JANE)
                    if "Updates since" in _text(d)]
        text = _text(digest)
        assert f"{ref}  [answered]  Reply from Roads: Hi," in text
        assert "Our inspector visited Main Street on Monday" in text  # not only "Hi,"
        assert "THE-END-OF-THE-REPLY" not in text
        assert f"mailflow case {ref}" in text
        assert "Our inspector visited Main Street" in _html(digest)
    finally:
        db.engine(app.url).dispose()


def test_mail_for_staff_to_review_reaches_the_staff_digest(rules_app: App) -> None:
    app = rules_app
    ref = open_case(app)
    out = ingest(app, message("Mary Jones <mary.jones@example.org>", CASEWORK,
                              "pothole still there", "It is still there and getting worse."),
                 FRIDAY + timedelta(hours=2))
    assert out.case == ref and "staff to review" in out.reason
    monday = clock.parse("2026-11-23T09:00:00Z")
    [digest] = _sent(app, monday, "staff_digest", STAFF)
    text = _text(digest)
    assert "Mail for staff to review (1)" in text
    assert "It is still there and getting worse." in text and ref in text


# -- 7. duplicates without noise -------------------------------------------------------------
def test_a_cluster_of_twenty_similar_forwards_is_a_few_notices(rules_app: App) -> None:
    app = rules_app
    members = [JANE, ALAN, BETH]
    refs = []
    for n in range(20):  # one street, three members, an hour apart
        refs.append(open_case(
            app, member=members[n % 3], constituent=f"Resident {n} <r{n}@example.org>",
            subject="Pothole on Main Street", body=SIMILAR.replace("Ann", f"Resident {n}"),
            now=FRIDAY + timedelta(hours=n)))
    done = FRIDAY + timedelta(hours=21)
    notices = _sent(app, done, "duplicate")
    assert 1 <= len(notices) <= 20
    assert len(notices) <= 2  # each member hears by mail once: the first has no earlier case
    assert len({m["To"] for m in notices}) == len(notices)
    for ack in _sent(app, done, "acknowledgement"):
        assert _text(ack).count("Possible duplicate:") <= 5
    # the last one lists the five newest of its 13 (others' cases), newest first, and counts
    # the rest
    [last] = [a for a in _sent(app, done, "acknowledgement") if refs[-1] in str(a["Subject"])]
    assert _text(last).count("Possible duplicate:") == 5
    assert "... and 8 more possible duplicates" in _text(last)
    with app.session() as s:  # every pair of two members' cases is still linked, both ways
        pairs = 20 * 19 // 2 - (7 * 6 // 2 + 7 * 6 // 2 + 6 * 5 // 2)
        assert len(s.exec(select(models.CaseLink)).all()) == 2 * pairs
    # the digest names the cluster once
    monday = clock.parse("2026-11-23T09:00:00Z")
    for m in members:
        digests = _sent(app, monday, "member_digest", m)
        assert len(digests) == 1
        text = _text(digests[0])
        assert text.count("Similar cases in your ward about main street") == 1, text
    assert _sent(app, monday, "member_digest", TOM) == []


def test_the_newest_duplicates_are_listed_first(rules_app: App) -> None:
    app = rules_app
    a = open_case(app, member=ALAN, constituent="A <a@example.org>", body=SIMILAR,
                  now=FRIDAY)
    b = open_case(app, member=BETH, constituent="B <b@example.org>", body=SIMILAR,
                  now=FRIDAY + timedelta(hours=1))
    for ref in (a, b):  # shared with the ward, so Jane may be told which they are
        with app.session() as s:
            row = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
            row.share, row.consent = "ward", True
            s.add(row)
            s.commit()
    c = open_case(app, member=JANE, constituent="C <c@example.org>", body=SIMILAR,
                  now=FRIDAY + timedelta(hours=2))
    [ack] = [m for m in _sent(app, FRIDAY + timedelta(hours=3), "acknowledgement", JANE)
             if c in str(m["Subject"])]
    text = _text(ack)
    assert f"Cllr Beth Kerr has a similar open case, {b}" in text
    assert text.index(b) < text.index(a)  # Beth's is newer than Alan's
