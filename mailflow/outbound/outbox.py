"""The outbox: rendered mail waits here, in the same transaction as the change that caused
it, until the flush job delivers it. A relay outage delays mail and loses none; each
recipient's outcome is kept, so nobody gets a mail twice because somebody else was refused,
and a mail that cannot be delivered ends `failed` instead of being retried for ever."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, or_
from sqlmodel import Session, col, select

from mailflow import db, metrics
from mailflow.models import Outbox, new_row
from mailflow.outbound.render import Mail
from mailflow.outbound.transports import Transport

log = logging.getLogger(__name__)

STALE_CLAIM = timedelta(minutes=10)  # a worker that died mid-send frees its claim after this
MAX_BACKOFF = timedelta(hours=1)
BREAKER = 3  # connection failures in a row that end a flush: the relay is down


def queue(
    session: Session,
    msg: Mail,
    *,
    kind: str,
    now: datetime,
    case_id: int | None = None,
    request_id: int | None = None,
    limit: int | None,
    answering: str | None = None,
) -> Outbox:
    """Put a composed message in the outbox (outbound/mail.py `send` is the door that every
    caller uses). Automatic mail is held (state `held`, with the reason) rather than queued
    when it would answer automatic mail (`answering` names it), or when a recipient has already
    had `limit` automatic mails about this case in the last hour: the last defence against
    mail loops. Held rows stay visible; nothing is dropped."""
    recipients = list(msg.recipients)
    held = _hold_reason(session, msg.automatic, recipients, case_id, now, limit, answering)
    row = new_row(
        Outbox,
        created_at=now,
        kind=kind,
        case_id=case_id,
        request_id=request_id,
        message_id=msg.message_id,
        sender=msg.sender,
        recipients=recipients,
        subject=msg.subject,
        raw=msg.raw,
        next_attempt_at=now,
        state="held" if held else "queued",
        held_reason=held,
    )
    batch = session.info.get(BATCH)
    _transaction(session).queued.append([row, None if batch is None else 0])
    if batch is not None:
        batch.append(row)  # written by the batch's owner (`write_batch`), in one statement
    else:
        session.add(row)
    if held:
        log.warning("outbox: held %s to %s: %s", kind, recipients, held)
    return row


# session.info key: while it holds a list, `queue` puts its rows there instead of in the
# session, and the caller writes them with `write_batch` (casework/cases.py opening a case).
BATCH = "outbox_batch"
_INSERT = insert(Outbox.__table__)  # type: ignore[attr-defined]


def write_batch(session: Session, rows: list[Outbox]) -> None:
    """INSERT the batch's rows in one statement (executemany), in the order queued."""
    if not rows:
        return
    table = Outbox.__table__  # type: ignore[attr-defined]
    session.connection().execute(_INSERT, [
        {c.name: getattr(r, c.name) for c in table.columns if c.name != "id"} for r in rows])
    tx = _transaction(session)
    tx.writes += 1
    written = {id(r) for r in rows}
    for entry in tx.queued:
        if id(entry[0]) in written:
            entry[1] = tx.writes


def _hold_reason(session: Session, automatic: bool, recipients: list[str],
                 case_id: int | None, now: datetime, limit: int | None,
                 answering: str | None) -> str | None:
    if not automatic:
        return None  # a person's mail, sent on purpose
    if answering:
        return f"automatic mail in answer to automatic mail ({answering})"
    if limit is None:
        return None
    recent = _recent(session, case_id, now)
    for r in recipients:
        sent = sum(r.lower() in (a.lower() for a in rs) for rs in recent)
        if sent >= limit:
            about = f"case {case_id}" if case_id else "no case"
            return (f"rate limit: {r} already had {sent} automatic mails about {about} in the "
                    f"last hour (max_per_recipient_per_hour = {limit})")
    return None


@dataclass
class _Transaction:
    """What the rate limit keeps for one transaction (`_transaction`)."""

    tx: Any
    # (case, now) -> id -> recipients of its stored mail not held in the hour before `now`,
    # read once (a new case's three mails cost one query, not three) ...
    stored: dict[tuple[int | None, datetime], dict[int, list[str]]] = field(
        default_factory=dict)
    # ... and how many batches had been written when it was read.
    read_at: dict[tuple[int | None, datetime], int] = field(default_factory=dict)
    # The mail queued in it: [row, None] in the session, [row, 0] in a batch not written
    # yet, [row, n] written by the n-th batch. The rate limit reads these instead of walking
    # every object of the session (a digest batch queues hundreds).
    queued: list[list[Any]] = field(default_factory=list)
    writes: int = 0

    def read(self, key: tuple[int | None, datetime], rows: dict[int, list[str]]) -> None:
        self.stored[key], self.read_at[key] = rows, self.writes


