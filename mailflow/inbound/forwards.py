"""Forward detection: find the original message inside a forwarded email.

Mail clients forward in two ways: inline, with a small header block ("From: … Sent: …")
above the original text, or as an attached message/rfc822 part. Header labels, separator
lines and date formats differ per client and language: forward_tables.py holds the words
of 25 languages, forward_dates.py reads the dates, and this module finds the header blocks
(see README, "Reading forwards", for the clients and forms).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage, Message

from mailflow.inbound import forward_tables as tables
from mailflow.inbound.forward_dates import parse_date
from mailflow.inbound.parse import read_from
from mailflow.inbound.text import body_text, content_type


@dataclass
class Party:
    name: str | None
    address: str  # lower-cased, stripped of <>, mailto:


@dataclass
class Original:
    sender: Party | None
    to: list[Party] = field(default_factory=list)
    cc: list[Party] = field(default_factory=list)
    subject: str | None = None
    date: datetime | None = None  # timezone-aware when the header gave an offset, else naive
    body: str = ""


@dataclass
class Forward:
    note: str  # the forwarder's own text above the forward ("" when none), stripped
    original: Original
    attached: bool  # True when the original came as a message/rfc822 part


# -- header labels -----------------------------------------------------------------------

# Label (lower-case, as clients print it) -> canonical field.
_LABELS: dict[str, str] = {
    name: canonical for canonical, names in tables.LABELS.items() for name in names
}

_LABEL_ALT = "|".join(sorted((re.escape(n) for n in _LABELS), key=len, reverse=True))
_COLON = r"[ \t\u00a0]*[:\uff1a]"  # French puts a space before it; Japanese a full-width one
# Optional "*" or "**" around labels: Gmail and Outlook render bold labels that way in plain text.
_HEADER_LINE = re.compile(
    rf"^\s*\*{{0,2}}(?P<label>{_LABEL_ALT})\*{{0,2}}{_COLON}\*{{0,2}}"
    r"(?:[ \t\u00a0]+|$|(?<=\uff1a))(?P<value>.*)$",
    re.IGNORECASE,
)

_WORDS = "|".join(re.escape(w) for w in tables.SEPARATOR_WORDS)
# Lines that introduce an inline forward (or an Outlook-style quoted original): words between
# dashes ("---------- Forwarded message ---------", with Yahoo's block run on after them),
# Outlook's underscores, or one of the exact intro lines ("Begin forwarded message:").
_SEPARATOR = re.compile(
    r"""^\s*(?:
        [-_=*]{2,}\s*(?P<words>[^-_=*\s].*?)\s*[-_=*]{2,}(?P<rest>.*)
        | _{10,}
        | (?P<intro>[^:\uff1a]{3,70})[ \t]*[:\uff1a]
    )\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_SEPARATOR_WORDS = re.compile(_WORDS, re.IGNORECASE)
_INTROS = frozenset(tables.INTRO_LINES)
_MUTT_START = re.compile(r"^\s*-{3,}\s*forwarded message from (?P<who>.+?)\s*-{3,}\s*$", re.I)
_FORWARD_WORDS = re.compile("|".join(re.escape(w) for w in tables.FORWARDED_WORDS), re.I)
_END = re.compile(r"^\s*-{3,}\s*(?:" + "|".join(tables.END_WORDS) + r")[^-]*-{3,}\s*$", re.I)

_PREFIX_ALT = "|".join(re.escape(p) for p in sorted(tables.FORWARD_PREFIXES, key=len,
                                                    reverse=True))
_FORWARD_PREFIX = re.compile(rf"^\s*\[?(?:{_PREFIX_ALT})\.?\s*[:\uff1a]", re.I)
_REPLY_PREFIX = re.compile(
    r"^\s*\[?(?:" + "|".join(re.escape(p) for p in tables.REPLY_PREFIXES) + r")\s*:", re.I)
_ANY_PREFIX = re.compile(rf"^\s*\[?(?:{_PREFIX_ALT}|re|aw|sv)\.?\s*[:\uff1a]\s*", re.I)
_WROTE = "|".join(re.escape(w) for w in tables.WROTE_WORDS)
_REPLY_INTRO = re.compile(rf"(?:{_WROTE})[^:]{{0,80}}[:\uff1a]\s*$", re.IGNORECASE)
# "On 23/11/2026 10:02, "Name" <addr> wrote:" in any language (Outlook 2019, for Mac).
_ATTRIBUTION = re.compile(rf"(?:{_WROTE})", re.IGNORECASE)
_BRACKETED = re.compile(r"[<\[(]\s*(?:mailto:)?([\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+)"
                        r"\s*[>\])]", re.UNICODE)
