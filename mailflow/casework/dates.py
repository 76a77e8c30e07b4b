"""Dates as councillors and officers write them: the one parser for `#deadline`, `#holding`,
an officer's "I will reply by …" and the `opened`/`closed` columns of an import.

The forms are tried in a fixed order: ISO (`2026-12-10`), then UK numeric, day first
(`10/12/2026`, `10.12.2026`, `10/12/26`, `10/12`), then words (`10 December`, `10 Dec 2026`,
`Thursday 10th December`, `December 10`, `10th of December`, `10-Dec-2026`). ISO comes first
so that `2027-02-03` is 3 February, never read day-first. A date without a year is the next
such day from today (today included); an impossible date (31/02) is None, never guessed.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone

_MONTHS = {m: i for i, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",),
     ("jun", "june"), ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"),
     ("oct", "october"), ("nov", "november"), ("dec", "december")], 1) for m in names}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
# "10 Dec 2026", "December 10th, 2026", or a spreadsheet's "10-Dec-26"; a two-digit year only
# after a hyphen, so "10 December 12:00" is not the year 2012
_YEAR = r"(?:,?\s+(?P<year>\d{4})|-(?P<yy>\d{2}(?:\d{2})?))?"
_WEEKDAY = r"(?:(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?,?\s+)?"
_DATES = [
    re.compile(r"(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})(?!\d)"),
    re.compile(r"(?P<day>\d{1,2})[/.](?P<month>\d{1,2})(?:[/.](?P<year>\d{4}|\d{2}))?"
               r"(?!\d|[/.]\d)"),
    re.compile(_WEEKDAY + _DAY + r"(?:\s+of)?[\s-]+" + _MONTH + _YEAR + r"(?!\w)", re.IGNORECASE),
    re.compile(_WEEKDAY + _MONTH + r"\s+" + _DAY + _YEAR + r"(?!\w)", re.IGNORECASE),
]
# after the date: "14:30", "T14:30:00", "2:30pm", "2 pm", with an optional UTC offset
_TIME = re.compile(
    r"(?:[T\s]+|,\s*|\s+at\s+)(?P<hour>\d{1,2})(?::(?P<minute>\d{2})(?::(?P<second>\d{2})"
    r"(?:\.\d+)?)?)?\s*(?P<ampm>[ap]\.?m\.?)?"
    r"\s*(?P<offset>Z|[+-]\d{2}:?\d{2})?$", re.IGNORECASE)


def parse_date(text: str, today: date, *, whole: bool = False) -> date | None:
    """The first date at the start of `text` ("2026-12-10 because …"), or, with `whole`, the
    date that is the whole of `text`; None when there is none or it cannot exist."""
    found = _match(text.strip(), today)
    if found is None:
        return None
    d, end = found
    return d if not whole or end == len(text.strip()) else None


def parse_datetime(text: str, today: date, *, bare: time = time(0)) -> datetime | None:
    """The whole of `text` as a date (any form of `parse_date`) and an optional time
    (`2024-03-05 14:30`, `05/03/2024 2:30pm`, `2024-03-05T14:30:00Z`); a date alone gets the
    time `bare`. Naive, unless an offset was written."""
    text = text.strip()
    found = _match(text, today)
    if found is None:
        return None
    d, end = found
    if end == len(text):
        return datetime.combine(d, bare)
    m = _TIME.match(text, end)
    if m is None:
        return None
    at = _time(m)
    return datetime.combine(d, at) if at is not None else None


def _match(text: str, today: date) -> tuple[date, int] | None:
    """The date at the start of `text` and where it ends: the first form that matches decides
    (an impossible date is None, not a chance for a later form)."""
    for pattern in _DATES:
        m = pattern.match(text)
        if m:
            d = _date(m, today)
            return (d, m.end()) if d else None
    return None


def _date(m: re.Match[str], today: date) -> date | None:
    month = m.group("month")
    month_n = int(month) if month.isdigit() else _MONTHS[month.lower().rstrip(".")]
    day = int(m.group("day"))
    year = m.group("year") or m.groupdict().get("yy")
    if year:
        try:
            return date(int(year) + (2000 if len(year) == 2 else 0), month_n, day)
        except ValueError:
            return None
    # the next such day from today; 29 February may be up to 8 years away (2096 to 2104)
    for y in range(today.year, today.year + 9):
        try:
            d = date(y, month_n, day)
        except ValueError:
            continue
        if d >= today:
            return d
    return None


def _time(m: re.Match[str]) -> time | None:
    hour, minute, second = (int(m.group(g) or 0) for g in ("hour", "minute", "second"))
    ampm = (m.group("ampm") or "").lower()[:1]
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm == "p" else 0)
    elif m.group("minute") is None:
        return None  # "2024-03-05 14" is not a time
    if hour > 23 or minute > 59 or second > 59:
        return None
    return time(hour, minute, second, tzinfo=_offset(m.group("offset")))


def _offset(text: str | None) -> timezone | None:
    if not text:
        return None
    if text.upper() == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


# "I will reply by 10 December", "We aim to respond by Friday 11th December."
_PROMISE = re.compile(
    r"\b(?:i|we)\s*(?:will|'ll|’ll|shall|should|aim to|expect to|hope to|intend to|plan to)"
    r"\s+(?:be able to\s+)?(?:send (?:you )?(?:a |an |the )?(?:full )?|provide (?:a |an |the )?"
    r"(?:full )?|give (?:you )?(?:a |an |the )?(?:full )?)?"
    r"(?:reply|respond|response|answer|get back to you|come back to you|update you|update)"
    r"\b[^.\n]{0,40}?\b(?:by|on|before)\s+", re.IGNORECASE)


def promised_date(text: str, today: date) -> date | None:
    """The date an officer promises a reply by, for officers who do not type `#holding`."""
    for m in _PROMISE.finditer(text):
        d = parse_date(text[m.end():], today)
        if d:
            return d
    return None
