"""Safe headers (issue 11): no text from outside becomes a header of our mail.

A subject, a name, an address, a Message-ID or a filename may hold encoded words that decode
to CR/LF ("=?utf-8?q?Pothole=0D=0ABcc:_x@evil.example?="), bidi overrides or control
characters. Every mail in the outbox must parse back with exactly the headers mailflow meant
to write: one From (ours), the recipients it chose, one Reply-To (ours) when set, no Bcc, no
header beyond the expected set, and the subject equal to the sanitised text. The attack corpus
(tests/corpus/headers) runs through `mailflow ingest` and through `serve` over SMTP; a
property test drives the real pipeline with generated values."""

from __future__ import annotations

import base64
import email
import json
import re
import smtplib
import subprocess
from collections.abc import Iterator
from datetime import datetime
from email import policy, quoprimime
from email.header import Header
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import col, select

from mailflow import clock, db, models
from mailflow import settings as app_settings
from mailflow.app import App
from mailflow.inbound import pipeline
from mailflow.jobs import chase
from mailflow.oneline import BIDI
from mailflow.outbound import mail
from mailflow.outbound.render import (
    address,
    header_text,
    is_address,
    message_ids,
    quoted_printable,
)
from tests.conftest import run_cli
from tests.mail import CASEWORK, JANE, ROADS, outlook_forward
from tests.rules import council
from tests.test_serve import server, wait_for

__all__ = ["server"]

CORPUS = Path(__file__).parent / "corpus" / "headers"
FRIDAY = clock.parse("2026-11-20T10:00:00Z")
TUESDAY = clock.parse("2026-11-24T11:00:00Z")
CHASE_DAY = clock.parse("2026-12-08T10:00:00Z")  # the first chase of a request due 7 December
ESCALATION = "head.roads@council.example"
ATTACK = "=?utf-8?q?Pothole=0D=0AReply-To:_attacker@evil.example=0D=0ACc:_x@evil.example?="

# Every header name mailflow writes at the top of a message, and in a MIME part.
TOP = {"from", "to", "cc", "subject", "date", "message-id", "reply-to", "in-reply-to",
       "references", "auto-submitted", "x-auto-response-suppress", "x-mailflow-kind",
       "mime-version", "content-type"}
PART = {"content-type", "content-transfer-encoding", "content-disposition", "mime-version"}

# file -> disposition; every file must be listed. Forwards come from Jane; replies answer the
# request of a case opened first ({TO}, {IN_REPLY_TO} and {REF} are filled in).
EXPECTED = {
    "fwd_attached_filename_crlf.eml": "case_opened",
    "fwd_attached_from_name_crlf.eml": "case_opened",
    "fwd_attached_subject_crlf.eml": "case_opened",
    "fwd_attached_subject_lone_cr.eml": "case_opened",  # was a ValueError: no case at all
    "fwd_attached_subject_nul_bidi.eml": "case_opened",
    "fwd_constituent_address_ew.eml": "case_opened",
    "fwd_constituent_address_unicode.eml": "case_opened",
    "fwd_inline_from_name_crlf.eml": "case_opened",
    "fwd_inline_subject_bidi.eml": "case_opened",
    "fwd_inline_subject_crlf.eml": "case_opened",
    "fwd_inline_subject_nested.eml": "case_opened",
    "fwd_message_id_ew.eml": "case_opened",
    "fwd_outer_subject_bcc_b64.eml": "case_opened",
    "fwd_outer_subject_crlf.eml": "case_opened",
    "fwd_references_ew.eml": "case_opened",
    "fwd_separators.eml": "case_opened",
    "reply_body_headers.eml": "update",
    # The display name decodes to "Bob\r\nReply-To: attacker@…": not the contact's From.
    "reply_from_name_crlf.eml": "holding_pen",
    "reply_message_id_ew.eml": "update",
    "reply_subject_bidi_b64.eml": "update",
    "reply_subject_crlf.eml": "update",
}


@pytest.fixture
def config_file(tmp_path: Path, db_url: str) -> Path:
    """The test council with mail to constituents on (Jane allows it): the constituent's
    acknowledgement and #send put an outsider's address in To."""
    path = tmp_path / "mailflow.toml"
    path.write_text(council(db_url, "[casework]\nconstituent_mail = true\n",
                            jane="constituent_mail = true"))
    return path


@pytest.fixture
def app(config_file: Path) -> Iterator[App]:
    a = App(app_settings.load(config_file))
    db.upgrade(a.url)
    a.start(FRIDAY)
    yield a
    db.engine(a.url).dispose()


