"""Builders for the messages tests send: members' forwards, officers' replies, strangers."""

from __future__ import annotations

import email
import uuid
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

JANE = "jane.smith@council.example"
ROADS = "roads.enquiries@council.example"
CASEWORK = "casework@council.example"


def message(sender: str, to: str, subject: str, body: str, **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Mon, 23 Nov 2026 09:15:00 +0000"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@test.example>"
    for k, v in headers.items():
        msg[k.replace("_", "-")] = v
    msg.set_content(body)
    return msg


def outgoing(msg: EmailMessage) -> Any:
    """A hand-made message as the outbox takes one (outbound/render.Mail): its bytes and the
    addresses, subject and Message-ID it carries."""
    from email.utils import getaddresses

    from mailflow.outbound.render import Mail

    return Mail(raw=msg.as_bytes(), sender=getaddresses([msg["From"]])[0][1],
                recipients=[a for _, a in getaddresses(msg.get_all("To", []))],
                subject=str(msg["Subject"]), message_id=str(msg["Message-ID"]),
                automatic=False)


def outlook_forward(member: str = f"Cllr Jane Smith <{JANE}>",
                    constituent: str = "Mary Jones <mary.jones@example.org>",
                    subject: str = "Pothole on Main Street",
                    body: str = "There is a huge pothole outside number 12 Main Street.\n"
                                "My car tyre burst on it yesterday.\n\nMary Jones",
                    note: str = "Can you look into this please?") -> EmailMessage:
    text = (f"{note}\n\nJane\n\n"
            "________________________________\n"
            f"From: {constituent}\n"
            "Sent: 20 November 2026 18:04\n"
            f"To: {member}\n"
            f"Subject: {subject}\n\n{body}\n")
    return message(member, CASEWORK, f"FW: {subject}", text)


def reply_to(request: EmailMessage, sender: str, text: str, *, use_reply_to: bool = True,
             threaded: bool = True, subject: str | None = None) -> EmailMessage:
    """What Outlook sends when an officer presses Reply on our request."""
    to = str(request["Reply-To"]) if use_reply_to and request["Reply-To"] else str(request["From"])
    quoted = "\n".join("> " + line for line in _text(request).splitlines())
    body = (f"{text}\n\nKind regards\nBob Roads\nRoads Officer\n01506 000000\n\n"
            f"From: {request['From']}\nSent: 23 November 2026 10:00\nTo: {request['To']}\n"
            f"Subject: {request['Subject']}\n\n{quoted}\n")
    headers = {}
    if threaded:
        headers = {"In_Reply_To": str(request["Message-ID"]),
                   "References": str(request["Message-ID"])}
    return message(sender, to, subject or f"RE: {request['Subject']}", body, **headers)


def wire(msg: EmailMessage) -> bytes:
    """The message as it crosses SMTP: CRLF line ends."""
    return msg.as_bytes(policy=policy.SMTP)


def _text(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    return part.get_content() if part else ""


def read_sent(folder: Path) -> list[EmailMessage]:
    files = sorted(folder.glob("*.eml")) if folder.exists() else []
    return [email.message_from_bytes(f.read_bytes(), policy=policy.default)  # type: ignore[misc]
            for f in files]


def sent_of_kind(folder: Path, kind: str) -> list[EmailMessage]:
    return [m for m in read_sent(folder) if m["X-Mailflow-Kind"] == kind]
