"""Report periods: a year (2026), a half (2026H1), a quarter (2026Q3), a month (2026-10) or
any range of council-local dates, and the previous period of the same length."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

_PERIOD = re.compile(r"^(\d{4})(?:(H)([12])|(Q)([1-4])|-(\d{1,2}))?$", re.IGNORECASE)


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    i = year * 12 + (month - 1) + n
    return i // 12, i % 12 + 1


def _month_end(year: int, month: int) -> date:
    y, m = _add_months(year, month, 1)
    return date(y, m, 1) - timedelta(days=1)


@dataclass(frozen=True)
class Period:
    start: date  # first day, inclusive
    end: date  # last day, inclusive
    label: str

    @property
    def months(self) -> int | None:
        """How many whole calendar months the period spans, when it is made of whole months."""
        if self.start.day != 1 or self.end + timedelta(days=1) != _first_after(self.end):
            return None
        return (self.end.year - self.start.year) * 12 + self.end.month - self.start.month + 1

    def month_keys(self) -> list[str]:
        out, (y, m) = [], (self.start.year, self.start.month)
        while date(y, m, 1) <= self.end:
            out.append(f"{y:04d}-{m:02d}")
            y, m = _add_months(y, m, 1)
        return out

    def previous(self) -> Period:
        """The period of the same length just before this one (the same kind for named ones)."""
        n = self.months
        if n is not None:
            y, m = _add_months(self.start.year, self.start.month, -n)
            ey, em = _add_months(y, m, n - 1)
            start, end = date(y, m, 1), _month_end(ey, em)
            return Period(start, end, _name(start, n) or f"{start}..{end}")
        days = (self.end - self.start).days + 1
        start, end = self.start - timedelta(days=days), self.start - timedelta(days=1)
        return Period(start, end, f"{start}..{end}")


def _first_after(d: date) -> date:
    y, m = _add_months(d.year, d.month, 1)
    return date(y, m, 1)


def _name(start: date, months: int) -> str | None:
    if months == 12 and start.month == 1:
        return f"{start.year}"
    if months == 6 and start.month in (1, 7):
        return f"{start.year}H{1 if start.month == 1 else 2}"
    if months == 3 and start.month % 3 == 1:
        return f"{start.year}Q{start.month // 3 + 1}"
    if months == 1:
        return f"{start.year}-{start.month:02d}"
    return None


def parse(text: str) -> Period:
    """`2026`, `2026H1`, `2026Q3` or `2026-10`."""
    m = _PERIOD.match(text.strip())
    if not m:
        raise ValueError(f"not a period: {text!r} (use 2026, 2026H1, 2026Q3 or 2026-10)")
    year = int(m.group(1))
    if m.group(2):
        first, n = (1 if m.group(3) == "1" else 7), 6
    elif m.group(4):
        first, n = (int(m.group(5)) - 1) * 3 + 1, 3
    elif m.group(6):
        first, n = int(m.group(6)), 1
        if not 1 <= first <= 12:
            raise ValueError(f"not a month: {text!r}")
    else:
        first, n = 1, 12
    ey, em = _add_months(year, first, n - 1)
    start = date(year, first, 1)
    return Period(start, _month_end(ey, em), _name(start, n) or text)


def between(start: date, end: date) -> Period:
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    n = Period(start, end, "").months
    return Period(start, end, (_name(start, n) if n else None) or f"{start}..{end}")


def month_of(d: date) -> Period:
    """The calendar month that contains `d`."""
    return parse(f"{d.year}-{d.month:02d}")


def half_of(d: date) -> Period:
    return parse(f"{d.year}H{1 if d.month <= 6 else 2}")