# -- checking the outbox ---------------------------------------------------------------------


def outbox(app: App, after: int = 0) -> list[models.Outbox]:
    with app.session() as s:
        return list(s.exec(select(models.Outbox).where(col(models.Outbox.id) > after)
                           .order_by(col(models.Outbox.id))))


def chosen(app: App) -> set[str]:
    """The addresses mailflow may write to here: the directory's, and constituents' that are
    writable addresses."""
    s = app.settings
    found = {m.email for m in s.members} | {st.email for st in s.staff} | {CASEWORK}
    for sv in s.services:
        found |= {sv.contact, *sv.contact_aliases, sv.escalation or ""}
    with app.session() as session:
        found |= {address(e).addr_spec for e in session.exec(select(models.Constituent.email))
                  if e and is_address(e)}  # an internationalised domain in its ASCII form
    return {a.lower() for a in found if a}


def check_row(row: models.Outbox, allowed: set[str], cc_kinds: tuple[str, ...] = ("chase",
              "escalation")) -> EmailMessage:
    """The row's raw bytes parse back with exactly the headers mailflow meant to write."""
    head = row.raw.split(b"\n\n", 1)[0]
    assert head.isascii(), head
    assert all(len(line) <= 998 for line in row.raw.splitlines())
    m = email.message_from_bytes(row.raw, policy=policy.default)
    assert isinstance(m, EmailMessage)
    names = [k.lower() for k in m]
    assert len(names) == len(set(names)), names  # each header once
    assert set(names) <= TOP, set(names) - TOP
    assert {"from", "subject", "date", "message-id", "x-mailflow-kind"} <= set(names)
    for part in list(m.walk())[1:]:
        assert {k.lower() for k in part} <= PART, list(part.keys())
        if part.get_filename() is not None:
            assert part.get_filename() == header_text(part.get_filename())
    assert not m.defects and not any(m[k].defects for k in m), m.defects
    [sender] = m["From"].addresses
    assert sender.addr_spec == CASEWORK
    to = [a.addr_spec.lower() for a in m["To"].addresses] if m["To"] else []
    cc = [a.addr_spec.lower() for a in m["Cc"].addresses] if m["Cc"] else []
    assert sorted(to + cc) == sorted(a.lower() for a in row.recipients)
    assert set(to + cc) <= allowed, set(to + cc) - allowed
    assert not cc or row.kind in cc_kinds, (row.kind, cc)  # only chases copy anyone in
    if m["Reply-To"] is not None:
        [rt] = m["Reply-To"].addresses
        assert rt.addr_spec == JANE or (rt.domain == "council.example"
                                        and rt.username.startswith("casework+")), rt
    for k in ("In-Reply-To", "References"):
        if m[k] is not None:
            ids = str(m[k]).split()
            assert ids and message_ids(ids) == ids, str(m[k])
    subject = str(m["Subject"])
    assert subject == row.subject == header_text(subject), (subject, row.subject)
    assert not BIDI & set(subject) and not re.search(r"[\x00-\x1f\x7f]|=\?", subject)
    assert m.get_body(("plain",)) is not None
    return m


def check_outbox(app: App, after: int = 0) -> list[models.Outbox]:
    rows = outbox(app, after)
    allowed = chosen(app)
    for row in rows:
        m = check_row(row, allowed)
        # To may name a constituent the corpus made up; the rest is only ever ours.
        assert "evil.example" not in " ".join(str(m[k] or "") for k in ("From", "Cc", "Reply-To"))
    return rows


# -- the sanitiser ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "clean"), [
    (ATTACK, "Pothole Reply-To: attacker@evil.example Cc: x@evil.example"),
    ("=?utf-8?q?a=0Db?=", "a b"),  # a lone CR
    ("Invoice \u202egpj.exe\u202c \u2066x\u2069 \u200ey\u200f\u061c", "Invoice gpj.exe x y"),
    ("a\u2028b\u2029c\x85d\x0be\x00f\r\ng\th", "a b c d e f g h"),
    ("=?utf-8?q?=3D=3Futf-8=3Fq=3Fa=3D0D=3D0Ab=3F=3D?=", "a b"),  # an encoded encoded word
    ("x =?bogus?x?y?= =?", "x = ?bogus?x?y?= = ?"),  # what cannot be decoded is broken up
    ("  two   spaces ", "two spaces"),
])
def test_header_text(text: str, clean: str) -> None:
    assert header_text(text) == clean
    assert header_text(clean) == clean


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_header_text_is_safe_and_idempotent(text: str) -> None:
    clean = header_text(text)
    assert header_text(clean) == clean and len(clean) <= 250
    assert not re.search(r"[\x00-\x1f\x7f\x85\u2028\u2029]|=\?", clean)
    assert not BIDI & set(clean)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["a", " ", "\t", "=", ".", "é", "\x00", "\x7f", "\x0c",
                                 "\x85", "\u2028", "x" * 70, "\n"]), max_size=120),
       st.sampled_from([78, 76, 4, 5, 10]))