# GroupWise: ">>> Name <addr> 23/11/2026 10:02 >>>".
_GROUPWISE = re.compile(r"^>>>\s*(?P<who>.+?)\s+(?P<date>\d{1,4}[/.-]\d{1,2}[/.-]\d{2,4}.*?)"
                        r"\s*>>>\s*$")
_DEVICE_LINE = re.compile(
    r"^\s*(sent from my \S.*|sent from (?:outlook|mail|yahoo|samsung).*|get outlook for \S.*"
    r"|von meinem \S+ gesendet|envoyé de mon \S.*|enviado desde mi \S.*|wysłane z \S.*"
    r"|anfonwyd o fy \S.*|verstuurd vanaf mijn \S.*|inviato da(?:l mio)? \S.*"
    r"|enviado do meu \S.*|skickat från min \S.*|sendt fra min \S.*|odesláno z \S.*"
    r"|отправлено с \S.*|надіслано з \S.*|iphone\s?から送信)$",
    re.IGNORECASE,
)
_QUOTE_PREFIX = re.compile(r"^((?:[ \t]?>)+)[ \t]?")
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)


def _may_be_separator(line: str) -> bool:
    """Every separator pattern needs one of these characters: most lines of a long message
    are ruled out without running them."""
    return _SEPARATOR_CHAR.search(line) is not None


_SEPARATOR_CHAR = re.compile("[-_=*:\uff1a]")


def header_field(line: str) -> tuple[str, str] | None:
    """(canonical field, value) when line looks like a forwarded-header line."""
    if ":" not in line and "\uff1a" not in line:
        return None  # the pattern needs its colon
    match = _HEADER_LINE.match(line)
    if not match:
        return None
    label = re.sub(r"\s+", " ", match.group("label").lower())
    return _LABELS[label], match.group("value").strip().strip("*").strip()


def is_separator(line: str) -> bool:
    """True for lines like "-----Original Message-----" or "Begin forwarded message:"."""
    if not _may_be_separator(line):
        return False
    if _MUTT_START.match(line) or _END.match(line):
        return True
    match = _SEPARATOR.match(line)
    if not match:
        return False
    if match.group("intro") is not None:
        intro = " ".join(match.group("intro").split()).lower().replace("\u0307", "")
        return intro in _INTROS  # Turkish "İ" lower-cases to "i" and a combining dot
    words = match.group("words")
    return words is None or bool(_SEPARATOR_WORDS.search(words))


# -- addresses -----------------------------------------------------------------------------


def _clean_name(raw: str) -> str | None:
    name = re.sub(r"\s+", " ", raw).strip(" \t,;:<>[]()\"'*")
    name = re.sub(r"\s*(?:\[|<|\()?mailto:?\s*$", "", name, flags=re.I).strip(" \"'<[(")
    return name or None


_REPEAT_GAP = re.compile(r"[^\s<>\[\]:mailto\"']")


def parse_parties(value: str) -> list[Party]:
    """Parties from a header value in any client's style.

    Handles "Name <a@b>", "Name [mailto:a@b]", bare addresses, Outlook's "Smith, Jane"
    names (commas inside names, ";" between people) and names with no address at all.
    """
    matches = list(_ADDRESS.finditer(value))
    if not matches:
        names = [_clean_name(n) for n in value.split(";")]
        return [Party(name=n, address="") for n in names if n]
    parties: list[Party] = []
    cursor = 0
    for match in matches:
        gap = value[cursor : match.start()]
        address = match.group(0).lower()
        cursor = match.end()
        if parties and parties[-1].address == address and not _REPEAT_GAP.search(gap):
            continue  # "a@b<mailto:a@b>", '"a@b" <a@b>': the address repeated
        name = _clean_name(gap.split(";")[-1] if ";" in gap else gap)
        if name and name.lower() == address:
            name = None
        parties.append(Party(name=name, address=address))
    return parties


_ENCLOSED = re.compile(
    r"(?:<\s*(?:mailto:\s*)?|\[\s*mailto:\s*)(" + _ADDRESS.pattern + ")", re.UNICODE | re.I)


