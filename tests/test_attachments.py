"""Attachments: stored once by sha256, listed on the case, passed on to the service with the
request, and kept only in the raw message when over the size limit."""

from __future__ import annotations

import hashlib
import json
from email.message import EmailMessage
from pathlib import Path

from sqlmodel import select

from mailflow import models, settings
from mailflow.app import App
from mailflow.jobs import tick
from tests.conftest import run_cli
from tests.mail import CASEWORK, JANE, ROADS, message, outlook_forward, sent_of_kind
from tests.test_loop import FRIDAY, ingest, ours

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40
PHOTO = b"\xff\xd8\xff\xe0" + b"\x42" * 50_000
LOGO = b"\x89PNG\r\n\x1a\n" + b"\x00" * 500


def forward_with_files() -> EmailMessage:
    fwd = outlook_forward()
    fwd.add_attachment(PDF, maintype="application", subtype="pdf", filename="letter.pdf")
    fwd.add_attachment(PHOTO, maintype="image", subtype="jpeg", filename="pothole.jpg")
    # A signature logo shown inline: not the constituent's file.
    fwd.add_attachment(LOGO, maintype="image", subtype="png", filename="logo.png",
                       disposition="inline", cid="<logo@council.example>")
    return fwd


def test_forward_attachments_are_listed_and_passed_on(app: App, config_file: Path) -> None:
    ref = ingest(app, forward_with_files()).case
    data = json.loads(run_cli(config_file, "case", ref, "--json").stdout)
    assert [(a["name"], a["content_type"], a["size"], a["sha256"], a["stored"])
            for a in data["attachments"]] == [
        ("letter.pdf", "application/pdf", len(PDF), hashlib.sha256(PDF).hexdigest(), True),
        ("pothole.jpg", "image/jpeg", len(PHOTO), hashlib.sha256(PHOTO).hexdigest(), True)]

    tick.tick(app, FRIDAY)
    [request] = sent_of_kind(app.settings.maildir, "request")
    files = {p.get_filename(): p.get_content() for p in request.iter_attachments()}
    assert files == {"letter.pdf": PDF, "pothole.jpg": PHOTO}
    text = request.get_body(("plain",)).get_content()
    assert "letter.pdf (10 KB)" in text and "pothole.jpg (49 KB)" in text
    [ack] = sent_of_kind(app.settings.maildir, "acknowledgement")
    assert list(ack.iter_attachments()) == []  # the member has them already


def test_the_same_file_is_stored_once(app: App) -> None:
    ingest(app, forward_with_files())
    ingest(app, forward_with_files())  # a second case, the same files
    with app.session() as s:
        assert len(s.exec(select(models.Attachment)).all()) == 4
        assert sorted(b.sha256 for b in s.exec(select(models.Blob))) == sorted(
            hashlib.sha256(x).hexdigest() for x in (PDF, PHOTO))


def test_attached_forward_carries_the_originals_files(app: App) -> None:
    original = message("Mary Jones <mary.jones@example.org>", JANE, "Pothole on Main Street",
                       "There is a huge pothole outside number 12.")
    original.add_attachment(PHOTO, maintype="image", subtype="jpeg", filename="hole.jpg")
    fwd = message(JANE, CASEWORK, "FW: Pothole on Main Street", "Please deal with this.")
    fwd.add_attachment(original)  # Outlook's "forward as attachment"
    ref = ingest(app, fwd).case
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        assert [a.name for a in s.exec(select(models.Attachment)
                                       .where(models.Attachment.case_id == case.id))] == [
            "hole.jpg"]


def test_over_the_limit_is_kept_in_the_raw_message_only(app: App, config_file: Path) -> None:
    config_file.write_text(config_file.read_text() + "\n[attachments]\nmax_size = 20000\n")
    small = App(settings.load(config_file))
    ref = ingest(small, forward_with_files()).case
    data = json.loads(run_cli(config_file, "case", ref, "--json").stdout)
    assert [(a["name"], a["stored"]) for a in data["attachments"]] == [
        ("letter.pdf", True), ("pothole.jpg", False)]
    [note] = [e for e in data["timeline"] if e["kind"] == "attachment_too_large"]
    assert "pothole.jpg (49 KB)" in note["text"] and "20 KB limit" in note["text"]
    tick.tick(small, FRIDAY)
    [request] = sent_of_kind(small.settings.maildir, "request")
    assert [p.get_filename() for p in request.iter_attachments()] == ["letter.pdf"]
    assert "Too large to pass on" in request.get_body(("plain",)).get_content()
    with small.session() as s:
        raw = s.exec(select(models.RawMessage)).one()
        assert b"pothole.jpg" in raw.raw  # the file is still in the message we keep


def test_a_service_reply_with_a_file_lists_it_on_the_case(app: App) -> None:
    ref = ingest(app, outlook_forward()).case
    reply = message(ROADS, CASEWORK, f"Re: [{ref}]", "Report attached.",
                    **ours(app, ref, "request"))
    reply.add_attachment(PDF, maintype="application", subtype="pdf", filename="report.pdf")
    assert ingest(app, reply).disposition == "update"
    with app.session() as s:
        [att] = s.exec(select(models.Attachment)).all()
        assert att.name == "report.pdf" and att.raw_message_id is not None
