"""Attachments: found in a message (pure), stored once by sha256 in the database (a shared
service runs several nodes on one PostgreSQL, so a local folder would not do), listed on the
case, and read back to pass on to a service with its request.

A file over `[attachments] max_size` is not copied: it stays in the raw message (which is
always kept) and the case records that it was too large.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from functools import cached_property
from typing import Any

from sqlmodel import Session, col, select

from mailflow import db, models

_SMALL_INLINE_IMAGE = 16 * 1024  # signature logos and social icons, not the constituent's photo
_SKIP = {"message/delivery-status", "text/rfc822-headers", "message/disposition-notification"}
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]+")


@dataclass
class File:
    name: str
    content_type: str
    data: bytes

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "content_type": self.content_type, "size": self.size,
                "sha256": self.sha256}


def extract(msg: Message) -> list[File]:
    """The files msg carries, including those inside an attached (forwarded) message, but not
    its body text nor the parts of a delivery report. Never raises."""
    files: list[File] = []
    stack: list[Message] = [msg]
    while stack:
        part = stack.pop(0)
        try:
            if part.is_multipart():
                stack[:0] = [p for p in part.get_payload() if isinstance(p, Message)]
                continue
            f = _file(part, len(files) + 1)
        except Exception:  # noqa: BLE001, S112 - a part we cannot read stays in the raw message
            continue
        if f is not None:
            files.append(f)
    return files


def _file(part: Message, n: int) -> File | None:
    ctype = part.get_content_type()
    if ctype in _SKIP or part.get_content_maintype() == "multipart":
        return None
    disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
    name = part.get_filename()
    if ctype in ("text/plain", "text/html") and disposition != "attachment" and not name:
        return None  # the body
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return None
    if (ctype.startswith("image/") and disposition != "attachment" and part.get("Content-ID")
            and len(data) < _SMALL_INLINE_IMAGE):
        return None
    return File(_clean_name(name, ctype, n), ctype, data)


def _clean_name(name: str | None, ctype: str, n: int) -> str:
    name = _UNSAFE.sub("_", str(name or "")).strip(" ._")[:200]
    if not name:
        name = f"attachment-{n}{mimetypes.guess_extension(ctype) or '.bin'}"
    return name.encode("utf-8", "replace").decode("utf-8")


def store(session: Session, files: list[File], *, case_id: int, raw_message_id: int | None,
          max_size: int, now: datetime) -> list[models.Attachment]:
    """Record files on a case; the bytes of each distinct file are stored once."""
    rows = []
    seen: set[tuple[str, str]] = set()
    for f in files:
        if (f.sha256, f.name) in seen:
            continue
        seen.add((f.sha256, f.name))
        stored = f.size <= max_size
        if stored:
            _put_blob(session, f)
        row = models.Attachment(case_id=case_id, raw_message_id=raw_message_id, name=f.name,
                                content_type=f.content_type, size=f.size, sha256=f.sha256,
                                stored=stored, created_at=now)
        session.add(row)
        rows.append(row)
    return rows


def _put_blob(session: Session, f: File) -> None:
    db.insert_once(session, models.Blob, {"sha256": f.sha256, "size": f.size, "data": f.data},
                   ["sha256"])


def of_message(session: Session, case_id: int, raw_message_id: int | None
               ) -> list[models.Attachment]:
    return list(session.exec(
        select(models.Attachment).where(models.Attachment.case_id == case_id)
        .where(models.Attachment.raw_message_id == raw_message_id)
        .order_by(col(models.Attachment.id))
    ))


def load(session: Session, row: models.Attachment) -> bytes | None:
    blob = session.get(models.Blob, row.sha256) if row.stored else None
    return blob.data if blob else None


def human_size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    return f"{n / 1024:.0f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"
