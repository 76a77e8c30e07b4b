"""Automatic mail on a corpus of real-world shapes: auto-replies, bounces (RFC 3464 and the
common non-standard ones) and our own mail coming back; out-of-office replies by their
headers, subjects and opening words in ten languages (pure: no database). Then, on a
database: an automatic message changes nothing on its case, and a reply to a digest, from a
person or a robot, never opens a case."""

from __future__ import annotations

import tomllib
from datetime import date, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlmodel import col, select

from mailflow import clock, models, settings, tokens
from mailflow.app import App
from mailflow.inbound import pipeline
from mailflow.inbound.bounces import read
from mailflow.inbound.classify import classify
from mailflow.inbound.parse import parse
from mailflow.jobs import tick
from tests.conftest import COUNCIL
from tests.mail import CASEWORK, JANE, ROADS, message, outlook_forward, reply_to, sent_of_kind

CORPUS = Path(__file__).parent / "corpus" / "automatic"
MSGID = "<cw-2026-00001.0123456789abcdef0123@council.example>"
REPLY_TO = "casework+cw-2026-00001.abcdefghjk@council.example"

# file -> (classification, failed recipients, status, permanent)
EXPECTED: dict[str, tuple[str, list[str] | None, str | None, bool | None]] = {
    "dsn_postfix.eml": ("bounce", ["roads.enquiries@council.example"], "5.1.1", True),
    "dsn_exchange_online.eml": ("bounce", ["roads.enquiries@council.example"], "5.1.10", True),
    "dsn_delayed.eml": ("bounce", ["waste@council.example"], "4.4.1", False),
    "qmail.eml": ("bounce", ["streetlights@contractor.example"], "5.1.1", True),
    "exim.eml": ("bounce", ["repairs@housing-partner.example"], "5.1.1", True),
    "postfix_no_dsn.eml": ("bounce", ["planning.enquiries@council.example"], "5.2.1", True),
    "exchange_ndr_text.eml": ("bounce", ["transport.team@partner-trust.example"], "5.1.1", True),
    "dsn_delivered_receipt.eml": ("auto_reply", None, None, None),
    "mdn_read_receipt.eml": ("auto_reply", None, None, None),
    "oof_outlook.eml": ("auto_reply", None, None, None),
    "oof_exchange_headers_only.eml": ("auto_reply", None, None, None),
    "autoreply_x_autoreply.eml": ("auto_reply", None, None, None),
    "autorespond.eml": ("auto_reply", None, None, None),
    "precedence_bulk.eml": ("auto_reply", None, None, None),
    "auto_submitted_only.eml": ("auto_reply", None, None, None),
    "gmail_vacation.eml": ("auto_reply", None, None, None),
    "suppress_oof.eml": ("auto_reply", None, None, None),
    "null_sender.eml": ("auto_reply", None, None, None),
    "own_request_back.eml": ("own_mail", None, None, None),
    "own_message_id_only.eml": ("own_mail", None, None, None),
    "normal_reply.eml": ("normal", None, None, None),
}


def corpus_bytes(name: str, msgid: str = MSGID, reply_to: str = REPLY_TO) -> bytes:
    text = (CORPUS / name).read_text()
    return text.replace("{{MESSAGE_ID}}", msgid).replace("{{REPLY_TO}}", reply_to).encode()


@pytest.fixture(scope="module")
def council(tmp_path_factory: pytest.TempPathFactory) -> settings.Settings:
    path = tmp_path_factory.mktemp("council") / "mailflow.toml"
    return settings.from_dict(tomllib.loads(COUNCIL.format(db_url="sqlite:///x.db")), path)


