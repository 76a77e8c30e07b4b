"""The files a message carries (MIME), for casework to store: including those inside an
attached (forwarded) message, but not its body text nor the parts of a delivery report."""

from __future__ import annotations

import mimetypes
import re
from email.message import Message

from mailflow.casework.attachments import File
from mailflow.inbound.text import content_type

_SMALL_INLINE_IMAGE = 16 * 1024  # signature logos and social icons, not the constituent's photo
_SKIP = {"message/delivery-status", "text/rfc822-headers", "message/disposition-notification"}
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]+")


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
    ctype = content_type(part)
    if ctype in _SKIP or ctype.split("/")[0] == "multipart":
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
