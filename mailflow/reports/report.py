"""The numbers of `mailflow report`, counted from the anonymised statistics (stats.py) with a
few GROUP BY queries, so a whole council's three years take well under a second.

What each column counts (dates are council-local):
- `opened`, `closed`: cases opened / closed in the period;
- `requests`: requests sent to services in the period; every request column below is about
  these requests (their outcome may come later: a report re-run later sees late answers);
- `answered`, `answered_on_time`: of those, answered at all / by their due date;
- `on_time_pct`: answered on time as a share of those whose outcome is known (answered, or
  unanswered and past due), so "acknowledged, then silence" counts against the service;
- `median_days`, `p90_days`: working days from the day the case counts as received to the
  answer (median: the middle value, or the mean of the two middle ones; p90: nearest rank);
- `overdue_now`: still unanswered and past due on the day the report runs;
- `escalations`: escalations of those requests.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Integer, case, cast, func
from sqlmodel import Session, col, select

from mailflow.models import CaseStat, RequestStat
from mailflow.reports.period import Period, _add_months

GROUPINGS = ("ward", "member", "category", "service", "type", "month")
METRICS = ("opened", "closed", "requests", "answered", "answered_on_time", "on_time_pct",
           "median_days", "p90_days", "overdue_now", "escalations")

Key = tuple[Any, ...]


def parse_groupings(text: str | None) -> list[str]:
    by = [g.strip().lower() for g in (text or "").split(",") if g.strip()]
    for g in by:
        if g not in GROUPINGS:
            raise ValueError(f"cannot group by {g!r}; use {', '.join(GROUPINGS)}")
    if len(set(by)) != len(by):
        raise ValueError("a grouping is named twice")
    return by


def _keys(model: Any, by: Sequence[str], month: Any) -> list[Any]:
    names = {"ward": model.ward, "member": model.member, "category": model.category,
             "service": model.service, "type": model.enquiry_type, "month": month}
    return [names[g] for g in by]


def _between(column: Any, p: Period) -> Any:
    return col(column).between(p.start, p.end)


@dataclass
class _Tally:
    """What one group counted in one period; tallies add up, so totals need no new query."""

    opened: int = 0
    closed: int = 0
    requests: int = 0
    on_time: int = 0
    overdue: int = 0
    escalations: int = 0
    days: Counter[int] = field(default_factory=Counter)  # working days to answer -> answers

    def __add__(self, other: _Tally) -> _Tally:
        return _Tally().add(self).add(other)

    def add(self, other: _Tally) -> _Tally:
        self.opened += other.opened
        self.closed += other.closed
        self.requests += other.requests
        self.on_time += other.on_time
        self.overdue += other.overdue
        self.escalations += other.escalations
        self.days.update(other.days)
        return self

    def metrics(self) -> dict[str, Any]:
        answered = sum(self.days.values())
        decided = answered + self.overdue
        hist = list(self.days.items())
        return {"opened": self.opened, "closed": self.closed, "requests": self.requests,
                "answered": answered, "answered_on_time": self.on_time,
                "on_time_pct": round(100 * self.on_time / decided, 1) if decided else None,
                "median_days": percentile(hist, 50), "p90_days": percentile(hist, 90),
                "overdue_now": self.overdue, "escalations": self.escalations}


def _count(session: Session, by: Sequence[str], p: Period, today: date) -> dict[Key, _Tally]:
    """One period's tallies, keyed by the group's values: one scan of each statistics table
    (their covering indexes hold every column these queries read)."""
    out: dict[Key, _Tally] = defaultdict(_Tally)
    keys = _keys(CaseStat, by, CaseStat.opened_month)
    for *k, n in session.execute(select(*keys, func.count()).where(_between(CaseStat.opened_on, p))
                                 .group_by(*keys)):
        if n:
            out[tuple(k)].opened = n
    keys = _keys(CaseStat, by, CaseStat.closed_month)
    for *k, n in session.execute(select(*keys, func.count()).where(_between(CaseStat.closed_on, p))
                                 .group_by(*keys)):
        if n:
            out[tuple(k)].closed = n

    R = RequestStat
    overdue = col(R.answered_on).is_(None) & (col(R.state) == "sent") & (col(R.due) < today)

    def total(cond: Any) -> Any:
        return func.sum(case((cond, 1), else_=0))

    # Grouped by working days too: medians come from these few rows per group.
    keys = _keys(R, by, R.sent_month)
    stmt = (select(*keys, R.working_days, func.count(), total(col(R.on_time).is_(True)),
                   total(overdue), func.sum(cast(R.escalations, Integer)))
            .where(_between(R.sent_on, p)).group_by(*keys, R.working_days))
    for *k, days, n, on_time, n_overdue, escalations in session.execute(stmt):
        if not n:
            continue  # no groups: the one row of an empty period
        t = out[tuple(k)]
        t.requests += n
        t.on_time += on_time or 0
        t.overdue += n_overdue or 0
        t.escalations += escalations or 0
        if days is not None:
            t.days[days] += n
    return out


def percentile(histogram: list[tuple[int, int]], pct: int) -> float | int | None:
    """The median (pct=50: the middle value, or the mean of the two middle ones) or another
    percentile by nearest rank, of values given as (value, how many)."""
    values = sorted(histogram)
    n = sum(c for _, c in values)
    if n == 0:
        return None

    def at(i: int) -> int:  # the i-th smallest value, 0-based
        for v, c in values:
            if i < c:
                return v
            i -= c
        raise IndexError(i)

    if pct == 50:
        lo, hi = at((n - 1) // 2), at(n // 2)
        return lo if lo == hi else (lo + hi) / 2
    return at(max(math.ceil(pct / 100 * n), 1) - 1)


def _shift_month(key: Key, by: Sequence[str], months: int) -> Key:
    if "month" not in by or key[by.index("month")] is None:
        return key
    i = by.index("month")
    y, m = _add_months(*map(int, key[i].split("-")), months)
    return (*key[:i], f"{y:04d}-{m:02d}", *key[i + 1:])


def _sort_key(key: Key) -> tuple[Any, ...]:
    return tuple((v is None, str(v).lower() if v is not None else "") for v in key)


def report(session: Session, period: Period, by: Sequence[str], today: date
           ) -> list[dict[str, Any]]:
    """One row per group (see `with_total`)."""
    return with_total(session, period, by, today)[0]


def with_total(session: Session, period: Period, by: Sequence[str], today: date
               ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row per group, with each metric, its value in the previous period of the same
    length (`<metric>_prev`) and the change (`<metric>_change`, percentage points for
    `on_time_pct`); and the row of the whole council (`group` "all"), which is also the one
    row when there are no groupings."""
    by = list(by)
    prev_period = period.previous()
    now = _count(session, by, period, today)
    before = _count(session, by, prev_period, today)
    total_now, total_prev = sum(now.values(), _Tally()), sum(before.values(), _Tally())
    prev: dict[Key, _Tally] | None = before
    if "month" in by:
        # A month compares with the month as far back as the period is long, when it is made
        # of whole months; otherwise there is nothing like it to compare with.
        n = period.months
        prev = {_shift_month(k, by, n): v for k, v in before.items()} if n else None
        if by == ["month"]:
            for m in period.month_keys():  # every month, even an empty one: no gaps
                now.setdefault((m,), _Tally())
    keys = set(now) | set(prev or {})
    if "month" in by:
        months = set(period.month_keys())
        keys = {k for k in keys if k[by.index("month")] in months}

    def row(group: dict[str, Any], cur: _Tally, before: _Tally | None) -> dict[str, Any]:
        out = {**group, **cur.metrics()}
        # A group with nothing in the previous period had zero of everything then.
        was = before.metrics() if before is not None else dict.fromkeys(METRICS)
        for m in METRICS:
            a, b = out[m], was[m]
            out[f"{m}_prev"] = b
            out[f"{m}_change"] = (round(a - b, 1) if isinstance(a, float) or isinstance(b, float)
                                  else a - b) if a is not None and b is not None else None
        out.update({"from": period.start.isoformat(), "to": period.end.isoformat(),
                    "previous_from": prev_period.start.isoformat(),
                    "previous_to": prev_period.end.isoformat()})
        return out

    rows = []
    for key in sorted(keys, key=_sort_key):
        group = {"group": key[0]} if len(by) == 1 else dict(zip(by, key, strict=True))
        rows.append(row(group, now.get(key) or _Tally(),
                        None if prev is None else prev.get(key) or _Tally()))
    total = row({"group": "all"}, total_now, total_prev)
    return (rows if by else [total]), total


def empty_row(group: str, period: Period) -> dict[str, Any]:
    """The row of a group with nothing in the period (nor in the previous one)."""
    row: dict[str, Any] = {"group": group, **_Tally().metrics()}
    for m in METRICS:
        row[f"{m}_prev"], row[f"{m}_change"] = row[m], None
    prev = period.previous()
    return {**row, "from": period.start.isoformat(), "to": period.end.isoformat(),
            "previous_from": prev.start.isoformat(), "previous_to": prev.end.isoformat()}


def columns(by: Sequence[str]) -> list[str]:
    """The CSV columns, in order."""
    groups = ["group"] if len(by) <= 1 else list(by)
    return [*groups, *METRICS, *(f"{m}_{s}" for m in METRICS for s in ("prev", "change")),
            "from", "to", "previous_from", "previous_to"]
