"""Plain text out of inbound mail: HTML conversion and picking the human-readable body part."""

from __future__ import annotations

import re
import weakref
from email.message import EmailMessage, Message
from html.parser import HTMLParser

# Elements whose start and end both break the line.
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "center", "dd", "details", "dialog",
        "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2",
        "h3", "h4", "h5", "h6", "header", "li", "main", "nav", "ol", "p", "pre", "section",
        "table", "tbody", "tfoot", "thead", "tr", "ul",
    }
)
# Content of these never reaches the reader.
_SKIP_TAGS = frozenset({"style", "script", "head", "title", "template", "noscript"})
_VOID_TAGS = frozenset({"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base"})
_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0\u200b\u2007\u202f\ufeff]+")
_BLANK_RUNS = re.compile(r"\n{3,}")


class _TextBuilder(HTMLParser):
    """Accumulates lines, each remembering the blockquote depth it was written at."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, str]] = []
        self._line: list[str] = []
        self._depth = 0
        self._skip: list[str] = []
        self._pre = 0
        self._gap_pending = False
        self._lists: list[list[int]] = []  # per open list: [is_ordered, counter]
        self._paras: list[tuple[bool, int]] = []  # per open <p>: (is_outlook, lines at start)

    # -- line handling -------------------------------------------------------------------
    def _flush(self, force: bool = False) -> None:
        text = "".join(self._line).rstrip()
        self._line = []
        if text.strip() or force:
            if self._gap_pending and text.strip():
                self.lines.append((self._depth, ""))
            self._gap_pending = False
            self.lines.append((self._depth, text if text.strip() else ""))

    def _write(self, text: str) -> None:
        if not self._line:
            text = text.lstrip(" ")
            if not text:
                return
        elif self._line[-1].endswith(" ") and text.startswith(" "):
            text = text[1:]
        self._line.append(text)

    # -- parser callbacks ----------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self._skip.clear()  # an unclosed <head> ends where the body starts
            return
        if tag in _SKIP_TAGS:
            if tag not in _VOID_TAGS:
                self._skip.append(tag)
            return
        if self._skip:
            return
        if tag == "br":
            self._flush(force=True)
        elif tag == "hr":
            self._flush()
            # Outlook itself renders a rule as this line in its plain-text alternative.
            self.lines.append((self._depth, "_" * 32))
        elif tag in _BLOCK_TAGS:
            self._flush()
            self._open_block(tag, dict(attrs))
        elif tag in ("td", "th"):
            self._write(" ")

    def _open_block(self, tag: str, attrs: dict[str, str | None]) -> None:
        if tag == "blockquote":
            self._depth += 1
        elif tag == "pre":
            self._pre += 1
        elif tag in ("ul", "ol"):
            self._lists.append([tag == "ol", 0])
        elif tag == "li":
            self._write(self._bullet())
        elif tag == "p":
            # Outlook's MsoNormal paragraphs have no margin: only real paragraphs get a gap.
            outlook = "msonormal" in (attrs.get("class") or "").lower()
            self._paras.append((outlook, len(self.lines)))
            if not outlook:
                self._gap_pending = bool(self.lines)

    def _bullet(self) -> str:
        if not self._lists:
            return "- "
        current = self._lists[-1]
        current[1] += 1
        return f"{current[1]}. " if current[0] else "- "

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            if tag in self._skip:
                while self._skip and self._skip.pop() != tag:
                    pass
            return
        if self._skip:
            return
        if tag in _BLOCK_TAGS:
            self._flush()
            if tag == "blockquote":
                self._depth = max(0, self._depth - 1)
            elif tag == "pre":
                self._pre = max(0, self._pre - 1)
            elif tag in ("ul", "ol") and self._lists:
                self._lists.pop()
            elif tag == "p":
                self._close_paragraph()

    def _close_paragraph(self) -> None:
        outlook, lines_at_start = self._paras.pop() if self._paras else (False, 0)
        if not outlook:
            self._gap_pending = True
        elif len(self.lines) == lines_at_start:
            # An empty Outlook paragraph (<o:p>&nbsp;</o:p>) is how Outlook draws a blank line.
            self.lines.append((self._depth, ""))

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre:
            # Preformatted text keeps its own line structure.
            parts = data.replace("\u00a0", " ").split("\n")
            for i, part in enumerate(parts):
                if i:
                    self._flush(force=True)
                if part:
                    self._line.append(part)
            return
        self._write(_SPACES.sub(" ", data))

    def text(self) -> str:
        self._flush()
        out = []
        for depth, line in self.lines:
            prefix = "> " * depth
            out.append((prefix + line).rstrip())
        return _BLANK_RUNS.sub("\n\n", "\n".join(out)).strip("\n")


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML mail body.

    Block elements end lines, <br> is a newline, <blockquote> content is prefixed with "> "
    per nesting level, <head>/<style>/<script> are dropped, entities are unescaped and runs
    of blank lines collapse to one.
    """
    builder = _TextBuilder()
    try:
        builder.feed(html)
        builder.close()
    except Exception:  # html.parser rarely fails, but mail is hostile input
        pass
    return builder.text()


