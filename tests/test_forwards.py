import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailflow.inbound.forwards import Party, find_forward, parse_date, parse_parties

CORPUS = Path(__file__).parent / "corpus" / "forwards"
CASES = sorted(CORPUS.glob("*.eml"))


def _load(path: Path) -> tuple[EmailMessage, dict]:
    msg = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg, json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))


def _internal(expected: dict) -> Callable[[str], bool]:
    domains = tuple("@" + d for d in expected.get("internal_domains", []))
    return lambda address: bool(domains) and address.endswith(domains)


def test_corpus_is_big_enough() -> None:
    positives = [p for p in CASES if _load(p)[1]["is_forward"]]
    assert len(positives) >= 30
    assert len(CASES) - len(positives) >= 5


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_corpus(path: Path) -> None:
    msg, expected = _load(path)
    found = find_forward(msg, _internal(expected))
    if not expected["is_forward"]:
        assert found is None
        return
    assert found is not None
    original = found.original
    assert found.attached is expected["attached"]
    assert original.sender is not None
    assert original.sender.name == expected["sender_name"]
    assert original.sender.address == expected["sender_address"]
    assert original.subject == expected["subject"]
    actual_date = original.date.isoformat() if original.date else None
    assert actual_date == expected["date"]
    assert original.body.startswith(expected["body_starts"]), original.body[:200]
    assert found.note == expected["note"]
    if "to" in expected:
        assert [p.address for p in original.to] == expected["to"]
    if "cc" in expected:
        assert [p.address for p in original.cc] == expected["cc"]


# -- forward of a forward ------------------------------------------------------------------


def test_without_internal_predicate_the_first_level_wins() -> None:
    # Issue 12: the first (outermost) level is the constituent who wrote to the member; the
    # council's reply she forwarded stays in her body.
    msg, _ = _load(CORPUS / "forward_of_forward_resident.eml")
    found = find_forward(msg)
    assert found is not None
    assert found.original.sender == Party("Fatima Begum", "fatima.begum@example.com")
    assert found.original.body.startswith("Bob, they have refused my permit")
    assert "Dear Ms Begum" in found.original.body
    assert found.note == "Resident unhappy with the reply below."


def test_internal_predicate_skips_officers() -> None:
    msg, _ = _load(CORPUS / "forward_of_forward_resident.eml")
    found = find_forward(msg, lambda a: a.endswith("@anytown.gov.uk"))
    assert found is not None
    assert found.original.sender is not None
    assert found.original.sender.address == "fatima.begum@example.com"
    # The chosen original's body runs on into the message it forwarded.
    assert "Dear Ms Begum" in found.original.body


def test_all_internal_falls_back_to_the_first_level() -> None:
    msg, _ = _load(CORPUS / "forward_of_forward_officer.eml")
    found = find_forward(msg, lambda a: True)
    assert found is not None
    assert found.original.sender is not None
    assert found.original.sender.address == "priya.patel@anytown.gov.uk"
    assert "ed.hall@example.com" in found.original.body  # the deeper level is kept


def test_raising_predicate_does_not_break_detection() -> None:
    def broken(address: str) -> bool:
        raise RuntimeError("directory down")

    msg, _ = _load(CORPUS / "outlook_desktop_en.eml")
    found = find_forward(msg, broken)
    assert found is not None
    assert found.original.sender is not None
    assert found.original.sender.address == "jane.smith@example.com"


# -- detection rules -----------------------------------------------------------------------


