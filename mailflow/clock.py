"""The one place that knows what time it is.

Every moment is a timezone-aware UTC datetime; the council's time zone is applied only when
a deadline or a working hour is worked out. `--now` and the tests pin the clock here.
"""

from __future__ import annotations

from datetime import UTC, datetime

_pinned: datetime | None = None


def parse(value: str) -> datetime:
    """An ISO-8601 moment in UTC; a value without an offset is taken as UTC."""
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO-8601 date and time: {value!r}") from None
    return to_utc(dt)


def to_utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)


def pin(moment: datetime | None) -> None:
    global _pinned
    _pinned = to_utc(moment) if moment else None


def pinned() -> datetime | None:
    """The pinned moment, if any (serve hands it to its worker processes)."""
    return _pinned


def now() -> datetime:
    return _pinned or datetime.now(UTC)
