"""The retention job: once a council-local day (claimed in the database, so of two nodes or
two ticks only one runs it), delete what has passed its period (casework/retention.py).
`mailflow retention` runs the same now, or shows it with `--dry-run`.

Each case is deleted in its own transaction after locking it (FOR UPDATE SKIP LOCKED on
PostgreSQL; SQLite's write lock otherwise) and checking again that it is still closed, still
due and not under a legal hold, so two runs at once delete each case once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from mailflow import db, models
from mailflow.app import App
from mailflow.casework import endterm, holds, retention
from mailflow.casework.views import _iso, legal_hold
from mailflow.settings import Retention

BATCH = 200
DAY = "retention_day"  # models.Setting: the last council-local day the job ran


def daily(app: App, now: datetime) -> dict[str, Any]:
    """tick's and serve's job: the first run of each council-local day does the work."""
    today = app.calendar.local(now).date().isoformat()
    with app.session() as s:
        done = s.get(models.Setting, DAY)
        if done is not None and done.value >= today:  # the usual case: no write
            return dict.fromkeys(KINDS.values(), 0)
        db.insert_once(s, models.Setting, {"name": DAY, "value": ""}, ["name"])
        won = db.claim(s, models.Setting,
                       (col(models.Setting.name) == DAY) & (col(models.Setting.value) < today),
                       {"value": today})
        s.commit()
    if not won:
        return dict.fromkeys(KINDS.values(), 0)
    return summary(run(app, now))


KINDS = {"case": "cases", "holding": "holding", "raw_message": "raw_messages", "mail": "mail"}


def summary(items: list[dict[str, Any]]) -> dict[str, int]:
    """How many of each kind were deleted (tick's line)."""
    counts = dict.fromkeys(KINDS.values(), 0)
    for i in items:
        if i["action"] == "deleted":
            counts[KINDS[i["kind"]]] += 1
    return counts


def run(app: App, now: datetime, *, dry_run: bool = False) -> list[dict[str, Any]]:
    """Everything due at `now`, one dict each (`mailflow retention --json`), deleted unless
    `dry_run`. Held cases that would otherwise be due are listed as `kept`."""
    cfg = app.settings.retention
    today = app.calendar.local(now).date()
    items = _end_of_term(app, cfg, now, today, dry_run)
    items += _cases(app, cfg, now, today, dry_run)
    items += _holding(app, cfg, now, dry_run)
    items += _raw(app, cfg, now, today, dry_run)
    items += _mail(app, cfg, now, dry_run)
    if not dry_run and any(i["action"] == "deleted" for i in items):
        compact_search_index(app)
    return items


def _item(kind: str, rule: str, since: datetime | None, due: datetime | None, action: str,
          case: str | None = None, id_: int | None = None,
          legal_hold: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": kind, "case": case, "id": id_, "rule": rule, "since": _iso(since),
            "due_at": _iso(due), "action": action, "legal_hold": legal_hold}


def _cases(app: App, cfg: Retention, now: datetime, today: date, dry_run: bool
           ) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after: tuple[Any, ...] | None = None
    while True:
        with app.session() as s:
            page = retention.candidates(s, cfg, now, after, BATCH)
            if not page:
                return items
            after = (page[-1].closed_at, page[-1].id)
            due = []
            for case in page:
                rule, _ = retention.rule_for(cfg, case)
                at = retention.due_at(cfg, case)
                if at is None or at > now:
                    continue
                hold = legal_hold(s, case, today)
                if hold:
                    items.append(_item("case", rule, case.closed_at, at, "kept", case.reference,
                                       legal_hold=hold))
                else:
                    due.append((case.id, case.reference, rule, case.closed_at, at))
            s.rollback()
        for case_id, ref, rule, closed_at, at in due:
            if dry_run:
                items.append(_item("case", rule, closed_at, at, "would_delete", ref))
            elif _delete_one(app, cfg, case_id, now, today):
                items.append(_item("case", rule, closed_at, at, "deleted", ref))


def _end_of_term(app: App, cfg: Retention, now: datetime, today: date, dry_run: bool
                 ) -> list[dict[str, Any]]:
    """Members whose term has ended: their open cases handed over (with consent) or closed on
    the day, then their closed cases deleted after end_of_term_days."""
    items: list[dict[str, Any]] = []
    if dry_run:
        with app.session() as s:
            for row in endterm.pending(s, today):
                items += [_item("case", f"end_of_term={row.on}", now, None,
                                f"would_{c['action']}", c["reference"])
                          for c in endterm.listing(s, row)]
            s.rollback()
    else:
        with app.session() as s:
            for row in endterm.pending(s, today):
                if _lock(s, models.EndOfTerm, row.id) and row.done_at is None:
                    for done in endterm.carry_out(s, row, now):
                        items.append(_item("case", f"end_of_term={row.on}", now, None,
                                           done["action"], done["reference"]))
            s.commit()
    with app.session() as s:
        due = [(c.id, c.reference, c.closed_at, at, rule, legal_hold(s, c, today))
               for c, at, rule in endterm.due(s, cfg.end_of_term_days, now, today)]
        s.rollback()
    for case_id, ref, closed_at, at, rule, hold in due:
        if hold:
            items.append(_item("case", rule, closed_at, at, "kept", ref, legal_hold=hold))
        elif dry_run:
            items.append(_item("case", rule, closed_at, at, "would_delete", ref))
        elif _delete_ended(app, case_id, rule, now, today):
            items.append(_item("case", rule, closed_at, at, "deleted", ref))
    return items


def _delete_ended(app: App, case_id: int, rule: str, now: datetime, today: date) -> bool:
    with app.session() as s:
        q = select(models.Case).where(models.Case.id == case_id)
        if db.is_postgres(s.get_bind()):  # type: ignore[arg-type]
            q = q.with_for_update(skip_locked=True)
        case = s.exec(q).first()
        if case is None or case.status != "closed" or holds.is_held(s, case_id, today):
            s.rollback()
            return False
        retention.delete_case(s, case, rule, now)
        s.commit()
        return True


def _delete_one(app: App, cfg: Retention, case_id: int, now: datetime, today: date) -> bool:
    """One case in one transaction; False when another run took it first or it is no
    longer due (reopened, held meanwhile)."""
    with app.session() as s:
        q = select(models.Case).where(models.Case.id == case_id)
        if db.is_postgres(s.get_bind()):  # type: ignore[arg-type]
            q = q.with_for_update(skip_locked=True)
        case = s.exec(q).first()
        at = retention.due_at(cfg, case) if case else None
        if case is None or at is None or at > now or holds.is_held(s, case_id, today):
            s.rollback()
            return False
        retention.delete_case(s, case, retention.rule_for(cfg, case)[0], now)
        s.commit()
        return True


def _holding(app: App, cfg: Retention, now: datetime, dry_run: bool) -> list[dict[str, Any]]:
    rule = f"holding_pen_days={cfg.holding_pen_days}"
    period = timedelta(days=cfg.holding_pen_days)
    items: list[dict[str, Any]] = []
    for s, h in _pages(app, lambda s, after: retention.due_holding(s, cfg, now, after, BATCH)):
        if not dry_run and not _lock(s, models.Holding, h.id):
            continue  # another run has it
        since = h.resolved_at or h.created_at
        items.append(_item("holding", rule, since, since + period,
                           "would_delete" if dry_run else "deleted", id_=h.id))
        if not dry_run:
            retention.delete_holding(s, h, rule, now)
    return items


def _lock(s: Session, model: type, row_id: Any) -> bool:
    """Take the row for this run (PostgreSQL: skip it when another run holds it)."""
    q = select(model).where(model.id == row_id)  # type: ignore[attr-defined]
    if db.is_postgres(s.get_bind()):  # type: ignore[arg-type]
        q = q.with_for_update(skip_locked=True)
    return s.exec(q).first() is not None


def _raw(app: App, cfg: Retention, now: datetime, today: date, dry_run: bool
         ) -> list[dict[str, Any]]:
    """Raw bytes past raw_message_days (emptied), then messages that reached no case past
    holding_pen_days (deleted)."""
    items: list[dict[str, Any]] = []
    if cfg.raw_message_days is not None:
        rule = f"raw_message_days={cfg.raw_message_days}"
        period = timedelta(days=cfg.raw_message_days)
        for s, r in _pages(app, lambda s, after: retention.due_raw(s, cfg, now, today, after,
                                                                    BATCH)):
            items.append(_item("raw_message", rule, r.received_at, r.received_at + period,
                               "would_delete" if dry_run else "deleted", id_=r.id))
            if not dry_run:
                retention.empty_raw(s, r)
    rule = f"holding_pen_days={cfg.holding_pen_days}"
    period = timedelta(days=cfg.holding_pen_days)
    for s, r in _pages(app, lambda s, after: retention.due_unplaced(s, cfg, now, after, BATCH)):
        if not dry_run and not _lock(s, models.RawMessage, r.id):
            continue
        items.append(_item("raw_message", rule, r.received_at, r.received_at + period,
                           "would_delete" if dry_run else "deleted", id_=r.id))
        if not dry_run:
            retention.delete_raw(s, r.id)  # type: ignore[arg-type]
    return items


def _pages(app: App, page: Callable[[Session, int], list[Any]]) -> Iterator[tuple[Session, Any]]:
    """Each row of `page` (rows by id after the last), a transaction per page."""
    after = 0
    while True:
        with app.session() as s:
            rows = page(s, after)
            for row in rows:
                after = row.id
                yield s, row
            s.commit()
        if len(rows) < BATCH:
            return


def _mail(app: App, cfg: Retention, now: datetime, dry_run: bool) -> list[dict[str, Any]]:
    months = retention.shortest_months(cfg)
    rule = f"shortest_case_months={months}"
    items: list[dict[str, Any]] = []
    for s, o in _pages(app, lambda s, after: retention.caseless_mail(s, cfg, now, after, BATCH)):
        if not dry_run and not _lock(s, models.Outbox, o.id):
            continue
        items.append(_item("mail", rule, o.created_at, retention.add_months(o.created_at, months),
                           "would_delete" if dry_run else "deleted", id_=o.id))
        if not dry_run:
            retention.delete_mail(s, [o.id])  # type: ignore[list-item]
    return items


def compact_search_index(app: App) -> None:
    """SQLite's FTS5 keeps a deleted row's words in its index segments until they are
    merged: merge them, so no word of a deleted case stays in the file."""
    with app.session() as s:
        if s.get_bind().dialect.name == "sqlite":
            s.exec(select(1))  # begin
            s.connection().exec_driver_sql("INSERT INTO case_fts(case_fts) VALUES ('optimize')")
            s.commit()
