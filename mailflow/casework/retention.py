"""Retention: what has passed its period, and deleting it.

A closed case is kept `[retention] closed_case_months` after it closed, or for its
category's or enquiry type's own period (`[retention.categories]`, `[retention.types]`):
where several apply, the longest wins, so an override never shortens what another one
keeps. A case under a legal hold (casework/holds.py) is never deleted. Deleting a case
takes everything that is about it, in the caller's one transaction, and leaves the
anonymised statistics (models.CaseStat, RequestStat: no foreign key to the case) and one
audit row that names only the reference and the rule.

Unresolved holding-pen items go after `holding_pen_days`, with their raw message (and so do
resolved items that belong to no case, counted from their resolution). `raw_message_days`,
when set, empties the raw bytes of older messages while their case is kept.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, or_, update
from sqlmodel import Session, col, select

from mailflow import db, models
from mailflow.casework import audit
from mailflow.settings import Retention

ACTOR = "mailflow"


def add_months(at: datetime, months: int) -> datetime:
    """`at` moved by whole calendar months (31 March + 1 month = 30 April)."""
    index = at.year * 12 + at.month - 1 + months
    year, month = divmod(index, 12)
    day = min(at.day, calendar.monthrange(year, month + 1)[1])
    return at.replace(year=year, month=month + 1, day=day)


def rule_for(cfg: Retention, case: models.Case) -> tuple[str, int]:
    """The rule that keeps this case longest, as (`name=months`, months)."""
    rules = []
    if case.enquiry_type in cfg.types:
        rules.append((f"types.{case.enquiry_type}", cfg.types[case.enquiry_type]))
    if case.category in cfg.categories:
        rules.append((f"categories.{case.category}", cfg.categories[case.category]))
    name, months = max(rules, key=lambda r: r[1]) if rules else (
        "closed_case_months", cfg.closed_case_months)
    return f"{name}={months}", months


def shortest_months(cfg: Retention) -> int:
    """The shortest period any closed case can have: where the search for due cases starts.
    An override replaces the default, so a shorter one lowers it."""
    return min([cfg.closed_case_months, *cfg.categories.values(), *cfg.types.values()])


def due_at(cfg: Retention, case: models.Case) -> datetime | None:
    """When a closed case may be deleted (None while it is not closed)."""
    if case.status != "closed" or case.closed_at is None:
        return None
    return add_months(case.closed_at, rule_for(cfg, case)[1])


def candidates(session: Session, cfg: Retention, now: datetime, after: tuple[Any, ...] | None,
               limit: int) -> list[models.Case]:
    """Closed cases old enough for the shortest rule, oldest closure first, one keyset page
    (ix_case_closed): the caller works out each one's own rule."""
    cutoff = add_months(now, -shortest_months(cfg))
    q = (select(models.Case).where(models.Case.status == "closed")
         .where(col(models.Case.closed_at) <= cutoff))
    return list(session.exec(db.page(q, [col(models.Case.closed_at), col(models.Case.id)],
                                     after, limit)))


# -- deleting one case -------------------------------------------------------------------------
def _detach_statistics(session: Session, case_id: int) -> None:
    """The statistics stay, but let go of the ids: SQLite gives a new case (or request) the
    id of the newest one deleted, whose rows it would then overwrite. A negative id is one no
    row will ever have; reports never join statistics to the case."""
    cs, rs = models.CaseStat, models.RequestStat
    session.execute(update(cs).where(col(cs.case_id) == case_id).values(case_id=-case_id)
                    .execution_options(synchronize_session=False))
    session.execute(update(rs).where(col(rs.case_id) == case_id)
                    .values(case_id=-case_id, request_id=-col(rs.request_id))
                    .execution_options(synchronize_session=False))


