"""Attachments: found in a message by inbound/attachments.py, stored once by sha256 in the
database (a shared service runs several nodes on one PostgreSQL, so a local folder would not
do), listed on the case, and read back to pass on to a service with its request.

A file over `[attachments] max_size` is not copied: it stays in the raw message (which is
always kept) and the case records that it was too large.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlmodel import Session, col, select

from mailflow import db, models


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
        row = models.new_row(models.Attachment, case_id=case_id, raw_message_id=raw_message_id,
                             name=f.name, content_type=f.content_type, size=f.size,
                             sha256=f.sha256, stored=stored, created_at=now)
        session.add(row)
        rows.append(row)
    return rows


def _put_blob(session: Session, f: File) -> None:
    db.insert_once(session, models.Blob, {"sha256": f.sha256, "size": f.size, "data": f.data},
                   ["sha256"])
    # The request that carries the file reads it next: bytes named by their hash, kept for
    # this session rather than read back.
    session.info.setdefault("blobs", {})[f.sha256] = f.data


def of_message(session: Session, case_id: int, raw_message_id: int | None
               ) -> list[models.Attachment]:
    return list(session.exec(
        select(models.Attachment).where(models.Attachment.case_id == case_id)
        .where(models.Attachment.raw_message_id == raw_message_id)
        .order_by(col(models.Attachment.id))
    ))


def load(session: Session, row: models.Attachment) -> bytes | None:
    if row.stored and (data := session.info.get("blobs", {}).get(row.sha256)) is not None:
        return data
    blob = session.get(models.Blob, row.sha256) if row.stored else None
    return blob.data if blob else None


def human_size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    return f"{n / 1024:.0f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"
