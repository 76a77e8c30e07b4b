"""The spool: raw messages stored durably before anything else happens to them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from mailflow import metrics
from mailflow.inbound import threadkey
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


@dataclass
class Incoming:
    raw: bytes
    source: str
    envelope_from: str | None = None
    envelope_to: list[str] | None = None


def _row(i: Incoming, message_id: str | None, digest: str, now: datetime) -> dict[str, Any]:
    return RawMessage(
        message_id=message_id[:990] if message_id else None, digest=digest, received_at=now,
        source=i.source, envelope_from=i.envelope_from, envelope_to=i.envelope_to,
        size=len(i.raw), raw=i.raw,
        thread_key=threadkey.of(head_and_body(i.raw)[0], i.envelope_to),
    ).model_dump(exclude={"id"})


def store(session: Session, items: Sequence[Incoming], now: datetime
          ) -> list[tuple[int, bool]]:
    """The one spool store every receiver calls, on a plain session: the messages in one commit
    (one fsync for all of them). Returns (spool id, duplicate) for each item, in order: a
    message already stored (the same digest, so the same Message-ID and content), or repeated
    within the batch, is a duplicate and changes nothing. Raises when the commit fails, so the
    receiver answers 451 or exits EX_TEMPFAIL. Core statements, not the ORM: this is the SMTP
    receiver's hot path."""
    if not items:
        return []
    keyed = [(*identify(i.raw), i) for i in items]
    try:
        known, fresh = _insert_new(session, keyed, now)
        session.commit()
    except IntegrityError:  # another receiver stored one of them meanwhile: now it is known
        session.rollback()
        known, fresh = _insert_new(session, keyed, now)
        session.commit()
    out, seen = [], set()
    for _, digest, i in keyed:
        duplicate = digest not in fresh or digest in seen
        out.append((known[digest], duplicate))
        seen.add(digest)
        metrics.RECEIVED.labels(i.source, "duplicate" if duplicate else "stored").inc()
    return out


def _insert_new(session: Session, keyed: list[tuple[str | None, str, Incoming]], now: datetime
                ) -> tuple[dict[str, int], set[str]]:
    """Insert the messages whose digest is not stored yet, the first of a repeat within the
    batch: (spool id by digest, digests inserted)."""
    table = RawMessage.__table__  # type: ignore[attr-defined]
    known: dict[str, int] = dict(session.execute(  # type: ignore[arg-type]
        sa_select(table.c.digest, table.c.id)
        .where(table.c.digest.in_({digest for _, digest, _ in keyed}))).all())
    new: dict[str, dict[str, Any]] = {}
    for message_id, digest, i in keyed:
        if digest not in known and digest not in new:
            new[digest] = _row(i, message_id, digest, now)
    if new:
        ids = session.execute(insert(table).returning(table.c.id, table.c.digest,
                                                      sort_by_parameter_order=True),
                              list(new.values()))
        known.update({digest: raw_id for raw_id, digest in ids})
    return known, set(new)
