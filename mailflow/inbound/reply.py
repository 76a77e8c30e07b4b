"""The visible text of a message: what its author wrote, without quoted history or boilerplate.

Removes, in order: quoted history (">" lines, "On … wrote:" introductions in several
languages, Outlook header blocks and separators), then signatures ("-- ", device lines,
a trailing sign-off block) and trailing council disclaimers. Inline answers between quoted
lines are kept. Heuristic by nature: when in doubt it keeps text rather than dropping it.
"""

from __future__ import annotations

import re

from mailflow.inbound.forwards import header_field, is_separator

_QUOTED = re.compile(r"^[ \t]*>")
_WROTE = re.compile(
    r"(?:\bwrote|\bwrites|\bysgrifennodd|\ba [ée]crit|\bschrieb|\bescribi[óo]|\bnapisał(?:\(a\)|a)?"
    r"|\bpisze|\bschreef|\bha scritto|\bskrev)\b[^\n]{0,120}:\s*$",
    re.IGNORECASE,
)
_INTRO_START = re.compile(r"^\s*(?:on|ar|le|am|el|op|il|w dniu|dnia)\b|\d", re.IGNORECASE)
# Client introductions carry a time or an address; "In 2019 my neighbour wrote:" does not.
_INTRO_DETAIL = re.compile(r"\d{1,2}[:.]\d{2}|@")
_SIG_DELIMITER = re.compile(r"^--\s?$")
_DEVICE_LINE = re.compile(
    r"^\s*(?:sent from my \S.*|sent from (?:outlook|mail for|yahoo|samsung|my).*"
    r"|sent (?:from|with) (?:proton ?mail|blackberry).*|get outlook for \S.*"
    r"|von meinem \S.* gesendet|envoy[ée] de mon \S.*|enviado desde mi \S.*"
    r"|wys[łl]ane z \S.*|anfonwyd o fy \S.*)$",
    re.IGNORECASE,
)
_SIGN_OFF = re.compile(
    r"^\s*(?:(?:with\s+)?(?:kind|kindest|best|warm|warmest|many|with)?\s*(?:regards|wishes|thanks)"
    r"|thanks(?: again| very much| so much)?|thank you(?: very much)?|many thanks|best"
    r"|yours(?: sincerely| faithfully| truly)?|sincerely|cheers|all the best|take care"
    r"|regards|cofion(?: cynnes| gorau)?|yn gywir|diolch(?: yn fawr)?|pozdrawiam|z poważaniem"
    r"|(?:bien )?cordialement|mit freundlichen grüßen|viele grüße|beste grüße|mfg"
    r"|(?:un )?saludos?(?: cordiales)?|atentamente)\s*[,.!]?\s*$",
    re.IGNORECASE,
)
_DISCLAIMER = re.compile(
    r"this (?:e-?mail|message|communication)(?: and| \(and| including)? (?:any|its)"
    r" (?:attach|files)"
    r"|this e-?mail (?:is|may be|has been|was) (?:confidential|scanned|checked|intended|sent)"
    r"|the information (?:in|contained in) this (?:e-?mail|message|communication)"
    r"|any (?:views|opinions)(?: or opinions)? (?:expressed|presented)"
    r"|this e-?mail has been (?:scanned|checked)|has been scanned for"
    r"|please consider the environment|think before you print|save a tree"
    r"|if you (?:are not|have received this) (?:the intended|(?:e-?mail|message) in error)"
    r"|confidentiality (?:notice|statement)|^disclaimer\b|^ymwadiad\b"
    r"|(?:e-?mails?|communications?) (?:sent to and from|with) (?:this|the)"
    r" (?:council|organisation|organization|authority) (?:may|will) be (?:monitored|recorded)"
    r"|how we (?:use|process|handle) your (?:personal )?(?:data|information)|privacy notice"
    r"|mae'r (?:neges|e-?bost) (?:e-?bost )?(?:hon|hwn)|yn gyfrinachol"
    r"|unless (?:expressly|otherwise) stated|protectively marked",
    re.IGNORECASE,
)
# Lines that sit among disclaimers: rules, bare links, logos, social media prompts.
_FOOTER_JUNK = re.compile(
    r"^\W*(?:[_=*-]+|https?://\S+|www\.\S+|\[cid:[^\]]*\]|\[image[^\]]*\]|follow us\b.{0,60}"
    r"|(?:twitter|facebook|instagram|linkedin|x)\b.{0,60})\W*$",
    re.IGNORECASE,
)
_SHORT_LINE = 72  # a signature line (name, title, phone) is short
_MAX_SIGNATURE_LINES = 8
_BLANK_RUNS = re.compile(r"\n{3,}")


def visible_text(body: str) -> str:
    """What the author of a message wrote, without quoted history, signature or disclaimer.

    A message with no quote comes back essentially unchanged (bar signature and disclaimer);
    inline answers between quoted lines are kept. Never returns "" when the input had any
    unquoted text: it then falls back to the first non-empty paragraph.
    """
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = [line.rstrip() for line in lines]
    kept = _drop_history(lines)
    kept = _drop_signature(kept)
    kept = _drop_disclaimers(kept)
    kept = _drop_sign_off(kept)
    text = _tidy(kept)
    return text or _first_block(lines)


