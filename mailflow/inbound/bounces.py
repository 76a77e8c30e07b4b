"""Bounces: who could not be reached, why, and which of our messages it was.

RFC 3464 delivery status notifications are read first, from their `message/delivery-status`
part (even base64-encoded): the failed address of each recipient is its Original-Recipient
(the address we wrote to, before any alias expanded it) unless that names our own address
(a forwarding rule), then its Final-Recipient; `rfc822;`, `smtp;`, `SMTP:` and `smtp=`
prefixes go, IMCEA-encoded addresses are decoded, and X.400 addresses (`/O=…/CN=…`), which
name no mailbox, are passed over for the SMTP address the report's text gives.
The common non-standard bounces (qmail, Exim, Postfix without DSN, sendmail, old Exchange,
GroupWise, Yahoo, Lotus Domino, MDaemon, filtering gateways) are read from their text: the
failed addresses are those named before the copy of the returned message (not in its header
lines), and the status is the first enhanced status code (`5.1.1`) or SMTP reply code (`550`)
found there. `reads_as_failure` says whether automatic mail's text is such a report.

The returned message (a `message/rfc822` or `text/rfc822-headers` part, or the headers
pasted below the text) gives the Message-ID we sent, which says which case and request the
bounce belongs to. Never raises: a bounce we cannot read comes back with what was found.
"""

from __future__ import annotations

import base64
import binascii
import quopri
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
    r"possibly truncated original message|included is a copy of|message headers follow|"
    r"here is your returned mail|returned mail follows|original message attached|"
    r"start of returned message|^old message:|a copy of the original message|your message reads|"
    r"message text follows|^-+ ?returned mail ?-+|"
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
        if not _delivery_status(msg, b, ignore):
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
            cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
            if cte in ("base64", "quoted-printable"):  # the parser split the encoded text
                text = _decoded_body(part, cte)
            else:
                payload = part.get_payload()
                if isinstance(payload, list):
                    return [m for m in payload if isinstance(m, Message)]
                text = part_text(part)  # some MTAs send it as plain text
            return [HeaderParser().parsestr(chunk) for chunk in
                    re.split(r"\r?\n\s*\r?\n", text) if chunk.strip()]
    return None


def _decoded_body(part: Message, cte: str) -> str:
    raw = part.as_string()
    body = re.split(r"\r?\n\r?\n", raw, maxsplit=1)[-1]
    try:
        data = base64.b64decode(body) if cte == "base64" else quopri.decodestring(body.encode())
    except (ValueError, binascii.Error):
        return ""
    return data.decode("utf-8", "replace")


def _delivery_status(msg: Message, b: Bounce, ignore: Callable[[str], bool]) -> bool:
    blocks = _status_blocks(msg)
    if not blocks:
        return False
    statuses: list[str] = []
    unnamed = False  # a failed recipient named only by an X.400 address
    for blk in blocks[1:] or blocks:
        action = str(blk.get("Action", "")).strip().lower()
        if action in ("delivered", "relayed", "expanded"):
            continue
        addr = _recipient(blk, ignore)
        if addr and addr not in b.recipients:
            b.recipients.append(addr)
        elif not addr:
            unnamed = True
        status = str(blk.get("Status", "")).strip()
        m = _ENHANCED.search(status)
        if m:
            statuses.append(m.group(0))
        elif action == "delayed":
            statuses.append("4.0.0")
        b.diagnostic = b.diagnostic or _type_value(blk.get("Diagnostic-Code") or "", lower=False)
    b.status = next((s for s in statuses if s.startswith("5")), statuses[0] if statuses else None)
    b.permanent = b.status is None or b.status.startswith("5")
    if unnamed:  # the SMTP address is in the report's text ("John Smith (j.smith@…)")
        for addr in _addresses(_report_text(msg), ignore):
            if addr not in b.recipients:
                b.recipients.append(addr)
    return bool(b.recipients)


def _recipient(blk: Message, ignore: Callable[[str], bool]) -> str:
    """Original-Recipient, the address we wrote to, unless it names ours; else
    Final-Recipient. "" when neither is an SMTP address (X.400)."""
    found = [_address(blk.get(name) or "") for name in ("Original-Recipient", "Final-Recipient")]
    return next((a for a in found if a and not ignore(a)), "")