def _transaction(session: Session) -> _Transaction:
    tx = session.get_transaction()
    kept = session.info.get("outbox_recent")
    if kept is None or kept.tx is not tx:
        kept = session.info["outbox_recent"] = _Transaction(tx)
    return kept  # type: ignore[no-any-return]


def warm_recent(session: Session, case_ids: Iterable[int], now: datetime) -> None:
    """The rate limit's read (`_recent`) for a batch of cases in one query instead of one a
    case: what the chase job's batch will ask about."""
    tx = _transaction(session)
    wanted = [c for c in set(case_ids) if (c, now) not in tx.stored]
    if not wanted:
        return
    for c in wanted:
        tx.read((c, now), {})
    for i, case_id, recipients in session.exec(
            select(Outbox.id, Outbox.case_id, Outbox.recipients)
            .where(col(Outbox.case_id).in_(wanted))
            .where(col(Outbox.created_at) > now - timedelta(hours=1))
            .where(col(Outbox.state) != "held")):
        tx.stored[(case_id, now)][i] = list(recipients)


def none_stored(session: Session, case_id: int, now: datetime) -> None:
    """A case opened in this transaction has no stored mail yet (a case's mail is deleted
    with it): its mails' rate-limit read is what the session holds, without a query."""
    tx = _transaction(session)
    if (case_id, now) not in tx.stored:
        tx.read((case_id, now), {})


def _utc(d: datetime) -> datetime:
    return d if d.tzinfo else d.replace(tzinfo=UTC)


# Built once (building one cost about as much as running it): the mail of a case, or of no
# case, stored since a moment and not held.
_RECENT, _RECENT_NO_CASE = (
    select(Outbox.id, Outbox.recipients).where(which)
    .where(col(Outbox.created_at) > bindparam("since")).where(col(Outbox.state) != "held")
    for which in (col(Outbox.case_id) == bindparam("case"), col(Outbox.case_id).is_(None)))


def _recent(session: Session, case_id: int | None, now: datetime) -> list[list[str]]:
    """Recipients of the case's mail not held in the last hour: what was stored when this
    transaction first asked, and the mail in the session now (queued since, still not held,
    not rolled back)."""
    since = now - timedelta(hours=1)
    tx, key = _transaction(session), (case_id, now)
    if key not in tx.stored:
        query, params = ((_RECENT_NO_CASE, {"since": since}) if case_id is None
                         else (_RECENT, {"case": case_id, "since": since}))
        tx.read(key, {i: list(r) for i, r in session.exec(query, params=params)})
    stored, read_at = tx.stored[key], tx.read_at[key]
    ours = [o.recipients for o, batch in tx.queued
            if o.case_id == case_id and o.state != "held" and _utc(o.created_at) > since
            and _unread(session, o, batch, stored, read_at)]
    return [*stored.values(), *ours]


def _unread(session: Session, row: Outbox, batch: int | None, stored: dict[int, list[str]],
            read_at: int) -> bool:
    """Queued mail the stored read did not see: in the session and not stored (a savepoint
    rolled back expunges the mail queued in it), or in a batch written after the read."""
    if batch is None:
        return row in session and (row.id is None or row.id not in stored)
    return batch == 0 or batch > read_at


def backoff(attempts: int) -> timedelta:
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def claim(session: Session, row_id: int, now: datetime) -> bool:
    """Take one message for sending; the row count says whether this worker won it."""
    won = db.claim(session, Outbox, (col(Outbox.id) == row_id) & or_(
        col(Outbox.state) == "queued",
        (col(Outbox.state) == "sending") & (col(Outbox.claimed_at) < now - STALE_CLAIM),
    ), {"state": "sending", "claimed_at": now})
    session.commit()
    return won


# Told of recipients that have just failed for good: (session, mail, their statuses, now).
OnFailed = Callable[[Session, Outbox, list[dict[str, Any]], datetime], None]