# -- message bodies ----------------------------------------------------------------------


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset, falling back when it is unknown or lies."""
    for candidate in (charset, "utf-8", "cp1252"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError, ValueError):
            continue
    return data.decode("latin-1")  # cannot fail: every byte maps to a code point


def part_text(part: Message) -> str:
    """The decoded text of one non-multipart part; "" when it cannot be had."""
    try:
        cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        if cte not in ("base64", "quoted-printable"):
            # The email package decodes 8bit text with the declared charset; trust it unless
            # it had to substitute characters (unknown or lying charset).
            payload = part.get_payload()
            if isinstance(payload, str) and "\ufffd" not in payload:
                return payload
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            return ""
        return decode_bytes(data, part.get_content_charset())
    except Exception:  # a broken part must not break the pipeline
        return ""


def _text_parts(msg: Message, found: dict[str, list[Message]]) -> None:
    """Collect inline text/plain and text/html parts, never entering attached messages."""
    ctype = content_type(msg)
    if msg.is_multipart():
        if ctype == "message/rfc822" or ctype.split("/")[0] == "message":
            return
        for sub in msg.get_payload():
            if isinstance(sub, Message):
                _text_parts(sub, found)
        return
    if ctype not in ("text/plain", "text/html"):
        return
    if _is_attachment(msg):
        return
    found.setdefault(ctype, []).append(msg)


def _is_attachment(part: Message) -> bool:
    disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
    return disposition == "attachment"


# part -> its content type: the stdlib parses the header again on every read, and the body
# text, the classifier, the forward finder and the attachments each ask of the same parts.
_TYPES: weakref.WeakKeyDictionary[Message, str] = weakref.WeakKeyDictionary()


def content_type(part: Message) -> str:
    """part.get_content_type(), read once per part (a parsed message is not changed)."""
    known = _TYPES.get(part)
    if known is None:
        known = _TYPES[part] = part.get_content_type()
    return known


# msg -> its body text: parsing, the forward finder and bounce detection each ask for the
# text of the same message (a parsed message is not changed after it is read).
_TEXTS: weakref.WeakKeyDictionary[Message, str] = weakref.WeakKeyDictionary()


def body_text(msg: EmailMessage | Message) -> str:
    """The best human-readable text of msg: text/plain preferred, else converted HTML.

    Attached messages (message/rfc822) are not entered and attachments are skipped.
    Never raises: undecodable or missing bodies give "".
    """
    known = _TEXTS.get(msg)
    if known is None:
        known = _TEXTS[msg] = _body_text(msg)
    return known


def _body_text(msg: EmailMessage | Message) -> str:
    try:
        found: dict[str, list[Message]] = {}
        _text_parts(msg, found)
        plain = "\n\n".join(t for t in (part_text(p) for p in found.get("text/plain", [])) if t)
        if plain.strip():
            return _normalise_newlines(plain).replace("\ufeff", "")
        html = "\n".join(part_text(p) for p in found.get("text/html", []))
        if html.strip():
            return html_to_text(html)
        return ""
    except Exception:  # never raise on hostile input
        return ""


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")
