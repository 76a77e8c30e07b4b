"""Working days: weekdays that are not bank holidays in the council's nation, nor closure days.
Working hours and cut-offs are read in the council's own time zone, so DST is handled once."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

import holidays

from mailflow.settings import Council


class Calendar:
    def __init__(self, council: Council):
        self.tz = ZoneInfo(council.timezone)
        self.timezone = council.timezone
        self.nation = council.nation
        self.closures = {date.fromisoformat(d) for d in council.closure_days}
        self.cutoff = time.fromisoformat(council.cutoff)
        self.hours = tuple(time.fromisoformat(t) for t in council.working_hours)
        self._working: dict[date, bool] = {}  # digests ask about the same days many times
        self._between: dict[tuple[date, date], int] = {}

    @cached_property
    def _holidays(self) -> holidays.HolidayBase:
        return holidays.country_holidays("GB", subdiv=self.nation)

    @property
    def fingerprint(self) -> str:
        """Changes whenever a deadline worked out by this calendar could change."""
        facts = [self.timezone, self.nation, self.cutoff.isoformat(),
                 *sorted(d.isoformat() for d in self.closures)]
        return hashlib.sha256("|".join(facts).encode()).hexdigest()[:16]

    def describe(self) -> str:
        closures = ", ".join(sorted(d.isoformat() for d in self.closures)) or "none"
        return (f"{self.nation} bank holidays, closure days {closures}, "
                f"cut-off {self.cutoff:%H:%M} {self.timezone}")

    def is_working_day(self, d: date) -> bool:
        known = self._working.get(d)
        if known is None:
            known = self._working[d] = (d.weekday() < 5 and d not in self._holidays
                                        and d not in self.closures)
        return known

    def local(self, utc: datetime) -> datetime:
        """A moment in the council's own time zone."""
        return utc.astimezone(self.tz)

    def today(self, utc: datetime) -> date:
        return self.local(utc).date()

    def in_working_hours(self, utc: datetime) -> bool:
        """A working day, between the start and end of the council's working hours."""
        local = self.local(utc)
        start, end = self.hours
        return self.is_working_day(local.date()) and start <= local.time() < end

    def at_or_after(self, utc: datetime, at: time) -> bool:
        return self.local(utc).time() >= at

    def received_day(self, utc: datetime) -> date:
        """The working day a message counts as received: after the cut-off it is the next one."""
        local = self.local(utc)
        d = local.date()
        if not self.is_working_day(d) or local.time() >= self.cutoff:
            d = self.next_working_day(d)
        return d

    def next_working_day(self, d: date) -> date:
        d += timedelta(days=1)
        while not self.is_working_day(d):
            d += timedelta(days=1)
        return d

    def previous_working_day(self, d: date) -> date:
        d -= timedelta(days=1)
        while not self.is_working_day(d):
            d -= timedelta(days=1)
        return d

    def working_day_on_or_after(self, d: date) -> date:
        return d if self.is_working_day(d) else self.next_working_day(d)

    def add_working_days(self, d: date, n: int) -> date:
        for _ in range(n):
            d = self.next_working_day(d)
        for _ in range(-n):
            d = self.previous_working_day(d)
        return d

    def due(self, received_utc: datetime, days: int) -> date:
        """Day 1 is the first working day after receipt; the answer is due by the end of day N."""
        return self.add_working_days(self.received_day(received_utc), days)

    def working_days_between(self, start: date, end: date) -> int:
        """Working days after `start` up to and including `end` (negative when end < start)."""
        known = self._between.get((start, end))
        if known is not None:
            return known
        sign, lo, hi = (1, start, end) if end >= start else (-1, end, start)
        n, d = 0, lo
        while d < hi:
            d += timedelta(days=1)
            n += self.is_working_day(d)
        self._between[(start, end)] = sign * n
        return sign * n
