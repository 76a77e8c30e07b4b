"""Raw bytes -> the facts the pipeline needs. Never raises on bad mail: what cannot be
read comes back empty, and the defects are listed.

The stdlib parser is used directly, not mail-parser: mail-parser flattens an attached
message/rfc822 into the body text, and a forward's structure is exactly what we need.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import (
    BaseHeader,
    ContentDispositionHeader,
    ContentTransferEncodingHeader,
    ContentTypeHeader,
    HeaderRegistry,
    MessageIDHeader,
    UnstructuredHeader,
)
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from mailflow.inbound.text import body_text
from mailflow.oneline import one_line

_MSGID = re.compile(r"<[^<>\s]+>")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class Parsed:
    msg: EmailMessage
    message_id: str | None
    sender_name: str | None
    sender: str | None  # lower-cased address
    to: list[str]
    cc: list[str]
    subject: str
    date: datetime | None
    in_reply_to: list[str]
    references: list[str]
    text: str
    defects: list[str] = field(default_factory=list)
    refused: str | None = None  # why only the headers were read (too deeply nested)
    from_problem: str | None = None  # why `From` names no one sender (then `sender` is None)

    def header(self, name: str) -> str:
        return header(self.msg, name)

    @property
    def recipients(self) -> list[str]:
        return self.to + self.cc


def parse(raw: bytes) -> Parsed:
    refused = too_deep(raw)
    if refused:  # read the headers only: the body would exhaust the parser's stack
        raw = _head_only(raw)
    msg = _parse(raw)
    repaired = None
    if msg.get_content_maintype() == "multipart" and not msg.is_multipart():
        msg, repaired = _repair(raw)
    name, addr, from_problem = read_from(msg)
    try:
        text = body_text(msg)
    except Exception as e:  # noqa: BLE001 - a body we cannot read is a defect, not a crash
        text = ""
        defects = [f"body: {e}"]
    else:
        defects = []
    defects += [type(d).__name__ for d in msg.defects] + ([repaired] if repaired else [])
    return Parsed(
        msg=msg,
        message_id=first_msgid(line(header(msg, "Message-ID")))[:990] or None,
        sender_name=line(name) or None,
        sender=addr,
        to=addresses(msg, "To"),
        cc=addresses(msg, "Cc"),
        subject=line(header(msg, "Subject")),
        date=_date_of(msg),
        in_reply_to=_MSGID.findall(clean(header(msg, "In-Reply-To"))),
        references=_MSGID.findall(clean(header(msg, "References")))[-100:],
        text=clean(text),
        defects=defects,
        refused=refused,
        from_problem=from_problem,
    )


_ADDRESS_LIKE = re.compile(r"[^\s<>()\[\],;:\"'`]+@[^\s<>()\[\],;:\"'`]+\.[^\s<>()\[\],;:\"'`]+")


def read_from(msg: EmailMessage) -> tuple[str | None, str | None, str | None]:
    """(display name, address, problem). `From` is a claim to check, so it must name exactly
    one address and nothing in it may show another: a display name like
    `roads@council.example <mallory@attacker.example>` is read by mail clients (and by the
    stdlib parser) as the address it shows. The envelope sender and `Sender` are no substitute
    for a missing `From`."""
    raw = [clean(str(v)) for k, v in msg.raw_items() if k.lower() == "from"]
    if not raw or not any(v.strip() for v in raw):
        return None, None, "it has no From address"
    if len(raw) > 1:
        return None, None, f"it has {len(raw)} From headers"
    try:
        value = msg["From"]
        found = [(a.display_name, a.addr_spec) for a in value.addresses]
        text = clean(str(value))
        unreadable = any("invalid address" in str(d) for d in getattr(value, "defects", ()))
    except Exception:  # noqa: BLE001 - a From the parser cannot read names no one
        return None, None, f"its From cannot be read: {raw[0][:200]!r}"
    shown = raw[0][:200]
    real = [(clean(n), clean(a).lower()) for n, a in found if "@" in a]
    if len(real) != 1 or len(found) != 1:
        what = f"{len(real)} addresses" if real else "no address"
        return None, None, f"its From has {what}: {shown!r}"
    name, addr = real[0]
    others = {a.lower().strip(".") for t in (raw[0], text) for a in _ADDRESS_LIKE.findall(t)}
    others.discard(addr)
    if unreadable or others:
        other = sorted(others)[0] if others else "an address it cannot read"
        return None, None, (f"its From shows {other} besides its real address {addr}: "
                            f"{shown!r}")
    return name or None, addr, None


def clean(text: str | None) -> str:
    """Text safe to store anywhere: no NUL or control characters (PostgreSQL refuses NUL),
    no lone surrogates (raw 8-bit bytes are read as UTF-8, else as Windows-1252)."""
    if not text:
        return ""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            data = text.encode("utf-8", "surrogateescape")
            text = data.decode("utf-8") if _is_utf8(data) else data.decode("cp1252", "replace")
        except UnicodeError:
            text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return _CONTROL.sub("", text)


def line(text: str | None) -> str:
    """A subject or a name from outside, safe to store and to show: `clean`, then on one line
    (an encoded CR, LF or lone CR becomes a space) with no bidi controls (U+202E would make it
    read backwards)."""
    return one_line(clean(text))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


class _Registry(HeaderRegistry):
    """The stdlib's header registry, except that it builds the class of each kind of header
    once: HeaderRegistry builds a new class (`type(...)`) for every header it parses. Keyed
    by the kind (a few dozen), never by the header's name, which comes from outside."""

    def __init__(self) -> None:
        super().__init__()
        self._built: dict[type, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        kind = self.registry.get(name.lower(), self.default_class)
        built = self._built.get(kind)
        if built is None:
            built = self._built[kind] = super().__getitem__(name)
        return built


    def __reduce__(self) -> str:
        return "_REGISTRY"  # pickled as the one registry, not as the classes it built

    def __call__(self, name: str, value: str) -> BaseHeader:
        text = _known_text(self.registry.get(name.lower(), self.default_class), value)
        if text is None:
            return super().__call__(name, value)
        built = self[name]
        lazy = self._built.get(built)  # keyed by the built class: no kind is built twice
        if lazy is None:
            lazy = self._built[built] = type("_Lazy" + built.__name__, (_Lazy, built),
                                             {"_kind": built})
        return lazy(name, value, text)  # type: ignore[call-arg]


class _Lazy:
    """A header whose text is known without the registry's parse (`_known_text`): parsed, by
    its own class, only when something asks more of it than its text (its defects, its
    parameters, its parse tree). The parser and the readers here ask only for the text."""

    _kind: type[BaseHeader]

    def __new__(cls, name: str, value: str, text: str) -> _Lazy:
        self = str.__new__(cls, text)  # type: ignore[call-overload]
        self.__dict__["_source"] = (name, value)
        return self  # type: ignore[no-any-return]

    def __getattr__(self, attr: str) -> Any:  # only for what is not set: the parse's
        if attr.startswith("__") or "_parsed" in self.__dict__:
            raise AttributeError(attr)
        self.__dict__.update(self._kind(*self.__dict__["_source"]).__dict__, _parsed=True)
        return getattr(self, attr)

    def __reduce__(self) -> Any:  # a copy is the header as the registry makes it
        return self._kind(*self.__dict__["_source"]).__reduce__()


# The text policy.default gives a header, where it follows from the value without a parse.
# Content-Type and -Disposition are given back normalised: parameters after "; ", quoted.
_MIME_TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"
_PARAM = re.compile(r';[ \t]*([A-Za-z0-9_.-]+)=(?:([A-Za-z0-9_.+-]+)|"([!#-\[\]-~]+)")')
_MIME_HEAD = {ContentTypeHeader: re.compile(_MIME_TOKEN + "/" + _MIME_TOKEN),
              ContentDispositionHeader: re.compile(_MIME_TOKEN)}
_TOKEN = re.compile(r"[A-Za-z0-9-]+")
_PLAIN_MSGID = re.compile(r"<[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+>")


def _known_text(kind: type, value: str) -> str | None:
    if not value.isascii() or "=?" in value:
        return None  # 8-bit text to sanitise, or encoded words to decode: the registry's work
    if issubclass(kind, UnstructuredHeader):
        return value
    if kind is ContentTransferEncodingHeader:
        return value if _TOKEN.fullmatch(value) else None
    if kind is MessageIDHeader:
        return value if _PLAIN_MSGID.fullmatch(value) else None
    head = _MIME_HEAD.get(kind)
    m = head.match(value) if head else None
    if m is None:
        return None
    params, at = [], m.end()
    while at < len(value):
        p = _PARAM.match(value, at)
        if p is None:
            return None
        params.append((p.group(1), p.group(2) or p.group(3)))
        at = p.end()
    if len({n.lower() for n, _ in params}) < len(params):
        return None  # a repeated parameter: the registry's rules for it
    if not params:
        return m.group()
    return m.group() + "; " + "; ".join(f'{n}="{v}"' for n, v in params)


_REGISTRY = _Registry()


class _ReadOnce(EmailPolicy):
    """policy.default, except that each header of a message is parsed once. The header
    registry parses a header again on every access, and a part's Content-Type alone is read
    about ten times (by the parser itself, the text finder, the classifier, attachments).
    One instance per parsed message, shared by its parts: the memo lives as long as the
    message. A parsed header is immutable, and parsing depends only on (name, value)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**{"header_factory": _REGISTRY, **kw})
        object.__setattr__(self, "_memo", {})  # a policy refuses setattr

    def clone(self, **kw: Any) -> _ReadOnce:
        new = super().clone(**kw)  # its own memo: a clone may have another header_factory
        object.__setattr__(new, "_memo", {})
        return new  # type: ignore[return-value]

    def header_fetch_parse(self, name: str, value: Any) -> Any:
        if type(value) is not str:  # a header object set on the message: returned as is
            return super().header_fetch_parse(name, value)
        key = (name, value)
        found = self._memo.get(key)
        if found is None:  # a header that fails to parse raises again on every access
            found = self._memo[key] = super().header_fetch_parse(name, value)
        return found


def _parse(raw: bytes) -> EmailMessage:
    msg = BytesParser(policy=_ReadOnce()).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


_CTYPE_LINES = re.compile(rb"^content-type:.*(\r?\n[ \t].*)*\r?\n", re.I | re.M)
_DELIMITER = re.compile(rb"^--([^\s]{1,70})\r?$", re.M)


def _repair(raw: bytes) -> tuple[EmailMessage, str]:
    """A multipart whose boundary is missing or is not the one used: read it with the
    boundary its body actually uses, or else as plain text, rather than lose the body."""
    m = re.search(rb"\r?\n\r?\n", raw)
    head, body = (raw[: m.end()], raw[m.end():]) if m else (raw, b"")
    old = _CTYPE_LINES.search(head)
    ctype = old.group(0).split(b":", 1)[1].split(b";", 1)[0].strip() if old else b"multipart/mixed"
    used = _DELIMITER.search(body)
    if used:
        new = b"Content-Type: " + ctype + b'; boundary="' + used.group(1) + b'"\r\n'
        how = f"repaired: read with the boundary the body uses ({used.group(1)[:70]!r})"
    else:
        new = b"Content-Type: text/plain\r\n"
        how = "repaired: a multipart without a usable boundary, read as plain text"
    head = _CTYPE_LINES.sub(b"", head)
    at = head.rstrip(b"\r\n")
    msg = _parse(at + b"\r\n" + new + b"\r\n" + body)
    if msg.get_content_maintype() == "multipart" and not msg.is_multipart():
        msg = _parse(at + b"\r\nContent-Type: text/plain\r\n\r\n" + body)
    return msg, how


MAX_DEPTH = 20  # levels of multipart and message/* nesting; real mail uses a handful
_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]*)"|([^;\s]+))', re.I)


def too_deep(raw: bytes, limit: int = MAX_DEPTH) -> str | None:
    """Why a message is refused for its nesting, or None. Counted over the raw lines in one
    loop, without parsing: the stdlib parser recurses once per level, so a few thousand
    levels would exhaust its stack before any check on the parsed tree could run."""
    lower = raw.lower()
    if lower.count(b"multipart/") + lower.count(b"message/") <= limit:
        return None  # a level is opened only by a Content-Type naming one of these
    stack: list[bytes | None] = []  # the boundary of each open multipart; None: message/*
    in_head, ctype, folding = True, b"", False
    for line in raw.splitlines():
        if in_head:
            if line.strip():
                if line[:1] in (b" ", b"\t"):
                    ctype += line if folding else b""
                else:
                    folding = line[:13].lower() == b"content-type:"
                    ctype = line[13:] if folding else ctype
                continue
            in_head, folding = False, False
            mtype = ctype.split(b";", 1)[0].strip().lower()
            b = _BOUNDARY.search(ctype) if mtype.startswith(b"multipart/") else None
            if b:
                stack.append(b.group(1) if b.group(1) is not None else b.group(2))
            elif mtype.startswith(b"message/") and mtype != b"message/delivery-status":
                stack.append(None)
                in_head = True  # the body is the attached message's own headers
            ctype = b""
            if len(stack) > limit:
                return (f"refused: MIME parts nested more than {limit} levels deep "
                        "(multipart or attached messages); only its headers were read")
        elif line.startswith(b"--") and stack:
            token = line[2:].rstrip()
            for i in range(len(stack) - 1, -1, -1):
                bound = stack[i]
                if bound is not None and token in (bound, bound + b"--"):
                    if token == bound:
                        del stack[i + 1:]
                        in_head = True  # a part of that multipart begins
                    else:
                        del stack[i:]
                    break
    return None


def _head_only(raw: bytes) -> bytes:
    m = re.search(rb"\r?\n\r?\n", raw)
    head = raw[: m.start()] if m else raw
    return _CTYPE_LINES.sub(b"", head + b"\r\n") + b"\r\n"


def header(msg: EmailMessage, name: str) -> str:
    """A header as text; a header too broken to decode comes back as its raw characters."""
    try:
        value = msg.get(name)
    except Exception:  # noqa: BLE001 - policy.default raises on some malformed headers
        value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    return str(value) if value is not None else ""


_LINESEP = re.compile(r"\n|\r")  # what the policy removes from a value before parsing it


def addresses(msg: EmailMessage, name: str) -> list[str]:
    values = []
    try:
        values = [str(v) for v in msg.get_all(name, [])]
    except Exception:  # noqa: BLE001
        values = [v for k, v in msg.raw_items() if k.lower() == name.lower()]
    return [clean(a).lower() for _, a in getaddresses(values) if "@" in a]


def first_msgid(value: str) -> str:
    m = _MSGID.search(value or "")
    return m.group(0) if m else (value or "").strip()


def _date_of(msg: EmailMessage) -> datetime | None:
    """The Date header's time. An ASCII value is read as the registry reads it, without the
    registry's round trip (it formats the time it read, and parses that text again)."""
    raw = next((v for k, v in msg.raw_items() if k.lower() == "date"), None)
    if type(raw) is str and raw.isascii() and isinstance(msg.policy, EmailPolicy):
        return _date("".join(_LINESEP.split(raw)))
    return _date(header(msg, "Date"))


def _date(value: str) -> datetime | None:
    try:
        return parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError, IndexError, OverflowError):  # a year or offset too large
        return None
