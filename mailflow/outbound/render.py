"""Templates -> a complete email message (text and HTML parts).

A template pair is `<name>.txt` and `<name>.html` in templates/ (or the council's own
folder, searched first). The text template's first line is `Subject: …`, so a council can
reword subjects as well as bodies.

Every header is built from structured values, never from text a decoder could turn into a
line break: addresses are checked and written as `Address` objects; the subject is outside
text made safe (`header_text`) and written as RFC 2047 encoded words by the library;
In-Reply-To and References carry only well-formed message IDs.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from email import policy as email_policy
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

from mailflow import resources
from mailflow.oneline import one_line

TEMPLATES = resources.TEMPLATES
SUBJECT_LIMIT = 250  # characters; a longer subject is cut and ends with "…"
NAME_LIMIT = 100

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                     r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_MSG_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]{3,250}>")  # printable ASCII, no <, > or space
_PLAIN = re.compile(r"[\x20-\x7e]*")


class BadAddress(ValueError):
    """An address mailflow will not write into a header."""


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


# -- safe header values ---------------------------------------------------------------------


def header_text(text: str | None, limit: int = SUBJECT_LIMIT) -> str:
    """Outside text fit for a header. Encoded-word lookalikes ("=?utf-8?q?…?=", shown
    literally by Outlook) are decoded as a reader's mail client would, the result is put on one
    line (`one_line`), and any "=?" left is broken up, so no decoder can find a line break in
    it. Idempotent: header_text(header_text(x)) == header_text(x)."""
    text = one_line(text)
    for _ in range(3):  # an encoded word may decode to another one
        if "=?" not in text:
            break
        decoded = one_line(_decode_words(text))
        if decoded == text:
            break
        text = decoded
    text = text.replace("=?", "= ?")
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _decode_words(text: str) -> str:
    try:
        return str(email_policy.default.header_factory("subject", text))
    except Exception:  # noqa: BLE001 - undecodable stays as it was
        return text


def address(addr: str, name: str | None = None) -> Address:
    """A checked mailbox: an ASCII dot-atom local part (no encoded-word lookalike) at a domain
    (internationalised domains in their ASCII form). Raises BadAddress."""
    local, at, domain = (addr or "").strip().rpartition("@")
    try:
        domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        raise BadAddress(f"not an address mailflow can write: {addr!r}") from None
    if not (at and _LOCAL.fullmatch(local) and "=?" not in local and _DOMAIN.fullmatch(domain)
            and len(local) <= 64 and len(domain) <= 253):
        raise BadAddress(f"not an address mailflow can write: {addr!r}")
    return Address(display_name=header_text(name, NAME_LIMIT), username=local, domain=domain)


def is_address(addr: str) -> bool:
    try:
        address(addr)
        return True
    except BadAddress:
        return False


def message_ids(ids: list[str] | None) -> list[str]:
    """Only well-formed message IDs thread a message; anything else is left out."""
    return [i for i in (x.strip() for x in ids or []) if _MSG_ID.fullmatch(i) and "=?" not in i]


class Written(str):
    """A header whose folded form mailflow writes itself (the library's refolding would turn a
    long message ID into encoded words and may move spaces in a subject). The policy writes any
    header value with a `name` through its `fold`."""

    name: str
    defects: tuple[()] = ()

    def __new__(cls, name: str, value: str, lines: list[str]) -> Written:
        self = super().__new__(cls, value)
        self.name = name
        self._lines = lines
        return self

    def fold(self, *, policy: Policy) -> str:
        sep = policy.linesep or "\n"
        return f"{self.name}: " + (sep + " ").join(self._lines) + sep


def subject_header(text: str) -> Written:
    """`text` (already header_text) as printable ASCII folded at spaces, or, when it holds
    anything else or a word too long for a line, as encoded words (email.header)."""
    words = text.split(" ")
    if _PLAIN.fullmatch(text) and all(len(w) <= 60 for w in words):
        lines: list[str] = []
        for w in words:
            if lines and len(lines[-1]) + 1 + len(w) <= 68:
                lines[-1] += " " + w
            else:
                lines.append(w)
        return Written("Subject", text, lines or [""])
    encoded = Header(text, "utf-8", header_name="Subject").encode(linesep="\n")
    return Written("Subject", text, encoded.split("\n "))


def ids_header(name: str, ids: list[str]) -> Written:
    return Written(name, " ".join(ids), ids)


# -- rendering ------------------------------------------------------------------------------


def _subject_line(env: Environment, name: str, context: dict[str, Any]) -> str:
    """The template's first line rendered on its own: outside text with a line break in it
    cannot move part of the subject into the body or end the subject early."""
    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, f"{name}.txt")
    return env.from_string(source.partition("\n")[0]).render(**context)


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
    """Raises BadAddress for an address it will not write (outbound/mail.py checks first)."""
    text = env.get_template(f"{name}.txt").render(**context)
    line = _subject_line(env, name, context)
    if not line.startswith("Subject:"):
        raise ValueError(f"template {name}.txt must start with a 'Subject:' line")
    body = text[len(line):] if text.startswith(line) else text.partition("\n")[2]
    html = env.get_template(f"{name}.html").render(**context)

    msg = EmailMessage()
    msg["From"] = address(sender[1], sender[0])
    if to:
        msg["To"] = [address(a) for a in to]
    if cc:
        msg["Cc"] = [address(a) for a in cc]
    msg["Subject"] = subject_header(header_text(line.removeprefix("Subject:")))
    msg["Date"] = format_datetime(now)
    [own_id] = message_ids([message_id]) or [None]
    if own_id is None:
        raise ValueError(f"not a message ID: {message_id!r}")
    msg["Message-ID"] = own_id
    if reply_to:
        msg["Reply-To"] = address(reply_to)
    if thread := message_ids([in_reply_to] if in_reply_to else []):
        msg["In-Reply-To"] = ids_header("In-Reply-To", thread)
    if refs := message_ids(references):
        msg["References"] = ids_header("References", refs)
    if automatic:
        msg["Auto-Submitted"] = "auto-generated"
        # Exchange honours this: no out-of-office or read receipts back to a robot.
        msg["X-Auto-Response-Suppress"] = "DR, RN, NRN, OOF, AutoReply"
    msg["X-Mailflow-Kind"] = name
    msg.set_content(body.lstrip("\n"))
    msg.add_alternative(html, subtype="html")
    return msg
