"""Templates -> a complete email message (text and HTML parts).

A template pair is `<name>.txt` and `<name>.html` in templates/ (or the council's own
folder, searched first). The text template's first line is `Subject: …`, so a council can
reword subjects as well as bodies.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

from mailflow import resources

TEMPLATES = resources.TEMPLATES


def environment(council_dir: Path | None) -> Environment:
    loaders = [FileSystemLoader(str(council_dir))] if council_dir else []
    loaders.append(FileSystemLoader(str(TEMPLATES)))
    return Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def new_message_id(domain: str, hint: str = "mf") -> str:
    return f"<{hint.lower()}.{uuid.uuid4().hex[:20]}@{domain}>"


def render(
    env: Environment,
    name: str,
    context: dict[str, Any],
    *,
    sender: tuple[str, str],
    to: list[str],
    now: datetime,
    cc: list[str] | None = None,
    message_id: str,
    reply_to: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    automatic: bool = True,
) -> EmailMessage:
    text = env.get_template(f"{name}.txt").render(**context)
    first, _, body = text.partition("\n")
    if not first.startswith("Subject:"):
        raise ValueError(f"template {name}.txt must start with a 'Subject:' line")
    html = env.get_template(f"{name}.html").render(**context)

    msg = EmailMessage()
    msg["From"] = formataddr(sender)
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = first.removeprefix("Subject:").strip()
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    if reply_to:
        msg["Reply-To"] = reply_to
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    if automatic:
        msg["Auto-Submitted"] = "auto-generated"
        # Exchange honours this: no out-of-office or read receipts back to a robot.
        msg["X-Auto-Response-Suppress"] = "DR, RN, NRN, OOF, AutoReply"
    msg["X-Mailflow-Kind"] = name
    msg.set_content(body.lstrip("\n"))
    msg.add_alternative(html, subtype="html")
    return msg