def test_quoted_printable_is_the_stdlibs(pieces: list[str], limit: int) -> None:
    """render.quoted_printable writes the bytes email.quoprimime.body_encode writes (for text
    with "\n" line ends, as render gives it)."""
    data = "".join(pieces).encode("utf-8")
    want = quoprimime.body_encode(data.decode("latin-1"), limit).encode("ascii")
    assert quoted_printable(data, limit) == want


# -- reproducing the crash through the command line ------------------------------------------


def test_lone_cr_in_the_originals_subject_opens_a_case(app: App, config_file: Path) -> None:
    raw = (CORPUS / "fwd_attached_subject_lone_cr.eml").read_bytes()
    done = run_cli(config_file, "ingest", "--json", "--now", "2026-11-23T10:00:00Z", stdin=raw)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["disposition"], out["case"]) == ("case_opened", "CW-2026-00001"), out
    with app.session() as s:
        case = s.exec(select(models.Case)).one()
    assert case.subject == "Street light out number 7"
    rows = check_outbox(app)
    assert {r.kind for r in rows} >= {"request", "acknowledgement"}
    request = next(r for r in rows if r.kind == "request")
    assert request.subject == "[CW-2026-00001] Member enquiry: Street light out number 7"


# -- the attack corpus -----------------------------------------------------------------------


def test_every_corpus_file_has_an_expectation() -> None:
    assert sorted(p.name for p in CORPUS.glob("*.eml")) == sorted(EXPECTED)


def fill(raw: bytes, request: models.Outbox, ref: str) -> bytes:
    m = email.message_from_bytes(request.raw, policy=policy.default)
    to = m["Reply-To"].addresses[0].addr_spec
    return (raw.replace(b"{TO}", to.encode()).replace(b"{IN_REPLY_TO}", request.message_id.encode())
            .replace(b"{REF}", ref.encode()))


def corpus(kind: str) -> list[Path]:
    return sorted(p for p in CORPUS.glob(f"{kind}_*.eml"))


def ingest_files(config: Path, files: list[Path], now: str) -> dict[str, dict]:
    done = run_cli(config, "ingest", "--json", "--now", now, *map(str, files))
    assert done.returncode == 0, done.stderr
    return {Path(o["file"]).name: o for o in map(json.loads, done.stdout.splitlines())}


def the_request(app: App, ref: str) -> models.Outbox:
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        return s.exec(select(models.Outbox).where(models.Outbox.case_id == case.id)
                      .where(models.Outbox.kind == "request")).one()


def test_corpus_through_ingest(app: App, config_file: Path, tmp_path: Path) -> None:
    setup = tmp_path / "setup.eml"
    setup.write_bytes(outlook_forward().as_bytes())
    first = ingest_files(config_file, [setup], "2026-11-20T10:00:00Z")["setup.eml"]
    request = the_request(app, first["case"])
    replies = []
    for path in corpus("reply"):
        replies.append(tmp_path / path.name)
        replies[-1].write_bytes(fill(path.read_bytes(), request, first["case"]))
    results = ingest_files(config_file, corpus("fwd"), "2026-11-23T10:00:00Z")
    results |= ingest_files(config_file, replies, "2026-11-24T11:00:00Z")
    assert {name: o["disposition"] for name, o in results.items()} == EXPECTED
    rows = check_outbox(app)
    kinds = [r.kind for r in rows]
    assert kinds.count("request") == 1 + len(corpus("fwd"))
    assert kinds.count("alert") == list(EXPECTED.values()).count("update")
    assert "constituent_acknowledgement" in kinds
    # The attacks did reach the cases, as text: the subject carries them, decoded, on one line.
    with app.session() as s:
        subjects = {c.subject for c in s.exec(select(models.Case))}
    assert "=?utf-8?q?Pothole=0D=0AReply-To:_attacker@evil.example=0D=0ACc:_x@evil.example?=" \
        in subjects  # stored as the constituent's mail showed it
    titles = [r.subject for r in rows]
    assert any(t.endswith("Member enquiry: Pothole Reply-To: attacker@evil.example "
                          "Cc: x@evil.example") for t in titles)
    assert any("Invoice gpj.exe and isolate mark" in t for t in titles)