def test_every_corpus_file_has_an_expectation() -> None:
    assert sorted(p.name for p in CORPUS.glob("*.eml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_classification(name: str, council: settings.Settings) -> None:
    kind, recipients, status, permanent = EXPECTED[name]
    p = parse(corpus_bytes(name))
    c = classify(p, council)
    assert c.kind == kind, c.why
    assert (c.why == "") == (kind == "normal")
    if kind == "bounce":
        b = read(p.msg, ignore=council.is_ours)
        assert (b.recipients, b.status, b.permanent) == (recipients, status, permanent)
        assert b.original_message_id == MSGID
        assert REPLY_TO in b.returned or name == "dsn_delayed.eml"


def test_status_is_not_read_from_an_ip_address() -> None:
    msg = parse(b"From: MAILER-DAEMON@mx.example\nSubject: failure notice\n\n"
                b"<a@b.example>: host 10.5.1.1 refused: permanent error\n").msg
    b = read(msg)
    assert b.recipients == ["a@b.example"] and b.status is None and b.permanent


def test_a_person_writing_about_bounces_is_normal(council: settings.Settings) -> None:
    p = parse(b"From: Mary <mary.jones@example.org>\nTo: casework@council.example\n"
              b"Subject: Undeliverable parcels left in the street\n\nThe courier dumps them.\n")
    assert classify(p, council).kind == "normal"


def test_an_exchange_message_id_is_not_taken_for_ours(council: settings.Settings) -> None:
    p = parse(b"From: Bob <roads.enquiries@council.example>\nSubject: RE: pothole\n"
              b"Message-ID: <mf.0123456789abcdef01234@council.example>\n\nDone.\n")
    assert classify(p, council).kind == "normal"



# -- out-of-office by headers, subject and words ----------------------------------------------
def auto(council: settings.Settings, subject: str, body: str, sender: str = ROADS,
         **headers: str) -> str:
    return classify(parse(message(sender, CASEWORK, subject, body, **headers).as_bytes()),
                    council).kind


# language -> (the auto-reply's subject, its body); no RFC 3834 or vendor header on any.
LANGUAGES = {
    "en": ("Out of Office: Pothole", "Thank you for your email.\n\nI am currently out of the "
           "office until 10 December and will respond by 10 December."),
    "en-auto": ("Automatic reply: Pothole", "I'm on annual leave until Monday."),
    "cy": ("Ateb awtomatig: Twll yn y ffordd", "Diolch am eich e-bost. Rydw i allan o'r "
           "swyddfa tan 10 Rhagfyr."),
    "cy-swyddfa": ("Allan o’r swyddfa", "Rwyf allan o'r swyddfa tan ddydd Llun."),
    "gd": ("Freagairt fèin-ghluasadach: Toll", "Tapadh leibh airson ur post-d. Tha mi a-mach "
           "às an oifis gu 10 Dùbhlachd."),
    "fr": ("Réponse automatique : Nid-de-poule", "Bonjour,\n\nJe suis absente jusqu'au 10 "
           "décembre."),
    "fr-absence": ("Absence: Nid-de-poule", "Je suis actuellement en congé."),
    "de": ("Abwesenheitsnotiz: Schlagloch", "Sehr geehrte Damen und Herren,\n\nich bin bis "
           "zum 10. Dezember nicht im Büro."),
    "de-auto": ("Automatische Antwort: Schlagloch", "Ich bin derzeit im Urlaub."),
    "nl": ("Afwezig: Gat in de weg", "Beste,\n\nIk ben afwezig tot 10 december."),
    "nl-auto": ("Automatisch antwoord: Gat", "Ik ben tot maandag niet op kantoor."),
    "es": ("Respuesta automática: Bache", "Gracias por su mensaje. Estoy fuera de la oficina "
           "hasta el 10 de diciembre."),
    "es-fuera": ("Fuera de la oficina: Bache", "Me encuentro de vacaciones."),
    "it": ("Risposta automatica: Buca", "Grazie per la sua email. Sono fuori sede fino al 10 "
           "dicembre."),
    "it-sede": ("Fuori sede: Buca", "Sono in ferie."),
    "pl": ("Odpowiedź automatyczna: Dziura", "Dzień dobry,\nJestem poza biurem do 10 grudnia."),
    "pl-biurem": ("Poza biurem: Dziura", "Przebywam na urlopie."),
    "pt": ("Resposta automática: Buraco", "Olá,\nEstou ausente até 10 de dezembro."),
    "pt-ausente": ("Ausente: Buraco", "Estou de férias."),
}


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_out_of_office_subject_in_each_language(lang: str, council: settings.Settings) -> None:
    subject, _ = LANGUAGES[lang]
    assert auto(council, subject, "See you soon.") == "auto_reply"


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_out_of_office_opening_words_in_each_language(lang: str,
                                                      council: settings.Settings) -> None:
    _, body = LANGUAGES[lang]
    assert auto(council, "RE: [CW-2026-00001] Pothole", body) == "auto_reply"


@pytest.mark.parametrize("body", [
    "This is an automated acknowledgement. We will answer within 10 working days.",
    "Dies ist eine automatische Antwort.",
    "Ceci est une réponse automatique.",
    "To jest automatyczna odpowiedź.",
])
def test_auto_acknowledgements(body: str, council: settings.Settings) -> None:
    assert auto(council, "RE: Pothole", body) == "auto_reply"


def test_out_of_office_words_below_a_first_line_need_a_second_sign(
        council: settings.Settings) -> None:
    body = ("Roads Team\n\nI am on annual leave until Monday. For urgent matters please call "
            "01506 000000.")
    assert auto(council, "RE: Pothole", body) == "auto_reply"


@pytest.mark.parametrize("body", [
    "The pothole was filled on Tuesday. Sorry for the delay, I was out of the office last week.",
    "Sorry for the slow reply: I am out of the office most of this week. Jo filled it on "
    "Tuesday.",
    "Highways will fix it on Monday. I am away next week; if anything is urgent ring Jo.",
    "I was out of the office yesterday. The repair is booked for 10 December.",
])
def test_a_person_mentioning_being_away_still_answers(body: str,
                                                      council: settings.Settings) -> None:
    assert auto(council, "RE: [CW-2026-00001] Pothole", body) == "normal"


@pytest.mark.parametrize("subject", ["Absence of street lights on Mill Road",
                                     "Away day parking", "Re: Automatic reply: Pothole",
                                     "Holiday lets in Linlithgow"])
def test_a_person_s_subject_is_not_an_out_of_office(subject: str,
                                                    council: settings.Settings) -> None:
    assert auto(council, subject, "Please look into it.") == "normal"


@pytest.mark.parametrize("header, value, kind", [
    ("X-MS-Exchange-Generated-Message-Source", "Mailbox Rules Agent", "auto_reply"),
    ("X-MS-Exchange-Inbox-Rules-Loop", ROADS, "auto_reply"),
    ("X-Auto-Response-Suppress", "OOF", "auto_reply"),
    ("X-Auto-Response-Suppress", "DR, RN, NRN", "auto_reply"),
    ("X-Auto-Response-Suppress", "None", "normal"),
    ("Auto-Submitted", "auto-replied", "auto_reply"),
    ("Auto-Submitted", "no", "normal"),
    ("X-Autoreply", "yes", "auto_reply"),
    ("X-Autorespond", "vacation", "auto_reply"),
    ("Precedence", "junk", "auto_reply"),
    ("Precedence", "list", "auto_reply"),
    # On every message through Exchange, a person's too: not a marker.
    ("X-MS-Exchange-Organization-MessageDirectionality", "Incoming", "normal"),
])
def test_headers(header: str, value: str, kind: str, council: settings.Settings) -> None:
    assert auto(council, "RE: Pothole", "The pothole is filled.", **{header: value}) == kind


# -- on a database: automatic mail changes nothing ---------------------------------------------
FRIDAY = clock.parse("2026-11-20T10:00:00Z")


def ingest(app: App, msg: EmailMessage | bytes, now: datetime = FRIDAY) -> pipeline.Outcome:
    raw = msg if isinstance(msg, bytes) else msg.as_bytes()
    raw_id, duplicate = pipeline.receive(app, raw, source="ingest", now=now)
    assert not duplicate
    out = pipeline.process(app, raw_id, now)
    assert out is not None
    return out


def _request(app: App) -> models.Request:
    with app.session() as s:
        return s.exec(select(models.Request)).one()


def _cases(app: App) -> list[models.Case]:
    with app.session() as s:
        return list(s.exec(select(models.Case).order_by(col(models.Case.id))))


def _held(app: App) -> list[models.Holding]:
    with app.session() as s:
        return list(s.exec(select(models.Holding).order_by(col(models.Holding.id))))


def _kinds(app: App) -> list[str]:
    with app.session() as s:
        return [o.kind for o in s.exec(select(models.Outbox).order_by(col(models.Outbox.id)))]


def test_an_out_of_office_promising_a_date_changes_no_due_date(app: App) -> None:
    out = ingest(app, outlook_forward())
    tick.tick(app, FRIDAY)
    [request] = sent_of_kind(app.settings.maildir, "request")
    before, sent = _request(app), _kinds(app)
    # Dutch, no RFC 3834 header: read as the officer's holding reply before.
    oof = reply_to(request, ROADS, "Ik ben afwezig tot 10 december. I will respond by 10 "
                   "December.", subject=f"Afwezig: {request['Subject']}")
    res = ingest(app, oof)
    assert res.disposition == "update" and "not an answer" in res.reason, res
    after = _request(app)
    assert (after.state, after.due, after.proposed_due) == (before.state, before.due,
                                                            before.proposed_due)
    tick.tick(app, FRIDAY)
    assert _kinds(app) == sent  # nothing asked of the member, nothing sent at all
    with app.session() as s:
        kinds = [e.kind for e in s.exec(select(models.Event))]
    assert "auto_reply" in kinds and "holding" not in kinds and out.case


def test_an_out_of_office_s_command_lines_are_not_commands(app: App) -> None:
    out = ingest(app, outlook_forward())
    tick.tick(app, FRIDAY)
    [ack] = sent_of_kind(app.settings.maildir, "acknowledgement")
    oof = reply_to(ack, JANE, "#close\nI am out of the office until Monday.")
    oof["Auto-Submitted"] = "auto-replied"
    res = ingest(app, oof)
    assert res.disposition == "update" and "not an answer" in res.reason, res
    assert [c.status for c in _cases(app)] == ["open"] and out.case


def test_a_person_who_was_out_of_the_office_still_answers(app: App) -> None:
    ingest(app, outlook_forward())
    tick.tick(app, FRIDAY)
    [request] = sent_of_kind(app.settings.maildir, "request")
    ingest(app, reply_to(request, ROADS, "I was out of the office last week, sorry. The "
                         "pothole was filled on Tuesday."))
    assert _request(app).state == "answered"


# -- replies to digests -----------------------------------------------------------------------
MON = clock.parse("2026-11-02T10:00:00Z")


def at(day: date, hhmm: str = "09:00") -> datetime:
    return clock.parse(f"{day.isoformat()}T{hhmm}:00Z")


def _digest(app: App, now: datetime) -> EmailMessage:
    """Jane's case (waiting for Waste) and her digest on the next working day."""
    ingest(app, outlook_forward(subject="Bins not collected", body="The bins were missed."),
           MON)
    tick.tick(app, MON)
    tick.tick(app, now)
    return sent_of_kind(app.settings.maildir, "member_digest")[-1]


def _answer(digest: EmailMessage, sender: str, body: str, *, subject: str | None = None,
            to_reply_to: bool = True, threaded: bool = True) -> EmailMessage:
    to = str(digest["Reply-To"]) if to_reply_to else CASEWORK
    headers = {"In_Reply_To": str(digest["Message-ID"])} if threaded else {}
    return message(sender, to, subject or f"RE: {digest['Subject']}", body, **headers)


def test_a_digest_has_its_own_signed_reply_address(app: App) -> None:
    d = _digest(app, at(date(2026, 11, 3)))
    digest_id, tok = tokens.parse_digest_address(str(d["Reply-To"]), CASEWORK) or (0, "")
    assert tokens.verify([app.settings.secret], "DIGEST", digest_id, tok)
    assert "#close CW-2026-00042" in d.get_body(("plain",)).get_content()


def test_a_member_s_commands_in_a_reply_to_a_digest_run_on_the_case(app: App) -> None:
    d = _digest(app, at(date(2026, 11, 3)))
    [case] = _cases(app)
    res = ingest(app, _answer(d, JANE, f"#note {case.reference.lower()} Spoke to the resident\n"
                              f"#close {case.reference}\n\n> quoted digest"),
                 at(date(2026, 11, 3), "10:00"))
    assert (res.disposition, res.case, res.rule) == ("update", case.reference, "digest_reply")
    [case] = _cases(app)
    assert case.status == "closed"
    with app.session() as s:
        notes = [e.text for e in s.exec(select(models.Event).where(models.Event.kind == "note"))]
    assert notes == ["Spoke to the resident"]
    assert "command_reply" in _kinds(app)


def test_a_plain_reply_to_a_digest_waits_in_the_holding_pen(app: App) -> None:
    d = _digest(app, at(date(2026, 11, 3)))
    for msg in (_answer(d, JANE, "Thanks, can you chase the bins one?"),
                _answer(d, JANE, "And the other one?", to_reply_to=False),  # In-Reply-To only
                _answer(d, JANE, "#close CW-2026-09999")):  # names no case we know
        res = ingest(app, msg, at(date(2026, 11, 3), "10:00"))
        assert (res.disposition, res.rule) == ("holding_pen", "digest_reply"), res
    assert [(h.kind, h.reason.startswith("reply to digest")) for h in _held(app)] == [
        ("digest_reply", True)] * 3
    assert len(_cases(app)) == 1 and _cases(app)[0].status == "open"


def test_a_stranger_s_command_in_a_digest_reply_is_held(app: App) -> None:
    d = _digest(app, at(date(2026, 11, 3)))
    [case] = _cases(app)
    res = ingest(app, _answer(d, "tom.brown@council.example", f"#close {case.reference}"),
                 at(date(2026, 11, 3), "10:00"))
    assert res.disposition == "holding_pen" and "not a party" in res.reason
    assert _cases(app)[0].status == "open"


def test_a_forged_digest_address_opens_no_case(app: App) -> None:
    _digest(app, at(date(2026, 11, 3)))
    forged = message(JANE, tokens.digest_address(CASEWORK, 1, "abcdefghjk"), "Re: digest",
                     "New pothole on Mill Road")
    res = ingest(app, forged, at(date(2026, 11, 3), "10:00"))
    assert res.disposition == "holding_pen" and "does not verify" in res.reason
    assert len(_cases(app)) == 1


def test_an_automatic_reply_to_a_digest_is_dropped_with_a_record(app: App) -> None:
    d = _digest(app, at(date(2026, 11, 3)))
    res = ingest(app, _answer(d, JANE, "Ik ben afwezig tot 10 december.",
                              subject=f"Afwezig: {d['Subject']}"), at(date(2026, 11, 3), "10:00"))
    assert (res.disposition, res.rule) == ("ignored", "digest_reply")
    with app.session() as s:
        raw = s.exec(select(models.RawMessage).order_by(col(models.RawMessage.id).desc())).first()
        assert raw is not None and raw.disposition == "ignored"
        assert "auto-reply to a digest" in (raw.reason or "")
    assert _held(app) == [] and len(_cases(app)) == 1


# Twenty days of an out-of-office answering Jane's daily digests: each shape that opened a
# junk case before (no RFC 3834 header, a language not on the list, no In-Reply-To).
OOF_SHAPES = [
    {"subject": "Afwezig: {s}", "body": "Ik ben afwezig tot 5 januari."},
    {"subject": "RE: {s}", "body": "Thank you for your email. I am out of the office until "
     "5 January and will respond by 6 January."},
    {"subject": "Abwesenheitsnotiz: {s}", "body": "Ich bin bis zum 5. Januar nicht im Büro.",
     "threaded": False},
    {"subject": "Ateb awtomatig: {s}", "body": "Rydw i allan o'r swyddfa.", "auto": True},
]


def test_twenty_days_of_out_of_office_answering_digests_open_no_case(app: App) -> None:
    ingest(app, outlook_forward(subject="Bins not collected", body="The bins were missed."),
           MON)
    tick.tick(app, MON)
    answered: set[str] = set()
    day, days = date(2026, 11, 3), 0
    while days < 20:
        if app.calendar.is_working_day(day):
            days += 1
            tick.tick(app, at(day))
            for d in sent_of_kind(app.settings.maildir, "member_digest"):
                if str(d["Message-ID"]) in answered:
                    continue
                answered.add(str(d["Message-ID"]))
                shape = OOF_SHAPES[len(answered) % len(OOF_SHAPES)]
                oof = _answer(d, JANE, str(shape["body"]),
                              subject=str(shape["subject"]).format(s=d["Subject"]),
                              threaded=bool(shape.get("threaded", True)))
                if shape.get("auto"):
                    oof["Auto-Submitted"] = "auto-replied"
                res = ingest(app, oof, at(day, "09:30"))
                assert (res.disposition, res.rule) == ("ignored", "digest_reply"), res
        day = date.fromordinal(day.toordinal() + 1)
    print(f"{len(answered)} digests answered by an out-of-office in {days} working days")
    assert len(answered) >= 14
    assert len(_cases(app)) == 1 and _held(app) == []
