"""Importing existing casework from a spreadsheet saved as CSV.

`check` reads every row and reports each one it cannot take (row number as the spreadsheet
shows it, the header being row 1; the column; the problem); `take` stores one checked row as
a case that keeps its original dates. No mail is sent and no request is made for an imported
case. Each case remembers a key of its row, so importing the same file again (after fixing
the bad rows) adds only what is new.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import datetime, time

from sqlmodel import Session, select

from mailflow import clock, models
from mailflow.casework import cases, dates, directory, duplicates, enquiry, names
from mailflow.casework.context import Context
from mailflow.settings import Member

COLUMNS = ("member", "ward", "constituent_name", "constituent_email", "constituent_address",
           "category", "service", "type", "opened", "closed", "status", "subject", "notes")
REQUIRED = ("member", "opened", "subject")
STATUSES = ("open", "answered", "closed")
_TITLES = re.compile(r"^(cllr|councillor|mr|mrs|ms|miss|dr)\.?\s+", re.IGNORECASE)


@dataclass
class Problem:
    row: int
    column: str
    problem: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: {self.problem}"


@dataclass
class Row:
    number: int
    member: Member
    ward: str
    constituent_name: str | None
    constituent_email: str | None
    constituent_address: str | None
    category: str | None
    enquiry_type: str
    opened: datetime
    closed: datetime | None
    status: str
    subject: str
    notes: str
    key: str


def decode(data: bytes) -> str:
    """Spreadsheets save CSV as UTF-8 (with or without a BOM) or, from older Excel, cp1252."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def check(ctx: Context, text: str, now: datetime) -> tuple[list[Row], list[Problem]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        return [], [Problem(1, "(header)", "the file is empty; the first row must be the "
                                           "header: " + ",".join(COLUMNS))]
    columns = [re.sub(r"[\s-]+", "_", h.strip().lower()) for h in header]
    problems = [Problem(1, h or f"#{i + 1}", "unknown column (its values would be lost); "
                        "known: " + ", ".join(COLUMNS))
                for i, h in enumerate(columns) if h not in COLUMNS]
    problems += [Problem(1, c, "required column is missing") for c in REQUIRED
                 if c not in columns]
    if problems:
        return [], problems
    rows: list[Row] = []
    seen: dict[str, int] = {}
    for number, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue  # a blank line between blocks of rows
        if len(values) != len(columns):
            problems.append(Problem(number, "(row)", f"has {len(values)} cells; the header has "
                                                     f"{len(columns)}"))
            continue
        cells = {c: v.strip() for c, v in zip(columns, values, strict=True)}
        row, found = _row(ctx, number, cells, now)
        problems += found
        if row is None:
            continue
        if row.key in seen:
            problems.append(Problem(number, "(row)", f"the same case as row {seen[row.key]}"))
            continue
        seen[row.key] = number
        rows.append(row)
    return rows, problems