def _sent(port: int, raw: bytes, sender: str, to: str) -> None:
    """The file's own bytes, with CRLF line ends as on the wire (re-serialising it would let
    the library refuse or repair the attack before mailflow sees it)."""
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        assert smtp.sendmail(sender, [to], re.sub(rb"\r?\n", b"\r\n", raw)) == {}


def _done(app: App) -> int:
    with app.session() as s:
        return len(s.exec(select(models.RawMessage.id)
                          .where(col(models.RawMessage.state).in_(["done", "failed"]))).all())


def test_corpus_through_serve(server: tuple[int, subprocess.Popen[bytes]], app: App) -> None:
    port, _ = server
    _sent(port, outlook_forward().as_bytes(), JANE, CASEWORK)
    wait_for("the first case", lambda: _done(app) == 1)
    with app.session() as s:
        ref = s.exec(select(models.Case.reference)).one()
    request = the_request(app, ref)
    sent = 1
    for path in corpus("fwd"):
        _sent(port, path.read_bytes(), JANE, CASEWORK)
    for path in corpus("reply"):
        _sent(port, fill(path.read_bytes(), request, ref), ROADS, CASEWORK)
    sent += len(corpus("fwd")) + len(corpus("reply"))
    wait_for("the corpus to be processed", lambda: _done(app) == sent, timeout=60)
    with app.session() as s:
        rows = s.exec(select(models.RawMessage)).all()
        assert all(r.state == "done" for r in rows), [(r.id, r.state, r.reason) for r in rows]
        got = sorted(r.disposition for r in rows)
    assert got == sorted(["case_opened", *EXPECTED.values()])
    rows_out = check_outbox(app)
    assert [r.kind for r in rows_out].count("alert") == list(EXPECTED.values()).count("update")


# -- the property: any outside text, through the real pipeline -------------------------------


def _encoded(text: str) -> str:
    """A header value that decodes to `text`, CR and LF included (the attack's carrier)."""
    return Header(text, "utf-8").encode(linesep="\r\n") if text else ""


def _b64_body(text: str) -> bytes:
    return base64.encodebytes(text.encode("utf-8", "surrogatepass")).replace(b"\n", b"\r\n")


def _raw(headers: list[tuple[str, str]], body: str) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers)
    return (head + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode() + _b64_body(body)


def _forward(n: int, subject: str, name: str, addr: str, body: str, attached: bool) -> bytes:
    if not attached:
        text = ("Can you look into this pothole please?\n\nJane\n\n" + "_" * 32 + "\n"
                f"From: {name} <{addr}>\nSent: 20 November 2026 18:04\nTo: Cllr Jane Smith "
                f"<{JANE}>\nSubject: {subject}\n\n{body}\n")
        return _raw([("From", f"Cllr Jane Smith <{JANE}>"), ("To", CASEWORK),
                     ("Subject", "FW: " + _encoded(subject)), ("Message-ID", f"<f{n}@hyp.example>"),
                     ("Date", "Fri, 20 Nov 2026 09:15:00 +0000")], text)
    inner = _raw([("From", f"{_encoded(name)} <{addr}>"), ("To", JANE),
                  ("Subject", _encoded(subject)), ("Message-ID", f"<i{n}@hyp.example>")], body)
    return (f"From: Cllr Jane Smith <{JANE}>\r\nTo: {CASEWORK}\r\nSubject: FW: x\r\n"
            f"Message-ID: <f{n}@hyp.example>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"hyp-b\"\r\n\r\n--hyp-b\r\n"
            "Content-Type: text/plain\r\n\r\nSee the attached pothole.\r\n--hyp-b\r\n"
            "Content-Type: message/rfc822\r\n\r\n").encode() + inner + b"\r\n--hyp-b--\r\n"


HOSTILE = [ATTACK, "=?utf-8?q?a=0Db?=", "=?utf-8?b?eA0KQmNjOiB5QGV2aWwuZXhhbXBsZQ==?=",
           "Pothole\r\nBcc: x@evil.example", "\u202egpj.exe", "a\u2028b\x85c\x00d",
           "=?utf-8?q?=3D=3Futf-8=3Fq=3Fa=3D0D=3D0ABcc:_x@evil.example=3F=3D?="]
text = st.one_of(st.text(max_size=80), st.sampled_from(HOSTILE),
                 st.tuples(st.text(max_size=20), st.sampled_from(HOSTILE)).map("".join))
addresses = st.one_of(st.emails(), st.sampled_from([
    "=?utf-8?q?x=0D=0ABcc:_y@evil.example?=@example.org", "josé@example.es", "a=?b?=@x.org",
    "mary@exämple.org", "\u202emary@example.org"]),
    st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"),
                          blacklist_characters="<>"), min_size=1, max_size=20)
    .map(lambda s: s + "@example.org"))
