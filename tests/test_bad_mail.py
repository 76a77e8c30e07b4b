"""Bad mail never crashes the pipeline and is never lost: a corpus of broken messages, a very
large one, a very deep one, and a property-based test that feeds the pipeline generated and
mutated messages. Each must end stored, with a disposition and, when held, a holding row."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from mailflow import clock, models
from mailflow.app import App
from mailflow.casework.views import case_dict
from mailflow.inbound import pipeline
from mailflow.inbound.inspect import inspect
from tests.mail import CASEWORK, JANE, message, outlook_forward
from tests.test_automatic import CORPUS as AUTOMATIC
from tests.test_automatic import corpus_bytes

BAD = Path(__file__).parent / "corpus" / "bad"
NOW = clock.parse("2026-11-23T10:00:00Z")

# file -> disposition; every file must be listed, so a new one needs a decision.
EXPECTED = {
    "bad_base64.eml": "case_opened",
    "bad_dates_and_addresses.eml": "holding_pen",  # a stranger
    "broken_boundary.eml": "case_opened",  # read with the boundary the body uses
    "eight_bit_headers.eml": "holding_pen",
    "empty_body.eml": "holding_pen",  # kind empty: no text, no files
    "headers_only.eml": "holding_pen",
    "html_only_lying_charset.eml": "case_opened",
    "lying_charset.eml": "case_opened",
    "missing_end_boundary.eml": "case_opened",
    "multipart_without_boundary.eml": "case_opened",
    "no_from.eml": "holding_pen",
    "no_headers.eml": "holding_pen",
    "no_message_id.eml": "case_opened",
    "nul_bytes.eml": "case_opened",
    "only_attachment.eml": "case_opened",
    "rfc2047_broken.eml": "case_opened",
    "unknown_charset.eml": "holding_pen",
    "uuencode_utf7.eml": "case_opened",
}


def ingest(app: App, raw: bytes) -> tuple[int, pipeline.Outcome]:
    raw_id, duplicate = pipeline.receive(app, raw, source="ingest", now=NOW)
    out = pipeline.describe(app, raw_id) if duplicate else pipeline.process(app, raw_id, NOW)
    assert out is not None
    return raw_id, out


def assert_disposed(app: App, raw_id: int, raw: bytes | None = None) -> models.RawMessage:
    with app.session() as s:
        row = s.get(models.RawMessage, raw_id)
        assert row is not None
        if raw is not None:
            assert row.raw == raw  # the raw bytes are always kept
        assert row.state in ("done", "failed"), row.state
        assert row.disposition in ("case_opened", "update", "holding_pen", "ignored"), row
        assert row.reason
        if row.disposition == "holding_pen":
            assert s.exec(select(models.Holding)
                          .where(models.Holding.raw_message_id == raw_id)).first(), row.reason
        if row.disposition in ("case_opened", "update"):
            assert row.case_id is not None
        return row


def test_every_bad_file_has_an_expectation() -> None:
    assert sorted(p.name for p in BAD.glob("*.eml")) == sorted(EXPECTED)


def test_bad_corpus_is_stored_and_disposed(app: App) -> None:
    for name, disposition in sorted(EXPECTED.items()):
        raw = (BAD / name).read_bytes()
        raw_id, out = ingest(app, raw)
        assert out.disposition == disposition, (name, out.reason)
        row = assert_disposed(app, raw_id, raw)
        assert row.state == "done", (name, row.reason)  # handled, not merely quarantined


def test_broken_boundary_forward_still_finds_the_constituent(app: App) -> None:
    _, out = ingest(app, (BAD / "broken_boundary.eml").read_bytes())
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == out.case)).one()
        who = s.get(models.Constituent, case.constituent_id)
        assert who.email == "ann.lee@example.org"
        assert "floods every time it rains" in case.issue


def test_a_message_that_is_only_an_attachment_opens_a_case_with_it(app: App) -> None:
    _, out = ingest(app, (BAD / "only_attachment.eml").read_bytes())
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == out.case)).one()
        [att] = case_dict(s, case)["attachments"]
    assert (att["name"], att["content_type"], att["stored"]) == ("pothole.jpg", "image/jpeg", True)


def test_nul_and_control_characters_do_not_reach_the_database(app: App) -> None:
    _, out = ingest(app, (BAD / "nul_bytes.eml").read_bytes())
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == out.case)).one()
        assert "\x00" not in case.subject + case.issue and "\x01" not in case.issue
        assert case.subject == "NULin subject"


def test_a_20_mb_message_is_kept_and_its_big_attachment_stays_in_it(app: App) -> None:
    msg = outlook_forward(subject="Fly-tipping video", body="See the video of the fly-tipping.")
    msg.add_attachment(os.urandom(15 * 1024 * 1024), maintype="video", subtype="mp4",
                       filename="tipping.mp4")
    raw = msg.as_bytes()
    assert len(raw) > 20 * 1000 * 1000
    raw_id, out = ingest(app, raw)
    assert out.disposition == "case_opened"
    assert_disposed(app, raw_id, raw)
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == out.case)).one()
        data = case_dict(s, case)
        assert s.exec(select(models.Blob)).first() is None  # over the limit: not copied
    [att] = data["attachments"]
    assert (att["name"], att["stored"]) == ("tipping.mp4", False)
    assert att["size"] == 15 * 1024 * 1024
    [note] = [e for e in data["timeline"] if e["kind"] == "attachment_too_large"]
    assert "tipping.mp4" in note["text"] and "kept only in the original message" in note["text"]


def _nested(depth: int, kind: str = "multipart") -> bytes:
    head = f"From: {JANE}\nTo: {CASEWORK}\nSubject: deep\nMIME-Version: 1.0\n".encode()
    if kind == "multipart":
        body = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i)
                        for i in range(depth))
    else:
        body = b"Content-Type: message/rfc822\n\n" * depth
    body += b"Content-Type: text/plain\n\nThe bins at Mill Road were missed.\n"
    if kind == "multipart":
        body += b"".join(b"--b%d--\n" % i for i in reversed(range(depth)))
    return head + body


def test_nesting_up_to_the_limit_is_read() -> None:
    from mailflow.inbound.parse import MAX_DEPTH, parse
    p = parse(_nested(MAX_DEPTH))
    assert p.refused is None and "Mill Road" in p.text


def test_deep_nesting_is_refused_before_it_exhausts_the_stack(app: App) -> None:
    for depth, kind in ((21, "multipart"), (300, "multipart"), (50_000, "multipart"),
                        (50_000, "rfc822")):
        raw = _nested(depth, kind)
        raw_id, out = ingest(app, raw)
        assert out.disposition == "holding_pen" and out.rule == "malformed", out
        assert "nested more than 20 levels" in out.reason
        row = assert_disposed(app, raw_id, raw)
        assert row.state == "done"  # refused with its reason, not quarantined by a crash
        with app.session() as s:
            [held] = s.exec(select(models.Holding)
                            .where(models.Holding.raw_message_id == raw_id)).all()
            assert (held.kind, held.sender, held.subject) == ("malformed", JANE, "deep")


def test_an_empty_message_from_a_member_opens_no_case(app: App) -> None:
    for raw in ((BAD / "empty_body.eml").read_bytes(),
                message(JANE, CASEWORK, "Pothole", "\n\n").as_bytes(),
                message(JANE, CASEWORK, "Pothole", "#priority high\n").as_bytes()):
        raw_id, out = ingest(app, raw)
        assert out.disposition == "holding_pen", out
        with app.session() as s:
            held = s.exec(select(models.Holding)
                          .where(models.Holding.raw_message_id == raw_id)).one()
            assert held.kind == "empty" and "no text" in held.reason
            assert s.exec(select(models.Case)).first() is None


def test_inspect_reads_every_bad_file_without_a_database(app: App) -> None:
    for name in EXPECTED:
        data = inspect((BAD / name).read_bytes(), app.settings, None, name)
        assert data["file"] == name and data["match"]["evidence"] == "none"


# -- property: generated and mutated messages -------------------------------------------------
def _seeds() -> list[bytes]:
    seeds = [p.read_bytes() for p in sorted(BAD.glob("*.eml"))]
    seeds += [corpus_bytes(p.name) for p in sorted(AUTOMATIC.glob("*.eml"))]
    fwd = outlook_forward()
    fwd.add_attachment(b"%PDF-1.4 tiny", maintype="application", subtype="pdf",
                       filename="letter.pdf")
    seeds += [fwd.as_bytes(), message("mary.jones@example.org", CASEWORK, "Re: CW-2026-00001",
                                      "Any news on CW-2026-00001?").as_bytes()]
    return seeds


SEEDS = _seeds()
CHARSETS = ["utf-8", "us-ascii", "iso-8859-1", "windows-1252", "utf-7", "utf-16", "koi8-r",
            "x-unknown", "", "utf-8\x00", "shift_jis", "gb2312"]


def _mutate(raw: bytes, op: str, rnd: random.Random) -> bytes:
    if not raw:
        return raw
    at = rnd.randrange(len(raw))
    if op == "truncate":
        return raw[:at]
    if op == "flip":
        data = bytearray(raw)
        for _ in range(rnd.randint(1, 20)):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        return bytes(data)
    lines = raw.split(b"\n")
    end = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
    if op == "drop_header" and end:
        del lines[rnd.randrange(end)]
    elif op == "dup_header" and end:
        i = rnd.randrange(end)
        lines.insert(i, lines[i])
    elif op == "eight_bit_header" and end:
        i = rnd.randrange(end)
        lines[i] += bytes(rnd.randrange(128, 256) for _ in range(rnd.randint(1, 8)))
    elif op == "break_boundary":
        return re.sub(rb"^--(\S+)", lambda m: b"--" + m.group(1)[::-1], raw, count=2,
                      flags=re.M)
    elif op == "charset":
        cs = rnd.choice(CHARSETS).encode()
        return re.sub(rb"charset=\"?[\w-]*\"?", b'charset="' + cs + b'"', raw, flags=re.I)
    elif op == "splice":
        other = rnd.choice(SEEDS)
        return raw[:at] + other[rnd.randrange(len(other) or 1):]
    return b"\n".join(lines)


OPS = ["truncate", "flip", "drop_header", "dup_header", "eight_bit_header", "break_boundary",
       "charset", "splice"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    raw = draw(st.sampled_from(SEEDS))
    rnd = random.Random(draw(st.integers(0, 2**32)))
    for op in draw(st.lists(st.sampled_from(OPS), min_size=1, max_size=4)):
        raw = _mutate(raw, op, rnd)
    return raw


@st.composite
def generated(draw: st.DrawFn) -> bytes:
    headers = draw(st.lists(st.tuples(
        st.sampled_from(["From", "To", "Cc", "Subject", "Message-ID", "In-Reply-To",
                         "References", "Content-Type", "Content-Transfer-Encoding",
                         "Auto-Submitted", "Date", "X-Mailflow-Kind", "Precedence"]),
        st.text(max_size=60)), max_size=8))
    body = draw(st.binary(max_size=600) | st.text(max_size=600).map(str.encode))
    head = "".join(f"{k}: {v}\n" for k, v in headers).encode("utf-8", "surrogateescape")
    if draw(st.booleans()):
        head = f"From: {JANE}\n".encode() + head
    return head + b"\n" + body


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(raw=st.one_of(mutated(), generated(), st.binary(max_size=300)))
def test_every_message_is_stored_and_disposed(app: App, raw: bytes) -> None:
    raw_id, _ = ingest(app, raw)
    assert_disposed(app, raw_id)


def test_ingest_refuses_a_message_over_the_smtp_limit(app: App, config_file: Path) -> None:
    from tests.conftest import run_cli

    small = config_file.parent / "small.toml"
    small.write_text(config_file.read_text().replace("port = 8025",
                                                     "port = 8025\nmax_message_size = 4000"))
    big = outlook_forward(body="Fly-tipping again. " * 300).as_bytes()
    assert len(big) > 4000
    path = config_file.parent / "big.eml"
    path.write_bytes(big)
    for args, stdin in ((["ingest", "--json"], big), (["ingest", "--json", str(path)], None)):
        done = run_cli(small, *args, "--now", "2026-11-23T10:00:00Z", stdin=stdin)
        assert done.returncode == 65, done.stderr  # EX_DATAERR: the MTA bounces it
        assert "552 5.3.4 Message too big for mailflow" in done.stderr
        assert '"disposition": "refused"' in done.stdout
    with app.session() as s:
        assert s.exec(select(models.RawMessage)).first() is None  # stored nowhere
    done = run_cli(small, "ingest", "--now", "2026-11-23T10:00:00Z",
                   stdin=outlook_forward().as_bytes())
    assert done.returncode == 0 and "case_opened" in done.stdout, done.stderr


def test_a_date_out_of_range_is_no_date_and_the_message_goes_through(app: App) -> None:
    """A year or offset too large once raised OverflowError and the forward was quarantined
    as failed; a date we cannot read is no date."""
    from mailflow.inbound.parse import parse

    raw = re.sub(rb"(?m)^Date: .*$", b"Date: Mon, 01 Jan 99999999999 10:00:00 +0000",
                 outlook_forward().as_bytes(), count=1)
    assert b"99999999999" in raw
    assert parse(raw).date is None
    pipeline.receive(app, raw, source="ingest", now=clock.parse("2026-11-23T10:00:00Z"))
    assert pipeline.drain(app, clock.parse("2026-11-23T10:00:00Z")) == 1
    with app.session() as s:
        assert s.exec(select(models.RawMessage.disposition)).one() == "case_opened"
