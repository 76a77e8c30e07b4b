"""Dates as mail clients print them in a forward's header block, in any language:
RFC 2822, long dates with month names (nominative or genitive), numeric dates (day first
unless the day is over 12), `2026年11月23日`, 12- and 24-hour times, GMT offsets and a few
zone names. Month names are in forward_tables.py.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

from mailflow.inbound import forward_tables as tables

_MONTHS: dict[str, int] = {}
for _number, _words in enumerate(tables.MONTHS, start=1):
    for _word in _words.split():
        _MONTHS.setdefault(_word, _number)  # the first language listed wins a shared word

_NAMED_ZONES = {"gmt": 0, "utc": 0, "ut": 0, "z": 0, "bst": 60, "cet": 60, "cest": 120,
                "wet": 0, "west": 60, "est": -300, "edt": -240, "pst": -480, "pdt": -420}
_RFC2822 = re.compile(
    r"^(?:[a-z]{3},\s*)?\d{1,2}\s+[a-z]{3}\s+\d{4}\s+\d{1,2}:\d{2}(?::\d{2})?"
    r"(?:\s+(?:[+-]\d{4}|[a-z]{1,5}))?(?:\s*\(.*\))?$",
    re.IGNORECASE,
)
_GMT_OFFSET = re.compile(r"\b(?:gmt|utc)\s*([+-])(\d{1,2})(?::?(\d{2}))?", re.I)
_NUMERIC_DATE = re.compile(r"\b(\d{1,4})[/.\-] ?(\d{1,2})[/.\-] ?(\d{2,4})\b")
_CJK_DATE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
# "10:02", "10h02" (French), "10.02" (Finnish, Danish: read after any numeric date is gone).
_TIME = re.compile(
    r"\b(\d{1,2})[:h.](\d{2})(?!\.\d|\d)(?:[:.](\d{2}))?(?:\s*([ap])\.?\s?m\b\.?)?", re.I
)
_NUMERIC_OFFSET = re.compile(r"(?<![\w:])([+-])(\d{2}):?(\d{2})\b")
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def parse_date(value: str) -> datetime | None:
    """A datetime from any client's date line; None when it cannot be read. Never raises."""
    value = value.strip()
    if not value:
        return None
    if _RFC2822.match(value):
        try:
            return parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    try:
        return _parse_loose(value)
    except (ValueError, OverflowError):
        return None


def _parse_loose(value: str) -> datetime | None:
    text = value.lower()
    offset: int | None = None
    if m := _GMT_OFFSET.search(text):
        offset = _offset_minutes(m.group(1), m.group(2), m.group(3))
        text = text[: m.start()] + " " + text[m.end() :]
    day = month = year = None
    if m := _CJK_DATE.search(text):
        year, month, day = (int(g) for g in m.groups())
        text = text[: m.start()] + " " + text[m.end() :]
    elif m := _NUMERIC_DATE.search(text):
        a, b, c = (int(g) for g in m.groups())
        year, month, day = (a, b, c) if len(m.group(1)) == 4 else (c, b, a)
        if month > 12 >= day:  # a US-style 11/23/2026
            day, month = month, day
        text = text[: m.start()] + " " + text[m.end() :]
    hour = minute = second = 0
    if m := _TIME.search(text):
        hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        if m.group(4):
            hour = hour % 12 + (12 if m.group(4).lower() == "p" else 0)
        text = text[: m.start()] + " " + text[m.end() :]
    if offset is None and (m := _NUMERIC_OFFSET.search(text)):
        offset = _offset_minutes(m.group(1), m.group(2), m.group(3))
        text = text[: m.start()] + " " + text[m.end() :]
    if month is None:
        day, month, year = _named_date(text)
    if offset is None:
        for word in _WORD.findall(text):
            if word in _NAMED_ZONES:
                offset = _NAMED_ZONES[word]
                break
    if day is None or month is None or year is None:
        return None
    if year < 100:
        year += 2000
    tz = timezone(timedelta(minutes=offset)) if offset is not None else None
    return datetime(year, month, day, hour, minute, second, tzinfo=tz)


_DAY_MONTH_YEAR = re.compile(r"(\d{1,2})\.?\s*(?:de\s+)?([^\W\d_]+)\.?,?\s*(?:de\s+)?(\d{4})")
_MONTH_DAY_YEAR = re.compile(r"([^\W\d_]+)\.?\s+(\d{1,2}),?\s+(\d{4})")


def _named_date(text: str) -> tuple[int | None, int | None, int | None]:
    # A month name next to the day number wins: Welsh "Dydd Mawrth" (Tuesday) is also March.
    for m in _DAY_MONTH_YEAR.finditer(text):
        if m.group(2) in _MONTHS:
            return int(m.group(1)), _MONTHS[m.group(2)], int(m.group(3))
    for m in _MONTH_DAY_YEAR.finditer(text):
        if m.group(1) in _MONTHS:
            return int(m.group(2)), _MONTHS[m.group(1)], int(m.group(3))
    month = None
    for word in _WORD.findall(text):
        if word.rstrip(".") in _MONTHS:
            month = _MONTHS[word.rstrip(".")]
            break
    day = year = None
    for number in re.findall(r"\d+", text):
        if len(number) == 4 and year is None:
            year = int(number)
        elif len(number) <= 2 and day is None:
            day = int(number)
    return day, month, year


def _offset_minutes(sign: str, hours: str, minutes: str | None) -> int:
    total = int(hours) * 60 + int(minutes or 0)
    return -total if sign == "-" else total
