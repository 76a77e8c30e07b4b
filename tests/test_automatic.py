"""Automatic mail on a corpus of real-world shapes: auto-replies, bounces (RFC 3464 and the
common non-standard ones) and our own mail coming back. Pure: no database."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from mailflow import settings
from mailflow.inbound.bounces import read
from mailflow.inbound.classify import classify
from mailflow.inbound.parse import parse
from tests.conftest import COUNCIL

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
