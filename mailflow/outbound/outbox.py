"""The outbox: rendered mail waits here, in the same transaction as the change that caused
it, until the flush job delivers it. A relay outage delays mail and loses none."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import getaddresses

from sqlalchemy import or_
from sqlmodel import Session, col, select

from mailflow import db
from mailflow.models import Outbox
from mailflow.outbound.transports import Transport

log = logging.getLogger(__name__)

STALE_CLAIM = timedelta(minutes=10)  # a worker that died mid-send frees its claim after this
MAX_BACKOFF = timedelta(hours=1)


def queue(
    session: Session,
    msg: EmailMessage,
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
    recipients = [a for _, a in getaddresses([str(msg["To"] or ""), str(msg["Cc"] or "")]) if a]
    _, sender = getaddresses([str(msg["From"])])[0]
    held = _hold_reason(session, msg, recipients, case_id, now, limit, answering)
    row = Outbox(
        created_at=now,
        kind=kind,
        case_id=case_id,
        request_id=request_id,
        message_id=str(msg["Message-ID"]),
        sender=sender,
        recipients=recipients,
        subject=str(msg["Subject"]),
        raw=msg.as_bytes(),
        next_attempt_at=now,
        state="held" if held else "queued",
        held_reason=held,
    )
    session.add(row)
    if held:
        log.warning("outbox: held %s to %s: %s", kind, recipients, held)
    return row


def _hold_reason(session: Session, msg: EmailMessage, recipients: list[str],
                 case_id: int | None, now: datetime, limit: int | None,
                 answering: str | None) -> str | None:
    if str(msg["Auto-Submitted"] or "no").strip().lower() == "no":
        return None  # a person's mail, sent on purpose
    if answering:
        return f"automatic mail in answer to automatic mail ({answering})"
    if limit is None:
        return None
    recent = session.exec(
        select(Outbox.recipients)
        .where(col(Outbox.case_id).is_(None) if case_id is None
               else col(Outbox.case_id) == case_id)
        .where(col(Outbox.created_at) > now - timedelta(hours=1))
        .where(col(Outbox.state) != "held")
    ).all()
    for r in recipients:
        sent = sum(r.lower() in (a.lower() for a in rs) for rs in recent)
        if sent >= limit:
            about = f"case {case_id}" if case_id else "no case"
            return (f"rate limit: {r} already had {sent} automatic mails about {about} in the "
                    f"last hour (max_per_recipient_per_hour = {limit})")
    return None


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


def flush(session: Session, transport: Transport, now: datetime, limit: int = 500) -> dict:
    """Deliver what is due. Returns counts of sent and failed (kept queued) messages."""
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
    sent = failed = 0
    for row_id in due:
        if not claim(session, row_id, now):
            continue
        row = session.get(Outbox, row_id)
        assert row is not None
        session.refresh(row)
        try:
            name = f"{now:%Y%m%dT%H%M%S}-{row.id:07d}-{row.kind}"
            transport.send(row.sender, row.recipients, row.raw, name)
        except Exception as e:  # noqa: BLE001 - any failure keeps the mail queued for a retry
            row.attempts += 1
            row.state = "queued"
            row.last_error = f"{type(e).__name__}: {e}"[:500]
            row.next_attempt_at = now + backoff(row.attempts)
            failed += 1
            log.warning("outbox %s to %s failed (attempt %s): %s", row.id, row.recipients,
                        row.attempts, row.last_error)
        else:
            row.attempts += 1
            row.state = "sent"
            row.sent_at = now
            row.last_error = None
            sent += 1
        session.add(row)
        session.commit()
    return {"sent": sent, "failed": failed}
