"""The spool: raw messages stored durably before anything else happens to them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from mailflow.models import RawMessage

# Headers that relays add on the way in; a second delivery differs only in these.
_TRACE = re.compile(
    rb"^(received|return-path|delivered-to|x-original-to|x-envelope-[a-z-]+|x-mailflow-[a-z-]+)"
    rb":.*(\r?\n[ \t].*)*\r?\n",
    re.IGNORECASE | re.MULTILINE,
)
_MSGID = re.compile(rb"^message-id:\s*(<[^>\r\n]*>|\S+)", re.IGNORECASE | re.MULTILINE)


def head_and_body(raw: bytes) -> tuple[bytes, bytes]:
    m = re.search(rb"\r?\n\r?\n", raw)
    return (raw[: m.end()], raw[m.end():]) if m else (raw, b"")


def identify(raw: bytes) -> tuple[str | None, str]:
    """(Message-ID, digest). The digest covers the message without its trace headers."""
    head, body = head_and_body(raw)
    m = _MSGID.search(head)
    message_id = m.group(1).decode("ascii", "replace").strip() if m else None
    if message_id:  # PostgreSQL refuses NUL; control characters are never part of an id
        message_id = re.sub(r"[\x00-\x1f\x7f]", "", message_id) or None
    normalised = _TRACE.sub(b"", head).replace(b"\r\n", b"\n") + body.replace(b"\r\n", b"\n")
    return message_id, hashlib.sha256(normalised).hexdigest()


def store_many(session: Session, items: list[Incoming], now: datetime
               ) -> list[tuple[int, bool]]:
    """Store several messages in one commit (one fsync for all of them). Returns (spool id,
    duplicate) for each item, in order; a repeat within the batch is a duplicate too. Core
    statements, not the ORM: this is the SMTP receiver's hot path."""
    keyed = [(identify(i.raw), i) for i in items]
    table = RawMessage.__table__  # type: ignore[attr-defined]
    known: dict[str, int | None] = dict(session.execute(  # type: ignore[arg-type]
        sa_select(table.c.digest, table.c.id)
        .where(table.c.digest.in_({digest for (_, digest), _ in keyed}))).all())
    new, new_digests = [], set()
    for (message_id, digest), i in keyed:
        if digest not in known:
            known[digest] = None
            new_digests.add(digest)
            new.append(_row(i, message_id, digest, now).model_dump(exclude={"id"}))
    try:
        if new:
            ids = session.execute(insert(table).returning(table.c.id, table.c.digest,
                                                          sort_by_parameter_order=True), new)
            known.update({digest: raw_id for raw_id, digest in ids})
        session.commit()
    except IntegrityError:  # another path stored one of them at the same moment: one by one
        session.rollback()
        out = []
        for i in items:
            row, duplicate = store(session, i.raw, source=i.source, now=now,
                                   envelope_from=i.envelope_from, envelope_to=i.envelope_to)
            out.append((row.id, duplicate))
        return out  # type: ignore[return-value]
    firsts: set[str] = set()
    out = []
    for (_, digest), _i in keyed:
        fresh = digest in new_digests and digest not in firsts
        firsts.add(digest)
        out.append((known[digest], not fresh))
    return out  # type: ignore[return-value]


@dataclass
class Incoming:
    raw: bytes
    source: str
    envelope_from: str | None = None
    envelope_to: list[str] | None = None


def _row(i: Incoming, message_id: str | None, digest: str, now: datetime) -> RawMessage:
    return RawMessage(
        message_id=message_id[:990] if message_id else None, digest=digest, received_at=now,
        source=i.source, envelope_from=i.envelope_from, envelope_to=i.envelope_to,
        size=len(i.raw), raw=i.raw,
    )


def store(
    session: Session,
    raw: bytes,
    *,
    source: str,
    now: datetime,
    envelope_from: str | None = None,
    envelope_to: list[str] | None = None,
) -> tuple[RawMessage, bool]:
    """Store and commit one message. Returns (row, duplicate): a second delivery of the same
    message returns the first row and changes nothing."""
    message_id, digest = identify(raw)
    existing = session.exec(select(RawMessage).where(RawMessage.digest == digest)).first()
    if existing:
        return existing, True
    row = _row(Incoming(raw, source, envelope_from, envelope_to), message_id, digest, now)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # the same message, delivered at the same moment by another path
        session.rollback()
        return session.exec(select(RawMessage).where(RawMessage.digest == digest)).one(), True
    return row, False