def _row(ctx: Context, n: int, cells: dict[str, str], now: datetime
         ) -> tuple[Row | None, list[Problem]]:
    s = ctx.settings
    problems: list[Problem] = []

    def bad(column: str, problem: str) -> None:
        problems.append(Problem(n, column, problem))

    get = cells.get
    member = _member(ctx, get("member", ""))
    if member is None:
        bad("member", f"no member {get('member', '')!r} in the council directory" if
            get("member") else "is empty")
    ward = get("ward") or (member.ward if member else "")
    if get("ward"):
        ward, why = names.match(get("ward", ""), [w.name for w in s.wards], "ward")
        if ward is None:
            bad("ward", why)
    email = (get("constituent_email") or "").lower() or None
    if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        bad("constituent_email", f"{email!r} is not an email address")
    category = None
    if get("category"):
        category, why = names.match(get("category", ""), [
            n for sv in s.services for n in (sv.name, *sv.categories)], "category")
        if category is None:
            bad("category", why)
    if get("service"):
        svc, why = names.match(get("service", ""), [sv.name for sv in s.services], "service")
        if svc is None:
            bad("service", why)
        category = category or svc
    kind = enquiry.detect_type(s, get("notes") or "")[0]
    if get("type"):
        kind, why = names.match(get("type", ""), enquiry.TYPES, "type")
        if kind is None:
            bad("type", why)
    opened = _when(ctx, get("opened") or "", "opened", now, bad, required=True)
    closed = _when(ctx, get("closed") or "", "closed", now, bad)
    if opened and closed and closed < opened:
        bad("closed", "is before the opened date")
    status = "closed" if closed else "open"
    if get("status"):
        status, why = names.match(get("status", ""), STATUSES, "status")
        if status is None:
            bad("status", why)
        elif status == "closed" and not get("closed"):
            bad("closed", "is empty, but the status is closed")
        elif status != "closed" and get("closed"):
            bad("status", f"is {status}, but the case has a closed date")
    if not get("subject"):
        bad("subject", "is empty")
    if problems:
        return None, problems
    assert member and opened and ward and status and kind
    key = hashlib.sha256("\x1f".join(cells.get(c, "") for c in COLUMNS).encode()).hexdigest()
    return Row(n, member, ward, get("constituent_name") or None, email,
               get("constituent_address") or None, category, kind, opened, closed, status,
               get("subject") or "", get("notes") or "", key), []


def _member(ctx: Context, value: str) -> Member | None:
    if not value:
        return None
    by_address = ctx.settings.member_for(value.strip().lower())
    if by_address:
        return by_address
    plain = {_TITLES.sub("", m.name): m for m in ctx.settings.members}
    name, _ = names.match(_TITLES.sub("", value.strip()), plain, "member")
    return plain[name] if name else None


def _when(ctx: Context, value: str, column: str, now: datetime, bad, *,  # type: ignore[no-untyped-def]
          required: bool = False) -> datetime | None:
    """A date (UK order: 05/03/2024 is 5 March) or a date and time, in council time."""
    if not value:
        if required:
            bad(column, "is empty")
        return None
    # a bare date is noon: the same day in UTC and in council time
    parsed = dates.parse_datetime(value, ctx.calendar.today(now), bare=time(12))
    if parsed is None:
        bad(column, f"cannot read {value!r} as a date (write 2024-03-05 or 05/03/2024)")
        return None
    moment = clock.to_utc(parsed.replace(tzinfo=ctx.calendar.tz)
                          if parsed.tzinfo is None else parsed)
    if moment > now:
        bad(column, f"{value} is in the future")
        return None
    return moment


def take(ctx: Context, session: Session, row: Row, now: datetime, who: str, source: str
         ) -> models.Case | None:
    """Store one checked row as a case; None when it was imported before."""
    if session.exec(select(models.Case.id).where(models.Case.import_key == row.key)).first():
        return None
    s = ctx.settings
    member_row = directory.member_row(session, row.member.email)
    ward = session.exec(select(models.Ward).where(models.Ward.name == row.ward)).one()
    who_row = cases.constituent_for(session, row.constituent_name, row.constituent_email,
                                    address=row.constituent_address)
    year = ctx.calendar.local(row.opened).year
    case = models.Case(
        reference=cases.next_reference(session, s.council.reference_prefix, year),
        status=row.status, member_id=member_row.id, ward_id=ward.id,  # type: ignore[arg-type]
        constituent_id=who_row.id, category=row.category, enquiry_type=row.enquiry_type,
        subject=row.subject, issue=row.notes, received_at=row.opened, opened_at=row.opened,
        closed_at=row.closed, import_key=row.key,
    )
    session.add(case)
    session.flush()
    duplicates.index(session, case)
    cases.event(session, case, "opened", row.opened, sender=row.member.email,
                text="Opened (imported).", via="import", enquiry_type=row.enquiry_type)
    if row.closed:
        cases.event(session, case, "closed", row.closed, sender=row.member.email,
                    text="Closed (imported).", via="import")
    cases.event(session, case, "imported", now, sender=who, text=f"Imported from {source}, "
                f"row {row.number}.", via="import", file=source, row=row.number)
    return case