def sender_party(value: str) -> Party | None:
    """The author on a forwarded `From:` line. The real address is the one a client shows in
    `<…>` (or `[mailto:…]`), the last one: text before it is the display name, which anyone
    writes, so `Mary Jones (mary@gmail.example) <mary.jones@example.org>` is
    mary.jones@example.org. Without brackets, the last address on the line."""
    enclosed = list(_ENCLOSED.finditer(value))
    if enclosed:
        name = _clean_name(_ADDRESS.sub(" ", value[: enclosed[0].start()]))
        return Party(name=name, address=enclosed[-1].group(1).lower())
    parties = parse_parties(value)
    with_address = [p for p in parties if p.address]
    if with_address:
        last = with_address[-1]
        return Party(name=_clean_name(_ADDRESS.sub(" ", last.name or "")), address=last.address)
    return parties[0] if parties else None


def _header_sender(msg: Message) -> Party | None:
    """An attached original's `From`: the address its header really holds."""
    try:
        name, address, _ = read_from(msg)  # type: ignore[arg-type]
        raw = str(msg.get("From", "") or "")
    except Exception:  # a malformed header must not stop us
        return None
    if address:
        return Party(name=_clean_name(_ADDRESS.sub(" ", name or "")), address=address)
    return sender_party(raw)  # a display name showing another address: the bracketed one


# -- inline header blocks ------------------------------------------------------------------


@dataclass(slots=True)  # one object a line, not two: a long message has hundreds
class _Line:
    depth: int  # number of ">" quote levels
    text: str  # the line without its quote prefix, right-stripped
    plain: bool = False  # no character a separator, header or attribution needs


@dataclass
class _Block:
    start: int  # index of the first line belonging to the forward (separator or header)
    end: int  # index just past the header block
    depth: int
    fields: dict[str, str]
    marked: bool  # a separator line ("-----Original Message-----" etc.) introduced the block
    forward_marker: bool = False  # ... and that separator says "forwarded"
    attribution: bool = False  # a one-line header ("On …, "Name" <addr> wrote:")


def _split_lines(text: str) -> list[_Line]:
    lines: list[_Line] = []
    append = lines.append
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        depth = 0
        if ">" in raw:
            if ">>>" in raw and _GROUPWISE.match(raw.strip()):
                append(_Line(0, raw.strip()))  # ">>> Name <addr> date >>>" is no quote
                continue
            if raw[:2] == "> " and raw[2:3] not in (" ", "\t", ">"):
                depth, raw = 1, raw[2:]  # what _QUOTE_PREFIX reads of most quoted lines
            elif match := _QUOTE_PREFIX.match(raw):
                depth, raw = match.group(1).count(">"), raw[match.end():]
        if not ("-" in raw or ":" in raw or "_" in raw or "=" in raw or "*" in raw
                or ">" in raw or "\uff1a" in raw):
            # Most lines have none of the characters a separator, a header line, an
            # attribution, a quote or GroupWise's ">>>" needs: seven `in` tests cost a
            # quarter of one character-class search.
            append(_Line(depth, raw.rstrip(), True))
        else:
            lines += [_Line(depth, t) for t in _unglue(raw)]
    return lines


# Yahoo runs its header block together after the separator: "----- Forwarded Message -----
# From: A <a@x>To: b@y <b@y>Sent: Tuesday, 3 March 2026, 15:47:00 GMTSubject: Bins".
_FIELD_ORDER = ("to", "cc", "date", "subject")
_LABEL_AT = {
    f: re.compile("(?:" + "|".join(re.escape(n) for n in sorted(
        (n for n, c in _LABELS.items() if c == f), key=len, reverse=True)) + ")" + _COLON,
        re.IGNORECASE)
    for f in _FIELD_ORDER
}
_LONGEST_LABEL = max(map(len, _LABELS))
_BLANKS = " \t\u00a0"  # what _COLON allows between a label and its colon


def _unglue(raw: str) -> list[str]:
    """One line, or the lines a run-together separator and header block stand for."""
    line = raw.rstrip()
    head: list[str] = []
    sep = _SEPARATOR.match(line) if _may_be_separator(line) else None
    if sep and sep.group("rest") and sep.group("rest").strip() and _SEPARATOR_WORDS.search(
            sep.group("words") or ""):
        cut = sep.start("rest")
        head, line = [line[:cut].rstrip()], sep.group("rest").strip()
    parsed = header_field(line)
    if not parsed or parsed[0] != "from":
        return head + [line]
    parts: list[str] = []
    cursor = 0
    for fld in _FIELD_ORDER:
        found = _glued_label(line, _LABEL_AT[fld], cursor)
        if found is not None:
            parts.append(line[cursor:found].rstrip())
            cursor = found
    parts.append(line[cursor:].rstrip())
    return head + parts


