"""Bounces: who could not be reached, why, and which of our messages it was.

RFC 3464 delivery status notifications are read from their `message/delivery-status` part
(Final-Recipient, Action, Status). The common non-standard bounces (qmail, Exim, Postfix
without DSN, Exchange's NDR text) are read from their text: the failed addresses are those
named before the copy of the returned message, and the status is the first enhanced status
code (`5.1.1`) or SMTP reply code (`550`) found there.

The returned message (a `message/rfc822` or `text/rfc822-headers` part, or the headers
pasted below the text) gives the Message-ID we sent, which says which case and request the
bounce belongs to. Never raises: a bounce we cannot read comes back with what was found.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from email.parser import HeaderParser

from mailflow.inbound.text import body_text, part_text

_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.ASCII)
_DAEMON_LOCAL = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon|"
                           r"microsoftexchange[0-9a-f]{32})$", re.I)
_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d]|\.\d)")
_SMTP_CODE = re.compile(r"(?<!\d)([45]\d\d)(?=[ -]\S)")
_MSGID_LINE = re.compile(r"^\s*Message-ID:\s*(<[^<>\s]+>)", re.I | re.M)
# Where the copy of the returned message starts in the text of a non-standard bounce.
_RETURNED = re.compile(
    r"^.*(below this line is a copy of the message|this is a copy of the message|"
    r"original message headers|original message follows|----- original message -----|"
    r"the original message was received|included is a copy of|message headers follow|"
    r"^received: |^return-path: ).*$",
    re.I | re.M,
)
_TRANSIENT = re.compile(r"\b(delayed|has not yet been delivered|will (continue to )?(re)?try|"
                        r"temporary (failure|error)|not been delivered yet|still trying)\b", re.I)
_PERMANENT = re.compile(r"\b(permanent (error|failure)|could not be delivered|couldn't be "
                        r"delivered|wasn't able to deliver|delivery has failed|failed "
                        r"permanently|user unknown|does not exist|no such user|undeliverable"
                        r"|unable to deliver|address(es)? failed)\b", re.I)


@dataclass
class Bounce:
    recipients: list[str] = field(default_factory=list)
    status: str | None = None  # an RFC 3463 enhanced status code, like 5.1.1
    permanent: bool = True
    original_message_id: str | None = None  # the Message-ID of the message that bounced
    returned: str = ""  # the returned message's headers (and text), to find a reply address
    diagnostic: str = ""

    def summary(self) -> str:
        who = ", ".join(self.recipients) or "an unknown recipient"
        kind = "permanent failure" if self.permanent else "delivery delayed"
        return f"{kind} for {who}" + (f" ({self.status})" if self.status else "")


def is_daemon(address: str | None) -> bool:
    return bool(_DAEMON_LOCAL.match((address or "").partition("@")[0]))


def read(msg: Message, ignore: Callable[[str], bool] = lambda a: False) -> Bounce:
    """The failed recipients, status and returned message of a bounce. `ignore(address)` is
    True for addresses that are never the failed recipient (our own)."""
    b = Bounce()
    try:
        _returned_message(msg, b)
        if not _delivery_status(msg, b):
            _from_text(msg, b, ignore)
    except Exception as e:  # noqa: BLE001 - a bounce we cannot read is still a bounce
        b.diagnostic = b.diagnostic or f"unreadable bounce: {type(e).__name__}"
    return b


def is_failure_report(msg: Message) -> bool | None:
    """For a multipart/report delivery-status: True when some recipient failed or was
    delayed, False when every recipient was delivered (a receipt), None when not a DSN."""
    blocks = _status_blocks(msg)
    if blocks is None:
        return None
    actions = {str(blk.get("Action", "")).strip().lower() for blk in blocks[1:]} - {""}
    return not actions or bool(actions - {"delivered", "relayed", "expanded"})


def _status_blocks(msg: Message) -> list[Message] | None:
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            payload = part.get_payload()
            if isinstance(payload, list):
                return [m for m in payload if isinstance(m, Message)]
            if isinstance(payload, str):  # some MTAs send it base64 or as plain text
                return [HeaderParser().parsestr(chunk) for chunk in
                        re.split(r"\r?\n\s*\r?\n", part_text(part)) if chunk.strip()]
    return None


def _delivery_status(msg: Message, b: Bounce) -> bool:
    blocks = _status_blocks(msg)
    if not blocks:
        return False
    statuses: list[str] = []
    for blk in blocks[1:] or blocks:
        action = str(blk.get("Action", "")).strip().lower()
        if action in ("delivered", "relayed", "expanded"):
            continue
        addr = _type_value(blk.get("Final-Recipient") or blk.get("Original-Recipient") or "")
        if addr and addr not in b.recipients:
            b.recipients.append(addr)
        status = str(blk.get("Status", "")).strip()
        m = _ENHANCED.search(status)
        if m:
            statuses.append(m.group(0))
        elif action == "delayed":
            statuses.append("4.0.0")
        b.diagnostic = b.diagnostic or _type_value(blk.get("Diagnostic-Code") or "", lower=False)
    b.status = next((s for s in statuses if s.startswith("5")), statuses[0] if statuses else None)
    b.permanent = b.status is None or b.status.startswith("5")
    return bool(b.recipients)


def _type_value(value: object, lower: bool = True) -> str:
    """`rfc822; Roads@Council.Example` -> `roads@council.example`."""
    text = str(value).partition(";")[2] if ";" in str(value) else str(value)
    text = " ".join(text.split()).strip("<> ")
    return text.lower() if lower else text


def _returned_message(msg: Message, b: Bounce) -> None:
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                b.original_message_id = b.original_message_id or _msgid(inner.get("Message-ID"))
                b.returned += _headers_text(inner) + "\n" + body_text(inner)[:5000] + "\n"
        elif ctype == "text/rfc822-headers":
            text = part_text(part)
            b.returned += text + "\n"
            m = _MSGID_LINE.search(text)
            if m and not b.original_message_id:
                b.original_message_id = m.group(1)


def _headers_text(m: Message) -> str:
    out = []
    for k, v in m.raw_items():
        out.append(f"{k}: {v}")
    return "\n".join(out)


def _msgid(value: object) -> str | None:
    m = re.search(r"<[^<>\s]+>", str(value or ""))
    return m.group(0) if m else None


def _from_text(msg: Message, b: Bounce, ignore: Callable[[str], bool]) -> None:
    text = body_text(msg)
    cut = _RETURNED.search(text)
    report, returned = (text[: cut.start()], text[cut.start():]) if cut else (text, "")
    if returned:
        b.returned += returned[:20000]
        m = _MSGID_LINE.search(returned)
        if m and not b.original_message_id:
            b.original_message_id = m.group(1)
    for addr in _ADDRESS.findall(report):
        addr = addr.lower().rstrip(".")
        if addr not in b.recipients and not is_daemon(addr) and not ignore(addr):
            b.recipients.append(addr)
    m = _ENHANCED.search(report)
    code = _SMTP_CODE.search(report)
    b.status = m.group(0) if m else (f"{code.group(1)[0]}.0.0" if code else None)
    if b.status:
        b.permanent = b.status.startswith("5")
    else:
        b.permanent = not _TRANSIENT.search(report) or bool(_PERMANENT.search(report))
    line = next((ln.strip() for ln in report.splitlines() if _ENHANCED.search(ln)
                 or _SMTP_CODE.search(ln)), "")
    b.diagnostic = b.diagnostic or line[:300]