def flush(session: Session, transport: Transport, now: datetime, *,
          give_up: timedelta = timedelta(hours=48), on_failed: OnFailed | None = None,
          limit: int = 500) -> dict[str, int]:
    """Deliver what is due, each mail committed as soon as the relay has answered it, so a
    crash repeats at most the mail in flight. Only recipients still pending are sent to. After
    BREAKER connection failures in a row the flush stops: the rest wait for the next tick
    and are not counted as attempts. `on_failed` runs in the transaction that records
    recipients' final failure (the jobs layer tells staff there). Returns counts: sent,
    retrying (kept queued), failed (given up or refused), deferred (left by the breaker)."""
    due = session.exec(
        select(Outbox.id)
        .where(
            or_(
                (col(Outbox.state) == "queued") & (col(Outbox.next_attempt_at) <= now),
                (col(Outbox.state) == "sending") & (col(Outbox.claimed_at) < now - STALE_CLAIM),
            )
        )
        .order_by(col(Outbox.id))
        .limit(limit)
    ).all()
    counts = {"sent": 0, "retrying": 0, "failed": 0, "deferred": 0}
    broken = 0  # connection failures in a row
    for n, row_id in enumerate(due):
        if broken >= BREAKER:
            counts["deferred"] = len(due) - n
            log.warning("outbox: %s connection failures in a row; %s mails wait for the next "
                        "tick", broken, len(due) - n)
            break
        if not claim(session, row_id, now):
            continue
        row = session.get(Outbox, row_id)
        assert row is not None
        session.refresh(row)
        outcome, reached = _attempt(session, transport, row, now, give_up, on_failed)
        metrics.SENT.labels(row.kind, outcome).inc()
        broken = 0 if reached else broken + 1
        counts[outcome] += 1
    return counts


def _attempt(session: Session, transport: Transport, row: Outbox, now: datetime,
             give_up: timedelta, on_failed: OnFailed | None) -> tuple[str, bool]:
    """Send one mail to its pending recipients and commit what the relay said. Returns the
    mail's outcome and whether the relay was reached at all."""
    status = [dict(r) for r in row.outcomes()]
    todo = [r["address"] for r in status if r["state"] == "pending"]
    reached = True
    try:
        name = f"{now:%Y%m%dT%H%M%S}-{row.id:07d}-{row.kind}"
        answers = transport.send(row.sender, todo, row.raw, name) if todo else {}
        problem = None
    except Exception as e:  # noqa: BLE001 - any broken conversation: all stay pending
        reached, answers = False, {}
        problem = f"{type(e).__name__}: {e}"[:300]
    for r in status:
        if r["state"] != "pending":
            continue
        a = answers.get(r["address"])
        r["state"], r["answer"] = (a.state, str(a)) if a else ("pending", problem or r["answer"])
    row.attempts += 1
    still = [r for r in status if r["state"] == "pending"]
    if still and now >= row.created_at + give_up:
        for r in still:  # temporary for too long: now final
            r["state"] = "failed"
            r["answer"] = f"gave up after {give_up.total_seconds() / 3600:g} h: {r['answer']}"
        still = []
    row.recipients_status = status
    outcome = _settle(row, status, still, now, give_up, problem)
    session.add(row)
    lost = [r for r in status if r["state"] == "failed" and r["address"] in todo]
    if lost and on_failed is not None:
        _tell(session, row, lost, now, on_failed)
    session.commit()
    return outcome, reached


def _settle(row: Outbox, status: list[dict[str, Any]], still: list[dict[str, Any]],
            now: datetime, give_up: timedelta, problem: str | None) -> str:
    refused = [r for r in status if r["state"] == "failed"]
    row.last_error = "; ".join(f"{r['address']}: {r['answer']}" for r in refused + still)[
        :500] or None
    if still:
        row.state = "queued"
        row.next_attempt_at = min(now + backoff(row.attempts), row.created_at + give_up)
        log.warning("outbox %s to %s: attempt %s failed, retrying: %s", row.id,
                    [r["address"] for r in still], row.attempts, problem or row.last_error)
        return "retrying"
    if any(r["state"] == "sent" for r in status):
        row.state, row.sent_at = "sent", now
        if refused:
            log.warning("outbox %s: not delivered to %s", row.id, row.last_error)
        return "sent"
    row.state = "failed"
    log.warning("outbox %s failed: %s", row.id, row.last_error)
    return "failed"


def _tell(session: Session, row: Outbox, lost: list[dict[str, Any]], now: datetime,
          on_failed: OnFailed) -> None:
    """Whoever must hear of the failure, in the same transaction as the failure itself; if
    telling breaks, the outcome is still committed (a mail once delivered is not resent)."""
    try:
        with session.begin_nested():
            on_failed(session, row, lost, now)
    except Exception:  # noqa: BLE001
        log.exception("outbox %s: telling staff of the failure failed", row.id)