# -- quoted history ------------------------------------------------------------------------


def _drop_history(lines: list[str]) -> list[str]:
    cut = _history_start(lines)
    head = lines[:cut]
    tail = lines[cut:]
    if _has_inline_answers(tail):
        # Interleaved quote/answer: keep the answers, drop the quotes and the "wrote:" line.
        answers = [line for line in tail if not _QUOTED.match(line)]
        intro = _intro_length(tail, 0)
        if intro:
            answers = [line for line in tail[intro:] if not _QUOTED.match(line)]
        return head + [""] + answers
    return head


def _history_start(lines: list[str]) -> int:
    """Index of the first line of quoted history, or len(lines) when there is none."""
    for i, line in enumerate(lines):
        if _QUOTED.match(line) or _intro_length(lines, i) or _outlook_block_at(lines, i):
            return i
        if is_separator(line):
            return i
    return len(lines)


def _intro_length(lines: list[str], i: int) -> int:
    """Lines taken by an "On <date>, <name> wrote:" introduction starting at i (0 if none)."""
    if i >= len(lines) or not lines[i].strip() or _QUOTED.match(lines[i]):
        return 0
    if not _INTRO_START.search(lines[i]) and "@" not in lines[i]:
        return 0
    joined = ""
    # Clients wrap long introductions over up to three lines.
    for k in range(3):
        if i + k >= len(lines) or not lines[i + k].strip():
            break
        joined = (joined + " " + lines[i + k].strip()).strip()
        if _WROTE.search(joined) and _INTRO_DETAIL.search(joined):
            return k + 1
    return 0


def _outlook_block_at(lines: list[str], i: int) -> bool:
    """An Outlook-style "From: … Sent: … To: … Subject: …" block starts at line i."""
    first = header_field(lines[i])
    if not first or first[0] != "from":
        return False
    seen = set()
    for line in lines[i + 1 : i + 8]:
        if not line.strip():
            continue
        parsed = header_field(line)
        if not parsed:
            break
        seen.add(parsed[0])
    return len(seen & {"date", "to", "subject", "cc"}) >= 2


def _has_inline_answers(tail: list[str]) -> bool:
    """Unquoted text after the first quoted line: the author answered inline or below."""
    seen_quote = False
    for line in tail[_intro_length(tail, 0) :]:
        if _QUOTED.match(line):
            seen_quote = True
        elif seen_quote and line.strip() and not _is_boilerplate_line(line):
            return True
        elif not seen_quote and line.strip():
            return False  # unquoted history (an Outlook block): nothing of ours below
    return False


def _is_boilerplate_line(line: str) -> bool:
    return bool(_SIG_DELIMITER.match(line) or _DEVICE_LINE.match(line))


# -- signatures and disclaimers ------------------------------------------------------------


def _drop_signature(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        if _SIG_DELIMITER.match(line) and any(x.strip() for x in out):
            break  # everything below "-- " is the signature
        if _DEVICE_LINE.match(line):
            continue
        out.append(line)
    return out


def _paragraphs(lines: list[str]) -> list[list[str]]:
    paras: list[list[str]] = []
    current: list[str] = []
    for line in lines:
        if line.strip():
            current.append(line)
        elif current:
            paras.append(current)
            current = []
    if current:
        paras.append(current)
    return paras


def _drop_disclaimers(lines: list[str]) -> list[str]:
    """Drop trailing paragraphs that are disclaimers (and the rules and links among them)."""
    paras = _paragraphs(lines)
    keep = len(paras)
    found = False
    while keep > 1:
        para = paras[keep - 1]
        if _DISCLAIMER.search(" ".join(para)):
            found = True
        elif not all(_FOOTER_JUNK.match(line) for line in para):
            break
        keep -= 1
    if not found:
        return lines
    return [line for para in paras[:keep] for line in para + [""]]


def _drop_sign_off(lines: list[str]) -> list[str]:
    """Drop "Kind regards" plus the name block under it, when such a block follows."""
    content = [i for i, line in enumerate(lines) if line.strip()]
    for pos in range(len(content) - 2, -1, -1):
        i = content[pos]
        if not _SIGN_OFF.match(lines[i]):
            continue
        block = [lines[j] for j in content[pos + 1 :]]
        if _looks_like_name_block(block):
            return lines[:i]
        return lines  # the last sign-off is followed by real text: leave it all
    return lines


def _looks_like_name_block(block: list[str]) -> bool:
    """Name, title, phone...: a few short lines, none of them a sentence."""
    if not block or len(block) > _MAX_SIGNATURE_LINES or len(block[0].split()) > 5:
        return False
    for line in block:
        text = line.strip()
        if len(text) > _SHORT_LINE or text.endswith(("?", "!")):
            return False
        if text.endswith(".") and len(text.split()) > 3:
            return False  # "I will send photos tomorrow." is content, not a job title
    return True


# -- output --------------------------------------------------------------------------------


def _tidy(lines: list[str]) -> str:
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def _first_block(lines: list[str]) -> str:
    """The first paragraph of unquoted text: the fallback when everything else was dropped."""
    unquoted = [line for line in lines if not _QUOTED.match(line)]
    paras = _paragraphs(unquoted)
    return "\n".join(paras[0]).strip() if paras else ""