def delete_case(session: Session, case: models.Case, rule: str, now: datetime, *,
                actor: str = ACTOR, via: str = "job") -> None:
    """Delete a case and everything about it, in the caller's transaction: requests, events,
    notifications, outbox rows, reads, links, holds, holding items, attachments (their bytes
    when no other case has the same file), raw messages no other case uses, and the
    constituent when no other case is theirs. Statistics stay; one audit row is written."""
    cid, ref = case.id, case.reference
    assert cid is not None
    requests = list(session.exec(select(models.Request.id).where(models.Request.case_id == cid)))
    raws = _raw_messages(session, case, requests)
    files = set(session.exec(select(models.Attachment.sha256)
                             .where(models.Attachment.case_id == cid)))

    def gone(model: type, *conditions: Any) -> None:
        session.execute(delete(model).where(or_(*conditions))
                        .execution_options(synchronize_session=False))

    by_request = bool(requests)
    gone(models.CaseLink, models.CaseLink.case_id == cid, models.CaseLink.other_id == cid)
    gone(models.Notification, models.Notification.case_id == cid,
         col(models.Notification.request_id).in_(requests) if by_request else False)
    gone(models.Outbox, models.Outbox.case_id == cid,
         col(models.Outbox.request_id).in_(requests) if by_request else False)
    gone(models.Event, models.Event.case_id == cid)
    gone(models.Attachment, models.Attachment.case_id == cid)
    gone(models.Holding, models.Holding.case_id == cid)
    gone(models.LegalHold, models.LegalHold.case_id == cid)
    forget_reads(session, case.reference)
    gone(models.Request, models.Request.case_id == cid)
    _detach_statistics(session, cid)
    session.execute(update(models.Case).where(models.Case.merged_into_id == cid)
                    .values(merged_into_id=None).execution_options(synchronize_session=False))
    constituent = case.constituent_id
    session.expunge(case)
    gone(models.Case, models.Case.id == cid)
    if constituent is not None and not _used(session, models.Case.constituent_id == constituent):
        gone(models.Constituent, models.Constituent.id == constituent)
    for raw_id in raws:
        if not _raw_in_use(session, raw_id):
            gone(models.RawMessage, models.RawMessage.id == raw_id)
    for sha in files:
        if not _used(session, models.Attachment.sha256 == sha):
            gone(models.Blob, models.Blob.sha256 == sha)
    audit.record(session, actor=actor, action="change", what="retention", now=now,
                 case_ref=ref, via=via,
                 detail={"rule": rule, "text": f"case {ref} deleted under retention rule {rule}"})


def forget_reads(session: Session, reference: str) -> None:
    """The case's reads (the one place that knows where they are kept): its own read and
    refused-read rows of the audit trail, and its line in every listing that showed it. The
    trail's changes (holds, releases, holding-pen actions) keep no personal data and stay,
    with the retention row, as the record of what was done. By index: auditentry.case_ref
    and auditcase (case_ref, audit_id)."""
    reads = (select(models.AuditEntry.id).where(models.AuditEntry.case_ref == reference)
             .where(col(models.AuditEntry.action).in_(("read", "refused"))))
    session.execute(delete(models.AuditCase).where(or_(models.AuditCase.case_ref == reference,
                                                       col(models.AuditCase.audit_id).in_(reads)))
                    .execution_options(synchronize_session=False))
    session.execute(delete(models.AuditEntry).where(col(models.AuditEntry.id).in_(reads))
                    .execution_options(synchronize_session=False))


def _raw_messages(session: Session, case: models.Case, requests: list[int]) -> set[int]:
    """Every raw message the case was built from or that was filed on it."""
    cid = case.id
    ids = set(session.exec(select(models.RawMessage.id).where(models.RawMessage.case_id == cid)))
    for model in (models.Event, models.Attachment, models.Holding):
        ids |= set(session.exec(select(model.raw_message_id).where(model.case_id == cid)  # type: ignore[attr-defined]
                                .where(col(model.raw_message_id).is_not(None))))  # type: ignore[attr-defined]
    if case.source_message_id:
        ids.add(case.source_message_id)
    ids.discard(None)  # type: ignore[arg-type]
    return ids  # type: ignore[return-value]


def _used(session: Session, condition: Any) -> bool:
    return bool(session.execute(select(exists().where(condition))).scalar())


def _raw_in_use(session: Session, raw_id: int) -> bool:
    """Still needed by another case or a holding item (each by its index)."""
    return any(_used(session, c) for c in (
        models.Event.raw_message_id == raw_id, models.Attachment.raw_message_id == raw_id,
        models.Holding.raw_message_id == raw_id, models.Case.source_message_id == raw_id))


def _on_a_case(session: Session, raw_id: int) -> bool:
    case_id = session.execute(select(models.RawMessage.case_id)
                              .where(models.RawMessage.id == raw_id)).scalar()
    return case_id is not None and session.get(models.Case, case_id) is not None


# -- the holding pen and raw bytes ---------------------------------------------------------------
def due_holding(session: Session, cfg: Retention, now: datetime, after: int, limit: int
                ) -> list[models.Holding]:
    """Unresolved items older than holding_pen_days, and resolved ones that belong to no case
    resolved that long ago; by id after `after` (the holding pen is small: what stays longer
    than holding_pen_days is deleted)."""
    cutoff = now - timedelta(days=cfg.holding_pen_days)
    h = models.Holding
    q = (select(h).where(col(h.id) > after)
         .where(or_(col(h.resolved_at).is_(None) & (col(h.created_at) <= cutoff),
                    (col(h.resolved_at) <= cutoff) & col(h.case_id).is_(None))))
    return list(session.exec(q.order_by(col(h.id)).limit(limit)))