def _glued_label(line: str, label: re.Pattern[str], start: int) -> int | None:
    """Where a label glued to the previous value starts: after ">", "]", ")" or a digit,
    or a capitalised label straight after another word ("GMTSubject:")."""
    for m in _label_matches(line, label, start + 1):
        before = line[m.start() - 1]
        if before in ">])\"" or before.isdigit():
            return m.start()
        if before.isspace() and m.start() > start + 1 and line[m.start() - 2] in ">])\"":
            return m.start()
        first = line[m.start()]
        if before.isalpha() and m.end() - m.start() > 2 and (
                first.isupper() or (not first.isascii() and before.isascii())):
            return m.start()
    return None


def _label_matches(line: str, label: re.Pattern[str], pos: int) -> Iterator[re.Match[str]]:
    """label.finditer(line, pos), tried only where a label can start: at most the longest
    label and a run of blanks before a colon. The pattern's many case-insensitive
    alternatives give the regex engine no first character to skip to, so finditer tried
    every one of them at every position of the line (a From line cost 0.3 ms)."""
    starts: set[int] = set()
    for colon in (":", "\uff1a"):
        c = line.find(colon, pos + 1)
        while c >= 0:
            lead = c
            while lead > pos and line[lead - 1] in _BLANKS:
                lead -= 1
            starts.update(range(max(pos, lead - _LONGEST_LABEL), c))
            c = line.find(colon, c + 1)
    end = pos
    for s in sorted(starts):
        if s >= end and (m := label.match(line, s)):
            end = m.end()  # finditer's next match starts after this one
            yield m


def _read_block(lines: list[_Line], i: int, depth: int) -> tuple[dict[str, str], int]:
    """Header fields starting at line i; returns the fields and the index past the block."""
    fields: dict[str, str] = {}
    last = None
    j = i
    blank_run = 0
    while j < len(lines) and lines[j].depth == depth:
        text = lines[j].text
        parsed = header_field(text)
        if parsed and parsed[0] not in fields:
            last = parsed[0]
            fields[last] = parsed[1]
            blank_run = 0
        elif parsed and parsed[0] == "other":
            blank_run = 0
        elif not text.strip():
            blank_run += 1
            if blank_run > 1 or not _next_is_header(lines, j + 1, depth):
                break  # one blank between header lines is tolerated (HTML conversions)
        elif last in ("to", "cc") and "@" in text and not blank_run:
            fields[last] += " " + text.strip()  # a wrapped recipient list
        else:
            break
        j += 1
    return fields, j


def _next_is_header(lines: list[_Line], j: int, depth: int) -> bool:
    return j < len(lines) and lines[j].depth == depth and header_field(lines[j].text) is not None


def _valid_block(fields: dict[str, str], lenient: bool, marked: bool = False) -> bool:
    """A header block: From and two more fields with an address, or (with a forward
    subject or a separator) one more. Without an address in From it needs the separator or
    two more fields: "From: 10am / To: 1pm" is a notice, not a header block."""
    if "from" not in fields:
        return False
    others = sum(1 for key in ("date", "to", "cc", "subject") if key in fields)
    if "@" not in fields["from"]:
        return marked or (lenient and others >= 2)
    return others >= (1 if lenient or marked else 2)


