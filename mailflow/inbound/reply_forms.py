"""The lines with which mail clients start the quoted history of a reply.

Three shapes, in every language mailflow is likely to meet (README, "Replies"):
- an attribution line: "On … wrote:", "Em … escreveu:", "Op … schreef …:", Gmail's
  "2016-10-24 15:36 GMT+02:00 Name <addr>:" and "пн, 23 нояб. 2026 г. в 16:40, Name <addr>:",
  Zoho's "---- On … wrote ----", wrapped over up to three lines;
- an Outlook header block: "From:/Sent:/To:/Subject:" with labels in many languages
  ("Fra:/Sendt:", "Van:/Verzonden:", "De : … Envoyé le :"), bold or not;
- a separator: "-----Original Message-----", "-----Oprindelig meddelelse-----", a bare row of
  dashes or underscores, "Begin forwarded message:", Yahoo's "----- Forwarded Message -----"
  with the forwarded headers run together on the same line.
"""

from __future__ import annotations

import re

from mailflow.inbound.forwards import header_field, is_separator

QUOTED = re.compile(r"^[ \t]*>")

# The verb (or Gmail's bare "<addr>:") that ends an attribution line.
_ENDS_WITH_VERB = re.compile(
    r"(?:\bwrote|\bwrites|\bysgrifennodd|\ba [ée]crit|\bschrieb|\bescribi[óo]|\bescreveu"
    r"|\bnapisał(?:\(a\)|a)?|\bpisze|\bschreef|\bgeschreven|\bha scritto|\bskrev|\bskriver"
    r"|\bkirjoitti|\bnapsal(?:\(a\))?|\bírta|\byazdı|\ba scris|写道|寫道|のメッセージ"
    r"|написал(?:\(а\)|а)?|пишет|пише|написав(?:\(ла\)|ла)?)"
    r"[^\n]{0,120}[:：]\s*$",
    re.IGNORECASE,
)
# Gmail in some locales writes no verb: "2016-10-24 15:36 GMT+02:00 Name <addr>:".
_ENDS_WITH_ADDRESS = re.compile(r"<\s*[\w.+-]+@[\w-]+(?:\.[\w-]+)+\s*>\)?\s*[:：]\s*$")
# The end of an address wrapped onto the next line: ">:" (Gmail, Apple Mail).
_WRAPPED_END = re.compile(r"^\s*>\)?\s*[:：]\s*$")
_TIME = re.compile(r"\d{1,2}[:.]\d{2}")
# Zoho: "---- On Mon, 23 Nov 2026 16:40:00 +0000 Name <addr> wrote ----"
_ZOHO = re.compile(r"^\s*-{2,}\s*(?:on|le|am|el|em|op|il)\b.{0,200}\b(?:wrote|a [ée]crit|schrieb"
                   r"|escribi[óo]|escreveu|schreef|ha scritto)\s*-{2,}\s*$", re.IGNORECASE)
# How an attribution line begins: a preposition, a date or weekday, or a name and address.
_STARTS = re.compile(
    r"^\s*(?:on|ar|le|am|el|em|op|il|den|dne|dnia|w dniu|pe|the|el d[ií]a|в|у"
    r"|\d|[^\W\d_]{2,12}\.?,|[^\W\d_]{2,12}\.? \d)",
    re.IGNORECASE,
)
# Client attributions carry a time or an address; "In 2019 my neighbour wrote:" does not.
_DETAIL = re.compile(r"\d{1,2}[:.]\d{2}|@")

# Outlook header-block labels that forwards.header_field does not know (it reads forwards;
# replies meet the Nordic, Russian and other Outlooks too).
_MORE_LABELS = {
    "from": ("fra", "från", "frå", "lähettäjä", "от", "від", "odesílatel", "feladó", "kimden",
             "de la", "afzender"),
    "date": ("sendt", "skickat", "lähetetty", "отправлено", "надіслано", "dátum", "datum",
             "odesláno", "elküldve", "gönderildi", "tarih", "envoyé le", "data de envio", "date"),
    "to": ("til", "till", "vastaanottaja", "кому", "komu", "címzett", "kime", "pentru", "aan"),
    "subject": ("emne", "ämne", "aihe", "тема", "předmět", "tárgy", "konu", "subiect",
                "assunto"),
    "cc": ("kopi", "kopia", "копия", "копія", "másolat", "bilgi"),
}
_MORE = {label: field for field, labels in _MORE_LABELS.items() for label in labels}
_MORE_LINE = re.compile(
    r"^\s*\*{0,2}(?P<label>" + "|".join(sorted(map(re.escape, _MORE), key=len, reverse=True))
    + r")\*{0,2}[ \t\u00a0]*:\*{0,2}(?:[ \t\u00a0]+|$)(?P<value>.*)$",
    re.IGNORECASE,
)

