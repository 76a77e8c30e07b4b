"""The one date parser: every form with a day of 12 or less (the day-first bug of issue 10) and
above 12, the year roll-over, impossible dates and text after the date. `today` is pinned."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest

from mailflow.casework.dates import parse_date, parse_datetime, promised_date

TODAY = date(2026, 11, 20)  # a Friday
NEW_YEARS_EVE = date(2026, 12, 31)


@pytest.mark.parametrize(("text", "small", "large"), [
    # ISO first: year, month, day, whatever the day
    ("2027-02-{d:02}", date(2027, 2, 3), date(2027, 2, 13)),
    ("2027-2-{d}", date(2027, 2, 3), date(2027, 2, 13)),
    # UK numeric: day first
    ("{d:02}/02/2027", date(2027, 2, 3), date(2027, 2, 13)),
    ("{d}.2.2027", date(2027, 2, 3), date(2027, 2, 13)),
    ("{d:02}/02/27", date(2027, 2, 3), date(2027, 2, 13)),
    ("{d}/2", date(2027, 2, 3), date(2027, 2, 13)),
    # words
    ("{d} February", date(2027, 2, 3), date(2027, 2, 13)),
    ("{d} Feb 2027", date(2027, 2, 3), date(2027, 2, 13)),
    ("{d}-Feb-27", date(2027, 2, 3), date(2027, 2, 13)),
    ("Wednesday {d}rd February", date(2027, 2, 3), date(2027, 2, 13)),
    ("Wed, {d} Feb.", date(2027, 2, 3), date(2027, 2, 13)),
    ("February {d}", date(2027, 2, 3), date(2027, 2, 13)),
    ("Feb {d}th, 2027", date(2027, 2, 3), date(2027, 2, 13)),
    ("{d}th of February", date(2027, 2, 3), date(2027, 2, 13)),
    ("{d} FEBRUARY 2027", date(2027, 2, 3), date(2027, 2, 13)),
])
def test_every_form_with_a_small_and_a_large_day(text: str, small: date, large: date) -> None:
    for day, expected in ((3, small), (13, large)):
        written = text.format(d=day)
        assert parse_date(written, TODAY) == expected, written
        assert parse_date(written + " because the contractor is away", TODAY) == expected
        assert parse_datetime(written, TODAY) == datetime.combine(expected, time(0))


def test_the_bug_of_issue_10() -> None:
    assert parse_date("2027-02-03", TODAY) == date(2027, 2, 3)  # not 2 March
    assert parse_date("2024-03-05", TODAY) == date(2024, 3, 5)  # not 3 May
    assert parse_date("2027-02-03", TODAY, whole=True) == date(2027, 2, 3)


@pytest.mark.parametrize(("text", "expected"), [
    ("31/12", date(2026, 12, 31)),  # today counts
    ("31 December", date(2026, 12, 31)),
    ("30/12", date(2027, 12, 30)),  # yesterday's date: next year
    ("1/1", date(2027, 1, 1)),
    ("1 January", date(2027, 1, 1)),
    ("January 1st", date(2027, 1, 1)),
    ("Friday 1st January", date(2027, 1, 1)),
    ("29/02", date(2028, 2, 29)),  # the next leap year
    ("31/12/2026", date(2026, 12, 31)),  # a written year is kept, past or not
    ("30/12/2026", date(2026, 12, 30)),
])
def test_a_date_without_a_year_is_the_next_such_day(text: str, expected: date) -> None:
    assert parse_date(text, NEW_YEARS_EVE) == expected


@pytest.mark.parametrize("text", [
    "31/02", "31/02/2027", "2027-02-31", "29 February 2027", "31 April", "2026-13-01",
    "13/13/2026", "0/12", "32 December", "", "   ", "soon", "next Friday", "the 5th",
    "10 Decembers", "10/12/202", "2026-12-101",
])
def test_impossible_or_no_dates_are_none(text: str) -> None:
    assert parse_date(text, TODAY) is None
    assert parse_datetime(text, TODAY) is None


def test_only_a_date_at_the_start_counts() -> None:
    assert parse_date("2026-12-10 because the contractor is away", TODAY) == date(2026, 12, 10)
    assert parse_date("  10/12: after the inspection", TODAY) == date(2026, 12, 10)
    assert parse_date("10 December. The inspector", TODAY) == date(2026, 12, 10)
    assert parse_date("by 10 December", TODAY) is None
    assert parse_date("10 December 12:00", TODAY) == date(2026, 12, 10)  # not the year 2012


def test_whole_wants_nothing_but_the_date() -> None:
    assert parse_date(" 2026-12-10 ", TODAY, whole=True) == date(2026, 12, 10)
    assert parse_date("Thursday 10th December", TODAY, whole=True) == date(2026, 12, 10)
    assert parse_date("2026-12-10 because", TODAY, whole=True) is None
    assert parse_date("10/12/2026x", TODAY, whole=True) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-03-05 14:30", datetime(2024, 3, 5, 14, 30)),
    ("2024-03-05T14:30:15", datetime(2024, 3, 5, 14, 30, 15)),
    ("2024-03-05 14:30:15.250", datetime(2024, 3, 5, 14, 30, 15)),
    ("05/03/2024 14:30", datetime(2024, 3, 5, 14, 30)),
    ("5.3.24 09:05", datetime(2024, 3, 5, 9, 5)),
    ("05/03/2024 2:30pm", datetime(2024, 3, 5, 14, 30)),
    ("5 March 2024, 12 pm", datetime(2024, 3, 5, 12, 0)),
    ("5 Mar 2024 at 12am", datetime(2024, 3, 5, 0, 0)),
    ("13/03/2024 00:00", datetime(2024, 3, 13, 0, 0)),
    ("2024-03-05", datetime(2024, 3, 5, 12, 0)),  # a bare date takes the given time
    ("5 March 2024", datetime(2024, 3, 5, 12, 0)),
    ("2024-03-05T14:30:00Z", datetime(2024, 3, 5, 14, 30, tzinfo=UTC)),
    ("2024-03-05 14:30+01:00",
     datetime(2024, 3, 5, 14, 30, tzinfo=timezone(timedelta(hours=1)))),
    ("2024-03-05 14:30 -0500",
     datetime(2024, 3, 5, 14, 30, tzinfo=timezone(timedelta(hours=-5)))),
])
def test_date_and_time_for_imports(text: str, expected: datetime) -> None:
    assert parse_datetime(text, TODAY, bare=time(12)) == expected


@pytest.mark.parametrize("text", [
    "2024-03-05 14", "2024-03-05 24:00", "2024-03-05 14:60", "05/03/2024 13pm",
    "2024-03-05 14:30 tomorrow", "2024-03-05 junk", "2024-03-05T",
])
def test_a_bad_time_is_no_datetime(text: str) -> None:
    assert parse_datetime(text, TODAY) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("I will reply by 03/02/2027.", date(2027, 2, 3)),
    ("We aim to respond by Wednesday 3rd February.", date(2027, 2, 3)),
    ("I'll get back to you on 2027-02-03 at the latest", date(2027, 2, 3)),
    ("We will send you a full response before 3 Feb.", date(2027, 2, 3)),
    ("I will update you by 13/12", date(2026, 12, 13)),
    ("I will reply by the end of the month.", None),
    ("See you on 3 February.", None),  # no promise
])
def test_an_officers_promise(text: str, expected: date | None) -> None:
    assert promised_date(text, TODAY) == expected