def _find_blocks(lines: list[_Line], lenient: bool) -> list[_Block]:
    """Every forwarded/quoted header block, outermost first. `lenient` (the subject says
    "forwarded") also admits blocks of fewer lines and Outlook 2019's attribution lines."""
    blocks: list[_Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.plain and line.text:
            i += 1  # a line of text, not blank (a blank line may stand above a header block)
            continue
        marked = False
        start = i
        if is_separator(line.text):
            marked = True
            mutt = _MUTT_START.match(line.text)
            i += 1
            while i < len(lines) and not lines[i].text.strip():
                i += 1  # Apple Mail and Mutt leave a blank line after the separator
            if i >= len(lines):
                break
            if mutt and header_field(lines[i].text) is None:
                blocks.append(_Block(start, i, line.depth, {"from": mutt.group("who")}, True))
                continue
        said = _attribution(lines[i].text, need_verb=not marked) if (lenient or marked) else None
        if said:
            blocks.append(_Block(start, i + 1, lines[i].depth, said, marked, attribution=True))
            i += 1
            continue
        fields, end = _read_block(lines, i, lines[i].depth)
        if _valid_block(fields, lenient, marked):
            blocks.append(_Block(start, end, lines[i].depth, fields, marked))
            i = end
        else:
            i = max(i + 1, start + 1)
    return blocks


def _attribution(text: str, need_verb: bool) -> dict[str, str] | None:
    """From and date of a one-line header: Outlook 2019's `On <date>, "Name" <addr> wrote:`
    in any language, GroupWise's `>>> Name <addr> <date> >>>`, or Yandex's `<date>, "Name"
    <addr>:` under a separator (need_verb=False)."""
    if gw := _GROUPWISE.match(text.strip()):
        return {"from": gw.group("who"), "date": gw.group("date")}
    line = text.strip()
    if not line.endswith((":", "\uff1a")) or len(line) > 300:
        return None
    found = list(_BRACKETED.finditer(line))
    if not found or (need_verb and not _ATTRIBUTION.search(line)):
        return None
    address = found[-1]
    before, after = line[: address.start()], line[address.end() :]
    name = _quoted_name(before)
    if name is None:
        cut = max((before.rfind(w) + len(w) for w in tables.NAME_AFTER if w in before),
                  default=-1)
        if cut < 0 and "," in before:
            cut = before.rfind(",") + 1
        name = before[max(cut, 0):]
        if _ATTRIBUTION.search(name) or re.search(r"\d[:.]\d", name):
            name = ""  # the name is not where this language puts it; the address is enough
    return {"from": f"{name.strip()} <{address.group(1)}>", "date": before + " " + after}


_QUOTED = re.compile(r"[\"\u201c\u201e«]\s*([^\"\u201c\u201d\u201e«»]+?)\s*[\"\u201d»]\s*$")


def _quoted_name(text: str) -> str | None:
    m = _QUOTED.search(text.rstrip(" ([<"))
    return m.group(1) if m else None


def _body_after(lines: list[_Line], block: _Block) -> str:
    """The original's text: lines after its header block, at its quote depth or deeper.
    A body quoted one level deeper than its header (Missive, Mail.ru) loses that level, and
    a body indented as a whole (Outlook 2019) loses the indent."""
    taken: list[_Line] = []
    for line in lines[block.end :]:
        if "---" in line.text and _END.match(line.text):  # an end line has its dashes
            break
        if line.depth < block.depth and line.text.strip():
            break  # the forwarder's quote ended
        taken.append(line)
    base = block.depth
    depths = (line.depth for line in taken if line.text.strip())
    first = next(depths, None)  # stop at the first line at the header's depth
    if first is not None and first > base and all(d > base for d in depths):
        base += 1
    # A line's text is right-stripped already: only a deeper line gets a prefix to strip.
    out = [("> " * (line.depth - base) + line.text).rstrip() if line.depth > base else line.text
           for line in taken]
    return _dedent(out).strip()


def _dedent(lines: list[str]) -> str:
    """textwrap.dedent of the lines (each right-stripped) joined: without its patterns over the
    whole text when a line starts in the first column, as almost every body has one, and
    there is then no margin to remove."""
    text = "\n".join(lines)
    if any(line[:1] not in ("", " ", "\t") for line in lines):
        return text
    return textwrap.dedent(text)


def _note_before(lines: list[_Line], index: int) -> str:
    kept = [
        ("> " * line.depth + line.text).rstrip()
        for line in lines[:index]
        if not _DEVICE_LINE.match(line.text)
    ]
    return "\n".join(kept).strip()


def _original_from_block(block: _Block, body: str, subject_of_forward: str = "") -> Original:
    fields = block.fields
    subject = fields.get("subject")
    if block.attribution and not subject:  # a one-line header names no subject: the
        subject = _strip_prefixes(subject_of_forward)  # forward's own, less "FW:"
    return Original(
        sender=sender_party(fields.get("from", "")),
        to=parse_parties(fields.get("to", "")),
        cc=parse_parties(fields.get("cc", "")),
        subject=subject if subject else None,
        date=parse_date(fields["date"]) if fields.get("date") else None,
        body=body,
    )


def _strip_prefixes(subject: str) -> str:
    while (m := _ANY_PREFIX.match(subject)) and m.end() < len(subject):
        subject = subject[m.end() :]
    return " ".join(subject.split())


def _is_reply(subject: str, lines: list[_Line], first: _Block) -> bool:
    """A reply quoting earlier mail has the same header blocks as a forward."""
    if _REPLY_PREFIX.match(subject) and not first.forward_marker:
        return True
    # "On … wrote:" above the first block: this is a reply to (possibly) a forward.
    return any(
        line.depth <= first.depth
        and _REPLY_INTRO.search(line.text)
        and re.search(r"\d{1,2}[:.]\d{2}|@", line.text)
        for line in lines[: first.start]
    )


def _pick(chain: list[Original], is_internal: Callable[[str], bool]) -> Original:
    """The first (outermost) author who is not internal: in casework the constituent who
    wrote to the member. Deeper levels stay in that original's body. The first author when
    all are internal."""
    for original in chain:
        if original.sender and original.sender.address and not _safe(is_internal, original):
            return original
    return chain[0]


def _safe(is_internal: Callable[[str], bool], original: Original) -> bool:
    try:
        return bool(is_internal(original.sender.address if original.sender else ""))
    except Exception:  # a caller's predicate must not break parsing
        return False


def _inline_forward(msg: Message, is_internal: Callable[[str], bool]) -> Forward | None:
    text = body_text(msg)
    lines = _split_lines(text)
    subject = str(msg.get("Subject", "") or "")
    blocks = _find_blocks(lines, lenient=bool(_FORWARD_PREFIX.match(subject)))
    if not blocks:
        return None
    first = blocks[0]
    first.forward_marker = first.marked and bool(_FORWARD_WORDS.search(lines[first.start].text))
    if _is_reply(subject, lines, first):
        return None
    chain = [_original_from_block(block, "", subject) for block in blocks]
    chosen = _pick(chain, is_internal)
    # The original's body runs to the end: later blocks are its own quoted history.
    chosen.body = _body_after(lines, blocks[chain.index(chosen)])
    return Forward(note=_note_before(lines, first.start), original=chosen, attached=False)


# -- attached originals --------------------------------------------------------------------


def _attached_messages(msg: Message) -> list[Message]:
    """message/rfc822 and message/global (RFC 6532, UTF-8 headers) parts of msg, outermost
    first, without entering them."""
    found: list[Message] = []
    if not msg.is_multipart():
        return found
    for part in msg.get_payload():
        if not isinstance(part, Message):
            continue
        if content_type(part) in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                found.append(inner[0])
            elif isinstance(inner, (str, bytes)) and inner.strip():  # left unparsed
                data = part.get_payload(decode=True)
                if isinstance(data, bytes):
                    found.append(message_from_bytes(data, policy=policy.default))
        elif part.is_multipart():
            found.extend(_attached_messages(part))
    return found


def _original_from_message(inner: Message) -> Original:
    def header(name: str) -> str:
        try:
            return str(inner.get(name, "") or "")
        except Exception:  # a malformed header must not stop us
            return ""

    # A decoded subject may hold CR or LF (an encoded "=0D=0A"): the original's is one line.
    subject = " ".join(header("Subject").split())
    return Original(
        sender=_header_sender(inner),
        to=parse_parties(header("To")),
        cc=parse_parties(header("Cc")),
        subject=subject or None,
        date=parse_date(header("Date")) if header("Date") else None,
        body=body_text(inner).strip("\n"),
    )


def _attached_forward(msg: Message, is_internal: Callable[[str], bool]) -> Forward | None:
    attached = _attached_messages(msg)
    if not attached:
        return None
    inner = attached[0]
    chain = [_original_from_message(inner)]
    # The attached message may itself forward (or quote) someone else's mail.
    nested = _find(inner, is_internal)
    if nested:
        chain.append(nested.original)
    lines = _split_lines(body_text(msg))
    return Forward(note=_note_before(lines, len(lines)), original=_pick(chain, is_internal),
                   attached=True)


def find_forward(
    msg: EmailMessage, is_internal: Callable[[str], bool] = lambda a: False
) -> Forward | None:
    """The forwarded original inside msg, or None when msg is not a forward.

    For a forward of a forward, the original is the first (outermost) author whose address
    is not internal (is_internal(address) is True for members and council officers): in
    casework, the constituent who wrote to the member. Deeper levels stay in its body; the
    note is still the outermost forwarder's own text.
    """
    try:
        return _find(msg, is_internal)
    except Exception:  # hostile mail must never break intake; treat as "not a forward"
        return None


def _find(msg: Message, is_internal: Callable[[str], bool]) -> Forward | None:
    return _inline_forward(msg, is_internal) or _attached_forward(msg, is_internal)