_PREFIX = re.compile(r"^(?:smtp\s*[:=]\s*|mailto:)", re.I)
_IMCEA_CHAR = re.compile(r"\+([0-9a-f]{2})", re.I)


def _address(value: object) -> str:
    """`rfc822; SMTP:Roads@Council.Example` -> `roads@council.example`; "" for an X.400 or
    X.500 address, which names no mailbox."""
    kind, sep, rest = str(value).partition(";")
    text = rest if sep else kind
    if sep and kind.strip().lower() in ("x400", "x-x400", "x500", "x-ms-exchange"):
        return ""
    text = _PREFIX.sub("", " ".join(text.split()).strip("<> ")).strip("<> ").lower()
    if text.startswith("imceasmtp-"):  # Exchange's encapsulation: IMCEASMTP-jane+40x+2Ecom@y
        text = _IMCEA_CHAR.sub(lambda m: chr(int(m.group(1), 16)),
                               text[len("imceasmtp-"):].rpartition("@")[0])
    if text.startswith(("imcea", "/")) or "/o=" in text or "/cn=" in text:
        return ""
    return text if _ADDRESS.fullmatch(text) else ""


def _type_value(value: object, lower: bool = True) -> str:
    """The value after an address or diagnostic type: `smtp; 550 …` -> `550 …`."""
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


# Lines of a report that name the sender or the message, never the failed recipient.
_NOT_RECIPIENT = re.compile(r"^\s*(?:message-id|from|reply-to|return-path|sender|date|subject|"
                            r"in-reply-to|references|generating server|reporting-mta)\s*:", re.I)


def _addresses(report: str, ignore: Callable[[str], bool]) -> list[str]:
    found: list[str] = []
    for line in report.splitlines():
        if _NOT_RECIPIENT.match(line):
            continue
        for addr in _ADDRESS.findall(line):
            addr = addr.lower().rstrip(".")
            if addr not in found and not is_daemon(addr) and not ignore(addr):
                found.append(addr)
    return found


def _report_text(msg: Message) -> str:
    text = body_text(msg)
    cut = _RETURNED.search(text)
    return text[: cut.start()] if cut else text


_FAILURE = re.compile(
    r"\b(?:could not be delivered|couldn't be delivered|was not delivered|wasn't delivered"
    r"|not been delivered|undeliverable|undelivered|delivery (?:has )?failed|failed permanently"
    r"|delivery to the following recipients? failed|permanent (?:error|failure)"
    r"|unable to deliver|wasn't able to deliver|were unable to deliver|did not reach"
    r"|could not be reached|user unknown|unknown user|no such user|mailbox unavailable"
    r"|not listed in|address(?:es)? failed|recipient address rejected|has not been delivered"
    r"|delivery failure|cannot be delivered|returned mail|was blocked|has been blocked"
    r"|failed recipients?|did not receive a copy|undeliverable address|mailbox is full"
    r"|encountered delivery problems|not delivered to the following|invalid final delivery"
    r"|could not deliver|delivery problems?|message rejected|rejected your message"
    r"|konnte nicht zugestellt|unzustellbar|n'a pas pu être (?:remis|distribué)|non remis"
    r"|kan niet worden bezorgd|onbestelbaar|no se (?:pudo|puede) entregar|non recapitabile"
    r"|não (?:foi|é) possível entregar|kunde inte levereras|kunne ikke leveres"
    r"|nie (?:można|udało się) dostarczyć|не удалось доставить|недоставлено"
    r"|не вдалося доставити)",
    re.I,
)


def reads_as_failure(msg: Message) -> bool:
    """The text of a delivery failure report: failure words and a failed address or an SMTP
    status in the report above any returned copy (for automatic mail with no DSN part)."""
    report = _report_text(msg)[:20000]
    if not _FAILURE.search(report):
        return False
    return bool(_ENHANCED.search(report) or _SMTP_CODE.search(report) or _ADDRESS.search(report))


def _from_text(msg: Message, b: Bounce, ignore: Callable[[str], bool]) -> None:
    text = body_text(msg)
    cut = _RETURNED.search(text)
    report, returned = (text[: cut.start()], text[cut.start():]) if cut else (text, "")
    if returned:
        b.returned += returned[:20000]
        m = _MSGID_LINE.search(returned)
        if m and not b.original_message_id:
            b.original_message_id = m.group(1)
    for addr in _addresses(report, ignore):
        if addr not in b.recipients:
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