def _message(subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Cllr <cllr@anytown.gov.uk>"
    msg["Subject"] = subject
    msg.set_content(body)
    return msg


EXCHANGE_BLOCK = (
    "From: Smith, Jane\nSent: 23 November 2026 10:02\nTo: Jones, Bob\n"
    "Subject: Bins\n\nThe bins were missed.\n"
)


def test_name_only_sender_needs_forward_evidence() -> None:
    # Exchange shows internal senders by display name only: no address to go on.
    found = find_forward(_message("FW: Bins", EXCHANGE_BLOCK))
    assert found is not None
    assert found.original.sender == Party("Smith, Jane", "")
    assert found.original.to == [Party("Jones, Bob", "")]
    assert find_forward(_message("Bins", EXCHANGE_BLOCK)) is None


def test_two_header_lines_are_enough_with_a_forward_prefix_only() -> None:
    body = "From: Jane <jane@example.com>\nSubject: Bins\n\nThe bins were missed.\n"
    assert find_forward(_message("Bins", body)) is None
    found = find_forward(_message("Fwd: Bins", body))
    assert found is not None
    assert found.original.subject == "Bins"
    assert found.original.date is None


def test_reply_prefix_with_header_block_is_a_reply() -> None:
    body = "Done.\n\nFrom: Jane <jane@example.com>\nSent: 23 November 2026 10:02\nTo: x@y.z\n\nq\n"
    assert find_forward(_message("RE: Bins", body)) is None
    assert find_forward(_message("AW: Bins", body)) is None
    assert find_forward(_message("Bins", body)) is not None


def test_reply_subject_but_explicit_forward_marker_is_a_forward() -> None:
    body = (
        "See below.\n\n---------- Forwarded message ---------\nFrom: Jane <jane@example.com>\n"
        "Date: Mon, 23 Nov 2026 at 10:02\nSubject: Bins\nTo: <x@y.z>\n\nThe bins.\n"
    )
    found = find_forward(_message("Re: Bins", body))
    assert found is not None
    assert found.note == "See below."


def test_inline_block_wins_over_an_attachment_of_the_original() -> None:
    msg = _message(
        "FW: Photos",
        "From: Jane <jane@example.com>\nSent: 23 November 2026 10:02\nTo: x@y.z\n"
        "Subject: Photos\n\nSee the attached email from my neighbour.\n",
    )
    neighbour = EmailMessage()
    neighbour["From"] = "Neighbour <n@example.com>"
    neighbour["Subject"] = "Fence"
    neighbour.set_content("The fence fell down.\n")
    msg.add_attachment(neighbour)
    found = find_forward(msg)
    assert found is not None
    assert found.attached is False
    assert found.original.sender == Party("Jane", "jane@example.com")


def test_mutt_end_marker_ends_the_body() -> None:
    msg, _ = _load(CORPUS / "mutt.eml")
    found = find_forward(msg)
    assert found is not None
    assert "End forwarded message" not in found.original.body


def test_quoted_original_loses_one_quote_level() -> None:
    msg, _ = _load(CORPUS / "quoted_header_block.eml")
    found = find_forward(msg)
    assert found is not None
    assert ">" not in found.original.body


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=600), st.sampled_from(["Fwd: x", "Re: x", "x", ""]))
def test_find_forward_never_raises(body: str, subject: str) -> None:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg.set_content("From: a@b.c\nSent: garbage\nTo: ;;;\n" + body)
    result = find_forward(msg)
    assert result is None or result.original.sender is not None


# -- dates ---------------------------------------------------------------------------------

