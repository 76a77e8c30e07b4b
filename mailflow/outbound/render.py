"""Templates -> a complete email message (text and HTML parts), serialised once.

A template pair is `<name>.txt` and `<name>.html` in templates/ (or the council's own
folder, searched first). The text template's first line is `Subject: …`, so a council can
reword subjects as well as bodies.

Every header is built from structured values, never from text a decoder could turn into a
line break: addresses are checked (`address`: ASCII addr-spec, display name on one line) and
written quoted or as RFC 2047 encoded words; the subject is outside text made safe
(`header_text`) and written as printable ASCII or encoded words (email.header); In-Reply-To
and References carry only well-formed message IDs; a filename from outside is made safe and
written quoted or in RFC 2231 form. mailflow writes and folds these headers itself instead
of handing them to the stdlib's EmailMessage, which parses each one again through its header
registry and refolds it on output (about half the cost of a mail); tests/test_headers.py
parses every mail back with the stdlib and checks it has exactly these headers.
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy as email_policy
from email.header import Header
from email.headerregistry import Address
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    select_autoescape,
)

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
_SPECIALS = re.compile(r'[][\\()<>@,:;".]')
LINE_LIMIT = 78  # the stdlib's max_line_length: longer body lines are encoded


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


def subject_lines(text: str) -> list[str]:
    """`text` (already header_text) as printable ASCII folded at spaces, or, when it holds
    anything else or a word too long for a line, as encoded words (email.header). mailflow
    folds its headers itself: the library's refolding would turn a long message ID into
    encoded words and may move spaces in a subject."""
    words = text.split(" ")
    if _PLAIN.fullmatch(text) and all(len(w) <= 60 for w in words):
        lines: list[str] = []
        for w in words:
            if lines and len(lines[-1]) + 1 + len(w) <= 68:
                lines[-1] += " " + w
            else:
                lines.append(w)
        return lines or [""]
    return Header(text, "utf-8", header_name="Subject").encode(linesep="\n").split("\n ")


def mailbox_lines(a: Address) -> list[str]:
    """One checked mailbox (`address`) as header text: the display name quoted when it holds
    a special, or as encoded words when it is not ASCII; the address itself is ASCII."""
    name, spec = a.display_name, a.addr_spec
    if not name:
        return [spec]
    if _PLAIN.fullmatch(name):
        if _SPECIALS.search(name):
            name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return [f"{name} <{spec}>"]
    words = Header(name, "utf-8").encode(linesep="\n").split("\n ")
    return [*words, f"<{spec}>"]


def addresses_lines(mailboxes: list[Address]) -> list[str]:
    """A list of mailboxes, folded between them."""
    lines: list[str] = []
    for i, a in enumerate(mailboxes):
        parts = mailbox_lines(a)
        if i < len(mailboxes) - 1:
            parts[-1] += ","
        for part in parts:
            if lines and len(lines[-1]) + 1 + len(part) <= 72:
                lines[-1] += " " + part
            else:
                lines.append(part)
    return lines


# -- rendering ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str  # maintype/subtype, tokens only (outbound/mail.py checks)
    data: bytes


@dataclass(frozen=True)
class Mail:
    """A rendered mail, serialised once, and what the outbox records of it (the recipients,
    sender and subject as mailflow chose them, not read back from the bytes)."""

    raw: bytes
    sender: str
    recipients: list[str]
    subject: str
    message_id: str
    automatic: bool


# A template's Subject line, compiled once per loaded template (a template reloaded after a
# change is a new object, so its subject line is compiled again).
_SUBJECTS: weakref.WeakKeyDictionary[Template, Template] = weakref.WeakKeyDictionary()


def _subject_line(env: Environment, name: str, whole: Template, context: dict[str, Any]
                  ) -> str:
    """The template's first line rendered on its own: outside text with a line break in it
    cannot move part of the subject into the body or end the subject early."""
    line = _SUBJECTS.get(whole)
    if line is None:
        assert env.loader is not None
        source, _, _ = env.loader.get_source(env, f"{name}.txt")
        line = _SUBJECTS[whole] = env.from_string(source.partition("\n")[0])
    return line.render(**context)


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
    files: Sequence[Attachment] = (),
) -> Mail:
    """Raises BadAddress for an address it will not write (outbound/mail.py checks first)."""
    whole = env.get_template(f"{name}.txt")
    text = whole.render(**context)
    line = _subject_line(env, name, whole, context)
    if not line.startswith("Subject:"):
        raise ValueError(f"template {name}.txt must start with a 'Subject:' line")
    body = text[len(line):] if text.startswith(line) else text.partition("\n")[2]
    html = env.get_template(f"{name}.html").render(**context)

    [own_id] = message_ids([message_id]) or [None]
    if own_id is None:
        raise ValueError(f"not a message ID: {message_id!r}")
    frm = address(sender[1], sender[0])
    to_boxes, cc_boxes = [address(a) for a in to], [address(a) for a in cc or []]
    subject = header_text(line.removeprefix("Subject:"))
    head = [("From", mailbox_lines(frm))]
    if to_boxes:
        head.append(("To", addresses_lines(to_boxes)))
    if cc_boxes:
        head.append(("Cc", addresses_lines(cc_boxes)))
    head += [("Subject", subject_lines(subject)), ("Date", [format_datetime(now)]),
             ("Message-ID", [own_id])]
    if reply_to:
        head.append(("Reply-To", mailbox_lines(address(reply_to))))
    if thread := message_ids([in_reply_to] if in_reply_to else []):
        head.append(("In-Reply-To", thread))
    if refs := message_ids(references):
        head.append(("References", refs))
    if automatic:
        head.append(("Auto-Submitted", ["auto-generated"]))
        # Exchange honours this: no out-of-office or read receipts back to a robot.
        head.append(("X-Auto-Response-Suppress", ["DR, RN, NRN, OOF, AutoReply"]))
    head += [("X-Mailflow-Kind", [name]), ("MIME-Version", ["1.0"])]
    content = _alternative(body.lstrip("\n"), html)
    if files:
        content = _mixed(content, files)
    raw = _headers(head).encode("ascii") + content
    return Mail(raw=raw, sender=frm.addr_spec,
                recipients=[a.addr_spec for a in (*to_boxes, *cc_boxes)], subject=subject,
                message_id=own_id, automatic=automatic)


# -- MIME, written once ---------------------------------------------------------------------
# The stdlib's EmailMessage parses every header it is given and refolds every one when it is
# serialised: about half the cost of a mail. mailflow's headers are built from checked values
# (above), so they are written here as they are, with the body encoded by the same rule as
# the stdlib's `set_content` (7bit or 8bit when the lines are short, else quoted-printable or
# base64, whichever is shorter).


def _headers(head: list[tuple[str, list[str]]]) -> str:
    return "".join(f"{k}: " + "\n ".join(lines) + "\n" for k, lines in head)


def _encode_text(text: str) -> tuple[str, bytes]:
    lines = text.encode("utf-8").splitlines()
    normal = b"\n".join(lines) + b"\n"
    if max(map(len, lines), default=0) <= LINE_LIMIT:
        return ("7bit" if normal.isascii() else "8bit"), normal
    sniff = b"\n".join(lines[:10]) + b"\n"
    if len(quoted_printable(sniff)) > len(binascii.b2a_base64(sniff)):
        return "base64", base64.encodebytes(normal)
    return "quoted-printable", quoted_printable(normal)


# Bytes the stdlib's body encoding writes as they are (email.quoprimime: printable ASCII but
# "=", space, tab and the line ends); any other run is written "=XX" a byte.
_QP_SAFE = bytes(range(0x20, 0x7F)) + b"\t\n\r"  # "=" is replaced first, on its own
_QP_UNSAFE = re.compile(rb"[^\t\n\r -~]+")


def _qp_escape(m: re.Match[bytes]) -> bytes:
    return b"=" + m[0].hex("=").upper().encode("ascii")


def quoted_printable(data: bytes, limit: int = LINE_LIMIT) -> bytes:
    """email.quoprimime.body_encode(data.decode("latin-1"), limit).encode("ascii"), the same
    bytes (tests/test_headers.py compares them), for `data` with "\n" line ends: the stdlib
    escapes one character at a time through a translation table, 1-2 ms a mail; this escapes
    runs with one regular expression and copies the lines that need no soft break."""
    if not data:
        return data
    out: list[bytes] = []
    append = out.append
    escaped = data.replace(b"=", b"=3D")
    if escaped.translate(None, _QP_SAFE):  # a scan in C; the expression costs 20 ns a byte
        escaped = _QP_UNSAFE.sub(_qp_escape, escaped)
    for line in escaped.split(b"\n"):
        if len(line) <= limit and not line.endswith((b" ", b"\t")):
            append(line)  # the common case: nothing to break or quote at the end
        else:
            append(_qp_line(line, limit))
    return b"\n".join(out)  # a final line end is kept: the split's last line is empty


def _qp_line(line: bytes, limit: int) -> bytes:
    """One escaped line broken with soft line breaks, and whitespace at its end quoted, as
    email.quoprimime.body_encode does it."""
    pieces = []
    start, last, step = 0, len(line) - 1 - limit, limit - 1
    while start <= last:
        stop = start + step
        if line[stop - 2] == 0x3D:  # "=": never break an escape
            pieces.append(line[start:stop - 1])
            start = stop - 2
        elif line[stop - 1] == 0x3D:
            pieces.append(line[start:stop])
            start = stop - 1
        else:
            pieces.append(line[start:stop] + b"=")
            start = stop
    if line and line[-1] in b" \t":
        room, ws = start - last, line[-1:]
        if room >= 3:
            tail = b"=%02X" % ws[0]
        elif room == 2:
            tail = ws + b"=\n"
        else:
            tail = b"=\n=%02X" % ws[0]
        pieces.append(line[start:-1] + tail)
    else:
        pieces.append(line[start:])
    return b"\n".join(pieces)


def _text_part(text: str, subtype: str) -> bytes:
    cte, data = _encode_text(text)
    return (f'Content-Type: text/{subtype}; charset="utf-8"\n'
            f"Content-Transfer-Encoding: {cte}\n\n").encode("ascii") + data


def _boundary() -> str:
    # "=_" cannot occur in quoted-printable or base64 text, and the rest cannot be guessed.
    return f"=_mf_{uuid.uuid4().hex}"


def _multipart(subtype: str, parts: list[bytes]) -> bytes:
    b = _boundary()
    out = [f'Content-Type: multipart/{subtype};\n boundary="{b}"\n\n'.encode("ascii")]
    for part in parts:
        out += [f"--{b}\n".encode("ascii"), part if part.endswith(b"\n") else part + b"\n"]
    out.append(f"--{b}--\n".encode("ascii"))
    return b"".join(out)


def _alternative(text: str, html: str) -> bytes:
    return _multipart("alternative", [_text_part(text, "plain"), _text_part(html, "html")])


def _filename_lines(name: str) -> list[str]:
    """The Content-Disposition of an attachment named `name` (header_text already): quoted
    when it is printable ASCII, else RFC 2231 (UTF-8, percent-encoded, in continuations)."""
    if _PLAIN.fullmatch(name):
        return ["attachment;", 'filename="' + name.replace("\\", "\\\\").replace('"', '\\"')
                + '"']
    encoded = urllib.parse.quote(name.encode("utf-8"), safe="")
    chunks, i = [], 0
    while i < len(encoded):
        j = min(i + 60, len(encoded))
        while j < len(encoded) and "%" in encoded[j - 2:j]:  # never split a %XX
            j -= 1
        chunks.append(encoded[i:j])
        i = j
    last = len(chunks) - 1
    return ["attachment;", *(f"filename*{n}*=" + ("utf-8''" if n == 0 else "") + c
                             + (";" if n < last else "") for n, c in enumerate(chunks))]


def _file_part(f: Attachment) -> bytes:
    head = _headers([("Content-Type", [f.content_type]),
                     ("Content-Disposition", _filename_lines(f.name)),
                     ("Content-Transfer-Encoding", ["base64"])])
    return head.encode("ascii") + b"\n" + base64.encodebytes(f.data)


def _mixed(alternative: bytes, files: Sequence[Attachment]) -> bytes:
    return _multipart("mixed", [alternative, *(_file_part(f) for f in files)])