def delete_holding(session: Session, item: models.Holding, rule: str, now: datetime) -> None:
    raw_id, item_id = item.raw_message_id, item.id
    session.expunge(item)
    session.execute(delete(models.Holding).where(models.Holding.id == item_id)
                    .execution_options(synchronize_session=False))
    if raw_id is not None and not _raw_in_use(session, raw_id) and not _on_a_case(session, raw_id):
        session.execute(delete(models.RawMessage).where(models.RawMessage.id == raw_id)
                        .execution_options(synchronize_session=False))
    audit.record(session, actor=ACTOR, action="change", what="retention", now=now, via="job",
                 detail={"rule": rule, "holding": item_id,
                         "text": f"holding-pen item {item_id} deleted under retention rule "
                                 f"{rule}"})


def due_raw(session: Session, cfg: Retention, now: datetime, today: date, after: int,
            limit: int) -> list[models.RawMessage]:
    """Processed messages older than raw_message_days whose bytes are still kept, except
    those of a case under a legal hold and those waiting in the holding pen."""
    if cfg.raw_message_days is None:
        return []
    cutoff = now - timedelta(days=cfg.raw_message_days)
    q = (select(models.RawMessage).where(col(models.RawMessage.received_at) <= cutoff)
         .where(col(models.RawMessage.id) > after)
         .where(models.RawMessage.state != "new").where(models.RawMessage.size > 0)
         .where(~exists().where(models.Holding.raw_message_id == models.RawMessage.id)
                .where(col(models.Holding.resolved_at).is_(None)))
         .where(~exists().where(models.LegalHold.case_id == models.RawMessage.case_id)
                .where(models.LegalHold.in_force(today))))
    return list(session.exec(q.order_by(col(models.RawMessage.id)).limit(limit)))


def due_unplaced(session: Session, cfg: Retention, now: datetime, after: int, limit: int
                 ) -> list[models.RawMessage]:
    """Processed messages older than holding_pen_days that reached no case and wait in no
    holding-pen item (ignored automatic mail, our own mail come back): nothing else would
    ever delete them."""
    cutoff = now - timedelta(days=cfg.holding_pen_days)
    r = models.RawMessage
    q = (select(r).where(col(r.received_at) <= cutoff).where(col(r.id) > after)
         .where(r.state != "new").where(col(r.case_id).is_(None)))
    for model in (models.Holding, models.Event, models.Attachment):
        q = q.where(~exists().where(model.raw_message_id == r.id))  # type: ignore[attr-defined]
    q = q.where(~exists().where(models.Case.source_message_id == r.id))
    return list(session.exec(q.order_by(col(r.id)).limit(limit)))


def delete_raw(session: Session, raw_id: int) -> None:
    session.execute(delete(models.RawMessage).where(models.RawMessage.id == raw_id)
                    .execution_options(synchronize_session=False))


def empty_raw(session: Session, raw: models.RawMessage) -> None:
    """The raw bytes go; the row stays (what was parsed from it is on the case). `size` 0
    marks it emptied."""
    raw.raw, raw.size, raw.envelope_from, raw.envelope_to = b"", 0, None, None
    session.add(raw)


def caseless_mail(session: Session, cfg: Retention, now: datetime, after: int, limit: int
                  ) -> list[models.Outbox]:
    """Mail about no one case (digests, reports) older than the shortest case period: it
    lists cases that may be gone by then."""
    cutoff = add_months(now, -shortest_months(cfg))
    q = (select(models.Outbox).where(col(models.Outbox.case_id).is_(None))
         .where(col(models.Outbox.id) > after)
         .where(col(models.Outbox.request_id).is_(None))
         .where(col(models.Outbox.state).in_(("sent", "failed", "held")))
         .where(col(models.Outbox.created_at) <= cutoff))
    return list(session.exec(q.order_by(col(models.Outbox.id)).limit(limit)))


def delete_mail(session: Session, ids: Iterable[int]) -> None:
    ids = list(ids)
    session.execute(update(models.SentReport).where(col(models.SentReport.outbox_id).in_(ids))
                    .values(outbox_id=None).execution_options(synchronize_session=False))
    session.execute(delete(models.Outbox).where(col(models.Outbox.id).in_(ids))
                    .execution_options(synchronize_session=False))