PLUS_ONE = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mon, 23 Nov 2026 10:02:11 +0000", datetime(2026, 11, 23, 10, 2, 11, tzinfo=UTC)),
        ("Monday, 23 November 2026 10:02", datetime(2026, 11, 23, 10, 2)),
        ("Monday, November 23, 2026 10:02 AM", datetime(2026, 11, 23, 10, 2)),
        ("Monday, November 23, 2026 2:41 PM", datetime(2026, 11, 23, 14, 41)),
        ("Monday, November 23, 2026 12:05 AM", datetime(2026, 11, 23, 0, 5)),
        ("Mon, 23 Nov 2026 at 10:02", datetime(2026, 11, 23, 10, 2)),
        ("Tue, Nov 24, 2026 at 9:15 PM", datetime(2026, 11, 24, 21, 15)),
        ("23 November 2026 at 10:02:11 GMT", datetime(2026, 11, 23, 10, 2, 11, tzinfo=UTC)),
        ("Monday, 23 November 2026, 10:02:11 GMT", datetime(2026, 11, 23, 10, 2, 11, tzinfo=UTC)),
        ("23/11/2026 10:02 (GMT+01:00)", datetime(2026, 11, 23, 10, 2, tzinfo=PLUS_ONE)),
        ("11/23/2026 10:02", datetime(2026, 11, 23, 10, 2)),
        ("2026-11-23 10:02", datetime(2026, 11, 23, 10, 2)),
        ("Montag, 23. November 2026 10:02", datetime(2026, 11, 23, 10, 2)),
        ("Mo., 23. Nov. 2026 um 10:02 Uhr", datetime(2026, 11, 23, 10, 2)),
        ("Dienstag, 3. März 2026 08:00", datetime(2026, 3, 3, 8, 0)),
        ("lundi 23 novembre 2026 10:02", datetime(2026, 11, 23, 10, 2)),
        ("lun. 23 nov. 2026 à 10:02", datetime(2026, 11, 23, 10, 2)),
        ("mardi 11 août 2026 10:02", datetime(2026, 8, 11, 10, 2)),
        ("lunes, 23 de noviembre de 2026 10:02", datetime(2026, 11, 23, 10, 2)),
        ("lun, 23 nov 2026 a las 10:02", datetime(2026, 11, 23, 10, 2)),
        ("poniedziałek, 23 listopada 2026 10:02", datetime(2026, 11, 23, 10, 2)),
        ("pon., 23 lis 2026 o 10:02", datetime(2026, 11, 23, 10, 2)),
        ("śr., 2 wrz 2026 o 07:30", datetime(2026, 9, 2, 7, 30)),
        ("Dydd Llun, 23 Tachwedd 2026 10:02", datetime(2026, 11, 23, 10, 2)),
        ("Dydd Mawrth, 24 Tachwedd 2026 10:02", datetime(2026, 11, 24, 10, 2)),
        ("Maw, 3 Mawrth 2026 am 10:02", datetime(2026, 3, 3, 10, 2)),
        ("Mon, 23 Nov 2026 10:02:11 -0500", datetime(2026, 11, 23, 10, 2, 11,
                                                     tzinfo=timezone(timedelta(hours=-5)))),
    ],
)
def test_parse_date(text: str, expected: datetime) -> None:
    assert parse_date(text) == expected
    assert (parse_date(text).tzinfo is None) == (expected.tzinfo is None)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "text", ["", "yesterday", "31/02/2026 10:00", "Monday 10:02", "99:99", "not a date at all"]
)
def test_unparseable_dates_are_none(text: str) -> None:
    assert parse_date(text) is None


# -- parties -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Jane Smith <Jane.Smith@Example.com>", [Party("Jane Smith", "jane.smith@example.com")]),
        ("Jane Smith [mailto:jane@example.com]", [Party("Jane Smith", "jane@example.com")]),
        ('"Smith, Jane" <jane@example.com>', [Party("Smith, Jane", "jane@example.com")]),
        ("<jane@example.com>", [Party(None, "jane@example.com")]),
        ("mailto:jane@example.com", [Party(None, "jane@example.com")]),
        ("jane@example.com <jane@example.com>", [Party(None, "jane@example.com")]),
        ("Jane <jane@example.com<mailto:jane@example.com>>", [Party("Jane", "jane@example.com")]),
        (
            "Smith, Jane <j@example.com>; Jones, Bob <b@example.com>",
            [Party("Smith, Jane", "j@example.com"), Party("Jones, Bob", "b@example.com")],
        ),
        (
            "a@example.com, Bob <b@example.com>",
            [Party(None, "a@example.com"), Party("Bob", "b@example.com")],
        ),
        ("Smith, Jane; Jones, Bob", [Party("Smith, Jane", ""), Party("Jones, Bob", "")]),
        ("", []),
    ],
)
def test_parse_parties(value: str, expected: list[Party]) -> None:
    assert parse_parties(value) == expected
