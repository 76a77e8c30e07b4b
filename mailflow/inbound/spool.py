"""The spool: raw messages stored durably before anything else happens to them."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

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
    row = RawMessage(
        message_id=message_id[:990] if message_id else None,
        digest=digest,
        received_at=now,
        source=source,
        envelope_from=envelope_from,
        envelope_to=envelope_to,
        size=len(raw),
        raw=raw,
    )
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # the same message, delivered at the same moment by another path
        session.rollback()
        return session.exec(select(RawMessage).where(RawMessage.digest == digest)).one(), True
    return row, False