# Separator words beyond the forward's ("Original Message" and the like, in more languages).
_SEPARATOR_WORDS = re.compile(
    r"original|oprindelig|opprinnelig|originalmeddelande|ursprüngliche|oorspronkelijk"
    r"|ursprungligt|початкове|özgün|orijinal|mesaj original|původní zpráva"
    r"|d'origine|originale|wiadomość|исходное|пересланное|оригінальне|вихідне|переслане"
    r"|alkuperäinen|původní|eredeti|forward|weitergeleitet|transf[ée]r|reenviado|inoltrato"
    r"|doorgestuurd|videresendt|vidarebefordrat|przekazan|ymlaen|wreiddiol",
    re.IGNORECASE,
)
_WORDED_RULE = re.compile(r"^\s*[-_=*]{2,}\s*(?P<words>[^-_=*\s][^\n]*?)\s*[-_=*]{2,}(?P<rest>.*)$")
RULE = re.compile(r"^\s*(?:[-_=*~]\s?){8,}\s*$")  # a bare row of dashes or underscores


def header_label(line: str) -> str | None:
    """The canonical field ("from", "date", "to", …) of an Outlook header-block line."""
    found = header_field(line)
    if found:
        return found[0]
    m = _MORE_LINE.match(line)
    return _MORE[m.group("label").lower()] if m else None


def attribution_length(lines: list[str], i: int) -> int:
    """Lines taken by an attribution ("On <date>, <name> wrote:") starting at i (0 if none).
    Clients wrap long attributions over up to three lines."""
    if i >= len(lines) or not lines[i].strip() or QUOTED.match(lines[i]):
        return 0
    if _ZOHO.match(lines[i]):
        return 1
    first = lines[i].strip()
    if not (_STARTS.match(first) or "@" in first or "<" in first):
        return 0
    if first.endswith((".", "!", "?")):
        return 0  # a sentence of the reply, not the start of an attribution
    joined = ""
    for k in range(3):
        if i + k >= len(lines) or not lines[i + k].strip():
            break
        if QUOTED.match(lines[i + k]) and not _WRAPPED_END.match(lines[i + k]):
            break
        joined = (joined + " " + lines[i + k].strip()).strip()
        if len(joined) > 400:
            break
        if not joined.endswith((":", "\uff1a")):
            continue  # both patterns end with the colon (joined is stripped): skip them
        if (_ENDS_WITH_VERB.search(joined) and _DETAIL.search(joined)) or (
                _ENDS_WITH_ADDRESS.search(joined) and _TIME.search(joined)):
            return k + 1
    return 0


def header_block_at(lines: list[str], i: int) -> bool:
    """An Outlook-style "From: … Sent: … To: … Subject: …" block starts at line i."""
    if header_label(lines[i]) != "from":
        return False
    seen = set()
    for line in lines[i + 1 : i + 8]:
        if not line.strip():
            continue
        label = header_label(line)
        if not label:
            break
        seen.add(label)
    return len(seen & {"date", "to", "subject", "cc"}) >= 2


def separator_at(lines: list[str], i: int) -> bool:
    """A separator line that starts the history: "-----Original Message-----" in any
    language, Yahoo's run-together forward line, or a bare rule followed only by history."""
    line = lines[i]
    if is_separator(line):
        return True
    m = _WORDED_RULE.match(line)
    if m and _SEPARATOR_WORDS.search(m.group("words")) and len(m.group("words")) < 60:
        return True
    if RULE.match(line):
        rest = next((j for j in range(i + 1, len(lines)) if lines[j].strip()), None)
        return rest is None or starts_history(lines, rest)
    return False


def starts_history(lines: list[str], i: int) -> bool:
    return bool(QUOTED.match(lines[i]) or attribution_length(lines, i)
                or header_block_at(lines, i) or separator_at(lines, i))