counter = iter(range(1, 10**9))


# 50 examples: each runs four messages and a chase through the pipeline (about ten mails).
@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(subject=text, name=text, addr=addresses, body=text, officer_subject=text,
       officer_text=text, member_text=text, attached=st.booleans())
def test_any_outside_text_gives_only_our_headers(
        app: App, subject: str, name: str, addr: str, body: str, officer_subject: str,
        officer_text: str, member_text: str, attached: bool) -> None:
    n = next(counter)
    start = max((r.id or 0 for r in outbox(app)), default=0)
    out = _ingest(app, _forward(n, subject, name, addr, body, attached), FRIDAY)
    assert out.disposition == "case_opened", out
    chase.chase(app, CHASE_DAY)  # a chase, threaded on the request
    request = the_request(app, out.case or "")
    reply = _raw([("From", f"{_encoded(officer_subject)} <{ROADS}>"),
                  ("To", email.message_from_bytes(request.raw, policy=policy.default)[
                      "Reply-To"].addresses[0].addr_spec),
                  ("Subject", f"RE: [{out.case}] " + _encoded(officer_subject)),
                  ("Message-ID", f"<r{n}@hyp.example>"), ("In-Reply-To", request.message_id)],
                 officer_text or "Done.")
    _ingest(app, reply, CHASE_DAY.replace(hour=11))
    alerts = [r for r in outbox(app, start) if r.kind == "alert"]
    if alerts:  # the member answers the alert and sends the answer on to the constituent
        _ingest(app, _raw([("From", JANE), ("To", CASEWORK),
                           ("Subject", "RE: " + _encoded(alerts[0].subject)),
                           ("Message-ID", f"<m{n}@hyp.example>"),
                           ("In-Reply-To", alerts[0].message_id)], f"{member_text}\n#send\n"),
                CHASE_DAY.replace(hour=12))
    rows = check_outbox(app, start)
    kinds = {r.kind for r in rows}
    assert {"request", "acknowledgement", "chase"} <= kinds, kinds
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == out.case)).one()
    want = header_text(f"[{out.case}] Member enquiry: {case.subject or '(no subject)'}")
    assert request.subject == want


def _ingest(app: App, raw: bytes, now: datetime) -> pipeline.Outcome:
    raw_id, duplicate = pipeline.receive(app, raw, source="ingest", now=now)
    assert not duplicate
    out = pipeline.process(app, raw_id, now)
    assert out is not None
    return out


# -- the door itself -------------------------------------------------------------------------


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(headline=text, body=text, filename=text, to=addresses, cc=addresses)
def test_send_writes_only_our_headers(app: App, headline: str, body: str, filename: str,
                                      to: str, cc: str) -> None:
    """outbound/mail.send with a headline from outside in the subject (as notices carry the
    first line of an officer's text), an outsider's address in To and Cc, and a filename and a
    content type from outside. An address it cannot write is left out; with no one left, the
    mail is held with the reason."""
    with app.session() as s:
        case = s.exec(select(models.Case)).first()
    if case is None:
        _ingest(app, outlook_forward().as_bytes(), FRIDAY)
    with app.session() as s:
        case = s.exec(select(models.Case)).one()
        member = s.get(models.Member, case.member_id)
        row = mail.send(app.context, s, "update",
                        {"member": member, "kind": "reply", "headline": headline, "text": body},
                        to=[to], cc=[cc], now=FRIDAY, case=case, files=[mail.Attachment(
                            filename, "text/plain\r\nBcc: x@evil.example", b"x")])
        ref = case.reference
        s.rollback()  # nothing is kept: each example starts from the same outbox
    allowed = {address(a).addr_spec.lower() for a in (to, cc) if is_address(a)}
    msg = check_row(row, allowed, cc_kinds=("update",))
    assert str(msg["Subject"]) == header_text(f"[{ref}] {headline}")
    if not is_address(to):
        assert msg["To"] is None
        assert row.state == "held" and "no address" in (row.held_reason or "")
    [part] = [p for p in msg.iter_attachments()]
    assert part.get_content_type() == "application/octet-stream"
    assert part.get_filename() == (header_text(filename, 150) or "attachment")
